//! `rtnode dvh` and `rtnode synth --rt` from the command line.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn rtnode() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rtnode"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dicompyler")
        .join(name)
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dvh_json_on_the_dicompyler_case() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_json(
        rtnode()
            .arg("dvh")
            .arg("--rtstruct")
            .arg(fixture("rtss.dcm"))
            .arg("--rtdose")
            .arg(fixture("rtdose.dcm"))
            .arg("--rtplan")
            .arg(fixture("rtplan.dcm"))
            .arg("--out")
            .arg(dir.path())
            .arg("--json"),
    );
    let dose = &v["_dose"];
    assert_eq!(
        dose["rtdose_uids"][0],
        "1.2.246.352.71.7.320687012.47206.20090603085223"
    );
    assert_eq!(
        dose["rtplan_uids"][0],
        "1.2.246.352.71.5.320687012.24189.20090603083342"
    );
    assert_eq!(dose["description"], "PLAN dose");
    assert_eq!(dose["prescriptions"][0]["dose_gy"], 14.0);
    let heart = &v["Heart"];
    for name in [
        "volume_cc",
        "Dmin",
        "Dmean",
        "Dmax",
        "D99",
        "D98",
        "D95",
        "D50",
        "D5",
        "D2",
        "D1",
        "D0.03cc",
        "D0.1cc",
        "D1cc",
        "HI",
        "spread",
        "integral_dose_gycc",
        "Dmean_pctRx",
        "D95_pctRx",
        "V95%Rx",
        "V100%Rx",
        "V95%Rx_pct",
        "V1Gy",
        "V20Gy",
        "V60Gy",
        "V20Gy_pct",
    ] {
        assert!(heart.get(name).is_some(), "Heart lacks {name}: {heart}");
    }
    let f = |k: &str| heart[k].as_f64().unwrap();
    assert!((f("volume_cc") - 437.5).abs() < 0.03 * 437.5);
    assert!(
        f("Dmin") <= f("D95")
            && f("D95") <= f("D50")
            && f("D50") <= f("Dmean")
            && f("Dmean") <= f("Dmax")
    );
    assert!((f("Dmean_pctRx") - 100.0 * f("Dmean") / 14.0).abs() < 1e-9);
    assert!((f("spread") - (f("D2") - f("D98"))).abs() < 1e-9);
    assert!((f("HI") - f("spread") / f("D50")).abs() < 1e-9);
    assert!(
        (f("integral_dose_gycc") - f("Dmean") * f("volume_in_dose_grid_cc")).abs()
            < 1e-6 * f("integral_dose_gycc")
    );
    assert_eq!(f("V20Gy"), 0.0);
    // Areola has no contours: present with its volume, no dose metrics.
    assert_eq!(v["Areola"]["volume_cc"], 0.0);
    assert!(v["Areola"].get("Dmean").is_none());
    for f in [
        "dvh.csv",
        "dvh_metrics.csv",
        "dvh_constraints.csv",
        "dvh.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
}

#[test]
fn settings_constraints_and_derived_structures_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("dvh.yaml");
    std::fs::write(
        &settings,
        r#"
dvh:
  v_gy: [5, 10]
  constraints:
    - "Heart: Dmean < 2 Gy"
    - "Lt Lung: V5Gy < 5 %"
    - "Spinal*: Dmax < 45 Gy"
  derived:
    - name: Lung_minus_Breast
      op: subtraction
      sources: [Lt Lung, {roi: Breast, margin_mm: 5}]
    - name: Needs_missing
      op: union
      sources: [Heart, SpinalCord]
    - name: Partial_union
      op: union
      sources: [Heart, SpinalCord]
      missing: partial
"#,
    )
    .unwrap();
    let v = run_json(
        rtnode()
            .arg("dvh")
            .arg("--rtstruct")
            .arg(fixture("rtss.dcm"))
            .arg("--rtdose")
            .arg(fixture("rtdose.dcm"))
            .arg("--rtplan")
            .arg(fixture("rtplan.dcm"))
            .arg("--settings")
            .arg(&settings)
            .arg("--out")
            .arg(dir.path().join("out"))
            .arg("--json"),
    );
    assert!(v["Heart"].get("V5Gy").is_some() && v["Heart"].get("V20Gy").is_none());
    let lung = v["Lt Lung"]["volume_cc"].as_f64().unwrap();
    let derived = v["Lung_minus_Breast"]["volume_cc"].as_f64().unwrap();
    assert!(
        derived > 0.5 * lung && derived < lung,
        "{derived} of {lung}"
    );
    let heart = v["Heart"]["volume_cc"].as_f64().unwrap();
    let partial = v["Partial_union"]["volume_cc"].as_f64().unwrap();
    assert!((partial / heart - 1.0).abs() < 0.03, "{partial} vs {heart}");
    let csv = std::fs::read_to_string(dir.path().join("out/dvh_constraints.csv")).unwrap();
    assert!(csv.contains("Heart,Heart: Dmean < 2 Gy,Dmean,"), "{csv}");
    assert!(csv.contains(",pass"), "{csv}");
    assert!(csv.contains("no ROI matches"), "{csv}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/dvh.json")).unwrap())
            .unwrap();
    let rois = report["rois"].as_array().unwrap();
    let get = |n: &str| rois.iter().find(|r| r["name"] == n).unwrap();
    assert_eq!(get("Needs_missing")["status"], "skipped");
    assert_eq!(get("Partial_union")["status"], "partial");
    assert_eq!(get("Lung_minus_Breast")["source"]["kind"], "derived");
    assert_eq!(get("Heart")["source"]["kind"], "structure_set");
}

