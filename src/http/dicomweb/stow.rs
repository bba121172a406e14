//! STOW-RS (PS3.18 10.5): `POST /dicom-web/studies[/{study}]` with a
//! `multipart/related; type="application/dicom"` body of Part 10 instances.
//!
//! Each instance takes the C-STORE path: the same checks before a byte is
//! written (storage SOP class, a SOPInstanceUID that passes
//! `dicom::uids::check_uid`, an accepted transfer syntax, free space above
//! `storage.min_free_bytes`), then `Store::begin` → `PendingWrite::write`
//! → `finish` (fsync, structural check, the Study and Series UIDs checked)
//! → `Store::commit`, which answers only once the file is renamed, its
//! directory fsynced and the index committed, and which tells the pipeline
//! of the instance as it does for C-STORE. The token's AE title is
//! recorded as the calling AE.
//!
//! The whole body is read into memory first, bounded by
//! `http.max_body_bytes` (413 past it, before anything is written); its
//! instances are then written and committed up to [`IN_FLIGHT`] at a time
//! (each its own commit, acknowledged on its own: a failure of one leaves
//! the others stored), without copying the body.
//!
//! The answer (PS3.18 10.5.3): 200 when every instance was stored, 202
//! when some failed, 409 when all failed, with ReferencedSOPSequence
//! (a RetrieveURL each) and FailedSOPSequence (a FailureReason each, the
//! status C-STORE would have answered). RetrieveURLs are absolute paths on
//! this server (the request names no scheme this side of a proxy).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tracing::{debug, warn};

use super::json::{tags, DataSet};
use super::multipart;
use super::{dicom_json, Who, BASE};
use crate::dicom::part10;
use crate::dicom::status::DimseStatus;
use crate::dicom::uids::{self, check_uid, UidCheck};
use crate::http::tokens::Role;
use crate::http::{ApiError, AppState};
use crate::node::Node;
use crate::scp::Stats;
use crate::store::StoreFailure;

/// Data set bytes are handed to the store's writer in pieces of this size.
const CHUNK: usize = 256 * 1024;
/// Instances of one request being written or committed at once.
pub const IN_FLIGHT: usize = 8;

/// `POST /dicom-web/studies`.
pub async fn store(
    State(st): State<AppState>,
    who: Who,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    store_instances(st, who, headers, body, None).await
}

/// `POST /dicom-web/studies/{study}`: every instance must belong to `study`.
pub async fn store_in_study(
    State(st): State<AppState>,
    who: Who,
    Path(study): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    store_instances(st, who, headers, body, Some(study)).await
}

/// What became of one part.
struct Outcome {
    patient_id: String,
    sop_class: String,
    sop_instance: String,
    study: String,
    series: String,
    result: Result<(), StoreFailure>,
}

