//! Scheduling: which courses get a new version (`trigger`, `new_version`:
//! each stage queued, reused or skipped) and which queued stage runs start
//! (`dispatch`: dependencies final, within the local and Slurm limits).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tracing::{error, info, warn};

use super::{
    course_jobs, job_key, now_ms, slurm, versions, CourseRecord, CourseState, Inner, JobRecord,
    JobState, Pipeline, Progress, RunStart, SlurmWatch, VersionRecord,
};
use super::{ExecutorKind, StageLimits};
use crate::stages::StageId;

impl Pipeline {
    pub(super) fn trigger(&self) -> Result<()> {
        let stable = Duration::from_secs(self.opts.settings.stable_age_s);
        let mut inner = self.lock();
        let ids: Vec<String> = inner.active.iter().cloned().collect();
        for id in ids {
            let Some(rec) = inner.courses.get(&id).cloned() else {
                inner.active.remove(&id);
                continue;
            };
            let new_state = if rec.course.held.is_some() || rec.operator_hold.is_some() {
                CourseState::Held
            } else if !self.opts.immediate && !rec.missing.is_empty() {
                CourseState::Incomplete
            } else if rec
                .latest_version()
                .is_some_and(|v| v.fingerprint == rec.fingerprint)
            {
                versions::state_of_latest(&inner.jobs, &rec)
            } else {
                let settled = self.opts.immediate
                    || inner
                        .last_change
                        .get(&id)
                        .is_none_or(|t| t.elapsed() >= stable);
                if settled {
                    let rec = self.new_version(&mut inner, rec, None, true)?;
                    inner.courses.insert(id.clone(), rec);
                    CourseState::Processing
                } else {
                    CourseState::Waiting
                }
            };
            // Settled states change only with a new arrival (reassemble
            // makes the course active again) or an operator's action.
            if new_state.is_settled() {
                inner.active.remove(&id);
            }
            if let Some(r) = inner.courses.get_mut(&id) {
                if r.state != new_state {
                    if new_state == CourseState::Held {
                        warn!(course = %id, reason = ?r.course.held, operator = ?r.operator_hold, "course held");
                    }
                    r.state = new_state;
                    r.updated_at = crate::time::now_rfc3339();
                    let r = r.clone();
                    self.state.put_course(&id, &r)?;
                }
            }
        }
        Ok(())
    }

