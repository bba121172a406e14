//! What the index knows of one stored instance, read from the file once at
//! store time so that later stages never re-open files to group or sort them.

use std::path::Path;

use dicom_core::Tag;

// Tolerant of values forwarded as UN (PS3.5 6.2.2): standard RT
// attributes arrive that way from older PACS.
use crate::dicom::attrs::{items, text};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use serde::{Deserialize, Serialize};

/// Patient module attributes as received; each is empty when the data set
/// lacks it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientInfo {
    /// PatientID (0010,0020), unique only together with `issuer`.
    pub id: String,
    /// PatientName (0010,0010) in DICOM PN form (`Family^Given^...`),
    /// decoded from the data set's SpecificCharacterSet.
    pub name: String,
    /// PatientBirthDate (0010,0030), DICOM DA `YYYYMMDD`.
    pub birth_date: String,
    /// PatientSex (0010,0040): `M`, `F`, `O`, or empty.
    pub sex: String,
    /// IssuerOfPatientID (0010,0021): the assigning authority of `id`.
    pub issuer: String,
}

impl PatientInfo {
    /// A key that groups a patient's data in the index without putting the
    /// PatientID itself anywhere it could leak into a path or a log line.
    pub fn key(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.issuer.as_bytes());
        h.update(b"\\");
        h.update(self.id.as_bytes());
        h.finalize().to_hex()[..16].to_string()
    }
}

/// A UID that an RT object points at, with what kind of object it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// RTSTRUCT → ReferencedFrameOfReferenceSequence
    FrameOfReference(String),
    /// RTSTRUCT → RTReferencedSeriesSequence: the planning image series
    ImageSeries(String),
    /// RTPLAN → ReferencedStructureSetSequence
    StructureSet(String),
    /// RTDOSE (and a replan) → ReferencedRTPlanSequence, with the relationship
    Plan {
        /// SOPInstanceUID of the referenced RT Plan.
        uid: String,
        /// RTPlanRelationship (300A,0055), e.g. `PREDECESSOR`, `VERIFIED_PLAN`;
        /// empty when absent.
        relationship: String,
    },
}

/// RT attributes that course assembly and dose selection decide on. Each
/// is empty when the object lacks it (e.g. dose fields on an RTPLAN).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RtAttributes {
    /// PlanIntent (300A,000A), e.g. `CURATIVE`, `PALLIATIVE`, `VERIFICATION`.
    pub plan_intent: String,
    /// ApprovalStatus (300E,0002): `APPROVED`, `UNAPPROVED` or `REJECTED`.
    pub approval_status: String,
    /// DoseSummationType (3004,000A), e.g. `PLAN`, `BEAM`, `FRACTION`.
    pub dose_summation_type: String,
    /// DoseType (3004,0004): `PHYSICAL`, `EFFECTIVE` or `ERROR`.
    pub dose_type: String,
    /// DoseUnits (3004,0002): `GY` or `RELATIVE`.
    pub dose_units: String,
    /// StructureSetLabel (3006,0002) of an RTSTRUCT.
    pub structure_set_label: String,
    /// RTPlanLabel (300A,0002) of an RTPLAN.
    pub plan_label: String,
}

