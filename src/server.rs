//! Starting and stopping a serving node: [`start`] builds the [`Node`]
//! from its configuration (store, state database, pipeline, outbound
//! queue), binds the DICOM listeners, the admin socket and the HTTP server,
//! writes `node.json`, and [`RunningNode`] takes it all down cleanly. It
//! sits above `node`, `scp`, `admin` and `http`, which are handed the
//! `Node` it made.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::export::Exporter;
use crate::node::Node;
use crate::peers::PeersFile;
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::scp;
use crate::state::StateDb;
use crate::store::{Store, StoreOptions};

/// A started node: its listeners and background tasks, until `RunningNode::stop`.
pub struct RunningNode {
    /// The DICOM listen address actually bound (the plaintext one, or the TLS one when plaintext is off); the port is real even for `--port 0`.
    pub addr: SocketAddr,
    /// The shared handles of this node.
    pub node: Arc<Node>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    admin: Option<JoinHandle<()>>,
    /// Accept loops of the HTTP server and the metrics-only address.
    http: Vec<JoinHandle<()>>,
    scheduler: std::thread::JoinHandle<()>,
    retention: Option<crate::retention::RetentionThread>,
    data_dir: PathBuf,
}

/// Written at start so scripts and tests find the port chosen for `--port 0`.
#[derive(Serialize)]
struct NodeFile<'a> {
    metrics: Option<String>,
    /// The HTTP server's address (health, metrics, API), when it runs.
    http: Option<String>,
    pid: u32,
    ae_title: &'a str,
    address: String,
    /// The plaintext port, or the TLS port when plaintext is off.
    port: u16,
    tls_port: Option<u16>,
    started_at: &'a str,
}

/// Path of `node.json` in `data_dir`, which a running node writes with its pid and bound ports.
pub fn node_file_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("node.json")
}

