//! One association, from A-ASSOCIATE-RQ to release or abort.
//!
//! Data set bytes are handed to a blocking writer thread as they arrive; the
//! C-STORE response goes out only once the store says the instance is
//! durable. Per instance the hand-offs are: socket task → writer thread (the
//! data set's pieces), writer thread → commit thread (the synced, checked
//! instance), commit thread → socket task (the outcome, once the file is
//! renamed, its directory synced and the index committed). The writer does
//! not hand the instance back to the socket task on the way to the commit
//! thread; the socket task waits for the commit thread's answer alone (one
//! hand-off and one wake-up fewer per instance; BENCHMARKS.md, store
//! throughput). Data set pieces are read into uninitialised capacity, not a
//! zero-filled buffer.
//!
//! Anything the peer does wrong ends in a DIMSE failure status (bad data
//! set) or an A-ABORT (bad protocol), never a panic or a dropped connection
//! without a word.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dicom_ul::pdu::{AbortRQServiceProviderReason, Pdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

mod c_store;

use c_store::failure_response;

use super::negotiation::{self, AcceptedContext};
use super::{ScpContext, Stats};
use crate::dicom::status::DimseStatus;
use crate::dicom::uids::{self, check_uid, UidCheck};
use crate::dimse::{self, command_field, Command};
use crate::state::AssociationRecord;
use crate::store::StoreFailure;
use crate::ul::{self, pdu_type};

/// Time allowed for the A-ASSOCIATE-RQ after connect (the ARTIM timer).
const ARTIM: Duration = Duration::from_secs(15);
/// Data set bytes are passed to the writer in pieces of at most this size.
const CHUNK: usize = 256 * 1024;

type Conn = BufReader<crate::tls::Connection>;

enum WriterMsg {
    Chunk(Vec<u8>),
    Done,
}

/// Who an instance was about, for the audit trail; set by the writer once
/// the data set is read.
type Who = (String, String);

enum Sink {
    Writing {
        tx: mpsc::Sender<WriterMsg>,
        handle: JoinHandle<()>,
        /// The commit thread's answer (or the writer's refusal).
        outcome: oneshot::Receiver<Result<(), StoreFailure>>,
        who: oneshot::Receiver<Who>,
    },
    Discarding(StoreFailure),
}

/// A C-STORE (or other request) whose data set is still arriving.
struct Incoming {
    context_id: u8,
    command: Command,
    sink: Sink,
    bytes: u64,
}

struct Session {
    node: Arc<ScpContext>,
    calling_ae: String,
    contexts: HashMap<u8, AcceptedContext>,
    peer_max_pdu: u32,
    command_buf: Vec<u8>,
    command_context: Option<u8>,
    incoming: Option<Incoming>,
    record: AssociationRecord,
}

pub async fn handle(
    node: Arc<ScpContext>,
    stream: crate::tls::Connection,
    peer: SocketAddr,
    connection_slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let mut record = AssociationRecord {
        peer_address: peer.to_string(),
        started_at: crate::time::now_rfc3339(),
        ..AssociationRecord::default()
    };
    let mut conn = BufReader::with_capacity(64 * 1024, stream);
    let outcome = establish_and_serve(&node, &mut conn, peer, connection_slot, &mut record).await;
    record.duration_ms = started.elapsed().as_millis() as u64;
    record.outcome = outcome;
    // Only associations that got as far as a parseable request are logged:
    // port scans and garbage would otherwise fill the log (and memory).
    if record.calling_ae.is_empty() {
        Stats::add(&node.stats.junk_connections, 1);
        debug!(peer = %peer, outcome = %record.outcome, "connection without a valid association request");
    } else {
        if record.outcome.starts_with("aborted") {
            node.stats.failure("aborted");
        }
        info!(
            calling_ae = %record.calling_ae,
            peer = %peer,
            instances = record.instances,
            bytes = record.bytes,
            failures = record.failures,
            duration_ms = record.duration_ms,
            outcome = %record.outcome,
            "association ended"
        );
        let state = node.state.clone();
        let rec = record.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = state.log_association(&rec) {
                warn!(error = %e, "cannot log association");
            }
        })
        .await;
    }
    // Over TLS this sends close_notify, without which the peer cannot tell
    // our close from a truncation; best effort, the peer may be gone. Last,
    // where the socket used to be dropped: a peer that saw the close before
    // the association was logged came back while this task still ran, and
    // the hostile barrage then found more associations refused.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.get_mut().shutdown()).await;
}

