//! The REST API under `/api/v1` (JSON): node status, courses, the outbound
//! queue, the association log, peers, and the operator actions: retrying
//! dead letters, and holding, releasing, processing now and re-running a
//! course (`actions`). Everything is read through the public APIs of status,
//! pipeline, export and state. Every read of patient data and every action
//! is written to the audit trail with the caller's token name.
//!
//! The OpenAPI document (`/api/v1/openapi.json`) is maintained by hand in
//! `openapi.json` beside this file; a unit test checks that it lists
//! exactly the routes [`routes`] registers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

mod actions;

use super::tokens::Role;
pub use super::Who;
use super::{ApiError, AppState};
use crate::export::OutboundState;
use crate::node::Node;
use crate::pipeline::CourseStatus;
use crate::stages::StageId;

/// The hand-maintained OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// HTTP method of an API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET: reads, for any authenticated caller.
    Get,
    /// POST: actions, for operators.
    Post,
}

impl Method {
    /// The method in lower case, as the OpenAPI document spells it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
        }
    }
}

/// One API route: method, path (relative to `/api/v1`), handler.
pub struct Route {
    /// HTTP method of the route.
    pub method: Method,
    /// Path relative to `/api/v1`, with `{name}` for path parameters.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn at<H, T>(method: Method, path: &'static str, h: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    Route {
        method,
        path,
        handler: on(method.filter(), h),
    }
}

/// Every authenticated route of the API; the router and the OpenAPI check
/// are both built from this list.
pub fn routes() -> Vec<Route> {
    vec![
        at(Method::Get, "/status", status),
        at(Method::Get, "/courses", courses),
        at(Method::Get, "/courses/{id}", course),
        at(Method::Post, "/courses/{id}/hold", actions::hold),
        at(Method::Post, "/courses/{id}/release", actions::release),
        at(
            Method::Post,
            "/courses/{id}/process-now",
            actions::process_now,
        ),
        at(Method::Post, "/courses/{id}/rerun", actions::rerun),
        at(Method::Get, "/outbound", outbound),
        at(Method::Post, "/outbound/retry", retry),
        at(Method::Get, "/associations", associations),
        at(Method::Get, "/peers", peers),
    ]
}

/// The API router: [`routes`] behind authentication, and the OpenAPI
/// document (no patient data) without.
pub fn router(state: AppState) -> Router<AppState> {
    let mut r = Router::new();
    for route in routes() {
        r = r.route(route.path, route.handler);
    }
    r.route_layer(axum::middleware::from_fn_with_state(
        state,
        super::authenticate,
    ))
    .route("/openapi.json", axum::routing::get(openapi))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.to_owned(),
    )
        .into_response()
}

impl Who {
    /// One audit line of the API: `event` and `action`, the patient the
    /// request concerned (empty if none) and how it ended.
    fn audit_action(
        &self,
        node: &Node,
        event: &'static str,
        action: &'static str,
        patient_id: &str,
        outcome: String,
    ) {
        self.audit(
            node,
            crate::audit::Event {
                event,
                action,
                patient_id: patient_id.to_owned(),
                outcome,
                ..Default::default()
            },
        );
    }
}

/// Runs disk and database work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(format!("{e:#}"))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Runs a pipeline action off the async threads, keeping its typed error.
async fn blocking_action<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<Result<T, E>, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

fn pipeline_of(node: &Node) -> Result<Arc<crate::pipeline::Pipeline>, ApiError> {
    node.pipeline
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no course pipeline"))
}

fn page<T>(items: Vec<T>, limit: Option<usize>, offset: Option<usize>) -> (usize, usize, Vec<T>) {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let offset = offset.unwrap_or(0);
    let page = items.into_iter().skip(offset).take(limit).collect();
    (limit, offset, page)
}

/// `GET /status`: what `rtnode status --json` prints.
async fn status(
    State(st): State<AppState>,
    who: Who,
) -> Result<Json<crate::status::StatusReport>, ApiError> {
    let node = st.node.clone();
    let listening = st.listening.clone();
    let r = blocking(move || crate::status::live_report(&node, &listening)).await?;
    who.audit_action(
        &st.node,
        "Query",
        "status-read",
        "",
        format!("{} course(s)", r.courses.len()),
    );
    Ok(Json(r))
}

/// Query parameters of `GET /courses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseQuery {
    /// Only courses in this state (waiting, processing, done, failed, held, …).
    pub state: Option<String>,
    /// Only courses of this patient ID.
    pub patient: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Courses to skip before the page (default 0).
    pub offset: Option<usize>,
}

/// One course in the `GET /courses` list.
#[derive(Debug, Serialize)]
pub struct CourseSummary {
    /// Course id.
    pub id: String,
    /// PatientID (0010,0020) of the course.
    pub patient_id: String,
    /// PatientName (0010,0010) of the course.
    pub patient_name: String,
    /// Course state: waiting, processing, done, failed, held, …
    pub state: String,
    /// Current result version (1, 2, …; a new one when the course's members change).
    pub version: u32,
    /// True when the course has every object its trigger rule needs.
    pub complete: bool,
    /// Why the course is held for a person (for example conflicting patient identities); None when not held.
    pub held: Option<String>,
    /// An operator's hold (who, when, why); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_hold: Option<crate::pipeline::OperatorHold>,
    /// Member counts by kind (images, rtstruct, rtplan, rtdose, …).
    pub objects: std::collections::BTreeMap<String, usize>,
    /// Number of referenced objects not received.
    pub missing: usize,
    /// Stage name → state of the current version's run.
    pub stages: std::collections::BTreeMap<String, String>,
}

