//! The processing stages of a course, and what the pipeline needs to know of
//! each: its name, what it runs after, which course objects it reads (its
//! fingerprint), and how to run it into an output folder.

pub mod dvh;
pub mod export;
pub mod organize;
pub mod qc;
pub mod radiomics;
pub mod report;
pub mod segmentation;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::course::Course;

/// Everything a stage run may use. Outputs go to `out_dir`, a temporary
/// folder the pipeline renames into place only when the run succeeds.
pub struct StageContext<'a> {
    pub course: &'a Course,
    pub version: u32,
    pub data_dir: &'a Path,
    pub out_dir: PathBuf,
    /// Output folders of the stages this one runs after, in this version,
    /// and of those it `uses` that finished done.
    pub upstream: HashMap<String, PathBuf>,
    /// Threads this run may use (the stage's limit, halved after an
    /// out-of-memory failure).
    pub threads: usize,
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
}

impl StageContext<'_> {
    /// Environment for a child process this stage starts, so that its
    /// numeric libraries use the threads this run was given and no more
    /// (the predecessor's process pools oversubscribed the machine).
    pub fn child_thread_env(&self) -> Vec<(&'static str, String)> {
        let n = self.threads.max(1).to_string();
        [
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "NUMEXPR_NUM_THREADS",
            "RAYON_NUM_THREADS",
        ]
        .into_iter()
        .map(|k| (k, n.clone()))
        .collect()
    }

    /// Absolute path of a stored instance.
    pub fn instance_path(&self, rel: &str) -> PathBuf {
        self.data_dir.join(rel)
    }
}

pub enum Outcome {
    /// Ran; a short JSON summary for the manifest and `status`.
    Done(serde_json::Value),
    /// Had nothing to do, and why (recorded as skipped).
    Skipped(String),
}

/// What a stage reads from the course: the UIDs and content hashes that make
/// its fingerprint. `Err` means it cannot run on this course, and why.
pub type Inputs = Result<Vec<String>, String>;

pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    /// Bumped when the stage's code changes its results, so that a course
    /// is recomputed rather than reused after an upgrade.
    fn revision(&self) -> u32 {
        1
    }
    /// Stages whose outputs this one needs: it is skipped when one of them
    /// does not finish done.
    fn after(&self) -> &'static [&'static str];
    /// Stages whose outputs this one reads when they made any: it waits
    /// until they are final but runs whether they were done, skipped or
    /// failed, or are not in this build at all (a report is still worth
    /// having without a DVH; the auto RTSTRUCT still goes out without it).
    fn reads_if_present(&self) -> &'static [&'static str] {
        &[]
    }
    fn inputs(&self, course: &Course) -> Inputs;
    fn run(&self, ctx: &StageContext) -> anyhow::Result<Outcome>;
}

/// Every stage's name, in the order the pipeline runs them (`export`, added
/// by a serving node, last). Config keys under `pipeline.stages` are checked
/// against it.
pub const STAGE_NAMES: [&str; 7] = [
    "organize",
    "segmentation",
    "qc",
    "dvh",
    "radiomics",
    "report",
    "export",
];

/// The stages of the default configuration (the body contour as the only
/// segmenter), in an order where every stage follows the ones it runs
/// after. The stage names and their order do not depend on the config.
pub fn registry() -> Vec<Arc<dyn Stage>> {
    let cfg = crate::config::Config::default();
    let radiomics = radiomics::RadiomicsStage {
        section: cfg.radiomics.clone(),
        params_yaml: String::new(),
        params: crate::radiomics::Params::default(),
    };
    stages_with(&cfg, segmentation::Segmentation::default(), radiomics)
}

/// The stages, configured from the node's configuration. Fails when a
/// configured model cannot be loaded: a node that would silently run
/// without the operator's models must not start.
pub fn registry_with(cfg: &crate::config::Config) -> anyhow::Result<Vec<Arc<dyn Stage>>> {
    let segmentation =
        segmentation::Segmentation::from_section(&cfg.segmentation, &cfg.base_dir())?;
    let radiomics = radiomics::RadiomicsStage::new(&cfg.radiomics, &cfg.base_dir())?;
    Ok(stages_with(cfg, segmentation, radiomics))
}

fn stages_with(
    cfg: &crate::config::Config,
    segmentation: segmentation::Segmentation,
    radiomics: radiomics::RadiomicsStage,
) -> Vec<Arc<dyn Stage>> {
    vec![
        Arc::new(organize::Organize),
        Arc::new(segmentation),
        Arc::new(qc::Qc),
        Arc::new(dvh::DvhStage {
            settings: cfg.dvh.clone(),
        }),
        Arc::new(radiomics),
        Arc::new(report::Report::from_section(&cfg.report, &cfg.base_dir())),
    ]
}

pub(crate) fn member_keys<'a>(
    members: impl Iterator<Item = &'a crate::course::Member>,
) -> Vec<String> {
    members
        .map(|m| format!("{}:{}", m.sop_instance_uid, m.content_hash))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_the_registry_and_export() {
        let mut names: Vec<&str> = registry().iter().map(|s| s.name()).collect();
        names.push("export");
        assert_eq!(names, STAGE_NAMES);
    }
}
