//! The C-STORE SCP: a TCP listener, association negotiation, and one task per
//! association that serves C-ECHO and C-STORE into the [`Store`].

mod association;
mod negotiation;
pub mod settings;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::peers::PeersFile;
use crate::state::StateDb;
use crate::store::Store;
pub use settings::NetworkSection;

/// Counters for `rtnode status` and the log; reset at each start.
#[derive(Default)]
pub struct Stats {
    /// Associations open now.
    pub active_associations: AtomicU64,
    /// Associations accepted since start.
    pub associations: AtomicU64,
    /// Association requests rejected since start.
    pub rejected_associations: AtomicU64,
    /// SOP instances stored since start.
    pub instances_stored: AtomicU64,
    /// Bytes of instances stored since start.
    pub bytes_stored: AtomicU64,
    /// C-STORE requests that could not be stored since start.
    pub store_failures: AtomicU64,
    /// Connections that never sent a parseable A-ASSOCIATE-RQ.
    pub junk_connections: AtomicU64,
    /// Association failures by reason (rejections, aborts) and C-STORE
    /// refusals by status, for the metrics endpoint.
    pub failures: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Stats {
    /// Adds `n` to `counter` (relaxed ordering: these are statistics, not synchronisation).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one failure under `reason` (for example an abort reason or a refusing status).
    pub fn failure(&self, reason: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(reason.to_string()).or_default() += 1;
    }
}

/// The peers file as loaded, shared by the SCP and the rest of the node so
/// that a reload reaches every association that starts after it.
pub type SharedPeers = Arc<RwLock<Arc<PeersFile>>>;

/// What the SCP needs from the node it serves, shared by every association
/// task: its identity, network settings and peers, the store it writes to,
/// the state database for association records, counters and the audit log.
/// The node (`node::Node`) holds the same handles and one of these.
pub struct ScpContext {
    /// The AE title the SCP answers to (Called AE Title it accepts).
    pub ae_title: String,
    /// The `network` section: limits, timeouts, caller checks, TLS.
    pub network: NetworkSection,
    /// The peers file, reloadable.
    pub peers: SharedPeers,
    /// Where received instances are written.
    pub store: Arc<Store>,
    /// Where association records are written.
    pub state: Arc<StateDb>,
    /// Counters for status and metrics.
    pub stats: Arc<Stats>,
    /// Where associations and transfers are audited.
    pub audit: Arc<crate::audit::AuditLog>,
    association_slots: Arc<Semaphore>,
    /// Bounds sockets that have not yet completed negotiation, so a flood of
    /// idle connections cannot pin memory.
    connection_slots: Arc<Semaphore>,
}

impl ScpContext {
    /// A context with fresh counters and `network.max_associations` slots.
    pub fn new(
        ae_title: String,
        network: NetworkSection,
        peers: SharedPeers,
        store: Arc<Store>,
        state: Arc<StateDb>,
        audit: Arc<crate::audit::AuditLog>,
    ) -> ScpContext {
        let max = network.max_associations.max(1) as usize;
        ScpContext {
            ae_title,
            association_slots: Arc::new(Semaphore::new(max)),
            connection_slots: Arc::new(Semaphore::new(max * 4 + 16)),
            network,
            peers,
            store,
            state,
            stats: Arc::new(Stats::default()),
            audit,
        }
    }

    /// The peers as loaded now.
    pub fn peers(&self) -> Arc<PeersFile> {
        match self.peers.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The sockets the SCP accepts on: plaintext, TLS, or both.
pub struct Listeners {
    /// Plaintext DICOM listener; None when plaintext is off.
    pub plain: Option<TcpListener>,
    /// DICOM TLS listener; None when TLS is off.
    pub tls: Option<TlsListener>,
}

/// A listener whose connections start with a TLS handshake.
pub struct TlsListener {
    /// The bound TCP socket.
    pub listener: TcpListener,
    /// The TLS server configuration (node certificate, client verification).
    pub acceptor: crate::tls::TlsAcceptor,
    /// Time a client has to complete the TLS handshake before the connection is closed.
    pub handshake_timeout: Duration,
}

impl From<TcpListener> for Listeners {
    fn from(plain: TcpListener) -> Listeners {
        Listeners {
            plain: Some(plain),
            tls: None,
        }
    }
}

/// Accepts on `l`, or never when there is none.
async fn accept_on(
    l: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts connections until `shutdown` turns true, then waits (bounded)
/// for the associations in flight to finish their current work.
pub async fn run(
    node: Arc<ScpContext>,
    listeners: impl Into<Listeners>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listeners: Listeners = listeners.into();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = accept_on(listeners.plain.as_ref()) => {
                match accepted {
                    Ok((stream, addr)) => spawn_connection(&node, &mut tasks, stream, addr, None),
                    Err(e) => accept_failed(e).await,
                }
            }
            accepted = accept_on(listeners.tls.as_ref().map(|t| &t.listener)) => {
                match accepted {
                    Ok((stream, addr)) => spawn_connection(&node, &mut tasks, stream, addr, listeners.tls.as_ref()),
                    Err(e) => accept_failed(e).await,
                }
            }
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listeners);
    info!(
        in_flight = tasks.len(),
        "no longer accepting associations; waiting for those in flight"
    );
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                warn!(left = tasks.len(), "associations still open after 30 s; closing them");
                tasks.abort_all();
                break;
            }
        }
    }
}

async fn accept_failed(e: std::io::Error) {
    // EMFILE and friends: back off instead of spinning.
    warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn spawn_connection(
    node: &Arc<ScpContext>,
    tasks: &mut JoinSet<()>,
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    tls: Option<&TlsListener>,
) {
    let Ok(slot) = node.connection_slots.clone().try_acquire_owned() else {
        warn!(peer = %addr, "too many connections awaiting negotiation; closing this one");
        return;
    };
    if let Err(e) = stream.set_nodelay(true) {
        warn!(peer = %addr, error = %e, "cannot set TCP_NODELAY");
    }
    let node = node.clone();
    let tls = tls.map(|t| (t.acceptor.clone(), t.handshake_timeout));
    tasks.spawn(async move {
        // The handshake runs in the connection's task, holding its
        // pre-negotiation slot, so slow handshakes never stall accepting.
        let conn: crate::tls::Connection = match tls {
            None => Box::new(stream),
            Some((acceptor, timeout)) => {
                match crate::tls::accept(&acceptor, stream, addr, timeout).await {
                    Ok(c) => c,
                    Err(e) => {
                        tls_refused(&node, addr, &e);
                        return;
                    }
                }
            }
        };
        association::handle(node, conn, addr, slot).await;
    });
}

/// A TLS client refused before any association: plaintext on the TLS port,
/// an untrusted or missing certificate, or a silent client.
fn tls_refused(node: &ScpContext, addr: SocketAddr, e: &std::io::Error) {
    let reason = match e.kind() {
        // A port scan or health check: connect and close, nothing sent. As
        // on the plaintext port, it is counted but not worth an alert.
        std::io::ErrorKind::UnexpectedEof => {
            Stats::add(&node.stats.junk_connections, 1);
            tracing::debug!(peer = %addr, error = %e, "closed before a TLS handshake");
            return;
        }
        std::io::ErrorKind::TimedOut => "tls_handshake_timeout",
        _ => "tls_handshake",
    };
    warn!(peer = %addr, error = %e, "TLS handshake failed; connection refused");
    node.stats.failure(reason);
    node.audit.record(crate::audit::Event {
        event: "SecurityAlert",
        action: "tls-handshake-failed",
        peer: addr.to_string(),
        outcome: e.to_string(),
        ..Default::default()
    });
}
