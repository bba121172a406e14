//! export: queues the course's results (the auto-segmentation RTSTRUCT) for
//! every peer that receives results, and for the AE that sent the course
//! when that peer asks for its results back. Queuing is durable; sending,
//! retries and dead letters are the outbound queue's (see `export`).

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use super::{Inputs, Outcome, Stage, StageContext};
use crate::course::Course;
use crate::export::Exporter;

pub struct Export {
    exporter: Arc<Exporter>,
}

impl Export {
    pub fn new(exporter: Arc<Exporter>) -> Export {
        Export { exporter }
    }
}

pub const QUEUED_FILE: &str = "queued.json";

impl Stage for Export {
    fn name(&self) -> &'static str {
        "export"
    }

    fn after(&self) -> &'static [&'static str] {
        &["segmentation"]
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
        let seg = ctx
            .upstream
            .get("segmentation")
            .context("no segmentation output")?;
        let rtstruct = seg.join("rtstruct.dcm");
        let destinations = self.exporter.result_destinations(&ctx.course.calling_aes);
        if destinations.is_empty() {
            return Ok(Outcome::Skipped(
                "no peer receives results (receives_results or results_to_sender in ae-titles.yaml)".into(),
            ));
        }
        let item = crate::import::prepare(&rtstruct).map_err(anyhow::Error::msg)?;
        // The version folder is immutable once written, so the queue may
        // point at the file in place.
        let final_path = ctx
            .data_dir
            .join("courses")
            .join(&ctx.course.id)
            .join(format!("v{}", ctx.version))
            .join("segmentation")
            .join("rtstruct.dcm");
        let ids = self.exporter.enqueue(
            &item.sop_instance,
            &item.sop_class,
            final_path,
            &destinations,
            &format!("result:{} v{}", ctx.course.id, ctx.version),
        )?;
        let summary = json!({
            "queued": ids,
            "destinations": destinations,
            "sop_instance_uid": item.sop_instance,
        });
        std::fs::write(
            ctx.out_dir.join(QUEUED_FILE),
            serde_json::to_vec_pretty(&summary)?,
        )?;
        Ok(Outcome::Done(summary))
    }
}
