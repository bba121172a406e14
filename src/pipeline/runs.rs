//! A stage run on this machine, and how any run ends (here or on Slurm):
//! its folder moved into place, created instances recorded, the job done,
//! skipped, retried with backoff or failed; durable.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::{error, info, warn};

use super::status::eta;
use super::{now_ms, stage_run, versions, Inner, JobRecord, JobState, Pipeline};
use crate::course::Course;
use crate::stages::{Outcome, Stage, StageId};

impl Pipeline {
    pub(super) fn refresh_manifest(&self, inner: &Inner, course_id: &str, version: u32) {
        if let Some(rec) = inner.courses.get(course_id) {
            if let Err(e) = versions::write_manifest(&self.data_dir, rec, version, &inner.jobs) {
                warn!(course = %course_id, error = %e, "cannot write manifest");
            }
        }
    }

    pub(super) fn run_job(self: Arc<Self>, job: JobRecord, stage: Arc<dyn Stage>, course: Course) {
        let key = job.key();
        let vdir = versions::version_dir(&self.data_dir, &job.course_id, job.version);
        let tmp = vdir.join(format!(".tmp-{}-{:08x}", job.stage, rand::random::<u32>()));
        let started = Instant::now();
        info!(course = %job.course_id, version = job.version, stage = %job.stage, attempt = job.attempts, "stage started");
        let me = self.clone();
        let pkey = key.clone();
        let progress = move |done: u64, total: u64| me.progress(&pkey, done, total);
        let result = stage_run::execute(
            stage.as_ref(),
            &course,
            job.version,
            &self.data_dir,
            &tmp,
            stage_run::upstream_dirs(stage.as_ref(), &vdir),
            job.threads.max(1) as usize,
            job.attempts,
            &progress,
        )
        .and_then(|outcome| {
            if let Outcome::Done { .. } = &outcome {
                move_into_place(&tmp, &vdir, job.stage)?;
            }
            Ok(outcome)
        });
        let _ = std::fs::remove_dir_all(&tmp);
        let ms = started.elapsed().as_millis() as u64;
        self.finish(job, result, ms, crate::time::now_rfc3339());
    }

    /// Records how a run ended (wherever it ran): created instances, the
    /// job's state, a retry with backoff or the failure; durable.
    pub(super) fn finish(
        &self,
        mut job: JobRecord,
        result: Result<Outcome>,
        ms: u64,
        finished_at: String,
    ) {
        let key = job.key();
        job.duration_ms = Some(ms);
        job.finished_at = Some(finished_at);
        match result {
            Ok(Outcome::Done {
                mut summary,
                created,
            }) => {
                // Objects a stage created are results: when they come back
                // through a PACS or a planning system they never re-open
                // the course.
                for uid in &created {
                    if let Err(e) = self.mark_created(uid, &job.course_id) {
                        error!(error = %e, "cannot record a created instance");
                    }
                }
                // The stage record lists them, as it always has.
                if let (false, Some(o)) = (created.is_empty(), summary.as_object_mut()) {
                    o.insert("created_instances".into(), created.into());
                }
                job.state = JobState::Done;
                job.summary = summary;
                info!(course = %job.course_id, version = job.version, stage = %job.stage, ms, "stage done");
            }
            Ok(Outcome::Skipped(why)) => {
                job.state = JobState::Skipped;
                job.skip_reason = Some(why);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                let oom = versions::looks_like_oom(&msg);
                job.error = Some(msg.clone());
                if job.attempts < self.opts.settings.max_attempts {
                    let backoff = self.opts.settings.retry_backoff_s
                        * 1000
                        * (1u64 << (job.attempts.max(1) - 1).min(10));
                    job.state = JobState::Queued;
                    job.not_before_ms = now_ms() + backoff;
                    if oom {
                        job.threads = (job.threads / 2).max(1);
                    }
                    warn!(course = %job.course_id, version = job.version, stage = %job.stage, attempt = job.attempts, retry_in_s = backoff / 1000, error = %msg, "stage failed; will retry");
                } else {
                    job.state = JobState::Failed;
                    error!(course = %job.course_id, version = job.version, stage = %job.stage, attempts = job.attempts, error = %msg, "stage failed");
                }
            }
        }
        if let Err(e) = self.state.count_stage_run(job.stage.as_str()) {
            warn!(error = %e, "cannot count a stage run");
        }
        let mut inner = self.lock();
        inner.running.remove(&key);
        inner.slurm.remove(&key);
        if let Err(e) = self.state.put_job(&key, &job) {
            error!(error = %e, "cannot record a stage result");
        }
        let (cid, v) = (job.course_id.clone(), job.version);
        if job.state == JobState::Queued {
            inner.queued.insert(key.clone());
        }
        inner.jobs.insert(key, job);
        inner.active.insert(cid.clone());
        self.refresh_manifest(&inner, &cid, v);
    }

    pub(super) fn progress(&self, key: &str, done: u64, total: u64) {
        let mut inner = self.lock();
        if let Some(p) = inner.running.get_mut(key) {
            p.done = done;
            p.total = total;
            if p.last_log.elapsed() >= Duration::from_secs(5) {
                p.last_log = Instant::now();
                let eta = eta(p);
                info!(job = %key, done, total, eta_s = eta.map(|e| e.round()), "progress");
            }
        }
    }
}

/// Renames a finished run's folder to `vdir/<stage>` (replacing what an
/// earlier run left there) and makes the rename durable.
pub(super) fn move_into_place(from: &Path, vdir: &Path, stage: StageId) -> Result<()> {
    let dest = vdir.join(stage.as_str());
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(from, &dest)?;
    crate::store::fsync_dir(vdir)?;
    Ok(())
}
