//! The Slurm executor's client side: `sbatch` to submit stage runs,
//! `squeue` to see them. rtnode never becomes a scheduler: it submits a
//! stage run when its inputs are final (no `--dependency`, so that a
//! retried upstream can never strand a downstream job), as one job array
//! per stage and tick, each task one `rtnode run-stage`.
//!
//! What makes it safe to stop and restart the coordinator at any moment:
//! every job has a unique `--job-name`, written to the state database with
//! the task's index before `sbatch` runs (the job id after); a coordinator
//! that restarts finds its jobs by name. Jobs are submitted with
//! `--no-requeue`, so that only rtnode retries, and the outcome file in the
//! run's output folder, not Slurm's accounting (often off) nor `squeue`
//! (which forgets finished jobs after `MinJobAge`), is the record of how a
//! run ended.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::settings::SlurmJobSettings;

/// A stage run's job, as recorded in its job record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmRun {
    /// The job array's unique name.
    pub name: String,
    /// This run's task in the array.
    pub task: u32,
    /// `<array job id>_<task>`, once `sbatch` has answered.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The state `squeue` last showed (PENDING, RUNNING, …).
    #[serde(default)]
    pub state: Option<String>,
}

/// One task of a submission.
#[derive(Debug, Clone)]
pub struct Task {
    /// Its index in the job array (`SLURM_ARRAY_TASK_ID`).
    pub task: u32,
    /// The course whose stage it runs.
    pub course_id: String,
    /// The course's result version.
    pub version: u32,
    /// The stage it runs.
    pub stage: crate::stages::StageId,
}

/// What one submission asks of the cluster.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The job array's unique `--job-name`.
    pub name: &'a str,
    /// The array's tasks, one stage run each.
    pub tasks: &'a [Task],
    /// `sbatch` settings (partition, gres, time, memory, account).
    pub settings: &'a SlurmJobSettings,
    /// `--cpus-per-task` of each task (at least 1).
    pub cpus: u32,
    /// The `rtnode` binary as the cluster's nodes see it.
    pub rtnode: &'a Path,
    /// The data directory on the cluster's shared file system; also the
    /// job's working directory.
    pub data_dir: &'a Path,
}

/// Where job scripts and the jobs' logs go.
pub fn slurm_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("slurm")
}

/// The log of one task (Slurm's `--output` pattern `%x_%a.log`).
pub fn log_path(data_dir: &Path, name: &str, task: u32) -> PathBuf {
    slurm_dir(data_dir).join(format!("{name}_{task}.log"))
}

/// A word the shell takes literally.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn safe_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '='))
}

/// The job script: the task index picks the run.
pub fn script(sub: &Submission) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Written by rtnode: one stage run per array task.\nset -eu\numask 077\n\
         # Numeric libraries use the CPUs the job was given, no more.\n\
         n=${SLURM_CPUS_PER_TASK:-1}\n\
         export RAYON_NUM_THREADS=$n OMP_NUM_THREADS=$n MKL_NUM_THREADS=$n OPENBLAS_NUM_THREADS=$n\n\
         case \"${SLURM_ARRAY_TASK_ID:-0}\" in\n",
    );
    for t in sub.tasks {
        s.push_str(&format!(
            "{}) set -- {} {} {} ;;\n",
            t.task,
            sh_quote(&t.course_id),
            t.version,
            sh_quote(t.stage.as_str())
        ));
    }
    s.push_str(
        "*) echo \"rtnode: no run for array task ${SLURM_ARRAY_TASK_ID:-}\" >&2; exit 2 ;;\nesac\n",
    );
    s.push_str(&format!(
        "exec {} run-stage --data-dir {} --course \"$1\" --version \"$2\" --stage \"$3\"\n",
        sh_quote(&sub.rtnode.to_string_lossy()),
        sh_quote(&sub.data_dir.to_string_lossy())
    ));
    s
}

