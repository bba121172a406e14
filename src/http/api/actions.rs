//! The operator's actions on one course: `POST /courses/{id}/hold`,
//! `/release`, `/process-now` and `/rerun`. Each needs the `operator`
//! role, answers 202 with what was done (404 for an unknown course, 409
//! with the reason when the course's state does not allow it), and is
//! written to the audit trail with the token's name, refusals included.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{blocking_action, pipeline_of, Who};
use crate::http::tokens::Role;
use crate::http::{ApiError, AppState};
use crate::pipeline::{ActionError, ActionOutcome, CourseAction as Action};

/// Body of `POST /courses/{id}/hold` and `/rerun` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why, in words (at most 500 characters are kept).
    #[serde(default)]
    pub reason: Option<String>,
}

fn reason_of(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let r: ReasonRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body: {e} (expected {{\"reason\": \"...\"}})"),
        )
    })?;
    Ok(r.reason)
}

async fn act(
    st: AppState,
    who: Who,
    id: String,
    action: Action,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Operator)?;
    let p = pipeline_of(&st.node)?;
    let by = who.caller.name.clone();
    let course = id.clone();
    let result = blocking_action(move || p.act(action, &course, &by, reason)).await?;
    match result {
        Ok(done) => {
            who.audit_action(
                &st.node,
                "ApplicationActivity",
                action.audit_name(),
                &done.patient_id,
                format!("course {}: {}", done.course_id, done.message),
            );
            Ok((StatusCode::ACCEPTED, Json::<ActionOutcome>(done)).into_response())
        }
        Err(e) => {
            let status = match &e {
                ActionError::UnknownCourse(_) => StatusCode::NOT_FOUND,
                ActionError::Conflict(_) => StatusCode::CONFLICT,
                ActionError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            who.audit_action(
                &st.node,
                "ApplicationActivity",
                action.audit_name(),
                "",
                format!("refused ({}): course {id}: {e}", status.as_u16()),
            );
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

/// `POST /courses/{id}/hold` (operator), body `{"reason": ".."}` optional.
pub(super) async fn hold(
    State(st): State<AppState>,
    who: Who,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let reason = reason_of(&body)?;
    act(st, who, id, Action::Hold, reason).await
}

/// `POST /courses/{id}/release` (operator).
pub(super) async fn release(
    State(st): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(st, who, id, Action::Release, None).await
}

/// `POST /courses/{id}/process-now` (operator).
pub(super) async fn process_now(
    State(st): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(st, who, id, Action::ProcessNow, None).await
}

/// `POST /courses/{id}/rerun` (operator), body `{"reason": ".."}` optional.
pub(super) async fn rerun(
    State(st): State<AppState>,
    who: Who,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let reason = reason_of(&body)?;
    act(st, who, id, Action::Rerun, reason).await
}
