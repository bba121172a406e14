//! The worker process (`rtnode radiomics-worker`, hidden): reads tasks from
//! stdin, extracts, answers on stdout, until stdin closes. Its limits are
//! set on itself before the first task: an address-space limit (a runaway
//! allocation then fails inside this process, which aborts; the node lives
//! on) and a fixed number of threads.

use std::io::{BufReader, BufWriter};

use anyhow::{Context, Result};

use super::engine::extract;
use super::params::Params;
use super::protocol::{self, Kind};

/// Fault injection for the supervisor's tests, honoured only by this hidden
/// subcommand: `<roi>:<kill|oom|hang|garbage>` makes the worker misbehave on
/// that ROI the way a crashing texture library would.
pub const FAULT_ENV: &str = "RTNODE_RADIOMICS_FAULT";

/// The worker's body: sets its address-space limit (`memory_mb` MiB;
/// none: unlimited) and `threads` compute threads, then serves tasks from
/// stdin until it closes.
pub fn main(memory_mb: Option<u64>, threads: usize) -> Result<()> {
    if let Some(mb) = memory_mb {
        limit_address_space(mb.saturating_mul(1 << 20))?;
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global()
        .context("worker thread pool")?;
    let fault = std::env::var(FAULT_ENV).ok();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut input = BufReader::new(stdin.lock());
    let mut output = BufWriter::new(stdout.lock());
    while let Some((kind, payload)) = protocol::read_frame(&mut input)? {
        if kind != Kind::Task {
            anyhow::bail!("expected a task, got {kind:?}");
        }
        let task = protocol::decode_task(&payload)?;
        drop(payload);
        if let Some(f) = &fault {
            inject(f, &task.roi, &mut output)?;
        }
        let answer = Params::from_yaml(&task.params_yaml).and_then(|p| extract(&task, &p));
        match answer {
            Ok(e) => {
                protocol::write_frame(&mut output, Kind::Result, &protocol::encode_result(&e)?)?
            }
            Err(e) => protocol::write_frame(
                &mut output,
                Kind::Error,
                &protocol::encode_error(&format!("{e:#}"))?,
            )?,
        }
    }
    Ok(())
}

fn inject(fault: &str, roi: &str, out: &mut impl std::io::Write) -> Result<()> {
    let Some((target, what)) = fault.rsplit_once(':') else {
        return Ok(());
    };
    if target != roi {
        return Ok(());
    }
    match what {
        "kill" => {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        "oom" => {
            // Grow until the address-space limit stops us, touching each
            // block so it is really committed.
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                hog.push(vec![1u8; 64 << 20]);
                if hog.len() > 1 << 16 {
                    break;
                }
            }
        }
        "hang" => std::thread::sleep(std::time::Duration::from_secs(3600)),
        "garbage" => {
            out.write_all(b"this is not a frame at all, but it is long enough")?;
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        _ => {}
    }
    Ok(())
}

fn limit_address_space(bytes: u64) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass; no other preconditions.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_AS)");
    }
    Ok(())
}
