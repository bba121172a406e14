//! `rtnode status`: one report, built from the live node when `serve` runs
//! (asked over the admin socket in the data directory, since redb lets only
//! one process open a database), or from the databases when it does not.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tracing::{debug, warn};

use crate::pipeline::{CourseStatus, PipelineStatus, StageStatus};
use crate::scp::Node;
use crate::state::{AssociationRecord, StateDb};
use crate::store::{Counts, Index};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub ae_title: String,
    pub listening: String,
    pub pid: u32,
    pub started_at: String,
    pub uptime_s: u64,
    pub active_associations: u64,
    pub associations_since_start: u64,
    pub rejected_since_start: u64,
    pub instances_since_start: u64,
    pub bytes_since_start: u64,
    pub store_failures_since_start: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub data_dir: String,
    /// "running" when a server answered on the admin socket, else "stopped".
    pub server_state: String,
    pub server: Option<ServerInfo>,
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
    pub free_bytes: u64,
    pub recent_associations: Vec<AssociationRecord>,
    /// Courses with their stages (see `pipeline::CourseStatus`).
    pub courses: Vec<CourseStatus>,
    /// Stage runs waiting to start.
    pub queue_depth: usize,
    pub running_stages: usize,
    pub recent_failures: Vec<StageStatus>,
    /// Runs of each stage since the state database was created.
    pub stage_runs: std::collections::BTreeMap<String, u64>,
    /// The outbound queue: pending, sent, dead letters.
    pub outbound: crate::export::QueueSummary,
    /// Series that formed no course, each with why.
    #[serde(default)]
    pub unassembled: Vec<crate::course::Unassembled>,
}

pub fn admin_socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

fn base_report(data_dir: &Path, counts: Counts, recent: Vec<AssociationRecord>) -> StatusReport {
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        data_dir: data_dir.display().to_string(),
        server_state: "stopped".into(),
        server: None,
        patients: counts.patients,
        studies: counts.studies,
        series: counts.series,
        instances: counts.instances,
        free_bytes: crate::store::free_bytes(data_dir).unwrap_or(0),
        recent_associations: recent,
        ..StatusReport::default()
    }
}

fn with_pipeline(mut r: StatusReport, p: PipelineStatus) -> StatusReport {
    r.courses = p.courses;
    r.queue_depth = p.queue_depth;
    r.running_stages = p.running;
    r.recent_failures = p.recent_failures;
    r.stage_runs = p.stage_runs;
    r.unassembled = p.unassembled;
    r
}

pub fn live_report(node: &Node, listening: &str) -> Result<StatusReport> {
    let counts = node.store.index().counts()?;
    let recent = node.state.recent_associations(10)?;
    let mut r = base_report(node.store.data_dir(), counts, recent);
    if let Some(p) = &node.pipeline {
        r = with_pipeline(r, p.status()?);
    }
    r.outbound = crate::export::summary(&node.state)?;
    r.server_state = "running".into();
    let s = &node.stats;
    r.server = Some(ServerInfo {
        ae_title: node.ae_title.clone(),
        listening: listening.to_string(),
        pid: std::process::id(),
        started_at: node.started_at.clone(),
        uptime_s: node.started.elapsed().as_secs(),
        active_associations: s.active_associations.load(Ordering::Relaxed),
        associations_since_start: s.associations.load(Ordering::Relaxed),
        rejected_since_start: s.rejected_associations.load(Ordering::Relaxed),
        instances_since_start: s.instances_stored.load(Ordering::Relaxed),
        bytes_since_start: s.bytes_stored.load(Ordering::Relaxed),
        store_failures_since_start: s.store_failures.load(Ordering::Relaxed),
    });
    Ok(r)
}

