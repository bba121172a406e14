//! The pipeline: decides when a course is ready, makes a result version,
//! and runs its stages in dependency order on a bounded set of workers,
//! with durable state, retries with backoff, and results that appear whole
//! or not at all.
//!
//! One scheduler thread ticks: it re-assembles the courses that instances
//! which arrived since the last tick can affect, triggers the complete ones
//! whose stable age has passed, and starts runnable stages.
//!
//! What a tick costs grows with what changed, not with the archive: the
//! store tells of each committed instance through a channel (the C-STORE
//! path never waits for the scheduler's lock), assembly reads from the
//! store's index only the records linked to those instances
//! (`Index::linked`: their series and reference closure), and only
//! courses whose state can still change (`active`) are re-evaluated. At
//! start, one pass walks the index a few hundred series per tick, so that
//! instances committed just before a crash are assembled too.
//!
//! Stage runs are plain threads (their work is CPU and disk); each writes
//! into `courses/<id>/v<N>/.tmp-<stage>-*` and that folder is renamed to
//! `<stage>/` only on success. A stage whose executor is `slurm` runs
//! instead as a Slurm job (`slurm`, `stage_run`): its description is
//! written and its name recorded before `sbatch`, and each tick that is
//! due looks at the outcome files of the jobs in flight and, for those
//! without one, at `squeue`; the folder the job wrote,
//! `.slurm-<stage>-a<attempt>`, is renamed into place the same way.

mod fault;
pub mod jobs;
mod remote;
pub mod settings;
pub mod slurm;
pub mod stage_run;
mod versions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::course::{self, Course};
use crate::stages::{Outcome, Stage};
use crate::state::StateDb;
use crate::store::{Index, InstanceRecord};
pub use jobs::{job_key, CourseRecord, JobRecord, JobState, VersionRecord};
pub use settings::{
    ExecutorKind, PipelineSection, SlurmJobSettings, SlurmSection, StageLimits, TriggerRule,
};
pub use versions::{remove_results, result_files, stage_json, version_dir, versions_on_disk};

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub settings: PipelineSection,
    /// `rtnode process`: every course runs at once, whatever the rule and
    /// the stable age (those are for the live node).
    pub immediate: bool,
    /// The config as read, handed to stage runs on Slurm (`None`: the
    /// embedded defaults).
    pub stage_config: Option<stage_run::StageConfig>,
}

impl PipelineOptions {
    /// Options from the `pipeline:` section; `source` is the config file
    /// and its text (`Config::source_and_text`), handed to stage runs on
    /// Slurm (`None`: the embedded defaults).
    pub fn new(
        settings: &PipelineSection,
        source: Option<(&std::path::Path, &str)>,
        immediate: bool,
    ) -> PipelineOptions {
        PipelineOptions {
            settings: settings.clone(),
            immediate,
            stage_config: source.map(|(path, text)| stage_run::StageConfig {
                path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
                text: text.to_owned(),
            }),
        }
    }
}

/// A stage run about to start: its job record, stage and course.
type RunStart = (JobRecord, Arc<dyn Stage>, Course);