/// The index entry of one stored SOP instance: identifying UIDs, the
/// attributes grouping and sorting need, and where and how it was stored.
/// Text attributes are empty when the data set lacks them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// SOPInstanceUID (0008,0018): the index key; never empty.
    pub sop_instance_uid: String,
    /// SOPClassUID (0008,0016), e.g. CT Image or RT Dose Storage.
    pub sop_class_uid: String,
    /// Transfer syntax UID from the file meta header.
    pub transfer_syntax_uid: String,
    /// StudyInstanceUID (0020,000D); never empty.
    pub study_instance_uid: String,
    /// SeriesInstanceUID (0020,000E); never empty.
    pub series_instance_uid: String,
    /// Patient module attributes.
    pub patient: PatientInfo,
    /// StudyDate (0008,0020), DICOM DA `YYYYMMDD`.
    pub study_date: String,
    /// StudyDescription (0008,1030).
    pub study_description: String,
    /// AccessionNumber (0008,0050).
    pub accession_number: String,
    /// Modality (0008,0060), e.g. `CT`, `MR`, `RTSTRUCT`, `RTPLAN`, `RTDOSE`.
    pub modality: String,
    /// SeriesNumber (0020,0011); None when absent or not an integer.
    pub series_number: Option<i64>,
    /// SeriesDescription (0008,103E).
    pub series_description: String,
    /// FrameOfReferenceUID (0020,0052); for an RTSTRUCT, which has none of
    /// its own, the first frame of reference it references.
    pub frame_of_reference_uid: String,
    /// InstanceNumber (0020,0013); None when absent or not an integer.
    pub instance_number: Option<i64>,
    /// ImageType (0008,0008), values joined with `\`, e.g.
    /// `ORIGINAL\PRIMARY\AXIAL`.
    pub image_type: String,
    /// ImagePositionPatient (0020,0032): centre of the first voxel, mm,
    /// patient LPS; None when absent or malformed (non-image objects).
    pub image_position_patient: Option<[f64; 3]>,
    /// ImageOrientationPatient (0020,0037): row then column direction
    /// cosines, patient LPS; None when absent or malformed.
    pub image_orientation_patient: Option<[f64; 6]>,
    /// SpecificCharacterSet (0008,0005); empty means the default repertoire.
    pub specific_character_set: String,
    /// UIDs this object references (RT objects only; empty otherwise).
    pub references: Vec<Reference>,
    /// RT attributes; Some only for RTSTRUCT, RTPLAN, RTDOSE, RTIMAGE and
    /// RTRECORD modalities.
    pub rt: Option<RtAttributes>,
    /// True when LossyImageCompression is `01` or the transfer syntax is a
    /// lossy JPEG / JPEG-LS / JPEG 2000 one.
    pub lossy_compressed: bool,
    /// Path relative to the data directory.
    pub path: String,
    /// Size of the stored file, bytes.
    pub file_size: u64,
    /// blake3 of the data set bytes as received: tells a re-send with
    /// changed content from a plain duplicate.
    pub content_hash: String,
    /// AE title of the peer that sent the instance (trimmed).
    pub calling_ae: String,
    /// RFC 3339, UTC.
    pub received_at: String,
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

fn floats<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    v.try_into().ok()
}

fn references(obj: &InMemDicomObject) -> Vec<Reference> {
    let mut refs = Vec::new();
    for fr in &items(obj, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE) {
        let uid = text(fr, tags::FRAME_OF_REFERENCE_UID);
        if !uid.is_empty() {
            refs.push(Reference::FrameOfReference(uid));
        }
        for study in &items(fr, tags::RT_REFERENCED_STUDY_SEQUENCE) {
            for series in &items(study, tags::RT_REFERENCED_SERIES_SEQUENCE) {
                let uid = text(series, tags::SERIES_INSTANCE_UID);
                if !uid.is_empty() {
                    refs.push(Reference::ImageSeries(uid));
                }
            }
        }
    }
    for ss in &items(obj, tags::REFERENCED_STRUCTURE_SET_SEQUENCE) {
        let uid = text(ss, tags::REFERENCED_SOP_INSTANCE_UID);
        if !uid.is_empty() {
            refs.push(Reference::StructureSet(uid));
        }
    }
    for plan in &items(obj, tags::REFERENCED_RT_PLAN_SEQUENCE) {
        let uid = text(plan, tags::REFERENCED_SOP_INSTANCE_UID);
        if !uid.is_empty() {
            refs.push(Reference::Plan {
                uid,
                relationship: text(plan, tags::RT_PLAN_RELATIONSHIP),
            });
        }
    }
    refs
}

/// Why a file could not be turned into an [`InstanceRecord`].
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file is not a readable DICOM Part 10 file; the parser's message.
    #[error("cannot parse data set: {0}")]
    Parse(String),
    /// A UID the index keys on (SOP instance, study or series) is absent or
    /// empty; names the attribute.
    #[error("data set lacks {0}")]
    Missing(&'static str),
}

