//! The running node's shared handles: [`Node`], what every part of a
//! serving process shares (store, state database, pipeline, outbound queue,
//! counters, the SCP's context). [`crate::server`] assembles one from the
//! configuration and takes it down; the SCP, the admin socket, the HTTP
//! server and retention are handed it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::peers::PeersFile;
use crate::scp::NetworkSection;
use crate::scp::{ScpContext, SharedPeers, Stats};
use crate::state::StateDb;
use crate::store::Store;

/// Everything the parts of a serving node share: the SCP's context and the
/// same handles for the HTTP server, the admin socket, retention and the
/// service manager's notifications.
pub struct Node {
    /// The AE title this node answers to as an SCP and calls from as an SCU.
    pub ae_title: String,
    /// The peers file as loaded; the SCP reads the same (see
    /// `service::reload_peers`).
    pub peers: SharedPeers,
    /// The DICOM store: instance files under the data directory and their index.
    pub store: Arc<Store>,
    /// The state database: associations, pipeline jobs, outbound queue.
    pub state: Arc<StateDb>,
    /// The SCP's counters, reset at each start.
    pub stats: Arc<Stats>,
    /// Monotonic time of the start, for uptime.
    pub started: Instant,
    /// Wall-clock time of the start (RFC 3339, UTC).
    pub started_at: String,
    /// The course pipeline fed by this node's store, when it runs one.
    pub pipeline: Option<Arc<crate::pipeline::Pipeline>>,
    /// The outbound queue (results and routed instances).
    pub exporter: Option<Arc<crate::export::Exporter>>,
    /// The audit log every part writes security-relevant events to.
    pub audit: Arc<crate::audit::AuditLog>,
    /// What the SCP's association tasks share.
    pub scp: Arc<ScpContext>,
}

impl Node {
    /// A node without pipeline or outbound queue; see [`Node::with_pipeline`]
    /// and [`Node::with_exporter`].
    pub fn new(
        ae_title: String,
        network: NetworkSection,
        peers: PeersFile,
        store: Arc<Store>,
        state: Arc<StateDb>,
        audit: Arc<crate::audit::AuditLog>,
    ) -> Node {
        let peers: SharedPeers = Arc::new(RwLock::new(Arc::new(peers)));
        let scp = Arc::new(ScpContext::new(
            ae_title.clone(),
            network,
            peers.clone(),
            store.clone(),
            state.clone(),
            audit.clone(),
        ));
        Node {
            ae_title,
            peers,
            store,
            state,
            stats: scp.stats.clone(),
            started: Instant::now(),
            started_at: crate::time::now_rfc3339(),
            pipeline: None,
            exporter: None,
            audit,
            scp,
        }
    }

    /// The node with its outbound queue.
    pub fn with_exporter(mut self, e: Arc<crate::export::Exporter>) -> Node {
        self.exporter = Some(e);
        self
    }

    /// The node with its course pipeline.
    pub fn with_pipeline(mut self, p: Arc<crate::pipeline::Pipeline>) -> Node {
        self.pipeline = Some(p);
        self
    }

    /// The peers as loaded now.
    pub fn peers(&self) -> Arc<PeersFile> {
        self.scp.peers()
    }

    /// The handles a purge by this node needs.
    pub fn retention_handles(&self) -> crate::retention::LiveHandles {
        crate::retention::LiveHandles {
            state: self.state.clone(),
            store: self.store.clone(),
            pipeline: self.pipeline.clone(),
            audit: self.audit.clone(),
        }
    }

    /// Associations open now.
    pub fn active_associations(&self) -> u64 {
        self.stats.active_associations.load(Ordering::Relaxed)
    }
}
