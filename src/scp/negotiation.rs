//! A-ASSOCIATE-RQ → AC or RJ: who may talk to us, and which presentation
//! contexts we accept.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason,
    AssociationRJSource, AssociationRQ, PresentationContextResult, PresentationContextResultReason,
    UserVariableItem,
};

use super::ScpContext;
use crate::dicom::uids;

#[derive(Debug, Clone)]
pub struct AcceptedContext {
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

pub struct Accepted {
    pub ac: AssociationAC,
    pub contexts: HashMap<u8, AcceptedContext>,
    pub peer_max_pdu: u32,
}

pub struct Rejected {
    pub rj: AssociationRJ,
    pub reason: String,
}

impl Rejected {
    /// A short, label-safe name for metrics.
    pub fn kind(&self) -> &'static str {
        match &self.rj.source {
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::CalledAETitleNotRecognized,
            ) => "rejected_called_ae",
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
            ) => "rejected_calling_ae",
            AssociationRJSource::ServiceProviderPresentation(_) => "rejected_limit",
            _ => "rejected_other",
        }
    }
}

fn reject(result: AssociationRJResult, source: AssociationRJSource, reason: String) -> Rejected {
    Rejected {
        rj: AssociationRJ { result, source },
        reason,
    }
}

fn trim_ae(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\0')
}

/// Decides on an association request. The association-count limit is
/// checked by the caller, which holds the slot.
pub async fn negotiate(
    node: &ScpContext,
    rq: &AssociationRQ,
    peer: SocketAddr,
) -> Result<Accepted, Rejected> {
    let calling = trim_ae(&rq.calling_ae_title);
    let called = trim_ae(&rq.called_ae_title);
    if rq.protocol_version & 1 == 0 {
        return Err(reject(
            AssociationRJResult::Permanent,
            AssociationRJSource::ServiceProviderASCE(
                dicom_ul::pdu::AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
            ),
            format!("protocol version {:#06x}", rq.protocol_version),
        ));
    }
    if trim_ae(&rq.application_context_name) != uids::APPLICATION_CONTEXT {
        return Err(reject(
            AssociationRJResult::Permanent,
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::ApplicationContextNameNotSupported,
            ),
            format!("application context {}", rq.application_context_name),
        ));
    }
    if called != node.ae_title {
        return Err(reject(
            AssociationRJResult::Permanent,
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::CalledAETitleNotRecognized,
            ),
            format!(
                "called AE title {called:?} is not ours ({:?})",
                node.ae_title
            ),
        ));
    }
    let peers = node.peers();
    let known = peers.find(calling);
    if node.network.require_known_callers && !known.is_some_and(|p| p.may_store) {
        let why = if known.is_some() {
            "is in the peers file without may_store"
        } else {
            "is not in the peers file"
        };
        return Err(reject(
            AssociationRJResult::Permanent,
            AssociationRJSource::ServiceUser(
                AssociationRJServiceUserReason::CallingAETitleNotRecognized,
            ),
            format!("calling AE title {calling:?} {why}"),
        ));
    }
    if node.network.check_peer_address {
        let allowed = match known {
            Some(p) => host_matches(&p.host, peer.ip()).await,
            None => false,
        };
        if !allowed {
            return Err(reject(
                AssociationRJResult::Permanent,
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                ),
                format!(
                    "calling AE title {calling:?} from unexpected address {}",
                    peer.ip()
                ),
            ));
        }
    }

    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut contexts = HashMap::new();
    for pc in &rq.presentation_contexts {
        let abs = trim_ae(&pc.abstract_syntax).to_string();
        let supported = abs == uids::VERIFICATION || uids::is_storage_sop_class(&abs);
        let chosen = pc
            .transfer_syntaxes
            .iter()
            .map(|ts| trim_ae(ts))
            .find(|ts| uids::is_accepted_transfer_syntax(ts));
        let (reason, ts) = match (supported, chosen) {
            (false, _) => (
                PresentationContextResultReason::AbstractSyntaxNotSupported,
                uids::IMPLICIT_VR_LE.to_string(),
            ),
            (true, None) => (
                PresentationContextResultReason::TransferSyntaxesNotSupported,
                uids::IMPLICIT_VR_LE.to_string(),
            ),
            (true, Some(ts)) => {
                contexts.insert(
                    pc.id,
                    AcceptedContext {
                        abstract_syntax: abs.clone(),
                        transfer_syntax: ts.to_string(),
                    },
                );
                (PresentationContextResultReason::Acceptance, ts.to_string())
            }
        };
        results.push(PresentationContextResult {
            id: pc.id,
            reason,
            transfer_syntax: ts,
        });
    }
    let peer_max_pdu = crate::ul::peer_max_pdu(&rq.user_variables);
    let ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: uids::APPLICATION_CONTEXT.to_string(),
        presentation_contexts: results,
        user_variables: vec![
            UserVariableItem::MaxLength(node.network.max_pdu_length),
            UserVariableItem::ImplementationClassUID(
                crate::ul::IMPLEMENTATION_CLASS_UID.to_string(),
            ),
            UserVariableItem::ImplementationVersionName(
                crate::ul::IMPLEMENTATION_VERSION_NAME.to_string(),
            ),
        ],
    };
    Ok(Accepted {
        ac,
        contexts,
        peer_max_pdu,
    })
}

pub fn limit_exceeded(max: u32) -> Rejected {
    reject(
        AssociationRJResult::Transient,
        AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
        format!("already {max} associations open"),
    )
}

async fn host_matches(host: &str, ip: IpAddr) -> bool {
    if let Ok(h) = host.parse::<IpAddr>() {
        return h == ip || (h.to_canonical() == ip.to_canonical());
    }
    match tokio::net::lookup_host((host, 0)).await {
        Ok(addrs) => addrs
            .into_iter()
            .any(|a| a.ip().to_canonical() == ip.to_canonical()),
        Err(_) => false,
    }
}
