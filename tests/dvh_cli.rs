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
