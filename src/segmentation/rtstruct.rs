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
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

pub use crate::dicom::derived::ImageRef;
use crate::dicom::derived::{
    derived_object_header, image_item, lo, put, put_equipment, put_multi, put_seq,
};
use crate::dicom::uids;
use crate::dicom::values::{ds_fixed, now_da_tm};

/// The conventional Referenced SOP Class of an RT Referenced Study item
/// (Detached Study Management, retired, but what planning systems write
/// and expect there).
pub const STUDY_REFERENCE_SOP_CLASS: &str = "1.2.840.10008.3.1.2.3.1";

/// The image series the contours are drawn on.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRef {
    /// StudyInstanceUID of the images (the structure set joins that study).
    pub study_instance_uid: String,
    /// SeriesInstanceUID of the images.
    pub series_instance_uid: String,
    /// FrameOfReferenceUID in which the contour points are given.
    pub frame_of_reference_uid: String,
    /// Every image of the series; [`PlanarContour::image`] indexes it.
    pub images: Vec<ImageRef>,
}

/// What an ROI is called and how it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiSpec {
    /// ROI Number, unique within the structure set (≥ 1).
    pub number: u32,
    /// ROI Name (TG-263 where possible).
    pub name: String,
    /// ROI Display Color, RGB.
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
    /// Index into [`SeriesRef::images`] of the image the contour lies on.
    pub image: usize,
    /// At least three vertices in patient LPS coordinates, mm; closed implicitly (the
    /// last joins the first), as CLOSED_PLANAR.
    pub points: Vec<[f64; 3]>,
}

/// One ROI and its contours.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiContours {
    /// Its number, name, colour and type.
    pub spec: RoiSpec,
    /// Its contours, in any order; may be empty (an ROI with no contour).
    pub contours: Vec<PlanarContour>,
}

/// How the structure set is labelled and identified.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// Root of the UIDs made here (`<root>.<random digits>`).
    pub uid_root: String,
    /// Series Description: the model and its version.
    pub series_description: String,
    /// Structure Set Label (SH: at most 16 characters).
    pub label: String,
    /// Structure Set Name (LO: cut to 64 characters).
    pub name: String,
    /// Structure Set Description (cut to 1024 characters): how the
    /// contours were made.
    pub description: String,
}

/// The UIDs a written structure set was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Its SOPInstanceUID.
    pub sop_instance_uid: String,
    /// The new series it is in (SeriesInstanceUID).
    pub series_instance_uid: String,
}

/// A coordinate as DS: micrometre precision, well inside any tolerance a
/// contour is drawn with, and at most 16 characters for any position in a
/// patient.
fn ds(v: f64) -> String {
    ds_fixed(v, 3)
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
    let sop_instance_uid = uids::generate_uid(&opts.uid_root, &mut rng)?;
    let series_instance_uid = uids::generate_uid(&opts.uid_root, &mut rng)?;
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
    put_equipment(&mut obj);

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
    fn date_and_time_have_dicom_shape() {
        let (d, t) = now_da_tm();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        assert!(d.starts_with("20"));
    }
}
