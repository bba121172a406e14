//! The coordinator's side of stage runs on Slurm: job descriptions,
//! submission as job arrays, the look at the jobs in flight (outcome files
//! first, `squeue` for the rest) and taking a finished run in. What is
//! recorded when, and why that survives a coordinator killed at any
//! moment, is said in `slurm`; the run's side is `stage_run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::{
    move_into_place, slurm, slurm_out_dir, stage_run, versions, JobRecord, Pipeline, RunStart,
};
use crate::course::Course;
use crate::stages::{Outcome, Stage};

impl Pipeline {
    /// Where the description of `job`'s Slurm run is written.
    fn description_of(&self, job: &JobRecord) -> PathBuf {
        stage_run::description_path(&self.data_dir, &job.course_id, job.version, job.stage)
    }

    /// Writes the description of a Slurm run (mode 0600).
    pub(super) fn write_description(
        &self,
        job: &JobRecord,
        stage: &dyn Stage,
        course: &Course,
    ) -> Result<()> {
        let vdir = versions::version_dir(&self.data_dir, &job.course_id, job.version);
        let rel = |p: &Path| -> Result<String> {
            Ok(p.strip_prefix(&self.data_dir)?
                .to_string_lossy()
                .into_owned())
        };
        let upstream = stage_run::upstream_dirs(stage, &vdir)
            .into_iter()
            .map(|(k, p)| Ok((k, rel(&p)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let desc = stage_run::StageJob {
            format: stage_run::DESCRIPTION_FORMAT,
            course: course.clone(),
            version: job.version,
            stage: job.stage,
            attempt: job.attempts,
            threads: job.threads,
            out_dir: rel(&slurm_out_dir(&self.data_dir, job))?,
            upstream,
            config: self.opts.stage_config.clone(),
        };
        std::fs::create_dir_all(&vdir)?;
        let path = self.description_of(job);
        stage_run::write_private(&path, &serde_json::to_vec_pretty(&desc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Submits runs of one stage as one job array (their intent is already
    /// durable, each with the array's name and its task). A run whose
    /// description cannot be written, or an array `sbatch` refuses, is a
    /// failed attempt.
    pub(super) fn submit_slurm(&self, batch: Vec<RunStart>) {
        let mut ok: Vec<JobRecord> = Vec::new();
        for (job, stage, course) in batch {
            match self.write_description(&job, stage.as_ref(), &course) {
                Ok(()) => ok.push(job),
                Err(e) => self.finish(
                    job,
                    Err(e.context("preparing the Slurm job")),
                    0,
                    crate::time::now_rfc3339(),
                ),
            }
        }
        let Some((name, stage, cpus)) = ok
            .first()
            .and_then(|j| Some((j.slurm.as_ref()?.name.clone(), j.stage, j.threads)))
        else {
            return;
        };
        let tasks: Vec<slurm::Task> = ok
            .iter()
            .filter_map(|j| {
                Some(slurm::Task {
                    task: j.slurm.as_ref()?.task,
                    course_id: j.course_id.clone(),
                    version: j.version,
                    stage: j.stage,
                })
            })
            .collect();
        let data_dir =
            std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        let rtnode = self
            .opts
            .settings
            .slurm
            .rtnode
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("rtnode"));
        let settings = self.opts.settings.slurm_for(stage.as_str());
        let submitted = slurm::submit(&slurm::Submission {
            name: &name,
            tasks: &tasks,
            settings: &settings,
            cpus,
            rtnode: &rtnode,
            data_dir: &data_dir,
        });
        match submitted {
            Ok(array_id) => {
                info!(stage = %stage, job = %array_id, name = %name, runs = tasks.len(), "submitted to Slurm");
                let mut inner = self.lock();
                for j in &ok {
                    let key = j.key();
                    let Some(rec) = inner.jobs.get_mut(&key) else {
                        continue;
                    };
                    if let Some(s) = rec.slurm.as_mut() {
                        s.job_id = Some(format!("{array_id}_{}", s.task));
                    }
                    let rec = rec.clone();
                    if let Err(e) = self.state.put_job(&key, &rec) {
                        // The name is durable: a restart still finds the job.
                        warn!(error = %e, job = %key, "cannot record a Slurm job id");
                    }
                }
            }
            Err(e) => {
                for j in ok {
                    let _ = std::fs::remove_file(self.description_of(&j));
                    self.finish(
                        j,
                        Err(anyhow::anyhow!("submitting to Slurm: {e:#}")),
                        0,
                        crate::time::now_rfc3339(),
                    );
                }
            }
        }
    }

    /// Looks at the Slurm jobs in flight (at most every `poll_s`): the
    /// outcome files first, then `squeue` for those without one. A job
    /// that Slurm no longer runs and that left no outcome after `grace_s`
    /// is a failed attempt, with the reason Slurm gives.
    pub(super) fn poll_slurm(&self) {
        let s = &self.opts.settings.slurm;
        let watched: Vec<JobRecord> = {
            let mut inner = self.lock();
            if inner.slurm.is_empty()
                || inner
                    .last_slurm_poll
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(s.poll_s))
            {
                return;
            }
            inner.last_slurm_poll = Some(Instant::now());
            inner
                .slurm
                .keys()
                .filter_map(|k| inner.jobs.get(k).cloned())
                .collect()
        };
        let mut ended = Vec::new();
        let mut open = Vec::new();
        for j in watched {
            match self.find_outcome(&j) {
                Some(o) => ended.push((j, o)),
                None => {
                    if let Some((d, t)) =
                        stage_run::read_progress(&slurm_out_dir(&self.data_dir, &j))
                    {
                        self.progress(&j.key(), d, t);
                    }
                    open.push(j);
                }
            }
        }
        let mut dead = Vec::new();
        let mut resubmit = Vec::new();
        if !open.is_empty() {
            let mut names: Vec<&str> = open
                .iter()
                .filter_map(|j| j.slurm.as_ref().map(|s| s.name.as_str()))
                .collect();
            names.sort();
            names.dedup();
            match slurm::queue(&names) {
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"),
                        "cannot ask Slurm about its jobs; asking again later"
                    )
                }
                Ok(queue) => {
                    let grace = Duration::from_secs(s.grace_s);
                    let mut inner = self.lock();
                    for j in open {
                        let key = j.key();
                        let Some(run) = j.slurm.clone() else {
                            continue;
                        };
                        let seen = queue.get(&(run.name.clone(), run.task));
                        if seen.is_none() && run.job_id.is_none() {
                            // Recorded, but no answer from `sbatch` was: it
                            // was never submitted, or ended long ago with no
                            // outcome. Either way this attempt runs (again).
                            resubmit.push(j);
                            continue;
                        }
                        let Some(rec) = inner.jobs.get_mut(&key) else {
                            continue;
                        };
                        let mut changed = false;
                        if let Some(q) = seen {
                            if let Some(r) = rec.slurm.as_mut() {
                                if r.job_id.is_none() {
                                    r.job_id = Some(format!("{}_{}", q.array_job_id, r.task));
                                    changed = true;
                                }
                                r.state = Some(q.state.clone());
                            }
                        }
                        let rec_now = rec.clone();
                        if changed {
                            if let Err(e) = self.state.put_job(&key, &rec_now) {
                                warn!(error = %e, job = %key, "cannot record a Slurm job id");
                            }
                        }
                        let alive = seen
                            .is_some_and(|q| !slurm::is_dead(&q.state) && q.state != "COMPLETED");
                        let Some(w) = inner.slurm.get_mut(&key) else {
                            continue;
                        };
                        if alive {
                            w.missing_since = None;
                        } else if w.missing_since.get_or_insert_with(Instant::now).elapsed()
                            >= grace
                        {
                            let state = seen
                                .map(|q| q.state.clone())
                                .or(run.state.clone())
                                .unwrap_or_else(|| "no longer known to squeue".into());
                            dead.push((rec_now, state));
                        }
                    }
                }
            }
        }
        for (j, o) in ended {
            self.finish_slurm(j, o);
        }
        for (j, state) in dead {
            // A last look: the outcome may have arrived meanwhile.
            if let Some(o) = self.find_outcome(&j) {
                self.finish_slurm(j, o);
                continue;
            }
            let run = j.slurm.clone().unwrap_or_default();
            let why = slurm::why_dead(
                run.job_id.as_deref().unwrap_or(&run.name),
                &state,
                &slurm::log_path(&self.data_dir, &run.name, run.task),
            );
            let _ = std::fs::remove_dir_all(slurm_out_dir(&self.data_dir, &j));
            let _ = std::fs::remove_file(self.description_of(&j));
            self.finish(j, Err(anyhow::anyhow!(why)), 0, crate::time::now_rfc3339());
        }
        for j in resubmit {
            let stage = self.stages.get(j.stage).cloned();
            let course = self
                .lock()
                .courses
                .get(&j.course_id)
                .map(|c| c.course.clone());
            match (stage, course) {
                (Some(stage), Some(course)) => {
                    warn!(job = %j.key(), "a Slurm job recorded before a restart is unknown to Slurm; submitting it");
                    self.submit_slurm(vec![(j, stage, course)]);
                }
                _ => self.finish(
                    j,
                    Err(anyhow::anyhow!("its stage or course is gone")),
                    0,
                    crate::time::now_rfc3339(),
                ),
            }
        }
    }

    /// The outcome of a Slurm run: in its output folder, or, after a
    /// restart that came between moving the folder into place and
    /// recording the result, in the stage's folder (the same attempt's).
    pub(super) fn find_outcome(&self, j: &JobRecord) -> Option<stage_run::OutcomeRecord> {
        if let Some(o) = stage_run::read_outcome(&slurm_out_dir(&self.data_dir, j)) {
            return Some(o);
        }
        let dest =
            versions::version_dir(&self.data_dir, &j.course_id, j.version).join(j.stage.as_str());
        stage_run::read_outcome(&dest).filter(|o| o.attempt == j.attempts)
    }

    /// Takes in a Slurm run that wrote its outcome: its folder is moved
    /// into place (outcome file included, removed only once the result is
    /// durable) and the result recorded as for a local run.
    pub(super) fn finish_slurm(&self, j: JobRecord, o: stage_run::OutcomeRecord) {
        let vdir = versions::version_dir(&self.data_dir, &j.course_id, j.version);
        let out = slurm_out_dir(&self.data_dir, &j);
        let dest = vdir.join(j.stage.as_str());
        let result = o.result().and_then(|outcome| {
            if let Outcome::Done { .. } = &outcome {
                let _ = std::fs::remove_file(out.join(stage_run::PROGRESS_FILE));
                if out.exists() {
                    move_into_place(&out, &vdir, j.stage)?;
                }
            }
            Ok(outcome)
        });
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(self.description_of(&j));
        let finished_at = if o.finished_at.is_empty() {
            crate::time::now_rfc3339()
        } else {
            o.finished_at.clone()
        };
        info!(course = %j.course_id, version = j.version, stage = %j.stage, host = %o.host, job = ?j.slurm.as_ref().and_then(|s| s.job_id.clone()), "Slurm run ended");
        self.finish(j, result, o.duration_ms, finished_at);
        let _ = std::fs::remove_file(dest.join(stage_run::OUTCOME_FILE));
    }
}
