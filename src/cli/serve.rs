//! `rtnode serve`: the node under a service manager: configuration and
//! command-line overrides, the reloaders and systemd notifications, and a
//! clean stop on SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rtnode::config::{self, Config, LogFormat};
use rtnode::peers::PeersFile;
use tracing::{info, warn};

use super::{init_logging, runtime};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Node configuration file (default conf/rtnode.yaml if present, else
    /// the embedded defaults). A file named here must exist.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Port to listen on (0 picks a free one; see node.json in the data dir).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to bind.
    #[arg(long)]
    pub bind: Option<String>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Our AE title.
    #[arg(long)]
    pub ae_title: Option<String>,
    /// Peers file (default: the one the configuration names).
    #[arg(long)]
    pub peers: Option<PathBuf>,
    /// Seconds without a new instance before a complete course is processed.
    #[arg(long)]
    pub stable_age: Option<u64>,
    /// Address of the HTTP server (health, metrics, API), over
    /// `http.address`; an empty string turns it off.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
}

fn load_for_serve(args: &ServeArgs) -> Result<(Config, PeersFile)> {
    let mut cfg = config::load_named_or_default(args.config.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(p) = args.port {
        cfg.node.port = p;
    }
    if let Some(b) = &args.bind {
        cfg.node.bind = b.clone();
    }
    if let Some(d) = &args.data_dir {
        cfg.node.data_dir = d.clone();
    }
    if let Some(s) = args.stable_age {
        cfg.pipeline.stable_age_s = s;
    }
    if let Some(h) = &args.http {
        cfg.http.address = h.clone();
        // The config file's checks ran before the override.
        if let Some((key, msg)) = cfg.http.problems().into_iter().next() {
            anyhow::bail!("--http: http.{key}: {msg}");
        }
    }
    if let Some(ae) = &args.ae_title {
        rtnode::peers::check_ae_title(ae).map_err(anyhow::Error::msg)?;
        cfg.node.ae_title = ae.clone();
    }
    let peers_path = args
        .peers
        .clone()
        .unwrap_or_else(|| cfg.resolved_peers_file());
    let peers = config::load_peers(&peers_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let errors = config::check_peers_against_config(&cfg, &peers, &peers_path);
    if !errors.is_empty() {
        anyhow::bail!("{}", config::ConfigErrors(errors));
    }
    Ok((cfg, peers))
}

/// `rtnode serve`.
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let (cfg, peers) = load_for_serve(&args)?;
    init_logging(
        cfg.logging.log_format().unwrap_or(LogFormat::Text),
        &cfg.logging.level,
    );
    if cfg.source.is_none() {
        warn!(
            path = config::DEFAULT_CONFIG_PATH,
            "no config file; running on embedded defaults"
        );
    }
    let peers_path = args
        .peers
        .clone()
        .unwrap_or_else(|| cfg.resolved_peers_file());
    runtime()?.block_on(async move {
        let running = rtnode::server::start(&cfg, peers).await?;
        let config_path = cfg.source.clone();
        let _watcher =
            rtnode::service::spawn_reloader(running.node.clone(), peers_path, config_path)?;
        rtnode::service::spawn_notifier(running.node.clone());
        wait_for_signal().await?;
        info!("shutting down");
        rtnode::service::sd_notify(&[rtnode::service::NotifyState::Stopping]);
        running.stop().await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
