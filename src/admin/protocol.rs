//! The admin socket's messages and their framing.
//!
//! One request and one response per connection, each a frame: a 4-byte
//! big-endian length, then that many bytes of JSON. A request carries the
//! protocol [`VERSION`]; the server refuses another version, an unknown
//! request, a frame cut short and a frame over its bound with an error
//! response, never with a guess at what was meant (a cut list of ids could
//! otherwise requeue the wrong dead letters).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::backup::AdminBackup;
use crate::cohort::Source;
use crate::pipeline::{ActionOutcome, CourseAction};
use crate::retention::PurgeReport;
use crate::status::StatusReport;

/// The protocol version a request carries; bumped when a message changes
/// meaning.
pub const VERSION: u32 = 1;

/// The largest request a server reads: room for about 50,000 dead-letter
/// ids.
pub const MAX_REQUEST_BYTES: u32 = 1 << 20;

/// The largest response a client reads (a cohort's records or a status
/// report of many courses).
pub const MAX_RESPONSE_BYTES: u32 = 1 << 30;

/// What a client asks of the running node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The live status report.
    Status,
    /// Requeue these dead letters of the outbound queue.
    Retry {
        /// Outbound queue row ids; empty: every dead letter.
        ids: Vec<u64>,
    },
    /// Purge courses whose last activity is older than this.
    Purge {
        /// Age limit in ms: courses inactive for longer are purged.
        older_than_ms: u64,
        /// Report what would be purged without removing anything.
        dry_run: bool,
    },
    /// Back up the state database into the node's `tmp/`.
    Backup,
    /// The records a cohort export needs.
    Cohort,
    /// An operator's action on one course (hold, release, process now,
    /// re-run), as the HTTP API's `POST /courses/{id}/…` does.
    Course {
        /// What to do.
        action: CourseAction,
        /// The course id.
        course: String,
        /// Who asks (the user running the command), for the audit trail.
        by: String,
        /// Why (kept by a hold and a re-run).
        reason: Option<String>,
    },
}

/// A request as sent: the protocol version and the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// The protocol version of the client, `VERSION`.
    pub version: u32,
    /// What is asked.
    #[serde(flatten)]
    pub request: Request,
}

/// The node's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The live status report.
    Status(Box<StatusReport>),
    /// How many dead letters went back to pending.
    Requeued {
        /// Dead letters moved back to pending.
        requeued: usize,
    },
    /// What the purge removed, or would remove on a dry run.
    Purged(PurgeReport),
    /// The backup made, and where it is.
    BackedUp(AdminBackup),
    /// The records a cohort export needs.
    Cohort(Box<Source>),
    /// What an operator's action on a course did.
    Acted(ActionOutcome),
    /// The request was refused or failed; nothing was done unless the
    /// message says so.
    Error {
        /// What went wrong, for a person to read.
        error: String,
    },
}

