//! One stage run of one course version as a unit of work that can happen in
//! another process, on another machine: `rtnode run-stage`.
//!
//! The coordinator (the serving node, or `rtnode process`) is the only
//! process that opens the databases. For a run elsewhere it writes a job
//! description beside the version's results,
//! `courses/<id>/v<N>/.run-<stage>.json` (mode 0600): the course as
//! assembled, the attempt, threads, the output folder and the upstream
//! folders (relative to the data directory), and the node's config text.
//! The run reads only that and the stored instances, writes its results
//! into the output folder it was given, and last of all an outcome file
//! (`.outcome.json`: done with its summary, skipped with why, or failed
//! with the error), after every result file is fsynced. The outcome file
//! decides: the coordinator renames the folder into place when it says
//! done, exactly as it does for a run of its own, and a job that ends
//! without one is a failed attempt.
//!
//! Local runs share [`execute`] with remote ones, so that a stage behaves
//! the same wherever it runs.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::fault;
use crate::course::Course;
use crate::stages::{Outcome, Registry, Stage, StageContext, StageId};

/// Format of the job description; bumped when it changes incompatibly.
pub const DESCRIPTION_FORMAT: u32 = 1;
/// Written last into a run's output folder; its presence ends the run.
pub const OUTCOME_FILE: &str = ".outcome.json";
/// Progress of a run elsewhere (`{"done":…,"total":…}`), for `status`.
pub const PROGRESS_FILE: &str = ".progress.json";

/// The node's configuration as it was read, so that a run elsewhere
/// configures its stage exactly as the coordinator would (relative paths
/// resolve against `path`'s folder, which must be visible there too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageConfig {
    /// Where the config file was read from.
    pub path: PathBuf,
    /// Its full text (YAML, `rtnode.yaml`), as read.
    pub text: String,
}

/// What `rtnode run-stage` is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageJob {
    /// [`DESCRIPTION_FORMAT`] of the writer; a run refuses another.
    pub format: u32,
    /// The course as the coordinator has it assembled: its member objects.
    pub course: Course,
    /// The course's result version.
    pub version: u32,
    /// The stage to run.
    pub stage: StageId,
    /// Which attempt of the job this is (1 for the first run).
    pub attempt: u32,
    /// Threads the run may use (OMP_NUM_THREADS and friends).
    pub threads: u32,
    /// Output folder, relative to the data directory.
    pub out_dir: String,
    /// Output folders of the stages this one reads, relative to the data
    /// directory.
    pub upstream: BTreeMap<StageId, String>,
    /// `None`: the embedded defaults.
    pub config: Option<StageConfig>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The stage wrote its results.
    Done {
        /// What the stage reports of its result, shown by `status`.
        summary: serde_json::Value,
        /// SOP Instance UIDs the run wrote ([`Outcome::Done`]'s `created`).
        /// Files written before this field existed list them in the
        /// summary's `created_instances`, which [`OutcomeRecord::result`]
        /// still reads: a job submitted before an upgrade may end after it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        created: Vec<String>,
    },
    /// The stage had nothing to do (e.g. no RTSTRUCT); not an error.
    Skipped {
        /// Why, in words.
        reason: String,
    },
    /// The run failed; the coordinator may retry it.
    Failed {
        /// The error with its causes, one line.
        error: String,
    },
}

/// The outcome file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// How the run ended.
    #[serde(flatten)]
    pub kind: OutcomeKind,
    /// The attempt the run was (0 for an unreadable outcome file).
    pub attempt: u32,
    /// Host name of the machine that ran it; empty when unknown.
    pub host: String,
    /// When the run started, RFC 3339 UTC; empty when unknown.
    pub started_at: String,
    /// When it ended, RFC 3339 UTC; empty when unknown.
    pub finished_at: String,
    /// Its wall time, ms.
    pub duration_ms: u64,
}

impl OutcomeRecord {
    /// The run's result as a local run reports it.
    pub fn result(&self) -> Result<Outcome> {
        match &self.kind {
            OutcomeKind::Done { summary, created } => {
                let mut created = created.clone();
                if created.is_empty() {
                    created = summary["created_instances"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect();
                }
                Ok(Outcome::Done {
                    summary: summary.clone(),
                    created,
                })
            }
            OutcomeKind::Skipped { reason } => Ok(Outcome::Skipped(reason.clone())),
            OutcomeKind::Failed { error } => Err(anyhow::anyhow!("{error}")),
        }
    }
}

/// Where the coordinator writes the description of `stage`'s run.
pub fn description_path(data_dir: &Path, course_id: &str, version: u32, stage: StageId) -> PathBuf {
    super::version_dir(data_dir, course_id, version).join(format!(".run-{stage}.json"))
}

/// Runs `stage` into `out_dir` (created here). A panic costs the run, not
/// the process. The common core of runs here and elsewhere.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    stage: &dyn Stage,
    course: &Course,
    version: u32,
    data_dir: &Path,
    out_dir: &Path,
    upstream: HashMap<StageId, PathBuf>,
    threads: usize,
    attempt: u32,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Outcome> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ctx = StageContext {
        course,
        version,
        data_dir,
        out_dir: out_dir.to_path_buf(),
        upstream,
        threads: threads.max(1),
        progress,
    };
    fault::inject(stage.name(), attempt)?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stage.run(&ctx))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            bail!("stage panicked: {msg}")
        }
    }
}

