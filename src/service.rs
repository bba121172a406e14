//! Running under a service manager: systemd's notify protocol (READY, STATUS,
//! WATCHDOG) and reloading the peers file and the routing rules on SIGHUP or
//! when their file changes on disk, without touching open associations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use notify::{RecursiveMode, Watcher};
pub use sd_notify::NotifyState;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::config;
use crate::node::Node;

/// Sends systemd's notify messages (`READY=1`, `STOPPING=1`, `STATUS=`,
/// `WATCHDOG=1`) when it asked for them (`NOTIFY_SOCKET`); a no-op
/// otherwise. Failures are logged, never fatal.
pub fn sd_notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
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

/// Re-reads the routing rules from the config file. Only the rules are
/// applied: the rest of the config (ports, data dir, stages) needs a restart.
pub fn reload_routing(node: &Node, config_path: &Path, trigger: &str) {
    // Same reasoning as for the peers file, and worse if believed: an empty
    // config is a valid one with no rules, and would silently stop routing.
    if std::fs::metadata(config_path)
        .map(|m| m.len() == 0)
        .unwrap_or(false)
    {
        warn!(path = %config_path.display(), trigger, "config file is empty; keeping the previous routing rules");
        return;
    }
    match config::load_config(config_path) {
        Ok(cfg) => {
            if let Some(e) = &node.exporter {
                match e.set_rules(&cfg.routing) {
                    Ok(()) => info!(rules = cfg.routing.len(), trigger, "routing rules reloaded"),
                    Err(err) => {
                        error!(error = %err, trigger, "routing rules invalid; keeping the previous ones")
                    }
                }
            }
        }
        Err(e) => {
            error!(path = %config_path.display(), errors = %e, trigger, "config invalid; keeping the previous routing rules")
        }
    }
}

/// What changed on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changed {
    Peers,
    Config,
}

/// The directory a file lives in. Editors often write a new file and rename
/// it over the old one, which a watch on the file itself would miss.
fn dir_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Reloads the peers file and the routing rules on SIGHUP, and each when its
/// own file changes. Runs until the process ends; the returned watcher must
/// be kept alive for the file watch to work.
pub fn spawn_reloader(
    node: Arc<Node>,
    peers_path: PathBuf,
    config_path: Option<PathBuf>,
) -> Result<Option<notify::RecommendedWatcher>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Changed>();
    let watched: Vec<(PathBuf, Changed)> = std::iter::once((peers_path.clone(), Changed::Peers))
        .chain(config_path.iter().map(|c| (c.clone(), Changed::Config)))
        .collect();
    let watcher = {
        let names: Vec<(PathBuf, std::ffi::OsString, Changed)> = watched
            .iter()
            .filter_map(|(p, c)| Some((dir_of(p), p.file_name()?.to_os_string(), *c)))
            .collect();
        let routes = names.clone();
        let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            if !(ev.kind.is_modify() || ev.kind.is_create()) {
                return;
            }
            for (dir, name, what) in &routes {
                // Events name files by the watched directory's path, so the
                // directory must match too when both files share a name.
                let ours = ev.paths.iter().any(|p| {
                    p.file_name() == Some(name.as_os_str())
                        && p.parent().is_none_or(|d| same_dir(d, dir))
                });
                if ours {
                    let _ = tx.send(*what);
                }
            }
        })?;
        let mut dirs: Vec<PathBuf> = names.iter().map(|(d, _, _)| d.clone()).collect();
        dirs.sort();
        dirs.dedup();
        let mut any = false;
        for dir in &dirs {
            match w.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => any = true,
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "cannot watch for changes; SIGHUP still reloads")
                }
            }
        }
        any.then_some(w)
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let (why, mut peers, mut routing) = tokio::select! {
                _ = hup.recv() => ("SIGHUP", true, true),
                Some(c) = rx.recv() => ("file change", c == Changed::Peers, c == Changed::Config),
            };
            // Let a burst of writes settle into one reload.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Ok(c) = rx.try_recv() {
                peers |= c == Changed::Peers;
                routing |= c == Changed::Config;
            }
            debug!(trigger = why, peers, routing, "reloading");
            if peers {
                reload_peers(&node, &peers_path, why);
            }
            if routing {
                if let Some(c) = &config_path {
                    reload_routing(&node, c, why);
                }
            }
        }
    });
    Ok(watcher)
}

/// Whether two directory paths name the same directory: the watcher reports
/// absolute paths while the config may name a relative one.
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

/// READY=1 once listening, then STATUS= every few seconds and WATCHDOG=1 at
/// half the interval systemd asked for.
pub fn spawn_notifier(node: Arc<Node>) {
    sd_notify(&[NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
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
            let outbound = node.exporter.as_ref().map(|e| e.queued()).unwrap_or(0);
            let status = format!(
                "{} association(s) open, {} stage run(s) queued, {} running, {} outbound queued",
                node.active_associations(),
                queued.0,
                queued.1,
                outbound
            );
            let mut states = vec![NotifyState::Status(&status)];
            if watchdog.is_some() {
                states.push(NotifyState::Watchdog);
            }
            sd_notify(&states);
        }
    });
}
