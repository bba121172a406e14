//! The `pipeline:` section of the node configuration: when a course
//! starts (the [`TriggerRule`]s), how many stage runs at once, the per-stage
//! limits and where runs execute (locally or on Slurm).
//!
//! The pipeline owns these settings; the config only aggregates them and
//! maps the key paths [`PipelineSection::check`] reports to file positions.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// When a course is complete enough for its stages to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum TriggerRule {
    /// The planning CT alone.
    #[serde(rename = "ct")]
    Ct,
    /// The CT and a structure set on it.
    #[default]
    #[serde(rename = "ct+rtstruct")]
    CtRtstruct,
    /// CT, RTSTRUCT, RTPLAN (approved, with `require_approved`) and RTDOSE.
    #[serde(rename = "full")]
    Full,
}

impl TriggerRule {
    /// Every rule, in the order of what each asks for.
    pub const ALL: [TriggerRule; 3] = [TriggerRule::Ct, TriggerRule::CtRtstruct, TriggerRule::Full];

    /// The rule as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::Ct => "ct",
            TriggerRule::CtRtstruct => "ct+rtstruct",
            TriggerRule::Full => "full",
        }
    }
}

impl std::fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a course is processed, and with how much of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// When a course is complete enough to start (see [`TriggerRule`]).
    #[serde(default)]
    pub trigger: TriggerRule,
    /// Per calling AE title, a rule that overrides `trigger`.
    #[serde(default)]
    pub trigger_by_calling_ae: BTreeMap<String, TriggerRule>,
    /// Seconds without a new instance before a complete course starts.
    #[serde(default = "default_stable_age_s")]
    pub stable_age_s: u64,
    /// Only plans with ApprovalStatus APPROVED count towards `full`.
    #[serde(default)]
    pub require_approved: bool,
    /// Stage runs at once across courses: `auto` (cores − 1, at least 1) or a number.
    #[serde(default = "default_workers")]
    pub workers: String,
    /// Attempts of a failing stage before it is left failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled at each further attempt.
    #[serde(default = "default_retry_backoff_s")]
    pub retry_backoff_s: u64,
    /// Per-stage limits, by stage name.
    #[serde(default = "default_stage_limits")]
    pub stages: BTreeMap<String, StageLimits>,
    /// Where stage runs execute: `local` (threads of this process) or
    /// `slurm` (one `sbatch` job per run; see `pipeline::slurm`). A stage's
    /// own `executor` overrides it; `export` always runs locally.
    #[serde(default)]
    pub executor: ExecutorKind,
    /// How stage runs are submitted when they go to Slurm.
    #[serde(default)]
    pub slurm: SlurmSection,
}

/// Where a stage run executes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// A thread of the coordinating process (the node, or `rtnode process`).
    #[default]
    Local,
    /// A Slurm job running `rtnode run-stage` on a node of the cluster, with
    /// the data directory on the cluster's shared filesystem.
    Slurm,
}

impl ExecutorKind {
    /// The name used in the config: `local` or `slurm`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// What `sbatch` is told about a stage run. Empty fields are left to the
/// cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmJobSettings {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// `--time`, e.g. `01:00:00`.
    #[serde(default)]
    pub time: Option<String>,
    /// `--mem`, e.g. `16G`.
    #[serde(default)]
    pub mem: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
}

impl SlurmJobSettings {
    /// These settings, with `over`'s non-empty fields taking precedence.
    pub fn overlaid(&self, over: Option<&SlurmJobSettings>) -> SlurmJobSettings {
        let Some(o) = over else {
            return self.clone();
        };
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmJobSettings {
            partition: pick(&self.partition, &o.partition),
            gres: pick(&self.gres, &o.gres),
            time: pick(&self.time, &o.time),
            mem: pick(&self.mem, &o.mem),
            account: pick(&self.account, &o.account),
        }
    }
}

/// `pipeline.slurm`: the coordinator's side of the Slurm executor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    /// The `rtnode` binary the jobs run, as the cluster's nodes see it
    /// (default: this binary's own path, which suits a shared install).
    #[serde(default)]
    pub rtnode: Option<PathBuf>,
    /// `sbatch` settings of every stage's job; a stage's
    /// `pipeline.stages.<stage>.slurm` overrides them field by field.
    #[serde(default)]
    pub job: SlurmJobSettings,
    /// Seconds between looks at the jobs (their outcome files, `squeue`).
    #[serde(default = "default_slurm_poll_s")]
    pub poll_s: u64,
    /// Stage runs submitted and not yet finished, at most.
    #[serde(default = "default_slurm_max_jobs")]
    pub max_jobs: usize,
    /// Seconds a job may be unknown to `squeue` with no outcome file before
    /// it counts as a failed attempt (room for a shared filesystem's
    /// attribute cache).
    #[serde(default = "default_slurm_grace_s")]
    pub grace_s: u64,
}

