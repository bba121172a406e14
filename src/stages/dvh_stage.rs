//! dvh as a course stage: the course's current structure set against the
//! dose chosen from its RTDOSEs and plans (see `dvh::select`), written as
//! `dvh.csv`, `dvh_metrics.csv`, `dvh_constraints.csv` and `dvh.json`. Every
//! output names the structure set and the dose UIDs it was computed from.

use anyhow::{Context, Result};
use serde_json::json;

use super::dvh::cli::report_from_files;
use super::dvh::{write_outputs, DvhSettings};
use super::{member_keys, Inputs, Outcome, Stage, StageContext};
use crate::course::Course;

#[derive(Default)]
pub struct DvhStage {
    pub settings: DvhSettings,
}

impl Stage for DvhStage {
    fn name(&self) -> &'static str {
        "dvh"
    }

    fn after(&self) -> &'static [&'static str] {
        &[]
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
        let report = pool.install(|| {
            report_from_files(
                &ctx.instance_path(&ss.path),
                &doses,
                &plans,
                &self.settings,
                false,
            )
        })?;
        write_outputs(&ctx.out_dir, &report)?;
        (ctx.progress)(1, 1);
        Ok(Outcome::Done(json!({
            "structure_set": report.structure_set.sop_instance_uid,
            "dose": report.dose.description,
            "dose_uids": report.dose.dose_uids,
            "rois": report.rois.len(),
            "absolute": report.absolute,
        })))
    }
}
