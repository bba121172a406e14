//! The tools around a node: `send` (C-STORE to a peer), `validate` and
//! `doctor` (check a setup), `http-token`, and `synth` and `demo` (test data
//! and a try-out with nothing to configure).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rtnode::config::{self, LogFormat};
use rtnode::scu::{self, Target};

use super::{init_logging, runtime};

#[derive(clap::Args)]
pub struct SendArgs {
    /// The receiver, as AE@HOST:PORT.
    #[arg(long)]
    pub to: Target,
    /// Our calling AE title.
    #[arg(long, default_value = "RTNODE_SCU")]
    pub calling_ae: String,
    /// Largest PDU we accept from the peer.
    #[arg(long, default_value_t = 262_144)]
    pub max_pdu: u32,
    /// Node configuration: its network.tls certificate is ours, and its
    /// peers file says whether the receiver wants TLS (`tls: true`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// TLS even when the peers file does not ask for it (needs --config).
    #[arg(long)]
    pub tls: bool,
    /// Files or folders to send.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Output folder (created; must not already hold a series).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of slices.
    #[arg(long, default_value_t = 64)]
    pub slices: u32,
    /// Rows and columns per slice.
    #[arg(long, default_value_t = 256)]
    pub rows: u16,
    /// Also write RS.dcm, RP.dcm and RD.dcm: analytic structures, a
    /// prescription and an exactly linear dose (a complete course).
    #[arg(long)]
    pub rt: bool,
    /// Reproducible noise inside the body, standard deviation in HU (texture for radiomics).
    #[arg(long, default_value_t = 0.0)]
    pub noise_hu: f64,
    /// PatientID (one per course when synthesising a cohort).
    #[arg(long)]
    pub patient_id: Option<String>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Number of CT slices to synthesise.
    #[arg(long, default_value_t = 64)]
    pub slices: u32,
    /// Rows and columns per slice.
    #[arg(long, default_value_t = 256)]
    pub rows: u16,
    /// Keep the temporary data directory.
    #[arg(long)]
    pub keep: bool,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Node configuration file.
    #[arg(long, default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Peers file (default: the one the configuration names).
    #[arg(long)]
    pub peers: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Node configuration file.
    #[arg(long, default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Peers file (default: the one the configuration names).
    #[arg(long)]
    pub peers: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct HttpTokenArgs {
    /// The token's name: who is recorded in the audit trail.
    #[arg(long)]
    pub name: String,
    /// read (every GET) or operator (also actions such as retrying
    /// dead letters).
    #[arg(long)]
    pub role: rtnode::http::tokens::Role,
    /// AE title that stands for this client.
    #[arg(long)]
    pub ae_title: Option<String>,
}

/// `rtnode send`.
pub fn send(args: SendArgs) -> Result<ExitCode> {
    let SendArgs {
        mut to,
        calling_ae,
        max_pdu,
        config,
        tls,
        paths,
    } = args;
    rtnode::peers::check_ae_title(&calling_ae).map_err(anyhow::Error::msg)?;
    init_logging(LogFormat::Text, "warn");
    let node = match &config {
        Some(c) => Some(config::validate(c, None).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    to.tls = scu::tls_for_send(
        &to,
        node.as_ref()
            .map(|(cfg, peers)| (cfg.network.tls.as_ref(), peers)),
        tls,
    )
    .map_err(anyhow::Error::msg)?;
    let files = scu::collect_files(&paths)?;
    let outcomes = runtime()?.block_on(scu::send(&to, &calling_ae, &files, max_pdu));
    let mut failed = 0;
    for o in &outcomes {
        let status = o
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "not sent".into());
        let detail = o
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        println!("{}\t{}{}", o.path.display(), status, detail);
        failed += usize::from(!o.ok());
    }
    println!(
        "{} sent, {} failed, {} in all",
        outcomes.len() - failed,
        failed,
        outcomes.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `rtnode synth`.
pub fn synth(args: SynthArgs) -> Result<ExitCode> {
    let SynthArgs {
        out,
        slices,
        rows,
        rt,
        noise_hu,
        patient_id,
    } = args;
    let defaults = rtnode::synth::SynthOptions::default().with_rows(rows);
    let opts = rtnode::synth::SynthOptions {
        slices,
        noise_hu,
        patient_id: patient_id.unwrap_or(defaults.patient_id.clone()),
        ..defaults
    };
    let s = rtnode::synth::write_ct_series(&out, &opts)?;
    println!(
        "wrote {} CT slices of {rows}x{rows} to {} (series {})",
        s.files.len(),
        out.display(),
        s.series_instance_uid
    );
    if rt {
        let r = rtnode::synth::rt::write_rt_objects(&out, &s, &opts)?;
        println!(
            "wrote {}, {} and {}",
            r.rtstruct.display(),
            r.rtplan.display(),
            r.rtdose.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `rtnode demo`.
pub fn demo(args: DemoArgs) -> Result<ExitCode> {
    let DemoArgs { slices, rows, keep } = args;
    init_logging(LogFormat::Text, "warn");
    runtime()?.block_on(rtnode::demo::run(rtnode::demo::DemoOptions {
        slices,
        rows,
        keep,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `rtnode validate`.
pub fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let ValidateArgs { config, peers } = args;
    match config::validate(&config, peers.as_deref()) {
        Ok((cfg, p)) => {
            println!(
                "{}: OK ({} as {} on {}:{}); {}: OK ({} peers)",
                config.display(),
                cfg.node.data_dir.display(),
                cfg.node.ae_title,
                cfg.node.bind,
                cfg.node.port,
                peers.unwrap_or_else(|| cfg.resolved_peers_file()).display(),
                p.peers.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `rtnode doctor`.
pub fn doctor(args: DoctorArgs) -> Result<ExitCode> {
    let DoctorArgs { config, peers } = args;
    init_logging(LogFormat::Text, "error");
    let findings = runtime()?.block_on(rtnode::doctor::run(&config, peers.as_deref()));
    let mut worst = rtnode::doctor::Level::Ok;
    for f in &findings {
        let tag = match f.level {
            rtnode::doctor::Level::Ok => "OK  ",
            rtnode::doctor::Level::Warn => "WARN",
            rtnode::doctor::Level::Fail => "FAIL",
        };
        println!("{tag}  {:<13} {}", f.check, f.detail);
        worst = worst.max(f.level);
    }
    Ok(if worst == rtnode::doctor::Level::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `rtnode http-token`.
pub fn http_token(args: HttpTokenArgs) -> Result<ExitCode> {
    let HttpTokenArgs {
        name,
        role,
        ae_title,
    } = args;
    if name.trim().is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    if let Some(ae) = &ae_title {
        rtnode::peers::check_ae_title(ae).map_err(anyhow::Error::msg)?;
    }
    let token = rtnode::http::tokens::generate();
    println!("token: {token}");
    println!("add to the tokens file (under `tokens:`):");
    println!(
        "{}",
        rtnode::http::tokens::entry_line(&name, role, ae_title.as_deref(), &token)
    );
    Ok(ExitCode::SUCCESS)
}
