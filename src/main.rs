//! The `rtnode` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rtnode::config::{self, Config, LogFormat};
use rtnode::peers::PeersFile;
use rtnode::pipeline::ExecutorKind;
use rtnode::scu::{self, Target};
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "rtnode",
    version,
    about = "A DICOM network node for radiotherapy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExecutorArg {
    Local,
    Slurm,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: accept associations, store instances durably.
    Serve(ServeArgs),
    /// Show what the node holds and what it is doing (works while `serve` runs).
    Status {
        /// Data directory of the node.
        #[arg(long, default_value = "/var/lib/rtnode")]
        data_dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Redraw every second in place (text only) until interrupted.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
    },
    /// Run course assembly and the processing stages over a folder, no network.
    Process {
        /// Folder of DICOM files (searched recursively).
        dir: PathBuf,
        /// Output folder: becomes a data directory with courses/<id>/v<N>/…
        #[arg(long)]
        out: PathBuf,
        /// Node configuration file (for the pipeline settings; default
        /// conf/rtnode.yaml if present, else the embedded defaults). A file
        /// named here must exist.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where stage runs execute, over the config's `pipeline.executor`
        /// (`slurm`: sbatch jobs; OUT must be on the cluster's shared
        /// filesystem).
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
    },
    /// Run one stage of one course version from the job description the
    /// coordinator wrote (what a Slurm job runs; opens no database).
    RunStage {
        /// Data directory, as this machine sees it.
        #[arg(long)]
        data_dir: PathBuf,
        /// Course id.
        #[arg(long)]
        course: String,
        /// Result version.
        #[arg(long)]
        version: u32,
        /// Stage name.
        #[arg(long)]
        stage: String,
    },
    /// Send DICOM files and folders (recursively) to a peer with C-STORE.
    Send {
        /// The receiver, as AE@HOST:PORT.
        #[arg(long)]
        to: Target,
        /// Our calling AE title.
        #[arg(long, default_value = "RTNODE_SCU")]
        calling_ae: String,
        /// Largest PDU we accept from the peer.
        #[arg(long, default_value_t = 262_144)]
        max_pdu: u32,
        /// Node configuration: its network.tls certificate is ours, and its
        /// peers file says whether the receiver wants TLS (`tls: true`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// TLS even when the peers file does not ask for it (needs --config).
        #[arg(long)]
        tls: bool,
        /// Files or folders to send.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// DVHs and metrics from an RTSTRUCT and RTDOSE(s) (+ RTPLANs for fractions and prescriptions).
    Dvh {
        /// The RT Structure Set.
        #[arg(long)]
        rtstruct: PathBuf,
        /// RT Dose file(s); several are chosen among or summed as the plan says.
        #[arg(long, required = true)]
        rtdose: Vec<PathBuf>,
        /// RT Plan file(s): fractions, beams and target prescriptions.
        #[arg(long)]
        rtplan: Vec<PathBuf>,
        /// Write dvh.csv, dvh_metrics.csv, dvh_constraints.csv and dvh.json here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print ROI → metric → value as JSON.
        #[arg(long)]
        json: bool,
        /// YAML with DVH settings (bare, or the `dvh:` section of a config).
        #[arg(long)]
        settings: Option<PathBuf>,
        /// Multiply a single FRACTION dose whose plan is not given by N
        /// fractions. Without it (and without the plan) such a dose is used as
        /// stored: metrics describe the grid, and nothing in absolute Gy or
        /// relative to a prescription is evaluated.
        #[arg(long, value_name = "N")]
        fractions: Option<u32>,
    },
    /// Radiomics features (pyradiomics names and settings) of ROIs on a CT, or of an image and mask.
    Radiomics {
        /// Folder of the CT series (searched recursively).
        #[arg(long, requires = "rtstruct", conflicts_with_all = ["image", "mask"])]
        ct: Option<PathBuf>,
        /// The RT Structure Set whose ROIs are measured.
        #[arg(long, requires = "ct")]
        rtstruct: Option<PathBuf>,
        /// Only these ROIs (repeatable); default: every ROI not skipped by name.
        #[arg(long)]
        roi: Vec<String>,
        /// Research image (NRRD or NIfTI), with --mask.
        #[arg(long, requires = "mask")]
        image: Option<PathBuf>,
        /// Label map on the image's grid (the label is the parameter file's `label`, default 1).
        #[arg(long, requires = "image")]
        mask: Option<PathBuf>,
        /// pyradiomics parameter file (YAML); default: pyradiomics' defaults.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Write radiomics.csv and radiomics.json here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the CT and each measured ROI's voxel mask as NRRD here (with --ct).
        #[arg(long, requires = "ct")]
        masks_out: Option<PathBuf>,
        /// Print {ROI: {feature: value}} (one object of features with --image/--mask).
        #[arg(long)]
        json: bool,
        /// Worker processes (default: RTNODE_RADIOMICS_WORKERS, else cores - 1).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// A radiomics worker: tasks on stdin, results on stdout (started by rtnode itself).
    #[command(hide = true)]
    RadiomicsWorker {
        /// Threads for this worker's texture matrices.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Address-space limit, MiB.
        #[arg(long)]
        memory_mb: Option<u64>,
    },
    /// Write a synthetic CT series (water, lung and bone phantom on a couch).
    Synth {
        /// Output folder (created; must not already hold a series).
        #[arg(long)]
        out: PathBuf,
        /// Number of slices.
        #[arg(long, default_value_t = 64)]
        slices: u32,
        /// Rows and columns per slice.
        #[arg(long, default_value_t = 256)]
        rows: u16,
        /// Also write RS.dcm, RP.dcm and RD.dcm: analytic structures, a
        /// prescription and an exactly linear dose (a complete course).
        #[arg(long)]
        rt: bool,
        /// Reproducible noise inside the body, standard deviation in HU (texture for radiomics).
        #[arg(long, default_value_t = 0.0)]
        noise_hu: f64,
        /// PatientID (one per course when synthesising a cohort).
        #[arg(long)]
        patient_id: Option<String>,
    },
    /// Run the main job end to end on embedded defaults, nothing to configure.
    Demo {
        /// Number of CT slices to synthesise.
        #[arg(long, default_value_t = 64)]
        slices: u32,
        /// Rows and columns per slice.
        #[arg(long, default_value_t = 256)]
        rows: u16,
        /// Keep the temporary data directory.
        #[arg(long)]
        keep: bool,
    },
    /// Check the configuration and peers files; report every error with file and line.
    Validate {
        /// Node configuration file.
        #[arg(long, default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Peers file (default: the one the configuration names).
        #[arg(long)]
        peers: Option<PathBuf>,
    },
    /// Print a new bearer token for the HTTP API and the line that adds it
    /// to the tokens file (`http.tokens_file`); only its hash is stored.
    HttpToken {
        /// The token's name: who is recorded in the audit trail.
        #[arg(long)]
        name: String,
        /// read (every GET) or operator (also actions such as retrying
        /// dead letters).
        #[arg(long)]
        role: rtnode::http::tokens::Role,
        /// AE title that stands for this client.
        #[arg(long)]
        ae_title: Option<String>,
    },
    /// Requeue dead letters of the outbound queue (all, or the ids given).
    Retry {
        /// Data directory of the node.
        #[arg(long, default_value = "/var/lib/rtnode")]
        data_dir: PathBuf,
        /// Queue ids (from `rtnode status`); none means every dead letter.
        ids: Vec<u64>,
    },
    /// Check the configuration, data directory, port, peers and models.
    Doctor {
        /// Node configuration file.
        #[arg(long, default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Peers file (default: the one the configuration names).
        #[arg(long)]
        peers: Option<PathBuf>,
    },
    /// Write the cohort tables (DVH metrics, radiomics, QC, courses) of every course.
    Export {
        /// Output folder (created): dvh_metrics, radiomics, qc and courses tables.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: rtnode::cohort::Format,
        /// Replace patient IDs, names and UIDs by keyed pseudonyms; drop dates and free text.
        #[arg(long)]
        pseudonymise: bool,
        /// Secret key file for --pseudonymise (default: cohort.pseudonym_key_file of the config).
        #[arg(long)]
        pseudonym_key: Option<PathBuf>,
        /// Data directory (default: node.data_dir of the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Node configuration file (default conf/rtnode.yaml if present,
        /// else the embedded defaults). A file named here must exist.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove courses with no activity for a while: instances, results, state rows.
    Purge {
        /// Data directory of the node (a running node does the purge itself).
        #[arg(long, default_value = "/var/lib/rtnode")]
        data_dir: PathBuf,
        /// Age of the last activity, e.g. 90d, 12h, 1h 30m.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// Only list what would be purged.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the state database consistently, also while the node serves.
    Backup {
        /// Data directory of the node.
        #[arg(long, default_value = "/var/lib/rtnode")]
        data_dir: PathBuf,
        /// The backup file to write (replaced when it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the state database with a backup (the node must be stopped).
    Restore {
        /// The backup file (from `rtnode backup`).
        file: PathBuf,
        /// Data directory of the node.
        #[arg(long, default_value = "/var/lib/rtnode")]
        data_dir: PathBuf,
    },
    /// Rebuild the instance index from the stored files alone (server stopped).
    RebuildIndex {
        /// Data directory of the node.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Node configuration file (default conf/rtnode.yaml if present, else
    /// the embedded defaults). A file named here must exist.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port to listen on (0 picks a free one; see node.json in the data dir).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind.
    #[arg(long)]
    bind: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Our AE title.
    #[arg(long)]
    ae_title: Option<String>,
    /// Peers file (default: the one the configuration names).
    #[arg(long)]
    peers: Option<PathBuf>,
    /// Seconds without a new instance before a complete course is processed.
    #[arg(long)]
    stable_age: Option<u64>,
    /// Address of the HTTP server (health, metrics, API), over
    /// `http.address`; an empty string turns it off.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a person at a terminal, never into journald or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtnode: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Status {
            data_dir,
            json,
            watch,
        } => {
            if watch {
                loop {
                    let text = match rtnode::status::report(&data_dir) {
                        Ok(r) => rtnode::status::render_text(&r),
                        Err(e) => format!("rtnode: {e:#}\n"),
                    };
                    // Home the cursor and clear, then draw: one frame at a time.
                    print!("\x1b[H\x1b[2J{text}");
                    use std::io::Write;
                    std::io::stdout().flush()?;
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            let r = rtnode::status::report(&data_dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", rtnode::status::render_text(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Process {
            dir,
            out,
            config,
            executor,
        } => {
            let mut cfg = config::load_named_or_default(config.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match executor {
                Some(ExecutorArg::Local) => cfg.pipeline.executor = ExecutorKind::Local,
                Some(ExecutorArg::Slurm) => cfg.pipeline.executor = ExecutorKind::Slurm,
                None => {}
            }
            init_logging(LogFormat::Text, "info");
            let summary = rtnode::process::run(&dir, &out, &cfg)?;
            for c in &summary.status.courses {
                let stages: Vec<String> =
                    c.stages.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{}\tv{}\t{}\t{}",
                    c.id,
                    c.version,
                    c.state,
                    stages.join(" ")
                );
                for n in &c.notes {
                    println!("\tnote: {n}");
                }
                for d in &c.stage_details {
                    if let Some(r) = &d.skip_reason {
                        println!("\t{} skipped: {r}", d.stage);
                    }
                }
            }
            println!(
                "{} files imported ({} not), {} course(s), results in {}",
                summary.imported,
                summary.import_failures.len(),
                summary.status.courses.len(),
                out.join("courses").display()
            );
            if !summary.status.unassembled.is_empty() {
                print!(
                    "{}",
                    rtnode::status::unassembled_text(&summary.status.unassembled)
                );
            }
            for p in &summary.problems {
                eprintln!("problem: {p}");
            }
            Ok(if summary.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Send {
            mut to,
            calling_ae,
            max_pdu,
            config,
            tls,
            paths,
        } => {
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
                    .map(|s| format!("{s:04X} {}", rtnode::dimse::describe_status(s)))
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
        Command::Dvh {
            rtstruct,
            rtdose,
            rtplan,
            out,
            json,
            settings,
            fractions,
        } => {
            rtnode::stages::dvh::cli::run(&rtnode::stages::dvh::cli::DvhArgs {
                rtstruct,
                rtdose,
                rtplan,
                out,
                json,
                settings,
                fractions,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Radiomics {
            ct,
            rtstruct,
            roi,
            image,
            mask,
            params,
            out,
            masks_out,
            json,
            workers,
        } => {
            init_logging(LogFormat::Text, "warn");
            rtnode::radiomics::cli::run(&rtnode::radiomics::cli::RadiomicsArgs {
                ct,
                rtstruct,
                roi,
                image,
                mask,
                params,
                out,
                masks_out,
                json,
                workers,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RunStage {
            data_dir,
            course,
            version,
            stage,
        } => {
            init_logging(LogFormat::Text, "info");
            rtnode::pipeline::stage_run::run_command(&data_dir, &course, version, &stage)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RadiomicsWorker { threads, memory_mb } => {
            init_logging(LogFormat::Text, "warn");
            rtnode::radiomics::worker::main(memory_mb, threads)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Synth {
            out,
            slices,
            rows,
            rt,
            noise_hu,
            patient_id,
        } => {
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
        Command::Demo { slices, rows, keep } => {
            init_logging(LogFormat::Text, "warn");
            runtime()?.block_on(rtnode::demo::run(rtnode::demo::DemoOptions {
                slices,
                rows,
                keep,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { config, peers } => match config::validate(&config, peers.as_deref()) {
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
        },
        Command::HttpToken {
            name,
            role,
            ae_title,
        } => {
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
        Command::Retry { data_dir, ids } => {
            let n = rtnode::status::retry(&data_dir, &ids)?;
            println!("{n} dead letter(s) requeued");
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { config, peers } => {
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
        Command::Export {
            out,
            format,
            pseudonymise,
            pseudonym_key,
            data_dir,
            config,
        } => {
            init_logging(LogFormat::Text, "warn");
            let cfg = config::load_named_or_default(config.as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let complete = rtnode::cohort::cli::run(rtnode::cohort::cli::CohortArgs {
                out,
                format,
                pseudonymise,
                pseudonym_key,
                configured_key: cfg.resolved_pseudonym_key_file(),
                data_dir: data_dir.unwrap_or_else(|| cfg.node.data_dir.clone()),
            })?;
            Ok(if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Purge {
            data_dir,
            older_than,
            dry_run,
            json,
        } => {
            init_logging(LogFormat::Text, "warn");
            let r = rtnode::retention::purge_data_dir(
                &data_dir,
                rtnode::retention::PurgeOptions {
                    older_than,
                    dry_run,
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", rtnode::retention::render_text(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { data_dir, out } => {
            let s = rtnode::backup::backup(&data_dir, &out)?;
            println!(
                "state database backed up to {}: {} courses, {} jobs, {} outbound items, {} associations",
                out.display(),
                s.courses,
                s.jobs,
                s.outbound,
                s.associations
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { file, data_dir } => {
            let r = rtnode::backup::restore(&data_dir, &file)?;
            println!(
                "state database restored from {}: {} courses, {} jobs, {} outbound items",
                file.display(),
                r.summary.courses,
                r.summary.jobs,
                r.summary.outbound
            );
            if let Some(p) = &r.previous {
                println!("the database it replaced is kept as {}", p.display());
            }
            println!(
                "next: rtnode rebuild-index --data-dir {}",
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RebuildIndex { data_dir } => {
            init_logging(LogFormat::Text, "info");
            rebuild(&data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn rebuild(data_dir: &Path) -> Result<()> {
    // redb locks an open database: failing here means a server is running.
    let index_path = rtnode::store::index_path(data_dir);
    if index_path.exists() {
        drop(
            rtnode::store::Index::open(&index_path)
                .context("the index is in use: stop the server first")?,
        );
    }
    let r = rtnode::store::rebuild_index(data_dir)?;
    println!(
        "index rebuilt from {} files: {} indexed, {} unreadable, {} stale copies removed",
        r.files_scanned,
        r.indexed + r.repointed,
        r.unreadable,
        r.stale_removed
    );
    Ok(())
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

fn serve(args: ServeArgs) -> Result<ExitCode> {
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
        let running = rtnode::node::start(&cfg, peers).await?;
        let config_path = cfg.source.clone();
        let _watcher =
            rtnode::service::spawn_reloader(running.node.clone(), peers_path, config_path)?;
        rtnode::service::spawn_notifier(running.node.clone());
        wait_for_signal().await?;
        info!("shutting down");
        rtnode::service::sd_notify("STOPPING=1");
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