#[test]
fn synth_rt_course_has_analytic_dvh() {
    let dir = tempfile::tempdir().unwrap();
    let out = rtnode()
        .args(["synth", "--slices", "40", "--rows", "64", "--rt", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = run_json(
        rtnode()
            .arg("dvh")
            .arg("--rtstruct")
            .arg(dir.path().join("RS.dcm"))
            .arg("--rtdose")
            .arg(dir.path().join("RD.dcm"))
            .arg("--rtplan")
            .arg(dir.path().join("RP.dcm"))
            .arg("--json"),
    );
    assert_eq!(v["_dose"]["prescriptions"][0]["dose_gy"], 50.0);
    // D(z) = 50 Gy + 0.2 Gy/mm (z − zc); every shape is centred on zc
    // along z and ends on slab boundaries (rtnode::synth::rt). Tolerances
    // as in tests/dvh/analytic.rs: 1 % (or 0.1 Gy), volume 2 %.
    let close = |roi: &str, metric: &str, exact: f64| {
        let got = v[roi][metric].as_f64().unwrap_or(f64::NAN);
        let tol = if metric == "volume_cc" {
            0.02 * exact
        } else {
            (0.01 * exact).max(0.1)
        };
        assert!(
            (got - exact).abs() <= tol,
            "{roi} {metric}: {got} vs {exact}"
        );
    };
    let r = 20.0;
    close(
        "PTV",
        "volume_cc",
        4.0 / 3.0 * std::f64::consts::PI * r * r * r / 1000.0,
    );
    close("PTV", "Dmin", 50.0 - 0.2 * r);
    close("PTV", "Dmax", 50.0 + 0.2 * r);
    close("PTV", "Dmean", 50.0);
    close("PTV", "D50", 50.0);
    close("PTV", "Dmean_pctRx", 100.0);
    close("PTV", "V100%Rx_pct", 50.0);
    // A cylinder in a z gradient: uniform in dose from 46 to 54 Gy.
    close(
        "Cylinder",
        "volume_cc",
        std::f64::consts::PI * 225.0 * 2.0 * r / 1000.0,
    );
    close("Cylinder", "D95", 46.0 + 0.05 * 8.0);
    close("Cylinder", "D5", 54.0 - 0.05 * 8.0);
    // A cone's centroid is a quarter of its height above the base.
    close("Cone", "Dmean", 50.0 - 0.2 * (r - 2.0 * r / 4.0));
    close("BODY", "Dmean", 50.0);
}

/// Runs `rtnode process` on a synthetic course with `env` set; returns the
/// course's version folder.
fn process_course(dir: &std::path::Path, env: &[(&str, &str)]) -> std::path::PathBuf {
    let input = dir.join("in");
    let out = rtnode()
        .args(["synth", "--slices", "24", "--rows", "64", "--rt", "--out"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    // One attempt per stage, so that an injected failure is final at once.
    let cfg = dir.join("rtnode.yaml");
    std::fs::write(&cfg, "pipeline:\n  max_attempts: 1\n").unwrap();
    let mut cmd = rtnode();
    cmd.arg("process")
        .arg(&input)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--config")
        .arg(&cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("dvh=done"), "{stdout}");
    let courses = dir.join("out/courses");
    let course = std::fs::read_dir(&courses)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    course.join("v1")
}

/// The auto-segmentation's ROIs join the plan's in the course DVH, each
/// row naming its source; the plan's ROIs keep their names and values.
#[test]
fn course_dvh_has_the_auto_segmented_rois_with_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = process_course(dir.path(), &[]);
    let csv = std::fs::read_to_string(v1.join("dvh/dvh_metrics.csv")).unwrap();
    let seg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v1.join("segmentation/labels.json")).unwrap())
            .unwrap();
    let auto_uid = csv
        .lines()
        .find_map(|l| l.strip_prefix("# autoseg_rtstruct_uids: "))
        .unwrap_or_else(|| panic!("no autoseg line in\n{csv}"));
    let rs = dicom_object::open_file(v1.join("segmentation/rtstruct.dcm")).unwrap();
    assert_eq!(
        rs.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0'),
        auto_uid
    );
    let value = |roi: &str, source: &str, metric: &str| -> f64 {
        rtnode::csv_format::records(&csv)
            .unwrap()
            .into_iter()
            .find(|f| f.len() >= 7 && f[0] == roi && f[2] == source && f[4] == metric)
            .unwrap_or_else(|| panic!("no {roi} {source} {metric} in\n{csv}"))[5]
            .parse()
            .unwrap()
    };
    // The body contour's volume on the dose grid agrees with its voxel
    // count on the CT grid within 2 % (contours rasterised again).
    let labelled = seg["rois"][0]["volume_cc"].as_f64().unwrap();
    let in_dvh = value("External", "autoseg:rtnode body contour", "volume_cc");
    assert!(
        (in_dvh - labelled).abs() <= 0.02 * labelled,
        "External {in_dvh} cc in the DVH vs {labelled} cc labelled"
    );
    // The plan's own BODY is still there, from the plan's structure set.
    assert!(value("BODY", "rtstruct", "volume_cc") > 0.0);
}

/// A segmentation that fails does not take the DVH with it: the DVH uses
/// the auto-segmentation only when there is one, and says which.
#[test]
fn course_dvh_runs_when_segmentation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = process_course(dir.path(), &[("RTNODE_FAULTS", "segmentation:fail=5")]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v1.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["stages"]["segmentation"]["state"], "failed");
    let dvh = &manifest["stages"]["dvh"];
    assert_eq!(dvh["state"], "done", "{dvh}");
    assert_eq!(dvh["summary"]["auto_segmentation"]["used"], false, "{dvh}");
    let csv = std::fs::read_to_string(v1.join("dvh/dvh_metrics.csv")).unwrap();
    assert!(!csv.contains("autoseg"), "{csv}");
    assert!(csv.contains("\nBODY,1,rtstruct,ok,volume_cc,"), "{csv}");
}

