//! Unit tests of course assembly: which series form a course, which
//! objects join it, and why the rest stay unassembled.

use super::*;
use crate::store::record::RtAttributes;

fn patient(id: &str) -> PatientInfo {
    PatientInfo {
        id: id.into(),
        name: "Doe^Jane".into(),
        birth_date: "19600101".into(),
        ..PatientInfo::default()
    }
}

fn ct(series: &str, n: usize, pid: &str) -> Vec<InstanceRecord> {
    (0..n)
        .map(|i| InstanceRecord {
            sop_instance_uid: format!("{series}.{i}"),
            series_instance_uid: series.into(),
            sop_class_uid: uids::CT_IMAGE_STORAGE.into(),
            modality: "CT".into(),
            image_type: "ORIGINAL\\PRIMARY\\AXIAL".into(),
            frame_of_reference_uid: "9.9".into(),
            image_position_patient: Some([0.0, 0.0, i as f64 * 2.5]),
            image_orientation_patient: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            patient: patient(pid),
            received_at: format!("2026-01-01T00:00:{:02}Z", i % 60),
            ..InstanceRecord::default()
        })
        .collect()
}

fn rtstruct(uid: &str, series: &str, pid: &str, at: &str) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: uid.into(),
        sop_class_uid: uids::RT_STRUCTURE_SET_STORAGE.into(),
        modality: "RTSTRUCT".into(),
        references: vec![
            Reference::FrameOfReference("9.9".into()),
            Reference::ImageSeries(series.into()),
        ],
        patient: patient(pid),
        received_at: at.into(),
        ..InstanceRecord::default()
    }
}

fn plan(uid: &str, ss: &str, intent: &str) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: uid.into(),
        sop_class_uid: uids::RT_PLAN_STORAGE.into(),
        modality: "RTPLAN".into(),
        references: vec![Reference::StructureSet(ss.into())],
        rt: Some(RtAttributes {
            plan_intent: intent.into(),
            approval_status: "APPROVED".into(),
            ..RtAttributes::default()
        }),
        patient: patient("P1"),
        ..InstanceRecord::default()
    }
}

fn dose(uid: &str, plan: &str) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: uid.into(),
        sop_class_uid: uids::RT_DOSE_STORAGE.into(),
        modality: "RTDOSE".into(),
        frame_of_reference_uid: "9.9".into(),
        references: vec![Reference::Plan {
            uid: plan.into(),
            relationship: String::new(),
        }],
        patient: patient("P1"),
        ..InstanceRecord::default()
    }
}

#[test]
fn full_course_from_references_in_any_order() {
    let mut recs = vec![
        dose("4.1", "3.1"),
        plan("3.1", "2.1", "CURATIVE"),
        rtstruct("2.1", "1.1", "P1", "t1"),
    ];
    recs.extend(ct("1.1", 10, "P1"));
    // A bigger CT of the same study is not the planning CT.
    recs.extend(ct("1.2", 40, "P1").into_iter().map(|mut r| {
        r.image_type = "DERIVED\\SECONDARY".into();
        r
    }));
    let courses = assemble(&recs, &HashSet::new());
    assert_eq!(courses.len(), 1);
    let c = &courses[0];
    assert_eq!(c.planning_series_uid, "1.1");
    assert_eq!(c.images.len(), 10);
    assert_eq!(
        (c.structure_sets.len(), c.plans.len(), c.doses.len()),
        (1, 1, 1)
    );
    assert!(c.missing_for("full", true).is_empty());
    assert!(c.id.starts_with("P1-"));
    assert_eq!(c.id, course_id("P1", "1.1"));
}

#[test]
fn rtstruct_before_its_ct_waits_and_never_guesses() {
    let mut recs = vec![rtstruct("2.1", "1.1", "P1", "t1")];
    recs.extend(ct("1.9", 50, "P1"));
    let courses = assemble(&recs, &HashSet::new());
    let c = courses
        .iter()
        .find(|c| c.planning_series_uid == "1.1")
        .unwrap();
    assert!(c.images.is_empty());
    assert!(c.waiting_for[0].contains("planning image series 1.1"));
    assert_eq!(
        c.missing_for("ct+rtstruct", false),
        vec!["planning image series 1.1"]
    );
}

#[test]
fn two_courses_of_one_patient_stay_apart() {
    let mut recs = vec![
        rtstruct("2.1", "1.1", "P1", "t1"),
        rtstruct("2.2", "1.2", "P1", "t2"),
    ];
    recs.extend(ct("1.1", 5, "P1"));
    recs.extend(ct("1.2", 5, "P1"));
    let courses = assemble(&recs, &HashSet::new());
    assert_eq!(courses.len(), 2);
    assert_ne!(courses[0].id, courses[1].id);
    assert!(courses
        .iter()
        .all(|c| c.structure_sets.len() == 1 && c.images.len() == 5));
}

#[test]
fn qa_plans_orphan_doses_and_our_own_objects_stay_out() {
    let mut recs = vec![
        rtstruct("2.1", "1.1", "P1", "t1"),
        plan("3.9", "2.1", "VERIFICATION"),
        dose("4.9", "3.9"),
        rtstruct("2.7", "1.1", "P1", "t9"),
    ];
    let mut orphan = dose("4.8", "x");
    orphan.references.clear();
    recs.push(orphan);
    recs.extend(ct("1.1", 5, "P1"));
    let ours = HashSet::from(["2.7".to_string()]);
    let c = &assemble(&recs, &ours)[0];
    assert!(c.plans.is_empty());
    assert!(c.doses.is_empty());
    assert_eq!(
        c.structure_sets.len(),
        1,
        "our own RTSTRUCT is a result, not an input"
    );
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("4.8 references no RTPLAN")));
    assert!(c
        .waiting_for
        .iter()
        .any(|n| n.contains("4.9 waits for RTPLAN 3.9")));
}

