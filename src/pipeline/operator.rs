//! An operator's actions on one course (`POST /api/v1/courses/{id}/…`):
//! hold and release, process now (skip the stable age), and re-run (a new
//! version with every stage recomputed). Each is checked and done under
//! the scheduler's lock, and each transition is written to the state
//! database before it is answered, so that it survives a restart.
//!
//! A re-run ignores fingerprint reuse on purpose: a physicist asks for one
//! after fixing something rtnode cannot see (a model file, a constraint
//! table, a stage's environment), so every stage runs again.

use serde::{Deserialize, Serialize};
use tracing::info;

use super::{course_jobs, CourseRecord, CourseState, Inner, OperatorHold, Pipeline};

/// Longest operator's reason kept, in characters (longer ones are cut).
pub const MAX_REASON_CHARS: usize = 500;

/// Why an operator's action on a course was not done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No course has this id.
    #[error("no course {0:?}")]
    UnknownCourse(String),
    /// The course's state does not allow the action; the text says why.
    #[error("{0}")]
    Conflict(String),
    /// The state database could not record the transition.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

/// An operator's action on one course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourseAction {
    /// [`Pipeline::hold`].
    Hold,
    /// [`Pipeline::release`].
    Release,
    /// [`Pipeline::process_now`].
    ProcessNow,
    /// [`Pipeline::rerun`].
    Rerun,
}

impl CourseAction {
    /// The action's name in the audit trail (`course-held`, …).
    pub fn audit_name(self) -> &'static str {
        match self {
            CourseAction::Hold => "course-held",
            CourseAction::Release => "course-released",
            CourseAction::ProcessNow => "course-processed-now",
            CourseAction::Rerun => "course-rerun",
        }
    }
}

/// What an accepted action did to a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// The course acted on.
    pub course_id: String,
    /// Its PatientID, for the audit trail.
    pub patient_id: String,
    /// The course state after the action (`held`, `processing`, …; a
    /// released course's state is settled by the next scheduler tick).
    pub state: String,
    /// The version made by the action (process-now, re-run); None for a
    /// hold or a release.
    pub version: Option<u32>,
    /// What was done, in words.
    pub message: String,
}

fn clean_reason(reason: Option<String>) -> Option<String> {
    reason
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(MAX_REASON_CHARS)
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|r| !r.is_empty())
}

fn outcome(rec: &CourseRecord, version: Option<u32>, message: String) -> ActionOutcome {
    ActionOutcome {
        course_id: rec.course.id.clone(),
        patient_id: rec.course.patient.id.clone(),
        state: rec.state.as_str().to_owned(),
        version,
        message,
    }
}

/// Why a course cannot be triggered by an operator now; None when it can.
fn blocked(rec: &CourseRecord) -> Option<String> {
    if let Some(h) = &rec.operator_hold {
        return Some(format!("held by {} since {}; release it first", h.by, h.at));
    }
    if let Some(h) = &rec.course.held {
        return Some(format!("held by assembly: {h}"));
    }
    if !rec.missing.is_empty() {
        return Some(format!(
            "the trigger rule {} is not met: missing {}",
            rec.rule,
            rec.missing.join("; ")
        ));
    }
    None
}

impl Pipeline {
    /// Does `action` on course `id` for `by` (a token's or a user's name);
    /// `reason` is kept by a hold and a re-run, ignored by the others.
    pub fn act(
        &self,
        action: CourseAction,
        id: &str,
        by: &str,
        reason: Option<String>,
    ) -> Result<ActionOutcome, ActionError> {
        match action {
            CourseAction::Hold => self.hold(id, by, reason),
            CourseAction::Release => self.release(id, by),
            CourseAction::ProcessNow => self.process_now(id, by),
            CourseAction::Rerun => self.rerun(id, by, reason),
        }
    }

    fn course_of(inner: &Inner, id: &str) -> Result<CourseRecord, ActionError> {
        inner
            .courses
            .get(id)
            .cloned()
            .ok_or_else(|| ActionError::UnknownCourse(id.to_owned()))
    }

    fn store_course(
        &self,
        inner: &mut Inner,
        mut rec: CourseRecord,
    ) -> Result<CourseRecord, ActionError> {
        rec.updated_at = crate::time::now_rfc3339();
        self.state.put_course(&rec.course.id, &rec)?;
        inner.active.insert(rec.course.id.clone());
        inner.courses.insert(rec.course.id.clone(), rec.clone());
        Ok(rec)
    }

