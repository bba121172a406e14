//! WADO-RS (PS3.18 10.4): study, series and instance retrieve as
//! `multipart/related; type="application/dicom"`, and their `/metadata`
//! as `application/dicom+json` ([`super::metadata`]).
//!
//! An instance is sent as stored (the Part 10 file rtnode wrote) when the
//! client accepts `transfer-syntax=*` or the stored transfer syntax;
//! otherwise it is transcoded with dicom-rs to Explicit VR Little Endian,
//! the default of PS3.18 8.7.3.5.2, which is possible for every native
//! (uncompressed) encoding; a compressed instance the client will not take
//! as it is answers 406 with the reason. A study or series is streamed a
//! file at a time, never held whole in memory.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dicom_encoding::TransferSyntaxIndex;
use tokio::sync::mpsc;
use tracing::warn;

use super::multipart::{self, media_params};
use super::{blocking, Who};
use crate::dicom::part10;
use crate::dicom::uids;
use crate::http::tokens::Role;
use crate::http::{ApiError, AppState};
use crate::store::record::InstanceRecord;

/// What the client accepts for `application/dicom` parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// `transfer-syntax=*`: the stored file as it is.
    AsStored,
    /// These transfer syntaxes (at least Explicit VR Little Endian when the
    /// client named none).
    Syntaxes(Vec<String>),
}

/// Reads the Accept header of a retrieve: multipart/related of
/// application/dicom (or `*/*`, or no header) and the transfer syntaxes.
pub fn wanted(headers: &HeaderMap) -> Result<Wanted, ApiError> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>();
    if accept.is_empty() {
        return Ok(Wanted::Syntaxes(vec![uids::EXPLICIT_VR_LE.to_owned()]));
    }
    let mut syntaxes = Vec::new();
    for range in accept {
        let (media, params) = media_params(range);
        let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let fits = match media.as_str() {
            "*/*" | "multipart/*" => true,
            "multipart/related" => param("type").is_none_or(|t| {
                t.eq_ignore_ascii_case("application/dicom") || t == "*/*" || t == "application/*"
            }),
            _ => false,
        };
        if !fits {
            continue;
        }
        match param("transfer-syntax") {
            Some("*") => return Ok(Wanted::AsStored),
            Some(ts) => syntaxes.push(ts.to_owned()),
            None => syntaxes.push(uids::EXPLICIT_VR_LE.to_owned()),
        }
    }
    if syntaxes.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "instances are sent as multipart/related; type=\"application/dicom\"",
        ));
    }
    Ok(Wanted::Syntaxes(syntaxes))
}

/// One instance ready to send: its bytes and transfer syntax.
fn prepare(
    data_dir: &std::path::Path,
    rec: &InstanceRecord,
    want: &Wanted,
) -> Result<(Vec<u8>, String), ApiError> {
    let path: PathBuf = data_dir.join(&rec.path);
    let stored_ts = rec.transfer_syntax_uid.as_str();
    let (as_is, explicit_ok) = match want {
        Wanted::AsStored => (true, true),
        Wanted::Syntaxes(s) => (
            s.iter().any(|t| t == stored_ts),
            s.iter().any(|t| t == uids::EXPLICIT_VR_LE),
        ),
    };
    if as_is {
        let bytes = std::fs::read(&path).map_err(|e| {
            ApiError::internal(format!("reading instance {}: {e}", rec.sop_instance_uid))
        })?;
        return Ok((bytes, stored_ts.to_owned()));
    }
    if !explicit_ok {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "instance {} is stored in {stored_ts}; it can be sent as stored (transfer-syntax=*) or as {}",
                rec.sop_instance_uid,
                uids::EXPLICIT_VR_LE
            ),
        ));
    }
    transcode(&path, rec).map(|b| (b, uids::EXPLICIT_VR_LE.to_owned()))
}

/// The stored file re-encoded in Explicit VR Little Endian; 406 when its
/// pixel data are compressed (encapsulated).
fn transcode(path: &std::path::Path, rec: &InstanceRecord) -> Result<Vec<u8>, ApiError> {
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(&rec.transfer_syntax_uid)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("transfer syntax {} is not known", rec.transfer_syntax_uid),
            )
        })?;
    if ts.is_encapsulated_pixel_data() {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "instance {} has compressed pixel data ({}); ask for transfer-syntax=* to receive it as stored",
                rec.sop_instance_uid, rec.transfer_syntax_uid
            ),
        ));
    }
    let obj = dicom_object::open_file(path).map_err(|e| {
        ApiError::internal(format!("reading instance {}: {e}", rec.sop_instance_uid))
    })?;
    let mut out = part10::encode_file_meta(
        &rec.sop_class_uid,
        &rec.sop_instance_uid,
        uids::EXPLICIT_VR_LE,
        &rec.calling_ae,
    );
    let explicit = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    obj.write_dataset_with_ts(&mut out, &explicit)
        .map_err(|e| {
            ApiError::internal(format!(
                "transcoding instance {}: {e}",
                rec.sop_instance_uid
            ))
        })?;
    Ok(out)
}

