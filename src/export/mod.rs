//! Getting objects out: a durable outbound queue of (object, destination)
//! pairs in the state database, a sender that works through it with one
//! association per destination, and auto-routing rules that feed it.
//!
//! Each pair is retried with exponential backoff until it succeeds or
//! reaches `export.max_attempts`, then dead-lettered. B-range statuses are
//! successes with a warning; A9xx and Cxxx (and refusals such as 0122) are
//! permanent and dead-letter at once; A7xx, lost connections and transient
//! association rejections are retried. The queue survives restarts.

pub mod routing;
pub mod settings;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::dicom::status::DimseStatus;
use crate::peers::PeersFile;
use crate::scu::{self, Target};
use crate::state::StateDb;
use crate::store::InstanceRecord;
use crate::time::now_ms;
pub use settings::{ExportSection, RoutingRule};

/// Where a queue row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundState {
    /// Waiting to be sent, or to be retried after a failed attempt.
    Pending,
    /// Stored by the destination (Success or Warning status); final.
    Sent,
    /// Given up on (permanent failure or `export.max_attempts` reached); final until retried by hand.
    Dead,
}

/// One (object, destination) row of the durable outbound queue, stored in the state database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundItem {
    /// SOPInstanceUID of the object to send.
    pub sop_instance_uid: String,
    /// SOPClassUID of the object to send.
    pub sop_class_uid: String,
    /// Absolute path of the file to send.
    pub path: PathBuf,
    /// AE title of the destination peer.
    pub destination: String,
    /// Why it is sent: `route:<rule>` or `result:<course>`.
    pub reason: String,
    /// Where the row stands.
    pub state: OutboundState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest time of the next attempt, in ms since the Unix epoch (0: at once).
    pub not_before_ms: u64,
    /// When the row was queued (RFC 3339, UTC).
    pub created_at: String,
    /// When the destination stored it (RFC 3339, UTC); None until sent.
    pub sent_at: Option<String>,
    /// DIMSE status of the latest C-STORE-RSP; None when no response came.
    pub last_status: Option<DimseStatus>,
    /// Why the latest attempt failed, for a person to read; None when it did not fail.
    pub last_error: Option<String>,
    /// Whose data this is, for the audit trail. Rows queued before these
    /// were recorded lack them; `finish` reads them from the file then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub patient_id: String,
    /// StudyInstanceUID of the object, for the audit trail; empty for old rows.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub study_instance_uid: String,
}

