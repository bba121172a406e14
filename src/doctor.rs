//! `rtnode doctor`: what an operator checks before (and after) starting the
//! service, each line OK, WARN or FAIL.

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::peers::PeersFile;
use crate::scu::{self, Target};

/// How serious a finding is; ordered, so the worst of a run is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The check passed.
    Ok,
    /// Works, but something deserves attention (a certificate near expiry, free space under 4× the minimum).
    Warn,
    /// The node cannot run correctly as configured; `rtnode doctor` exits non-zero.
    Fail,
}

/// The result of one check: one line of `rtnode doctor` output.
#[derive(Debug, Clone)]
pub struct Finding {
    /// How serious it is.
    pub level: Level,
    /// Short name of what was checked (for example "config", "data dir", a peer's AE title).
    pub check: String,
    /// What was found, for a person to read.
    pub detail: String,
}

fn finding(level: Level, check: &str, detail: impl Into<String>) -> Finding {
    Finding {
        level,
        check: check.into(),
        detail: detail.into(),
    }
}

fn data_dir_checks(cfg: &Config, out: &mut Vec<Finding>) {
    let dir = &cfg.node.data_dir;
    if let Err(e) = std::fs::create_dir_all(dir) {
        out.push(finding(
            Level::Fail,
            "data_dir",
            format!("cannot create {}: {e}", dir.display()),
        ));
        return;
    }
    let probe = dir.join(format!(".doctor-{:08x}", rand::random::<u32>()));
    let written = std::fs::write(&probe, b"rtnode doctor\n")
        .and_then(|_| std::fs::File::open(&probe)?.sync_all());
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(()) => out.push(finding(
            Level::Ok,
            "data_dir",
            format!("{} is writable and syncs", dir.display()),
        )),
        Err(e) => out.push(finding(
            Level::Fail,
            "data_dir",
            format!("{} is not writable: {e}", dir.display()),
        )),
    }
    match crate::store::free_bytes(dir) {
        Ok(free) if free < cfg.storage.min_free_bytes => out.push(finding(
            Level::Fail,
            "free_space",
            format!(
                "{free} bytes free, below storage.min_free_bytes {}: C-STOREs would be refused",
                cfg.storage.min_free_bytes
            ),
        )),
        Ok(free) if free < cfg.storage.min_free_bytes.saturating_mul(4) => out.push(finding(
            Level::Warn,
            "free_space",
            format!("{:.1} GB free, near the low-watermark", free as f64 / 1e9),
        )),
        Ok(free) => out.push(finding(
            Level::Ok,
            "free_space",
            format!("{:.1} GB free", free as f64 / 1e9),
        )),
        Err(e) => out.push(finding(
            Level::Fail,
            "free_space",
            format!("cannot read free space: {e}"),
        )),
    }
}

fn port_check(cfg: &Config, out: &mut Vec<Finding>) {
    let Ok(addr) = cfg.node.listen_addr() else {
        out.push(finding(
            Level::Fail,
            "port",
            format!("node.bind {:?} is not an address", cfg.node.bind),
        ));
        return;
    };
    let mut ports = Vec::new();
    match &cfg.network.tls {
        Some(t) if !t.plaintext => {}
        _ => ports.push(("port", addr)),
    }
    if let Some(t) = &cfg.network.tls {
        ports.push(("tls_port", std::net::SocketAddr::new(addr.ip(), t.port)));
    }
    for (check, addr) in ports {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => out.push(finding(Level::Ok, check, format!("{addr} can be bound"))),
            Err(e) => {
                // A running node holds its own port; that is not a problem.
                let running = crate::admin::client::status(&cfg.node.data_dir)
                    .map(|r| r.server_state == "running")
                    .unwrap_or(false);
                if running {
                    out.push(finding(
                        Level::Ok,
                        check,
                        format!("{addr} is held by the running rtnode"),
                    ));
                } else {
                    out.push(finding(
                        Level::Fail,
                        check,
                        format!("cannot bind {addr}: {e}"),
                    ));
                }
            }
        }
    }
}