    /// Puts an operator's hold on a course: no new version is made and no
    /// queued stage run starts until [`Pipeline::release`]; runs in flight
    /// finish. Durable. Refused when the course is already on hold.
    pub fn hold(
        &self,
        id: &str,
        by: &str,
        reason: Option<String>,
    ) -> Result<ActionOutcome, ActionError> {
        let mut inner = self.lock();
        let mut rec = Self::course_of(&inner, id)?;
        if let Some(h) = &rec.operator_hold {
            return Err(ActionError::Conflict(format!(
                "already held by {} since {}",
                h.by, h.at
            )));
        }
        let hold = OperatorHold {
            by: by.to_owned(),
            at: crate::time::now_rfc3339(),
            reason: clean_reason(reason),
        };
        info!(course = %id, by = %by, reason = ?hold.reason, "course held by an operator");
        rec.operator_hold = Some(hold);
        rec.state = CourseState::Held;
        let rec = self.store_course(&mut inner, rec)?;
        Ok(outcome(&rec, None, format!("held by {by}")))
    }

    /// Lifts an operator's hold: the course goes on where it stood (queued
    /// runs start, a complete course is triggered once its stable age has
    /// passed). Refused when the course is not on an operator's hold.
    pub fn release(&self, id: &str, by: &str) -> Result<ActionOutcome, ActionError> {
        let mut inner = self.lock();
        let mut rec = Self::course_of(&inner, id)?;
        let Some(h) = rec.operator_hold.take() else {
            return Err(ActionError::Conflict(match &rec.course.held {
                Some(why) => format!(
                    "not held by an operator (held by assembly: {why}; that hold ends when the conflict is resolved)"
                ),
                None => "not held".to_owned(),
            }));
        };
        info!(course = %id, by = %by, held_by = %h.by, "operator's hold released");
        let rec = self.store_course(&mut inner, rec)?;
        Ok(outcome(
            &rec,
            None,
            format!("released by {by} (held by {} since {})", h.by, h.at),
        ))
    }

    /// Triggers a course waiting for its stable age now: only the stable
    /// age is skipped; the trigger rule must hold, and the course must not
    /// be held nor already processed with its current members.
    pub fn process_now(&self, id: &str, by: &str) -> Result<ActionOutcome, ActionError> {
        let mut inner = self.lock();
        let rec = Self::course_of(&inner, id)?;
        if let Some(why) = blocked(&rec) {
            return Err(ActionError::Conflict(why));
        }
        if let Some(v) = rec
            .latest_version()
            .filter(|v| v.fingerprint == rec.fingerprint)
        {
            return Err(ActionError::Conflict(format!(
                "already processed as v{} ({}); ask for a re-run to recompute it",
                v.n, rec.state
            )));
        }
        let mut rec = self.new_version(
            &mut inner,
            rec,
            Some(format!(
                "processed now at {by}'s request (stable age skipped)"
            )),
            true,
        )?;
        rec.state = CourseState::Processing;
        inner.last_change.remove(id);
        let rec = self.store_course(&mut inner, rec)?;
        let n = rec.latest_version().map(|v| v.n);
        Ok(outcome(&rec, n, format!("v{} triggered", n.unwrap_or(0))))
    }

    /// Makes a new version of a processed course with every stage run
    /// again (no reuse of earlier results). Refused while a stage of the
    /// course is queued or running, while it is held, or before its first
    /// version.
    pub fn rerun(
        &self,
        id: &str,
        by: &str,
        reason: Option<String>,
    ) -> Result<ActionOutcome, ActionError> {
        let mut inner = self.lock();
        let rec = Self::course_of(&inner, id)?;
        if let Some((_, j)) = course_jobs(&inner.jobs, id).find(|(_, j)| !j.state.is_final()) {
            return Err(ActionError::Conflict(format!(
                "v{} is running: stage {} is {}",
                j.version,
                j.stage,
                j.state.as_str()
            )));
        }
        if rec.versions.is_empty() {
            return Err(ActionError::Conflict(format!(
                "not processed yet ({}); nothing to re-run",
                rec.state
            )));
        }
        if let Some(why) = blocked(&rec) {
            return Err(ActionError::Conflict(why));
        }
        let why = match clean_reason(reason) {
            Some(r) => format!("re-run at {by}'s request: {r}"),
            None => format!("re-run at {by}'s request"),
        };
        let mut rec = self.new_version(&mut inner, rec, Some(why), false)?;
        rec.state = CourseState::Processing;
        let rec = self.store_course(&mut inner, rec)?;
        let n = rec.latest_version().map(|v| v.n);
        Ok(outcome(
            &rec,
            n,
            format!("v{} made; every stage runs again", n.unwrap_or(0)),
        ))
    }
}

#[cfg(test)]
mod tests;
