//! Helpers for the objects rtnode derives from a CT (the segmentation's RT
//! Structure Set, the report's Encapsulated PDF): the patient and study
//! attributes copied from the CT so that the new object files into the same
//! patient and study wherever it goes, a new series, SOP Common with UTC
//! creation date and time, and references to the images it was made from.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::InMemDicomObject;

/// One referenced image (or other instance): its class and instance UID.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    /// ReferencedSOPClassUID of the instance.
    pub sop_class_uid: String,
    /// ReferencedSOPInstanceUID of the instance.
    pub sop_instance_uid: String,
}

/// Patient module, then the optional Patient Study attributes, copied when
/// the CT has them.
pub(crate) const PATIENT_TAGS: &[Tag] = &[
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_BIRTH_TIME,
    tags::PATIENT_SEX,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::OTHER_PATIENT_NAMES,
    tags::PATIENT_COMMENTS,
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
    tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
];

/// General Study module.
pub(crate) const STUDY_TAGS: &[Tag] = &[
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::ISSUER_OF_ACCESSION_NUMBER_SEQUENCE,
    tags::STUDY_DESCRIPTION,
];

/// Type 2 attributes of those modules: present even when the CT lacks them.
pub(crate) const TYPE2_TAGS: &[(Tag, VR)] = &[
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::STUDY_DATE, VR::DA),
    (tags::STUDY_TIME, VR::TM),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::STUDY_ID, VR::SH),
    (tags::ACCESSION_NUMBER, VR::SH),
];

/// Puts a single text value.
pub(crate) fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<String>) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::from(value.into()),
    ));
}

/// The start of every object rtnode derives from a CT: SOP Common (the
/// CT's SpecificCharacterSet, so that copied names decode the same; class,
/// instance, creation date and time in UTC) and the Patient, Patient Study
/// and General Study attributes copied from `ct`, with the Type 2 ones the
/// CT lacks present and empty.
pub(crate) fn derived_object_header(
    obj: &mut InMemDicomObject,
    ct: &InMemDicomObject,
    sop_class_uid: &str,
    sop_instance_uid: &str,
    date: &str,
    time: &str,
) {
    if let Some(cs) = character_set(ct) {
        put(obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, cs);
    }
    put(obj, tags::SOP_CLASS_UID, VR::UI, sop_class_uid);
    put(obj, tags::SOP_INSTANCE_UID, VR::UI, sop_instance_uid);
    put(obj, tags::INSTANCE_CREATION_DATE, VR::DA, date);
    put(obj, tags::INSTANCE_CREATION_TIME, VR::TM, time);
    // DA and TM are local by convention; ours are UTC, and say so.
    put(obj, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");
    for &tag in PATIENT_TAGS.iter().chain(STUDY_TAGS) {
        if let Some(e) = ct.get(tag) {
            obj.put(e.clone());
        }
    }
    for &(tag, vr) in TYPE2_TAGS {
        if obj.get(tag).is_none() {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
        }
    }
}

/// Puts a multi-valued text element.
pub(crate) fn put_multi(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: Vec<String>) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(values.into_iter().collect()),
    ));
}

/// Puts a sequence of `items`.
pub(crate) fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A free-text LO value: descriptions are informative, so a long one is
/// cut rather than refused.
pub(crate) fn lo(s: &str) -> String {
    s.chars()
        .filter(|&c| c != '\\' && !c.is_control())
        .take(64)
        .collect()
}

/// A Referenced SOP Class/Instance item naming `img`.
pub(crate) fn image_item(img: &ImageRef) -> InMemDicomObject {
    let mut it = InMemDicomObject::new_empty();
    put(
        &mut it,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &img.sop_class_uid,
    );
    put(
        &mut it,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &img.sop_instance_uid,
    );
    it
}

/// The character set to write: the CT's when dicom-rs can encode it (every
/// single-valued set), else UTF-8, which encodes whatever names were
/// decoded from code-extension sets such as ISO 2022 IR 87.
pub(crate) fn character_set(ct: &InMemDicomObject) -> Option<String> {
    let values: Vec<String> = ct
        .get(tags::SPECIFIC_CHARACTER_SET)
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| v.iter().map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    match values.as_slice() {
        [] => None,
        [one] if one.is_empty() => None,
        [one] if SpecificCharacterSet::from_code(one).is_some() => Some(one.clone()),
        _ => Some("ISO_IR 192".into()),
    }
}

/// The General Equipment module of an object rtnode made: rtnode as the
/// manufacturer and model, and this build's version.
pub fn put_equipment(obj: &mut InMemDicomObject) {
    put(obj, tags::MANUFACTURER, VR::LO, "rtnode");
    put(obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "rtnode");
    put(
        obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("rtnode ", env!("CARGO_PKG_VERSION")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ct_character_set_is_kept_when_it_can_be_written() {
        let with = |v: &[&str]| {
            let mut o = InMemDicomObject::new_empty();
            put_multi(
                &mut o,
                tags::SPECIFIC_CHARACTER_SET,
                VR::CS,
                v.iter().map(|s| s.to_string()).collect(),
            );
            character_set(&o)
        };
        assert_eq!(with(&["ISO_IR 100"]), Some("ISO_IR 100".into()));
        assert_eq!(with(&["GB18030"]), Some("GB18030".into()));
        assert_eq!(with(&[""]), None);
        assert_eq!(
            with(&["ISO 2022 IR 6", "ISO 2022 IR 87"]),
            Some("ISO_IR 192".into())
        );
        assert_eq!(character_set(&InMemDicomObject::new_empty()), None);
    }
}
