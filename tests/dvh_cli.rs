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
    // as in tests/dvh_analytic.rs: 1 % (or 0.1 Gy), volume 2 %.
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
        csv.lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
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
