//! RT Plan reading: what dose selection and prescriptions need — fraction
//! groups, beams, dose references, relationships to other plans.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};

use crate::dicom::attrs;

/// One item of FractionGroupSequence: how many fractions deliver which beams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FractionGroup {
    /// FractionGroupNumber (the item's 1-based position when absent).
    pub number: i64,
    /// NumberOfFractionsPlanned; None when absent or not positive.
    pub fractions_planned: Option<u32>,
    /// ReferencedBeamNumbers of the group.
    pub beams: Vec<i64>,
    /// How many brachytherapy application setups the group references (0 for
    /// external beam).
    pub brachy_setups: usize,
}

/// One beam of BeamSequence or IonBeamSequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beam {
    /// BeamNumber, as fraction groups reference it.
    pub number: i64,
    /// BeamName; empty when absent.
    pub name: String,
    /// TREATMENT, SETUP, …; empty when absent (read as treatment).
    pub delivery_type: String,
}

impl Beam {
    /// Whether the beam delivers treatment dose: everything but SETUP and
    /// VERIFICATION beams (an absent TreatmentDeliveryType counts as treatment).
    pub fn is_treatment(&self) -> bool {
        !matches!(self.delivery_type.as_str(), "SETUP" | "VERIFICATION")
    }
}

/// One item of DoseReferenceSequence: a prescription or constraint point,
/// volume or site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseReference {
    /// DoseReferenceNumber, when present.
    pub number: Option<i64>,
    /// DoseReferenceStructureType: POINT, VOLUME, COORDINATES, SITE.
    pub structure_type: String,
    /// DoseReferenceDescription; empty when absent.
    pub description: String,
    /// DoseReferenceType: TARGET or ORGAN_AT_RISK.
    pub reference_type: String,
    /// TargetPrescriptionDose in Gy (the total over all fractions); None when
    /// absent or not positive.
    pub target_prescription_dose: Option<f64>,
    /// ReferencedROINumber: the structure-set ROI a VOLUME reference is to.
    pub referenced_roi_number: Option<i64>,
}

/// A target prescription, as the DVH needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prescription {
    /// Total dose in Gy (TargetPrescriptionDose is the total, PS3.3 C.8.8.10).
    pub dose_gy: f64,
    /// The ROI it prescribes to (a VOLUME dose reference), when known.
    pub roi_number: Option<i64>,
    /// DoseReferenceDescription, or where the prescription came from.
    pub description: String,
    /// SOP Instance UID of the plan it comes from.
    pub plan_uid: String,
}

/// The parts of an RT Plan (or RT Ion Plan) that dose selection, courses and
/// prescriptions use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// SOP Instance UID of the plan.
    pub sop_instance_uid: String,
    /// FrameOfReferenceUID of the plan (the patient coordinate system it is in);
    /// empty when absent.
    pub frame_of_reference_uid: String,
    /// RTPlanLabel; empty when absent.
    pub label: String,
    /// RTPlanName; empty when absent.
    pub name: String,
    /// RTPlanDate+RTPlanTime, else InstanceCreationDate+Time.
    pub date_time: String,
    /// PlanIntent (CURATIVE, PALLIATIVE, VERIFICATION, …); empty when absent.
    pub intent: String,
    /// RTApprovalStatus (APPROVED, UNAPPROVED, REJECTED); empty when absent.
    pub approval_status: String,
    /// FractionGroupSequence, in file order.
    pub fraction_groups: Vec<FractionGroup>,
    /// Beams of BeamSequence and IonBeamSequence.
    pub beams: Vec<Beam>,
    /// DoseReferenceSequence, in file order.
    pub dose_references: Vec<DoseReference>,
    /// ReferencedRTPlanSequence: (plan UID, RTPlanRelationship).
    pub related_plans: Vec<(String, String)>,
    /// SOP Instance UID of the RT Structure Set the plan references, if any.
    pub referenced_structure_set: Option<String>,
}

impl Plan {
    /// Reads the RT Plan file at `path`; see [`Plan::from_object`].
    pub fn from_file(path: &Path) -> Result<Plan> {
        let obj = attrs::open(path, false)?;
        Self::from_object(&obj).with_context(|| format!("reading RTPLAN {}", path.display()))
    }