/// The upstream folders a run of `stage` reads in version folder `vdir`.
pub fn upstream_dirs(stage: &dyn Stage, vdir: &Path) -> HashMap<StageId, PathBuf> {
    stage
        .after()
        .iter()
        .map(|&d| (d, vdir.join(d.as_str())))
        .chain(
            stage
                .reads_if_present()
                .iter()
                .map(|&d| (d, vdir.join(d.as_str())))
                .filter(|(_, p)| p.is_dir()),
        )
        .collect()
}

/// Writes `bytes` to `path` through a temporary name: readers see the old
/// file or the new one, never part of it. Mode 0600 (patient data).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        crate::store::fsync_dir(dir)?;
    }
    Ok(())
}

/// Reads a run's outcome file, if it has written one. A file that cannot
/// be parsed is a failed run (it was renamed into place whole, so it is
/// not half-written).
pub fn read_outcome(out_dir: &Path) -> Option<OutcomeRecord> {
    let bytes = std::fs::read(out_dir.join(OUTCOME_FILE)).ok()?;
    Some(
        serde_json::from_slice(&bytes).unwrap_or_else(|e| OutcomeRecord {
            kind: OutcomeKind::Failed {
                error: format!("unreadable outcome file: {e}"),
            },
            attempt: 0,
            host: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
        }),
    )
}

/// Reads a run's progress file, if any.
pub fn read_progress(out_dir: &Path) -> Option<(u64, u64)> {
    let bytes = std::fs::read(out_dir.join(PROGRESS_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["done"].as_u64()?, v["total"].as_u64()?))
}

fn fsync_tree(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            fsync_tree(&e.path())?;
        } else {
            std::fs::File::open(e.path())?.sync_all()?;
        }
    }
    crate::store::fsync_dir(dir)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `rtnode run-stage`: runs the described stage of one course version and
/// writes its outcome file. Errors before the output folder is known (no
/// description, one for another run) are returned; from then on every
/// failure ends in a `failed` outcome file, which is what the coordinator
/// reads. `stages_for` builds the stages from the node's config as the job
/// carries it (`None`: the embedded defaults); the command line passes the
/// config's parser, so that the pipeline never depends on the config.
pub fn run_command(
    data_dir: &Path,
    course_id: &str,
    version: u32,
    stage: &str,
    stages_for: &dyn Fn(Option<&StageConfig>) -> Result<Registry>,
) -> Result<()> {
    let stage: StageId = stage.parse()?;
    let path = description_path(data_dir, course_id, version, stage);
    let bytes =
        std::fs::read(&path).with_context(|| format!("reading the job {}", path.display()))?;
    let job: StageJob = serde_json::from_slice(&bytes)
        .with_context(|| format!("parsing the job {}", path.display()))?;
    if job.format != DESCRIPTION_FORMAT {
        bail!(
            "{}: job format {} (this rtnode reads {DESCRIPTION_FORMAT}); the coordinator and the cluster run different rtnode versions",
            path.display(),
            job.format
        );
    }
    if job.course.id != course_id || job.version != version || job.stage != stage {
        bail!(
            "{} describes {} v{} {}, not {course_id} v{version} {stage}",
            path.display(),
            job.course.id,
            job.version,
            job.stage
        );
    }
    if stage == StageId::Export {
        bail!("export runs in the coordinator, never as a job");
    }
    let out_dir = safe_join(data_dir, &job.out_dir)?;
    // A folder left by an earlier submission of this very attempt (the
    // coordinator re-submits when it cannot tell whether one was made) is
    // not ours to keep.
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir)
            .with_context(|| format!("removing {}", out_dir.display()))?;
    }
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let started_at = crate::time::now_rfc3339();
    let t0 = Instant::now();
    info!(course = %course_id, version, stage = %stage, attempt = job.attempt, host = %host_name(), "run-stage started");
    let result = run_described(data_dir, &job, &out_dir, stages_for).and_then(|o| {
        fsync_tree(&out_dir).context("syncing the results")?;
        Ok(o)
    });
    let kind = match result {
        Ok(Outcome::Done { summary, created }) => OutcomeKind::Done { summary, created },
        Ok(Outcome::Skipped(reason)) => OutcomeKind::Skipped { reason },
        Err(e) => OutcomeKind::Failed {
            error: format!("{e:#}"),
        },
    };
    let rec = OutcomeRecord {
        kind,
        attempt: job.attempt,
        host: host_name(),
        started_at,
        finished_at: crate::time::now_rfc3339(),
        duration_ms: t0.elapsed().as_millis() as u64,
    };
    let what = match &rec.kind {
        OutcomeKind::Done { .. } => "done".to_string(),
        OutcomeKind::Skipped { reason } => format!("skipped: {reason}"),
        OutcomeKind::Failed { error } => format!("failed: {error}"),
    };
    write_private(
        &out_dir.join(OUTCOME_FILE),
        &serde_json::to_vec_pretty(&rec)?,
    )
    .with_context(|| format!("writing the outcome into {}", out_dir.display()))?;
    info!(course = %course_id, version, stage = %stage, attempt = job.attempt, ms = rec.duration_ms, outcome = %what, "run-stage finished");
    Ok(())
}

