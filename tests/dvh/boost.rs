//! Two plans of one course (primary + boost) end to end: `rtnode dvh` with
//! two RTDOSEs and two RTPLANs, and the course stage of `rtnode process`.
//!
//! The course is `rtnode synth --rt` (RS.dcm, RP.dcm, RD.dcm: 50 Gy in 25
//! fractions to the PTV, D1(z) = 50 Gy + 0.2 Gy/mm · (z − zc) on a 3 mm
//! grid) plus a boost written by `rtnode::synth::rt::write_boost`
//! (RP_boost.dcm, RD_boost.dcm: 10 Gy in 5 fractions to the same PTV,
//! D2(x) = 10 Gy + 0.1 Gy/mm · x on a 2 × 2 × 1.25 mm grid whose nodes lie
//! in |x|, |y| ≤ 40 mm, offset from the primary's, and nothing outside).
//! Both doses are exactly linear where the ROIs below lie, so trilinear
//! resampling onto the finest grid is exact and the summed field is
//! * PTV (sphere r = 20 mm at (0, 0, zc)), inside the boost's grid:
//!   D = 60 Gy + 0.1 x + 0.2 (z − zc), prescription 50 + 10 = 60 Gy;
//! * Cylinder (x ≥ 45 mm) and Sphere_small (x ≤ −50 mm), more than a node
//!   spacing outside the boost's grid: D1 alone.
//!
//! The PTV reference is the contoured structure, as in
//! tests/dvh/analytic.rs: the sphere between its outermost contour planes
//! (zc ± (r − t/2)), the end contours extruded by half a slice (t = 2.5 mm)
//! beyond them. Its Dmin and Dmax lie on the rims of those end caps; D95,
//! D5 and the volume come from a fine quadrature of circular-segment areas
//! over z, independent of the engine. Tolerances as in
//! tests/dvh/analytic.rs (from the issue): doses within max(1 %, 0.1 Gy),
//! volumes within 2 %.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rtnode::synth::rt::{write_boost, BoostOptions, SynthBoost};
use serde_json::Value;

const R: f64 = 20.0;
const T: f64 = 2.5;
const GX: f64 = 0.1;
const GZ: f64 = 0.2;

fn rtnode() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rtnode"))
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn sop_uid(path: &Path) -> String {
    let obj = dicom_object::open_file(path).unwrap();
    obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .trim()
        .to_string()
}

struct Course {
    dir: PathBuf,
    primary_dose_uid: String,
    primary_plan_uid: String,
    boost: SynthBoost,
}

/// `rtnode synth --rt` (40 slices of 2.5 mm: r = 20 mm) and a second plan.
fn course(dir: &Path, boost: &BoostOptions) -> Course {
    ok(rtnode()
        .args(["synth", "--slices", "40", "--rows", "64", "--rt", "--out"])
        .arg(dir)
        .output()
        .unwrap());
    let boost = write_boost(dir, boost).unwrap();
    Course {
        dir: dir.to_path_buf(),
        primary_dose_uid: sop_uid(&dir.join("RD.dcm")),
        primary_plan_uid: sop_uid(&dir.join("RP.dcm")),
        boost,
    }
}

/// `rtnode dvh` on both doses and both plans.
fn dvh(c: &Course, extra: &[&std::ffi::OsStr]) -> Output {
    rtnode()
        .arg("dvh")
        .arg("--rtstruct")
        .arg(c.dir.join("RS.dcm"))
        .arg("--rtdose")
        .arg(c.dir.join("RD.dcm"))
        .arg("--rtdose")
        .arg(&c.boost.rtdose)
        .arg("--rtplan")
        .arg(c.dir.join("RP.dcm"))
        .arg("--rtplan")
        .arg(&c.boost.rtplan)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap()
}

/// Area of the part of a disc of radius `rho` (centred on x = 0) with x ≥ a.
fn segment(rho: f64, a: f64) -> f64 {
    if a >= rho {
        0.0
    } else if a <= -rho {
        std::f64::consts::PI * rho * rho
    } else {
        rho * rho * (a / rho).acos() - a * (rho * rho - a * a).sqrt()
    }
}

/// The contoured PTV: radius at height z (relative to zc).
fn ptv_radius(z: f64) -> f64 {
    let end = R - T / 2.0;
    if z.abs() > R {
        0.0
    } else {
        let zz = z.clamp(-end, end);
        (R * R - zz * zz).sqrt()
    }
}

/// Volume (mm³) of the contoured PTV receiving at least `d` Gy of
/// 60 + GX x + GZ z.
fn ptv_volume_above(d: f64) -> f64 {
    let n = 20_000;
    let h = 2.0 * R / n as f64;
    (0..n)
        .map(|k| {
            let z = -R + (k as f64 + 0.5) * h;
            segment(ptv_radius(z), (d - 60.0 - GZ * z) / GX) * h
        })
        .sum()
}