/// Reads the index fields of a Part 10 file, stopping before Pixel Data.
pub fn read_record(path: &Path) -> Result<InstanceRecord, RecordError> {
    let file = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| RecordError::Parse(e.to_string()))?;
    let meta = file.meta();
    let ts = meta.transfer_syntax().trim_end_matches('\0').to_string();
    let obj: &InMemDicomObject = &file;
    let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID);
    if sop_instance_uid.is_empty() {
        return Err(RecordError::Missing("SOPInstanceUID"));
    }
    let study_instance_uid = text(obj, tags::STUDY_INSTANCE_UID);
    if study_instance_uid.is_empty() {
        return Err(RecordError::Missing("StudyInstanceUID"));
    }
    let series_instance_uid = text(obj, tags::SERIES_INSTANCE_UID);
    if series_instance_uid.is_empty() {
        return Err(RecordError::Missing("SeriesInstanceUID"));
    }
    let modality = text(obj, tags::MODALITY);
    let is_rt = matches!(
        modality.as_str(),
        "RTSTRUCT" | "RTPLAN" | "RTDOSE" | "RTIMAGE" | "RTRECORD"
    );
    let rt = is_rt.then(|| RtAttributes {
        plan_intent: text(obj, tags::PLAN_INTENT),
        approval_status: text(obj, tags::APPROVAL_STATUS),
        dose_summation_type: text(obj, tags::DOSE_SUMMATION_TYPE),
        dose_type: text(obj, tags::DOSE_TYPE),
        dose_units: text(obj, tags::DOSE_UNITS),
        structure_set_label: text(obj, tags::STRUCTURE_SET_LABEL),
        plan_label: text(obj, tags::RT_PLAN_LABEL),
    });
    let lossy = text(obj, tags::LOSSY_IMAGE_COMPRESSION) == "01"
        || matches!(
            ts.as_str(),
            "1.2.840.10008.1.2.4.50"
                | "1.2.840.10008.1.2.4.51"
                | "1.2.840.10008.1.2.4.81"
                | "1.2.840.10008.1.2.4.91"
        );
    let mut frame_of_reference_uid = text(obj, tags::FRAME_OF_REFERENCE_UID);
    let refs = references(obj);
    if frame_of_reference_uid.is_empty() {
        // An RTSTRUCT has no FrameOfReferenceUID of its own; the frame it
        // references is the one it lives in.
        if let Some(Reference::FrameOfReference(uid)) = refs
            .iter()
            .find(|r| matches!(r, Reference::FrameOfReference(_)))
        {
            frame_of_reference_uid = uid.clone();
        }
    }
    Ok(InstanceRecord {
        sop_instance_uid,
        sop_class_uid: text(obj, tags::SOP_CLASS_UID),
        transfer_syntax_uid: ts,
        study_instance_uid,
        series_instance_uid,
        patient: PatientInfo {
            id: text(obj, tags::PATIENT_ID),
            name: crate::dicom::attrs::person_name(obj, tags::PATIENT_NAME),
            birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
            sex: text(obj, tags::PATIENT_SEX),
            issuer: text(obj, tags::ISSUER_OF_PATIENT_ID),
        },
        study_date: text(obj, tags::STUDY_DATE),
        study_description: text(obj, tags::STUDY_DESCRIPTION),
        accession_number: text(obj, tags::ACCESSION_NUMBER),
        modality,
        series_number: int(obj, tags::SERIES_NUMBER),
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        frame_of_reference_uid,
        instance_number: int(obj, tags::INSTANCE_NUMBER),
        image_type: text(obj, tags::IMAGE_TYPE),
        image_position_patient: floats::<3>(obj, tags::IMAGE_POSITION_PATIENT),
        image_orientation_patient: floats::<6>(obj, tags::IMAGE_ORIENTATION_PATIENT),
        specific_character_set: text(obj, tags::SPECIFIC_CHARACTER_SET),
        references: refs,
        rt,
        lossy_compressed: lossy,
        ..InstanceRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::meta::FileMetaTableBuilder;

    /// Writes a minimal RT Structure Set whose patient name is in `charset`.
    fn write(dir: &Path, charset: &str, name: &str) -> std::path::PathBuf {
        let mut obj = InMemDicomObject::new_empty();
        let put = |obj: &mut InMemDicomObject, tag, vr, v: &str| {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        };
        put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, charset);
        put(
            &mut obj,
            tags::SOP_CLASS_UID,
            VR::UI,
            crate::dicom::uids::RT_STRUCTURE_SET_STORAGE,
        );
        put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4");
        put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.5");
        put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.6");
        put(&mut obj, tags::MODALITY, VR::CS, "RTSTRUCT");
        put(&mut obj, tags::PATIENT_NAME, VR::PN, name);
        put(&mut obj, tags::PATIENT_ID, VR::LO, "P1");
        let mut series = InMemDicomObject::new_empty();
        put(&mut series, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.7");
        let mut study = InMemDicomObject::new_empty();
        study.put(DataElement::new(
            tags::RT_REFERENCED_SERIES_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![series]),
        ));
        let mut frame = InMemDicomObject::new_empty();
        put(&mut frame, tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.3.8");
        frame.put(DataElement::new(
            tags::RT_REFERENCED_STUDY_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![study]),
        ));
        obj.put(DataElement::new(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![frame]),
        ));
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .media_storage_sop_class_uid(crate::dicom::uids::RT_STRUCTURE_SET_STORAGE)
                    .media_storage_sop_instance_uid("1.2.3.4")
                    .transfer_syntax(crate::dicom::uids::EXPLICIT_VR_LE),
            )
            .unwrap();
        let path = dir.join(format!("{}.dcm", charset.replace(' ', "_")));
        file.write_to_file(&path).unwrap();
        path
    }

    #[test]
    fn patient_names_are_decoded_by_their_character_set() {
        let dir = tempfile::tempdir().unwrap();
        for (charset, name, raw) in [
            ("ISO_IR 100", "Müller^Jürgen", &b"M\xfcller"[..]),
            ("ISO_IR 192", "Ærø^Åse", "Ærø".as_bytes()),
            ("GB18030", "王^小明", &[0xcd, 0xf5][..]),
        ] {
            let path = write(dir.path(), charset, name);
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                bytes.windows(raw.len()).any(|w| w == raw),
                "{charset}: name not encoded in its character set"
            );
            let rec = read_record(&path).unwrap();
            assert_eq!(rec.patient.name, name, "{charset}");
            assert_eq!(rec.specific_character_set, charset);
        }
    }

    #[test]
    fn japanese_names_in_iso_2022_are_decoded() {
        // PS3.5 Annex H: the default repertoire, then JIS X 0208 behind
        // ESC $ B and back to ASCII with ESC ( B, in each component group.
        let dir = tempfile::tempdir().unwrap();
        let encoded = "Yamada^Tarou=\u{1b}$B;3ED\u{1b}(B^\u{1b}$BB@O:\u{1b}(B=\u{1b}$B$d$^$@\u{1b}(B^\u{1b}$B$?$m$&\u{1b}(B";
        let path = write(dir.path(), "\\ISO 2022 IR 87", encoded);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.windows(5).any(|w| w == b"\x1b$B;3"),
            "not written as ISO 2022"
        );
        let rec = read_record(&path).unwrap();
        assert_eq!(rec.patient.name, "Yamada^Tarou=山田^太郎=やまだ^たろう");
    }

    #[test]
    fn rtstruct_references_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = read_record(&write(dir.path(), "ISO_IR 192", "A^B")).unwrap();
        assert_eq!(
            rec.references,
            vec![
                Reference::FrameOfReference("1.2.3.8".into()),
                Reference::ImageSeries("1.2.3.7".into())
            ]
        );
        // The structure set lives in the frame it references.
        assert_eq!(rec.frame_of_reference_uid, "1.2.3.8");
        assert!(rec.rt.is_some());
        assert_ne!(rec.patient.key(), PatientInfo::default().key());
    }
}
