//! `rtnode status`: one report, built from the live node when `serve` runs
//! ([`live_report`], asked over the admin socket: see `admin`, since
//! redb lets only one process open a database), or from the databases when
//! it does not ([`offline_report`]); and its text for people.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::pipeline::{CourseStatus, PipelineStatus, StageStatus};
use crate::state::{AssociationRecord, StateDb};
use crate::store::{Counts, Index};

/// The running server's identity and counters since it started; absent when no server answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The AE title this node answers to.
    pub ae_title: String,
    /// The DICOM listen address, `host:port`.
    pub listening: String,
    /// Process id of the `serve` process.
    pub pid: u32,
    /// When the server started (RFC 3339, UTC).
    pub started_at: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// Associations open right now.
    pub active_associations: u64,
    /// Associations accepted since start.
    pub associations_since_start: u64,
    /// Association requests rejected since start (unknown caller, limit reached, bad proposal).
    pub rejected_since_start: u64,
    /// SOP instances stored since start.
    pub instances_since_start: u64,
    /// Bytes of instances stored since start.
    pub bytes_since_start: u64,
    /// C-STORE requests that failed to store since start.
    pub store_failures_since_start: u64,
}

/// Everything `rtnode status` shows, as text or JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// rtnode version (the crate version) that built the report.
    pub version: String,
    /// The node's data directory, as configured.
    pub data_dir: String,
    /// "running" when a server answered on the admin socket, else "stopped".
    pub server_state: String,
    /// The running server, when `server_state` is "running".
    pub server: Option<ServerInfo>,
    /// Patients in the store index.
    pub patients: u64,
    /// Studies in the store index.
    pub studies: u64,
    /// Series in the store index.
    pub series: u64,
    /// SOP instances in the store index.
    pub instances: u64,
    /// Free space on the data directory's file system in bytes (0 if unknown).
    pub free_bytes: u64,
    /// The last 10 associations, newest first.
    pub recent_associations: Vec<AssociationRecord>,
    /// Courses with their stages (see `pipeline::CourseStatus`).
    pub courses: Vec<CourseStatus>,
    /// Stage runs waiting to start.
    pub queue_depth: usize,
    /// Stage runs executing now.
    pub running_stages: usize,
    /// The latest failed stage runs.
    pub recent_failures: Vec<StageStatus>,
    /// Runs of each stage since the state database was created.
    pub stage_runs: std::collections::BTreeMap<String, u64>,
    /// The outbound queue: pending, sent, dead letters.
    pub outbound: crate::export::QueueSummary,
    /// Series that formed no course, each with why.
    #[serde(default)]
    pub unassembled: Vec<crate::course::Unassembled>,
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

/// The report of the running node, with its counters since start.
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

/// The report from the databases, when no node runs on `data_dir`.
pub fn offline_report(data_dir: &Path) -> Result<StatusReport> {
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

/// The report as text for a terminal, one section per part.
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
            if let Some(h) = &c.operator_hold {
                out.push_str(&format!(
                    "      on hold by {} since {}{}\n",
                    h.by,
                    h.at,
                    h.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ));
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