/// PatientID and StudyInstanceUID of a file we are about to send. Empty
/// when unreadable: the send itself reports that, and an audit line with
/// less detail beats none.
fn identity_of(path: &std::path::Path) -> (String, String) {
    use dicom_dictionary_std::tags;
    match dicom_object::OpenFileOptions::new()
        .read_until(tags::SERIES_INSTANCE_UID)
        .open_file(path)
    {
        Ok(obj) => (
            crate::dicom::attrs::text(&obj, tags::PATIENT_ID),
            crate::dicom::attrs::text(&obj, tags::STUDY_INSTANCE_UID),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

/// Counts of the outbound queue by state, for `status` and the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Rows waiting to be sent or retried.
    pub pending: usize,
    /// Rows sent.
    pub sent: usize,
    /// Rows dead-lettered.
    pub dead: usize,
    /// The latest dead letters, newest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// A dead-lettered row as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Queue row id, to retry it by.
    pub id: u64,
    /// AE title of the destination.
    pub destination: String,
    /// SOPInstanceUID of the object.
    pub sop_instance_uid: String,
    /// Attempts made before giving up.
    pub attempts: u32,
    /// The last error or status, for a person to read; empty if none was recorded.
    pub error: String,
}

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Sent,
    Retry,
    Dead,
}

fn judge(o: &scu::Outcome) -> Verdict {
    match o.status {
        Some(s) if s.stored() => Verdict::Sent,
        Some(s) if s.is_out_of_resources() => Verdict::Retry,
        Some(_) => Verdict::Dead,
        None if o.transient => Verdict::Retry,
        None => Verdict::Dead,
    }
}

/// The outbound sender: holds the queue rows not yet final and the routing rules, and sends with one association per destination.
pub struct Exporter {
    state: Arc<StateDb>,
    settings: ExportSection,
    calling_ae: String,
    peers: Mutex<Arc<PeersFile>>,
    rules: Mutex<Vec<routing::CompiledRule>>,
    /// In memory: the queue rows not yet final, by id.
    pending: Mutex<BTreeMap<u64, OutboundItem>>,
    audit: Option<Arc<crate::audit::AuditLog>>,
    /// The node's TLS settings: its client certificate and default CA for
    /// `tls: true` destinations.
    tls: Mutex<Option<crate::tls::TlsSection>>,
}

impl Exporter {
    /// Opens the queue in `state`, resuming the pending rows; the calling AE is `settings.calling_ae`, else `node_ae`.
    pub fn open(
        state: Arc<StateDb>,
        settings: ExportSection,
        node_ae: &str,
        peers: Arc<PeersFile>,
        rules: &[RoutingRule],
        audit: Option<Arc<crate::audit::AuditLog>>,
    ) -> Result<Arc<Exporter>> {
        let pending: BTreeMap<u64, OutboundItem> = state
            .outbound::<OutboundItem>()?
            .into_iter()
            .filter(|(_, i)| i.state == OutboundState::Pending)
            .collect();
        if !pending.is_empty() {
            info!(pending = pending.len(), "outbound queue resumed");
        }
        let calling_ae = if settings.calling_ae.trim().is_empty() {
            node_ae.to_string()
        } else {
            settings.calling_ae.clone()
        };
        Ok(Arc::new(Exporter {
            state,
            settings,
            calling_ae,
            peers: Mutex::new(peers),
            rules: Mutex::new(routing::compile(rules)?),
            pending: Mutex::new(pending),
            audit,
            tls: Mutex::new(None),
        }))
    }

    /// Sets the TLS settings used for `tls: true` destinations (client certificate, default CA); None: no TLS.
    pub fn set_tls(&self, tls: Option<crate::tls::TlsSection>) {
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = tls;
    }

    /// Replaces the peers the sender resolves destinations against (after a peers-file reload).
    pub fn set_peers(&self, peers: Arc<PeersFile>) {
        *self.peers.lock().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    /// Replaces the auto-routing rules; fails, leaving the old ones, if one does not compile.
    pub fn set_rules(&self, rules: &[RoutingRule]) -> Result<()> {
        let compiled = routing::compile(rules)?;
        *self.rules.lock().unwrap_or_else(|p| p.into_inner()) = compiled;
        Ok(())
    }

    /// Where results of a course go: every peer with `receives_results`,
    /// and the senders of the course that asked for `results_to_sender`.
    pub fn result_destinations(&self, senders: &std::collections::BTreeSet<String>) -> Vec<String> {
        let peers = self.peers();
        let mut out: Vec<String> = peers
            .peers
            .iter()
            .filter(|p| {
                p.receives_results || (p.results_to_sender && senders.contains(p.ae_title.trim()))
            })
            .map(|p| p.ae_title.trim().to_string())
            .collect();
        out.dedup();
        out
    }

    fn peers(&self) -> Arc<PeersFile> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many (object, destination) pairs wait to be sent (retries
    /// included): the queue depth systemd's STATUS= reports.
    pub fn queued(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Queues `path` for each destination (durably, before returning).
    /// Destinations that do not take the SOP class are skipped, with a log line.
    pub fn enqueue(
        &self,
        sop_instance_uid: &str,
        sop_class_uid: &str,
        path: PathBuf,
        destinations: &[String],
        reason: &str,
    ) -> Result<Vec<u64>> {
        // Results are files of our own making, not in the index: their
        // header is the one place that says whose they are.
        let identity = if destinations.is_empty() {
            (String::new(), String::new())
        } else {
            identity_of(&path)
        };
        self.enqueue_for(
            sop_instance_uid,
            sop_class_uid,
            path,
            destinations,
            reason,
            identity,
        )
    }

    fn enqueue_for(
        &self,
        sop_instance_uid: &str,
        sop_class_uid: &str,
        path: PathBuf,
        destinations: &[String],
        reason: &str,
        (patient_id, study_instance_uid): (String, String),
    ) -> Result<Vec<u64>> {
        let peers = self.peers();
        let mut items = Vec::new();
        for d in destinations {
            match peers.find(d) {
                None => {
                    warn!(destination = %d, reason, "destination not in the peers file; not queued")
                }
                Some(p) if !p.accepts(sop_class_uid) => info!(
                    destination = %d,
                    sop_class = crate::dicom::uids::sop_class_name(sop_class_uid),
                    "destination does not take this SOP class; not queued"
                ),
                Some(p) => items.push(OutboundItem {
                    sop_instance_uid: sop_instance_uid.to_string(),
                    sop_class_uid: sop_class_uid.to_string(),
                    path: path.clone(),
                    destination: p.ae_title.trim().to_string(),
                    reason: reason.to_string(),
                    state: OutboundState::Pending,
                    attempts: 0,
                    not_before_ms: 0,
                    created_at: crate::time::now_rfc3339(),
                    sent_at: None,
                    last_status: None,
                    last_error: None,
                    patient_id: patient_id.clone(),
                    study_instance_uid: study_instance_uid.clone(),
                }),
            }
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.state.enqueue_outbound(&items)?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (id, item) in ids.iter().zip(items) {
            pending.insert(*id, item);
        }
        Ok(ids)
    }

    /// Destinations that already have this instance queued or stored; a
    /// dead letter does not count (a new attempt may be wanted).
    pub fn holding(&self, sop_instance_uid: &str) -> Result<std::collections::BTreeSet<String>> {
        Ok(self
            .state
            .outbound::<OutboundItem>()?
            .into_iter()
            .filter(|(_, i)| {
                i.sop_instance_uid == sop_instance_uid && i.state != OutboundState::Dead
            })
            .map(|(_, i)| i.destination)
            .collect())
    }

    /// Auto-routing of a newly stored instance.
    pub fn route(&self, rec: &InstanceRecord, data_dir: &std::path::Path) {
        let matches = {
            let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            routing::matching(&rules, rec, data_dir)
        };
        for (rule, destinations) in matches {
            // Never back to the AE it came from.
            let to: Vec<String> = destinations
                .into_iter()
                .filter(|d| d.trim() != rec.calling_ae.trim())
                .collect();
            if to.is_empty() {
                continue;
            }
            if let Err(e) = self.enqueue_for(
                &rec.sop_instance_uid,
                &rec.sop_class_uid,
                data_dir.join(&rec.path),
                &to,
                &format!("route:{rule}"),
                (rec.patient.id.clone(), rec.study_instance_uid.clone()),
            ) {
                error!(error = %e, rule = %rule, "cannot queue a routed instance");
            }
        }
    }

    /// Sends everything due, one association per destination; returns
    /// whether anything was attempted.
    pub async fn send_due(&self) -> bool {
        let now = now_ms();
        let due: Vec<(u64, OutboundItem)> = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending
                .iter()
                .filter(|(_, i)| i.not_before_ms <= now)
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
        if due.is_empty() {
            return false;
        }
        let mut by_dest: BTreeMap<String, Vec<(u64, OutboundItem)>> = BTreeMap::new();
        for (id, item) in due {
            by_dest
                .entry(item.destination.clone())
                .or_default()
                .push((id, item));
        }
        let peers = self.peers();
        for (dest, batch) in by_dest {
            let Some(peer) = peers.find(&dest).cloned() else {
                for (id, mut item) in batch {
                    item.last_error = Some(format!("{dest} is no longer in the peers file"));
                    self.finish(id, item, Verdict::Dead);
                }
                continue;
            };
            let node_tls = self.tls.lock().unwrap_or_else(|p| p.into_inner()).clone();
            // Read at each attempt, so renewed certificates are picked up
            // without a restart.
            let target = match Target::for_peer(&peer, node_tls.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    // A configuration problem an operator can fix (and
                    // reload): retried like a peer that is down.
                    error!(destination = %dest, error = %e, "cannot set up TLS");
                    for (id, mut item) in batch {
                        item.attempts += 1;
                        item.last_error = Some(e.clone());
                        let verdict = if item.attempts >= self.settings.max_attempts {
                            Verdict::Dead
                        } else {
                            Verdict::Retry
                        };
                        self.finish(id, item, verdict);
                    }
                    continue;
                }
            };
            let mut prepared = Vec::new();
            for (id, mut item) in batch {
                match crate::import::prepare(&item.path) {
                    Ok(p) => prepared.push((id, item, p)),
                    Err(e) => {
                        item.attempts += 1;
                        item.last_error = Some(format!("cannot read {}: {e}", item.path.display()));
                        self.finish(id, item, Verdict::Dead);
                    }
                }
            }
            let files: Vec<_> = prepared.iter().map(|(_, _, p)| p.clone()).collect();
            let outcomes = scu::send_items(&target, &self.calling_ae, &files, 262_144, true).await;
            for ((id, mut item, _), o) in prepared.into_iter().zip(outcomes) {
                item.attempts += 1;
                item.last_status = o.status;
                item.last_error = o.error.clone();
                let mut verdict = judge(&o);
                if let Some(s) = o.status {
                    if s != DimseStatus::SUCCESS && item.last_error.is_none() {
                        item.last_error = Some(s.to_string());
                    }
                    if s.is_store_warning() {
                        warn!(destination = %dest, sop_instance_uid = %item.sop_instance_uid, status = format!("{s:04X}"), "stored with a warning");
                    }
                }
                if verdict == Verdict::Retry && item.attempts >= self.settings.max_attempts {
                    verdict = Verdict::Dead;
                }
                self.finish(id, item, verdict);
            }
        }
        true
    }

    fn finish(&self, id: u64, mut item: OutboundItem, verdict: Verdict) {
        if let Some(a) = &self.audit {
            if item.patient_id.is_empty() && item.study_instance_uid.is_empty() {
                (item.patient_id, item.study_instance_uid) = identity_of(&item.path);
            }
            a.record(crate::audit::Event {
                event: "DICOMInstancesTransferred",
                action: match verdict {
                    Verdict::Sent => "sent",
                    Verdict::Retry => "send-failed",
                    Verdict::Dead => "send-abandoned",
                },
                calling_ae: self.calling_ae.clone(),
                called_ae: item.destination.clone(),
                sop_instance_uid: item.sop_instance_uid.clone(),
                sop_class_uid: item.sop_class_uid.clone(),
                patient_id: item.patient_id.clone(),
                study_instance_uid: item.study_instance_uid.clone(),
                outcome: item.last_error.clone().unwrap_or_else(|| "0000".into()),
                ..Default::default()
            });
        }
        match verdict {
            Verdict::Sent => {
                item.state = OutboundState::Sent;
                item.sent_at = Some(crate::time::now_rfc3339());
                info!(destination = %item.destination, sop_instance_uid = %item.sop_instance_uid, attempts = item.attempts, "sent");
            }
            Verdict::Retry => {
                let backoff = self
                    .settings
                    .retry_base_s
                    .saturating_mul(1u64 << (item.attempts.saturating_sub(1)).min(20))
                    .min(self.settings.retry_max_s);
                item.not_before_ms = now_ms() + backoff * 1000;
                warn!(destination = %item.destination, sop_instance_uid = %item.sop_instance_uid, attempt = item.attempts, retry_in_s = backoff, error = ?item.last_error, "send failed; will retry");
            }
            Verdict::Dead => {
                item.state = OutboundState::Dead;
                error!(destination = %item.destination, sop_instance_uid = %item.sop_instance_uid, attempts = item.attempts, error = ?item.last_error, "dead letter");
            }
        }
        if let Err(e) = self.state.put_outbound(id, &item) {
            error!(error = %e, "cannot record an outbound result");
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if item.state == OutboundState::Pending {
            pending.insert(id, item);
        } else {
            pending.remove(&id);
        }
    }

    /// Runs the sender until the process ends.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if !me.send_due().await {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
    }

    /// Requeues dead letters (all when `ids` is empty).
    pub fn retry_dead(&self, ids: &[u64]) -> Result<usize> {
        let n = requeue_dead(&self.state, ids)?;
        for (id, item) in self.state.outbound::<OutboundItem>()? {
            if item.state == OutboundState::Pending {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, item);
            }
        }
        Ok(n)
    }
}

/// Requeues dead letters in the state database (no server needed).
pub fn requeue_dead(state: &StateDb, ids: &[u64]) -> Result<usize> {
    let mut n = 0;
    for (id, mut item) in state.outbound::<OutboundItem>()? {
        if item.state == OutboundState::Dead && (ids.is_empty() || ids.contains(&id)) {
            item.state = OutboundState::Pending;
            item.attempts = 0;
            item.not_before_ms = 0;
            state.put_outbound(id, &item)?;
            n += 1;
        }
    }
    Ok(n)
}

/// One row of the outbound queue as the HTTP API shows it (no file path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Queue row id.
    pub id: u64,
    /// Where the row stands.
    pub state: OutboundState,
    /// AE title of the destination.
    pub destination: String,
    /// Why it is sent: `route:<rule>` or `result:<course>`.
    pub reason: String,
    /// SOPInstanceUID of the object.
    pub sop_instance_uid: String,
    /// SOPClassUID of the object.
    pub sop_class_uid: String,
    /// PatientID (0010,0020) of the object; empty when unknown.
    pub patient_id: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the row was queued (RFC 3339, UTC).
    pub created_at: String,
    /// When the destination stored it (RFC 3339, UTC); None until sent.
    pub sent_at: Option<String>,
    /// DIMSE status of the latest C-STORE-RSP; None when no response came.
    pub last_status: Option<DimseStatus>,
    /// Why the latest attempt failed; None when it did not fail.
    pub last_error: Option<String>,
}

/// The outbound queue, newest first, optionally only rows in `only`.
pub fn entries(state: &StateDb, only: Option<OutboundState>) -> Result<Vec<QueueEntry>> {
    let mut out: Vec<QueueEntry> = state
        .outbound::<OutboundItem>()?
        .into_iter()
        .filter(|(_, i)| only.is_none_or(|s| i.state == s))
        .map(|(id, i)| QueueEntry {
            id,
            state: i.state,
            destination: i.destination,
            reason: i.reason,
            sop_instance_uid: i.sop_instance_uid,
            sop_class_uid: i.sop_class_uid,
            patient_id: i.patient_id,
            attempts: i.attempts,
            created_at: i.created_at,
            sent_at: i.sent_at,
            last_status: i.last_status,
            last_error: i.last_error,
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// Counts of the outbound queue by state and its 10 latest dead letters (newest first).
pub fn summary(state: &StateDb) -> Result<QueueSummary> {
    let mut s = QueueSummary::default();
    let mut dead = Vec::new();
    for (id, item) in state.outbound::<OutboundItem>()? {
        match item.state {
            OutboundState::Pending => s.pending += 1,
            OutboundState::Sent => s.sent += 1,
            OutboundState::Dead => {
                s.dead += 1;
                dead.push(DeadLetter {
                    id,
                    destination: item.destination,
                    sop_instance_uid: item.sop_instance_uid,
                    attempts: item.attempts,
                    error: item.last_error.unwrap_or_default(),
                });
            }
        }
    }
    dead.reverse();
    dead.truncate(10);
    s.dead_letters = dead;
    Ok(s)
}

/// The outbound rows that belong to a course: its results (queued by the
/// export stage as `result:<course> v<N>`, or pointing into its result
/// folder) and the forwarding of its member instances. Retention keeps a
/// course while any of these is pending.
pub fn course_items(
    state: &StateDb,
    data_dir: &std::path::Path,
    course_id: &str,
    member_uids: &std::collections::HashSet<String>,
) -> Result<Vec<(u64, OutboundItem)>> {
    let reason_prefix = format!("result:{course_id} ");
    let results_dir = data_dir.join("courses").join(course_id);
    Ok(state
        .outbound::<OutboundItem>()?
        .into_iter()
        .filter(|(_, i)| {
            i.reason.starts_with(&reason_prefix)
                || i.path.starts_with(&results_dir)
                || member_uids.contains(&i.sop_instance_uid)
        })
        .collect())
}