/// Dose covering `pct` % of the contoured PTV.
fn ptv_d(pct: f64) -> f64 {
    let want = pct / 100.0 * ptv_volume_above(f64::NEG_INFINITY);
    let (mut lo, mut hi) = (40.0, 80.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ptv_volume_above(mid) > want {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Analytic values of the summed dose, per ROI and metric.
fn expected() -> Vec<(&'static str, &'static str, f64)> {
    let rim = ptv_radius(R);
    let pi = std::f64::consts::PI;
    vec![
        (
            "PTV",
            "volume_cc",
            ptv_volume_above(f64::NEG_INFINITY) / 1000.0,
        ),
        ("PTV", "Dmean", 60.0),
        ("PTV", "D50", 60.0),
        ("PTV", "Dmin", 60.0 - GX * rim - GZ * R),
        ("PTV", "Dmax", 60.0 + GX * rim + GZ * R),
        ("PTV", "D95", ptv_d(95.0)),
        ("PTV", "D5", ptv_d(5.0)),
        ("PTV", "Dmean_pctRx", 100.0),
        // Outside the boost's grid: the primary alone, 46 … 54 Gy.
        ("Cylinder", "volume_cc", pi * 225.0 * 2.0 * R / 1000.0),
        ("Cylinder", "Dmean", 50.0),
        ("Cylinder", "Dmin", 50.0 - GZ * R),
        ("Cylinder", "Dmax", 50.0 + GZ * R),
        ("Cylinder", "D95", 46.0 + 0.05 * 8.0),
        ("Cylinder", "D5", 54.0 - 0.05 * 8.0),
        ("Sphere_small", "Dmean", 50.0),
        ("Sphere_small", "D50", 50.0),
    ]
}

/// Compares `get(roi, metric)` with the analytic values; returns failures.
fn compare(get: impl Fn(&str, &str) -> Option<f64>) -> Vec<String> {
    let mut failures = Vec::new();
    for (roi, metric, exact) in expected() {
        let tol = if metric == "volume_cc" {
            0.02 * exact
        } else {
            (0.01 * exact).max(0.1)
        };
        let got = get(roi, metric).unwrap_or(f64::NAN);
        eprintln!(
            "{roi} {metric}: {got:.3} vs {exact:.3} (Δ {:+.3})",
            got - exact
        );
        if (got - exact).abs() > tol || got.is_nan() {
            failures.push(format!(
                "{roi} {metric}: {got:.3} vs analytic {exact:.3} (tolerance {tol:.3})"
            ));
        }
    }
    failures
}

/// The provenance comment lines of a DVH CSV, by key.
fn csv_header<'a>(csv: &'a str, key: &str) -> &'a str {
    csv.lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("no `# {key}:` line in\n{csv}"))
}

/// A value of dvh_metrics.csv (roi, roi_number, source, status, metric,
/// value, unit).
fn csv_metric(csv: &str, roi: &str, source: &str, metric: &str) -> Option<f64> {
    rtnode::csv_format::records(csv)
        .unwrap()
        .into_iter()
        .find(|f| f.len() >= 7 && f[0] == roi && f[2] == source && f[4] == metric)
        .and_then(|f| f[5].parse().ok())
}