impl From<CourseStatus> for CourseSummary {
    fn from(c: CourseStatus) -> CourseSummary {
        CourseSummary {
            id: c.id,
            patient_id: c.patient_id,
            patient_name: c.patient_name,
            state: c.state,
            version: c.version,
            complete: c.complete,
            held: c.held,
            operator_hold: c.operator_hold,
            objects: c.objects,
            missing: c.missing.len(),
            stages: c.stages,
        }
    }
}

/// One page of `GET /courses`.
#[derive(Debug, Serialize)]
pub struct CourseList {
    /// Courses matching the filter, before paging.
    pub total: usize,
    /// Page size applied.
    pub limit: usize,
    /// Courses skipped before this page.
    pub offset: usize,
    /// The page, in the pipeline's order.
    pub courses: Vec<CourseSummary>,
}

/// `GET /courses?state=&patient=&limit=&offset=`
async fn courses(
    State(st): State<AppState>,
    who: Who,
    Query(q): Query<CourseQuery>,
) -> Result<Json<CourseList>, ApiError> {
    let p = pipeline_of(&st.node)?;
    let all = blocking(move || p.status()).await?.courses;
    let matching: Vec<CourseStatus> = all
        .into_iter()
        .filter(|c| q.state.as_deref().is_none_or(|s| c.state == s))
        .filter(|c| q.patient.as_deref().is_none_or(|p| c.patient_id == p))
        .collect();
    let total = matching.len();
    let (limit, offset, page) = page(matching, q.limit, q.offset);
    who.audit_action(
        &st.node,
        "Query",
        "courses-listed",
        q.patient.as_deref().unwrap_or(""),
        format!("{} of {total} course(s)", page.len()),
    );
    Ok(Json(CourseList {
        total,
        limit,
        offset,
        courses: page.into_iter().map(CourseSummary::from).collect(),
    }))
}

/// `GET /courses/{id}`: one course with its results.
#[derive(Debug, Serialize)]
pub struct CourseDetail {
    /// Members, missing references, the current version's stages with
    /// their timings, progress and errors (as `rtnode status` shows).
    pub course: CourseStatus,
    /// Result versions on disk.
    pub versions: Vec<u32>,
    /// Files of the current version, relative to `courses/<id>/v<N>/`.
    pub result_files: Vec<String>,
    /// `dvh/dvh.json` without the histograms: dose, ROIs with their
    /// metrics, constraint verdicts; null when the DVH stage wrote none.
    pub dvh: Option<serde_json::Value>,
    /// `qc/qc.json`; null when the QC stage wrote none.
    pub qc: Option<serde_json::Value>,
    /// Per ROI of `radiomics/radiomics.json`: status, reason, source and
    /// the number of features; null when the stage wrote none.
    pub radiomics: Option<serde_json::Value>,
}

