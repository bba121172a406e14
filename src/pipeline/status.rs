//! What `rtnode status` shows of the pipeline: each course with its
//! stages in run order, the queue, the failures, from the scheduler's
//! memory (`Pipeline::status`) or, with no server running, from the state
//! database (`offline_status`).

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{CourseRecord, JobRecord, JobState, Pipeline, Progress};
use crate::course;
use crate::stages::StageId;
use crate::state::StateDb;

/// What `rtnode status` shows of one course.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CourseStatus {
    /// Course id: PatientID (made path-safe) and a short hash of the
    /// planning series.
    pub id: String,
    /// PatientID of the course's patient.
    pub patient_id: String,
    /// PatientName in DICOM PN form (`Family^Given`).
    pub patient_name: String,
    /// Member objects by kind: `images` (image instances), `rtstruct`,
    /// `rtplan`, `rtdose` → count.
    pub objects: BTreeMap<String, usize>,
    /// True when the trigger rule lacks nothing and the course is not held.
    pub complete: bool,
    /// The course state (`incomplete`, `waiting`, `held`, `processing`,
    /// `done`, `failed`).
    pub state: String,
    /// The trigger rule it is judged by (`ct`, `ct+rtstruct`, `full`).
    pub rule: String,
    /// What the rule still lacks, in words; empty when complete.
    pub missing: Vec<String>,
    /// Objects the course waits for, in words (e.g. a referenced series
    /// not yet received).
    pub waiting_for: Vec<String>,
    /// Why the course is held for an operator; None when not held.
    pub held: Option<String>,
    /// An operator's hold: who, when, why; None when not held by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_hold: Option<super::OperatorHold>,
    /// Things noticed and how they were handled (assumptions, objects left
    /// out), from course assembly.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Latest result version; 0 before the first trigger.
    pub version: u32,
    /// stage → state
    pub stages: BTreeMap<String, String>,
    /// The latest version's stages in run order.
    pub stage_details: Vec<StageStatus>,
}

/// What `rtnode status` shows of one stage run (a job).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStatus {
    /// The course the job belongs to.
    pub course_id: String,
    /// The course's result version.
    pub version: u32,
    /// The stage, e.g. `dvh`, `qc`.
    pub stage: String,
    /// The job state (`queued`, `running`, `done`, `failed`, `skipped`).
    pub state: String,
    /// Runs started so far, retries included.
    pub attempts: u32,
    /// Work items done, as the running stage reports them; None when not
    /// running.
    pub done: Option<u64>,
    /// Work items in all, as the running stage reports them; None when
    /// not running.
    pub total: Option<u64>,
    /// Estimated seconds to finish, from the rate so far; None until an
    /// item is done.
    pub eta_s: Option<f64>,
    /// Wall time of the last run, ms; None before one ended.
    pub duration_ms: Option<u64>,
    /// The version whose identical result was reused instead of a run.
    pub reused_from: Option<u32>,
    /// The last failure, kept after a successful retry too.
    pub error: Option<String>,
    /// Why the job was skipped; None unless skipped.
    pub skip_reason: Option<String>,
    /// The Slurm job of this run, when it ran there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// What `squeue` last said of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_state: Option<String>,
}

/// The pipeline part of `rtnode status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    /// Every known course, in course id order.
    pub courses: Vec<CourseStatus>,
    /// Jobs queued (waiting to start).
    pub queue_depth: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs that failed, or failed and wait for a retry.
    pub recent_failures: Vec<StageStatus>,
    /// Stage name → runs since the state database was made.
    pub stage_runs: BTreeMap<String, u64>,
    /// Series that formed no course, each with why.
    #[serde(default)]
    pub unassembled: Vec<course::Unassembled>,
}

impl Pipeline {
    /// The status from the scheduler's memory, stages in run order.
    pub fn status(&self) -> Result<PipelineStatus> {
        let inner = self.lock();
        let mut st = build_status(&inner.courses, &inner.jobs, &inner.running);
        st.stage_runs = self.state.stage_runs()?;
        st.unassembled = inner.unassembled.values().cloned().collect();
        let order: Vec<StageId> = self.stages.ids().collect();
        in_dag_order(&mut st, &order);
        Ok(st)
    }