async fn peer_checks(cfg: &Config, peers: &PeersFile, out: &mut Vec<Finding>) {
    for p in &peers.peers {
        let target = match Target::for_peer(p, cfg.network.tls.as_ref()) {
            Ok(t) => t,
            Err(e) => {
                out.push(finding(Level::Fail, "peer", e));
                continue;
            }
        };
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            scu::echo(&target, &cfg.node.ae_title),
        )
        .await;
        let (ok, detail) = match r {
            Ok(Ok(crate::dicom::status::DimseStatus::SUCCESS)) => (
                true,
                format!("{}@{}:{} answers C-ECHO", p.ae_title, p.host, p.port),
            ),
            Ok(Ok(s)) => (
                false,
                format!(
                    "{}@{}:{} answered C-ECHO with status {s:04X}",
                    p.ae_title, p.host, p.port
                ),
            ),
            Ok(Err(e)) => (
                false,
                format!("{}@{}:{}: {e:#}", p.ae_title, p.host, p.port),
            ),
            Err(_) => (
                false,
                format!("{}@{}:{}: no answer within 5 s", p.ae_title, p.host, p.port),
            ),
        };
        let level = match (ok, p.receives_results) {
            (true, _) => Level::Ok,
            // Results go there, so it must answer.
            (false, true) => Level::Fail,
            // A peer that only sends to us need not listen.
            (false, false) => Level::Warn,
        };
        out.push(finding(level, "peer", detail));
    }
}

/// Our certificate and the CA: the config check already proved they load;
/// what is left is time. A certificate that expires takes every TLS peer
/// down at once, so a month ahead is a warning.
fn tls_checks(cfg: &Config, out: &mut Vec<Finding>) {
    let Some(tls) = &cfg.network.tls else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut files = vec![("certificate", &tls.certificate)];
    if let Some(ca) = &tls.ca {
        files.push(("ca", ca));
    }
    for (what, path) in files {
        let certs = match crate::tls::load_certs(path) {
            Ok(c) => c,
            Err(e) => {
                out.push(finding(Level::Fail, "tls", e));
                continue;
            }
        };
        // The leaf of our chain; every certificate of a CA bundle.
        let n = if what == "certificate" {
            1
        } else {
            certs.len()
        };
        for (i, cert) in certs.iter().take(n).enumerate() {
            let label = format!("{what} {} #{}", path.display(), i + 1);
            let (level, detail) = match crate::tls::not_after(cert) {
                None => (Level::Warn, format!("{label}: cannot read its expiry")),
                Some(t) if t <= now => (Level::Fail, format!("{label} has expired")),
                Some(t) if t - now < 30 * 86_400 => (
                    Level::Warn,
                    format!("{label} expires in {} days", (t - now) / 86_400),
                ),
                Some(t) => (
                    Level::Ok,
                    format!("{label} valid for {} more days", (t - now) / 86_400),
                ),
            };
            out.push(finding(level, "tls", detail));
        }
    }
}

/// libtorch, CUDA devices and every configured model (loaded and run on
/// one patch), or what this build cannot do without the `torch` feature.
fn model_checks(cfg: &Config, out: &mut Vec<Finding>) {
    use crate::segmentation::model::CheckLevel;
    let checks = crate::segmentation::model_report(&cfg.segmentation, &cfg.base_dir());
    out.extend(checks.into_iter().map(|c| Finding {
        level: match c.level {
            CheckLevel::Ok => Level::Ok,
            CheckLevel::Warn => Level::Warn,
            CheckLevel::Fail => Level::Fail,
        },
        check: c.check,
        detail: c.detail,
    }));
}

/// Runs every check; `config_path` is validated with its peers file.
pub async fn run(config_path: &Path, peers_override: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    let (cfg, peers) = match crate::config::validate(config_path, peers_override) {
        Ok((c, p)) => {
            out.push(finding(
                Level::Ok,
                "config",
                format!("{} and its peers file are valid", config_path.display()),
            ));
            (c, p)
        }
        Err(errors) => {
            for e in errors.0 {
                out.push(finding(Level::Fail, "config", e.to_string()));
            }
            return out;
        }
    };
    data_dir_checks(&cfg, &mut out);
    port_check(&cfg, &mut out);
    tls_checks(&cfg, &mut out);
    peer_checks(&cfg, &peers, &mut out).await;
    model_checks(&cfg, &mut out);
    out
}