    /// Makes version N+1 of a course: each stage is queued, reused from
    /// the previous version when its fingerprint is unchanged and `reuse`
    /// holds (an operator's re-run recomputes every stage), or skipped
    /// when its inputs are absent. `why` overrides the version's reason.
    pub(super) fn new_version(
        &self,
        inner: &mut Inner,
        mut rec: CourseRecord,
        why: Option<String>,
        reuse: bool,
    ) -> Result<CourseRecord> {
        let n = rec.latest_version().map(|v| v.n + 1).unwrap_or(1);
        let prev = rec.latest_version().map(|v| v.n);
        let reason = match (why, prev) {
            (Some(w), _) => w,
            (None, None) => "first complete delivery".to_string(),
            (None, Some(p)) => format!("members changed since v{p}"),
        };
        let id = rec.course.id.clone();
        // Supersede what is still queued in older versions.
        let prefix = format!("{id}/");
        for (_, j) in inner
            .jobs
            .range_mut(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            if j.version < n && j.state == JobState::Queued {
                j.state = JobState::Skipped;
                j.skip_reason = Some(format!("superseded by v{n}"));
                self.state.put_job(&j.key(), j)?;
            }
        }
        let mut fingerprints: HashMap<StageId, String> = HashMap::new();
        let vdir = versions::version_dir(&self.data_dir, &id, n);
        std::fs::create_dir_all(&vdir)?;
        for stage in self.stages.stages() {
            let name = stage.name();
            let mut job = JobRecord {
                course_id: id.clone(),
                version: n,
                stage: name,
                state: JobState::Queued,
                attempts: 0,
                fingerprint: String::new(),
                reused_from: None,
                started_at: None,
                finished_at: None,
                duration_ms: None,
                error: None,
                skip_reason: None,
                not_before_ms: 0,
                threads: self.threads_for(name) as u32,
                summary: serde_json::Value::Null,
                slurm: None,
            };
            match stage.inputs(&rec.course) {
                Err(why) => {
                    job.state = JobState::Skipped;
                    job.skip_reason = Some(why);
                }
                Ok(inputs) => {
                    let fp = versions::stage_fingerprint(stage.as_ref(), &inputs, &fingerprints);
                    job.fingerprint = fp.clone();
                    fingerprints.insert(name, fp.clone());
                    if let Some(p) = prev.filter(|_| reuse) {
                        let old = inner.jobs.get(&job_key(&id, p, name)).cloned().or_else(|| {
                            self.state
                                .jobs::<JobRecord>(&job_key(&id, p, name))
                                .ok()
                                .and_then(|v| v.into_iter().next())
                        });
                        if let Some(old) =
                            old.filter(|o| o.state == JobState::Done && o.fingerprint == fp)
                        {
                            let from =
                                versions::version_dir(&self.data_dir, &id, p).join(name.as_str());
                            if versions::link_tree(&from, &vdir.join(name.as_str())).is_ok() {
                                job.state = JobState::Done;
                                job.reused_from = Some(old.reused_from.unwrap_or(p));
                                job.summary = old.summary.clone();
                                job.finished_at = Some(crate::time::now_rfc3339());
                            }
                        }
                    }
                }
            }
            self.state.put_job(&job.key(), &job)?;
            if job.state == JobState::Queued {
                inner.queued.insert(job.key());
            }
            inner.jobs.insert(job.key(), job);
        }
        // Only the newest version's jobs stay cached, plus anything running.
        let stale: Vec<String> = course_jobs(&inner.jobs, &id)
            .filter(|(_, j)| j.version != n && j.state != JobState::Running)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            inner.jobs.remove(&k);
        }
        rec.versions.push(VersionRecord {
            n,
            created_at: crate::time::now_rfc3339(),
            fingerprint: rec.fingerprint.clone(),
            reason: reason.clone(),
            structure_set: rec
                .course
                .current_structure_set()
                .map(|m| m.sop_instance_uid.clone()),
        });
        versions::write_manifest(&self.data_dir, &rec, n, &inner.jobs)?;
        info!(course = %id, version = n, reason = %reason, "course triggered");
        Ok(rec)
    }

    fn threads_for(&self, stage: StageId) -> usize {
        let stage = stage.as_str();
        if self.opts.settings.executor_for(stage) == ExecutorKind::Slurm {
            // The coordinator's cores say nothing of the cluster's nodes:
            // the stage's `threads`, else one (`--cpus-per-task`).
            return self
                .opts
                .settings
                .stages
                .get(stage)
                .map(|l| l.threads as usize)
                .filter(|t| *t > 0)
                .unwrap_or(1);
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        match self.opts.settings.stages.get(stage) {
            Some(StageLimits { threads, .. }) if *threads > 0 => *threads as usize,
            Some(StageLimits { workers, .. }) if *workers > 0 => (cores / *workers as usize).max(1),
            _ => cores,
        }
    }

    pub(super) fn dispatch(self: &Arc<Self>) -> Result<()> {
        if self.stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let settings = &self.opts.settings;
        let max_local = settings.worker_count();
        let max_slurm = settings.slurm.max_jobs;
        let mut to_start = Vec::new();
        // Slurm runs of one tick, one job array per stage and thread count.
        let mut to_submit: BTreeMap<(StageId, u32), Vec<RunStart>> = BTreeMap::new();
        {
            let mut inner = self.lock();
            let now = now_ms();
            let mut slurm_running = inner.slurm.len();
            let mut local_running = inner.running.len().saturating_sub(slurm_running);
            let mut per_stage: HashMap<StageId, usize> = HashMap::new();
            for key in inner.running.keys() {
                if inner.slurm.contains_key(key) {
                    continue;
                }
                if let Some(j) = inner.jobs.get(key) {
                    *per_stage.entry(j.stage).or_default() += 1;
                }
            }
            let mut names: HashMap<(StageId, u32), (String, u32)> = HashMap::new();
            let keys: Vec<String> = inner.queued.iter().cloned().collect();
            for key in keys {
                if local_running >= max_local && slurm_running >= max_slurm {
                    break;
                }
                let Some(job) = inner
                    .jobs
                    .get(&key)
                    .filter(|j| j.state == JobState::Queued)
                    .cloned()
                else {
                    inner.queued.remove(&key);
                    continue;
                };
                if job.not_before_ms > now {
                    continue;
                }
                // An operator's hold: queued runs wait (they stay queued).
                if inner
                    .courses
                    .get(&job.course_id)
                    .is_some_and(|c| c.operator_hold.is_some())
                {
                    continue;
                }
                let Some(stage) = self.stages.get(job.stage).cloned() else {
                    continue;
                };
                // Dependencies: all final; any not done makes this one skipped.
                let mut blocked = false;
                let mut unmet = None;
                for &dep in stage.after() {
                    match inner
                        .jobs
                        .get(&job_key(&job.course_id, job.version, dep))
                        .map(|d| d.state)
                    {
                        Some(JobState::Done) => {}
                        Some(s) if s.is_final() => {
                            unmet = Some(format!("needs {dep}, which {}", s.as_str()))
                        }
                        _ => blocked = true,
                    }
                }
                for &dep in stage.reads_if_present() {
                    let state = inner
                        .jobs
                        .get(&job_key(&job.course_id, job.version, dep))
                        .map(|d| d.state);
                    if state.is_some_and(|s| !s.is_final()) {
                        blocked = true;
                    }
                }
                if blocked {
                    continue;
                }
                if let Some(why) = unmet {
                    if let Some(j) = inner.jobs.get_mut(&key) {
                        j.state = JobState::Skipped;
                        j.skip_reason = Some(why);
                        let j = j.clone();
                        self.state.put_job(&key, &j)?;
                        self.refresh_manifest(&inner, &j.course_id, j.version);
                    }
                    continue;
                }
                let executor = settings.executor_for(job.stage.as_str());
                match executor {
                    ExecutorKind::Local => {
                        if local_running >= max_local {
                            continue;
                        }
                        let limit = settings
                            .stages
                            .get(job.stage.as_str())
                            .map(|l| l.workers)
                            .unwrap_or(0);
                        let busy = per_stage.get(&job.stage).copied().unwrap_or(0);
                        if limit > 0 && busy >= limit as usize {
                            continue;
                        }
                    }
                    ExecutorKind::Slurm => {
                        if slurm_running >= max_slurm {
                            continue;
                        }
                    }
                }
                let Some(course) = inner.courses.get(&job.course_id).map(|c| c.course.clone())
                else {
                    continue;
                };
                let Some(j) = inner.jobs.get_mut(&key) else {
                    continue;
                };
                j.state = JobState::Running;
                j.attempts += 1;
                j.started_at = Some(crate::time::now_rfc3339());
                j.slurm = None;
                if executor == ExecutorKind::Slurm {
                    // The intent, with the job's unique name, is durable
                    // before `sbatch` runs.
                    let group = (j.stage, j.threads);
                    let (name, next) = names.entry(group).or_insert_with(|| {
                        (
                            format!("rtnode-{}-{:012x}", j.stage, rand::random::<u64>() >> 16),
                            0,
                        )
                    });
                    j.slurm = Some(slurm::SlurmRun {
                        name: name.clone(),
                        task: *next,
                        job_id: None,
                        state: None,
                    });
                    *next += 1;
                    let j = j.clone();
                    self.state.put_job(&key, &j)?;
                    to_submit.entry(group).or_default().push((j, stage, course));
                    inner.slurm.insert(key.clone(), SlurmWatch::default());
                    slurm_running += 1;
                } else {
                    let j = j.clone();
                    self.state.put_job(&key, &j)?;
                    *per_stage.entry(j.stage).or_default() += 1;
                    to_start.push((j, stage, course));
                    local_running += 1;
                }
                inner.running.insert(key.clone(), Progress::starting());
            }
        }
        for (job, stage, course) in to_start {
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("stage-{}", job.stage))
                .spawn(move || me.run_job(job, stage, course));
            if let Err(e) = spawned {
                error!(error = %e, "cannot start a stage thread");
            }
        }
        for (_, batch) in to_submit {
            self.submit_slurm(batch);
        }
        Ok(())
    }
}
