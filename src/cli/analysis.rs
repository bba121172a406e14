//! The commands that process data without a running node: `process` (a
//! folder through assembly and the stages), `run-stage` (one stage run, as a
//! Slurm job runs it), the engines on their own (`dvh`, `radiomics` and its
//! worker) and the cohort `export`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rtnode::config::{self, LogFormat};
use rtnode::pipeline::ExecutorKind;

use super::init_logging;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExecutorArg {
    Local,
    Slurm,
}

#[derive(clap::Args)]
pub struct ProcessArgs {
    /// Folder of DICOM files (searched recursively).
    pub dir: PathBuf,
    /// Output folder: becomes a data directory with courses/<id>/v<N>/…
    #[arg(long)]
    pub out: PathBuf,
    /// Node configuration file (for the pipeline settings; default
    /// conf/rtnode.yaml if present, else the embedded defaults). A file
    /// named here must exist.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where stage runs execute, over the config's `pipeline.executor`
    /// (`slurm`: sbatch jobs; OUT must be on the cluster's shared
    /// filesystem).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorArg>,
}

#[derive(clap::Args)]
pub struct RunStageArgs {
    /// Data directory, as this machine sees it.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Course id.
    #[arg(long)]
    pub course: String,
    /// Result version.
    #[arg(long)]
    pub version: u32,
    /// Stage name.
    #[arg(long)]
    pub stage: String,
}

#[derive(clap::Args)]
pub struct DvhArgs {
    /// The RT Structure Set.
    #[arg(long)]
    pub rtstruct: PathBuf,
    /// RT Dose file(s); several are chosen among or summed as the plan says.
    #[arg(long, required = true)]
    pub rtdose: Vec<PathBuf>,
    /// RT Plan file(s): fractions, beams and target prescriptions.
    #[arg(long)]
    pub rtplan: Vec<PathBuf>,
    /// Write dvh.csv, dvh_metrics.csv, dvh_constraints.csv and dvh.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print ROI → metric → value as JSON.
    #[arg(long)]
    pub json: bool,
    /// YAML with DVH settings (bare, or the `dvh:` section of a config).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Multiply a single FRACTION dose whose plan is not given by N
    /// fractions. Without it (and without the plan) such a dose is used as
    /// stored: metrics describe the grid, and nothing in absolute Gy or
    /// relative to a prescription is evaluated.
    #[arg(long, value_name = "N")]
    pub fractions: Option<u32>,
}

#[derive(clap::Args)]
pub struct RadiomicsArgs {
    /// Folder of the CT series (searched recursively).
    #[arg(long, requires = "rtstruct", conflicts_with_all = ["image", "mask"])]
    pub ct: Option<PathBuf>,
    /// The RT Structure Set whose ROIs are measured.
    #[arg(long, requires = "ct")]
    pub rtstruct: Option<PathBuf>,
    /// Only these ROIs (repeatable); default: every ROI not skipped by name.
    #[arg(long)]
    pub roi: Vec<String>,
    /// Research image (NRRD or NIfTI), with --mask.
    #[arg(long, requires = "mask")]
    pub image: Option<PathBuf>,
    /// Label map on the image's grid (the label is the parameter file's `label`, default 1).
    #[arg(long, requires = "image")]
    pub mask: Option<PathBuf>,
    /// pyradiomics parameter file (YAML); default: pyradiomics' defaults.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Write radiomics.csv and radiomics.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the CT and each measured ROI's voxel mask as NRRD here (with --ct).
    #[arg(long, requires = "ct")]
    pub masks_out: Option<PathBuf>,
    /// Print {ROI: {feature: value}} (one object of features with --image/--mask).
    #[arg(long)]
    pub json: bool,
    /// Worker processes (default: RTNODE_RADIOMICS_WORKERS, else cores - 1).
    #[arg(long)]
    pub workers: Option<usize>,
}

#[derive(clap::Args)]
pub struct RadiomicsWorkerArgs {
    /// Threads for this worker's texture matrices.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Address-space limit, MiB.
    #[arg(long)]
    pub memory_mb: Option<u64>,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output folder (created): dvh_metrics, radiomics, qc and courses tables.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: rtnode::cohort::Format,
    /// Replace patient IDs, names and UIDs by keyed pseudonyms; drop dates and free text.
    #[arg(long)]
    pub pseudonymise: bool,
    /// Secret key file for --pseudonymise (default: cohort.pseudonym_key_file of the config).
    #[arg(long)]
    pub pseudonym_key: Option<PathBuf>,
    /// Data directory (default: node.data_dir of the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Node configuration file (default conf/rtnode.yaml if present,
    /// else the embedded defaults). A file named here must exist.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `rtnode process`.
pub fn process(args: ProcessArgs) -> Result<ExitCode> {
    let ProcessArgs {
        dir,
        out,
        config,
        executor,
    } = args;
    let mut cfg =
        config::load_named_or_default(config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    match executor {
        Some(ExecutorArg::Local) => cfg.pipeline.executor = ExecutorKind::Local,
        Some(ExecutorArg::Slurm) => cfg.pipeline.executor = ExecutorKind::Slurm,
        None => {}
    }
    init_logging(LogFormat::Text, "info");
    let summary = rtnode::process::run(&dir, &out, &cfg)?;
    for c in &summary.status.courses {
        let stages: Vec<String> = c.stages.iter().map(|(k, v)| format!("{k}={v}")).collect();
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

/// `rtnode run-stage`.
pub fn run_stage(args: RunStageArgs) -> Result<ExitCode> {
    let RunStageArgs {
        data_dir,
        course,
        version,
        stage,
    } = args;
    init_logging(LogFormat::Text, "info");
    rtnode::pipeline::stage_run::run_command(&data_dir, &course, version, &stage, &|c| {
        let cfg = match c {
            Some(c) => config::parse_config_str(&c.text, &c.path)
                .map_err(|e| anyhow::anyhow!("the node's config: {e}"))?,
            None => config::Config::default(),
        };
        cfg.stages(None)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `rtnode dvh`.
pub fn dvh(args: DvhArgs) -> Result<ExitCode> {
    let DvhArgs {
        rtstruct,
        rtdose,
        rtplan,
        out,
        json,
        settings,
        fractions,
    } = args;
    rtnode::dvh::cli::run(&rtnode::dvh::cli::DvhArgs {
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

/// `rtnode radiomics`.
pub fn radiomics(args: RadiomicsArgs) -> Result<ExitCode> {
    let RadiomicsArgs {
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
    } = args;
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

/// `rtnode radiomics-worker`.
pub fn radiomics_worker(args: RadiomicsWorkerArgs) -> Result<ExitCode> {
    let RadiomicsWorkerArgs { threads, memory_mb } = args;
    init_logging(LogFormat::Text, "warn");
    rtnode::radiomics::worker::main(memory_mb, threads)?;
    Ok(ExitCode::SUCCESS)
}

/// `rtnode export`.
pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let ExportArgs {
        out,
        format,
        pseudonymise,
        pseudonym_key,
        data_dir,
        config,
    } = args;
    let cfg =
        config::load_named_or_default(config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    init_logging(LogFormat::Text, "warn");
    let complete = rtnode::cohort::cli::run(
        rtnode::cohort::cli::CohortArgs {
            out,
            format,
            pseudonymise,
            pseudonym_key,
            configured_key: cfg.resolved_pseudonym_key_file(),
            data_dir: data_dir.unwrap_or_else(|| cfg.node.data_dir.clone()),
        },
        rtnode::admin::client::cohort_source,
    )?;
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
