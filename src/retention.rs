//! Retention: purging courses whose last activity is older than a cutoff,
//! on demand (`rtnode purge`) or by the policy in `storage.retention`.
//!
//! A course goes as a whole: its instances (store files and index rows),
//! its result folders and its state rows, each through its owner's API.
//! Never purged: a course with a stage run queued or running (it is in
//! use), and a course with outbound items still pending (someone is
//! waiting for them; the sender would fail on a missing file).
//!
//! Order, chosen so that a crash at any point leaves nothing that comes
//! back: instance files, then index rows (the store's own order), then the
//! result folders, then the state rows. A crash before the state rows are
//! gone leaves a course record whose data is gone; the next purge finishes
//! it, and since its instances are no longer in the index, assembly never
//! re-creates the course.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::audit::{AuditLog, Event};
use crate::export::OutboundState;
use crate::pipeline::{CourseRecord, JobRecord, Pipeline};
use crate::state::{RemovedRows, StateDb};
use crate::store::Index;

/// What a purge is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct PurgeOptions {
    /// Courses whose last activity is older than this are due.
    pub older_than: Duration,
    /// Only report what would be purged; remove nothing.
    pub dry_run: bool,
}

/// What a purge did (or, with `dry_run`, would do), as `rtnode purge`
/// prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Whether nothing was removed.
    pub dry_run: bool,
    /// The `older_than` asked for, s.
    pub older_than_s: u64,
    /// Courses whose last activity is before this (RFC 3339, UTC) are due.
    pub cutoff: String,
    /// Purged, or with `dry_run` the ones that would be.
    pub purged: Vec<PurgedCourse>,
    /// Due, but kept, with the reason.
    pub kept: Vec<KeptCourse>,
    /// Courses with activity after the cutoff.
    pub recent: usize,
}

/// One course purged (or due, with `dry_run`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurgedCourse {
    /// The purged course's id.
    pub course_id: String,
    /// Its last activity (an instance received, a version made, a state
    /// change), RFC 3339 UTC.
    pub last_activity: String,
    /// Instances of the course (members and objects rtnode made for it).
    pub instances: usize,
    /// StudyInstanceUIDs whose instances of the course were removed.
    pub studies: Vec<String>,
    /// Whether a `courses/<id>/` result folder existed and was removed.
    pub results_removed: bool,
    /// State database rows removed (zero with `dry_run`).
    pub state_rows: RemovedRows,
}

/// A due course that was kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeptCourse {
    /// The kept course's id.
    pub course_id: String,
    /// Why, e.g. `stage qc of v2 is running`, `3 outbound item(s) pending`,
    /// or the error that stopped its purge.
    pub reason: String,
}

/// What a purge works on: the same for the running node (its own handles)
/// and for the command line with no server running.
pub struct PurgeContext<'a> {
    /// The data directory (store files and result folders).
    pub data_dir: &'a Path,
    /// The state database (courses, jobs, outbound queue).
    pub state: &'a StateDb,
    /// The instance index.
    pub index: &'a Index,
    /// The live scheduler, which must forget a course before its data goes.
    pub pipeline: Option<&'a Pipeline>,
    /// Where each purged study is recorded (`DICOMStudyDeleted`).
    pub audit: &'a AuditLog,
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// The latest thing that happened to a course: an instance received, a
/// version made, a state change.
fn last_activity(rec: &CourseRecord) -> Option<SystemTime> {
    let c = &rec.course;
    std::iter::once(rec.updated_at.as_str())
        .chain(rec.versions.iter().map(|v| v.created_at.as_str()))
        .chain(c.all_members().map(|m| m.received_at.as_str()))
        .filter_map(parse_time)
        .max()
}

/// The study of a stored instance, from its path `store/<study>/<series>/…`.
fn study_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    (parts.next() == Some("store"))
        .then(|| parts.next())
        .flatten()
}

/// One purge at a time in a process: the policy thread and an operator's
/// `rtnode purge` over the admin socket must not remove the same course twice.
static PURGE: Mutex<()> = Mutex::new(());

