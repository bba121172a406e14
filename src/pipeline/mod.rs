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
//!
//! Files: `assembly` (arrivals into courses), `schedule` (versions and
//! which runs start), `runs` (a local run, and how any run ends), `remote`
//! (the coordinator's side of Slurm runs), `stage_run` (a run's
//! description and outcome, and `rtnode run-stage`), `status`, `jobs` (the
//! durable records), `versions` (fingerprints, manifests, result folders),
//! `operator` (an operator's hold, release, process-now and re-run).

mod assembly;
mod fault;
pub mod jobs;
mod operator;
mod remote;
mod runs;
mod schedule;
pub mod settings;
pub mod slurm;
pub mod stage_run;
mod status;
mod versions;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use tracing::{error, info, warn};

use crate::course::{self, Course};
use crate::stages::{Registry, Stage};
use crate::state::StateDb;
use crate::store::{Index, InstanceRecord};
use crate::time::now_ms;
pub use jobs::{
    job_key, CourseRecord, CourseState, JobRecord, JobState, OperatorHold, VersionRecord,
};
pub use operator::{ActionError, ActionOutcome, CourseAction, MAX_REASON_CHARS};
use runs::move_into_place;
pub use settings::{
    ExecutorKind, PipelineSection, SlurmJobSettings, SlurmSection, StageLimits, TriggerRule,
};
pub use status::{offline_status, CourseStatus, PipelineStatus, StageStatus};
pub use versions::{remove_results, result_files, stage_json, version_dir, versions_on_disk};

/// How [`Pipeline::open`] runs the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The `pipeline:` config section: trigger rules, stable age, workers,
    /// retries, executors.
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

/// The running pipeline: the scheduler's view of every course and job,
/// over the durable records in the state database. Shared as `Arc`; one
/// scheduler thread drives it, the store and the CLI talk to it.
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
    stages: Registry,
    inner: Mutex<Inner>,
    stopping: AtomicBool,
}

impl Pipeline {
    /// Opens the pipeline over its durable state, re-queueing any stage a
    /// crash interrupted and removing its partial output.
    pub fn open(
        data_dir: &Path,
        state: Arc<StateDb>,
        opts: PipelineOptions,
    ) -> Result<Arc<Pipeline>> {
        Pipeline::with_registry(data_dir, state, opts, Registry::defaults())
    }

    /// As [`Pipeline::with_registry`], over a list of stages in run order
    /// (checked as [`Registry::new`] checks it).
    pub fn with_stages(
        data_dir: &Path,
        state: Arc<StateDb>,
        opts: PipelineOptions,
        stages: Vec<Arc<dyn Stage>>,
    ) -> Result<Arc<Pipeline>> {
        Pipeline::with_registry(data_dir, state, opts, Registry::new(stages)?)
    }

    /// Opens the pipeline over its durable state with these stages.
    pub fn with_registry(
        data_dir: &Path,
        state: Arc<StateDb>,
        opts: PipelineOptions,
        stages: Registry,
    ) -> Result<Arc<Pipeline>> {
        if stages
            .ids()
            .any(|s| opts.settings.executor_for(s.as_str()) == ExecutorKind::Slurm)
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
                    j.stage,
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

    /// Runs until no stage is queued or running (for `rtnode process`);
    /// the queued runs of a course on an operator's hold do not count, as
    /// they wait for a release.
    pub fn run_until_idle(self: &Arc<Self>) -> Result<()> {
        loop {
            self.tick()?;
            let idle = {
                let inner = self.lock();
                let on_hold = |course: &str| {
                    inner
                        .courses
                        .get(course)
                        .is_some_and(|c| c.operator_hold.is_some())
                };
                matches!(inner.pass, Pass::Done | Pass::Pending)
                    && self.arrivals_pending.load(Ordering::Relaxed) == 0
                    && inner.running.is_empty()
                    && !inner.queued.iter().any(|k| {
                        inner
                            .jobs
                            .get(k)
                            .is_some_and(|j| j.state == JobState::Queued && !on_hold(&j.course_id))
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
