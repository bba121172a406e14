//! Running under a service manager: systemd's notify protocol (READY, STATUS,
//! WATCHDOG) and reloading the peers file on SIGHUP or when it changes on
//! disk, without touching open associations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::config;
use crate::scp::Node;

/// Sends one sd_notify message when systemd asked for them (`NOTIFY_SOCKET`);
/// a no-op otherwise. Failures are logged, never fatal.
pub fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "sd_notify: no socket");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        // Abstract namespace socket.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), Path::new(&path))
    };
    if let Err(e) = result {
        warn!(error = %e, "sd_notify failed");
    }
}

/// Replaces the node's peers with the file's, when it parses and validates.
pub fn reload_peers(node: &Node, path: &Path, trigger: &str) -> bool {
    // A zero-length file is an editor or a copy caught mid-write far more
    // often than a wish to refuse every sender; the next event reloads.
    if std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(false)
    {
        warn!(path = %path.display(), trigger, "peers file is empty; keeping the previous peers");
        return false;
    }
    match config::load_peers(path) {
        Ok(p) => {
            let n = p.peers.len();
            let p = Arc::new(p);
            if let Some(e) = &node.exporter {
                e.set_peers(p.clone());
            }
            *node.peers.write().unwrap_or_else(|e| e.into_inner()) = p;
            info!(path = %path.display(), peers = n, trigger, "peers reloaded");
            true
        }
        Err(e) => {
            error!(path = %path.display(), errors = %e, trigger, "peers file invalid; keeping the previous peers");
            false
        }
    }
}

/// Reloads the peers file on SIGHUP and whenever the file changes (editors
/// often write a new file and rename it over the old one, so the directory
/// is watched). Runs until the process ends.
/// Re-reads the routing rules from the config file.
pub fn reload_routing(node: &Node, config_path: &Path) {
    match config::load_config(config_path) {
        Ok(cfg) => {
            if let Some(e) = &node.exporter {
                match e.set_rules(&cfg.routing) {
                    Ok(()) => info!(rules = cfg.routing.len(), "routing rules reloaded"),
                    Err(err) => {
                        error!(error = %err, "routing rules invalid; keeping the previous ones")
                    }
                }
            }
        }
        Err(e) => {
            error!(path = %config_path.display(), errors = %e, "config invalid; keeping the previous routing rules")
        }
    }
}

pub fn spawn_reloader(
    node: Arc<Node>,
    peers_path: PathBuf,
    config_path: Option<PathBuf>,
) -> Result<Option<notify::RecommendedWatcher>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let watcher = {
        let tx = tx.clone();
        let name = peers_path.file_name().map(|n| n.to_os_string());
        let dir = peers_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                let ours = ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
                if ours && (ev.kind.is_modify() || ev.kind.is_create()) {
                    let _ = tx.send("file change");
                }
            }
        })?;
        match w.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot watch the peers file; SIGHUP still reloads it");
                None
            }
        }
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let why = tokio::select! {
                _ = hup.recv() => "SIGHUP",
                Some(w) = rx.recv() => w,
            };
            // Let a burst of writes settle into one reload.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            debug!(trigger = why, "reloading peers");
            reload_peers(&node, &peers_path, why);
            if why == "SIGHUP" {
                if let Some(c) = &config_path {
                    reload_routing(&node, c);
                }
            }
        }
    });
    Ok(watcher)
}

/// READY=1 once listening, then STATUS= every few seconds and WATCHDOG=1 at
/// half the interval systemd asked for.
pub fn spawn_notifier(node: Arc<Node>) {
    sd_notify("READY=1");
    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| Duration::from_micros(us / 2));
    tokio::spawn(async move {
        let period = watchdog
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5));
        loop {
            tokio::time::sleep(period).await;
            let queued = node
                .pipeline
                .as_ref()
                .and_then(|p| p.status().ok())
                .map(|s| (s.queue_depth, s.running))
                .unwrap_or((0, 0));
            let mut msg = format!(
                "STATUS={} association(s) open, {} stage run(s) queued, {} running",
                node.active_associations(),
                queued.0,
                queued.1
            );
            if watchdog.is_some() {
                msg.push_str("\nWATCHDOG=1");
            }
            sd_notify(&msg);
        }
    });
}
