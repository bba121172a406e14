//! The commands that act on a node's data directory: `status`, `retry`,
//! `hold`, `release`, `process-now`, `rerun`, `purge`, `backup`, `restore`,
//! `rebuild-index`. Those that need the
//! databases go through `rtnode::admin::client`, which asks the running node
//! when there is one (it holds the databases) and opens them otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use rtnode::config::LogFormat;

use super::init_logging;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Data directory of the node.
    #[arg(long, default_value = "/var/lib/rtnode")]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Redraw every second in place (text only) until interrupted.
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
}

#[derive(clap::Args)]
pub struct RetryArgs {
    /// Data directory of the node.
    #[arg(long, default_value = "/var/lib/rtnode")]
    pub data_dir: PathBuf,
    /// Queue ids (from `rtnode status`); none means every dead letter.
    pub ids: Vec<u64>,
}

#[derive(clap::Args)]
pub struct CourseActionArgs {
    /// Data directory of the running node.
    #[arg(long, default_value = "/var/lib/rtnode")]
    pub data_dir: PathBuf,
    /// Why (kept by `hold` and `rerun`, in the audit trail and the version).
    #[arg(long)]
    pub reason: Option<String>,
    /// The course id (from `rtnode status`).
    pub course: String,
}

#[derive(clap::Args)]
pub struct PurgeArgs {
    /// Data directory of the node (a running node does the purge itself).
    #[arg(long, default_value = "/var/lib/rtnode")]
    pub data_dir: PathBuf,
    /// Age of the last activity, e.g. 90d, 12h, 1h 30m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: std::time::Duration,
    /// Only list what would be purged.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Data directory of the node.
    #[arg(long, default_value = "/var/lib/rtnode")]
    pub data_dir: PathBuf,
    /// The backup file to write (replaced when it exists).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file (from `rtnode backup`).
    pub file: PathBuf,
    /// Data directory of the node.
    #[arg(long, default_value = "/var/lib/rtnode")]
    pub data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct RebuildIndexArgs {
    /// Data directory of the node.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// `rtnode status`.
pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let StatusArgs {
        data_dir,
        json,
        watch,
    } = args;
    if watch {
        loop {
            let text = match rtnode::admin::client::status(&data_dir) {
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
    let r = rtnode::admin::client::status(&data_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", rtnode::status::render_text(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rtnode retry`.
pub fn retry(args: RetryArgs) -> Result<ExitCode> {
    let RetryArgs { data_dir, ids } = args;
    let n = rtnode::admin::client::retry(&data_dir, &ids)?;
    println!("{n} dead letter(s) requeued");
    Ok(ExitCode::SUCCESS)
}

/// The user running the command, for the audit trail (the admin socket
/// is open to the service's user only).
fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        // SAFETY: getuid has no preconditions and cannot fail.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

/// `rtnode hold | release | process-now | rerun COURSE`.
pub fn course_action(
    action: rtnode::pipeline::CourseAction,
    args: CourseActionArgs,
) -> Result<ExitCode> {
    let CourseActionArgs {
        data_dir,
        reason,
        course,
    } = args;
    let done =
        rtnode::admin::client::course_action(&data_dir, action, &course, &user_name(), reason)?;
    println!("{}: {} (now {})", done.course_id, done.message, done.state);
    Ok(ExitCode::SUCCESS)
}

/// `rtnode purge`.
pub fn purge(args: PurgeArgs) -> Result<ExitCode> {
    let PurgeArgs {
        data_dir,
        older_than,
        dry_run,
        json,
    } = args;
    init_logging(LogFormat::Text, "warn");
    let r = rtnode::admin::client::purge(
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

/// `rtnode backup`.
pub fn backup(args: BackupArgs) -> Result<ExitCode> {
    let BackupArgs { data_dir, out } = args;
    let s = rtnode::admin::client::backup(&data_dir, &out)?;
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

/// `rtnode restore`.
pub fn restore(args: RestoreArgs) -> Result<ExitCode> {
    let RestoreArgs { file, data_dir } = args;
    let r = rtnode::admin::client::restore(&data_dir, &file)?;
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

/// `rtnode rebuild-index`.
pub fn rebuild_index(args: RebuildIndexArgs) -> Result<ExitCode> {
    let RebuildIndexArgs { data_dir } = args;
    init_logging(LogFormat::Text, "info");
    rebuild(&data_dir)?;
    Ok(ExitCode::SUCCESS)
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