async fn store_instances(
    st: AppState,
    who: Who,
    headers: HeaderMap,
    body: Bytes,
    study: Option<String>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Operator)?;
    may_store(&st.node, &who)?;
    let boundary = multipart::stow_boundary(&headers)
        .map_err(|e| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()))?;
    let parts = multipart::split(&body, &boundary)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if parts.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request holds no instance",
        ));
    }
    let calling_ae = who.calling_ae();
    // Instances are written and committed a few at a time, so that the
    // store's commit thread can make them durable in one group commit.
    let mut outcomes: Vec<Option<Outcome>> = (0..parts.len()).map(|_| None).collect();
    let mut running = tokio::task::JoinSet::new();
    for (i, part) in parts.iter().enumerate() {
        if running.len() >= IN_FLIGHT {
            collect(&mut running, &mut outcomes, &st.node, &who).await;
        }
        let (node, study, ae) = (st.node.clone(), study.clone(), calling_ae.clone());
        let content_type = part.content_type.clone();
        let bytes = body.slice_ref(part.body);
        running.spawn(async move {
            let n = bytes.len() as u64;
            let o = store_part(&node, &content_type, bytes, study.as_deref(), &ae).await;
            (i, o, n)
        });
    }
    while !running.is_empty() {
        collect(&mut running, &mut outcomes, &st.node, &who).await;
    }
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Outcome {
                patient_id: String::new(),
                sop_class: String::new(),
                sop_instance: String::new(),
                study: String::new(),
                series: String::new(),
                result: Err(StoreFailure::new(
                    DimseStatus::PROCESSING_FAILURE,
                    "the writer ended without an answer",
                )),
            })
        })
        .collect();
    let stored = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let status = if stored == outcomes.len() {
        StatusCode::OK
    } else if stored == 0 {
        StatusCode::CONFLICT
    } else {
        StatusCode::ACCEPTED
    };
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    for o in outcomes {
        let item = DataSet::new()
            .text(tags::REFERENCED_SOP_CLASS_UID, "UI", &o.sop_class)
            .text(tags::REFERENCED_SOP_INSTANCE_UID, "UI", &o.sop_instance);
        match o.result {
            Ok(()) => referenced.push(item.text(
                tags::RETRIEVE_URL,
                "UR",
                &format!(
                    "{BASE}/studies/{}/series/{}/instances/{}",
                    o.study, o.series, o.sop_instance
                ),
            )),
            Err(f) => {
                failed.push(item.int(tags::FAILURE_REASON, "US", Some(f.status.code().into())))
            }
        }
    }
    let mut answer = DataSet::new();
    if let Some(study) = &study {
        if check_uid(study).is_ok() {
            answer = answer.text(tags::RETRIEVE_URL, "UR", &format!("{BASE}/studies/{study}"));
        }
    }
    let answer = answer
        .sequence(tags::REFERENCED_SOP_SEQUENCE, referenced)
        .sequence(tags::FAILED_SOP_SEQUENCE, failed);
    Ok(dicom_json(status, &answer.into_value()))
}

/// 403 when the token's AE title is in the peers file with
/// `may_store: false`: the operator said that client may not store, over
/// DICOM or HTTP. (A token's role is what admits it; the peers file is not
/// required to list its AE title.)
fn may_store(node: &Node, who: &Who) -> Result<(), ApiError> {
    let ae = who.calling_ae();
    if ae.is_empty() || node.peers().find(&ae).is_none_or(|p| p.may_store) {
        return Ok(());
    }
    who.audit(
        node,
        crate::audit::Event {
            event: "SecurityAlert",
            action: "http-forbidden",
            outcome: format!("AE title {ae} may not store (peers file)"),
            ..Default::default()
        },
    );
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!("the token's AE title {ae:?} is in the peers file without may_store"),
    ))
}

/// Waits for one running part and records its outcome.
async fn collect(
    running: &mut tokio::task::JoinSet<(usize, Outcome, u64)>,
    outcomes: &mut [Option<Outcome>],
    node: &Node,
    who: &Who,
) {
    match running.join_next().await {
        Some(Ok((i, o, bytes))) => {
            record(node, who, &o, bytes);
            outcomes[i] = Some(o);
        }
        Some(Err(e)) => warn!(error = %e, "STOW-RS writer task failed"),
        None => {}
    }
}

/// Stats, log and audit trail for one part, as the SCP does for a C-STORE.
fn record(node: &Node, who: &Who, o: &Outcome, bytes: u64) {
    match &o.result {
        Ok(()) => {
            Stats::add(&node.stats.instances_stored, 1);
            Stats::add(&node.stats.bytes_stored, bytes);
            debug!(user = %who.caller.name, sop_instance_uid = %o.sop_instance, bytes, "stored by STOW-RS");
        }
        Err(f) => {
            Stats::add(&node.stats.store_failures, 1);
            node.stats.failure(&format!("store_{:04x}", f.status));
            warn!(
                user = %who.caller.name,
                sop_instance_uid = %o.sop_instance.escape_debug(),
                status = format!("{:04X}", f.status),
                reason = %f.comment,
                "STOW-RS instance refused"
            );
        }
    }
    who.audit(
        node,
        crate::audit::Event {
            event: "DICOMInstancesTransferred",
            action: if o.result.is_ok() {
                "received"
            } else {
                "refused"
            },
            patient_id: o.patient_id.clone(),
            study_instance_uid: o.study.escape_debug().to_string(),
            sop_instance_uid: o.sop_instance.escape_debug().to_string(),
            sop_class_uid: o.sop_class.escape_debug().to_string(),
            outcome: match &o.result {
                Ok(()) => "0000".into(),
                Err(f) => f.to_string(),
            },
            ..Default::default()
        },
    );
}