/// Serves status requests on a Unix socket that only the service's user can
/// open: the socket is created under a umask of 077 and then chmod 600.
pub fn bind_admin_socket(data_dir: &Path) -> Result<UnixListener> {
    let path = admin_socket_path(data_dir);
    // A stale socket from a crashed server would make bind fail.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!("another server answers on {}", path.display());
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing stale {}", path.display()))?;
    }
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(&path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve_admin(listener: UnixListener, node: Arc<Node>, listening: String) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        let listening = listening.clone();
        tokio::spawn(async move {
            let mut req = [0u8; 64];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut req)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let text = std::str::from_utf8(&req[..n]).map(str::trim).unwrap_or("");
            let reply = match text {
                t if t.starts_with("retry") => {
                    let ids: Vec<u64> = t
                        .split_whitespace()
                        .skip(1)
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    match &node.exporter {
                        Some(e) => match e.retry_dead(&ids) {
                            Ok(n) => format!("{{\"requeued\":{n}}}").into_bytes(),
                            Err(err) => format!("{{\"error\":{:?}}}", err.to_string()).into_bytes(),
                        },
                        None => b"{\"error\":\"no outbound queue\"}".to_vec(),
                    }
                }
                "status" => {
                    let node = node.clone();
                    match tokio::task::spawn_blocking(move || live_report(&node, &listening)).await
                    {
                        Ok(Ok(r)) => serde_json::to_vec(&r).unwrap_or_default(),
                        Ok(Err(e)) => format!("{{\"error\":{:?}}}", e.to_string()).into_bytes(),
                        Err(e) => format!("{{\"error\":{:?}}}", e.to_string()).into_bytes(),
                    }
                }
                t if t.starts_with("purge ") => {
                    let args = t["purge ".len()..].to_string();
                    blocking_reply(node, move |n| crate::retention::admin_request(n, &args)).await
                }
                "backup" => blocking_reply(node, crate::backup::admin_backup).await,
                "cohort" => blocking_reply(node, crate::cohort::admin_source).await,
                _ => b"{\"error\":\"unknown request\"}".to_vec(),
            };
            if let Err(e) = stream.write_all(&reply).await {
                debug!(error = %e, "admin client went away");
            }
        });
    }
}

/// Runs an admin request off the async threads (they touch the disk) and
/// encodes its answer, or its error, as the JSON reply.
async fn blocking_reply<T: Serialize + Send + 'static>(
    node: Arc<Node>,
    f: impl FnOnce(&Node) -> Result<T> + Send + 'static,
) -> Vec<u8> {
    let error =
        |e: String| serde_json::to_vec(&serde_json::json!({ "error": e })).unwrap_or_default();
    match tokio::task::spawn_blocking(move || f(&node)).await {
        Ok(Ok(v)) => serde_json::to_vec(&v).unwrap_or_else(|e| error(e.to_string())),
        Ok(Err(e)) => error(format!("{e:#}")),
        Err(e) => error(e.to_string()),
    }
}

/// Requeues dead letters: through the running server, or in the state
/// database when none runs.
pub fn retry(data_dir: &Path, ids: &[u64]) -> Result<usize> {
    let req = format!(
        "retry {}\n",
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
    );
    if let Some(reply) = ask_server(data_dir, &req) {
        return Ok(reply?["requeued"].as_u64().unwrap_or(0) as usize);
    }
    let state = StateDb::open(data_dir)?;
    crate::export::requeue_dead(&state, ids)
}

/// Sends one request to a running server and returns its JSON reply;
/// `None` when no server answers on the admin socket.
fn ask_server(data_dir: &Path, request: &str) -> Option<Result<serde_json::Value>> {
    ask_server_for(data_dir, request, Duration::from_secs(10))
}

/// `ask_server` for requests that take longer than a status report.
pub fn ask_server_for(
    data_dir: &Path,
    request: &str,
    timeout: Duration,
) -> Option<Result<serde_json::Value>> {
    let path = admin_socket_path(data_dir);
    let mut s = std::os::unix::net::UnixStream::connect(&path).ok()?;
    let mut run = || -> Result<serde_json::Value> {
        s.set_read_timeout(Some(timeout))?;
        s.write_all(request.as_bytes())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let v: serde_json::Value = serde_json::from_slice(&buf).context("bad reply from server")?;
        if let Some(e) = v.get("error") {
            anyhow::bail!("server: {e}");
        }
        Ok(v)
    };
    Some(run())
}

pub fn report(data_dir: &Path) -> Result<StatusReport> {
    if let Some(reply) = ask_server(data_dir, "status\n") {
        return Ok(serde_json::from_value(reply?)?);
    }
    let index_path = crate::store::index_path(data_dir);
    if !index_path.exists() {
        anyhow::bail!("{} holds no rtnode index", data_dir.display());
    }
    let counts = Index::open(&index_path)
        .context("opening the index (is a server running without its admin socket?)")?
        .counts()?;
    if crate::state::state_path(data_dir).exists() {
        let state = StateDb::open(data_dir)?;
        let mut r = base_report(data_dir, counts, state.recent_associations(10)?);
        r.outbound = crate::export::summary(&state)?;
        Ok(with_pipeline(r, crate::pipeline::offline_status(&state)?))
    } else {
        Ok(base_report(data_dir, counts, Vec::new()))
    }
}