/// The `sbatch` arguments of a submission (the script path last).
pub fn sbatch_args(sub: &Submission, script: &Path) -> Result<Vec<String>> {
    let indices: Vec<String> = sub.tasks.iter().map(|t| t.task.to_string()).collect();
    if indices.is_empty() {
        bail!("nothing to submit");
    }
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={}", sub.name),
        "--no-requeue".to_string(),
        format!("--array={}", indices.join(",")),
        format!("--cpus-per-task={}", sub.cpus.max(1)),
        format!(
            "--output={}",
            slurm_dir(sub.data_dir).join("%x_%a.log").to_string_lossy()
        ),
        format!("--chdir={}", sub.data_dir.to_string_lossy()),
    ];
    let st = sub.settings;
    for (flag, v) in [
        ("partition", &st.partition),
        ("gres", &st.gres),
        ("time", &st.time),
        ("mem", &st.mem),
        ("account", &st.account),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            if !safe_word(v) {
                bail!("pipeline slurm {flag}: {v:?} is not a plain value");
            }
            args.push(format!("--{flag}={v}"));
        }
    }
    args.push(script.to_string_lossy().into_owned());
    Ok(args)
}

/// Submits one job array; returns the array's job id. The script is
/// written first (mode 0600: it names patients' course folders).
pub fn submit(sub: &Submission) -> Result<String> {
    let dir = slurm_dir(sub.data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.sh", sub.name));
    super::stage_run::write_private(&path, script(sub).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    let args = sbatch_args(sub, &path)?;
    let out = Command::new("sbatch")
        .args(&args)
        // The jobs' files (their logs) readable by their owner only.
        .env("SLURM_UMASK", "0077")
        .output()
        .context("running sbatch (is Slurm installed and SLURM_CONF set?)")?;
    if !out.status.success() {
        bail!("sbatch {}: {}", out.status, one_line(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable: "<id>" or "<id>;<cluster>".
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch answered {:?}, not a job id", text.trim());
    }
    Ok(id)
}

/// A command's error output as one line.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fails, with what to do, when this machine cannot submit to Slurm: a
/// node configured for Slurm must not start and then fail every run.
pub fn preflight() -> Result<()> {
    let out = Command::new("sbatch").arg("--version").output().context(
        "pipeline executor slurm: cannot run sbatch (install slurm-client, or put it on PATH)",
    )?;
    if !out.status.success() {
        bail!(
            "pipeline executor slurm: sbatch --version failed: {}",
            one_line(&out.stderr)
        );
    }
    let out = Command::new("squeue")
        .args(["--noheader", "--me", "--format=%i"])
        .output()
        .context("pipeline executor slurm: cannot run squeue")?;
    if !out.status.success() {
        bail!(
            "pipeline executor slurm: squeue cannot reach the cluster: {}",
            one_line(&out.stderr)
        );
    }
    Ok(())
}

/// One task as `squeue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The array's job id (`%F`).
    pub array_job_id: String,
    /// Slurm's state name, e.g. `PENDING`, `RUNNING`, `CANCELLED`.
    pub state: String,
}

/// The tasks of the named job arrays that Slurm still knows (any state),
/// by (name, task index).
pub fn queue(names: &[&str]) -> Result<HashMap<(String, u32), Queued>> {
    let mut found = HashMap::new();
    for chunk in names.chunks(50) {
        let out = Command::new("squeue")
            .args([
                "--noheader",
                "--array",
                "--states=all",
                "--format=%j|%F|%K|%T",
                &format!("--name={}", chunk.join(",")),
            ])
            .output()
            .context("running squeue")?;
        if !out.status.success() {
            bail!("squeue {}: {}", out.status, one_line(&out.stderr));
        }
        parse_queue(&String::from_utf8_lossy(&out.stdout), &mut found);
    }
    Ok(found)
}

fn parse_queue(text: &str, into: &mut HashMap<(String, u32), Queued>) {
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split('|').collect();
        let [name, array_id, task, state] = f[..] else {
            continue;
        };
        // A pending array not yet split shows a range ("0-3" or "[0-3]"):
        // every task in it is pending.
        let task = task.trim_matches(|c| c == '[' || c == ']');
        let mut push = |t: u32| {
            into.insert(
                (name.to_string(), t),
                Queued {
                    array_job_id: array_id.to_string(),
                    state: state.to_string(),
                },
            );
        };
        for part in task.split(',') {
            let part = part.split('%').next().unwrap_or("");
            if let Some((a, b)) = part.split_once('-') {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    (a..=b.min(a.saturating_add(100_000))).for_each(&mut push);
                }
            } else if let Ok(t) = part.parse::<u32>() {
                push(t);
            }
        }
    }
}

/// States in which a job will never write its outcome file.
pub fn is_dead(state: &str) -> bool {
    matches!(
        state,
        "CANCELLED"
            | "FAILED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "OUT_OF_MEMORY"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "REVOKED"
            | "SPECIAL_EXIT"
    )
}

/// Why a job that ended in `state` without an outcome failed, in words
/// the retry rules understand (out of memory halves the next threads).
pub fn why_dead(job: &str, state: &str, log: &Path) -> String {
    let what = match state {
        "CANCELLED" => "was cancelled".to_string(),
        "TIMEOUT" => "ran out of its time limit".to_string(),
        "NODE_FAIL" => "lost its node".to_string(),
        "OUT_OF_MEMORY" => "ran out of memory".to_string(),
        "PREEMPTED" => "was preempted".to_string(),
        "COMPLETED" => "completed without writing an outcome".to_string(),
        s => format!("ended {s}"),
    };
    format!("Slurm job {job} {what} ({state}); log: {}", log.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub<'a>(tasks: &'a [Task], settings: &'a SlurmJobSettings) -> Submission<'a> {
        Submission {
            name: "rtnode-qc-0a1b2c3d",
            tasks,
            settings,
            cpus: 2,
            rtnode: Path::new("/opt/rt node/rtnode"),
            data_dir: Path::new("/shared/data"),
        }
    }

    #[test]
    fn the_script_picks_the_run_by_task_and_quotes_everything() {
        let tasks = vec![
            Task {
                task: 0,
                course_id: "P1_abc".into(),
                version: 1,
                stage: crate::stages::StageId::Qc,
            },
            Task {
                task: 3,
                course_id: "it's".into(),
                version: 2,
                stage: crate::stages::StageId::Qc,
            },
        ];
        let st = SlurmJobSettings::default();
        let s = script(&sub(&tasks, &st));
        assert!(s.contains("0) set -- 'P1_abc' 1 'qc' ;;"), "{s}");
        assert!(s.contains(r"3) set -- 'it'\''s' 2 'qc' ;;"), "{s}");
        assert!(s.contains("exec '/opt/rt node/rtnode' run-stage --data-dir '/shared/data'"));
    }

    #[test]
    fn sbatch_is_told_name_array_no_requeue_and_limits() {
        let tasks = vec![Task {
            task: 5,
            course_id: "c".into(),
            version: 1,
            stage: crate::stages::StageId::Segmentation,
        }];
        let st = SlurmJobSettings {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            time: Some("01:00:00".into()),
            mem: Some("16G".into()),
            account: None,
        };
        let a = sbatch_args(&sub(&tasks, &st), Path::new("/x.sh")).unwrap();
        for want in [
            "--job-name=rtnode-qc-0a1b2c3d",
            "--no-requeue",
            "--array=5",
            "--cpus-per-task=2",
            "--partition=gpu",
            "--gres=gpu:1",
            "--time=01:00:00",
            "--mem=16G",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
        }
        assert_eq!(a.last().map(String::as_str), Some("/x.sh"));
        let bad = SlurmJobSettings {
            partition: Some("gpu --wrap=rm".into()),
            ..Default::default()
        };
        assert!(sbatch_args(&sub(&tasks, &bad), Path::new("/x.sh")).is_err());
    }

    #[test]
    fn squeue_lines_with_ranges_and_single_tasks() {
        let mut m = HashMap::new();
        parse_queue(
            "rtnode-a|17|[2-4%2]|PENDING\nrtnode-a|17|0|RUNNING\nrtnode-b|20|1|CANCELLED\ngarbage\n",
            &mut m,
        );
        assert_eq!(m.len(), 5);
        assert_eq!(m[&("rtnode-a".to_string(), 3)].state, "PENDING");
        assert_eq!(m[&("rtnode-a".to_string(), 0)].state, "RUNNING");
        assert_eq!(m[&("rtnode-b".to_string(), 1)].array_job_id, "20");
    }

    #[test]
    fn dead_states_and_their_reasons() {
        assert!(is_dead("CANCELLED") && is_dead("NODE_FAIL") && !is_dead("RUNNING"));
        let why = why_dead("12_0", "OUT_OF_MEMORY", Path::new("/l"));
        assert!(super::super::versions::looks_like_oom(&why), "{why}");
    }
}
