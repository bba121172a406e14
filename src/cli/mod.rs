//! The `rtnode` command line: the subcommands, one module per group, each
//! with its flags and what it prints; the work is the library's.

mod admin;
mod analysis;
mod serve;
mod tools;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rtnode::config::LogFormat;
use rtnode::pipeline::CourseAction;

#[derive(Parser)]
#[command(
    name = "rtnode",
    version,
    about = "A DICOM network node for radiotherapy"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the node: accept associations, store instances durably.
    Serve(serve::ServeArgs),
    /// Show what the node holds and what it is doing (works while `serve` runs).
    Status(admin::StatusArgs),
    /// Run course assembly and the processing stages over a folder, no network.
    Process(analysis::ProcessArgs),
    /// Run one stage of one course version from the job description the
    /// coordinator wrote (what a Slurm job runs; opens no database).
    RunStage(analysis::RunStageArgs),
    /// Send DICOM files and folders (recursively) to a peer with C-STORE.
    Send(tools::SendArgs),
    /// DVHs and metrics from an RTSTRUCT and RTDOSE(s) (+ RTPLANs for fractions and prescriptions).
    Dvh(analysis::DvhArgs),
    /// Radiomics features (pyradiomics names and settings) of ROIs on a CT, or of an image and mask.
    Radiomics(analysis::RadiomicsArgs),
    /// A radiomics worker: tasks on stdin, results on stdout (started by rtnode itself).
    #[command(hide = true)]
    RadiomicsWorker(analysis::RadiomicsWorkerArgs),
    /// Write a synthetic CT series (water, lung and bone phantom on a couch).
    Synth(tools::SynthArgs),
    /// Run the main job end to end on embedded defaults, nothing to configure.
    Demo(tools::DemoArgs),
    /// Check the configuration and peers files; report every error with file and line.
    Validate(tools::ValidateArgs),
    /// Print a new bearer token for the HTTP API and the line that adds it
    /// to the tokens file (`http.tokens_file`); only its hash is stored.
    HttpToken(tools::HttpTokenArgs),
    /// Requeue dead letters of the outbound queue (all, or the ids given).
    Retry(admin::RetryArgs),
    /// Put an operator's hold on a course of the running node: no new
    /// version, no queued stage run starts until `release`.
    Hold(admin::CourseActionArgs),
    /// Lift an operator's hold on a course of the running node.
    Release(admin::CourseActionArgs),
    /// Trigger a course waiting for its stable age now (the trigger rule must hold).
    ProcessNow(admin::CourseActionArgs),
    /// Make a new version of a processed course with every stage run again.
    Rerun(admin::CourseActionArgs),
    /// Check the configuration, data directory, port, peers and models.
    Doctor(tools::DoctorArgs),
    /// Write the cohort tables (DVH metrics, radiomics, QC, courses) of every course.
    Export(analysis::ExportArgs),
    /// Remove courses with no activity for a while: instances, results, state rows.
    Purge(admin::PurgeArgs),
    /// Copy the state database consistently, also while the node serves.
    Backup(admin::BackupArgs),
    /// Replace the state database with a backup (the node must be stopped).
    Restore(admin::RestoreArgs),
    /// Rebuild the instance index from the stored files alone (server stopped).
    RebuildIndex(admin::RebuildIndexArgs),
}

/// Runs one command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve::serve(a),
        Command::Status(a) => admin::status(a),
        Command::Process(a) => analysis::process(a),
        Command::RunStage(a) => analysis::run_stage(a),
        Command::Send(a) => tools::send(a),
        Command::Dvh(a) => analysis::dvh(a),
        Command::Radiomics(a) => analysis::radiomics(a),
        Command::RadiomicsWorker(a) => analysis::radiomics_worker(a),
        Command::Synth(a) => tools::synth(a),
        Command::Demo(a) => tools::demo(a),
        Command::Validate(a) => tools::validate(a),
        Command::HttpToken(a) => tools::http_token(a),
        Command::Retry(a) => admin::retry(a),
        Command::Hold(a) => admin::course_action(CourseAction::Hold, a),
        Command::Release(a) => admin::course_action(CourseAction::Release, a),
        Command::ProcessNow(a) => admin::course_action(CourseAction::ProcessNow, a),
        Command::Rerun(a) => admin::course_action(CourseAction::Rerun, a),
        Command::Doctor(a) => tools::doctor(a),
        Command::Export(a) => analysis::export(a),
        Command::Purge(a) => admin::purge(a),
        Command::Backup(a) => admin::backup(a),
        Command::Restore(a) => admin::restore(a),
        Command::RebuildIndex(a) => admin::rebuild_index(a),
    }
}

/// Logs to stderr at `level` (or as `RUST_LOG` says).
pub fn init_logging(format: LogFormat, level: &str) {
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

/// The multi-threaded runtime of the commands that talk to the network.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