async fn establish_and_serve(
    node: &Arc<ScpContext>,
    conn: &mut Conn,
    peer: SocketAddr,
    connection_slot: OwnedSemaphorePermit,
    record: &mut AssociationRecord,
) -> String {
    let rq = match tokio::time::timeout(ARTIM, read_associate_rq(conn)).await {
        Err(_) => return "closed before negotiation".into(),
        Ok(Err(reason)) => {
            debug!(peer = %peer, reason = %reason, "bad association request");
            ul::write_abort(
                conn.get_mut(),
                AbortRQServiceProviderReason::UnrecognizedPdu,
            )
            .await;
            return format!("aborted: {reason}");
        }
        Ok(Ok(None)) => return "closed before negotiation".into(),
        Ok(Ok(Some(rq))) => rq,
    };
    record.calling_ae = rq.calling_ae_title.trim().to_string();
    record.called_ae = rq.called_ae_title.trim().to_string();
    let decision = negotiation::negotiate(node, &rq, peer).await;
    let slot = match &decision {
        Ok(_) => match node.association_slots.clone().try_acquire_owned() {
            Ok(s) => Ok(s),
            Err(_) => Err(negotiation::limit_exceeded(node.network.max_associations)),
        },
        Err(_) => Err(negotiation::limit_exceeded(0)),
    };
    let (accepted, _slot) = match (decision, slot) {
        (Ok(a), Ok(s)) => (a, s),
        (Err(rejected), _) | (Ok(_), Err(rejected)) => {
            Stats::add(&node.stats.rejected_associations, 1);
            node.audit.record(crate::audit::Event {
                event: "SecurityAlert",
                action: "association-rejected",
                calling_ae: record.calling_ae.clone(),
                called_ae: record.called_ae.clone(),
                peer: peer.to_string(),
                outcome: rejected.reason.clone(),
                ..Default::default()
            });
            node.stats.failure(rejected.kind());
            warn!(calling_ae = %record.calling_ae, peer = %peer, reason = %rejected.reason, "association rejected");
            let _ = ul::write_pdu(conn.get_mut(), &Pdu::AssociationRJ(rejected.rj)).await;
            return format!("rejected: {}", rejected.reason);
        }
    };
    // Negotiated: the pre-association slot is no longer needed.
    drop(connection_slot);
    if let Err(e) = ul::write_pdu(conn.get_mut(), &Pdu::AssociationAC(accepted.ac)).await {
        return format!("error: sending A-ASSOCIATE-AC: {e}");
    }
    Stats::add(&node.stats.associations, 1);
    node.stats
        .active_associations
        .fetch_add(1, Ordering::Relaxed);
    debug!(calling_ae = %record.calling_ae, contexts = accepted.contexts.len(), "association accepted");
    let mut session = Session {
        node: node.clone(),
        calling_ae: record.calling_ae.clone(),
        contexts: accepted.contexts,
        peer_max_pdu: accepted.peer_max_pdu,
        command_buf: Vec::new(),
        command_context: None,
        incoming: None,
        record: std::mem::take(record),
    };
    let outcome = session.serve(conn).await;
    if let Some(incoming) = session.incoming.take() {
        abandon(incoming).await;
    }
    node.stats
        .active_associations
        .fetch_sub(1, Ordering::Relaxed);
    *record = session.record;
    outcome
}

