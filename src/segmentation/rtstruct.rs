//! Writes an RT Structure Set (PS3.3 A.19) from planar contours: Patient,
//! General Study, RT Series, Frame of Reference, General Equipment,
//! Structure Set, ROI Contour, RT ROI Observations, Approval and SOP Common
//! modules.
//!
//! Patient and study attributes are copied from a CT slice of the series,
//! so the structure set files into the same patient and study wherever it
//! is sent. The file is Implicit VR Little Endian: in explicit VR, DS has a
//! 16-bit length, and a contour of a few thousand points does not fit.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::uids;

/// The conventional Referenced SOP Class of an RT Referenced Study item
/// (Detached Study Management, retired, but what planning systems write
/// and expect there).
pub const STUDY_REFERENCE_SOP_CLASS: &str = "1.2.840.10008.3.1.2.3.1";

/// One image of the referenced series.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

/// The image series the contours are drawn on.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRef {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    /// Every image of the series; [`PlanarContour::image`] indexes it.
    pub images: Vec<ImageRef>,
}

/// What an ROI is called and how it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiSpec {
    pub number: u32,
    pub name: String,
    pub colour: [u8; 3],
    /// RT ROI Interpreted Type: EXTERNAL, ORGAN, PTV, …
    pub interpreted_type: String,
    /// ROI Generation Description (LO: cut to 64 characters): the model
    /// and its version.
    pub generation_description: String,
}

/// One closed planar contour, in patient coordinates (mm), on one image.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanarContour {
    pub image: usize,
    pub points: Vec<[f64; 3]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoiContours {
    pub spec: RoiSpec,
    pub contours: Vec<PlanarContour>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// Root of the UIDs made here (`<root>.<random digits>`).
    pub uid_root: String,
    /// Series Description: the model and its version.
    pub series_description: String,
    /// Structure Set Label (SH: at most 16 characters).
    pub label: String,
    /// Structure Set Name and Description.
    pub name: String,
    pub description: String,
}

/// The UIDs a written structure set was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
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

fn put_multi(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: Vec<String>) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(values.into_iter().collect()),
    ));
}

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

