//! The Slurm executor against a real one-node Slurm cluster (Debian's
//! slurm-wlm 22.05 with munge, started by `tests/slurm/start-cluster.sh`;
//! `tests/setup.sh` installs them). A missing Slurm fails these tests.
//!
//! - `rtnode process --executor slurm` over 20 courses gives the local
//!   executor's CSV and JSON outputs byte for byte (apart from timings and
//!   the UIDs each run generates).
//! - A stage job cancelled with `scancel` is retried, and cancelled again
//!   fails cleanly with Slurm's reason.
//! - The coordinator killed with SIGKILL mid-run and restarted re-attaches
//!   to its jobs by name: every stage of every course runs exactly once.
//! - A serving node with `segmentation` on Slurm processes a course sent
//!   by dcmtk's `storescu`.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use rtnode::synth::rt::write_rt_objects;
use rtnode::synth::{write_ct_series, SynthOptions};

/// `SLURM_CONF` of the test cluster, started once per test binary.
fn slurm_conf() -> &'static str {
    static CONF: OnceLock<String> = OnceLock::new();
    CONF.get_or_init(|| {
        assert!(
            Path::new("/usr/bin/sbatch").exists(),
            "sbatch not found: install slurm-wlm and munge (tests/setup.sh does)"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/start-cluster.sh");
        let out = Command::new("bash").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "the test cluster did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .expect("start-cluster.sh prints SLURM_CONF")
            .trim()
            .to_string()
    })
}

/// Writes `n` complete courses (CT, RTSTRUCT, RTPLAN, RTDOSE), one patient
/// each, under `dir`.
fn courses(dir: &Path, n: usize) {
    for i in 0..n {
        let opts = SynthOptions {
            slices: 12,
            patient_id: format!("SLURM-{i:03}"),
            ..SynthOptions::default().with_rows(48)
        };
        let sub = dir.join(format!("c{i:03}"));
        let series = write_ct_series(&sub, &opts).unwrap();
        write_rt_objects(&sub, &series, &opts).unwrap();
    }
}

fn write_cfg(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("rtnode.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pipeline:\n  trigger: full\n  retry_backoff_s: 1\n{extra}  slurm:\n    poll_s: 1\n    grace_s: 2\n"
        ),
    )
    .unwrap();
    cfg
}

fn process(input: &Path, out: &Path, cfg: &Path, executor: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["process"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("--config")
        .arg(cfg)
        .args(["--executor", executor])
        .env("SLURM_CONF", slurm_conf())
        .envs(env.iter().copied());
    c
}

/// Every CSV and JSON file under `courses/` but the manifests (timings),
/// with the UIDs a run generates (UUID-derived, under 2.25) replaced by
/// their order of first appearance in that file.
fn results(out: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let root = out.join("courses");
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if (name.ends_with(".csv") || name.ends_with(".json")) && name != "manifest.json"
            {
                let text = std::fs::read_to_string(&p).unwrap();
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, normalise_uids(&text));
            }
        }
    }
    files
}

fn normalise_uids(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("2.25.") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 5..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits >= 20 {
            let uid = &rest[i..i + 5 + digits];
            let n = match seen.iter().position(|s| s == uid) {
                Some(n) => n,
                None => {
                    seen.push(uid.to_string());
                    seen.len() - 1
                }
            };
            out.push_str(&format!("<generated uid {n}>"));
            rest = &tail[digits..];
        } else {
            out.push_str("2.25.");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Stage runs per (course, stage, attempt), from the jobs' logs: each
/// `rtnode run-stage` logs one "run-stage started" line.
fn runs_in_logs(data_dir: &Path) -> BTreeMap<(String, String, u32), usize> {
    let mut runs = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(data_dir.join("slurm")) else {
        return runs;
    };
    for e in dir.flatten() {
        if !e.file_name().to_string_lossy().ends_with(".log") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("run-stage started")) {
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            };
            let key = (
                field("course"),
                field("stage"),
                field("attempt").parse().unwrap_or(0),
            );
            *runs.entry(key).or_default() += 1;
        }
    }
    runs
}

