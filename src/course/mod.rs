//! Treatment courses, assembled from the instance index by RT references
//! alone.
//!
//! A course is the planning image series the RTSTRUCT references, the
//! RTSTRUCTs that reference it, the RTPLANs that reference those, and the
//! RTDOSEs that reference the plans. When a reference cannot be resolved the
//! course waits and says what for: it never guesses (the predecessor took
//! the largest series of a study, and picked the wrong CT for much of a
//! cohort). Assembly is a pure function of the records, so the live node and
//! `rtnode process` decide identically.

pub mod geometry;
mod model;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::dicom::uids;
use crate::store::record::{PatientInfo, Reference};
use crate::store::InstanceRecord;
pub use geometry::{check_series, SeriesGeometry};
pub use model::{course_id, Course, DoseMember, Member, PlanMember};

fn is_image(r: &InstanceRecord) -> bool {
    matches!(r.modality.as_str(), "CT" | "MR" | "PT") && r.image_position_patient.is_some()
}

fn is_rtstruct(r: &InstanceRecord) -> bool {
    r.sop_class_uid == uids::RT_STRUCTURE_SET_STORAGE
}

fn is_plan(r: &InstanceRecord) -> bool {
    r.sop_class_uid == uids::RT_PLAN_STORAGE || r.sop_class_uid == uids::RT_ION_PLAN_STORAGE
}

fn is_dose(r: &InstanceRecord) -> bool {
    r.sop_class_uid == uids::RT_DOSE_STORAGE
}

/// Whether an image series may stand as a course on its own (under the
/// `ct` rule): an original, primary, axial CT acquisition — not a derived,
/// MIP or 4DCT phase.
#[derive(Debug, Clone, PartialEq)]
enum StandAlone {
    Yes,
    /// No ImageType (Type 1, yet absent from some exports and converters),
    /// but otherwise a consistent axial CT series: taken as
    /// ORIGINAL\PRIMARY, with this note in the course.
    AssumedPrimary(String),
    /// Why not, in words.
    No(String),
}

fn stand_alone(series: &[&InstanceRecord]) -> StandAlone {
    let Some(first) = series.first() else {
        return StandAlone::No("no instance".into());
    };
    if first.modality != "CT" {
        return StandAlone::No(format!(
            "a {} series stands as a course only when an RTSTRUCT references it",
            first.modality
        ));
    }
    let desc = first.series_description.to_ascii_uppercase();
    if desc.contains('%') || desc.contains("PHASE") || desc.contains("4D") {
        return StandAlone::No(format!(
            "its description {:?} names a 4D phase or average, which stands as a course only when an RTSTRUCT references it",
            first.series_description
        ));
    }
    let axial = first
        .image_orientation_patient
        .is_some_and(|o| o[0].abs() > 0.99 && o[4].abs() > 0.99);
    if !axial {
        return StandAlone::No(
            "it is not axial (ImageOrientationPatient), and no RTSTRUCT references it".into(),
        );
    }
    let t = first.image_type.trim().to_ascii_uppercase();
    if t.is_empty() {
        let geometry = check_series(series);
        let frames: BTreeSet<&str> = series
            .iter()
            .map(|r| r.frame_of_reference_uid.as_str())
            .collect();
        let mut problems = geometry.problems.clone();
        if frames.len() > 1 {
            problems.push(format!("{} frames of reference", frames.len()));
        } else if frames.contains("") {
            problems.push("no FrameOfReferenceUID".into());
        }
        if !problems.is_empty() {
            return StandAlone::No(format!(
                "it has no ImageType and is not a consistent axial series ({}), so it is not taken as an original acquisition",
                problems.join("; ")
            ));
        }
        return StandAlone::AssumedPrimary(format!(
            "CT series {} has no ImageType (Type 1 in the CT Image module): taken as ORIGINAL\\PRIMARY because it is a consistent axial series ({} slices, one frame of reference, parallel, equally spaced, no gap)",
            first.series_instance_uid,
            series.len()
        ));
    }
    let parts: Vec<&str> = t.split('\\').map(str::trim).collect();
    if let Some(p) = parts.iter().find(|p| {
        matches!(
            **p,
            "MIP" | "MINIP" | "AVERAGE" | "AVE" | "DERIVED" | "SECONDARY" | "REFORMATTED"
        )
    }) {
        return StandAlone::No(format!(
            "ImageType {} ({p}) is not an original acquisition, and no RTSTRUCT references it",
            first.image_type
        ));
    }
    if parts.first() != Some(&"ORIGINAL") || parts.get(1) != Some(&"PRIMARY") {
        return StandAlone::No(format!(
            "ImageType {} is not ORIGINAL\\PRIMARY, and no RTSTRUCT references it",
            first.image_type
        ));
    }
    StandAlone::Yes
}

