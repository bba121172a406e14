//! CORS (the Fetch standard) for DICOMweb, so that a browser viewer served
//! from another origin (OHIF) may call `/dicom-web`: `http.cors_origins`
//! names the origins allowed (or `*`); empty sends no CORS headers, and
//! browsers then refuse cross-origin calls.
//!
//! A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
//! here, before authentication: browsers never send credentials with it.
//! Every other answer to an allowed origin, refusals included, carries
//! `Access-Control-Allow-Origin` so that the page can read its status.
//! No credentials mode is offered (`Allow-Credentials` is never sent): the
//! page sends its bearer token in `Authorization`, never a cookie.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// How long a browser may cache a preflight answer, seconds.
const MAX_AGE_S: &str = "600";

/// The origins allowed, from `http.cors_origins`.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Arc<Vec<String>>,
}

impl Cors {
    /// The policy of `http.cors_origins` (checked by the config).
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            origins: Arc::new(origins.to_vec()),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// The middleware: answers preflights, and marks answers to allowed origins.
pub async fn handle(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = origin
        .as_deref()
        .filter(|o| cors.allows(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed else {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        };
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, accept, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_S),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return r;
    }
    let mut r = next.run(req).await;
    if let Some(origin) = allowed {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("content-type, content-length, warning, www-authenticate"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}