#[test]
fn patient_mismatch_holds_the_course() {
    let mut recs = vec![rtstruct("2.1", "1.1", "P2", "t1")];
    recs.extend(ct("1.1", 5, "P1"));
    let c = &assemble(&recs, &HashSet::new())[0];
    let held = c.held.as_ref().unwrap();
    assert!(held.contains("\"P1\"") && held.contains("\"P2\""), "{held}");
}

#[test]
fn revised_rtstruct_is_the_current_one() {
    let mut recs = vec![
        rtstruct("2.2", "1.1", "P1", "t2"),
        rtstruct("2.1", "1.1", "P1", "t1"),
    ];
    recs.extend(ct("1.1", 5, "P1"));
    let c = &assemble(&recs, &HashSet::new())[0];
    assert_eq!(c.current_structure_set().unwrap().sop_instance_uid, "2.2");
}

#[test]
fn ct_alone_only_when_primary_axial() {
    let mut recs = ct("1.1", 5, "P1");
    recs.extend(ct("1.2", 5, "P1").into_iter().map(|mut r| {
        r.series_description = "4DCT 50%".into();
        r
    }));
    let courses = assemble(&recs, &HashSet::new());
    assert_eq!(courses.len(), 1);
    assert_eq!(courses[0].planning_series_uid, "1.1");
    assert!(courses[0].missing_for("ct", false).is_empty());
    assert_eq!(
        courses[0].missing_for("ct+rtstruct", false),
        vec!["RTSTRUCT"]
    );
}

#[test]
fn a_consistent_ct_without_image_type_is_taken_as_primary_with_a_note() {
    let recs: Vec<InstanceRecord> = ct("1.1", 5, "P1")
        .into_iter()
        .map(|mut r| {
            r.image_type.clear();
            r
        })
        .collect();
    let a = assemble_all(&recs, &HashSet::new());
    assert_eq!(a.courses.len(), 1);
    assert!(a.unassembled.is_empty(), "{:?}", a.unassembled);
    let c = &a.courses[0];
    assert!(c.missing_for("ct", false).is_empty());
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("no ImageType") && n.contains("ORIGINAL\\PRIMARY")),
        "{:?}",
        c.notes
    );
    // Referenced by an RTSTRUCT, the same series makes a course as always.
    let mut with_rs = recs.clone();
    with_rs.push(rtstruct("2.1", "1.1", "P1", "2026-01-01T00:01:00Z"));
    assert_eq!(assemble_all(&with_rs, &HashSet::new()).courses.len(), 1);
}

#[test]
fn every_series_that_forms_no_course_says_why() {
    let strip = |mut r: InstanceRecord| {
        r.image_type.clear();
        r
    };
    // No ImageType and a missing slice: not taken as an acquisition.
    let mut recs: Vec<InstanceRecord> = ct("1.1", 6, "P1")
        .into_iter()
        .filter(|r| r.sop_instance_uid != "1.1.3")
        .map(strip)
        .collect();
    // No ImageType on two frames of reference.
    recs.extend(ct("1.2", 4, "P1").into_iter().map(strip).map(|mut r| {
        if r.sop_instance_uid.ends_with(".0") {
            r.frame_of_reference_uid = "9.8".into();
        }
        r
    }));
    // A derived series, an MR, a QA plan, an orphan dose.
    recs.extend(ct("1.3", 4, "P2").into_iter().map(|mut r| {
        r.image_type = "DERIVED\\SECONDARY\\MPR".into();
        r
    }));
    recs.extend(ct("1.4", 4, "P2").into_iter().map(|mut r| {
        r.modality = "MR".into();
        r
    }));
    let mut qa = plan("3.1", "2.9", "VERIFICATION");
    qa.series_instance_uid = "3".into();
    recs.push(qa);
    recs.push(InstanceRecord {
        sop_instance_uid: "4.1".into(),
        series_instance_uid: "4".into(),
        sop_class_uid: uids::RT_DOSE_STORAGE.into(),
        modality: "RTDOSE".into(),
        patient: patient("P3"),
        ..InstanceRecord::default()
    });
    let a = assemble_all(&recs, &HashSet::new());
    assert!(a.courses.is_empty(), "{:?}", a.courses);
    let why = |uid: &str| {
        a.unassembled
            .iter()
            .find(|u| u.series_instance_uid == uid)
            .map(|u| u.reason.clone())
            .unwrap_or_else(|| panic!("series {uid} vanished: {:?}", a.unassembled))
    };
    assert!(why("1.1").contains("no ImageType") && why("1.1").contains("gap"));
    assert!(
        why("1.2").contains("2 frames of reference"),
        "{}",
        why("1.2")
    );
    assert!(why("1.3").contains("DERIVED"), "{}", why("1.3"));
    assert!(why("1.4").contains("MR series"), "{}", why("1.4"));
    assert!(why("3").contains("VERIFICATION"), "{}", why("3"));
    assert!(why("4").contains("references no RTPLAN"), "{}", why("4"));
    assert_eq!(a.unassembled.len(), 6);
    let gap = a
        .unassembled
        .iter()
        .find(|u| u.series_instance_uid == "1.1");
    assert_eq!(gap.map(|u| u.instances), Some(5));
}

#[test]
fn course_ids_are_path_safe() {
    let id = course_id("../etc/passwd", "1.2.3");
    assert!(id.starts_with("___etc_passwd-"));
    assert!(!id.contains('/'));
    assert_eq!(course_id("", "1.2").len(), 4 + 1 + 8);
}
