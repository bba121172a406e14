//! The report as an Encapsulated PDF (PS3.3 A.45.1): Patient and General
//! Study copied from the course's CT (so it files into the same study
//! wherever it goes), Encapsulated Document Series (DOC), General and SC
//! Equipment (WSD: made by a workstation, not acquired), Encapsulated
//! Document with the objects it was built from in SourceInstanceSequence,
//! and SOP Common. Written in the style of the segmentation RTSTRUCT writer
//! and with its UID root.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::dicom::derived::{
    derived_object_header, image_item, lo, put, put_equipment, put_seq, ImageRef,
};
use crate::dicom::uids;
use crate::dicom::values::now_da_tm;

/// SOP Class UID of Encapsulated PDF Storage.
pub const ENCAPSULATED_PDF_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.104.1";

/// Type 1 in this IOD, unlike the RTSTRUCT's; a number high enough to stay
/// clear of the series a scanner or planning system numbers from 1.
const SERIES_NUMBER: &str = "9701";

/// What the Encapsulated PDF needs besides the PDF and the CT.
pub struct PdfOptions<'a> {
    /// Organisation UID root under which the new SOP Instance and Series
    /// UIDs are generated.
    pub uid_root: &'a str,
    /// DocumentTitle and SeriesDescription.
    pub title: &'a str,
    /// Every object the report shows: CT images, structure sets, doses.
    pub sources: &'a [ImageRef],
}

#[derive(Debug, Clone, PartialEq)]
/// The UIDs given to a newly made Encapsulated PDF.
pub struct Written {
    /// Its SOPInstanceUID.
    pub sop_instance_uid: String,
    /// The new series it alone is in (SeriesInstanceUID).
    pub series_instance_uid: String,
}

fn code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    let mut it = InMemDicomObject::new_empty();
    put(&mut it, tags::CODE_VALUE, VR::SH, value);
    put(&mut it, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    put(&mut it, tags::CODE_MEANING, VR::LO, meaning);
    it
}

/// Builds the Encapsulated PDF around `pdf`. `ct` is an image of the
/// course's planning series (its patient and study attributes are copied).
pub fn build(
    ct: &InMemDicomObject,
    pdf: &[u8],
    opts: &PdfOptions,
) -> Result<(FileDicomObject<InMemDicomObject>, Written)> {
    ensure!(pdf.starts_with(b"%PDF-"), "not a PDF document");
    ensure!(
        ct.get(tags::STUDY_INSTANCE_UID).is_some(),
        "the CT has no StudyInstanceUID"
    );
    let mut rng = rand::thread_rng();
    let sop_instance_uid = uids::generate_uid(opts.uid_root, &mut rng)?;
    let series_instance_uid = uids::generate_uid(opts.uid_root, &mut rng)?;
    let (date, time) = now_da_tm();
    let mut obj = InMemDicomObject::new_empty();

    derived_object_header(
        &mut obj,
        ct,
        ENCAPSULATED_PDF_STORAGE,
        &sop_instance_uid,
        &date,
        &time,
    );

    // Encapsulated Document Series
    put(&mut obj, tags::MODALITY, VR::CS, "DOC");
    put(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &series_instance_uid,
    );
    put(&mut obj, tags::SERIES_NUMBER, VR::IS, SERIES_NUMBER);
    put(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    put(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, lo(opts.title));

    // General Equipment
    put_equipment(&mut obj);

    // SC Equipment: a workstation made it.
    put(&mut obj, tags::CONVERSION_TYPE, VR::CS, "WSD");

    // Encapsulated Document
    put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(&mut obj, tags::CONTENT_DATE, VR::DA, &date);
    put(&mut obj, tags::CONTENT_TIME, VR::TM, &time);
    put(
        &mut obj,
        tags::ACQUISITION_DATE_TIME,
        VR::DT,
        format!("{date}{time}+0000"),
    );
    // The patient's name and ID are printed in the document.
    put(&mut obj, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put(&mut obj, tags::DOCUMENT_TITLE, VR::ST, lo(opts.title));
    // Type 2, zero or one item: the coded document title. LOINC 18748-4 is
    // the generic report title of the DICOM document-title context groups
    // (CID 7000); no code names an RT course report more closely.
    put_seq(
        &mut obj,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item("18748-4", "LN", "Diagnostic Imaging Report")],
    );
    if !opts.sources.is_empty() {
        put_seq(
            &mut obj,
            tags::SOURCE_INSTANCE_SEQUENCE,
            opts.sources.iter().map(image_item).collect(),
        );
    }
    put(
        &mut obj,
        tags::MIME_TYPE_OF_ENCAPSULATED_DOCUMENT,
        VR::LO,
        "application/pdf",
    );
    // OB values have even length: a PDF of odd length gets one NUL byte
    // (readers stop at %%EOF), and the true length is said separately.
    let mut bytes = pdf.to_vec();
    let true_len = u32::try_from(bytes.len()).context("PDF over 4 GiB")?;
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    obj.put(DataElement::new(
        tags::ENCAPSULATED_DOCUMENT_LENGTH,
        VR::UL,
        PrimitiveValue::from(true_len),
    ));
    obj.put(DataElement::new(
        tags::ENCAPSULATED_DOCUMENT,
        VR::OB,
        PrimitiveValue::from(bytes),
    ));

    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(ENCAPSULATED_PDF_STORAGE)
                .media_storage_sop_instance_uid(&sop_instance_uid)
                .transfer_syntax(uids::EXPLICIT_VR_LE)
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

/// [`build`]s the Encapsulated PDF and writes it as a Part 10 file at
/// `path`.
pub fn write(path: &Path, ct: &InMemDicomObject, pdf: &[u8], opts: &PdfOptions) -> Result<Written> {
    let (file, written) = build(ct, pdf, opts)?;
    file.write_to_file(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(written)
}
