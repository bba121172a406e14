//! The report stage: the adapter from a course to the report engine
//! ([`crate::report`]). It gathers what the course and its upstream stages
//! made (the CT volume from organize, the structure sets, dvh.json and the
//! DVH CSVs, qc.json, radiomics.csv, the version manifest), hands them to
//! the engine, and writes `report.html`, `report.pdf` and `report.dcm` (that
//! PDF as an Encapsulated PDF in the course's study). Only the CT volume is
//! required: the other inputs are read when the stages made them, and an
//! unreadable one is named in the report rather than failing it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dicom_dictionary_std::tags;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::organize::{GEOMETRY_FILE, VOLUME_FILE};
use super::segmentation::RTSTRUCT_FILE;
use super::{member_keys, Inputs, Outcome, Stage, StageContext, StageId};
use crate::course::Course;
use crate::report::content::{self, ReportInputs};
use crate::report::csv::Csv;
use crate::report::{dicom, html, pdf};
use crate::rt::RtStruct;
use crate::segmentation::rtstruct::ImageRef;
use crate::segmentation::SegmentationOptions;
use crate::volume::Volume;

/// The report as one self-contained HTML page.
pub const HTML_FILE: &str = "report.html";
/// The report as PDF/A-2b.
pub const PDF_FILE: &str = "report.pdf";
/// The PDF as an Encapsulated PDF object in the course's study, for export.
pub const DICOM_FILE: &str = "report.dcm";

/// The report stage.
pub struct Report {
    /// Root of the report's UIDs: the segmentation writer's.
    pub uid_root: String,
    /// `report.v_gy`: VxGy metrics listed besides the constrained ones.
    pub v_gy: Vec<f64>,
    /// `report.fonts` and `report.bold_fonts`, resolved.
    pub fonts: pdf::FontFiles,
}

impl Default for Report {
    fn default() -> Self {
        Report {
            uid_root: SegmentationOptions::default().uid_root,
            v_gy: Vec::new(),
            fonts: pdf::FontFiles::default(),
        }
    }
}

impl Report {
    /// The stage for the `report:` section, font paths taken relative to
    /// `base` (the config's folder).
    pub fn from_section(section: &crate::report::settings::ReportSection, base: &Path) -> Self {
        Report {
            v_gy: section.v_gy.clone(),
            fonts: section.font_files(base),
            ..Report::default()
        }
    }
}

#[derive(Deserialize)]
struct GeometryFile {
    series_instance_uid: String,
    slices: Vec<String>,
}