#[test]
fn primary_and_boost_are_summed_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let c = course(&tmp.path().join("in"), &BoostOptions::default());
    // The boost grid is the finer one and lies where the test expects.
    let nb = c.boost.node_bounds;
    assert!(nb[0][0] > -40.0 && nb[0][1] < 40.0, "{nb:?}");
    assert!(nb[1][0] > -40.0 && nb[1][1] < 40.0, "{nb:?}");
    let out_dir = tmp.path().join("out");
    let out = ok(dvh(&c, &["--out".as_ref(), out_dir.as_os_str()]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    let failures = compare(|roi, m| v[roi][m].as_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Both doses and both plans, named; the prescriptions to the PTV add up.
    let dose = &v["_dose"];
    let uids = |k: &str| -> Vec<String> {
        dose[k]
            .as_array()
            .unwrap_or_else(|| panic!("no {k} in {dose}"))
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect()
    };
    let mut got = uids("rtdose_uids");
    got.sort();
    let mut want = vec![c.primary_dose_uid.clone(), c.boost.rtdose_uid.clone()];
    want.sort();
    assert_eq!(got, want, "{dose}");
    let mut got = uids("rtplan_uids");
    got.sort();
    let mut want = vec![c.primary_plan_uid.clone(), c.boost.rtplan_uid.clone()];
    want.sort();
    assert_eq!(got, want, "{dose}");
    assert_eq!(
        dose["description"], "sum of 2 plans (PLAN dose + PLAN dose)",
        "{dose}"
    );
    let rx = dose["prescriptions"].as_array().unwrap();
    assert_eq!(rx.len(), 1, "{dose}");
    assert_eq!(rx[0]["dose_gy"], 60.0, "{dose}");
    assert_eq!(rx[0]["roi_number"], 2, "{dose}");

    // dvh.json says the same, with the choice in words.
    let report: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("dvh.json")).unwrap()).unwrap();
    let d = &report["dose"];
    assert_eq!(d["description"], dose["description"]);
    for uid in [&c.primary_dose_uid, &c.boost.rtdose_uid] {
        assert!(
            d["dose_uids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u == uid.as_str()),
            "{uid} not in {d}"
        );
    }
    let notes: Vec<&str> = d["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("2 plans summed as one treatment")),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("resampled trilinearly")),
        "{notes:#?}"
    );
    // On the finer grid (2 × 2 × 1.25 mm).
    assert_eq!(d["grid_spacing_mm"][0], 2.0, "{d}");
    assert_eq!(d["grid_spacing_mm"][1], 2.0, "{d}");
    assert!(
        (d["grid_spacing_mm"][2].as_f64().unwrap() - 1.25).abs() < 1e-6,
        "{d}"
    );

    // dvh_metrics.csv and dvh.csv open with the choice and both UIDs.
    for f in ["dvh_metrics.csv", "dvh.csv", "dvh_constraints.csv"] {
        let csv = std::fs::read_to_string(out_dir.join(f)).unwrap();
        assert!(
            csv_header(&csv, "dose").starts_with("sum of 2 plans"),
            "{f}"
        );
        let doses: Vec<&str> = csv_header(&csv, "rtdose_uids").split(' ').collect();
        assert!(
            doses.contains(&c.primary_dose_uid.as_str()),
            "{f}: {doses:?}"
        );
        assert!(
            doses.contains(&c.boost.rtdose_uid.as_str()),
            "{f}: {doses:?}"
        );
        let plans: Vec<&str> = csv_header(&csv, "rtplan_uids").split(' ').collect();
        assert!(
            plans.contains(&c.boost.rtplan_uid.as_str()),
            "{f}: {plans:?}"
        );
        assert!(csv_header(&csv, "prescription").starts_with("60 Gy"), "{f}");
    }
    let csv = std::fs::read_to_string(out_dir.join("dvh_metrics.csv")).unwrap();
    let failures = compare(|roi, m| csv_metric(&csv, roi, "rtstruct", m));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `dvh.sum_plans: never` refuses to choose between the two plans' doses:
/// the command fails, names why, and writes nothing. `always` sums them as
/// `auto` does.
#[test]
fn sum_plans_never_fails_closed_and_always_sums() {
    let tmp = tempfile::tempdir().unwrap();
    let c = course(&tmp.path().join("in"), &BoostOptions::default());
    let settings = tmp.path().join("never.yaml");
    std::fs::write(&settings, "dvh:\n  sum_plans: never\n").unwrap();
    let out_dir = tmp.path().join("out");
    let out = dvh(
        &c,
        &[
            "--settings".as_ref(),
            settings.as_os_str(),
            "--out".as_ref(),
            out_dir.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(
            "no dose could be chosen: 2 plans have doses and dvh.sum_plans is never: no single dose to choose"
        ),
        "{stderr}"
    );
    // The reasons name each plan's dose (by the tail of its UID).
    for uid in [&c.primary_dose_uid, &c.boost.rtdose_uid] {
        let tail = &uid[uid.len() - 12..];
        assert!(stderr.contains(tail), "{tail} not in {stderr}");
    }
    assert!(!out_dir.join("dvh.json").exists());
    assert!(!out_dir.join("dvh_metrics.csv").exists());

    let always = tmp.path().join("always.yaml");
    std::fs::write(&always, "dvh:\n  sum_plans: always\n").unwrap();
    let out = ok(dvh(&c, &["--settings".as_ref(), always.as_os_str()]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["_dose"]["rtdose_uids"].as_array().unwrap().len(), 2);
    let failures = compare(|roi, m| v[roi][m].as_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A second plan with the primary's prescription and fractions is a
/// replan: only the newer is counted, whether it says so
/// (RTPlanRelationship PREDECESSOR) or not (`sum_plans: auto`).
#[test]
fn a_replan_from_the_command_line_is_not_double_counted() {
    for replaces_primary in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let replan = BoostOptions {
            rx_gy: 50.0,
            fractions: 25,
            dose_gy: 50.0,
            label: "REPLAN".into(),
            replaces_primary,
            file_stem: "replan".into(),
            ..BoostOptions::default()
        };
        let c = course(&tmp.path().join("in"), &replan);
        let out = ok(dvh(&c, &[]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dose = &v["_dose"];
        assert_eq!(
            dose["rtdose_uids"],
            serde_json::json!([c.boost.rtdose_uid]),
            "predecessor {replaces_primary}: {dose}"
        );
        assert_eq!(dose["prescriptions"][0]["dose_gy"], 50.0, "{dose}");
        assert_eq!(dose["prescriptions"].as_array().unwrap().len(), 1);
        // The replan alone: 50 Gy + 0.1 x over the PTV.
        let close = |roi: &str, m: &str, exact: f64| {
            let got = v[roi][m].as_f64().unwrap_or(f64::NAN);
            assert!(
                (got - exact).abs() <= (0.01 * exact).max(0.1),
                "predecessor {replaces_primary}: {roi} {m} {got} vs {exact}"
            );
        };
        close("PTV", "Dmean", 50.0);
        close("PTV", "Dmin", 50.0 - GX * R);
        close("PTV", "Dmax", 50.0 + GX * R);
        // The cylinder lies outside the replan's grid: with the primary
        // left out it has no dose at all.
        let cyl = &v["Cylinder"];
        assert_eq!(cyl["volume_in_dose_grid_cc"], 0.0, "{cyl}");
        assert!(cyl.get("Dmean").is_none(), "{cyl}");
    }
}

/// The course stage of `rtnode process` sums the same two plans.
#[test]
fn course_stage_sums_primary_and_boost() {
    let tmp = tempfile::tempdir().unwrap();
    let c = course(&tmp.path().join("in"), &BoostOptions::default());
    let cfg = tmp.path().join("rtnode.yaml");
    std::fs::write(&cfg, "pipeline:\n  max_attempts: 1\n").unwrap();
    let out = ok(rtnode()
        .arg("process")
        .arg(&c.dir)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("dvh=done"), "{stdout}");
    let courses: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("out/courses"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(courses.len(), 1, "one course: {courses:?}\n{stdout}");
    let v1 = courses[0].join("v1");
    let csv = std::fs::read_to_string(v1.join("dvh/dvh_metrics.csv")).unwrap();
    assert!(
        csv_header(&csv, "dose").starts_with("sum of 2 plans"),
        "{csv}"
    );
    let doses: Vec<&str> = csv_header(&csv, "rtdose_uids").split(' ').collect();
    assert!(doses.contains(&c.primary_dose_uid.as_str()), "{doses:?}");
    assert!(doses.contains(&c.boost.rtdose_uid.as_str()), "{doses:?}");
    assert!(
        csv_header(&csv, "prescription").starts_with("60 Gy"),
        "{csv}"
    );
    let failures = compare(|roi, m| csv_metric(&csv, roi, "rtstruct", m));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(v1.join("manifest.json")).unwrap()).unwrap();
    let summary = &manifest["stages"]["dvh"]["summary"];
    assert_eq!(
        summary["dose_uids"].as_array().unwrap().len(),
        2,
        "{summary}"
    );
}

/// With `dvh.sum_plans: never` in the node's config the course stage fails
/// closed with the reason, rather than picking one of the plans.
#[test]
fn course_stage_with_sum_plans_never_fails_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let c = course(&tmp.path().join("in"), &BoostOptions::default());
    let cfg = tmp.path().join("rtnode.yaml");
    std::fs::write(
        &cfg,
        "pipeline:\n  max_attempts: 1\ndvh:\n  sum_plans: never\n",
    )
    .unwrap();
    let out = rtnode()
        .arg("process")
        .arg(&c.dir)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "a failed stage fails the run: {stdout}"
    );
    assert!(stdout.contains("dvh=failed"), "{stdout}\n{stderr}");
    let course = std::fs::read_dir(tmp.path().join("out/courses"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let v1 = course.join("v1");
    assert!(!v1.join("dvh/dvh_metrics.csv").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(v1.join("manifest.json")).unwrap()).unwrap();
    let dvh = &manifest["stages"]["dvh"];
    assert_eq!(dvh["state"], "failed", "{dvh}");
    let error = dvh["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no dose could be chosen: 2 plans have doses and dvh.sum_plans is never"),
        "{dvh}"
    );
    // The reasons name both plans' doses (by the tail of their UIDs).
    for uid in [&c.primary_dose_uid, &c.boost.rtdose_uid] {
        assert!(error.contains(&uid[uid.len() - 12..]), "{uid}: {dvh}");
    }
}