/// Purges every course whose last activity is older than
/// `opts.older_than`, except those in use (a stage queued or running) or
/// with outbound items pending. One course that fails does not stop the
/// rest; it is listed as kept. One purge at a time per process.
pub fn purge(ctx: &PurgeContext, opts: PurgeOptions) -> Result<PurgeReport> {
    let _one_at_a_time = PURGE.lock().unwrap_or_else(|p| p.into_inner());
    let cutoff = SystemTime::now()
        .checked_sub(opts.older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = PurgeReport {
        dry_run: opts.dry_run,
        older_than_s: opts.older_than.as_secs(),
        cutoff: crate::time::rfc3339(cutoff),
        ..PurgeReport::default()
    };
    for rec in ctx.state.courses::<CourseRecord>()? {
        let id = rec.course.id.clone();
        let Some(last) = last_activity(&rec) else {
            report.kept.push(KeptCourse {
                course_id: id,
                reason: "no readable time of last activity".into(),
            });
            continue;
        };
        if last >= cutoff {
            report.recent += 1;
            continue;
        }
        match purge_one(ctx, &rec, last, opts.dry_run) {
            Ok(Ok(p)) => report.purged.push(p),
            Ok(Err(reason)) => report.kept.push(KeptCourse {
                course_id: id,
                reason,
            }),
            Err(e) => {
                // One course that cannot be removed must not stop the rest.
                error!(course = %id, error = format!("{e:#}"), "purge failed");
                report.kept.push(KeptCourse {
                    course_id: id,
                    reason: format!("purge failed: {e:#}"),
                });
            }
        }
    }
    Ok(report)
}

/// Purges one due course; `Ok(Err(reason))` when it must be kept.
fn purge_one(
    ctx: &PurgeContext,
    rec: &CourseRecord,
    last: SystemTime,
    dry_run: bool,
) -> Result<std::result::Result<PurgedCourse, String>> {
    let id = rec.course.id.as_str();
    let jobs: Vec<JobRecord> = ctx.state.jobs(&format!("{id}/"))?;
    if let Some(j) = jobs.iter().find(|j| !j.state.is_final()) {
        return Ok(Err(format!(
            "stage {} of v{} is {}",
            j.stage,
            j.version,
            j.state.as_str()
        )));
    }
    let mut uids: Vec<String> = rec
        .course
        .all_members()
        .map(|m| m.sop_instance_uid.clone())
        .collect();
    uids.extend(ctx.state.created_for(id)?);
    let uid_set: HashSet<String> = uids.iter().cloned().collect();
    let items = crate::export::course_items(ctx.state, ctx.data_dir, id, &uid_set)?;
    let pending = items
        .iter()
        .filter(|(_, i)| i.state == OutboundState::Pending)
        .count();
    if pending > 0 {
        return Ok(Err(format!("{pending} outbound item(s) pending")));
    }
    let mut studies: BTreeSet<String> = rec
        .course
        .all_members()
        .filter_map(|m| study_of(&m.path).map(str::to_string))
        .collect();
    let mut purged = PurgedCourse {
        course_id: id.to_string(),
        last_activity: crate::time::rfc3339(last),
        instances: uids.len(),
        ..PurgedCourse::default()
    };
    if dry_run {
        purged.studies = studies.into_iter().collect();
        return Ok(Ok(purged));
    }
    if let Some(p) = ctx.pipeline {
        if let Err(reason) = p.forget_course(id) {
            return Ok(Err(reason));
        }
    }
    let removed = crate::store::remove_instances(ctx.data_dir, ctx.index, &uids)
        .with_context(|| format!("removing the instances of {id}"))?;
    purged.results_removed = crate::pipeline::remove_results(ctx.data_dir, id)?;
    let outbound_ids: Vec<u64> = items.iter().map(|(k, _)| *k).collect();
    purged.state_rows = ctx.state.remove_course(id, &outbound_ids)?;
    // One audit line per patient and study, as the store knew them.
    let mut per_study: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &removed {
        *per_study
            .entry((r.patient.id.clone(), r.study_instance_uid.clone()))
            .or_default() += 1;
        studies.insert(r.study_instance_uid.clone());
    }
    if per_study.is_empty() {
        for s in &studies {
            per_study.insert((rec.course.patient.id.clone(), s.clone()), 0);
        }
    }
    for ((patient_id, study), n) in per_study {
        ctx.audit.record(Event {
            event: "DICOMStudyDeleted",
            action: "purged",
            patient_id,
            study_instance_uid: study,
            outcome: format!("course {id}: {n} instance(s) removed by retention"),
            ..Default::default()
        });
    }
    purged.studies = studies.into_iter().collect();
    info!(course = %id, instances = removed.len(), "course purged");
    Ok(Ok(purged))
}

/// A parsed `storage.retention` policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Courses whose last activity is older than this are purged.
    pub older_than: Duration,
    /// How often the running node purges.
    pub check_every: Duration,
}

