//! The node's HTTP server: `GET /healthz`, `GET /readyz`, `GET /metrics`
//! and the REST API under `/api/v1` ([`api`]), one axum router on the
//! node's tokio runtime at `http.address`. The legacy
//! `network.metrics_address` gets a router with `/metrics` alone.
//!
//! Connections are served by hyper's HTTP/1 builder directly (not
//! `axum::serve`) so that the request head is bounded (size, header count,
//! read time) and HTTPS (`http.tls`, rustls with ring) is the same code
//! path. Bodies are bounded by `http.max_body_bytes` (413 past it). No
//! cookies are ever set: clients authenticate with bearer tokens
//! ([`tokens`]), required whenever a tokens file is configured, and always
//! off loopback (the config refuses the address otherwise).

pub mod api;
pub mod dicomweb;
pub mod settings;
pub mod tokens;
mod who;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::node::Node;
pub use settings::{HttpSection, HttpTlsSection};
use tokens::{Role, TokensFile};
pub use who::Who;

/// Largest request head (request line and headers) read, bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// Time a client has to send its request head, and its TLS handshake.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the HTTP server could not be prepared or started; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A setting of the `http` section is invalid.
    #[error("http.{key}: {message}")]
    Config {
        /// The key under `http` (for example `address`, `tls`).
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The TLS certificate or private key could not be loaded.
    #[error("http.tls: {0}")]
    Tls(String),
    /// The tokens file could not be read or is invalid.
    #[error("http.tokens_file: {0}")]
    Tokens(#[from] tokens::TokensError),
    /// The listen address could not be bound.
    #[error("binding the HTTP server on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Who made a request: the token's entry, or the loopback user when no
/// tokens file is configured.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name (or `loopback`), recorded as the audit trail's user.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
    /// The AE title the token is tied to, recorded as the audit event's calling AE; None if not tied.
    pub ae_title: Option<String>,
}

/// The user name recorded for requests on loopback without a tokens file.
pub const LOOPBACK_USER: &str = "loopback";

/// What every HTTP handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The node's shared handles.
    pub node: Arc<Node>,
    /// The SCP's address, as `rtnode status` reports it.
    pub listening: String,
    /// Set while the SCP accept loop runs.
    pub scp_listening: Arc<AtomicBool>,
    /// The tokens file; None: no authentication, loopback only.
    pub tokens: Option<Arc<TokensFile>>,
}

/// A JSON error answer: `{"error": message}` with its status.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// The error, for a person to read.
    pub message: String,
}

impl ApiError {
    /// An error answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    /// A 500 Internal Server Error answer carrying `e`'s text.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rtnode\""),
            );
        }
        r
    }
}

/// Everything the HTTP server needs besides the node: loaded and checked
/// before anything listens, so a bad certificate or tokens file stops the
/// start with its reason.
pub struct Prepared {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tokens: Option<Arc<TokensFile>>,
    max_body: usize,
    cors_origins: Vec<String>,
}

/// Checks the section (loopback rules), loads TLS and tokens; `None` when
/// the server is off.
pub fn prepare(cfg: &HttpSection) -> Result<Option<Prepared>, HttpError> {
    if let Some((key, message)) = cfg.problems().into_iter().next() {
        return Err(HttpError::Config { key, message });
    }
    let addr = match cfg.listen_addr() {
        Ok(Some(a)) => a,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(HttpError::Config {
                key: "address",
                message: format!("{:?}: {e}", cfg.address),
            })
        }
    };
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::http_server_config(&t.certificate, &t.private_key)
                .map_err(HttpError::Tls)?,
        )),
        None => None,
    };
    let tokens = match &cfg.tokens_file {
        Some(p) => Some(Arc::new(TokensFile::load(p)?)),
        None => None,
    };
    Ok(Some(Prepared {
        addr,
        tls,
        tokens,
        max_body: usize::try_from(cfg.max_body_bytes).unwrap_or(usize::MAX),
        cors_origins: cfg.cors_origins.clone(),
    }))
}

/// A server that is listening: its bound address (for port 0) and its
/// accept loop, aborted when the node stops.
pub struct Serving {
    /// The address actually bound (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The accept loop; aborted when the node stops.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds and serves the HTTP server.
pub async fn start(
    p: Prepared,
    node: Arc<Node>,
    listening: String,
    scp_listening: Arc<AtomicBool>,
) -> Result<Serving, HttpError> {
    let listener = TcpListener::bind(p.addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: p.addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: p.addr,
        source,
    })?;
    let state = AppState {
        node,
        listening,
        scp_listening,
        tokens: p.tokens.clone(),
    };
    let app = router(state, p.max_body, &p.cors_origins);
    info!(
        address = %bound,
        tls = p.tls.is_some(),
        tokens = p.tokens.as_ref().map(|t| t.tokens.len()),
        "HTTP server"
    );
    let task = tokio::spawn(accept_loop(listener, app, p.tls));
    Ok(Serving { addr: bound, task })
}