/// A series that formed no course, with why: nothing a user sent vanishes
/// without a reason (`rtnode status`, `rtnode process`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unassembled {
    /// Series Instance UID of the series.
    pub series_instance_uid: String,
    /// Modality of its first instance.
    pub modality: String,
    /// PatientID of its first instance.
    pub patient_id: String,
    /// Number of instances received in the series.
    pub instances: usize,
    /// Why it formed no course, for a person to read.
    pub reason: String,
}

/// Every course the records allow, and every series that formed none.
#[derive(Debug, Clone, Default)]
pub struct Assembly {
    /// Every course, complete or still waiting.
    pub courses: Vec<Course>,
    /// In series UID order.
    pub unassembled: Vec<Unassembled>,
}

fn identity(p: &PatientInfo) -> (String, String, String, String) {
    (
        p.id.clone(),
        p.name.clone(),
        p.birth_date.clone(),
        p.issuer.clone(),
    )
}

/// Assembles every course the records allow. `ours` are SOP Instance UIDs
/// rtnode itself created: results, never inputs.
pub fn assemble(records: &[InstanceRecord], ours: &HashSet<String>) -> Vec<Course> {
    assemble_all(records, ours).courses
}

/// As [`assemble`], with the series that formed no course and why.
pub fn assemble_all(records: &[InstanceRecord], ours: &HashSet<String>) -> Assembly {
    let records: Vec<&InstanceRecord> = records
        .iter()
        .filter(|r| !ours.contains(&r.sop_instance_uid))
        .collect();
    let mut series: HashMap<&str, Vec<&InstanceRecord>> = HashMap::new();
    for r in records.iter().filter(|r| is_image(r)) {
        series
            .entry(r.series_instance_uid.as_str())
            .or_default()
            .push(r);
    }
    // Why an instance is in no course, for those that end up in none.
    let mut why_not: HashMap<&str, String> = HashMap::new();
    let mut by_sop: HashMap<&str, &InstanceRecord> = HashMap::new();
    for r in &records {
        by_sop.insert(r.sop_instance_uid.as_str(), r);
    }

    // Planning series → its course, seeded from the structure sets.
    let mut courses: BTreeMap<String, Course> = BTreeMap::new();
    let mut ss_course: HashMap<String, String> = HashMap::new();
    let mut orphans: Vec<String> = Vec::new();
    let mut structure_sets: Vec<&InstanceRecord> =
        records.iter().copied().filter(|r| is_rtstruct(r)).collect();
    structure_sets.sort_by(|a, b| a.received_at.cmp(&b.received_at));
    for ss in structure_sets {
        let planning = ss.references.iter().find_map(|r| match r {
            Reference::ImageSeries(uid) => Some(uid.clone()),
            _ => None,
        });
        let Some(planning) = planning else {
            orphans.push(format!(
                "RTSTRUCT {} references no image series; not attached",
                ss.sop_instance_uid
            ));
            why_not.insert(
                &ss.sop_instance_uid,
                "RTSTRUCT that references no image series".into(),
            );
            continue;
        };
        let course = courses
            .entry(planning.clone())
            .or_insert_with(|| new_course(&planning, &ss.patient));
        course.structure_sets.push(Member::of(ss));
        ss_course.insert(ss.sop_instance_uid.clone(), planning);
    }
    // CT series that stand alone (the `ct` rule): only primary axial ones.
    let mut assumed: HashMap<&str, String> = HashMap::new();
    let mut image_why_not: HashMap<&str, String> = HashMap::new();
    for (uid, imgs) in &series {
        if courses.contains_key(*uid) {
            continue;
        }
        match stand_alone(imgs) {
            StandAlone::Yes => {}
            StandAlone::AssumedPrimary(note) => {
                assumed.insert(uid, note);
            }
            StandAlone::No(why) => {
                image_why_not.insert(uid, why);
                continue;
            }
        }
        courses.insert(uid.to_string(), new_course(uid, &imgs[0].patient));
    }

    let mut plan_course: HashMap<String, String> = HashMap::new();
    let mut plans: Vec<&InstanceRecord> = records.iter().copied().filter(|r| is_plan(r)).collect();
    plans.sort_by(|a, b| a.received_at.cmp(&b.received_at));
    let mut unresolved_plans: Vec<(&InstanceRecord, String)> = Vec::new();
    for p in plans {
        let rt = p.rt.clone().unwrap_or_default();
        if matches!(rt.plan_intent.as_str(), "VERIFICATION" | "MACHINE_QA") {
            // Phantom QA plans never join a patient course.
            why_not.insert(
                &p.sop_instance_uid,
                format!(
                    "RTPLAN with intent {}: QA plans never join a course",
                    rt.plan_intent
                ),
            );
            continue;
        }
        let ss_uid = p.references.iter().find_map(|r| match r {
            Reference::StructureSet(uid) => Some(uid.clone()),
            _ => None,
        });
        let predecessor = p.references.iter().find_map(|r| match r {
            Reference::Plan { uid, relationship } if relationship == "PREDECESSOR" => {
                Some(uid.clone())
            }
            _ => None,
        });
        let member = PlanMember {
            member: Member::of(p),
            label: rt.plan_label.clone(),
            intent: rt.plan_intent.clone(),
            approval_status: rt.approval_status.clone(),
            predecessor,
            structure_set: ss_uid.clone(),
        };
        match ss_uid.as_ref().and_then(|u| ss_course.get(u)) {
            Some(planning) => {
                plan_course.insert(p.sop_instance_uid.clone(), planning.clone());
                if let Some(c) = courses.get_mut(planning) {
                    c.plans.push(member);
                }
            }
            None => {
                let what = match ss_uid {
                    Some(u) => format!("RTSTRUCT {u}"),
                    None => "a structure set reference (the plan has none)".into(),
                };
                why_not.insert(&p.sop_instance_uid, format!("RTPLAN waits for {what}"));
                unresolved_plans.push((p, what));
            }
        }
    }

    let mut doses: Vec<&InstanceRecord> = records.iter().copied().filter(|r| is_dose(r)).collect();
    doses.sort_by(|a, b| a.received_at.cmp(&b.received_at));
    let mut unresolved_doses: Vec<(&InstanceRecord, String)> = Vec::new();
    for d in doses {
        let rt = d.rt.clone().unwrap_or_default();
        let plan_uid = d.references.iter().find_map(|r| match r {
            Reference::Plan { uid, .. } => Some(uid.clone()),
            _ => None,
        });
        let Some(plan_uid) = plan_uid else {
            // An RTDOSE without a plan reference is never attached silently.
            orphans.push(format!(
                "RTDOSE {} references no RTPLAN; not attached",
                d.sop_instance_uid
            ));
            why_not.insert(
                &d.sop_instance_uid,
                "RTDOSE that references no RTPLAN: never attached".into(),
            );
            continue;
        };
        let member = DoseMember {
            member: Member::of(d),
            plan: plan_uid.clone(),
            summation_type: rt.dose_summation_type.clone(),
            dose_type: rt.dose_type.clone(),
            units: rt.dose_units.clone(),
            frame_of_reference_uid: d.frame_of_reference_uid.clone(),
        };
        match plan_course.get(&plan_uid).and_then(|c| courses.get_mut(c)) {
            Some(c) => c.doses.push(member),
            None => {
                why_not.insert(
                    &d.sop_instance_uid,
                    format!("RTDOSE waits for RTPLAN {plan_uid}"),
                );
                unresolved_doses.push((d, plan_uid));
            }
        }
    }

    // Members known; now images, identity, geometry and what is awaited.
    for (planning, course) in courses.iter_mut() {
        let imgs = series.get(planning.as_str()).cloned().unwrap_or_default();
        let mut imgs = imgs;
        imgs.sort_by(|a, b| a.sop_instance_uid.cmp(&b.sop_instance_uid));
        course.geometry = check_series(&imgs);
        course.images = imgs.iter().map(|r| Member::of(r)).collect();
        if let Some(first) = imgs.first() {
            course.modality = first.modality.clone();
            course.frame_of_reference_uid = first.frame_of_reference_uid.clone();
            course.patient = first.patient.clone();
        } else {
            course.waiting_for.push(format!(
                "planning image series {planning} (referenced by the RTSTRUCT)"
            ));
        }
        let mut identities: BTreeMap<(String, String, String, String), Vec<String>> =
            BTreeMap::new();
        let member_uids: Vec<String> = course
            .all_members()
            .map(|m| m.sop_instance_uid.clone())
            .collect();
        for uid in &member_uids {
            if let Some(r) = by_sop.get(uid.as_str()) {
                identities
                    .entry(identity(&r.patient))
                    .or_default()
                    .push(format!("{} {}", r.modality, r.sop_instance_uid));
                course.calling_aes.insert(r.calling_ae.clone());
            }
        }
        if identities.len() > 1 {
            let described: Vec<String> = identities
                .iter()
                .map(|((id, name, birth, issuer), objs)| {
                    format!(
                        "ID {id:?} name {name:?} born {birth:?} issuer {issuer:?} on {} object(s), e.g. {}",
                        objs.len(),
                        objs[0]
                    )
                })
                .collect();
            course.held = Some(format!(
                "patient identity differs between objects: {}",
                described.join(" / ")
            ));
        }
        if course.patient.id.is_empty() {
            if let Some(ss) = course
                .structure_sets
                .first()
                .and_then(|m| by_sop.get(m.sop_instance_uid.as_str()))
            {
                course.patient = ss.patient.clone();
            }
        }
        course.id = course_id(&course.patient.id, planning);
        if let Some(note) = assumed.get(planning.as_str()) {
            course.notes.push(note.clone());
        }
        for d in &course.doses {
            if !course.frame_of_reference_uid.is_empty()
                && !d.frame_of_reference_uid.is_empty()
                && d.frame_of_reference_uid != course.frame_of_reference_uid
            {
                course.notes.push(format!(
                    "RTDOSE {} is on frame of reference {}, the images on {}",
                    d.member.sop_instance_uid,
                    d.frame_of_reference_uid,
                    course.frame_of_reference_uid
                ));
            }
        }
    }
    // Unresolved references wait inside the course of the same patient when
    // there is exactly one; otherwise they stay visible as notes everywhere.
    for (p, what) in unresolved_plans {
        let note = format!("RTPLAN {} waits for {what}", p.sop_instance_uid);
        attach_note(&mut courses, &p.patient, note, true);
    }
    for (d, plan) in unresolved_doses {
        let note = format!("RTDOSE {} waits for RTPLAN {plan}", d.sop_instance_uid);
        attach_note(&mut courses, &d.patient, note, true);
    }
    for note in orphans {
        for c in courses.values_mut() {
            c.notes.push(note.clone());
        }
    }
    let courses: Vec<Course> = courses.into_values().collect();
    let unassembled = unassembled(&records, &courses, &why_not, &image_why_not);
    Assembly {
        courses,
        unassembled,
    }
}