fn default_slurm_poll_s() -> u64 {
    2
}
fn default_slurm_max_jobs() -> usize {
    500
}
fn default_slurm_grace_s() -> u64 {
    10
}

impl Default for SlurmSection {
    fn default() -> Self {
        SlurmSection {
            rtnode: None,
            job: SlurmJobSettings::default(),
            poll_s: default_slurm_poll_s(),
            max_jobs: default_slurm_max_jobs(),
            grace_s: default_slurm_grace_s(),
        }
    }
}

/// Per-stage overrides under `pipeline.stages.<stage>`: concurrency,
/// threads and where the stage runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageLimits {
    /// Runs of this stage at once (0: no limit beyond `pipeline.workers`).
    #[serde(default)]
    pub workers: u32,
    /// Threads one run may use, passed to child processes as OMP_NUM_THREADS
    /// and friends (0: the machine's cores divided by the stage's workers;
    /// on Slurm, also the job's `--cpus-per-task`).
    #[serde(default)]
    pub threads: u32,
    /// Where this stage runs (default: `pipeline.executor`).
    #[serde(default)]
    pub executor: Option<ExecutorKind>,
    /// This stage's `sbatch` settings over `pipeline.slurm`'s.
    #[serde(default)]
    pub slurm: Option<SlurmJobSettings>,
}

fn default_stable_age_s() -> u64 {
    30
}
fn default_workers() -> String {
    "auto".to_owned()
}
fn default_max_attempts() -> u32 {
    3
}
fn default_retry_backoff_s() -> u64 {
    10
}
fn default_stage_limits() -> BTreeMap<String, StageLimits> {
    // One GPU job at a time, as the predecessor learned.
    BTreeMap::from([(
        "segmentation".to_owned(),
        StageLimits {
            workers: 1,
            threads: 0,
            executor: None,
            slurm: None,
        },
    )])
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            trigger: TriggerRule::default(),
            trigger_by_calling_ae: Default::default(),
            stable_age_s: default_stable_age_s(),
            require_approved: false,
            workers: default_workers(),
            max_attempts: default_max_attempts(),
            retry_backoff_s: default_retry_backoff_s(),
            stages: default_stage_limits(),
            executor: ExecutorKind::Local,
            slurm: SlurmSection::default(),
        }
    }
}

impl PipelineSection {
    /// The number of stage runs at once.
    pub fn worker_count(&self) -> usize {
        match self.workers.trim() {
            "auto" => std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            n => n.parse::<usize>().unwrap_or(1).max(1),
        }
    }

    /// Where runs of `stage` execute: its own setting, else the section's;
    /// `export` writes the outbound queue and always runs locally.
    pub fn executor_for(&self, stage: &str) -> ExecutorKind {
        if stage == "export" {
            return ExecutorKind::Local;
        }
        self.stages
            .get(stage)
            .and_then(|l| l.executor)
            .unwrap_or(self.executor)
    }

    /// The `sbatch` settings of `stage`'s jobs.
    pub fn slurm_for(&self, stage: &str) -> SlurmJobSettings {
        self.slurm
            .job
            .overlaid(self.stages.get(stage).and_then(|l| l.slurm.as_ref()))
    }

    /// The rule for a course sent by `calling_ae`.
    pub fn trigger_for(&self, calling_ae: Option<&str>) -> TriggerRule {
        calling_ae
            .and_then(|ae| self.trigger_by_calling_ae.get(ae.trim()).copied())
            .unwrap_or(self.trigger)
    }

    /// Every problem of the section, as (key path under `pipeline`,
    /// message): a stage name the pipeline does not know (and the keys
    /// inside a stage's limits, which serde checks), workers, attempts and
    /// the Slurm settings.
    pub fn check(&self, err: &mut impl FnMut(&str, String)) {
        let workers = self.workers.trim();
        if workers != "auto" && workers.parse::<u32>().map_or(true, |n| n == 0) {
            err(
                "workers",
                format!(
                    "{:?} is neither \"auto\" nor a positive number",
                    self.workers
                ),
            );
        }
        if self.max_attempts == 0 {
            err("max_attempts", "must be at least 1".to_owned());
        }
        for (name, limits) in &self.stages {
            let key = format!("stages.{name}");
            if !crate::stages::STAGE_NAMES.contains(&name.as_str()) {
                err(
                    &key,
                    format!(
                        "unknown stage {name:?}; the stages are {:?}",
                        crate::stages::STAGE_NAMES
                    ),
                );
            }
            if name == "export" && limits.executor == Some(ExecutorKind::Slurm) {
                err(
                    &format!("{key}.executor"),
                    "export runs where the outbound queue is (the coordinator); it cannot run on slurm"
                        .to_owned(),
                );
            }
        }
        if self.slurm.poll_s == 0 {
            err("slurm.poll_s", "must be at least 1".to_owned());
        }
        if self.slurm.max_jobs == 0 {
            err("slurm.max_jobs", "must be at least 1".to_owned());
        }
    }
}