async fn read_associate_rq(
    conn: &mut Conn,
) -> Result<Option<dicom_ul::pdu::AssociationRQ>, String> {
    let header = match ul::read_header(conn).await {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if header.pdu_type != pdu_type::ASSOCIATE_RQ {
        return Err(format!(
            "expected A-ASSOCIATE-RQ, got PDU type {:#04x}",
            header.pdu_type
        ));
    }
    match ul::read_control_pdu(conn, header).await {
        Ok(Pdu::AssociationRQ(rq)) => Ok(Some(rq)),
        Ok(other) => Err(format!("unexpected PDU {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

async fn abandon(incoming: Incoming) {
    if let Sink::Writing { tx, handle, .. } = incoming.sink {
        // Dropping the sender without Done makes the writer discard the file.
        drop(tx);
        let _ = handle.await;
    }
}

/// Protocol errors end the association with an A-ABORT.
struct Abort(String);

impl Session {
    async fn serve(&mut self, conn: &mut Conn) -> String {
        let idle = self.node.network.idle_timeout();
        let hard_limit = self
            .node
            .network
            .max_pdu_hard_limit
            .max(self.node.network.max_pdu_length);
        loop {
            let header = match tokio::time::timeout(idle, ul::read_header(conn)).await {
                Err(_) => {
                    ul::write_abort(
                        conn.get_mut(),
                        AbortRQServiceProviderReason::ReasonNotSpecified,
                    )
                    .await;
                    return format!("aborted: idle for {} s", idle.as_secs());
                }
                Ok(Ok(None)) => return "closed by peer without release".into(),
                Ok(Err(e)) => return format!("error: {e}"),
                Ok(Ok(Some(h))) => h,
            };
            match header.pdu_type {
                pdu_type::P_DATA_TF => {
                    if header.length > hard_limit {
                        ul::write_abort(
                            conn.get_mut(),
                            AbortRQServiceProviderReason::InvalidPduParameter,
                        )
                        .await;
                        return format!(
                            "aborted: P-DATA-TF of {} bytes exceeds the limit of {hard_limit}",
                            header.length
                        );
                    }
                    let result = tokio::time::timeout(idle, self.pdata(conn, header.length)).await;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(Abort(reason))) => {
                            ul::write_abort(
                                conn.get_mut(),
                                AbortRQServiceProviderReason::InvalidPduParameter,
                            )
                            .await;
                            return format!("aborted: {reason}");
                        }
                        Err(_) => {
                            ul::write_abort(
                                conn.get_mut(),
                                AbortRQServiceProviderReason::ReasonNotSpecified,
                            )
                            .await;
                            return format!(
                                "aborted: stalled for {} s inside a PDU",
                                idle.as_secs()
                            );
                        }
                    }
                }
                pdu_type::RELEASE_RQ => {
                    match tokio::time::timeout(idle, skip(conn, header.length.min(1024))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return format!("error: {e}"),
                        Err(_) => {
                            return format!(
                                "aborted: release request stalled for {} s",
                                idle.as_secs()
                            )
                        }
                    }
                    if self.incoming.is_some() {
                        warn!(calling_ae = %self.calling_ae, "release requested in the middle of a data set");
                    }
                    let _ = ul::write_pdu(conn.get_mut(), &Pdu::ReleaseRP).await;
                    return "released".into();
                }
                pdu_type::ABORT => return "aborted by peer".into(),
                other => {
                    ul::write_abort(conn.get_mut(), AbortRQServiceProviderReason::UnexpectedPdu)
                        .await;
                    return format!("aborted: unexpected PDU type {other:#04x}");
                }
            }
        }
    }

    async fn pdata(&mut self, conn: &mut Conn, length: u32) -> Result<(), Abort> {
        let mut remaining = length;
        if remaining == 0 {
            return Err(Abort("empty P-DATA-TF".into()));
        }
        while remaining > 0 {
            let pdv = ul::read_pdv_header(conn, &mut remaining)
                .await
                .map_err(|e| Abort(e.to_string()))?;
            if !self.contexts.contains_key(&pdv.context_id) {
                return Err(Abort(format!(
                    "PDV on presentation context {} that was not accepted",
                    pdv.context_id
                )));
            }
            if pdv.is_command {
                self.command_fragment(conn, pdv).await?;
            } else {
                self.data_fragment(conn, pdv).await?;
            }
        }
        Ok(())
    }

    async fn command_fragment(&mut self, conn: &mut Conn, pdv: ul::PdvHeader) -> Result<(), Abort> {
        if self.incoming.is_some() {
            return Err(Abort(
                "command fragment while a data set was expected".into(),
            ));
        }
        if *self.command_context.get_or_insert(pdv.context_id) != pdv.context_id {
            return Err(Abort(
                "command fragments on different presentation contexts".into(),
            ));
        }
        let len = pdv.data_len as usize;
        if self.command_buf.len() + len > dimse::MAX_COMMAND_SET_LEN {
            return Err(Abort("command set too long".into()));
        }
        let start = self.command_buf.len();
        self.command_buf.resize(start + len, 0);
        conn.read_exact(&mut self.command_buf[start..])
            .await
            .map_err(|e| Abort(e.to_string()))?;
        if !pdv.is_last {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.command_buf);
        self.command_context = None;
        let command =
            dimse::decode_command(&bytes).map_err(|e| Abort(format!("bad command set: {e}")))?;
        self.on_command(conn, pdv.context_id, command).await
    }

    async fn data_fragment(&mut self, conn: &mut Conn, pdv: ul::PdvHeader) -> Result<(), Abort> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(Abort("data set fragment without a command".into()));
        };
        if incoming.context_id != pdv.context_id {
            return Err(Abort(
                "data set on another presentation context than its command".into(),
            ));
        }
        let mut left = pdv.data_len as usize;
        incoming.bytes += left as u64;
        while left > 0 {
            let n = left.min(CHUNK);
            let buf = read_piece(conn, n).await?;
            left -= n;
            if let Sink::Writing { tx, .. } = &incoming.sink {
                if tx.send(WriterMsg::Chunk(buf)).await.is_err() {
                    // The writer ended early (it failed); keep draining.
                    incoming.sink = Sink::Discarding(StoreFailure::new(
                        DimseStatus::OUT_OF_RESOURCES,
                        "writer stopped",
                    ));
                }
            }
        }
        if pdv.is_last {
            if let Some(incoming) = self.incoming.take() {
                self.complete(conn, incoming).await?;
            }
        }
        Ok(())
    }

    async fn on_command(
        &mut self,
        conn: &mut Conn,
        context_id: u8,
        command: Command,
    ) -> Result<(), Abort> {
        let Some(ctx) = self.contexts.get(&context_id).cloned() else {
            return Err(Abort("unknown presentation context".into()));
        };
        match command.command_field {
            command_field::C_ECHO_RQ => {
                let rsp =
                    dimse::c_echo_rsp(command.message_id.unwrap_or(0), Some(&ctx.abstract_syntax));
                self.respond(conn, context_id, &rsp).await
            }
            command_field::C_STORE_RQ if command.has_data_set() => {
                let sink = self.start_store(&ctx, &command);
                self.incoming = Some(Incoming {
                    context_id,
                    command,
                    sink,
                    bytes: 0,
                });
                Ok(())
            }
            other => {
                let failure = StoreFailure::new(
                    DimseStatus::UNRECOGNIZED_OPERATION,
                    format!("command {other:#06x} not served here"),
                );
                if command.has_data_set() {
                    self.incoming = Some(Incoming {
                        context_id,
                        command,
                        sink: Sink::Discarding(failure),
                        bytes: 0,
                    });
                    Ok(())
                } else {
                    let rsp = failure_response(&command, &failure);
                    self.respond(conn, context_id, &rsp).await
                }
            }
        }
    }

    async fn respond(
        &mut self,
        conn: &mut Conn,
        context_id: u8,
        rsp: &Command,
    ) -> Result<(), Abort> {
        let bytes = dimse::encode_command(rsp);
        let idle = self.node.network.idle_timeout();
        let write = ul::write_pdata(
            conn.get_mut(),
            context_id,
            true,
            &bytes,
            self.peer_max_pdu,
            true,
        );
        match tokio::time::timeout(idle, write).await {
            Ok(r) => r.map_err(|e| Abort(format!("sending response: {e}"))),
            Err(_) => Err(Abort(format!(
                "peer did not read a response for {} s",
                idle.as_secs()
            ))),
        }
    }
}

/// Reads `n` bytes of a data set into a new buffer, without zero-filling it
/// first (the socket overwrites it anyway; at 256 KiB a piece the fill showed
/// in profiles).
async fn read_piece(conn: &mut Conn, n: usize) -> Result<Vec<u8>, Abort> {
    let mut buf = Vec::with_capacity(n);
    while buf.len() < n {
        let want = (n - buf.len()) as u64;
        let got = (&mut *conn)
            .take(want)
            .read_buf(&mut buf)
            .await
            .map_err(|e| Abort(e.to_string()))?;
        if got == 0 {
            return Err(Abort(format!(
                "connection closed {} bytes short of a data set fragment",
                n - buf.len()
            )));
        }
    }
    Ok(buf)
}

async fn skip(conn: &mut Conn, n: u32) -> std::io::Result<()> {
    let mut buf = vec![0u8; n as usize];
    conn.read_exact(&mut buf).await.map(|_| ())
}
