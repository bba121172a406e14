//! dvh as a course stage: the course's current structure set, and the
//! auto-segmentation's ROIs when that stage made them, against the dose
//! chosen from its RTDOSEs and plans (see `dvh::select`), written as
//! `dvh.csv`, `dvh_metrics.csv`, `dvh_constraints.csv` and `dvh.json`. Every
//! output names the structure set and the dose UIDs it was computed from,
//! and every ROI row its source (`rtstruct`, `autoseg:<model>`, `derived`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::segmentation::{LABEL_MAP_FILE, RTSTRUCT_FILE};
use super::{member_keys, Inputs, Outcome, Stage, StageContext, StageId};
use crate::course::Course;
use crate::dvh::cli::{report_for_structures, DoseChooser};
use crate::dvh::{write_outputs, DvhSettings};
use crate::rt::{RoiSource, RtStruct};

/// The dvh stage.
#[derive(Default)]
pub struct DvhStage {
    /// The `dvh:` section: dose choice, metrics and constraints.
    pub settings: DvhSettings,
}

impl Stage for DvhStage {
    fn name(&self) -> StageId {
        StageId::Dvh
    }

    fn after(&self) -> &'static [StageId] {
        &[]
    }

    fn reads_if_present(&self) -> &'static [StageId] {
        &[StageId::Segmentation]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        let Some(ss) = course.current_structure_set() else {
            return Err("no RTSTRUCT".into());
        };
        if course.doses.is_empty() {
            return Err("no RTDOSE".into());
        }
        let mut keys = member_keys(std::iter::once(ss));
        keys.extend(member_keys(course.doses.iter().map(|d| &d.member)));
        keys.extend(member_keys(course.plans.iter().map(|p| &p.member)));
        keys.push(format!(
            "settings:{}",
            serde_json::to_string(&self.settings).unwrap_or_default()
        ));
        Ok(keys)
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        let course = ctx.course;
        let ss = course.current_structure_set().context("no RTSTRUCT")?;
        let doses: Vec<_> = course
            .doses
            .iter()
            .map(|d| ctx.instance_path(&d.member.path))
            .collect();
        let plans: Vec<_> = course
            .plans
            .iter()
            .map(|p| ctx.instance_path(&p.member.path))
            .collect();
        (ctx.progress)(0, 1);
        // The course's dose is chosen by the rules, never an unreferenced
        // RTDOSE attached silently (the command line may; a stage may not).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads.max(1))
            .build()
            .context("thread pool")?;
        let mut rs = RtStruct::from_file(&ctx.instance_path(&ss.path))?;
        let auto = match ctx.upstream.get(&StageId::Segmentation) {
            Some(dir) => add_auto_rois(&mut rs, dir)?,
            None => {
                json!({"used": false, "why": "the segmentation stage made no structure set for this version"})
            }
        };
        let report = pool.install(|| {
            report_for_structures(&rs, &doses, &plans, &self.settings, DoseChooser::Course)
        })?;
        write_outputs(&ctx.out_dir, &report)?;
        (ctx.progress)(1, 1);
        Ok(Outcome::done(json!({
            "structure_set": report.structure_set.sop_instance_uid,
            "dose": report.dose.description,
            "dose_uids": report.dose.dose_uids,
            "rois": report.rois.len(),
            "absolute": report.absolute,
            "auto_segmentation": auto,
        })))
    }
}

/// Adds the auto-segmentation's ROIs (`dir`: its output folder) to the
/// plan's structure set, each with its model as source. A name the plan
/// already uses gets the suffix `_auto`, so that the plan's ROI keeps its
/// name in constraints and derived structures. ROIs on another frame of
/// reference than the plan's structure set are left out, and said.
/// Returns what was done, for the stage record.
pub(crate) fn add_auto_rois(rs: &mut RtStruct, dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(RTSTRUCT_FILE);
    if !path.is_file() {
        return Ok(json!({"used": false, "why": "no auto-segmentation structure set"}));
    }
    let auto = RtStruct::from_file(&path)?;
    // The segmenter of each ROI, from the stage's label map.
    let mut model_of: HashMap<i64, String> = HashMap::new();
    if let Ok(bytes) = std::fs::read(dir.join(LABEL_MAP_FILE)) {
        let map: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", dir.join(LABEL_MAP_FILE).display()))?;
        for r in map["rois"].as_array().into_iter().flatten() {
            if let (Some(n), Some(m)) = (r["number"].as_i64(), r["segmenter"].as_str()) {
                model_of.insert(n, m.to_string());
            }
        }
    }
    let offset = rs.rois.iter().map(|r| r.number).max().unwrap_or(0).max(0) + 1000;
    let mut added = Vec::new();
    let mut left_out = Vec::new();
    for mut roi in auto.rois {
        if !rs.frame_of_reference_uid.is_empty()
            && !roi.frame_of_reference_uid.is_empty()
            && roi.frame_of_reference_uid != rs.frame_of_reference_uid
        {
            left_out.push(format!(
                "{}: frame of reference {} is not the plan structure set's",
                roi.name, roi.frame_of_reference_uid
            ));
            continue;
        }
        let original = roi.name.clone();
        if rs.rois.iter().any(|r| r.name == roi.name) {
            roi.name = format!("{original}_auto");
            let mut k = 2;
            while rs.rois.iter().any(|r| r.name == roi.name) {
                roi.name = format!("{original}_auto{k}");
                k += 1;
            }
        }
        roi.source = RoiSource::AutoSegmentation {
            model: model_of
                .get(&roi.number)
                .cloned()
                .unwrap_or_else(|| auto.label.clone()),
            sop_instance_uid: auto.sop_instance_uid.clone(),
        };
        roi.number += offset;
        added.push(json!({"name": roi.name, "from": original}));
        rs.rois.push(roi);
    }
    Ok(json!({
        "used": true,
        "structure_set": auto.sop_instance_uid,
        "rois": added,
        "left_out": left_out,
    }))
}
