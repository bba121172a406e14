//! The supervisor of the radiomics worker processes. Each worker slot is a
//! thread that owns one child process at a time; a task that crashes,
//! aborts, exceeds its memory limit, times out or answers garbage costs its
//! child (killed and replaced) and is retried with backoff up to the
//! attempt limit, then fails only its ROI. An extraction error the worker
//! reports itself (an ROI too small, say) is final at once: retrying a
//! deterministic failure only wastes time.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::engine::{Extraction, Task};
use super::protocol::{self, Kind, Reply};

/// How the worker pool runs (built from the `radiomics:` settings).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The rtnode binary (the workers are `rtnode radiomics-worker`).
    pub exe: PathBuf,
    /// Worker processes run at once (see [`PoolOptions::worker_count`]).
    pub workers: usize,
    /// Threads each worker computes with; with fewer ROIs than workers the
    /// running ones share the idle ones' threads.
    pub threads_per_worker: usize,
    /// Address-space limit of each worker, MiB.
    pub memory_mb: Option<u64>,
    /// How long one attempt at one ROI may take before its worker is killed.
    pub timeout: Duration,
    /// Attempts per task (the first included).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Extra environment for the workers.
    pub env: Vec<(String, String)>,
}

impl PoolOptions {
    /// Workers: `RTNODE_RADIOMICS_WORKERS`, else `configured`, else cores − 1 (at least 1).
    pub fn worker_count(configured: Option<usize>) -> usize {
        if let Some(n) = std::env::var("RTNODE_RADIOMICS_WORKERS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
        {
            return n;
        }
        configured.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1))
                .unwrap_or(1)
                .max(1)
        })
    }
}

/// What became of one ROI's task.
#[derive(Debug, Clone, PartialEq)]
pub enum RoiOutcome {
    /// Extracted.
    Done(Extraction),
    /// Not extracted; the other ROIs are unaffected.
    Failed {
        /// Why, in words: the worker's own error, or how the worker was lost.
        reason: String,
        /// Attempts made; 0 when the task was never sent to a worker.
        attempts: u32,
    },
}

struct Slot {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    replies: Receiver<Result<Reply>>,
}

impl Slot {
    fn spawn(opts: &PoolOptions) -> Result<Slot> {
        let mut cmd = Command::new(&opts.exe);
        cmd.arg("radiomics-worker")
            .arg("--threads")
            .arg(opts.threads_per_worker.max(1).to_string());
        if let Some(mb) = opts.memory_mb {
            cmd.arg("--memory-mb").arg(mb.to_string());
        }
        let threads = opts.threads_per_worker.max(1).to_string();
        for k in [
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "RAYON_NUM_THREADS",
        ] {
            cmd.env(k, &threads);
        }
        // glibc reserves a 64 MiB arena per thread that allocates; with a
        // lone ROI's worker given every core, those reservations alone
        // would eat a large part of the address-space limit (`memory_mb`)
        // on a many-core machine. Two arenas are plenty for a worker whose
        // threads allocate little.
        cmd.env("MALLOC_ARENA_MAX", "2");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} radiomics-worker", opts.exe.display()))?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let msg = match protocol::read_frame(&mut r) {
                    Ok(Some((kind, p))) => protocol::decode_reply(kind, &p),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let stop = msg.is_err();
                if tx.send(msg).is_err() || stop {
                    return;
                }
            }
        });
        Ok(Slot {
            child,
            stdin: Some(BufWriter::new(stdin)),
            replies: rx,
        })
    }

    /// Kills the child and says how it ended.
    fn end(mut self) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => describe(status),
            Err(e) => format!("could not be reaped: {e}"),
        }
    }

    /// How the child ended, when it has.
    fn exited(&mut self) -> Option<String> {
        std::thread::sleep(Duration::from_millis(20));
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe(status)),
            _ => None,
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(libc::SIGKILL)) => "killed by SIGKILL".into(),
        (_, Some(libc::SIGABRT)) => {
            "aborted (SIGABRT; out of memory under its limit, or a panic)".into()
        }
        (_, Some(libc::SIGSEGV)) => "crashed (SIGSEGV)".into(),
        (_, Some(s)) => format!("ended by signal {s}"),
        (Some(c), None) => format!("exited with status {c}"),
        (None, None) => "ended".into(),
    }
}

/// One attempt's result.
enum Attempt {
    Reply(Reply),
    /// The worker misbehaved (crash, timeout, garbage): replace it, retry.
    Lost(String),
}