    /// One line per held course and per failed job, for `rtnode process`
    /// to report; empty when all is well.
    pub fn any_failed_or_held(&self) -> Vec<String> {
        let inner = self.lock();
        let mut out = Vec::new();
        for c in inner.courses.values() {
            if let Some(h) = &c.course.held {
                out.push(format!("{}: held: {h}", c.course.id));
            }
            if let Some(h) = &c.operator_hold {
                out.push(format!(
                    "{}: on hold by {} since {}",
                    c.course.id, h.by, h.at
                ));
            }
        }
        for j in inner.jobs.values() {
            if j.state == JobState::Failed {
                out.push(format!(
                    "{} v{} {}: {}",
                    j.course_id,
                    j.version,
                    j.stage,
                    j.error.as_deref().unwrap_or("")
                ));
            }
        }
        out
    }
}

pub(super) fn eta(p: &Progress) -> Option<f64> {
    if p.done == 0 || p.total == 0 {
        return None;
    }
    let per = p.started.elapsed().as_secs_f64() / p.done as f64;
    Some(per * (p.total.saturating_sub(p.done)) as f64)
}

fn build_status(
    courses: &BTreeMap<String, CourseRecord>,
    jobs: &BTreeMap<String, JobRecord>,
    running: &HashMap<String, Progress>,
) -> PipelineStatus {
    let mut st = PipelineStatus::default();
    for rec in courses.values() {
        let c = &rec.course;
        let version = rec.latest_version().map(|v| v.n).unwrap_or(0);
        let mut cs = CourseStatus {
            id: c.id.clone(),
            patient_id: c.patient.id.clone(),
            patient_name: c.patient.name.clone(),
            objects: BTreeMap::from([
                ("images".to_string(), c.images.len()),
                ("rtstruct".to_string(), c.structure_sets.len()),
                ("rtplan".to_string(), c.plans.len()),
                ("rtdose".to_string(), c.doses.len()),
            ]),
            complete: rec.missing.is_empty() && c.held.is_none(),
            state: rec.state.as_str().to_owned(),
            rule: rec.rule.clone(),
            missing: rec.missing.clone(),
            waiting_for: c.waiting_for.clone(),
            held: c.held.clone(),
            operator_hold: rec.operator_hold.clone(),
            notes: c.notes.clone(),
            version,
            ..CourseStatus::default()
        };
        let prefix = format!("{}/v{version:04}/", c.id);
        for (k, j) in jobs.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            let p = running.get(k);
            cs.stages
                .insert(j.stage.to_string(), j.state.as_str().to_string());
            cs.stage_details.push(stage_status(j, p));
        }
        st.courses.push(cs);
    }
    for (k, j) in jobs {
        match j.state {
            JobState::Queued => st.queue_depth += 1,
            JobState::Running => st.running += 1,
            _ => {}
        }
        if j.error.is_some() && (j.state == JobState::Failed || j.state == JobState::Queued) {
            st.recent_failures.push(stage_status(j, running.get(k)));
        }
    }
    st
}

fn stage_status(j: &JobRecord, p: Option<&Progress>) -> StageStatus {
    StageStatus {
        course_id: j.course_id.clone(),
        version: j.version,
        stage: j.stage.to_string(),
        state: j.state.as_str().to_string(),
        attempts: j.attempts,
        done: p.map(|p| p.done),
        total: p.map(|p| p.total),
        eta_s: p.and_then(eta),
        duration_ms: j.duration_ms,
        reused_from: j.reused_from,
        error: j.error.clone(),
        skip_reason: j.skip_reason.clone(),
        slurm_job: j.slurm.as_ref().map(|s| {
            s.job_id
                .clone()
                .unwrap_or_else(|| format!("{} (submitting)", s.name))
        }),
        slurm_state: j.slurm.as_ref().and_then(|s| s.state.clone()),
    }
}

/// The pipeline part of `rtnode status` with no server running.
pub fn offline_status(state: &StateDb) -> Result<PipelineStatus> {
    let mut courses = BTreeMap::new();
    for c in state.courses::<CourseRecord>()? {
        courses.insert(c.course.id.clone(), c);
    }
    let mut jobs = BTreeMap::new();
    for j in state.jobs::<JobRecord>("")? {
        jobs.insert(j.key(), j);
    }
    let mut st = build_status(&courses, &jobs, &HashMap::new());
    st.stage_runs = state.stage_runs()?;
    st.unassembled = state.unassembled()?;
    in_dag_order(&mut st, &StageId::ALL);
    Ok(st)
}

/// Stages listed in the order they run, not alphabetically.
fn in_dag_order(st: &mut PipelineStatus, order: &[StageId]) {
    for c in &mut st.courses {
        c.stage_details.sort_by_key(|d| {
            order
                .iter()
                .position(|n| n.as_str() == d.stage)
                .unwrap_or(usize::MAX)
        });
    }
}
