//! Courses over the live node: arrival in any order across associations,
//! completeness, re-runs of only what a revision touches, held patients,
//! a crash in the middle of a stage, and retries — watched through
//! `rtnode status --json` as an operator would.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const PIPELINE: &str = "pipeline:\n  stable_age_s: 1\n  retry_backoff_s: 1\n  workers: 2\n";

fn opts() -> ServerOptions {
    ServerOptions {
        extra_yaml: PIPELINE.into(),
        ..ServerOptions::default()
    }
}

fn course(
    v: &serde_json::Value,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<&serde_json::Value> {
    v["courses"].as_array()?.iter().find(|c| pred(c))
}

fn done(c: &serde_json::Value) -> bool {
    c["state"] == "done"
}

fn manifest(data_dir: &Path, id: &str, v: u32) -> serde_json::Value {
    let p = data_dir
        .join("courses")
        .join(id)
        .join(format!("v{v}"))
        .join("manifest.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

#[test]
fn course_arrives_out_of_order_then_a_revision_reruns_only_what_depends_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 12, 64);
    let ss1 = dir.path().join("ss1.dcm");
    write_rtstruct(&ss1, &ct, "1.2.826.0.1.3680043.10.1", None);
    let s = Server::start(dir.path(), &opts());

    // RTSTRUCT first, in its own association: the course waits for its CT.
    send_ok(s.port, std::slice::from_ref(&ss1));
    let v = wait_status(&s.data_dir, 20, "a waiting course", |v| {
        course(v, |_| true).is_some()
    });
    let c = course(&v, |_| true).unwrap();
    assert_eq!(c["state"], "incomplete");
    assert!(
        c["missing"][0]
            .as_str()
            .unwrap()
            .starts_with("planning image series"),
        "{c}"
    );

    // Then the CT over two more associations.
    send_ok(s.port, &ct[..6]);
    send_ok(s.port, &ct[6..]);
    let v = wait_status(&s.data_dir, 60, "course done", |v| {
        course(v, done).is_some()
    });
    let c = course(&v, done).unwrap();
    let id = c["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("RTNODE-PHANTOM-001-"));
    assert_eq!(c["complete"], true);
    assert_eq!(c["stages"]["organize"], "done");
    assert_eq!(c["stages"]["qc"], "done");
    assert_eq!(c["version"], 1);
    assert_eq!(v["stage_runs"]["organize"], 1);
    let qc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir.join("courses").join(&id).join("v1/qc/qc.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(qc["verdict"], "WARNING", "no plan or dose yet: {qc}");
    assert!(s
        .data_dir
        .join("courses")
        .join(&id)
        .join("v1/organize/volume.nrrd")
        .exists());

    // A revised RTSTRUCT a day later: a new version; organize is reused.
    let ss2 = dir.path().join("ss2.dcm");
    write_rtstruct(&ss2, &ct, "1.2.826.0.1.3680043.10.2", None);
    send_ok(s.port, std::slice::from_ref(&ss2));
    let v = wait_status(&s.data_dir, 60, "version 2 done", |v| {
        course(v, |c| c["version"] == 2 && done(c)).is_some()
    });
    assert_eq!(
        v["stage_runs"]["organize"], 1,
        "organize must not run again"
    );
    assert_eq!(
        v["stage_runs"]["segmentation"], 1,
        "segmentation reads only the CT"
    );
    assert_eq!(
        v["stage_runs"]["qc"], 2,
        "qc reads the structure set, so it runs again"
    );
    let m2 = manifest(&s.data_dir, &id, 2);
    assert_eq!(m2["current_structure_set"], "1.2.826.0.1.3680043.10.2");
    assert_eq!(m2["stages"]["organize"]["reused_from"], "v1");
    assert!(m2["stages"]["qc"]["reused_from"].is_null());
    // Old versions are kept, and the reused output is really there.
    assert!(s
        .data_dir
        .join("courses")
        .join(&id)
        .join("v1/qc/qc.json")
        .exists());
    assert!(s
        .data_dir
        .join("courses")
        .join(&id)
        .join("v2/organize/volume.nrrd")
        .exists());

    // The same RTSTRUCT again (plain duplicate), and our own
    // auto-segmentation RTSTRUCT coming back as if through a PACS: nothing
    // re-opens the course.
    send_ok(s.port, std::slice::from_ref(&ss2));
    let ours = s
        .data_dir
        .join("courses")
        .join(&id)
        .join("v2/segmentation/rtstruct.dcm");
    assert!(ours.exists());
    send_ok(s.port, &[ours]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let v = s.status_json();
    let c = course(&v, |_| true).unwrap();
    assert_eq!(c["version"], 2);
    assert_eq!(c["objects"]["rtstruct"], 2, "ours is not a member");
    assert_eq!(
        v["instances"], 15,
        "12 CT + 2 plan RTSTRUCTs + ours, all stored"
    );
    s.stop();
}

#[test]
fn missing_slice_never_triggers_and_status_names_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut ct = synth(&dir.path().join("ct"), 10, 64);
    let ss = dir.path().join("ss.dcm");
    write_rtstruct(&ss, &ct, "1.2.826.0.1.3680043.10.3", None);
    ct.remove(4);
    let s = Server::start(dir.path(), &opts());
    send_ok(s.port, &ct);
    send_ok(s.port, &[ss]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let v = s.status_json();
    let c = course(&v, |_| true).unwrap();
    assert_eq!(c["state"], "incomplete");
    assert_eq!(c["complete"], false);
    let missing = c["missing"][0].as_str().unwrap();
    assert!(
        missing.contains("gap: 1 slice(s) missing between 7.50 mm and 12.50 mm"),
        "{missing}"
    );
    assert!(c["stages"].as_object().unwrap().is_empty(), "nothing ran");
    let text = Command::new(BIN)
        .args(["status", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("missing: a complete image series (gap"));
    s.stop();
}

#[test]
fn two_courses_of_one_patient_and_a_patient_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let ct1 = synth(&dir.path().join("ct1"), 6, 64);
    let ct2 = synth(&dir.path().join("ct2"), 6, 64);
    let ss1 = dir.path().join("ss1.dcm");
    let ss2 = dir.path().join("ss2.dcm");
    write_rtstruct(&ss1, &ct1, "1.2.826.0.1.3680043.10.11", None);
    // The second structure set claims another patient.
    write_rtstruct(
        &ss2,
        &ct2,
        "1.2.826.0.1.3680043.10.12",
        Some("SOMEONE-ELSE"),
    );
    let s = Server::start(dir.path(), &opts());
    let mut all: Vec<PathBuf> = ct1.clone();
    all.extend(ct2.clone());
    all.push(ss1);
    all.push(ss2);
    send_ok(s.port, &all);
    let v = wait_status(&s.data_dir, 60, "one done, one held", |v| {
        course(v, done).is_some() && course(v, |c| c["state"] == "held").is_some()
    });
    let courses = v["courses"].as_array().unwrap();
    assert_eq!(courses.len(), 2);
    assert_ne!(courses[0]["id"], courses[1]["id"]);
    let held = course(&v, |c| c["state"] == "held").unwrap();
    let reason = held["held"].as_str().unwrap();
    assert!(
        reason.contains("SOMEONE-ELSE") && reason.contains("RTNODE-PHANTOM-001"),
        "{reason}"
    );
    assert!(
        held["stages"].as_object().unwrap().is_empty(),
        "a held course never runs"
    );
    s.stop();
}

#[test]
fn kill_9_mid_stage_then_restart_completes_without_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 8, 64);
    let ss = dir.path().join("ss.dcm");
    write_rtstruct(&ss, &ct, "1.2.826.0.1.3680043.10.21", None);
    let slow = ServerOptions {
        env: vec![("RTNODE_FAULTS".into(), "organize:delay_ms=4000".into())],
        ..opts()
    };
    let s = Server::start(dir.path(), &slow);
    let mut all = ct.clone();
    all.push(ss);
    send_ok(s.port, &all);
    let v = wait_status(&s.data_dir, 60, "organize running", |v| {
        course(v, |c| c["stages"]["organize"] == "running").is_some()
    });
    let id = course(&v, |_| true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vdir = s.data_dir.join("courses").join(&id).join("v1");
    let partial: Vec<_> = std::fs::read_dir(&vdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-organize"))
        .collect();
    assert_eq!(partial.len(), 1, "the run writes into a temporary folder");
    s.kill9();

    let s = Server::start(dir.path(), &opts());
    let v = wait_status(&s.data_dir, 60, "course done after restart", |v| {
        course(v, done).is_some()
    });
    let c = course(&v, done).unwrap();
    assert_eq!(c["version"], 1, "no duplicate version");
    let organize = c["stage_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["stage"] == "organize")
        .unwrap();
    assert_eq!(organize["attempts"], 2, "{organize}");
    let names: Vec<String> = std::fs::read_dir(&vdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
    assert!(s.log_text().contains("stage was interrupted"));
    let vol = rtnode::volume::Volume::read_nrrd(&vdir.join("organize/volume.nrrd")).unwrap();
    assert_eq!(vol.data.dim(), (8, 64, 64));
    assert_eq!(
        s.data_dir
            .join("courses")
            .join(&id)
            .read_dir()
            .unwrap()
            .count(),
        1
    );
    s.stop();
}

#[test]
fn a_failing_stage_is_retried_and_its_error_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 6, 64);
    let ss = dir.path().join("ss.dcm");
    write_rtstruct(&ss, &ct, "1.2.826.0.1.3680043.10.31", None);
    let flaky = ServerOptions {
        env: vec![("RTNODE_FAULTS".into(), "qc:fail=1".into())],
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  retry_backoff_s: 3\n".into(),
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &flaky);
    let mut all = ct.clone();
    all.push(ss);
    send_ok(s.port, &all);
    let v = wait_status(&s.data_dir, 60, "qc failed once", |v| {
        v["recent_failures"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    });
    let f = &v["recent_failures"][0];
    assert_eq!(f["stage"], "qc");
    assert!(f["error"]
        .as_str()
        .unwrap()
        .contains("injected failure of qc"));
    let text = Command::new(BIN)
        .args(["status", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("injected failure of qc"));
    let v = wait_status(&s.data_dir, 60, "qc done on retry", |v| {
        course(v, done).is_some()
    });
    let c = course(&v, done).unwrap();
    let qc = c["stage_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["stage"] == "qc")
        .unwrap();
    assert_eq!(qc["attempts"], 2);
    assert!(
        qc["error"].as_str().unwrap().contains("injected"),
        "the last error stays on record"
    );
    s.stop();
}

#[test]
fn process_runs_a_folder_and_skips_what_has_no_inputs() {
    let dir = tempfile::tempdir().unwrap();
    synth(&dir.path().join("in"), 8, 64);
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .arg("process")
        .arg(dir.path().join("in"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("organize=done")
            && stdout.contains("segmentation=done")
            && stdout.contains("qc=done"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("imported 8/8"),
        "progress on stderr"
    );
    let v = status_json(&out);
    assert_eq!(v["courses"][0]["state"], "done");

    // A CT with a missing slice: organize is skipped with the reason, qc
    // runs and fails the course's image checks; the exit status says so.
    let bad = dir.path().join("bad");
    let files = synth(&bad, 8, 64);
    std::fs::remove_file(&files[3]).unwrap();
    let o = Command::new(BIN)
        .arg("process")
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("organize skipped: image series incomplete: gap"),
        "{stdout}"
    );
    assert!(stdout.contains("qc=done"), "{stdout}");
}

#[test]
fn a_revised_rtstruct_gives_a_new_dvh_version_that_cites_it() {
    let dir = tempfile::tempdir().unwrap();
    let course_dir = dir.path().join("course");
    let out = Command::new(BIN)
        .args(["synth", "--rt", "--slices", "24", "--rows", "96", "--out"])
        .arg(&course_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&course_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let full = ServerOptions {
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  trigger: full\n".into(),
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &full);
    send_ok(s.port, &files);
    let v = wait_status(&s.data_dir, 120, "course done", |v| {
        course(v, done).is_some()
    });
    let c = course(&v, done).unwrap();
    assert_eq!(c["stages"]["dvh"], "done", "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let dvh1: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir.join("courses").join(&id).join("v1/dvh/dvh.json")).unwrap(),
    )
    .unwrap();
    let original = dvh1["structure_set"]["sop_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();

    // The planning system re-sends the structure set, revised (new UID).
    let revised = dir.path().join("RS-revised.dcm");
    let mut obj = dicom_object::open_file(course_dir.join("RS.dcm")).unwrap();
    let new_uid = "1.2.826.0.1.3680043.10.99";
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from(new_uid),
    ));
    obj.meta_mut().media_storage_sop_instance_uid = new_uid.into();
    obj.meta_mut().update_information_group_length();
    obj.write_to_file(&revised).unwrap();
    send_ok(s.port, &[revised]);
    let v = wait_status(&s.data_dir, 120, "version 2 done", |v| {
        course(v, |c| c["version"] == 2 && done(c)).is_some()
    });
    assert_eq!(v["stage_runs"]["dvh"], 2);
    assert_eq!(v["stage_runs"]["organize"], 1);
    assert_eq!(v["stage_runs"]["segmentation"], 1);
    let dvh2: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir.join("courses").join(&id).join("v2/dvh/dvh.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dvh2["structure_set"]["sop_instance_uid"], new_uid);
    assert_ne!(original, new_uid);
    // The old version is kept as it was.
    assert_eq!(dvh1["structure_set"]["sop_instance_uid"], original.as_str());
    s.stop();
}

#[test]
fn dvh_settings_in_the_node_config_reach_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let out = Command::new(BIN)
        .args(["synth", "--rt", "--slices", "24", "--rows", "96", "--out"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg = dir.path().join("rtnode.yaml");
    std::fs::write(
        &cfg,
        "dvh:\n  constraints: [\"PTV: Dmax < 60 Gy\", \"BODY: Dmax < 45 Gy\"]\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .arg("process")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.contains("dvh=done"), "{stdout}");
    let v = status_json(&dir.path().join("out"));
    let id = v["courses"][0]["id"].as_str().unwrap();
    let csv = std::fs::read_to_string(
        dir.path()
            .join("out/courses")
            .join(id)
            .join("v1/dvh/dvh_constraints.csv"),
    )
    .unwrap();
    assert!(csv.contains("PTV,PTV: Dmax < 60 Gy,Dmax,"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("PTV,") && l.ends_with(",pass")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("BODY,") && l.ends_with(",fail")),
        "{csv}"
    );
}

/// Removes ImageType (0008,0008) from each file with dcmtk's dcmodify.
fn strip_image_type(files: &[PathBuf]) {
    let mut cmd = Command::new(dcmtk("dcmodify"));
    cmd.args(["-nb", "-ea", "(0008,0008)"]).args(files);
    let st = cmd.status().unwrap();
    assert!(st.success());
}

/// A CT series without ImageType (Type 1, yet absent from some exports):
/// consistent, it stands as a course with a note saying what was assumed;
/// with a slice missing, it forms none and status says why, in JSON and text.
#[test]
fn ct_without_image_type_forms_a_course_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let good = synth(&dir.path().join("good"), 8, 64);
    strip_image_type(&good);
    let mut gappy = synth(&dir.path().join("gappy"), 8, 64);
    strip_image_type(&gappy);
    gappy.remove(3);
    let s = Server::start(
        dir.path(),
        &ServerOptions {
            extra_yaml: format!("{PIPELINE}  trigger: ct\n"),
            ..ServerOptions::default()
        },
    );
    send_ok(s.port, &good);
    send_ok(s.port, &gappy);
    // A tick may assemble the gappy series while its last instances are
    // still arriving: wait for all seven of them.
    let v = wait_status(&s.data_dir, 30, "a course and an unassembled series", |v| {
        v["courses"].as_array().is_some_and(|c| c.len() == 1)
            && v["unassembled"].as_array().is_some_and(|u| u.len() == 1)
            && v["unassembled"][0]["instances"] == 7
    });
    let c = course(&v, |_| true).unwrap();
    assert!(
        c["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("no ImageType")),
        "{c}"
    );
    let u = &v["unassembled"][0];
    assert_eq!(u["instances"], 7);
    let reason = u["reason"].as_str().unwrap();
    assert!(
        reason.contains("no ImageType") && reason.contains("gap"),
        "{reason}"
    );
    let text = Command::new(BIN)
        .args(["status", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("series forming no course: 1"), "{text}");
    assert!(text.contains("no ImageType"), "{text}");
    // The stopped node's databases say the same.
    let data_dir = s.data_dir.clone();
    s.stop();
    let v = status_json(&data_dir);
    assert_eq!(v["server_state"], "stopped");
    assert_eq!(v["unassembled"].as_array().map(Vec::len), Some(1));
}

/// A consistent start of a series forms a course; when the rest arrives
/// and shows a gap, that course (never processed) is dissolved and the
/// series is listed as forming none, instead of a stale course staying.
#[test]
fn a_course_whose_series_later_shows_a_gap_is_dissolved() {
    let dir = tempfile::tempdir().unwrap();
    let mut gappy = synth(&dir.path().join("gappy"), 8, 64);
    strip_image_type(&gappy);
    gappy.remove(3);
    let s = Server::start(
        dir.path(),
        &ServerOptions {
            // Long enough that the partial course is never processed.
            extra_yaml: "pipeline:\n  stable_age_s: 600\n  trigger: ct\n".into(),
            ..ServerOptions::default()
        },
    );
    send_ok(s.port, &gappy[..3]);
    wait_status(&s.data_dir, 30, "a course from the first slices", |v| {
        v["courses"].as_array().is_some_and(|c| c.len() == 1)
    });
    send_ok(s.port, &gappy[3..]);
    let v = wait_status(&s.data_dir, 30, "the course dissolved", |v| {
        v["courses"].as_array().is_some_and(|c| c.is_empty())
            && v["unassembled"][0]["instances"] == 7
    });
    let reason = v["unassembled"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("gap"), "{reason}");
    // And it stays so after a restart (the dissolution is durable).
    let data_dir = s.data_dir.clone();
    s.stop();
    let v = status_json(&data_dir);
    assert_eq!(v["courses"].as_array().map(Vec::len), Some(0), "{v}");
}

/// `rtnode process` lists every series that formed no course, with why.
#[test]
fn process_names_every_series_that_forms_no_course() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let good = synth(&input.join("good"), 6, 64);
    strip_image_type(&good);
    let mut gappy = synth(&input.join("gappy"), 6, 64);
    strip_image_type(&gappy);
    std::fs::remove_file(gappy.remove(2)).unwrap();
    let cfg = dir.path().join("rtnode.yaml");
    std::fs::write(&cfg, "pipeline:\n  trigger: ct\n").unwrap();
    let out = Command::new(BIN)
        .arg("process")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(", 1 course(s),"), "{stdout}");
    assert!(stdout.contains("note: CT series"), "{stdout}");
    assert!(stdout.contains("series forming no course: 1"), "{stdout}");
    assert!(stdout.contains("gap"), "{stdout}");
}

/// A scheduler over `dir` with the live node's options and no stages.
fn bare_pipeline(dir: &Path) -> std::sync::Arc<rtnode::pipeline::Pipeline> {
    let state = std::sync::Arc::new(rtnode::state::StateDb::open(dir).unwrap());
    rtnode::pipeline::Pipeline::with_stages(
        dir,
        state,
        rtnode::pipeline::PipelineOptions {
            settings: Default::default(),
            immediate: false,
            stage_config: None,
        },
        Vec::new(),
    )
    .unwrap()
}

/// Course assembly does work in proportion to what arrived, not to the
/// archive: the records read to assemble one more course (100 CT slices and
/// an RTSTRUCT, arriving over several ticks) are counted when the store holds
/// 10 courses (~1,000 instances) and again at 200 courses (~20,000), and
/// must stay the same size. A property, not a timing. The records go
/// straight into the index (no files): assembly reads nothing else.
#[test]
fn assembly_work_per_arrival_does_not_grow_with_the_archive() {
    use rtnode::store::record::{PatientInfo, Reference};
    use rtnode::store::{Index, InstanceRecord};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(Index::open(&dir.path().join("index.redb")).unwrap());
    let pipeline = bare_pipeline(dir.path());
    pipeline.load_index(index.clone());
    pipeline.tick().unwrap();

    const SLICES: usize = 100;
    let course_records = |n: usize| -> Vec<InstanceRecord> {
        let patient = PatientInfo {
            id: format!("P{n:04}"),
            name: format!("Test^{n}"),
            ..PatientInfo::default()
        };
        let series = format!("1.2.826.0.1.3680043.10.9.{n}.1");
        let study = format!("1.2.826.0.1.3680043.10.9.{n}");
        let mut recs: Vec<InstanceRecord> = (0..SLICES)
            .map(|i| InstanceRecord {
                sop_instance_uid: format!("{series}.{i}"),
                series_instance_uid: series.clone(),
                study_instance_uid: study.clone(),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                modality: "CT".into(),
                image_type: "ORIGINAL\\PRIMARY\\AXIAL".into(),
                frame_of_reference_uid: format!("{study}.9"),
                image_position_patient: Some([0.0, 0.0, i as f64 * 2.5]),
                image_orientation_patient: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
                patient: patient.clone(),
                path: format!("store/{n}/{i}.dcm"),
                ..InstanceRecord::default()
            })
            .collect();
        recs.push(InstanceRecord {
            sop_instance_uid: format!("{study}.2.1"),
            series_instance_uid: format!("{study}.2"),
            study_instance_uid: study.clone(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.481.3".into(),
            modality: "RTSTRUCT".into(),
            references: vec![Reference::ImageSeries(series.clone())],
            patient,
            path: format!("store/{n}/rs.dcm"),
            ..InstanceRecord::default()
        });
        recs
    };
    // One course arrives in four batches with a tick after each, as a
    // storescu association does against the live node.
    let deliver = |n: usize| -> u64 {
        let before = pipeline.assembly_work();
        for batch in course_records(n).chunks(26) {
            index.apply(batch, false).unwrap();
            for r in batch {
                pipeline.on_instance(r);
            }
            pipeline.tick().unwrap();
        }
        pipeline.assembly_work() - before
    };
    let mut at_10 = 0;
    for n in 0..200 {
        let work = deliver(n);
        if n == 9 {
            at_10 = work;
        }
    }
    let at_200 = deliver(200);
    let st = pipeline.status().unwrap();
    assert_eq!(st.courses.len(), 201);
    assert!(st.courses.iter().all(|c| c.objects["images"] == SLICES));
    assert_eq!(index.counts().unwrap().instances, 201 * (SLICES as u64 + 1));
    // Four ticks, each reading at most the course being delivered.
    let bound = 4 * (SLICES as u64 + 1);
    eprintln!("records read to assemble course 10: {at_10}, course 201: {at_200}");
    assert!(
        at_10 > 0 && at_10 <= bound,
        "course 10: {at_10} records read"
    );
    assert!(
        at_200 <= at_10,
        "course 201 read {at_200} records, course 10 read {at_10}: work grows with the archive"
    );
}

/// The store's commit thread hands instances to the scheduler without ever
/// waiting for it: `on_instance` returns while a slow tick holds the
/// scheduler busy.
#[test]
fn arrivals_never_wait_for_the_scheduler() {
    use rtnode::store::InstanceRecord;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let pipeline = bare_pipeline(dir.path());
    let busy = pipeline.clone();
    let holder = std::thread::spawn(move || busy.hold_scheduler_for_test(Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    for i in 0..1000 {
        pipeline.on_instance(&InstanceRecord {
            sop_instance_uid: format!("1.2.3.{i}"),
            ..InstanceRecord::default()
        });
    }
    let took = t0.elapsed();
    holder.join().unwrap();
    assert!(
        took < Duration::from_secs(1),
        "1000 arrivals took {took:?} while the scheduler was busy"
    );
}