/// Starts a node from `cfg` and `peers`: opens store and state, starts pipeline, outbound queue, retention, and binds the DICOM, admin and HTTP listeners.
pub async fn start(cfg: &Config, peers: PeersFile) -> Result<RunningNode> {
    // The HTTP server's checks, TLS files and tokens, before anything opens
    // or listens: a bad one stops the start with its reason.
    let http_prepared = crate::http::prepare(&cfg.http)?;
    let data_dir = cfg.node.data_dir.clone();
    let opts = StoreOptions {
        data_dir: data_dir.clone(),
        fsync: cfg.storage.fsync,
        min_free_bytes: cfg.storage.min_free_bytes,
        index_cache_bytes: cfg.storage.index_cache_bytes(),
    };
    let store = tokio::task::spawn_blocking(move || Store::open(opts))
        .await
        .context("store start-up panicked")??;
    let state = Arc::new(StateDb::open(&data_dir)?);
    let peers = Arc::new(peers);
    let audit = Arc::new(crate::audit::AuditLog::open(&data_dir).context("opening the audit log")?);
    audit.record(crate::audit::Event {
        event: "ApplicationActivity",
        action: "started",
        called_ae: cfg.node.ae_title.clone(),
        ..Default::default()
    });
    let exporter = Exporter::open(
        state.clone(),
        cfg.export.clone(),
        &cfg.node.ae_title,
        peers.clone(),
        &cfg.routing,
        Some(audit.clone()),
    )?;
    exporter.set_tls(cfg.network.tls.clone());
    let stages = cfg.stages(Some(crate::stages::export::Export::new(exporter.clone())))?;
    let pipeline = Pipeline::with_registry(
        &data_dir,
        state.clone(),
        PipelineOptions::new(&cfg.pipeline, cfg.source_and_text(), false),
        stages,
    )?;
    pipeline.load_index(store.index().clone());
    {
        // Routing may read the stored file for tag rules: off the commit
        // thread, in its own.
        let (tx, rx) = std::sync::mpsc::channel::<crate::store::InstanceRecord>();
        let e = exporter.clone();
        let dir = data_dir.clone();
        std::thread::Builder::new()
            .name("router".into())
            .spawn(move || {
                while let Ok(rec) = rx.recv() {
                    e.route(&rec, &dir);
                }
            })?;
        let tx = std::sync::Mutex::new(tx);
        let p = pipeline.clone();
        store.set_listener(Arc::new(move |r| {
            p.on_instance(r);
            if let Ok(t) = tx.lock() {
                let _ = t.send(r.clone());
            }
        }));
    }
    let scheduler = pipeline.spawn()?;
    let bind = cfg
        .node
        .listen_addr()
        .context("node.bind is not an IP address")?;
    let (listeners, addr, tls_addr) = bind_listeners(cfg, bind).await?;
    let node = Arc::new(
        Node::new(
            cfg.node.ae_title.clone(),
            cfg.network.clone(),
            (*peers).clone(),
            Arc::new(store),
            state,
            audit,
        )
        .with_pipeline(pipeline)
        .with_exporter(exporter.clone()),
    );
    let admin = if cfg.network.admin_socket {
        let l = crate::admin::server::bind(&data_dir)?;
        Some(tokio::spawn(crate::admin::server::serve(
            l,
            node.clone(),
            addr.to_string(),
        )))
    } else {
        None
    };
    let scp_listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let metrics = crate::http::start_metrics_only(node.clone(), &cfg.network.metrics_address).await;
    let http = match http_prepared {
        None => None,
        Some(p) => {
            match crate::http::start(p, node.clone(), addr.to_string(), scp_listening.clone()).await
            {
                Ok(a) => Some(a),
                // As for metrics: a port already taken is a warning, not a
                // reason to refuse DICOM; /readyz then does not answer, which
                // an orchestrator notices.
                Err(e @ crate::http::HttpError::Bind { .. }) => {
                    warn!(error = %e, "HTTP server off");
                    None
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let nf = NodeFile {
        metrics: metrics.as_ref().map(|s| s.addr.to_string()),
        http: http.as_ref().map(|s| s.addr.to_string()),
        pid: std::process::id(),
        ae_title: &cfg.node.ae_title,
        address: addr.ip().to_string(),
        port: addr.port(),
        tls_port: tls_addr.map(|a| a.port()),
        started_at: &node.started_at,
    };
    std::fs::write(node_file_path(&data_dir), serde_json::to_vec_pretty(&nf)?)
        .context("writing node.json")?;
    exporter.spawn();
    let retention = match &cfg.storage.retention {
        Some(r) => {
            let policy = crate::retention::Policy {
                older_than: r.older_than().map_err(anyhow::Error::msg)?,
                check_every: r.check_every().map_err(anyhow::Error::msg)?,
            };
            info!(older_than = %r.older_than, check_every = %r.check_every, "retention policy on");
            Some(crate::retention::spawn(node.retention_handles(), policy)?)
        }
        None => None,
    };
    let (shutdown, rx) = watch::channel(false);
    let server = {
        let scp = node.scp.clone();
        tokio::spawn(async move {
            scp_listening.store(true, std::sync::atomic::Ordering::Relaxed);
            scp::run(scp, listeners, rx).await;
            scp_listening.store(false, std::sync::atomic::Ordering::Relaxed);
        })
    };
    info!(
        ae_title = %cfg.node.ae_title,
        address = %addr,
        tls_address = tls_addr.map(|a| a.to_string()),
        data_dir = %data_dir.display(),
        fsync = cfg.storage.fsync,
        max_associations = cfg.network.max_associations,
        "listening"
    );
    Ok(RunningNode {
        addr,
        node,
        shutdown,
        server,
        admin,
        http: metrics.into_iter().chain(http).map(|s| s.task).collect(),
        scheduler,
        retention,
        data_dir,
    })
}

/// The plaintext and TLS listeners the config asks for, and the main
/// address (plaintext, or TLS when plaintext is off).
async fn bind_listeners(
    cfg: &Config,
    bind: SocketAddr,
) -> Result<(scp::Listeners, SocketAddr, Option<SocketAddr>)> {
    let tls = match &cfg.network.tls {
        None => None,
        Some(t) => {
            let server = crate::tls::server_config(t)
                .map_err(anyhow::Error::msg)
                .context("network.tls")?;
            let at = SocketAddr::new(bind.ip(), t.port);
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("binding the TLS port {at}"))?;
            info!(
                address = %listener.local_addr()?,
                client_certificate = if t.require_client_certificate { "required" } else { "verified if presented" },
                "DICOM over TLS"
            );
            Some(scp::TlsListener {
                listener,
                acceptor: crate::tls::TlsAcceptor::from(server),
                handshake_timeout: t.handshake_timeout(),
            })
        }
    };
    let plain = match &cfg.network.tls {
        Some(t) if !t.plaintext => None,
        _ => Some(
            TcpListener::bind(bind)
                .await
                .with_context(|| format!("binding {bind}"))?,
        ),
    };
    let tls_addr = match &tls {
        Some(t) => Some(t.listener.local_addr()?),
        None => None,
    };
    let addr = match (&plain, tls_addr) {
        (Some(p), _) => p.local_addr()?,
        (None, Some(t)) => t,
        (None, None) => anyhow::bail!("no listener configured"),
    };
    Ok((scp::Listeners { plain, tls }, addr, tls_addr))
}

impl RunningNode {
    /// Stops accepting, lets associations in flight finish, then closes the
    /// store so the next start needs no recovery scan.
    pub async fn stop(self) -> Result<()> {
        // No new HTTP connections while the store closes.
        for t in &self.http {
            t.abort();
        }
        let _ = self.shutdown.send(true);
        if let Err(e) = self.server.await {
            warn!(error = %e, "server task ended abnormally");
        }
        if let Some(a) = self.admin {
            a.abort();
            let _ = a.await;
        }
        let _ = std::fs::remove_file(crate::admin::socket_path(&self.data_dir));
        let _ = std::fs::remove_file(node_file_path(&self.data_dir));
        let node = self.node;
        node.audit.record(crate::audit::Event {
            event: "ApplicationActivity",
            action: "stopped",
            called_ae: node.ae_title.clone(),
            ..Default::default()
        });
        let scheduler = self.scheduler;
        let retention = self.retention;
        if let Some(p) = &node.pipeline {
            p.stop();
        }
        tokio::task::spawn_blocking(move || -> Result<()> {
            // A stage still running is recorded as running and re-queued at
            // the next start (stages are idempotent).
            let _ = scheduler.join();
            // A purge in progress finishes before the store closes.
            if let Some(r) = retention {
                r.stop();
            }
            node.state.flush()?;
            node.store.close()
        })
        .await
        .context("store shutdown panicked")??;
        info!("stopped cleanly");
        Ok(())
    }
}