/// This data dir's jobs in `squeue` (job id, name, state).
fn our_jobs(data_dir: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("squeue")
        .args(["--noheader", "--array", "--format=%i|%j|%T|%Z"])
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    let want = std::fs::canonicalize(data_dir).unwrap_or(data_dir.to_path_buf());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            (f.len() == 4 && Path::new(f[3]) == want)
                .then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slurm_gives_the_local_results_for_twenty_courses() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    courses(&input, 20);
    let cfg = write_cfg(dir.path(), "");
    let local = dir.path().join("local");
    let slurm = dir.path().join("slurm");
    let t0 = Instant::now();
    let out = process(&input, &local, &cfg, "local", &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t_local = t0.elapsed();
    let t0 = Instant::now();
    let out = process(&input, &slurm, &cfg, "slurm", &[])
        .output()
        .unwrap();
    let t_slurm = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("20 courses: local {t_local:.1?}, slurm {t_slurm:.1?}");
    assert_eq!(stdout.matches("\tdone\t").count(), 20, "{stdout}");

    let a = results(&local);
    let b = results(&slurm);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same result files"
    );
    // Every course has DVH, radiomics, QC and segmentation outputs.
    for kind in [
        "dvh/dvh_metrics.csv",
        "radiomics/radiomics.csv",
        "qc/qc.json",
    ] {
        assert_eq!(a.keys().filter(|k| k.ends_with(kind)).count(), 20, "{kind}");
    }
    for (k, va) in &a {
        assert!(va == &b[k], "{k} differs between local and slurm runs");
    }

    // Each stage ran once per course, as a Slurm job.
    let runs = runs_in_logs(&slurm);
    assert_eq!(runs.len(), 20 * 6, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
    let st = status_json(&slurm);
    for c in st["courses"].as_array().unwrap() {
        for d in c["stage_details"].as_array().unwrap() {
            assert!(
                d["slurm_job"].as_str().is_some_and(|j| j.contains('_')),
                "every run has its job id: {d}"
            );
        }
    }
    // Job files are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(slurm.join("slurm")).unwrap().flatten() {
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", e.path().display());
    }
}

#[test]
fn a_cancelled_job_is_retried_then_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    courses(&input, 1);
    // Only qc on Slurm; its runs take a minute unless cancelled.
    let cfg = write_cfg(
        dir.path(),
        "  max_attempts: 2\n  stages:\n    qc: {executor: slurm}\n",
    );
    let out = dir.path().join("out");
    let mut child = process(
        &input,
        &out,
        &cfg,
        "local",
        &[("RTNODE_FAULTS", "qc:delay_ms=60000")],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut cancelled = Vec::new();
    for attempt in 1..=2 {
        let id = wait_for(60, &format!("qc attempt {attempt} running"), || {
            our_jobs(&out)
                .into_iter()
                .find(|(id, name, state)| {
                    name.starts_with("rtnode-qc-") && state == "RUNNING" && !cancelled.contains(id)
                })
                .map(|(id, _, _)| id)
        });
        let st = Command::new("scancel")
            .arg(&id)
            .env("SLURM_CONF", slurm_conf())
            .status()
            .unwrap();
        assert!(st.success());
        cancelled.push(id);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "process did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !status.success(),
        "a failed stage fails the process: {stdout}"
    );
    let st = status_json(&out);
    let qc = st["courses"][0]["stage_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["stage"] == "qc")
        .unwrap()
        .clone();
    assert_eq!(qc["state"], "failed", "{qc}");
    assert_eq!(qc["attempts"], 2, "{qc}");
    let err = qc["error"].as_str().unwrap();
    assert!(
        err.contains("was cancelled") && err.contains(&cancelled[1]),
        "{err}"
    );
    // The other stages ran here, and those that need nothing of qc are done.
    let organize = st["courses"][0]["stages"]["organize"].as_str().unwrap();
    assert_eq!(organize, "done");
    // Nothing of the cancelled runs is left among the results.
    let vdir = out
        .join("courses")
        .join(st["courses"][0]["id"].as_str().unwrap())
        .join("v1");
    for e in std::fs::read_dir(&vdir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".slurm-") && !name.starts_with(".run-") && name != "qc",
            "{name} left in {}",
            vdir.display()
        );
    }
}