/// A synthetic RS/RP/RD whose RTDOSE is re-labelled with `dcmodify` (dcmtk)
/// as DoseSummationType `summation` (the grid itself is unchanged: 50 Gy at
/// the shapes' centre, 0.2 Gy/mm along z).
fn synth_with_summation(dir: &std::path::Path, summation: &str) -> PathBuf {
    let out = rtnode()
        .args(["synth", "--slices", "40", "--rows", "64", "--rt", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rd = dir.join("RD.dcm");
    let st = Command::new("dcmodify")
        .args(["-nb", "-m"])
        .arg(format!("(3004,000A)={summation}"))
        .arg(&rd)
        .status()
        .expect("dcmodify (dcmtk) runs");
    assert!(st.success());
    rd
}

#[test]
fn a_lone_fraction_dose_without_its_plan_is_used_as_stored_and_said_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let rd = synth_with_summation(dir.path(), "FRACTION");
    let settings = dir.path().join("dvh.yaml");
    std::fs::write(
        &settings,
        "dvh:\n  prescription: 50\n  constraints:\n    - \"PTV: Dmax < 60 Gy\"\n    - \"PTV: V40Gy > 90 %\"\n    - \"PTV: D95 >= 95 %Rx\"\n    - \"PTV: volume_cc > 1\"\n    - \"PTV: HI < 1\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = rtnode()
        .arg("dvh")
        .arg("--rtstruct")
        .arg(dir.path().join("RS.dcm"))
        .arg("--rtdose")
        .arg(&rd)
        .arg("--settings")
        .arg(&settings)
        .arg("--out")
        .arg(&out_dir)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    const SAID: &str = "FRACTION dose as stored; plan not available; not scaled";
    assert!(stderr.contains(SAID), "stderr: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["_dose"]["scope"], "fraction_as_stored");
    assert_eq!(v["_dose"]["description"], SAID);
    assert_eq!(v["_dose"]["prescriptions"].as_array().unwrap().len(), 0);
    // The grid as stored: 50 Gy at the PTV's centre (tolerance as in
    // synth_rt_course_has_analytic_dvh: 1 %), not multiplied.
    let dmean = v["PTV"]["Dmean"].as_f64().unwrap();
    assert!((dmean - 50.0).abs() <= 0.5, "Dmean {dmean}");
    // Dose-level and prescription metrics are not evaluated.
    for absent in ["V40Gy", "V40Gy_pct", "Dmean_pctRx", "V95%Rx"] {
        assert!(v["PTV"].get(absent).is_none(), "{absent} was evaluated");
    }
    assert!(v["_dose"]["not_evaluated"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "V40Gy"));

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("dvh.json")).unwrap()).unwrap();
    assert_eq!(report["dose"]["scope"], "fraction_as_stored");
    assert_eq!(report["not_evaluated"]["reason"], SAID);
    assert!(report["dose"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains(SAID)));
    for csv in ["dvh.csv", "dvh_metrics.csv", "dvh_constraints.csv"] {
        let text = std::fs::read_to_string(out_dir.join(csv)).unwrap();
        let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        assert!(
            header.iter().any(|l| l.contains(SAID)),
            "{csv} header: {header:?}"
        );
    }
    let metrics = std::fs::read_to_string(out_dir.join("dvh_metrics.csv")).unwrap();
    assert!(
        metrics.contains("PTV,") && metrics.contains(",not_evaluated,V40Gy,,cc"),
        "{metrics}"
    );
    // Constraints: volumes and the scale-free HI are judged; limits in Gy,
    // on VxGy or relative to a prescription are not.
    let c = report["constraints"].as_array().unwrap();
    let verdict = |text: &str| {
        let r = c.iter().find(|r| r["constraint"] == text).unwrap();
        (r["pass"].clone(), r["reason"].clone())
    };
    for text in [
        "PTV: Dmax < 60 Gy",
        "PTV: V40Gy > 90 %",
        "PTV: D95 >= 95 %Rx",
    ] {
        let (pass, reason) = verdict(text);
        assert!(pass.is_null(), "{text} was judged: {pass}");
        assert_eq!(reason, SAID, "{text}");
    }
    assert_eq!(verdict("PTV: volume_cc > 1").0, true);
    assert_eq!(verdict("PTV: HI < 1").0, true);
    let constraints_csv = std::fs::read_to_string(out_dir.join("dvh_constraints.csv")).unwrap();
    assert!(
        constraints_csv.contains(&format!("not evaluated: {SAID}")),
        "{constraints_csv}"
    );
}

#[test]
fn fractions_scale_a_lone_fraction_dose_and_are_refused_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let rd = synth_with_summation(dir.path(), "FRACTION");
    let rs = dir.path().join("RS.dcm");
    let v = run_json(
        rtnode()
            .arg("dvh")
            .arg("--rtstruct")
            .arg(&rs)
            .arg("--rtdose")
            .arg(&rd)
            .args(["--fractions", "5", "--json"]),
    );
    assert_eq!(v["_dose"]["scope"], "total");
    assert!(
        v["_dose"]["description"]
            .as_str()
            .unwrap()
            .contains("× 5 (--fractions"),
        "{}",
        v["_dose"]
    );
    let dmean = v["PTV"]["Dmean"].as_f64().unwrap();
    assert!((dmean - 250.0).abs() <= 2.5, "Dmean {dmean}");
    // V-metrics are evaluated again on the total: the whole PTV gets more
    // than 60 Gy × … (the default v_gy list ends at 60 Gy).
    let v60 = v["PTV"]["V60Gy_pct"].as_f64().unwrap();
    assert!((v60 - 100.0).abs() < 1e-6, "V60Gy_pct {v60}");

    // With the plan given, its NumberOfFractionsPlanned decides: --fractions
    // is refused rather than silently overriding it.
    let out = rtnode()
        .arg("dvh")
        .arg("--rtstruct")
        .arg(&rs)
        .arg("--rtdose")
        .arg(&rd)
        .arg("--rtplan")
        .arg(dir.path().join("RP.dcm"))
        .args(["--fractions", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--fractions applies only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the plan, the plan's fractions scale it (as the course stage does).
    let v = run_json(
        rtnode()
            .arg("dvh")
            .arg("--rtstruct")
            .arg(&rs)
            .arg("--rtdose")
            .arg(&rd)
            .arg("--rtplan")
            .arg(dir.path().join("RP.dcm"))
            .arg("--json"),
    );
    assert_eq!(v["_dose"]["scope"], "total");
    assert!(v["_dose"]["description"]
        .as_str()
        .unwrap()
        .starts_with("FRACTION dose ×"));
}

#[test]
fn a_lone_beam_dose_without_its_plan_stays_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rd = synth_with_summation(dir.path(), "BEAM");
    for extra in [&[][..], &["--fractions", "5"][..]] {
        let out = rtnode()
            .arg("dvh")
            .arg("--rtstruct")
            .arg(dir.path().join("RS.dcm"))
            .arg("--rtdose")
            .arg(&rd)
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a BEAM dose was used: {stderr}");
        assert!(
            stderr.contains("one beam's share is not a plan dose"),
            "{stderr}"
        );
    }
}