/// The series none of whose instances is a member of a course, each with
/// the reasons its instances gave (distinct, in order).
fn unassembled(
    records: &[&InstanceRecord],
    courses: &[Course],
    why_not: &HashMap<&str, String>,
    image_why_not: &HashMap<&str, String>,
) -> Vec<Unassembled> {
    let members: HashSet<&str> = courses
        .iter()
        .flat_map(|c| c.all_members().map(|m| m.series_instance_uid.as_str()))
        .collect();
    let mut by_series: BTreeMap<&str, Vec<&InstanceRecord>> = BTreeMap::new();
    for r in records {
        if !members.contains(r.series_instance_uid.as_str()) {
            by_series
                .entry(r.series_instance_uid.as_str())
                .or_default()
                .push(r);
        }
    }
    by_series
        .into_iter()
        .map(|(uid, recs)| {
            let mut reasons: Vec<String> = Vec::new();
            let mut add = |why: String| {
                if !reasons.contains(&why) {
                    reasons.push(why);
                }
            };
            if let Some(why) = image_why_not.get(uid) {
                add(why.clone());
            }
            for r in &recs {
                if let Some(why) = why_not.get(r.sop_instance_uid.as_str()) {
                    add(why.clone());
                } else if matches!(r.modality.as_str(), "CT" | "MR" | "PT")
                    && r.image_position_patient.is_none()
                {
                    add("no ImagePositionPatient: not part of an image volume".into());
                } else if !is_image(r) && !is_rtstruct(r) && !is_plan(r) && !is_dose(r) {
                    add(format!(
                        "{} objects take no part in a course",
                        if r.modality.is_empty() {
                            "such"
                        } else {
                            r.modality.as_str()
                        }
                    ));
                }
            }
            if reasons.is_empty() {
                reasons.push("no course references it".into());
            }
            let shown = reasons.len().min(3);
            let mut reason = reasons[..shown].join("; ");
            if reasons.len() > shown {
                reason.push_str(&format!(" (and {} more)", reasons.len() - shown));
            }
            Unassembled {
                series_instance_uid: uid.to_string(),
                modality: recs[0].modality.clone(),
                patient_id: recs[0].patient.id.clone(),
                instances: recs.len(),
                reason,
            }
        })
        .collect()
}

fn new_course(planning: &str, patient: &PatientInfo) -> Course {
    Course {
        id: course_id(&patient.id, planning),
        patient: patient.clone(),
        planning_series_uid: planning.to_string(),
        modality: String::new(),
        frame_of_reference_uid: String::new(),
        images: Vec::new(),
        geometry: SeriesGeometry::default(),
        structure_sets: Vec::new(),
        plans: Vec::new(),
        doses: Vec::new(),
        held: None,
        waiting_for: Vec::new(),
        notes: Vec::new(),
        calling_aes: BTreeSet::new(),
    }
}

fn attach_note(
    courses: &mut BTreeMap<String, Course>,
    patient: &PatientInfo,
    note: String,
    waiting: bool,
) {
    let same: Vec<&mut Course> = courses
        .values_mut()
        .filter(|c| c.patient.id == patient.id && c.patient.issuer == patient.issuer)
        .collect();
    for c in same {
        if waiting {
            c.waiting_for.push(note.clone());
        } else {
            c.notes.push(note.clone());
        }
    }
}

#[cfg(test)]
mod tests;