/// dvh.json less the per-ROI histograms (`dvh`), which the API does not
/// carry.
fn dvh_summary(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(rois) = v.get_mut("rois").and_then(|r| r.as_array_mut()) {
        for roi in rois {
            if let Some(o) = roi.as_object_mut() {
                o.remove("dvh");
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("settings");
    }
    v
}

fn radiomics_summary(v: serde_json::Value) -> serde_json::Value {
    let Some(rois) = v.as_object() else {
        return v;
    };
    let mut out = serde_json::Map::new();
    for (roi, r) in rois {
        out.insert(
            roi.clone(),
            serde_json::json!({
                "status": r.get("status"),
                "reason": r.get("reason"),
                "source": r.get("source"),
                "features": r.get("features").and_then(|f| f.as_object()).map(|f| f.len()).unwrap_or(0),
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// `GET /courses/{id}`
async fn course(
    State(st): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> Result<Json<CourseDetail>, ApiError> {
    let p = pipeline_of(&st.node)?;
    let data_dir = st.node.store.data_dir().to_path_buf();
    let wanted = id.clone();
    let detail = blocking(move || {
        // The id is only used for paths once it names a known course.
        let Some(c) = p.status()?.courses.into_iter().find(|c| c.id == wanted) else {
            return Ok(None);
        };
        let v = c.version;
        let json = |stage: StageId, file: &str| {
            crate::pipeline::stage_json(&data_dir, &c.id, v, stage.as_str(), file)
        };
        let dvh = json(StageId::Dvh, "dvh.json")?.map(dvh_summary);
        let qc = json(StageId::Qc, crate::stages::qc::REPORT_FILE)?;
        let radiomics =
            json(StageId::Radiomics, crate::radiomics::JSON_FILE)?.map(radiomics_summary);
        Ok(Some(CourseDetail {
            versions: crate::pipeline::versions_on_disk(&data_dir, &c.id),
            result_files: crate::pipeline::result_files(&data_dir, &c.id, v),
            dvh,
            qc,
            radiomics,
            course: c,
        }))
    })
    .await?;
    match detail {
        Some(d) => {
            who.audit_action(
                &st.node,
                "DICOMInstancesAccessed",
                "course-read",
                &d.course.patient_id,
                format!("course {} v{}", d.course.id, d.course.version),
            );
            Ok(Json(d))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no course {id:?}"),
        )),
    }
}

/// Query parameters of `GET /outbound`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundQuery {
    /// pending, sent or dead.
    pub state: Option<OutboundState>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Rows to skip before the page (default 0).
    pub offset: Option<usize>,
}

/// `GET /outbound`: the queue counts and one page of rows.
#[derive(Debug, Serialize)]
pub struct OutboundList {
    /// Rows pending in the whole queue.
    pub pending: usize,
    /// Rows sent in the whole queue.
    pub sent: usize,
    /// Rows dead-lettered in the whole queue.
    pub dead: usize,
    /// Rows matching the filter.
    pub total: usize,
    /// Page size applied.
    pub limit: usize,
    /// Rows skipped before this page.
    pub offset: usize,
    /// Newest first.
    pub items: Vec<crate::export::QueueEntry>,
}

/// `GET /outbound?state=&limit=&offset=`
async fn outbound(
    State(st): State<AppState>,
    who: Who,
    Query(q): Query<OutboundQuery>,
) -> Result<Json<OutboundList>, ApiError> {
    let state = st.node.state.clone();
    let only = q.state;
    let (summary, rows) = blocking(move || {
        Ok((
            crate::export::summary(&state)?,
            crate::export::entries(&state, only)?,
        ))
    })
    .await?;
    let total = rows.len();
    let (limit, offset, items) = page(rows, q.limit, q.offset);
    who.audit_action(
        &st.node,
        "Query",
        "outbound-listed",
        "",
        format!("{} of {total} row(s)", items.len()),
    );
    Ok(Json(OutboundList {
        pending: summary.pending,
        sent: summary.sent,
        dead: summary.dead,
        total,
        limit,
        offset,
        items,
    }))
}

/// Body of `POST /outbound/retry`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Queue ids; none (or no body) means every dead letter.
    #[serde(default)]
    pub ids: Vec<u64>,
}

/// `POST /outbound/retry` (operator): requeues dead letters, as
/// `rtnode retry` does.
async fn retry(State(st): State<AppState>, who: Who, body: Bytes) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Operator)?;
    let req: RetryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RetryRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body: {e} (expected {{\"ids\": [..]}})"),
            )
        })?
    };
    let Some(exporter) = st.node.exporter.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no outbound queue",
        ));
    };
    let ids = req.ids.clone();
    let n = blocking(move || exporter.retry_dead(&ids)).await?;
    who.audit_action(
        &st.node,
        "ApplicationActivity",
        "dead-letters-retried",
        "",
        if req.ids.is_empty() {
            format!("{n} requeued (all dead letters)")
        } else {
            format!("{n} requeued of ids {:?}", req.ids)
        },
    );
    Ok(Json(serde_json::json!({ "requeued": n })).into_response())
}

/// Query parameters of `GET /associations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// Rows to return, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// `GET /associations?limit=`: the association log, newest first.
async fn associations(
    State(st): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Vec<crate::state::AssociationRecord>>, ApiError> {
    let state = st.node.state.clone();
    let n = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    Ok(Json(blocking(move || state.recent_associations(n)).await?))
}

/// `GET /peers`: the peers file as loaded (read only).
async fn peers(State(st): State<AppState>) -> Json<Vec<crate::peers::Peer>> {
    let peers = st
        .node
        .peers
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Json(peers.peers.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["servers"][0]["url"], "/api/v1");
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                if method != "parameters" {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = routes()
            .iter()
            .map(|r| (r.method.name().to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn paging_is_bounded() {
        let (limit, offset, p) = page((0..5000).collect::<Vec<_>>(), Some(1_000_000), Some(10));
        assert_eq!(
            (limit, offset, p.len(), p[0]),
            (MAX_LIMIT, 10, MAX_LIMIT, 10)
        );
        let (_, _, p) = page(vec![1, 2, 3], None, Some(5));
        assert!(p.is_empty());
    }

    #[test]
    fn the_dvh_summary_drops_histograms_and_keeps_metrics() {
        let v = serde_json::json!({
            "rois": [{"name": "PTV", "metrics": {"Dmean": 2.0}, "dvh": {"cumulative": [1, 2]}}],
            "constraints": [{"roi": "PTV", "passed": true}],
            "settings": {"bins": 1}
        });
        let s = dvh_summary(v);
        assert_eq!(s["rois"][0]["metrics"]["Dmean"], 2.0);
        assert!(s["rois"][0].get("dvh").is_none());
        assert!(s.get("settings").is_none());
        assert_eq!(s["constraints"][0]["passed"], true);
    }
}