/// A response body fed by a channel, a part at a time.
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(http_body::Frame::data)))
    }
}

/// The multipart answer of `recs`, streamed. The first instance is
/// prepared before answering, so that a 406 or a read error is an answer
/// of its own rather than a broken stream.
async fn retrieve(
    st: &AppState,
    who: &Who,
    headers: &HeaderMap,
    recs: Vec<InstanceRecord>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    if recs.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such instances"));
    }
    let want = wanted(headers)?;
    let data_dir = st.node.store.data_dir().to_path_buf();
    let boundary = multipart::new_boundary();
    let first = {
        let (d, r, w) = (data_dir.clone(), recs[0].clone(), want.clone());
        blocking(move || prepare(&d, &r, &w)).await?
    };
    who.audit(
        &st.node,
        crate::audit::Event {
            event: "DICOMInstancesTransferred",
            action: "wado-rs",
            patient_id: recs[0].patient.id.clone(),
            study_instance_uid: recs[0].study_instance_uid.clone(),
            outcome: format!("{} instances", recs.len()),
            ..Default::default()
        },
    );
    let (tx, rx) = mpsc::channel(2);
    let b = boundary.clone();
    tokio::task::spawn_blocking(move || {
        let part = |(bytes, ts): (Vec<u8>, String)| {
            let mut out = Vec::with_capacity(bytes.len() + 200);
            multipart::push_part(
                &mut out,
                &b,
                &format!("application/dicom; transfer-syntax={ts}"),
                &bytes,
            );
            Bytes::from(out)
        };
        if tx.blocking_send(Ok(part(first))).is_err() {
            return;
        }
        for rec in &recs[1..] {
            let chunk = match prepare(&data_dir, rec, &want) {
                Ok(p) => Ok(part(p)),
                Err(e) => {
                    warn!(sop_instance_uid = %rec.sop_instance_uid, error = %e.message, "WADO-RS stream broken off");
                    Err(std::io::Error::other(e.message))
                }
            };
            let stop = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || stop {
                return;
            }
        }
        let mut end = Vec::new();
        multipart::close(&mut end, &b);
        let _ = tx.blocking_send(Ok(Bytes::from(end)));
    });
    let ct = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let mut r = Body::new(ChannelBody(rx)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ct).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// The record of one instance, checked to be in `study` and `series`.
pub(super) async fn instance_record(
    st: &AppState,
    study: &str,
    series: &str,
    sop: &str,
) -> Result<InstanceRecord, ApiError> {
    let node = st.node.clone();
    let s = sop.to_owned();
    let rec = blocking(move || {
        node.store
            .index()
            .get(&s)
            .map_err(|e| ApiError::internal(format!("{e:#}")))
    })
    .await?;
    rec.filter(|r| r.study_instance_uid == study && r.series_instance_uid == series)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such instance"))
}

/// The records of one study, series by series.
pub(super) async fn study_records(
    st: &AppState,
    study: &str,
) -> Result<Vec<InstanceRecord>, ApiError> {
    let node = st.node.clone();
    let s = study.to_owned();
    blocking(move || {
        node.store
            .index()
            .study_instances(&s)
            .map_err(|e| ApiError::internal(format!("{e:#}")))
    })
    .await
}

/// `GET /dicom-web/studies/{study}`.
pub async fn study(
    State(st): State<AppState>,
    who: Who,
    Path(study): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let recs = study_records(&st, &study).await?;
    retrieve(&st, &who, &headers, recs).await
}

/// `GET /dicom-web/studies/{study}/series/{series}`.
pub async fn series(
    State(st): State<AppState>,
    who: Who,
    Path((study, series)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let recs = super::qido::series_records(&st, &study, &series).await?;
    retrieve(&st, &who, &headers, recs).await
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{sop}`.
pub async fn instance(
    State(st): State<AppState>,
    who: Who,
    Path((study, series, sop)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let rec = instance_record(&st, &study, &series, &sop).await?;
    retrieve(&st, &who, &headers, vec![rec]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Result<Wanted, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        wanted(&h)
    }

    #[test]
    fn accept_header() {
        assert_eq!(
            accept("multipart/related; type=\"application/dicom\"; transfer-syntax=*").unwrap(),
            Wanted::AsStored
        );
        assert_eq!(
            accept("multipart/related; type=\"application/dicom\"").unwrap(),
            Wanted::Syntaxes(vec![uids::EXPLICIT_VR_LE.into()])
        );
        assert_eq!(
            accept(
                "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2"
            )
            .unwrap(),
            Wanted::Syntaxes(vec![uids::IMPLICIT_VR_LE.into()])
        );
        assert_eq!(
            accept("application/json").unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert!(wanted(&HeaderMap::new()).is_ok());
    }
}
