//! Who made a request: the authenticated token (set by
//! [`super::authenticate`]), the client's address and what was asked. The
//! REST API and DICOMweb both take it as an extractor, check roles with
//! [`Who::require`] and write audit lines with [`Who::audit`].

use std::net::SocketAddr;

use axum::extract::{FromRequestParts, NestedPath};
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::tokens::Role;
use super::{ApiError, Caller};
use crate::node::Node;

/// The caller of a request, where from, and what was asked, for the audit
/// trail.
pub struct Who {
    /// The authenticated token and its role.
    pub caller: Caller,
    /// The client's address, `ip:port`; empty if unknown.
    pub peer: String,
    /// Method and path with query, as the client sent them, for example
    /// `GET /api/v1/courses?patient=X`.
    pub object: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, ApiError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not authenticated"))?;
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        // A nested router sees its path without the prefix it is nested at.
        let base = parts
            .extensions
            .get::<NestedPath>()
            .map(|n| n.as_str())
            .unwrap_or("");
        let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        Ok(Who {
            caller,
            peer,
            object: format!("{} {base}{pq}", parts.method),
        })
    }
}

impl Who {
    /// The calling AE title that stands for this caller: the token's AE
    /// title without its padding, empty when the token has none.
    pub fn calling_ae(&self) -> String {
        self.caller
            .ae_title
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    }

    /// Writes one audit event for this request, with the caller, its
    /// address, the node's AE title and the request filled in.
    pub fn audit(&self, node: &Node, event: crate::audit::Event) {
        node.audit.record(crate::audit::Event {
            calling_ae: self.calling_ae(),
            called_ae: node.ae_title.clone(),
            peer: self.peer.clone(),
            user: self.caller.name.clone(),
            object: self.object.clone(),
            ..event
        });
    }

    /// 403 (and a security alert in the audit trail) unless the caller
    /// has `role`.
    pub fn require(&self, node: &Node, role: Role) -> Result<(), ApiError> {
        if self.caller.role >= role {
            return Ok(());
        }
        self.audit(
            node,
            crate::audit::Event {
                event: "SecurityAlert",
                action: "http-forbidden",
                outcome: format!("role {} needed, token has {}", role, self.caller.role),
                ..Default::default()
            },
        );
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this needs the {role} role; the token {:?} has {}",
                self.caller.name, self.caller.role
            ),
        ))
    }
}