/// The running node's handles a purge needs (the node holds the databases,
/// so its purges go through them).
#[derive(Clone)]
pub struct LiveHandles {
    /// The node's state database.
    pub state: Arc<StateDb>,
    /// The node's store (data directory and index).
    pub store: Arc<crate::store::Store>,
    /// The live scheduler, which must forget a course before its data goes.
    pub pipeline: Option<Arc<Pipeline>>,
    /// The node's audit log.
    pub audit: Arc<AuditLog>,
}

impl LiveHandles {
    /// A purge by the running node, with its own handles.
    pub fn purge(&self, opts: PurgeOptions) -> Result<PurgeReport> {
        let ctx = PurgeContext {
            data_dir: self.store.data_dir(),
            state: &self.state,
            index: self.store.index(),
            pipeline: self.pipeline.as_deref(),
            audit: &self.audit,
        };
        purge(&ctx, opts)
    }
}

/// Enforces the policy in the running node: a thread that purges every
/// `check_every` until the returned sender is dropped or sent to.
pub fn spawn(node: LiveHandles, policy: Policy) -> Result<RetentionThread> {
    let (stop, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || loop {
            match rx.recv_timeout(policy.check_every) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let opts = PurgeOptions {
                older_than: policy.older_than,
                dry_run: false,
            };
            match node.purge(opts) {
                Ok(r) if !r.purged.is_empty() || !r.kept.is_empty() => {
                    for k in &r.kept {
                        info!(course = %k.course_id, reason = %k.reason, "retention: course due but kept");
                    }
                    info!(
                        purged = r.purged.len(),
                        kept = r.kept.len(),
                        "retention policy applied"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = format!("{e:#}"), "retention policy failed"),
            }
        })
        .context("starting the retention thread")?;
    Ok(RetentionThread { stop, handle })
}

/// The policy's thread; stop it before the store closes.
pub struct RetentionThread {
    stop: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl RetentionThread {
    /// Waits for a purge in progress to finish, so the store closes after it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

/// `rtnode purge` with no node running: on the databases directly (see
/// `admin::client::purge` for the command, which asks a running node
/// first).
pub fn purge_data_dir(data_dir: &Path, opts: PurgeOptions) -> Result<PurgeReport> {
    let index_path = crate::store::index_path(data_dir);
    anyhow::ensure!(
        index_path.exists(),
        "{} holds no rtnode index",
        data_dir.display()
    );
    let index = Index::open(&index_path)
        .context("opening the index (is a server running without its admin socket?)")?;
    let state = StateDb::open(data_dir)?;
    let audit = AuditLog::open(data_dir).context("opening the audit log")?;
    let ctx = PurgeContext {
        data_dir,
        state: &state,
        index: &index,
        pipeline: None,
        audit: &audit,
    };
    purge(&ctx, opts)
}

/// The report of `rtnode purge` for people.
pub fn render_text(r: &PurgeReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verb = if r.dry_run { "would purge" } else { "purged" };
    for p in &r.purged {
        let _ = writeln!(
            out,
            "{verb} {} (last activity {}, {} instance(s))",
            p.course_id, p.last_activity, p.instances
        );
    }
    for k in &r.kept {
        let _ = writeln!(out, "kept {}: {}", k.course_id, k.reason);
    }
    let _ = writeln!(
        out,
        "{} course(s) {}, {} due but kept, {} recent (cutoff {})",
        r.purged.len(),
        if r.dry_run { "to purge" } else { "purged" },
        r.kept.len(),
        r.recent,
        r.cutoff
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_comes_from_the_store_path() {
        assert_eq!(study_of("store/1.2.3/4.5/6.7.dcm"), Some("1.2.3"));
        assert_eq!(study_of("elsewhere/1.2.3/4.5/6.7.dcm"), None);
    }

    #[test]
    fn our_timestamps_parse() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(parse_time(&crate::time::rfc3339(t)), Some(t));
    }
}
