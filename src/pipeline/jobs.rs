//! The durable records of the pipeline: one per course, one per stage run
//! of a course version. They live in the state database, since nothing
//! else could tell after a crash which stages finished.

use serde::{Deserialize, Serialize};

use crate::course::Course;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Skipped,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Skipped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub course_id: String,
    pub version: u32,
    pub stage: String,
    pub state: JobState,
    pub attempts: u32,
    /// Hash of the stage's inputs and of its upstream fingerprints.
    pub fingerprint: String,
    /// The version whose identical result was linked in instead of a run.
    pub reused_from: Option<u32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The last failure, kept after a successful retry too.
    pub error: Option<String>,
    pub skip_reason: Option<String>,
    /// Unix time (ms) before which a retry does not start.
    pub not_before_ms: u64,
    /// Threads for the next run: halved after an out-of-memory failure.
    pub threads: u32,
    pub summary: serde_json::Value,
    /// The Slurm job of the current (or last) attempt, when the stage runs
    /// on Slurm: written before `sbatch`, so that a restarted coordinator
    /// finds the job by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<super::slurm::SlurmRun>,
}

impl JobRecord {
    pub fn key(&self) -> String {
        job_key(&self.course_id, self.version, &self.stage)
    }
}

pub fn job_key(course_id: &str, version: u32, stage: &str) -> String {
    format!("{course_id}/v{version:04}/{stage}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub n: u32,
    pub created_at: String,
    /// Fingerprint of every member object when the version was made.
    pub fingerprint: String,
    pub reason: String,
    pub structure_set: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CourseRecord {
    pub course: Course,
    /// incomplete | waiting | held | processing | done | failed
    pub state: String,
    pub rule: String,
    pub missing: Vec<String>,
    pub fingerprint: String,
    pub versions: Vec<VersionRecord>,
    pub updated_at: String,
}

impl CourseRecord {
    pub fn latest_version(&self) -> Option<&VersionRecord> {
        self.versions.last()
    }
}
