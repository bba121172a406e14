//! The radiomics worker processes under failure: a worker killed with
//! SIGKILL mid-task, one that exceeds its memory limit, one that hangs
//! past the timeout and one that answers garbage each fail only their ROI
//! (after the configured attempts, each on a fresh worker); the other ROIs
//! complete. Also the whole stage through `rtnode process`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ndarray::Array3;
use rtnode::radiomics::pool::{run, PoolOptions, RoiOutcome};
use rtnode::radiomics::Task;

const BIN: &str = env!("CARGO_BIN_EXE_rtnode");

fn sphere(name: &str, r: f64) -> Task {
    let n = 24;
    let c = (n as f64 - 1.0) / 2.0;
    let image = Array3::from_shape_fn((n, n, n), |(z, y, x)| {
        ((z * 7 + y * 3 + x * 5) % 50) as f32 + 10.0 * (x as f32)
    });
    let mask = Array3::from_shape_fn((n, n, n), |(z, y, x)| {
        let d = ((z as f64 - c).powi(2) + (y as f64 - c).powi(2) + (x as f64 - c).powi(2)).sqrt();
        d <= r
    });
    Task::whole(
        name,
        image,
        mask,
        [2.0, 1.0, 1.0],
        "setting: {binWidth: 10}",
    )
}

fn options(fault: &str) -> PoolOptions {
    PoolOptions {
        exe: PathBuf::from(BIN),
        workers: 2,
        threads_per_worker: 1,
        memory_mb: Some(512),
        timeout: Duration::from_secs(3),
        attempts: 2,
        backoff: Duration::from_millis(50),
        env: vec![("RTNODE_RADIOMICS_FAULT".into(), fault.into())],
    }
}

fn outcome_of<'a>(out: &'a [(String, RoiOutcome)], roi: &str) -> &'a RoiOutcome {
    &out.iter().find(|(n, _)| n == roi).unwrap().1
}

fn check_isolated(fault: &str, expect_in_reason: &str) {
    let tasks = vec![sphere("A", 6.0), sphere("BAD", 7.0), sphere("C", 8.0)];
    let started = Instant::now();
    let out = run(tasks, &options(&format!("BAD:{fault}")), &|_, _| {});
    assert_eq!(out.len(), 3);
    for ok in ["A", "C"] {
        match outcome_of(&out, ok) {
            RoiOutcome::Done(e) => {
                assert!(e.features.len() > 50, "{ok}: {} features", e.features.len());
                let voxels = e
                    .diagnostics
                    .iter()
                    .find(|(k, _)| k == "diagnostics_Mask-original_VoxelNum")
                    .unwrap();
                assert!(voxels.1.parse::<usize>().unwrap() > 500);
            }
            other => panic!("{fault}: ROI {ok} should complete, got {other:?}"),
        }
    }
    match outcome_of(&out, "BAD") {
        RoiOutcome::Failed { reason, attempts } => {
            assert_eq!(*attempts, 2, "{reason}");
            assert!(reason.contains(expect_in_reason), "{fault}: {reason}");
        }
        other => panic!("{fault}: the faulty ROI should fail, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_worker_killed_mid_task_fails_only_its_roi() {
    check_isolated("kill", "SIGKILL");
}

#[test]
fn a_worker_over_its_memory_limit_fails_only_its_roi() {
    // The allocation fails under RLIMIT_AS; Rust aborts the worker.
    check_isolated("oom", "SIGABRT");
}

#[test]
fn a_hung_worker_is_killed_at_the_timeout() {
    check_isolated("hang", "timed out after 3 s");
}

#[test]
fn a_malformed_message_fails_only_its_roi() {
    check_isolated("garbage", "malformed message");
}

#[test]
fn an_roi_the_engine_refuses_fails_at_once_with_the_reason() {
    let mut flat = sphere("FLAT", 5.0);
    // A single slice: pyradiomics' minimumROIDimensions (2) is met, but
    // one voxel is not.
    flat.mask.fill(false);
    flat.mask[[3, 3, 3]] = true;
    let out = run(vec![flat, sphere("OK", 6.0)], &options(""), &|_, _| {});
    match outcome_of(&out, "FLAT") {
        RoiOutcome::Failed { reason, attempts } => {
            assert_eq!(*attempts, 1, "deterministic failures are not retried");
            assert!(reason.contains("minimumROIDimensions"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(outcome_of(&out, "OK"), RoiOutcome::Done(_)));
}

#[test]
fn the_stage_records_a_crashed_roi_and_completes_the_course() {
    let dir = tempfile_dir("stage");
    let data = dir.join("in");
    let st = std::process::Command::new(BIN)
        .args(["synth", "--out"])
        .arg(&data)
        .args(["--slices", "40", "--rows", "128", "--rt"])
        .status()
        .unwrap();
    assert!(st.success());
    // One slice marked as lossy-compressed: every row must say so.
    let slice = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("CT_"))
        .unwrap();
    let mut obj = dicom_object::open_file(&slice).unwrap();
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::LOSSY_IMAGE_COMPRESSION,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("01"),
    ));
    obj.write_to_file(&slice).unwrap();
    let out = dir.join("out");
    let cfg = dir.join("rtnode.yaml");
    std::fs::write(
        &cfg,
        "radiomics:\n  attempts: 2\n  backoff_ms: 50\n  timeout_s: 60\n  workers: 2\n",
    )
    .unwrap();
    let o = std::process::Command::new(BIN)
        .arg("process")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&cfg)
        .env("RTNODE_RADIOMICS_FAULT", "Cylinder:kill")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let csv = find(&out, "radiomics.csv").unwrap_or_else(|| panic!("no radiomics.csv: {log}"));
    let text = std::fs::read_to_string(&csv).unwrap();
    let records = rtnode::csv_format::records(&text).unwrap();
    let header = &records[0];
    let status = header.iter().position(|h| *h == "status").unwrap();
    let row = |roi: &str| -> Vec<String> {
        records
            .iter()
            .find(|f| f[0] == roi)
            .unwrap_or_else(|| panic!("no row for {roi} in {text}"))
            .clone()
    };
    assert_eq!(row("Cylinder")[status], "failed");
    assert!(row("Cylinder")[status + 1].contains("SIGKILL"));
    for ok in ["PTV", "Sphere_small", "Cone"] {
        assert_eq!(row(ok)[status], "done", "{ok}");
    }
    assert_eq!(
        row("BODY")[status],
        "skipped",
        "the body is skipped by name"
    );
    assert!(header.iter().any(|h| h == "original_glcm_JointEnergy"));
    let lossy = header
        .iter()
        .position(|h| *h == "diagnostics_Image-original_LossyImageCompression")
        .unwrap();
    assert_eq!(row("PTV")[lossy], "YES (1 slices)");
    assert!(header.iter().any(|h| h == "original_shape_MeshVolume"));
}

fn tempfile_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rtnode-radiomics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn find(dir: &std::path::Path, file: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if let Some(f) = find(&p, file) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == file) {
            return Some(p);
        }
    }
    None
}
