//! The node's side of the admin socket: binding it private to the service's
//! user, reading one framed request per connection and answering it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::protocol::{self, Request, Response, MAX_REQUEST_BYTES};
use crate::node::Node;
use crate::pipeline::{ActionError, CourseAction};
use crate::retention::PurgeOptions;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the admin socket so that only the service's user can open it: the
/// socket is created under a umask of 077 and then chmod 600.
pub fn bind(data_dir: &Path) -> Result<UnixListener> {
    let path = super::socket_path(data_dir);
    // A stale socket from a crashed server would make bind fail.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!("another server answers on {}", path.display());
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing stale {}", path.display()))?;
    }
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(&path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers admin requests until the task is aborted; `listening` is the
/// DICOM address the status report names.
pub async fn serve(listener: UnixListener, node: Arc<Node>, listening: String) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, node.clone(), listening.clone()));
    }
}

/// One connection: one request, one response.
async fn connection(mut stream: UnixStream, node: Arc<Node>, listening: String) {
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        protocol::read_frame_async(&mut stream, MAX_REQUEST_BYTES),
    )
    .await;
    let request = match read {
        Err(_) => Err(format!(
            "no whole request within {} s",
            REQUEST_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(json)) => protocol::parse_request(&json),
    };
    let response = match request {
        Err(e) => {
            warn!(error = %e, "admin request refused");
            Response::error(e)
        }
        Ok(request) => {
            debug!(request = ?request, "admin request");
            let answered =
                tokio::task::spawn_blocking(move || answer(&node, &listening, request)).await;
            match answered {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Response::error(format!("{e:#}")),
                Err(e) => Response::error(e),
            }
        }
    };
    if let Err(e) = protocol::write_frame_async(&mut stream, &response).await {
        debug!(error = %e, "admin client went away");
    }
}

/// Does what a request asks, with the node's own handles (it touches the
/// disk: run it off the async threads).
pub fn answer(node: &Node, listening: &str, request: Request) -> Result<Response> {
    Ok(match request {
        Request::Status => Response::Status(Box::new(crate::status::live_report(node, listening)?)),
        Request::Retry { ids } => match &node.exporter {
            Some(e) => {
                let requeued = e.retry_dead(&ids)?;
                info!(
                    asked = ids.len(),
                    requeued, "outbound items requeued by request"
                );
                Response::Requeued { requeued }
            }
            None => Response::error("no outbound queue"),
        },
        Request::Purge {
            older_than_ms,
            dry_run,
        } => Response::Purged(node.retention_handles().purge(PurgeOptions {
            older_than: Duration::from_millis(older_than_ms),
            dry_run,
        })?),
        Request::Backup => Response::BackedUp(crate::backup::backup_in_node(
            node.store.data_dir(),
            &node.state,
        )?),
        Request::Cohort => {
            Response::Cohort(Box::new(crate::cohort::source_from_state(&node.state)?))
        }
        Request::Course {
            action,
            course,
            by,
            reason,
        } => course_action(node, action, &course, &by, reason),
    })
}

/// An operator's action through the socket, audited with the user's name
/// as the HTTP API audits it with the token's.
fn course_action(
    node: &Node,
    action: CourseAction,
    course: &str,
    by: &str,
    reason: Option<String>,
) -> Response {
    let Some(pipeline) = &node.pipeline else {
        return Response::error("no course pipeline");
    };
    let by: String = by.chars().filter(|c| !c.is_control()).take(64).collect();
    let result = pipeline.act(action, course, &by, reason);
    let (patient_id, outcome) = match &result {
        Ok(done) => (
            done.patient_id.clone(),
            format!("course {}: {}", done.course_id, done.message),
        ),
        Err(e) => (String::new(), format!("refused: course {course}: {e}")),
    };
    node.audit.record(crate::audit::Event {
        event: "ApplicationActivity",
        action: action.audit_name(),
        called_ae: node.ae_title.clone(),
        patient_id,
        outcome,
        user: by,
        object: format!("admin socket {action:?} {course}"),
        ..Default::default()
    });
    match result {
        Ok(done) => Response::Acted(done),
        Err(e @ ActionError::UnknownCourse(_)) => Response::error(e),
        Err(ActionError::Conflict(why)) => Response::error(format!("refused: {why}")),
        Err(e @ ActionError::Failed(_)) => Response::error(e),
    }
}
