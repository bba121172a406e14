//! The radiomics stage: the adapter from a course to the radiomics engine
//! (`crate::radiomics`). Every ROI of the current structure set (and of the
//! auto-segmentation, when it made any) on organize's CT volume, through
//! `radiomics::rois::compute`, into `radiomics.csv` and `radiomics.json`.

use anyhow::{Context, Result};
use serde_json::json;

use crate::course::Course;
use crate::radiomics::rois::{compute, write_outputs};
use crate::radiomics::{Params, RadiomicsSection};
use crate::rt::RtStruct;
use crate::stages::organize::VOLUME_FILE;
use crate::stages::{member_keys, Inputs, Outcome, Stage, StageContext, StageId};
use crate::volume::Volume;
use std::path::Path;

/// The radiomics stage, with its parameter file read once at start.
pub struct RadiomicsStage {
    /// The `radiomics:` section: enabled, ROI selection, worker limits.
    pub section: RadiomicsSection,
    /// The parameter file's text, as sent to the workers (empty:
    /// pyradiomics' defaults).
    pub params_yaml: String,
    /// The same, parsed and checked; its hash is part of the fingerprint.
    pub params: Params,
}

impl RadiomicsStage {
    /// The stage for `section`, reading its parameter file (relative to
    /// `base_dir`, the config's folder); fails on an unreadable or invalid
    /// file, so that the node does not start with it.
    pub fn new(section: &RadiomicsSection, base_dir: &Path) -> Result<Self> {
        let (params_yaml, params) = section.params(base_dir)?;
        Ok(RadiomicsStage {
            section: section.clone(),
            params_yaml,
            params,
        })
    }
}

impl Stage for RadiomicsStage {
    fn name(&self) -> StageId {
        StageId::Radiomics
    }

    fn after(&self) -> &'static [StageId] {
        &[StageId::Organize]
    }

    fn reads_if_present(&self) -> &'static [StageId] {
        &[StageId::Segmentation]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        if !self.section.enabled {
            return Err("radiomics is disabled in the configuration".into());
        }
        if !course.has_images() {
            return Err("no complete planning image series".into());
        }
        let Some(ss) = course.current_structure_set() else {
            return Err("no RTSTRUCT".into());
        };
        let mut keys = member_keys(course.images.iter());
        keys.extend(member_keys(std::iter::once(ss)));
        keys.push(format!("params:{}", self.params.hash()));
        let mut sel = self.section.clone();
        // How the work is spread does not change the numbers.
        sel.workers = None;
        sel.threads_per_worker = 1;
        keys.push(format!(
            "selection:{}",
            serde_json::to_string(&sel).unwrap_or_default()
        ));
        Ok(keys)
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        let course = ctx.course;
        let up = ctx
            .upstream
            .get(&StageId::Organize)
            .context("the organize output is missing")?;
        let volume = Volume::read_nrrd(&up.join(VOLUME_FILE))?;
        let ss = course.current_structure_set().context("no RTSTRUCT")?;
        let mut rs = RtStruct::from_file(&ctx.instance_path(&ss.path))?;
        let auto = match ctx.upstream.get(&StageId::Segmentation) {
            Some(dir) => crate::stages::dvh::add_auto_rois(&mut rs, dir)?,
            None => json!({"used": false}),
        };
        let lossy = lossy_slices(course, ctx);
        let exe = std::env::current_exe().context("locating the rtnode binary for the workers")?;
        let mut opts = self.section.pool_options(exe);
        // The pipeline's thread budget for this stage bounds the workers.
        opts.workers = opts.workers.min(ctx.threads.max(1));
        let (rows, summary) = compute(
            &rs,
            &volume,
            &self.section,
            &self.params_yaml,
            &self.params,
            &opts,
            lossy,
            ctx.progress,
        )?;
        write_outputs(&ctx.out_dir, &rows)?;
        Ok(Outcome::done(json!({
            "structure_set": rs.sop_instance_uid,
            "rois": summary,
            "auto_segmentation": auto,
            "params_hash": self.params.hash(),
            "lossy_compressed_slices": lossy,
        })))
    }
}

/// Slices of the planning series marked LossyImageCompression "01".
fn lossy_slices(course: &Course, ctx: &StageContext) -> usize {
    course
        .images
        .iter()
        .filter(|m| {
            dicom_object::OpenFileOptions::new()
                .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
                .open_file(ctx.instance_path(&m.path))
                .ok()
                .and_then(|o| {
                    o.get(dicom_dictionary_std::tags::LOSSY_IMAGE_COMPRESSION)
                        .and_then(|e| e.to_str().ok())
                        .map(|s| s.trim() == "01")
                })
                .unwrap_or(false)
        })
        .count()
}