fn run_described(
    data_dir: &Path,
    job: &StageJob,
    out_dir: &Path,
    stages_for: &dyn Fn(Option<&StageConfig>) -> Result<Registry>,
) -> Result<Outcome> {
    let stages = stages_for(job.config.as_ref())?;
    let Some(stage) = stages.get(job.stage) else {
        bail!("no stage {:?} in this rtnode", job.stage);
    };
    let upstream = job
        .upstream
        .iter()
        .map(|(k, v)| Ok((*k, safe_join(data_dir, v)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    let last = std::sync::Mutex::new(Instant::now() - std::time::Duration::from_secs(10));
    let progress = |done: u64, total: u64| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed().as_millis() >= 1000 || done == total {
            *last = Instant::now();
            let body = serde_json::json!({"done": done, "total": total}).to_string();
            // Progress is for the operator's eyes; losing one is harmless.
            let _ = std::fs::write(out_dir.join(PROGRESS_FILE), body);
        }
    };
    let outcome = execute(
        stage.as_ref(),
        &job.course,
        job.version,
        data_dir,
        out_dir,
        upstream,
        job.threads.max(1) as usize,
        job.attempt,
        &progress,
    );
    let _ = std::fs::remove_file(out_dir.join(PROGRESS_FILE));
    outcome
}

/// `data_dir/rel`, refusing a `rel` that climbs out of it.
fn safe_join(data_dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("{rel:?} is not a path inside the data directory");
    }
    Ok(data_dir.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_files_round_trip() {
        let r = OutcomeRecord {
            kind: OutcomeKind::Skipped {
                reason: "no RTSTRUCT".into(),
            },
            attempt: 2,
            host: "n1".into(),
            started_at: "a".into(),
            finished_at: "b".into(),
            duration_ms: 5,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"result\":\"skipped\""), "{text}");
        assert_eq!(serde_json::from_str::<OutcomeRecord>(&text).unwrap(), r);
    }

    #[test]
    fn created_instances_come_back_from_the_outcome_file() {
        let done = |kind| OutcomeRecord {
            kind,
            attempt: 1,
            host: "n1".into(),
            started_at: "a".into(),
            finished_at: "b".into(),
            duration_ms: 5,
        };
        let r = done(OutcomeKind::Done {
            summary: serde_json::json!({"rois": 3}),
            created: vec!["1.2.3".into()],
        });
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"created\":[\"1.2.3\"]"), "{text}");
        let back: OutcomeRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let Ok(Outcome::Done { created, .. }) = back.result() else {
            panic!("not done");
        };
        assert_eq!(created, ["1.2.3"]);
        // A file written before `created` existed: the UIDs are in the
        // summary.
        let old = r#"{"result":"done","summary":{"created_instances":["4.5.6"]},"attempt":1,"host":"n1","started_at":"a","finished_at":"b","duration_ms":5}"#;
        let old: OutcomeRecord = serde_json::from_str(old).unwrap();
        let Ok(Outcome::Done { created, .. }) = old.result() else {
            panic!("not done");
        };
        assert_eq!(created, ["4.5.6"]);
    }

    #[test]
    fn paths_stay_inside_the_data_dir() {
        let d = Path::new("/data");
        assert!(safe_join(d, "courses/a/v1/.slurm-qc-a1").is_ok());
        assert!(safe_join(d, "../etc").is_err());
        assert!(safe_join(d, "/etc").is_err());
        assert!(safe_join(d, "courses/../../x").is_err());
    }

    #[test]
    fn an_unreadable_outcome_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_outcome(dir.path()).is_none());
        std::fs::write(dir.path().join(OUTCOME_FILE), b"{not json").unwrap();
        let r = read_outcome(dir.path()).unwrap();
        assert!(r.result().is_err());
    }
}