impl Response {
    /// An error response.
    pub fn error(e: impl std::fmt::Display) -> Response {
        Response::Error {
            error: e.to_string(),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended inside the frame.
    #[error("frame cut short: {0}")]
    Truncated(std::io::Error),
    /// The announced length is over the bound for this direction.
    #[error("frame of {len} bytes is over the bound of {max}")]
    TooLarge {
        /// The announced length in bytes.
        len: u32,
        /// The bound in bytes (`MAX_REQUEST_BYTES` or `MAX_RESPONSE_BYTES`).
        max: u32,
    },
    /// Bare JSON where a length was expected: the peer speaks the
    /// unframed protocol of rtnode before the admin protocol's version 1.
    #[error("an unframed JSON message (the peer is an older rtnode: restart it)")]
    Unframed,
    /// The socket failed while reading.
    #[error("reading the frame: {0}")]
    Io(std::io::Error),
    /// The frame's bytes are not the JSON of the expected message.
    #[error("bad JSON in the frame: {0}")]
    Json(#[from] serde_json::Error),
}

fn read_error(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated(e)
    } else {
        FrameError::Io(e)
    }
}

/// One frame's bytes: the length, then the JSON.
pub fn encode<T: Serialize>(message: &T) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec(message)?;
    let mut frame = Vec::with_capacity(json.len() + 4);
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

fn check_length(len: [u8; 4], max: u32) -> Result<usize, FrameError> {
    if len[0] == b'{' {
        return Err(FrameError::Unframed);
    }
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len as usize)
}

/// Reads one frame's JSON bytes (not yet parsed), at most `max` of them.
pub async fn read_frame_async<R: AsyncRead + Unpin>(
    r: &mut R,
    max: u32,
) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(read_error)?;
    let len = check_length(len, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(read_error)?;
    Ok(body)
}

/// Writes one frame.
pub async fn write_frame_async<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    message: &T,
) -> std::io::Result<()> {
    let frame = encode(message).map_err(std::io::Error::other)?;
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one frame and parses it, at most `max` bytes of JSON.
pub fn read_frame<R: Read, T: serde::de::DeserializeOwned>(
    r: &mut R,
    max: u32,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(read_error)?;
    let len = check_length(len, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(read_error)?;
    Ok(serde_json::from_slice(&body)?)
}

/// Writes one frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, message: &T) -> std::io::Result<()> {
    let frame = encode(message).map_err(std::io::Error::other)?;
    w.write_all(&frame)?;
    w.flush()
}

/// Parses a request frame's JSON: the version first, so that a request of
/// another version is named as such rather than as a malformed one.
pub fn parse_request(json: &[u8]) -> Result<Request, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("bad request: {e}"))?;
    let fields = value
        .as_object_mut()
        .ok_or_else(|| "bad request: not a JSON object".to_string())?;
    match fields.remove("version").map(|v| v.as_u64()) {
        Some(Some(v)) if v == u64::from(VERSION) => {}
        Some(Some(other)) => {
            return Err(format!(
                "admin protocol version {other} is not supported (this node speaks {VERSION})"
            ))
        }
        Some(None) => return Err("bad request: the version is not a number".into()),
        None => return Err("request without a protocol version".into()),
    }
    serde_json::from_value::<Request>(value)
        .map_err(|e| format!("unknown or malformed request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(request: Request) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            version: VERSION,
            request,
        })
        .unwrap()
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Status,
            Request::Retry {
                ids: (1..=300).collect(),
            },
            Request::Purge {
                older_than_ms: 86_400_000,
                dry_run: true,
            },
            Request::Backup,
            Request::Cohort,
            Request::Course {
                action: CourseAction::ProcessNow,
                course: "P1-0a1b2c3d".into(),
                by: "physicist".into(),
                reason: Some("plan fixed".into()),
            },
        ] {
            assert_eq!(parse_request(&envelope(r.clone())), Ok(r));
        }
    }

    #[test]
    fn unknown_requests_and_versions_are_refused() {
        let e = parse_request(br#"{"version":1,"request":"format_disk"}"#).unwrap_err();
        assert!(e.contains("unknown or malformed request"), "{e}");
        let e = parse_request(br#"{"version":2,"request":"status"}"#).unwrap_err();
        assert!(e.contains("version 2 is not supported"), "{e}");
        let e = parse_request(br#"{"request":"status"}"#).unwrap_err();
        assert!(e.contains("without a protocol version"), "{e}");
        // An id that is not a number is not skipped: the whole request goes.
        let e = parse_request(br#"{"version":1,"request":"retry","ids":[1,"2x",3]}"#).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
        let e =
            parse_request(br#"{"version":1,"request":"retry","ids":[1],"all":true}"#).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn frames_are_bounded_and_whole() {
        let frame = encode(&Envelope {
            version: VERSION,
            request: Request::Retry { ids: vec![17, 42] },
        })
        .unwrap();
        let back: serde_json::Value = read_frame(&mut &frame[..], MAX_REQUEST_BYTES).unwrap();
        assert_eq!(
            parse_request(&serde_json::to_vec(&back).unwrap()),
            Ok(Request::Retry { ids: vec![17, 42] })
        );
        // Cut anywhere: an error, never a shorter request.
        for cut in 0..frame.len() {
            let r: Result<serde_json::Value, _> = read_frame(&mut &frame[..cut], MAX_REQUEST_BYTES);
            assert!(matches!(r, Err(FrameError::Truncated(_))), "cut at {cut}");
        }
        let big = (MAX_REQUEST_BYTES + 1).to_be_bytes();
        let r: Result<serde_json::Value, _> = read_frame(&mut &big[..], MAX_REQUEST_BYTES);
        assert!(matches!(r, Err(FrameError::TooLarge { .. })));
        // What an older node answers: bare JSON, named as such.
        let old = br#"{"error":"unknown request"}"#;
        let r: Result<serde_json::Value, _> = read_frame(&mut &old[..], MAX_RESPONSE_BYTES);
        assert!(matches!(r, Err(FrameError::Unframed)), "{r:?}");
    }

    #[test]
    fn responses_round_trip() {
        let frame = encode(&Response::Requeued { requeued: 200 }).unwrap();
        let back: Response = read_frame(&mut &frame[..], MAX_RESPONSE_BYTES).unwrap();
        assert!(
            matches!(back, Response::Requeued { requeued: 200 }),
            "{back:?}"
        );
        let frame = encode(&Response::error("no outbound queue")).unwrap();
        let back: Response = read_frame(&mut &frame[..], 1024).unwrap();
        assert!(
            matches!(&back, Response::Error { error } if error == "no outbound queue"),
            "{back:?}"
        );
    }
}