fn attempt(slot: &mut Option<Slot>, opts: &PoolOptions, payload: &Arc<Vec<u8>>) -> Attempt {
    if slot.is_none() {
        match Slot::spawn(opts) {
            Ok(s) => *slot = Some(s),
            Err(e) => return Attempt::Lost(format!("{e:#}")),
        }
    }
    let Some(s) = slot.as_mut() else {
        return Attempt::Lost("no worker".into());
    };
    // Written from its own thread so that a worker that stops reading
    // cannot block the slot past the timeout.
    let Some(mut stdin) = s.stdin.take() else {
        return Attempt::Lost("worker stdin is gone".into());
    };
    let p = Arc::clone(payload);
    let writer = std::thread::spawn(move || {
        let r = protocol::write_frame(&mut stdin, Kind::Task, &p);
        (stdin, r)
    });
    let got = s.replies.recv_timeout(opts.timeout);
    let outcome = match got {
        Ok(Ok(reply)) => Attempt::Reply(reply),
        Ok(Err(e)) => Attempt::Lost(format!("answered a malformed message ({e:#})")),
        Err(RecvTimeoutError::Timeout) => {
            Attempt::Lost(format!("timed out after {} s", opts.timeout.as_secs_f64()))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let how = s.exited().unwrap_or_else(|| "closed its output".into());
            Attempt::Lost(format!("worker {how}"))
        }
    };
    match outcome {
        Attempt::Reply(r) => {
            if let Ok((stdin, Ok(()))) = writer.join() {
                s.stdin = Some(stdin);
                return Attempt::Reply(r);
            }
            if let Some(old) = slot.take() {
                old.end();
            }
            Attempt::Reply(r)
        }
        Attempt::Lost(why) => {
            if let Some(old) = slot.take() {
                let how = old.end();
                let _ = writer.join();
                if why.starts_with("worker ") {
                    return Attempt::Lost(why);
                }
                return Attempt::Lost(format!("{why}; worker {how}"));
            }
            Attempt::Lost(why)
        }
    }
}

/// Runs every task; outcomes in the order of `tasks`. `progress(done, total)`
/// after each ROI.
pub fn run(
    tasks: Vec<Task>,
    opts: &PoolOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Vec<(String, RoiOutcome)> {
    let total = tasks.len();
    let mut results: Vec<Option<RoiOutcome>> = vec![None; total];
    let mut payloads = Vec::with_capacity(total);
    for (i, t) in tasks.iter().enumerate() {
        match protocol::encode_task(t) {
            Ok(p) => payloads.push(Some(Arc::new(p))),
            Err(e) => {
                results[i] = Some(RoiOutcome::Failed {
                    reason: format!("{e:#}"),
                    attempts: 0,
                });
                payloads.push(None);
            }
        }
    }
    let names: Vec<String> = tasks.iter().map(|t| t.roi.clone()).collect();
    drop(tasks);
    // Largest ROIs first (by message size, a fair proxy for their work):
    // the last worker then does not start the biggest ROI when the others
    // are already idle.
    let mut order: Vec<usize> = (0..total).filter(|i| payloads[*i].is_some()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(payloads[*i].as_ref().map_or(0, |p| p.len())));
    let queue: Mutex<VecDeque<usize>> = Mutex::new(order.into_iter().collect());
    let results = Mutex::new(results);
    let done = std::sync::atomic::AtomicU64::new(
        results
            .lock()
            .map(|r| r.iter().filter(|x| x.is_some()).count() as u64)
            .unwrap_or(0),
    );
    let workers = opts.workers.max(1).min(total.max(1));
    // Fewer ROIs than workers (one large tumour is the common case): the
    // running workers get the threads the idle ones would have had, so a
    // lone ROI computes its image types, classes and directions on every
    // core of the pool's budget.
    let budget = opts.workers.max(1) * opts.threads_per_worker.max(1);
    let opts = &PoolOptions {
        threads_per_worker: (budget / workers).max(opts.threads_per_worker.max(1)),
        ..opts.clone()
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut slot: Option<Slot> = None;
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(i) = next else { break };
                    let Some(payload) = payloads[i].as_ref() else { continue };
                    let mut tries = 0;
                    let outcome = loop {
                        tries += 1;
                        match attempt(&mut slot, opts, payload) {
                            Attempt::Reply(Reply::Done(e)) => break RoiOutcome::Done(e),
                            Attempt::Reply(Reply::Failed(reason)) => {
                                break RoiOutcome::Failed { reason, attempts: tries }
                            }
                            Attempt::Lost(why) => {
                                warn!(roi = %names[i], attempt = tries, reason = %why, "radiomics worker lost");
                                if tries >= opts.attempts.max(1) {
                                    break RoiOutcome::Failed {
                                        reason: format!("{why} (after {tries} attempts)"),
                                        attempts: tries,
                                    };
                                }
                                std::thread::sleep(opts.backoff * 2u32.saturating_pow(tries - 1));
                            }
                        }
                    };
                    if let RoiOutcome::Failed { reason, .. } = &outcome {
                        info!(roi = %names[i], reason = %reason, "radiomics ROI failed");
                    }
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(outcome);
                    }
                    let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(d, total as u64);
                }
                if let Some(s) = slot.take() {
                    // Closing stdin ends a healthy worker; end() reaps it.
                    drop(s.stdin);
                    let mut child = s.child;
                    let _ = child.wait();
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    names
        .into_iter()
        .zip(results)
        .map(|(n, r)| {
            let r = r.unwrap_or(RoiOutcome::Failed {
                reason: "not run".into(),
                attempts: 0,
            });
            (n, r)
        })
        .collect()
}