/// Checks one part as the SCP checks a C-STORE request, then stores it.
async fn store_part(
    node: &std::sync::Arc<Node>,
    content_type: &str,
    part: Bytes,
    study: Option<&str>,
    calling_ae: &str,
) -> Outcome {
    let mut o = Outcome {
        patient_id: String::new(),
        sop_class: String::new(),
        sop_instance: String::new(),
        study: String::new(),
        series: String::new(),
        result: Ok(()),
    };
    let fail = |mut o: Outcome, status, comment: String| {
        o.result = Err(StoreFailure::new(status, comment));
        o
    };
    let (media, _) = multipart::media_params(content_type);
    if !media.is_empty() && media != "application/dicom" {
        return fail(
            o,
            DimseStatus::CANNOT_UNDERSTAND,
            format!("part of type {media:?}: application/dicom is required"),
        );
    }
    let mut reader = &part[..];
    let meta = match part10::read_file_meta(&mut reader) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return fail(
                o,
                DimseStatus::CANNOT_UNDERSTAND,
                "not a DICOM Part 10 instance (no DICM prefix)".into(),
            )
        }
        Err(e) => {
            return fail(
                o,
                DimseStatus::CANNOT_UNDERSTAND,
                format!("file meta group: {e}"),
            )
        }
    };
    o.sop_class = meta.sop_class_uid.clone();
    o.sop_instance = meta.sop_instance_uid.clone();
    if !uids::is_storage_sop_class(&meta.sop_class_uid) {
        return fail(
            o,
            DimseStatus::SOP_CLASS_NOT_SUPPORTED,
            format!("{:?} is not a storage SOP class", meta.sop_class_uid),
        );
    }
    match check_uid(&meta.sop_instance_uid) {
        Ok(UidCheck::Valid) => {}
        Ok(UidCheck::LeadingZeroComponent) => {
            warn!(calling_ae, uid = %meta.sop_instance_uid, "SOPInstanceUID has a component with a leading zero; stored anyway")
        }
        Err(e) => return fail(o, DimseStatus::INVALID_UID, format!("SOPInstanceUID: {e}")),
    }
    if !uids::is_accepted_transfer_syntax(&meta.transfer_syntax_uid) {
        return fail(
            o,
            DimseStatus::SOP_CLASS_NOT_SUPPORTED,
            format!(
                "transfer syntax {:?} is not accepted",
                meta.transfer_syntax_uid
            ),
        );
    }
    if let Err(f) = node.store.check_free_space() {
        o.result = Err(f);
        return o;
    }
    let offset = usize::try_from(meta.dataset_offset)
        .unwrap_or(usize::MAX)
        .min(part.len());
    let data_set = part.slice(offset..);
    let store = node.store.clone();
    let ae = calling_ae.to_owned();
    let prepared = tokio::task::spawn_blocking(move || {
        let mut pending = store.begin(
            &meta.sop_class_uid,
            &meta.sop_instance_uid,
            &meta.transfer_syntax_uid,
            &ae,
        )?;
        for c in data_set.chunks(CHUNK) {
            pending.write(c);
        }
        pending.finish()
    })
    .await;
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(f)) => {
            o.result = Err(f);
            return o;
        }
        Err(e) => {
            return fail(
                o,
                DimseStatus::PROCESSING_FAILURE,
                format!("writer failed: {e}"),
            )
        }
    };
    o.patient_id = prepared.record.patient.id.clone();
    o.study = prepared.record.study_instance_uid.clone();
    o.series = prepared.record.series_instance_uid.clone();
    if let Some(study) = study {
        if study != o.study {
            let _ = std::fs::remove_file(&prepared.tmp_path);
            let why = format!("the instance belongs to study {}, not {study}", o.study);
            return fail(o, DimseStatus::DATA_SET_DOES_NOT_MATCH, why);
        }
    }
    o.result = node.store.commit(prepared).await;
    o
}
