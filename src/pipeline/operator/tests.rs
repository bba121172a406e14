//! The operator's actions on a scheduler over a real state database and
//! index, with one counting stage: a hold blocks the trigger and queued
//! runs and survives reopening; release lets the course go on; process-now
//! needs the trigger rule; a re-run recomputes instead of reusing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::ActionError;
use crate::course::Course;
use crate::pipeline::{Pipeline, PipelineOptions, PipelineSection};
use crate::stages::{Inputs, Outcome, Stage, StageContext, StageId};
use crate::state::StateDb;
use crate::store::record::{PatientInfo, Reference};
use crate::store::{Index, InstanceRecord};

/// A stage that counts its runs; same inputs every version, so a normal
/// new version would reuse its result.
struct Counting(Arc<AtomicUsize>);

impl Stage for Counting {
    fn name(&self) -> StageId {
        StageId::Organize
    }
    fn after(&self) -> &'static [StageId] {
        &[]
    }
    fn inputs(&self, _: &Course) -> Inputs {
        Ok(Vec::new())
    }
    fn run(&self, _: &StageContext) -> anyhow::Result<Outcome> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Outcome::done(serde_json::Value::Null))
    }
}

fn open(dir: &Path, runs: &Arc<AtomicUsize>) -> (Arc<Pipeline>, Arc<Index>) {
    let state = Arc::new(StateDb::open(dir).unwrap());
    let settings = PipelineSection {
        stable_age_s: 3600,
        ..PipelineSection::default()
    };
    let p = Pipeline::with_stages(
        dir,
        state,
        PipelineOptions {
            settings,
            immediate: false,
            stage_config: None,
        },
        vec![Arc::new(Counting(runs.clone()))],
    )
    .unwrap();
    let index = Arc::new(Index::open(&dir.join("index.redb")).unwrap());
    p.load_index(index.clone());
    (p, index)
}

fn ct(n: usize) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: format!("1.2.826.0.1.3680043.10.9.1.{n}"),
        series_instance_uid: "1.2.826.0.1.3680043.10.9.1".into(),
        study_instance_uid: "1.2.826.0.1.3680043.10.9".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        modality: "CT".into(),
        image_type: "ORIGINAL\\PRIMARY\\AXIAL".into(),
        frame_of_reference_uid: "1.2.826.0.1.3680043.10.9.9".into(),
        image_position_patient: Some([0.0, 0.0, n as f64 * 2.5]),
        image_orientation_patient: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        patient: patient(),
        path: format!("store/{n}.dcm"),
        ..InstanceRecord::default()
    }
}

fn patient() -> PatientInfo {
    PatientInfo {
        id: "OPS1".into(),
        name: "Test^Ops".into(),
        ..PatientInfo::default()
    }
}

fn rtstruct() -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: "1.2.826.0.1.3680043.10.9.2.1".into(),
        series_instance_uid: "1.2.826.0.1.3680043.10.9.2".into(),
        study_instance_uid: "1.2.826.0.1.3680043.10.9".into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.481.3".into(),
        modality: "RTSTRUCT".into(),
        references: vec![Reference::ImageSeries("1.2.826.0.1.3680043.10.9.1".into())],
        patient: patient(),
        path: "store/rs.dcm".into(),
        ..InstanceRecord::default()
    }
}

fn deliver(p: &Pipeline, index: &Index, recs: &[InstanceRecord]) {
    index.apply(recs, false).unwrap();
    for r in recs {
        p.on_instance(r);
    }
}

/// (state, version, operator hold's `by`) of the only course.
fn only(p: &Pipeline) -> (String, u32, Option<String>) {
    let st = p.status().unwrap();
    assert_eq!(st.courses.len(), 1, "{:?}", st.courses);
    let c = &st.courses[0];
    (
        c.state.clone(),
        c.version,
        c.operator_hold.as_ref().map(|h| h.by.clone()),
    )
}

fn ticks(p: &Arc<Pipeline>, n: usize) {
    for _ in 0..n {
        p.tick().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn hold_release_process_now_and_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let (p, index) = open(dir.path(), &runs);
    let cts: Vec<InstanceRecord> = (0..8).map(ct).collect();
    deliver(&p, &index, &cts);
    ticks(&p, 3);
    let id = p.status().unwrap().courses[0].id.clone();
    assert_eq!(only(&p).0, "incomplete");

    // Process-now needs the trigger rule (ct+rtstruct), and says what lacks.
    match p.process_now(&id, "alice") {
        Err(ActionError::Conflict(why)) => assert!(why.contains("missing"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.hold("NOBODY", "alice", None),
        Err(ActionError::UnknownCourse(_))
    ));
    deliver(&p, &index, &[rtstruct()]);
    ticks(&p, 3);
    assert_eq!(only(&p), ("waiting".into(), 0, None));

    // Held, with a reason; a second hold and a process-now are refused.
    let done = p
        .hold(&id, "alice", Some(" plan\u{7} under review ".into()))
        .unwrap();
    assert_eq!(done.state, "held");
    assert!(matches!(
        p.hold(&id, "bob", None),
        Err(ActionError::Conflict(_))
    ));
    assert!(matches!(
        p.process_now(&id, "alice"),
        Err(ActionError::Conflict(_))
    ));
    drop(p);
    drop(index);

    // Reopened (as after a restart, which forgets arrival times, so that
    // the course would trigger at once): still held, nothing runs.
    let (p, _index) = open(dir.path(), &runs);
    ticks(&p, 5);
    assert_eq!(only(&p), ("held".into(), 0, Some("alice".into())));
    let hold = p.status().unwrap().courses[0]
        .operator_hold
        .clone()
        .unwrap();
    assert_eq!(hold.reason.as_deref(), Some("plan under review"));
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // Released: it goes on, v1 runs.
    p.release(&id, "bob").unwrap();
    assert!(matches!(
        p.release(&id, "bob"),
        Err(ActionError::Conflict(_))
    ));
    p.run_until_idle().unwrap();
    ticks(&p, 2);
    assert_eq!(only(&p), ("done".into(), 1, None));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    match p.process_now(&id, "alice") {
        Err(ActionError::Conflict(why)) => assert!(why.contains("already processed as v1")),
        other => panic!("{other:?}"),
    }

    // A re-run, held before it starts: its queued run waits; a second
    // re-run meanwhile is refused; released, v2 runs the stage again
    // although its fingerprint is unchanged.
    let v2 = p
        .rerun(&id, "alice", Some("model replaced".into()))
        .unwrap();
    assert_eq!(v2.version, Some(2));
    p.hold(&id, "alice", None).unwrap();
    ticks(&p, 5);
    // `rtnode process` does not wait for a held course's queued run, and
    // names the hold.
    p.run_until_idle().unwrap();
    assert!(p
        .any_failed_or_held()
        .iter()
        .any(|l| l.contains("on hold by alice")));
    let st = p.status().unwrap();
    assert_eq!(st.courses[0].stages["organize"], "queued");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    match p.rerun(&id, "alice", None) {
        Err(ActionError::Conflict(why)) => assert!(why.contains("v2 is running"), "{why}"),
        other => panic!("{other:?}"),
    }
    p.release(&id, "alice").unwrap();
    p.run_until_idle().unwrap();
    ticks(&p, 2);
    assert_eq!(only(&p), ("done".into(), 2, None));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let d = &p.status().unwrap().courses[0].stage_details[0];
    assert_eq!((d.reused_from, d.attempts), (None, 1));
}
