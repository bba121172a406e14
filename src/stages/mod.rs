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

use crate::course::Course;

mod id;
mod registry;

pub use id::{StageId, UnknownStage, STAGE_NAMES};
pub use registry::{Registry, RegistryError, StageSettings};

/// Everything a stage run may use. Outputs go to `out_dir`, a temporary
/// folder the pipeline renames into place only when the run succeeds.
pub struct StageContext<'a> {
    /// The course being processed: its patient, images and structure sets.
    pub course: &'a Course,
    /// The course version this run belongs to (its `v<N>` folder).
    pub version: u32,
    /// The node's data folder; stored instance paths are relative to it.
    pub data_dir: &'a Path,
    /// Where this run writes its outputs (created, empty).
    pub out_dir: PathBuf,
    /// Output folders of the stages this one runs after, in this version,
    /// and of those it `uses` that finished done.
    pub upstream: HashMap<StageId, PathBuf>,
    /// Threads this run may use (the stage's limit, halved after an
    /// out-of-memory failure).
    pub threads: usize,
    /// Reports `(done, total)` steps of this run, for the status pages.
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

/// How a stage run ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ran.
    Done {
        /// A short JSON summary for the manifest and `status`.
        summary: serde_json::Value,
        /// SOP Instance UIDs of the DICOM objects the run wrote: results,
        /// which never re-open the course when they come back through a
        /// PACS or a planning system.
        created: Vec<String>,
    },
    /// Had nothing to do, and why (recorded as skipped).
    Skipped(String),
}

impl Outcome {
    /// Done, with a summary and no DICOM object written.
    pub fn done(summary: serde_json::Value) -> Outcome {
        Outcome::Done {
            summary,
            created: Vec::new(),
        }
    }
}

/// What a stage reads from the course: the UIDs and content hashes that make
/// its fingerprint. `Err` means it cannot run on this course, and why.
pub type Inputs = Result<Vec<String>, String>;

/// A processing stage: what the pipeline needs to know of it to schedule,
/// fingerprint and run it.
pub trait Stage: Send + Sync {
    /// Which stage this is.
    fn name(&self) -> StageId;
    /// Bumped when the stage's code changes its results, so that a course
    /// is recomputed rather than reused after an upgrade.
    fn revision(&self) -> u32 {
        1
    }
    /// Stages whose outputs this one needs: it is skipped when one of them
    /// does not finish done.
    fn after(&self) -> &'static [StageId];
    /// Stages whose outputs this one reads when they made any: it waits
    /// until they are final but runs whether they were done, skipped or
    /// failed, or are not in this build at all (a report is still worth
    /// having without a DVH; the auto RTSTRUCT still goes out without it).
    fn reads_if_present(&self) -> &'static [StageId] {
        &[]
    }
    /// What it reads of the course (its fingerprint), or why it cannot run.
    fn inputs(&self, course: &Course) -> Inputs;
    /// Runs it into `ctx.out_dir`.
    fn run(&self, ctx: &StageContext) -> anyhow::Result<Outcome>;
}

pub(crate) fn member_keys<'a>(
    members: impl Iterator<Item = &'a crate::course::Member>,
) -> Vec<String> {
    members
        .map(|m| format!("{}:{}", m.sop_instance_uid, m.content_hash))
        .collect()
}
