//! export: queues the course's results (the auto-segmentation RTSTRUCT and
//! the report as Encapsulated PDF) for every peer that receives results,
//! and for the AE that sent the course when that peer asks for its results
//! back, each only to peers that take its SOP class. Queuing is durable;
//! sending, retries and dead letters are the outbound queue's (see
//! `export`).

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use super::{Inputs, Outcome, Stage, StageContext, StageId};
use crate::course::Course;
use crate::export::Exporter;

/// The export stage: queues the course's results through the node's
/// exporter.
pub struct Export {
    exporter: Arc<Exporter>,
}

impl Export {
    /// The stage, queuing through `exporter` (the node's outbound queue).
    pub fn new(exporter: Arc<Exporter>) -> Export {
        Export { exporter }
    }
}

/// The stage's output: the destinations and, per result object, the queue
/// entries made and the peers that already held it.
pub const QUEUED_FILE: &str = "queued.json";

impl Stage for Export {
    fn name(&self) -> StageId {
        StageId::Export
    }

    fn after(&self) -> &'static [StageId] {
        &[]
    }

    // The auto RTSTRUCT goes out without a report and the report without
    // auto contours: each is queued when its stage made it.
    fn reads_if_present(&self) -> &'static [StageId] {
        &[StageId::Segmentation, StageId::Report]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        // Which results go where depends on who sent the course.
        Ok(course
            .calling_aes
            .iter()
            .map(|ae| format!("from:{ae}"))
            .collect())
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        let results: Vec<(StageId, &str)> = RESULTS
            .iter()
            .copied()
            .filter(|(stage, file)| {
                ctx.upstream
                    .get(stage)
                    .is_some_and(|d| d.join(file).is_file())
            })
            .collect();
        if results.is_empty() {
            return Ok(Outcome::Skipped(
                "no result to send (neither an auto-segmentation RTSTRUCT nor a report)".into(),
            ));
        }
        let destinations = self.exporter.result_destinations(&ctx.course.calling_aes);
        if destinations.is_empty() {
            return Ok(Outcome::Skipped(
                "no peer receives results (receives_results or results_to_sender in ae-titles.yaml)".into(),
            ));
        }
        let mut sent = Vec::new();
        for (stage, file) in results {
            // The version folder is immutable once written, so the queue
            // may point at the file in place.
            let final_path = ctx
                .data_dir
                .join("courses")
                .join(&ctx.course.id)
                .join(format!("v{}", ctx.version))
                .join(stage.as_str())
                .join(file);
            let item = crate::import::prepare(&final_path)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("reading {}", final_path.display()))?;
            // A result reused from an earlier version (the auto RTSTRUCT
            // after a revised plan RTSTRUCT) is the same instance: those
            // who have it do not get it again.
            let holding = self.exporter.holding(&item.sop_instance)?;
            let to: Vec<String> = destinations
                .iter()
                .filter(|d| !holding.contains(*d))
                .cloned()
                .collect();
            // Destinations that do not take the class (a TPS without
            // Encapsulated PDF) are left out here, not dead-lettered later.
            let ids = self.exporter.enqueue(
                &item.sop_instance,
                &item.sop_class,
                final_path,
                &to,
                &format!("result:{} v{}", ctx.course.id, ctx.version),
            )?;
            sent.push(json!({
                "stage": stage,
                "sop_instance_uid": item.sop_instance,
                "sop_class_uid": item.sop_class,
                "queued": ids,
                "already_there": holding,
            }));
        }
        let summary = json!({
            "destinations": destinations,
            "results": sent,
        });
        std::fs::write(
            ctx.out_dir.join(QUEUED_FILE),
            serde_json::to_vec_pretty(&summary)?,
        )?;
        Ok(Outcome::done(summary))
    }
}

/// What a course sends back, by the stage that makes it.
const RESULTS: &[(StageId, &str)] = &[
    (StageId::Segmentation, super::segmentation::RTSTRUCT_FILE),
    (StageId::Report, super::report::DICOM_FILE),
];