/// Reads an optional input; a missing file is simply absent, an unreadable
/// one is absent and said so in the report.
fn optional<T>(
    path: Option<PathBuf>,
    what: &str,
    missing: &mut Vec<String>,
    read: impl FnOnce(&Path) -> Result<T>,
) -> Option<T> {
    let path = path?;
    if !path.exists() {
        return None;
    }
    match read(&path) {
        Ok(v) => Some(v),
        Err(e) => {
            warn!(path = %path.display(), error = %format!("{e:#}"), "report input unreadable");
            missing.push(format!("{what}: unreadable ({e:#})"));
            None
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
}

impl Stage for Report {
    fn name(&self) -> StageId {
        StageId::Report
    }

    fn after(&self) -> &'static [StageId] {
        &[StageId::Organize]
    }

    fn reads_if_present(&self) -> &'static [StageId] {
        &[
            StageId::Segmentation,
            StageId::Qc,
            StageId::Dvh,
            StageId::Radiomics,
        ]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        if course.images.is_empty() {
            return Err("no planning image series".into());
        }
        // Patient and study come from the images; the structure sets and
        // doses are cited in the DICOM object.
        let mut keys = member_keys(course.all_members());
        keys.push(format!("uid_root:{}", self.uid_root));
        keys.push(format!("v_gy:{:?}", self.v_gy));
        keys.push(format!("fonts:{:?}", self.fonts));
        Ok(keys)
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        let course = ctx.course;
        let up = |stage: StageId, file: &str| ctx.upstream.get(&stage).map(|d| d.join(file));
        (ctx.progress)(0, 4);
        // First, so that a missing font fails the stage before any work.
        let fonts = pdf::Fonts::load(&self.fonts)?;
        let organize = ctx
            .upstream
            .get(&StageId::Organize)
            .context("the organize output is missing")?;
        let gf: GeometryFile = read_json(&organize.join(GEOMETRY_FILE))?;
        let ct = Volume::read_nrrd(&organize.join(VOLUME_FILE))?;

        let first_uid = gf.slices.first().context("organize listed no slices")?;
        let first = course
            .images
            .iter()
            .find(|m| &m.sop_instance_uid == first_uid)
            .or_else(|| course.images.first())
            .context("the course has no images")?;
        let ct_path = ctx.instance_path(&first.path);
        let ct_header = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&ct_path)
            .with_context(|| format!("reading {}", ct_path.display()))?;
        let ct_class = crate::dicom::attrs::text(&ct_header, tags::SOP_CLASS_UID);
        let ct_class = if ct_class.is_empty() {
            crate::dicom::uids::CT_IMAGE_STORAGE.to_string()
        } else {
            ct_class
        };

        let mut missing = Vec::new();
        let plan_path = course
            .current_structure_set()
            .map(|m| ctx.instance_path(&m.path));
        let plan_structures = optional(plan_path, "the structure set", &mut missing, |p| {
            RtStruct::from_file(p)
        });
        let auto_structures = optional(
            up(StageId::Segmentation, RTSTRUCT_FILE),
            "the auto-segmentation RTSTRUCT",
            &mut missing,
            RtStruct::from_file,
        );
        let dvh: Option<serde_json::Value> = optional(
            up(StageId::Dvh, "dvh.json"),
            "dvh.json",
            &mut missing,
            read_json,
        );
        let dvh_metrics = optional(
            up(StageId::Dvh, "dvh_metrics.csv"),
            "dvh_metrics.csv",
            &mut missing,
            Csv::read,
        );
        let dvh_constraints = optional(
            up(StageId::Dvh, "dvh_constraints.csv"),
            "dvh_constraints.csv",
            &mut missing,
            Csv::read,
        );
        let qc = optional(
            up(StageId::Qc, super::qc::REPORT_FILE),
            "qc.json",
            &mut missing,
            read_json,
        );
        let radiomics = optional(
            up(StageId::Radiomics, "radiomics.csv"),
            "radiomics.csv",
            &mut missing,
            Csv::read,
        );
        let manifest = optional(
            Some(
                ctx.data_dir
                    .join("courses")
                    .join(&course.id)
                    .join(format!("v{}", ctx.version))
                    .join("manifest.json"),
            ),
            "the version manifest",
            &mut missing,
            read_json,
        );
        if gf.series_instance_uid != course.planning_series_uid {
            missing.push(format!(
                "organize read series {}, the course's is {}",
                gf.series_instance_uid, course.planning_series_uid
            ));
        }
        (ctx.progress)(1, 4);

        let created = crate::time::now_rfc3339();
        let inputs = ReportInputs {
            course_id: course.id.clone(),
            version: ctx.version,
            patient_name: course.patient.name.clone(),
            patient_id: course.patient.id.clone(),
            created: created.clone(),
            ct: Some(ct),
            plan_structures,
            auto_structures,
            dvh,
            dvh_metrics,
            dvh_constraints,
            qc,
            radiomics,
            manifest,
            stages_before: StageId::ALL
                .iter()
                .take_while(|s| **s != StageId::Report)
                .map(|s| s.as_str().to_owned())
                .collect(),
            missing,
            v_gy: self.v_gy.clone(),
        };
        let doc = content::build(&inputs);
        let footer = format!(
            "rtnode {} — {} ({}) — course {} v{}",
            env!("CARGO_PKG_VERSION"),
            content::display_name(&inputs.patient_name),
            inputs.patient_id,
            inputs.course_id,
            inputs.version
        );
        let html = html::render(&doc, &footer)?;
        let html_path = ctx.out_dir.join(HTML_FILE);
        std::fs::write(&html_path, html)
            .with_context(|| format!("writing {}", html_path.display()))?;
        (ctx.progress)(2, 4);
        let pdf = pdf::render(&doc, &footer, &created, &fonts)?;
        let pdf_path = ctx.out_dir.join(PDF_FILE);
        std::fs::write(&pdf_path, &pdf)
            .with_context(|| format!("writing {}", pdf_path.display()))?;
        (ctx.progress)(3, 4);

        let sources = sources(course, &gf.slices, &ct_class, &inputs, inputs.dvh.as_ref());
        let written = dicom::write(
            &ctx.out_dir.join(DICOM_FILE),
            &ct_header,
            &pdf,
            &dicom::PdfOptions {
                uid_root: &self.uid_root,
                title: &doc.title,
                sources: &sources,
            },
        )?;
        (ctx.progress)(4, 4);
        info!(course = %course.id, version = ctx.version, pdf_bytes = pdf.len(), "report written");
        Ok(Outcome::Done {
            summary: json!({
                "sop_instance_uid": written.sop_instance_uid,
                "series_instance_uid": written.series_instance_uid,
                "pdf_bytes": pdf.len(),
                "sources": sources.len(),
                "missing": inputs.missing,
            }),
            created: vec![written.sop_instance_uid],
        })
    }
}

/// What the report was built from, for SourceInstanceSequence: the CT
/// images, the structure sets drawn, and the doses the DVH used (every
/// course dose when there is no DVH).
fn sources(
    course: &Course,
    slices: &[String],
    ct_class: &str,
    inputs: &ReportInputs,
    dvh: Option<&serde_json::Value>,
) -> Vec<ImageRef> {
    let item = |class: &str, uid: &str| ImageRef {
        sop_class_uid: class.to_string(),
        sop_instance_uid: uid.to_string(),
    };
    let mut out: Vec<ImageRef> = slices.iter().map(|u| item(ct_class, u)).collect();
    for rs in [&inputs.plan_structures, &inputs.auto_structures]
        .into_iter()
        .flatten()
    {
        if !rs.sop_instance_uid.is_empty() {
            out.push(item(
                crate::dicom::uids::RT_STRUCTURE_SET_STORAGE,
                &rs.sop_instance_uid,
            ));
        }
    }
    let dose_uids: Vec<String> = match dvh.and_then(|d| d["dose"]["dose_uids"].as_array()) {
        Some(a) => a
            .iter()
            .filter_map(|u| u.as_str().map(str::to_string))
            .collect(),
        None => course
            .doses
            .iter()
            .map(|d| d.member.sop_instance_uid.clone())
            .collect(),
    };
    for u in dose_uids {
        out.push(item(crate::dicom::uids::RT_DOSE_STORAGE, &u));
    }
    out
}
