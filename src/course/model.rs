//! What a course is: its members (the planning series' images, structure
//! sets, plans and doses, each with its content hash) and its identity.
//! [`super::assemble_all`] builds these from the index's records.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::SeriesGeometry;
use crate::store::record::PatientInfo;
use crate::store::InstanceRecord;

/// One member object of a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// SOP Instance UID of the object.
    pub sop_instance_uid: String,
    /// Series Instance UID of the object.
    pub series_instance_uid: String,
    /// blake3 of the data set as received (see `InstanceRecord`).
    pub content_hash: String,
    /// Where the file is stored, relative to the data directory.
    pub path: String,
    /// Calling AE title of the association that sent it.
    pub calling_ae: String,
    /// When it was received, RFC 3339 UTC.
    pub received_at: String,
}

impl Member {
    pub(super) fn of(r: &InstanceRecord) -> Member {
        Member {
            sop_instance_uid: r.sop_instance_uid.clone(),
            series_instance_uid: r.series_instance_uid.clone(),
            content_hash: r.content_hash.clone(),
            path: r.path.clone(),
            calling_ae: r.calling_ae.clone(),
            received_at: r.received_at.clone(),
        }
    }
}

/// An RT Plan of a course, with what course selection reads from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanMember {
    /// The stored object.
    pub member: Member,
    /// RTPlanLabel; empty when absent.
    pub label: String,
    /// PlanIntent (CURATIVE, PALLIATIVE, VERIFICATION, …); empty when absent.
    pub intent: String,
    /// RTApprovalStatus (APPROVED, UNAPPROVED, REJECTED); empty when absent.
    pub approval_status: String,
    /// A plan this one replaces (RTPlanRelationship PREDECESSOR).
    pub predecessor: Option<String>,
    /// SOP Instance UID of the RT Structure Set the plan references.
    pub structure_set: Option<String>,
}

/// An RT Dose of a course, attached to the plan it references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseMember {
    /// The stored object.
    pub member: Member,
    /// SOP Instance UID of the RT Plan the dose references.
    pub plan: String,
    /// DoseSummationType (PLAN, FRACTION, BEAM, …).
    pub summation_type: String,
    /// DoseType (PHYSICAL, EFFECTIVE, ERROR).
    pub dose_type: String,
    /// DoseUnits (GY or RELATIVE).
    pub units: String,
    /// FrameOfReferenceUID of the dose grid; empty when absent.
    pub frame_of_reference_uid: String,
}

/// One treatment course: a planning image series and the RT objects that
/// reference it, with what it still waits for (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Course {
    /// Patient ID (made path-safe) and a short hash of the planning series.
    pub id: String,
    /// The patient, as the planning images identify them (the structure
    /// set until they arrive).
    pub patient: PatientInfo,
    /// Series Instance UID of the planning image series.
    pub planning_series_uid: String,
    /// Modality of the planning images (CT, MR, PT); empty until they arrive.
    pub modality: String,
    /// FrameOfReferenceUID of the planning images: the coordinate system every
    /// member must share.
    pub frame_of_reference_uid: String,
    /// The planning image slices received so far.
    pub images: Vec<Member>,
    /// Whether the planning series forms a complete volume.
    pub geometry: SeriesGeometry,
    /// Oldest first.
    pub structure_sets: Vec<Member>,
    /// RT Plans that reference the structure sets.
    pub plans: Vec<PlanMember>,
    /// RT Doses that reference the plans.
    pub doses: Vec<DoseMember>,
    /// Why the course cannot run at all (e.g. patient identity mismatch).
    pub held: Option<String>,
    /// Objects it waits for, in words.
    pub waiting_for: Vec<String>,
    /// Things noticed and deliberately left out (QA plans, orphan doses).
    pub notes: Vec<String>,
    /// Calling AE titles that sent its objects.
    pub calling_aes: BTreeSet<String>,
}

impl Course {
    /// Whether the planning series has arrived and forms a complete volume.
    pub fn has_images(&self) -> bool {
        !self.images.is_empty() && self.geometry.complete
    }

    /// The newest structure set: a revised RTSTRUCT supersedes the older.
    pub fn current_structure_set(&self) -> Option<&Member> {
        self.structure_sets.last()
    }

    /// What a trigger rule still lacks, empty when it holds.
    pub fn missing_for(&self, rule: &str, require_approved: bool) -> Vec<String> {
        let mut missing = Vec::new();
        if self.images.is_empty() {
            missing.push(format!(
                "planning image series {}",
                self.planning_series_uid
            ));
        } else if !self.geometry.complete {
            missing.push(format!(
                "a complete image series ({})",
                self.geometry.problems.join("; ")
            ));
        }
        if rule == "ct" {
            return missing;
        }
        if self.structure_sets.is_empty() {
            missing.push("RTSTRUCT".into());
        }
        if rule == "full" {
            let plans: Vec<_> = self
                .plans
                .iter()
                .filter(|p| !require_approved || p.approval_status == "APPROVED")
                .collect();
            if plans.is_empty() {
                missing.push(if require_approved && !self.plans.is_empty() {
                    "an APPROVED RTPLAN".into()
                } else {
                    "RTPLAN".into()
                });
            }
            if self.doses.is_empty() {
                missing.push("RTDOSE".into());
            }
        }
        missing
    }

    /// Every member object, for fingerprints and for QC.
    pub fn all_members(&self) -> impl Iterator<Item = &Member> {
        self.images
            .iter()
            .chain(self.structure_sets.iter())
            .chain(self.plans.iter().map(|p| &p.member))
            .chain(self.doses.iter().map(|d| &d.member))
    }
}

/// Keeps a course id readable and safe in a path: PatientID characters
/// outside `[A-Za-z0-9_-]` become `_`, at most 32 of them.
pub fn course_id(patient_id: &str, planning_series_uid: &str) -> String {
    let mut pid: String = patient_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if pid.is_empty() {
        pid = "NOID".into();
    }
    let h = blake3::hash(planning_series_uid.as_bytes()).to_hex();
    format!("{pid}-{}", &h[..8])
}