/// What the coordinator keeps of a Slurm job in flight (besides its
/// durable record).
#[derive(Debug, Clone, Default)]
struct SlurmWatch {
    /// Since when `squeue` has not known the job (or has shown it ended)
    /// with no outcome file.
    missing_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Progress {
    done: u64,
    total: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// A run starting now, with nothing done yet.
    fn starting() -> Progress {
        let t = Instant::now();
        Progress {
            done: 0,
            total: 0,
            started: t,
            last_log: t,
        }
    }
}

/// Series assembled per tick by the start-up pass.
const PASS_SERIES_PER_TICK: usize = 256;

/// The start-up pass over the index: where it stands.
#[derive(Debug, Clone, PartialEq)]
enum Pass {
    /// Not started (no index attached yet, or a pass was asked for).
    Pending,
    /// Series up to this UID are done.
    After(Option<String>),
    Done,
}

struct Inner {
    ours: HashSet<String>,
    /// Where the index walk stands (start-up, and `rtnode process`).
    pass: Pass,
    courses: BTreeMap<String, CourseRecord>,
    /// Courses whose state may still change without a new arrival
    /// (changed, waiting for their stable age, processing); others are not
    /// looked at by `trigger`.
    active: std::collections::BTreeSet<String>,
    /// Monotonic time of the last change to a course's members.
    last_change: HashMap<String, Instant>,
    /// Jobs of every version still of interest (the latest of each course
    /// and any still running), by key.
    jobs: BTreeMap<String, JobRecord>,
    /// Keys of the jobs that may be queued: what `dispatch` looks at, so
    /// that a tick costs the work waiting, not the courses ever processed.
    /// A key whose job is no longer queued is dropped when next seen.
    queued: std::collections::BTreeSet<String>,
    running: HashMap<String, Progress>,
    /// Series that formed no course, with why (as last written to state).
    unassembled: BTreeMap<String, course::Unassembled>,
    /// Running jobs that run on Slurm (a subset of `running`).
    slurm: HashMap<String, SlurmWatch>,
    last_slurm_poll: Option<Instant>,
}

pub struct Pipeline {
    data_dir: PathBuf,
    state: Arc<StateDb>,
    /// The store's index, read for the records that assembly needs.
    index: Mutex<Option<Arc<Index>>>,
    /// Instances committed by the store since the last tick (SOP Instance
    /// UIDs). Sending never blocks; only the scheduler receives.
    arrivals_tx: Mutex<mpsc::Sender<String>>,
    arrivals_rx: Mutex<mpsc::Receiver<String>>,
    arrivals_pending: AtomicUsize,
    /// Records read for course assembly since start (a measure of the work
    /// done per arrival, for tests and metrics).
    assembled_records: AtomicU64,
    opts: PipelineOptions,
    stages: Vec<Arc<dyn Stage>>,
    inner: Mutex<Inner>,
    stopping: AtomicBool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What `rtnode status` shows of one course.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CourseStatus {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub objects: BTreeMap<String, usize>,
    pub complete: bool,
    pub state: String,
    pub rule: String,
    pub missing: Vec<String>,
    pub waiting_for: Vec<String>,
    pub held: Option<String>,
    /// Things noticed and how they were handled (assumptions, objects left
    /// out), from course assembly.
    #[serde(default)]
    pub notes: Vec<String>,
    pub version: u32,
    /// stage → state
    pub stages: BTreeMap<String, String>,
    pub stage_details: Vec<StageStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStatus {
    pub course_id: String,
    pub version: u32,
    pub stage: String,
    pub state: String,
    pub attempts: u32,
    pub done: Option<u64>,
    pub total: Option<u64>,
    pub eta_s: Option<f64>,
    pub duration_ms: Option<u64>,
    pub reused_from: Option<u32>,
    pub error: Option<String>,
    pub skip_reason: Option<String>,
    /// The Slurm job of this run, when it ran there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// What `squeue` last said of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_state: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    pub courses: Vec<CourseStatus>,
    pub queue_depth: usize,
    pub running: usize,
    pub recent_failures: Vec<StageStatus>,
    pub stage_runs: BTreeMap<String, u64>,
    /// Series that formed no course, each with why.
    #[serde(default)]
    pub unassembled: Vec<course::Unassembled>,
}

impl Pipeline {
    /// Opens the pipeline over its durable state, re-queueing any stage a
    /// crash interrupted and removing its partial output.
    pub fn open(
        data_dir: &Path,
        state: Arc<StateDb>,
        opts: PipelineOptions,
    ) -> Result<Arc<Pipeline>> {
        Pipeline::with_stages(data_dir, state, opts, crate::stages::registry())
    }

    pub fn with_stages(
        data_dir: &Path,
        state: Arc<StateDb>,
        opts: PipelineOptions,
        stages: Vec<Arc<dyn Stage>>,
    ) -> Result<Arc<Pipeline>> {
        if stages
            .iter()
            .any(|s| opts.settings.executor_for(s.name()) == ExecutorKind::Slurm)
        {
            slurm::preflight()?;
        }
        let mut courses = BTreeMap::new();
        for c in state.courses::<CourseRecord>()? {
            courses.insert(c.course.id.clone(), c);
        }
        let mut jobs = BTreeMap::new();
        let mut keep: HashSet<PathBuf> = HashSet::new();
        let mut running = HashMap::new();
        let mut slurm_jobs = HashMap::new();
        for mut j in state.jobs::<JobRecord>("")? {
            let latest = courses
                .get(&j.course_id)
                .and_then(|c| c.latest_version())
                .map(|v| v.n);
            if j.state == JobState::Running && j.slurm.is_some() {
                // Its job may still run, or have finished while no
                // coordinator looked: the next ticks find out.
                info!(course = %j.course_id, version = j.version, stage = %j.stage, job = ?j.slurm, "re-attaching to a Slurm job");
                keep.insert(slurm_out_dir(data_dir, &j));
                keep.insert(stage_run::description_path(
                    data_dir,
                    &j.course_id,
                    j.version,
                    &j.stage,
                ));
                running.insert(j.key(), Progress::starting());
                slurm_jobs.insert(j.key(), SlurmWatch::default());
            } else if j.state == JobState::Running {
                warn!(course = %j.course_id, version = j.version, stage = %j.stage, "stage was interrupted; queued again");
                j.state = JobState::Queued;
                j.error = Some("interrupted (node stopped or crashed during the run)".into());
                state.put_job(&j.key(), &j)?;
            }
            if Some(j.version) == latest || !j.state.is_final() {
                jobs.insert(j.key(), j);
            }
        }
        versions::remove_partial_outputs(&data_dir.join("courses"), &keep);
        let queued = jobs
            .iter()
            .filter(|(_, j)| j.state == JobState::Queued)
            .map(|(k, _)| k.clone())
            .collect();
        let ours = state.created()?;
        let unassembled = state
            .unassembled()?
            .into_iter()
            .map(|u| (u.series_instance_uid.clone(), u))
            .collect();
        let active = courses.keys().cloned().collect();
        let (arrivals_tx, arrivals_rx) = mpsc::channel();
        Ok(Arc::new(Pipeline {
            data_dir: data_dir.to_path_buf(),
            state,
            index: Mutex::new(None),
            arrivals_tx: Mutex::new(arrivals_tx),
            arrivals_rx: Mutex::new(arrivals_rx),
            arrivals_pending: AtomicUsize::new(0),
            assembled_records: AtomicU64::new(0),
            opts,
            stages,
            inner: Mutex::new(Inner {
                ours,
                pass: Pass::Pending,
                courses,
                active,
                last_change: HashMap::new(),
                jobs,
                queued,
                running,
                unassembled,
                slurm: slurm_jobs,
                last_slurm_poll: None,
            }),
            stopping: AtomicBool::new(false),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the pipeline the store's index, from which it reads the
    /// records course assembly needs, and starts a pass over every series
    /// in it (a few hundred per tick), so that what was committed before
    /// this start is assembled too.
    pub fn load_index(&self, index: Arc<Index>) {
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = Some(index);
        self.lock().pass = Pass::After(None);
    }

    /// Called for every instance the store has committed. Never waits for
    /// the scheduler: the UID goes into a channel the next tick drains.
    pub fn on_instance(&self, rec: &InstanceRecord) {
        let tx = self.arrivals_tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(rec.sop_instance_uid.clone()).is_ok() {
            self.arrivals_pending.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Holds the scheduler's lock for `d`, as a long tick would: lets a
    /// test show that arrivals do not wait for it.
    #[doc(hidden)]
    pub fn hold_scheduler_for_test(&self, d: Duration) {
        let _inner = self.lock();
        std::thread::sleep(d);
    }

    /// Records read for course assembly since start: with assembly
    /// proportional to what changed, this grows with the arrivals (and the
    /// size of the courses they touch), not with the archive.
    pub fn assembly_work(&self) -> u64 {
        self.assembled_records.load(Ordering::Relaxed)
    }

    /// Records an object rtnode created, so that it never re-opens a course
    /// when it comes back through a PACS or a planning system.
    pub fn mark_created(&self, sop_instance_uid: &str, course_id: &str) -> Result<()> {
        self.state.mark_created(sop_instance_uid, course_id)?;
        self.lock().ours.insert(sop_instance_uid.to_string());
        Ok(())
    }

    /// Drops a course from the scheduler before its data is purged. Refused
    /// while a stage run of it is queued or running; checked and done under
    /// the scheduler's lock, so no run can start in between.
    pub fn forget_course(&self, course_id: &str) -> std::result::Result<(), String> {
        let mut inner = self.lock();
        if let Some(j) = course_jobs(&inner.jobs, course_id)
            .find(|(_, j)| !j.state.is_final())
            .map(|(_, j)| j)
        {
            return Err(format!(
                "stage {} of v{} is {}",
                j.stage,
                j.version,
                j.state.as_str()
            ));
        }
        inner.courses.remove(course_id);
        inner.active.remove(course_id);
        let keys: Vec<String> = course_jobs(&inner.jobs, course_id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            inner.jobs.remove(&k);
        }
        inner.last_change.remove(course_id);
        Ok(())
    }

    /// Starts the scheduler thread.
    pub fn spawn(self: &Arc<Self>) -> Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        Ok(std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                while !me.stopping.load(Ordering::Relaxed) {
                    if let Err(e) = me.tick() {
                        error!(error = format!("{e:#}"), "pipeline tick failed");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                me.wait_idle_running(Duration::from_secs(10));
            })?)
    }

    /// Stops scheduling new stage runs; the scheduler thread then waits for
    /// the runs in flight to finish.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Waits for the local runs in flight (Slurm jobs go on without the
    /// coordinator, which re-attaches at its next start).
    fn wait_idle_running(&self, limit: Duration) {
        let t0 = Instant::now();
        let local_running = |i: &Inner| i.running.len() > i.slurm.len();
        while local_running(&self.lock()) && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs until no stage is queued or running (for `rtnode process`).
    pub fn run_until_idle(self: &Arc<Self>) -> Result<()> {
        loop {
            self.tick()?;
            let idle = {
                let inner = self.lock();
                matches!(inner.pass, Pass::Done | Pass::Pending)
                    && self.arrivals_pending.load(Ordering::Relaxed) == 0
                    && inner.running.is_empty()
                    && !inner.queued.iter().any(|k| {
                        inner
                            .jobs
                            .get(k)
                            .is_some_and(|j| j.state == JobState::Queued)
                    })
            };
            if idle {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One scheduling step.
    pub fn tick(self: &Arc<Self>) -> Result<()> {
        self.reassemble()?;
        // Before `trigger`, so that a course whose last run ended on Slurm
        // is seen done in the same tick, as one whose last local run ended.
        self.poll_slurm();
        self.trigger()?;
        self.dispatch()
    }

    fn rule_for(&self, c: &Course) -> TriggerRule {
        let s = &self.opts.settings;
        c.calling_aes
            .iter()
            .find_map(|ae| s.trigger_by_calling_ae.get(ae.trim()).copied())
            .unwrap_or(s.trigger)
    }

    /// Re-assembles what the arrivals since the last tick (and the next
    /// slice of the start-up pass) can affect.
    fn reassemble(&self) -> Result<()> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(index) = index else {
            return Ok(());
        };
        let mut seeds: Vec<String> = Vec::new();
        {
            let rx = self.arrivals_rx.lock().unwrap_or_else(|p| p.into_inner());
            while let Ok(uid) = rx.try_recv() {
                self.arrivals_pending.fetch_sub(1, Ordering::Relaxed);
                seeds.push(uid);
            }
        }
        let pass = self.lock().pass.clone();
        if let Pass::After(after) = pass {
            let batch = index.series_after(after.as_deref(), PASS_SERIES_PER_TICK)?;
            let next = if batch.len() < PASS_SERIES_PER_TICK {
                Pass::Done
            } else {
                Pass::After(batch.last().map(|(k, _)| k.clone()))
            };
            seeds.extend(batch.into_iter().map(|(_, sop)| sop));
            self.lock().pass = next;
        }
        seeds.sort();
        seeds.dedup();
        // Components one at a time: each is assembled alone, as the whole
        // archive would assemble it (nothing links it to the rest).
        let mut done: HashSet<String> = HashSet::new();
        for seed in &seeds {
            if done.contains(seed) {
                continue;
            }
            let records = index.linked(&[seed.as_str()])?;
            self.assembled_records
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            done.extend(records.iter().map(|r| r.sop_instance_uid.clone()));
            self.assemble_component(&records)?;
        }
        Ok(())
    }

    /// Assembles the courses of one linked set of records and records what
    /// changed, durably.
    fn assemble_component(&self, records: &[InstanceRecord]) -> Result<()> {
        let ours: HashSet<String> = {
            let inner = self.lock();
            records
                .iter()
                .filter(|r| inner.ours.contains(&r.sop_instance_uid))
                .map(|r| r.sop_instance_uid.clone())
                .collect()
        };
        let assembly = course::assemble_all(records, &ours);
        let series: std::collections::BTreeSet<&str> = records
            .iter()
            .map(|r| r.series_instance_uid.as_str())
            .collect();
        let mut inner = self.lock();
        let gone: Vec<String> = series
            .iter()
            .filter(|s| {
                inner.unassembled.contains_key(**s)
                    && !assembly
                        .unassembled
                        .iter()
                        .any(|u| u.series_instance_uid == **s)
            })
            .map(|s| s.to_string())
            .collect();
        let changed: Vec<course::Unassembled> = assembly
            .unassembled
            .iter()
            .filter(|u| inner.unassembled.get(&u.series_instance_uid) != Some(u))
            .cloned()
            .collect();
        if !gone.is_empty() || !changed.is_empty() {
            self.state.update_unassembled(&gone, &changed)?;
            for g in &gone {
                inner.unassembled.remove(g);
            }
            for u in changed {
                inner.unassembled.insert(u.series_instance_uid.clone(), u);
            }
        }
        // A course whose planning series no longer forms one (more of it
        // arrived and showed a gap, or a second frame of reference): one
        // never processed is dissolved, one with results is kept and says
        // why it stays incomplete.
        let produced: HashSet<String> = assembly.courses.iter().map(|c| c.id.clone()).collect();
        for u in &assembly.unassembled {
            let id = course::course_id(&u.patient_id, &u.series_instance_uid);
            if produced.contains(&id) {
                continue;
            }
            let Some(old) = inner.courses.get(&id).cloned() else {
                continue;
            };
            let busy = course_jobs(&inner.jobs, &id).any(|(_, j)| !j.state.is_final());
            if old.versions.is_empty() && !busy {
                self.state.remove_course(&id, &[])?;
                inner.courses.remove(&id);
                inner.active.remove(&id);
                inner.last_change.remove(&id);
                info!(course = %id, reason = %u.reason, "course dissolved: its planning series no longer forms one");
                continue;
            }
            let why = format!("its planning series no longer forms a course: {}", u.reason);
            if old.missing != [why.clone()] {
                let mut rec = old;
                rec.missing = vec![why];
                rec.updated_at = crate::time::now_rfc3339();
                self.state.put_course(&id, &rec)?;
                inner.active.insert(id.clone());
                inner.courses.insert(id, rec);
            }
        }
        for c in assembly.courses {
            let fingerprint = versions::members_fingerprint(&c);
            let rule = self.rule_for(&c);
            let missing = c.missing_for(rule.as_str(), self.opts.settings.require_approved);
            let id = c.id.clone();
            let changed = match inner.courses.get(&id) {
                Some(old) => {
                    old.fingerprint != fingerprint
                        || old.missing != missing
                        || old.course.held != c.held
                }
                None => true,
            };
            if !changed {
                continue;
            }
            if inner
                .courses
                .get(&id)
                .is_none_or(|o| o.fingerprint != fingerprint)
            {
                inner.last_change.insert(id.clone(), Instant::now());
            }
            let old = inner.courses.get(&id);
            let rec = CourseRecord {
                state: old
                    .map(|o| o.state.clone())
                    .unwrap_or_else(|| "incomplete".into()),
                versions: old.map(|o| o.versions.clone()).unwrap_or_default(),
                course: c,
                rule: rule.as_str().to_owned(),
                missing,
                fingerprint,
                updated_at: crate::time::now_rfc3339(),
            };
            self.state.put_course(&id, &rec)?;
            inner.active.insert(id.clone());
            inner.courses.insert(id, rec);
        }
        Ok(())
    }

    fn trigger(&self) -> Result<()> {
        let stable = Duration::from_secs(self.opts.settings.stable_age_s);
        let mut inner = self.lock();
        let ids: Vec<String> = inner.active.iter().cloned().collect();
        for id in ids {
            let Some(rec) = inner.courses.get(&id).cloned() else {
                inner.active.remove(&id);
                continue;
            };
            let new_state = if let Some(h) = &rec.course.held {
                let _ = h;
                "held".to_string()
            } else if !self.opts.immediate && !rec.missing.is_empty() {
                "incomplete".to_string()
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
                    let rec = self.new_version(&mut inner, rec)?;
                    inner.courses.insert(id.clone(), rec);
                    "processing".to_string()
                } else {
                    "waiting".to_string()
                }
            };
            // Settled states change only with a new arrival (reassemble
            // makes the course active again) or an operator's action.
            if matches!(
                new_state.as_str(),
                "done" | "failed" | "held" | "incomplete"
            ) {
                inner.active.remove(&id);
            }
            if let Some(r) = inner.courses.get_mut(&id) {
                if r.state != new_state {
                    if new_state == "held" {
                        warn!(course = %id, reason = ?r.course.held, "course held");
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
    /// the previous version when its fingerprint is unchanged, or skipped
    /// when its inputs are absent.
    fn new_version(&self, inner: &mut Inner, mut rec: CourseRecord) -> Result<CourseRecord> {
        let n = rec.latest_version().map(|v| v.n + 1).unwrap_or(1);
        let prev = rec.latest_version().map(|v| v.n);
        let reason = match prev {
            None => "first complete delivery".to_string(),
            Some(p) => format!("members changed since v{p}"),
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
        let mut fingerprints: HashMap<&str, String> = HashMap::new();
        let vdir = versions::version_dir(&self.data_dir, &id, n);
        std::fs::create_dir_all(&vdir)?;
        for stage in &self.stages {
            let name = stage.name();
            let mut job = JobRecord {
                course_id: id.clone(),
                version: n,
                stage: name.to_string(),
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
                    if let Some(p) = prev {
                        let old = inner.jobs.get(&job_key(&id, p, name)).cloned().or_else(|| {
                            self.state
                                .jobs::<JobRecord>(&job_key(&id, p, name))
                                .ok()
                                .and_then(|v| v.into_iter().next())
                        });
                        if let Some(old) =
                            old.filter(|o| o.state == JobState::Done && o.fingerprint == fp)
                        {
                            let from = versions::version_dir(&self.data_dir, &id, p).join(name);
                            if versions::link_tree(&from, &vdir.join(name)).is_ok() {
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

    fn threads_for(&self, stage: &str) -> usize {
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

    fn dispatch(self: &Arc<Self>) -> Result<()> {
        if self.stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        let settings = &self.opts.settings;
        let max_local = settings.worker_count();
        let max_slurm = settings.slurm.max_jobs;
        let mut to_start = Vec::new();
        // Slurm runs of one tick, one job array per stage and thread count.
        let mut to_submit: BTreeMap<(String, u32), Vec<RunStart>> = BTreeMap::new();
        {
            let mut inner = self.lock();
            let now = now_ms();
            let mut slurm_running = inner.slurm.len();
            let mut local_running = inner.running.len().saturating_sub(slurm_running);
            let mut per_stage: HashMap<String, usize> = HashMap::new();
            for key in inner.running.keys() {
                if inner.slurm.contains_key(key) {
                    continue;
                }
                if let Some(j) = inner.jobs.get(key) {
                    *per_stage.entry(j.stage.clone()).or_default() += 1;
                }
            }
            let mut names: HashMap<(String, u32), (String, u32)> = HashMap::new();
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
                let Some(stage) = self.stages.iter().find(|s| s.name() == job.stage).cloned()
                else {
                    continue;
                };
                // Dependencies: all final; any not done makes this one skipped.
                let mut blocked = false;
                let mut unmet = None;
                for dep in stage.after() {
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
                for dep in stage.reads_if_present() {
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
                let executor = settings.executor_for(&job.stage);
                match executor {
                    ExecutorKind::Local => {
                        if local_running >= max_local {
                            continue;
                        }
                        let limit = settings
                            .stages
                            .get(&job.stage)
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
                    let group = (j.stage.clone(), j.threads);
                    let (name, next) = names.entry(group.clone()).or_insert_with(|| {
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
                    *per_stage.entry(j.stage.clone()).or_default() += 1;
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

    fn refresh_manifest(&self, inner: &Inner, course_id: &str, version: u32) {
        if let Some(rec) = inner.courses.get(course_id) {
            if let Err(e) = versions::write_manifest(&self.data_dir, rec, version, &inner.jobs) {
                warn!(course = %course_id, error = %e, "cannot write manifest");
            }
        }
    }

    fn run_job(self: Arc<Self>, job: JobRecord, stage: Arc<dyn Stage>, course: Course) {
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
            if let Outcome::Done(_) = &outcome {
                move_into_place(&tmp, &vdir, &job.stage)?;
            }
            Ok(outcome)
        });
        let _ = std::fs::remove_dir_all(&tmp);
        let ms = started.elapsed().as_millis() as u64;
        self.finish(job, result, ms, crate::time::now_rfc3339());
    }

    /// Records how a run ended (wherever it ran): created instances, the
    /// job's state, a retry with backoff or the failure; durable.
    fn finish(&self, mut job: JobRecord, result: Result<Outcome>, ms: u64, finished_at: String) {
        let key = job.key();
        job.duration_ms = Some(ms);
        job.finished_at = Some(finished_at);
        match result {
            Ok(Outcome::Done(summary)) => {
                // Objects a stage created are results: when they come back
                // through a PACS or a planning system they never re-open
                // the course.
                for uid in summary["created_instances"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let Some(uid) = uid.as_str() {
                        if let Err(e) = self.mark_created(uid, &job.course_id) {
                            error!(error = %e, "cannot record a created instance");
                        }
                    }
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
        if let Err(e) = self.state.count_stage_run(&job.stage) {
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

    fn progress(&self, key: &str, done: u64, total: u64) {
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

    pub fn status(&self) -> Result<PipelineStatus> {
        let inner = self.lock();
        let mut st = build_status(&inner.courses, &inner.jobs, &inner.running);
        st.stage_runs = self.state.stage_runs()?;
        st.unassembled = inner.unassembled.values().cloned().collect();
        let order: Vec<&str> = self.stages.iter().map(|s| s.name()).collect();
        in_dag_order(&mut st, &order);
        Ok(st)
    }

    pub fn any_failed_or_held(&self) -> Vec<String> {
        let inner = self.lock();
        let mut out = Vec::new();
        for c in inner.courses.values() {
            if let Some(h) = &c.course.held {
                out.push(format!("{}: held: {h}", c.course.id));
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

/// The cached jobs of one course (keys are `<course>/v<NNNN>/<stage>`).
fn course_jobs<'a>(
    jobs: &'a BTreeMap<String, JobRecord>,
    course_id: &str,
) -> impl Iterator<Item = (&'a String, &'a JobRecord)> + 'a {
    let prefix = format!("{course_id}/");
    jobs.range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
}

/// The folder a Slurm run of `job`'s current attempt writes into.
fn slurm_out_dir(data_dir: &Path, job: &JobRecord) -> PathBuf {
    versions::version_dir(data_dir, &job.course_id, job.version)
        .join(format!(".slurm-{}-a{}", job.stage, job.attempts))
}

/// Renames a finished run's folder to `vdir/<stage>` (replacing what an
/// earlier run left there) and makes the rename durable.
fn move_into_place(from: &Path, vdir: &Path, stage: &str) -> Result<()> {
    let dest = vdir.join(stage);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(from, &dest)?;
    crate::store::fsync_dir(vdir)?;
    Ok(())
}

fn eta(p: &Progress) -> Option<f64> {
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
            state: rec.state.clone(),
            rule: rec.rule.clone(),
            missing: rec.missing.clone(),
            waiting_for: c.waiting_for.clone(),
            held: c.held.clone(),
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
                .insert(j.stage.clone(), j.state.as_str().to_string());
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
        stage: j.stage.clone(),
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
    in_dag_order(&mut st, &crate::stages::STAGE_NAMES);
    Ok(st)
}

/// Stages listed in the order they run, not alphabetically.
fn in_dag_order(st: &mut PipelineStatus, order: &[&str]) {
    for c in &mut st.courses {
        c.stage_details.sort_by_key(|d| {
            order
                .iter()
                .position(|n| *n == d.stage)
                .unwrap_or(usize::MAX)
        });
    }
}