#[test]
fn a_killed_coordinator_reattaches_and_each_stage_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    courses(&input, 4);
    let cfg = write_cfg(dir.path(), "");
    let out = dir.path().join("out");
    // Every run takes a few seconds, so that the kill finds jobs in flight.
    let faults = [(
        "RTNODE_FAULTS",
        "organize:delay_ms=3000,qc:delay_ms=3000,dvh:delay_ms=2000",
    )];
    let mut first = process(&input, &out, &cfg, "slurm", &faults)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(60, "jobs running", || {
        (our_jobs(&out)
            .iter()
            .filter(|(_, _, s)| s == "RUNNING")
            .count()
            >= 2)
            .then_some(())
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let in_flight = our_jobs(&out).len();
    assert!(in_flight > 0, "the kill left jobs running");

    let second = process(&input, &out, &cfg, "slurm", &faults)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(stdout.matches("\tdone\t").count(), 4, "{stdout}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("re-attaching to a Slurm job"), "{stderr}");
    let runs = runs_in_logs(&out);
    assert_eq!(
        runs.len(),
        4 * 6,
        "every stage of every course ran: {runs:?}"
    );
    for ((course, stage, attempt), n) in &runs {
        assert_eq!(*n, 1, "{course} {stage} attempt {attempt} ran {n} times");
        assert_eq!(*attempt, 1, "{course} {stage} needed attempt {attempt}");
    }
}

#[test]
fn a_serving_node_runs_segmentation_on_slurm() {
    let conf = slurm_conf().to_string();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices: 16,
        patient_id: "SLURM-SERVE".into(),
        ..SynthOptions::default().with_rows(64)
    };
    let series = write_ct_series(&input, &opts).unwrap();
    let rt = write_rt_objects(&input, &series, &opts).unwrap();
    let node = ServerOptions {
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  trigger: full\n  stages:\n    segmentation: {workers: 1, executor: slurm}\n  slurm:\n    poll_s: 1\n    grace_s: 2\n".into(),
        env: vec![("SLURM_CONF".into(), conf)],
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &node);
    let mut files = series.files.clone();
    files.extend([rt.rtstruct.clone(), rt.rtplan.clone(), rt.rtdose.clone()]);
    let storescu = dcmtk("storescu");
    let args: Vec<String> = ["-aet", "STORESCU", "-aec", "RTNODE", "127.0.0.1"]
        .iter()
        .map(|s| s.to_string())
        .chain([s.port.to_string()])
        .chain(files.iter().map(|f| f.display().to_string()))
        .collect();
    let o = Command::new(storescu).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = wait_status(&s.data_dir, 120, "the course done", |v| {
        v["pipeline"]["courses"]
            .as_array()
            .or_else(|| v["courses"].as_array())
            .and_then(|c| c.first())
            .is_some_and(|c| c["stages"]["report"] == "done")
    });
    let courses = st["pipeline"]["courses"]
        .as_array()
        .or_else(|| st["courses"].as_array())
        .unwrap();
    let details = courses[0]["stage_details"].as_array().unwrap();
    for d in details {
        let on_slurm = d["slurm_job"].is_string();
        assert_eq!(on_slurm, d["stage"] == "segmentation", "{d}");
    }
    let id = courses[0]["id"].as_str().unwrap();
    let rs = s
        .data_dir
        .join("courses")
        .join(id)
        .join("v1/segmentation/rtstruct.dcm");
    assert!(rs.exists(), "{}", rs.display());
    let runs = runs_in_logs(&s.data_dir);
    assert_eq!(runs.len(), 1, "{runs:?}");
    s.stop();
}
