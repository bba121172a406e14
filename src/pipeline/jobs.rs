//! The durable records of the pipeline: one per course, one per stage run
//! of a course version. They live in the state database, since nothing
//! else could tell after a crash which stages finished.

use serde::{Deserialize, Serialize};

use crate::course::Course;
use crate::stages::StageId;

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

/// Where a course stands, as stored and as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourseState {
    /// Objects the trigger rule needs are missing.
    Incomplete,
    /// Complete, waiting for its stable age.
    Waiting,
    /// Held by assembly (a conflict an operator must resolve).
    Held,
    /// Its latest version has stages not yet final.
    Processing,
    /// Every stage of its latest version is final, none failed.
    Done,
    /// A stage of its latest version failed.
    Failed,
}

impl CourseState {
    /// The state's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CourseState::Incomplete => "incomplete",
            CourseState::Waiting => "waiting",
            CourseState::Held => "held",
            CourseState::Processing => "processing",
            CourseState::Done => "done",
            CourseState::Failed => "failed",
        }
    }

    /// Settled states change only with a new arrival or an operator's
    /// action, so the scheduler stops looking at such a course.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            CourseState::Done | CourseState::Failed | CourseState::Held | CourseState::Incomplete
        )
    }
}

impl std::fmt::Display for CourseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub course_id: String,
    pub version: u32,
    pub stage: StageId,
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
        job_key(&self.course_id, self.version, self.stage)
    }
}

pub fn job_key(course_id: &str, version: u32, stage: StageId) -> String {
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
    pub state: CourseState,
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
