//! The commands' side of the admin socket: ask the running node, else open
//! the databases. One helper, [`server_else`], does the asking for every
//! command; each command names its request, the answer it expects and what
//! it does with no node running.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::protocol::{self, Envelope, Request, Response, MAX_RESPONSE_BYTES, VERSION};
use crate::backup::Restored;
use crate::cohort::Source;
use crate::pipeline::{ActionOutcome, CourseAction};
use crate::retention::{PurgeOptions, PurgeReport};
use crate::state::{BackupSummary, StateDb};
use crate::status::StatusReport;

/// How long a status report or a retry may take.
const SHORT: Duration = Duration::from_secs(10);
/// How long a purge or a backup may take.
const LONG: Duration = Duration::from_secs(600);
/// How long reading a cohort's records may take.
const COHORT: Duration = Duration::from_secs(300);

/// Sends one request to the node on `data_dir` and reads its response;
/// `None` when no node answers on the admin socket. An error response
/// becomes an error.
pub fn ask(data_dir: &Path, request: Request, timeout: Duration) -> Option<Result<Response>> {
    let mut stream = UnixStream::connect(super::socket_path(data_dir)).ok()?;
    let exchange = move || -> Result<Response> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        protocol::write_frame(
            &mut stream,
            &Envelope {
                version: VERSION,
                request,
            },
        )
        .context("sending the request to the server")?;
        let response: Response = protocol::read_frame(&mut stream, MAX_RESPONSE_BYTES)
            .context("bad reply from server")?;
        match response {
            Response::Error { error } => anyhow::bail!("server: {error}"),
            r => Ok(r),
        }
    };
    Some(exchange())
}

/// Whether a node answers on the data directory's admin socket.
pub fn server_answers(data_dir: &Path) -> bool {
    UnixStream::connect(super::socket_path(data_dir)).is_ok()
}

/// Asks the running node with `request` and takes its answer with
/// `from_server` (`None`: not the answer this request gets); with no node
/// running, `offline` opens the databases instead.
pub fn server_else<T>(
    data_dir: &Path,
    request: Request,
    timeout: Duration,
    from_server: impl FnOnce(Response) -> Option<T>,
    offline: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let what = format!("{request:?}");
    match ask(data_dir, request, timeout) {
        Some(answer) => from_server(answer?)
            .with_context(|| format!("the server answered {what} with another response")),
        None => offline(),
    }
}

/// `rtnode status`: the live report, or one from the databases.
pub fn status(data_dir: &Path) -> Result<StatusReport> {
    server_else(
        data_dir,
        Request::Status,
        SHORT,
        |r| match r {
            Response::Status(s) => Some(*s),
            _ => None,
        },
        || crate::status::offline_report(data_dir),
    )
}

/// `rtnode retry`: requeues these dead letters, through the running node
/// or in the state database; how many went back to pending.
pub fn retry(data_dir: &Path, ids: &[u64]) -> Result<usize> {
    server_else(
        data_dir,
        Request::Retry { ids: ids.to_vec() },
        SHORT,
        |r| match r {
            Response::Requeued { requeued } => Some(requeued),
            _ => None,
        },
        || crate::export::requeue_dead(&StateDb::open(data_dir)?, ids),
    )
}

/// `rtnode purge`: through the running node (it holds the databases and
/// must forget the courses itself), else on the databases directly.
pub fn purge(data_dir: &Path, opts: PurgeOptions) -> Result<PurgeReport> {
    server_else(
        data_dir,
        Request::Purge {
            older_than_ms: u64::try_from(opts.older_than.as_millis()).unwrap_or(u64::MAX),
            dry_run: opts.dry_run,
        },
        LONG,
        |r| match r {
            Response::Purged(p) => Some(p),
            _ => None,
        },
        || crate::retention::purge_data_dir(data_dir, opts),
    )
}

/// `rtnode backup --out FILE`: the running node copies its state database
/// into its `tmp/` and this process moves the copy to `out`; with no node
/// running, a copy straight from the database.
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupSummary> {
    let made = server_else(
        data_dir,
        Request::Backup,
        LONG,
        |r| match r {
            Response::BackedUp(b) => Some(Some(b)),
            _ => None,
        },
        || Ok(None),
    )?;
    match made {
        Some(made) => crate::backup::take_from_node(made, out),
        None => crate::backup::backup(data_dir, out),
    }
}

/// `rtnode restore FILE`: refused while a node answers on the data
/// directory.
pub fn restore(data_dir: &Path, backup_file: &Path) -> Result<Restored> {
    if server_answers(data_dir) {
        anyhow::bail!(
            "a node is running on {}: stop it before restoring",
            data_dir.display()
        );
    }
    crate::backup::restore(data_dir, backup_file)
}

/// The records a cohort export needs: the running node's, else the state
/// database's.
pub fn cohort_source(data_dir: &Path) -> Result<Source> {
    server_else(
        data_dir,
        Request::Cohort,
        COHORT,
        |r| match r {
            Response::Cohort(s) => Some(*s),
            _ => None,
        },
        || crate::cohort::load_source(data_dir),
    )
}

/// `rtnode hold | release | process-now | rerun`: an operator's action on a
/// course of the running node (the scheduler that acts is the node's; with
/// no node running this is an error). `by` names the user for the audit
/// trail.
pub fn course_action(
    data_dir: &Path,
    action: CourseAction,
    course: &str,
    by: &str,
    reason: Option<String>,
) -> Result<ActionOutcome> {
    let request = Request::Course {
        action,
        course: course.to_owned(),
        by: by.to_owned(),
        reason,
    };
    match ask(data_dir, request, SHORT) {
        Some(answer) => match answer? {
            Response::Acted(done) => Ok(done),
            other => anyhow::bail!("the server answered {action:?} with {other:?}"),
        },
        None => anyhow::bail!(
            "no node answers on {}: the actions on a course are done by the running node",
            super::socket_path(data_dir).display()
        ),
    }
}