pub fn render_text(r: &StatusReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("rtnode {}  data dir {}\n", r.version, r.data_dir));
    match &r.server {
        Some(s) => out.push_str(&format!(
            "server: running as {} on {} (pid {}, up {} s), {} association(s) open; since start {} associations, {} rejected, {} instances ({} bytes), {} failures\n",
            s.ae_title, s.listening, s.pid, s.uptime_s, s.active_associations, s.associations_since_start,
            s.rejected_since_start, s.instances_since_start, s.bytes_since_start, s.store_failures_since_start
        )),
        None => out.push_str("server: not running\n"),
    }
    out.push_str(&format!(
        "stored: {} patients, {} studies, {} series, {} instances; {:.1} GB free\n",
        r.patients,
        r.studies,
        r.series,
        r.instances,
        r.free_bytes as f64 / 1e9
    ));
    if !r.courses.is_empty() {
        out.push_str(&format!(
            "courses: {} ({} stage runs queued, {} running)\n",
            r.courses.len(),
            r.queue_depth,
            r.running_stages
        ));
        for c in &r.courses {
            let objects: Vec<String> = c.objects.iter().map(|(k, v)| format!("{v} {k}")).collect();
            out.push_str(&format!(
                "  {:<28} {:<24} v{:<3} {:<11} {}\n",
                c.id,
                truncate(&c.patient_name, 24),
                c.version,
                c.state,
                objects.join(", ")
            ));
            if let Some(h) = &c.held {
                out.push_str(&format!("      held: {h}\n"));
            }
            for m in &c.missing {
                out.push_str(&format!("      missing: {m}\n"));
            }
            for w in &c.waiting_for {
                out.push_str(&format!("      waiting for: {w}\n"));
            }
            for n in &c.notes {
                out.push_str(&format!("      note: {}\n", truncate(n, 240)));
            }
            for s in &c.stage_details {
                let mut line = format!("      {:<12} {:<8}", s.stage, s.state);
                if let (Some(d), Some(t)) = (s.done, s.total) {
                    line.push_str(&format!(" {d}/{t}"));
                }
                if let Some(e) = s.eta_s {
                    line.push_str(&format!(" ETA {e:.0} s"));
                }
                if let Some(ms) = s.duration_ms {
                    line.push_str(&format!(" {:.1} s", ms as f64 / 1000.0));
                }
                if s.attempts > 1 {
                    line.push_str(&format!(" (attempt {})", s.attempts));
                }
                if let Some(v) = s.reused_from {
                    line.push_str(&format!(" (same as v{v})"));
                }
                if let Some(j) = &s.slurm_job {
                    match &s.slurm_state {
                        Some(st) if s.state == "running" => {
                            line.push_str(&format!(" [slurm {j} {st}]"))
                        }
                        _ => line.push_str(&format!(" [slurm {j}]")),
                    }
                }
                if let Some(r) = &s.skip_reason {
                    line.push_str(&format!(" ({r})"));
                }
                if let Some(e) = &s.error {
                    line.push_str(&format!(" error: {}", truncate(e, 120)));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    if !r.unassembled.is_empty() {
        out.push_str(&unassembled_text(&r.unassembled));
    }
    if !r.recent_failures.is_empty() {
        out.push_str("recent failures:\n");
        for f in &r.recent_failures {
            out.push_str(&format!(
                "  {} v{} {} ({} attempts): {}\n",
                f.course_id,
                f.version,
                f.stage,
                f.attempts,
                truncate(f.error.as_deref().unwrap_or(""), 160)
            ));
        }
    }
    let q = &r.outbound;
    if q.pending + q.sent + q.dead > 0 {
        out.push_str(&format!(
            "outbound: {} pending, {} sent, {} dead letters\n",
            q.pending, q.sent, q.dead
        ));
        for d in &q.dead_letters {
            out.push_str(&format!(
                "  dead #{} to {}: {} after {} attempt(s): {}\n",
                d.id,
                d.destination,
                d.sop_instance_uid,
                d.attempts,
                truncate(&d.error, 120)
            ));
        }
    }
    if !r.recent_associations.is_empty() {
        out.push_str("recent associations:\n");
        for a in &r.recent_associations {
            out.push_str(&format!(
                "  {}  {:<16} {:<21} {:>6} inst {:>12} B {:>4} fail {:>7} ms  {}\n",
                a.started_at,
                a.calling_ae,
                a.peer_address,
                a.instances,
                a.bytes,
                a.failures,
                a.duration_ms,
                a.outcome
            ));
        }
    }
    out
}

/// The series that formed no course, a line each with why (`status` and
/// `process` print the same).
pub fn unassembled_text(list: &[crate::course::Unassembled]) -> String {
    let mut out = format!("series forming no course: {}\n", list.len());
    for u in list {
        out.push_str(&format!(
            "  {} series {} ({} instance(s), patient {}): {}\n",
            if u.modality.is_empty() {
                "?"
            } else {
                u.modality.as_str()
            },
            u.series_instance_uid,
            u.instances,
            u.patient_id,
            u.reason
        ));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