/// The whole router of `http.address`.
pub fn router(state: AppState, max_body: usize, cors_origins: &[String]) -> Router {
    let authed = axum::middleware::from_fn_with_state(state.clone(), authenticate);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics).route_layer(authed))
        .nest("/api/v1", api::router(state.clone()))
        .nest(
            dicomweb::BASE,
            dicomweb::router(state.clone(), cors_origins),
        )
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// `network.metrics_address`: `/metrics` (and `/`, as before) without
/// authentication, each answer closing its connection as the hand-written
/// server it replaces did.
pub async fn start_metrics_only(node: Arc<Node>, address: &str) -> Option<Serving> {
    let address = address.trim();
    if address.is_empty() {
        return None;
    }
    let addr: SocketAddr = match address.parse() {
        Ok(a) => a,
        Err(e) => {
            warn!(address, error = %e, "bad metrics address; metrics off");
            return None;
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(address = %addr, error = %e, "metrics off");
            return None;
        }
    };
    let bound = listener.local_addr().ok()?;
    let state = AppState {
        node,
        listening: String::new(),
        scp_listening: Arc::new(AtomicBool::new(false)),
        tokens: None,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(metrics))
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            },
        ))
        .with_state(state);
    let task = tokio::spawn(accept_loop(listener, app, None));
    Some(Serving { addr: bound, task })
}

async fn accept_loop(listener: TcpListener, app: Router, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, app).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_connection(s, peer, app).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => debug!(%peer, "HTTPS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(io: S, peer: SocketAddr, app: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// The bearer token of a request, checked against the tokens file; without
/// a tokens file (loopback only, see `HttpSection::problems`) every request
/// is the loopback user with the operator role.
pub(crate) async fn authenticate(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = match &st.tokens {
        None => Caller {
            name: LOOPBACK_USER.to_owned(),
            role: Role::Operator,
            ae_title: None,
        },
        Some(tokens) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            let peer = peer_of(&req);
            let refuse = |why: &str| {
                st.node.audit.record(crate::audit::Event {
                    event: "SecurityAlert",
                    action: "http-unauthenticated",
                    peer: peer.clone(),
                    object: format!("{} {}", req.method(), req.uri().path()),
                    outcome: why.to_owned(),
                    ..Default::default()
                });
                ApiError::new(StatusCode::UNAUTHORIZED, why)
            };
            match presented {
                None => return Err(refuse("a bearer token is required")),
                Some(t) => match tokens.find(t) {
                    Some(e) => Caller {
                        name: e.name.clone(),
                        role: e.role,
                        ae_title: e.ae_title.clone(),
                    },
                    None => return Err(refuse("unknown token")),
                },
            }
        }
    };
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

pub(crate) fn peer_of<B>(req: &axum::http::Request<B>) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

/// The readiness checks, each with what failed.
fn readiness(node: &Node, scp_listening: bool) -> Vec<Check> {
    let check = |name, r: Result<(), String>| match r {
        Ok(()) => Check {
            name,
            ok: true,
            detail: String::new(),
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    };
    vec![
        check(
            "store_writable",
            node.store.check_writable().map_err(|e| e.to_string()),
        ),
        check(
            "free_space",
            node.store.check_free_space().map_err(|f| f.comment),
        ),
        check(
            "index_database",
            node.store
                .index()
                .schema_version()
                .map(|_| ())
                .map_err(|e| format!("{e:#}")),
        ),
        check(
            "state_database",
            node.state
                .association_count()
                .map(|_| ())
                .map_err(|e| format!("{e:#}")),
        ),
        check(
            "scp_listening",
            if scp_listening {
                Ok(())
            } else {
                Err("the DICOM listener is not accepting".to_owned())
            },
        ),
    ]
}

async fn readyz(State(st): State<AppState>) -> Response {
    let node = st.node.clone();
    let scp = st.scp_listening.load(Ordering::Relaxed);
    let checks = match tokio::task::spawn_blocking(move || readiness(&node, scp)).await {
        Ok(c) => c,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let failing: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "ready": failing.is_empty(),
            "failing": failing,
            "checks": checks,
        })),
    )
        .into_response()
}

async fn metrics(State(st): State<AppState>) -> Response {
    let node = st.node.clone();
    match tokio::task::spawn_blocking(move || crate::metrics::render(&node)).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}
