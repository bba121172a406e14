//! DICOMweb (PS3.18) at `/dicom-web`: STOW-RS ([`stow`]) through the same
//! durable path as C-STORE, QIDO-RS ([`qido`]) from the instance index, and
//! WADO-RS ([`wado`]) of the stored files. Every request is authenticated
//! as the REST API is (bearer tokens, [`super::tokens`]); storing needs the
//! `operator` role, searching and retrieving `read`. Every store, search
//! and retrieve is written to the audit trail with the token's name.
//!
//! The token's AE title stands for the client: it is recorded as the
//! calling AE of what STOW-RS stores, exactly as an association's calling
//! AE title is for C-STORE, so that routing, trigger rules and
//! `results_to_sender` treat both alike.

pub mod cors;
pub mod json;
pub mod metadata;
pub mod multipart;
pub mod qido;
pub mod stow;
pub mod wado;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use super::Who;
use super::{ApiError, AppState};

/// Where DICOMweb is mounted on the HTTP server.
pub const BASE: &str = "/dicom-web";

/// The media type of DICOM JSON answers.
pub const DICOM_JSON: &str = "application/dicom+json";

/// The DICOMweb routes (relative to [`BASE`]), each behind the HTTP
/// server's bearer-token authentication, all behind the CORS policy of
/// `http.cors_origins` ([`cors`]).
pub fn router(state: AppState, cors_origins: &[String]) -> Router<AppState> {
    routes()
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            super::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            cors::Cors::new(cors_origins),
            cors::handle,
        ))
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/studies", get(qido::studies).post(stow::store))
        .route(
            "/studies/{study}",
            get(wado::study).post(stow::store_in_study),
        )
        .route("/studies/{study}/metadata", get(metadata::study))
        .route("/studies/{study}/series", get(qido::study_series))
        .route("/studies/{study}/series/{series}", get(wado::series))
        .route(
            "/studies/{study}/series/{series}/metadata",
            get(metadata::series),
        )
        .route(
            "/studies/{study}/series/{series}/instances",
            get(qido::series_instances),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{sop}",
            get(wado::instance),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{sop}/metadata",
            get(metadata::instance),
        )
}

/// A DICOM JSON answer with `status`.
pub fn dicom_json(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(DICOM_JSON))],
        value.to_string(),
    )
        .into_response()
}

/// Runs blocking index or file work off the runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
