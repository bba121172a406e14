//! The durable records of the pipeline: one per course, one per stage run
//! of a course version. They live in the state database, since nothing
//! else could tell after a crash which stages finished.

use serde::{Deserialize, Serialize};

use crate::course::Course;
use crate::stages::StageId;

/// Where one stage run of a course version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its upstream stages, a free slot or its retry time.
    Queued,
    /// A run is in progress (locally or as a Slurm job).
    Running,
    /// Finished with outputs (or reused an identical earlier result).
    Done,
    /// Failed on its last allowed attempt (`pipeline.max_attempts`).
    Failed,
    /// Will not run: its inputs are absent, an upstream stage did not
    /// finish, or a newer version superseded it.
    Skipped,
}

impl JobState {
    /// Done, failed or skipped: the job will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Skipped)
    }

    /// The state's name, as stored and shown.
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
    /// Held by assembly (a conflict an operator must resolve), or by an
    /// operator ([`CourseRecord::operator_hold`]).
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

/// One stage of one course version, stored under [`job_key`] in the state
/// database. Times are RFC 3339 UTC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The course the job belongs to.
    pub course_id: String,
    /// The course's result version (1, 2, ...).
    pub version: u32,
    /// The stage it runs.
    pub stage: StageId,
    /// Where it stands.
    pub state: JobState,
    /// Runs started so far, retries included.
    pub attempts: u32,
    /// Hash of the stage's inputs and of its upstream fingerprints.
    pub fingerprint: String,
    /// The version whose identical result was linked in instead of a run.
    pub reused_from: Option<u32>,
    /// When the current or last run started; None before the first.
    pub started_at: Option<String>,
    /// When the last run ended; None while none has.
    pub finished_at: Option<String>,
    /// Wall time of the last run, ms.
    pub duration_ms: Option<u64>,
    /// The last failure, kept after a successful retry too.
    pub error: Option<String>,
    /// Why the job was skipped, e.g. `no RTSTRUCT`, `superseded by v3`;
    /// None unless skipped.
    pub skip_reason: Option<String>,
    /// Unix time (ms) before which a retry does not start.
    pub not_before_ms: u64,
    /// Threads for the next run: halved after an out-of-memory failure.
    pub threads: u32,
    /// What the stage reported of its result (e.g. `{"rois": 3}`), shown
    /// by `status` and written to the version manifest; null before it
    /// is done.
    pub summary: serde_json::Value,
    /// The Slurm job of the current (or last) attempt, when the stage runs
    /// on Slurm: written before `sbatch`, so that a restarted coordinator
    /// finds the job by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<super::slurm::SlurmRun>,
}

impl JobRecord {
    /// Its key in the state database, see [`job_key`].
    pub fn key(&self) -> String {
        job_key(&self.course_id, self.version, self.stage)
    }
}

/// `<course id>/v<NNNN>/<stage>`: the job's key, sorting a course's jobs
/// by version, then stage name.
pub fn job_key(course_id: &str, version: u32, stage: StageId) -> String {
    format!("{course_id}/v{version:04}/{stage}")
}

/// One result version of a course: made each time the course is complete
/// and stable with members that differ from the last version's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version number, from 1.
    pub n: u32,
    /// When it was made, RFC 3339 UTC.
    pub created_at: String,
    /// Fingerprint of every member object when the version was made.
    pub fingerprint: String,
    /// Why it was made, e.g. `first complete delivery`,
    /// `members changed since v1`.
    pub reason: String,
    /// SOP Instance UID of the structure set the version uses; None when
    /// the course has none.
    pub structure_set: Option<String>,
}

/// A course as the pipeline keeps it in the state database, under its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CourseRecord {
    /// The course as last assembled: its member objects.
    pub course: Course,
    /// Where it stands.
    pub state: CourseState,
    /// The trigger rule it is judged by (`ct`, `ct+rtstruct`, `full`).
    pub rule: String,
    /// What the rule still lacks, in words; empty when complete.
    pub missing: Vec<String>,
    /// Fingerprint of every member object now; a new version is made when
    /// it differs from the latest version's.
    pub fingerprint: String,
    /// Result versions, oldest first; empty before the first trigger.
    pub versions: Vec<VersionRecord>,
    /// When the record last changed, RFC 3339 UTC.
    pub updated_at: String,
    /// An operator's hold (`POST /api/v1/courses/{id}/hold`): while set,
    /// no new version is made and no queued stage run of the course
    /// starts; runs in flight finish. Kept apart from `course.held`, the
    /// automatic hold of assembly, which re-assembly recomputes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_hold: Option<OperatorHold>,
}

/// Who put an operator's hold on a course, when and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorHold {
    /// The name of the token (or user) that asked for the hold.
    pub by: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The operator's reason, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CourseRecord {
    /// The newest version; None before the first trigger.
    pub fn latest_version(&self) -> Option<&VersionRecord> {
        self.versions.last()
    }
}