    /// Reads a parsed RT Plan; an error when the modality is other than RTPLAN
    /// (an absent Modality is accepted).
    pub fn from_object(obj: &InMemDicomObject) -> Result<Plan> {
        let modality = attrs::code(obj, tags::MODALITY);
        ensure!(
            modality == "RTPLAN" || modality.is_empty(),
            "modality is {modality}, not RTPLAN"
        );
        let fraction_groups = attrs::items(obj, tags::FRACTION_GROUP_SEQUENCE)
            .iter()
            .enumerate()
            .map(|(i, fg)| FractionGroup {
                number: attrs::int(fg, tags::FRACTION_GROUP_NUMBER).unwrap_or(i as i64 + 1),
                fractions_planned: attrs::int(fg, tags::NUMBER_OF_FRACTIONS_PLANNED)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0),
                beams: attrs::items(fg, tags::REFERENCED_BEAM_SEQUENCE)
                    .iter()
                    .filter_map(|b| attrs::int(b, tags::REFERENCED_BEAM_NUMBER))
                    .collect(),
                brachy_setups: attrs::items(fg, tags::REFERENCED_BRACHY_APPLICATION_SETUP_SEQUENCE)
                    .len(),
            })
            .collect();
        let mut beams = Vec::new();
        for seq in [tags::BEAM_SEQUENCE, tags::ION_BEAM_SEQUENCE] {
            for b in attrs::items(obj, seq) {
                if let Some(number) = attrs::int(&b, tags::BEAM_NUMBER) {
                    beams.push(Beam {
                        number,
                        name: attrs::text(&b, tags::BEAM_NAME),
                        delivery_type: attrs::code(&b, tags::TREATMENT_DELIVERY_TYPE),
                    });
                }
            }
        }
        let dose_references = attrs::items(obj, tags::DOSE_REFERENCE_SEQUENCE)
            .iter()
            .map(|d| DoseReference {
                number: attrs::int(d, tags::DOSE_REFERENCE_NUMBER),
                structure_type: attrs::code(d, tags::DOSE_REFERENCE_STRUCTURE_TYPE),
                description: attrs::text(d, tags::DOSE_REFERENCE_DESCRIPTION),
                reference_type: attrs::code(d, tags::DOSE_REFERENCE_TYPE),
                target_prescription_dose: attrs::float(d, tags::TARGET_PRESCRIPTION_DOSE)
                    .filter(|v| *v > 0.0),
                referenced_roi_number: attrs::int(d, tags::REFERENCED_ROI_NUMBER),
            })
            .collect();
        let related_plans = attrs::items(obj, tags::REFERENCED_RT_PLAN_SEQUENCE)
            .iter()
            .map(|p| {
                (
                    attrs::text(p, tags::REFERENCED_SOP_INSTANCE_UID),
                    attrs::code(p, tags::RT_PLAN_RELATIONSHIP),
                )
            })
            .filter(|(u, _)| !u.is_empty())
            .collect();
        let dt = |d, t| {
            let d = attrs::text(obj, d);
            (!d.is_empty()).then(|| format!("{d}{}", attrs::text(obj, t)))
        };
        Ok(Plan {
            sop_instance_uid: attrs::text(obj, tags::SOP_INSTANCE_UID),
            frame_of_reference_uid: attrs::text(obj, tags::FRAME_OF_REFERENCE_UID),
            label: attrs::text(obj, tags::RT_PLAN_LABEL),
            name: attrs::text(obj, tags::RT_PLAN_NAME),
            date_time: dt(tags::RT_PLAN_DATE, tags::RT_PLAN_TIME)
                .or_else(|| dt(tags::INSTANCE_CREATION_DATE, tags::INSTANCE_CREATION_TIME))
                .unwrap_or_default(),
            intent: attrs::code(obj, tags::PLAN_INTENT),
            approval_status: attrs::code(obj, tags::APPROVAL_STATUS),
            fraction_groups,
            beams,
            dose_references,
            related_plans,
            referenced_structure_set: attrs::referenced_uids(
                obj,
                tags::REFERENCED_STRUCTURE_SET_SEQUENCE,
            )
            .into_iter()
            .next(),
        })
    }

    /// The beam with BeamNumber `number`, if the plan has it.
    pub fn beam(&self, number: i64) -> Option<&Beam> {
        self.beams.iter().find(|b| b.number == number)
    }

    /// Fractions planned over every fraction group, when all say.
    pub fn total_fractions(&self) -> Option<u32> {
        self.fraction_groups
            .iter()
            .map(|f| f.fractions_planned)
            .sum::<Option<u32>>()
    }

    /// Target prescriptions: TARGET dose references with a
    /// TargetPrescriptionDose; VOLUME ones are linked to their ROI. Point
    /// and coordinate references are dose points, not prescriptions to a
    /// volume, and are left out when a VOLUME or SITE one exists.
    pub fn prescriptions(&self) -> (Vec<Prescription>, Vec<String>) {
        let mut notes = Vec::new();
        let targets: Vec<&DoseReference> = self
            .dose_references
            .iter()
            .filter(|d| d.reference_type == "TARGET" && d.target_prescription_dose.is_some())
            .collect();
        let volumetric =
            |d: &&&DoseReference| matches!(d.structure_type.as_str(), "VOLUME" | "SITE");
        let chosen: Vec<&&DoseReference> = if targets.iter().any(|d| volumetric(&d)) {
            for d in targets.iter().filter(|d| !volumetric(d)) {
                notes.push(format!(
                    "dose reference {:?} ({}, {} Gy) is a dose point, not a prescription: ignored",
                    d.description,
                    d.structure_type,
                    d.target_prescription_dose.unwrap_or_default()
                ));
            }
            targets.iter().filter(|d| volumetric(d)).collect()
        } else {
            targets.iter().collect()
        };
        let out = chosen
            .into_iter()
            .map(|d| {
                let roi_number = if d.structure_type == "VOLUME" {
                    d.referenced_roi_number
                } else {
                    None
                };
                if d.structure_type == "VOLUME" && roi_number.is_none() {
                    notes.push(format!(
                        "VOLUME dose reference {:?} names no ROI: taken as the plan's prescription",
                        d.description
                    ));
                }
                Prescription {
                    dose_gy: d.target_prescription_dose.unwrap_or_default(),
                    roi_number,
                    description: d.description.clone(),
                    plan_uid: self.sop_instance_uid.clone(),
                }
            })
            .collect();
        (out, notes)
    }
}