/// A coordinate as DS: micrometre precision, well inside any tolerance a
/// contour is drawn with, and at most 16 characters for any position in a
/// patient.
fn ds(v: f64) -> String {
    let mut s = format!("{v:.3}");
    let t = s.trim_end_matches('0').trim_end_matches('.').len();
    s.truncate(t);
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// Current UTC date and time as DICOM DA and TM.
pub(crate) fn now_da_tm() -> (String, String) {
    // "YYYY-MM-DDTHH:MM:SSZ"
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    (digits[..8].to_string(), digits[8..14].to_string())
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

/// Builds the structure set. `ct` is any image of the series (its patient
/// and study attributes are copied).
pub fn build(
    ct: &InMemDicomObject,
    series: &SeriesRef,
    rois: &[RoiContours],
    opts: &WriterOptions,
) -> Result<(FileDicomObject<InMemDicomObject>, Written)> {
    ensure!(!series.images.is_empty(), "no image to reference");
    ensure!(
        opts.label.chars().count() <= 16 && !opts.label.is_empty(),
        "structure set label must be 1 to 16 characters"
    );
    let ct_study = ct
        .get(tags::STUDY_INSTANCE_UID)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches('\0').trim().to_string());
    if ct_study.as_deref() != Some(series.study_instance_uid.as_str()) {
        bail!(
            "the CT slice belongs to study {:?}, the series to {}",
            ct_study,
            series.study_instance_uid
        );
    }
    let mut rng = rand::thread_rng();
    let sop_instance_uid = crate::synth::generate_uid(&opts.uid_root, &mut rng)?;
    let series_instance_uid = crate::synth::generate_uid(&opts.uid_root, &mut rng)?;
    let (date, time) = now_da_tm();
    let mut obj = InMemDicomObject::new_empty();

    derived_object_header(
        &mut obj,
        ct,
        uids::RT_STRUCTURE_SET_STORAGE,
        &sop_instance_uid,
        &date,
        &time,
    );

    // RT Series
    put(&mut obj, tags::MODALITY, VR::CS, "RTSTRUCT");
    put(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &series_instance_uid,
    );
    // Type 2 and left empty: no number we pick is known to be free in
    // the study.
    obj.put(DataElement::new(
        tags::SERIES_NUMBER,
        VR::IS,
        PrimitiveValue::Empty,
    ));
    put(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    put(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        lo(&opts.series_description),
    );
    obj.put(DataElement::new(
        tags::OPERATORS_NAME,
        VR::PN,
        PrimitiveValue::Empty,
    ));

    // Frame of Reference: the referenced series' own (dciodvfy checks this
    // module in the current IOD).
    put(
        &mut obj,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &series.frame_of_reference_uid,
    );
    match ct.get(tags::POSITION_REFERENCE_INDICATOR) {
        Some(e) => obj.put(e.clone()),
        None => obj.put(DataElement::new(
            tags::POSITION_REFERENCE_INDICATOR,
            VR::LO,
            PrimitiveValue::Empty,
        )),
    };

    // General Equipment
    put(&mut obj, tags::MANUFACTURER, VR::LO, "rtnode");
    put(&mut obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "rtnode");
    put(
        &mut obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("rtnode ", env!("CARGO_PKG_VERSION")),
    );

    // Structure Set
    put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(&mut obj, tags::STRUCTURE_SET_LABEL, VR::SH, &opts.label);
    put(&mut obj, tags::STRUCTURE_SET_NAME, VR::LO, lo(&opts.name));
    put(
        &mut obj,
        tags::STRUCTURE_SET_DESCRIPTION,
        VR::ST,
        opts.description.chars().take(1024).collect::<String>(),
    );
    put(&mut obj, tags::STRUCTURE_SET_DATE, VR::DA, &date);
    put(&mut obj, tags::STRUCTURE_SET_TIME, VR::TM, &time);
    let mut ref_series = InMemDicomObject::new_empty();
    put(
        &mut ref_series,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &series.series_instance_uid,
    );
    put_seq(
        &mut ref_series,
        tags::CONTOUR_IMAGE_SEQUENCE,
        series.images.iter().map(image_item).collect(),
    );
    let mut ref_study = InMemDicomObject::new_empty();
    put(
        &mut ref_study,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        STUDY_REFERENCE_SOP_CLASS,
    );
    put(
        &mut ref_study,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &series.study_instance_uid,
    );
    put_seq(
        &mut ref_study,
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        vec![ref_series],
    );
    let mut ref_frame = InMemDicomObject::new_empty();
    put(
        &mut ref_frame,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &series.frame_of_reference_uid,
    );
    put_seq(
        &mut ref_frame,
        tags::RT_REFERENCED_STUDY_SEQUENCE,
        vec![ref_study],
    );
    put_seq(
        &mut obj,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![ref_frame],
    );

    let mut ss_rois = Vec::new();
    let mut contour_rois = Vec::new();
    let mut observations = Vec::new();
    for (i, roi) in rois.iter().enumerate() {
        let s = &roi.spec;
        ensure!(
            !s.name.is_empty() && s.name.chars().count() <= 64 && !s.name.contains('\\'),
            "ROI name {:?} is not a valid LO value",
            s.name
        );
        let mut it = InMemDicomObject::new_empty();
        put(&mut it, tags::ROI_NUMBER, VR::IS, s.number.to_string());
        put(
            &mut it,
            tags::REFERENCED_FRAME_OF_REFERENCE_UID,
            VR::UI,
            &series.frame_of_reference_uid,
        );
        put(&mut it, tags::ROI_NAME, VR::LO, &s.name);
        put(&mut it, tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC");
        put(
            &mut it,
            tags::ROI_GENERATION_DESCRIPTION,
            VR::LO,
            lo(&s.generation_description),
        );
        ss_rois.push(it);

        let mut contours = Vec::with_capacity(roi.contours.len());
        for (n, c) in roi.contours.iter().enumerate() {
            let img = series.images.get(c.image).with_context(|| {
                format!("contour on image {} of {}", c.image, series.images.len())
            })?;
            ensure!(c.points.len() >= 3, "a closed contour needs three points");
            let mut it = InMemDicomObject::new_empty();
            put_seq(&mut it, tags::CONTOUR_IMAGE_SEQUENCE, vec![image_item(img)]);
            put(
                &mut it,
                tags::CONTOUR_GEOMETRIC_TYPE,
                VR::CS,
                "CLOSED_PLANAR",
            );
            put(
                &mut it,
                tags::NUMBER_OF_CONTOUR_POINTS,
                VR::IS,
                c.points.len().to_string(),
            );
            put(&mut it, tags::CONTOUR_NUMBER, VR::IS, (n + 1).to_string());
            put_multi(
                &mut it,
                tags::CONTOUR_DATA,
                VR::DS,
                c.points.iter().flat_map(|p| p.map(ds)).collect(),
            );
            contours.push(it);
        }
        let mut it = InMemDicomObject::new_empty();
        put_multi(
            &mut it,
            tags::ROI_DISPLAY_COLOR,
            VR::IS,
            s.colour.iter().map(|c| c.to_string()).collect(),
        );
        put(
            &mut it,
            tags::REFERENCED_ROI_NUMBER,
            VR::IS,
            s.number.to_string(),
        );
        if !contours.is_empty() {
            put_seq(&mut it, tags::CONTOUR_SEQUENCE, contours);
        }
        contour_rois.push(it);

        let mut it = InMemDicomObject::new_empty();
        put(
            &mut it,
            tags::OBSERVATION_NUMBER,
            VR::IS,
            (i + 1).to_string(),
        );
        put(
            &mut it,
            tags::REFERENCED_ROI_NUMBER,
            VR::IS,
            s.number.to_string(),
        );
        put(
            &mut it,
            tags::RTROI_INTERPRETED_TYPE,
            VR::CS,
            &s.interpreted_type,
        );
        it.put(DataElement::new(
            tags::ROI_INTERPRETER,
            VR::PN,
            PrimitiveValue::Empty,
        ));
        observations.push(it);
    }
    put_seq(&mut obj, tags::STRUCTURE_SET_ROI_SEQUENCE, ss_rois);
    put_seq(&mut obj, tags::ROI_CONTOUR_SEQUENCE, contour_rois);
    put_seq(&mut obj, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);

    // Approval: a machine's contours wait for a clinician.
    put(&mut obj, tags::APPROVAL_STATUS, VR::CS, "UNAPPROVED");

    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(uids::RT_STRUCTURE_SET_STORAGE)
                .media_storage_sop_instance_uid(&sop_instance_uid)
                .transfer_syntax(uids::IMPLICIT_VR_LE)
                .implementation_class_uid(crate::ul::IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(crate::ul::IMPLEMENTATION_VERSION_NAME),
        )
        .context("building the file meta group")?;
    Ok((
        file,
        Written {
            sop_instance_uid,
            series_instance_uid,
        },
    ))
}

/// Builds the structure set and writes it to `path`.
pub fn write(
    path: &Path,
    ct: &InMemDicomObject,
    series: &SeriesRef,
    rois: &[RoiContours],
    opts: &WriterOptions,
) -> Result<Written> {
    let (file, written) = build(ct, series, rois, opts)?;
    file.write_to_file(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_are_short_and_exact_enough() {
        assert_eq!(ds(0.0), "0");
        assert_eq!(ds(-0.0001), "0");
        assert_eq!(ds(-249.51171875), "-249.512");
        assert_eq!(ds(12.5), "12.5");
        assert!(ds(-99999.9999).len() <= 16);
    }

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

    #[test]
    fn date_and_time_have_dicom_shape() {
        let (d, t) = now_da_tm();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.starts_with("20"));
    }
}
