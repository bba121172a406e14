//! WADO-RS metadata (PS3.18 10.4.1.1.2): `/studies/{study}/metadata`,
//! `.../series/{series}/metadata`, `.../instances/{sop}/metadata`, each
//! instance's data set in DICOM JSON (PS3.18 F.2), read with dicom-rs.
//!
//! Values of binary VRs (OB, OW, OF, OD, OL, OV, UN) and encapsulated pixel
//! data are left out: such an attribute is listed with its VR only (this
//! node offers no bulk data resource yet). Numbers are JSON numbers, person
//! names their `Alphabetic` group, text values as decoded by dicom-rs with
//! the data set's SpecificCharacterSet.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dicom_core::value::Value as DValue;
use dicom_core::VR;
use dicom_object::InMemDicomObject;
use serde_json::{json, Map, Value};

use super::{blocking, dicom_json, Who};
use crate::http::tokens::Role;
use crate::http::{ApiError, AppState};
use crate::store::record::InstanceRecord;

/// Most instances one metadata answer describes (its body is built in memory).
pub const MAX_INSTANCES: usize = 5000;

/// One data set in DICOM JSON.
pub fn data_set_json(obj: &InMemDicomObject) -> Value {
    let mut out = Map::new();
    for elem in obj {
        let tag = elem.header().tag;
        let vr = elem.header().vr;
        let mut v = Map::new();
        v.insert("vr".into(), json!(vr.to_string()));
        if let Some(values) = element_values(vr, elem.value()) {
            if !values.is_empty() {
                v.insert("Value".into(), Value::Array(values));
            }
        }
        out.insert(
            format!("{:04X}{:04X}", tag.group(), tag.element()),
            Value::Object(v),
        );
    }
    Value::Object(out)
}

fn element_values(
    vr: VR,
    value: &DValue<InMemDicomObject, dicom_core::value::InMemFragment>,
) -> Option<Vec<Value>> {
    if let Some(items) = value.items() {
        return Some(items.iter().map(data_set_json).collect());
    }
    let p = value.primitive()?;
    let strings = || -> Vec<String> {
        p.to_multi_str()
            .iter()
            .map(|v| v.trim_end_matches(['\0', ' ']).to_owned())
            .collect()
    };
    let values = match vr {
        VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN => return None,
        VR::SQ => return None,
        VR::PN => strings()
            .into_iter()
            .map(|s| {
                if s.is_empty() {
                    Value::Null
                } else {
                    json!({ "Alphabetic": s })
                }
            })
            .collect(),
        VR::US | VR::SS | VR::UL | VR::SL | VR::IS => p
            .to_multi_int::<i64>()
            .ok()?
            .into_iter()
            .map(Value::from)
            .collect(),
        VR::UV | VR::SV => p
            .to_multi_int::<i128>()
            .ok()?
            .into_iter()
            .map(|n| {
                i64::try_from(n)
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(n.to_string()))
            })
            .collect(),
        VR::FL | VR::FD | VR::DS => p
            .to_multi_float64()
            .ok()?
            .into_iter()
            .map(|f| {
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            })
            .collect(),
        VR::AT => match p {
            dicom_core::PrimitiveValue::Tags(t) => t
                .iter()
                .map(|t| json!(format!("{:04X}{:04X}", t.group(), t.element())))
                .collect(),
            _ => return None,
        },
        _ => strings()
            .into_iter()
            .map(|s| if s.is_empty() { Value::Null } else { json!(s) })
            .collect(),
    };
    Some(values)
}

async fn answer(st: &AppState, who: &Who, recs: Vec<InstanceRecord>) -> Result<Response, ApiError> {
    if recs.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such instances"));
    }
    if recs.len() > MAX_INSTANCES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} instances; ask for the metadata of a series (at most {MAX_INSTANCES})",
                recs.len()
            ),
        ));
    }
    who.audit(
        &st.node,
        crate::audit::Event {
            event: "DICOMInstancesAccessed",
            action: "wado-rs-metadata",
            patient_id: recs[0].patient.id.clone(),
            study_instance_uid: recs[0].study_instance_uid.clone(),
            outcome: format!("{} instances", recs.len()),
            ..Default::default()
        },
    );
    let data_dir = st.node.store.data_dir().to_path_buf();
    let out = blocking(move || {
        let mut out = Vec::with_capacity(recs.len());
        for rec in &recs {
            let obj = dicom_object::OpenFileOptions::new()
                .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
                .open_file(data_dir.join(&rec.path))
                .map_err(|e| {
                    ApiError::internal(format!("reading instance {}: {e}", rec.sop_instance_uid))
                })?;
            out.push(data_set_json(&obj));
        }
        Ok(out)
    })
    .await?;
    Ok(dicom_json(StatusCode::OK, &Value::Array(out)))
}

/// `GET /dicom-web/studies/{study}/metadata`.
pub async fn study(
    State(st): State<AppState>,
    who: Who,
    Path(study): Path<String>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let recs = super::wado::study_records(&st, &study).await?;
    answer(&st, &who, recs).await
}

/// `GET /dicom-web/studies/{study}/series/{series}/metadata`.
pub async fn series(
    State(st): State<AppState>,
    who: Who,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let recs = super::qido::series_records(&st, &study, &series).await?;
    answer(&st, &who, recs).await
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata`.
pub async fn instance(
    State(st): State<AppState>,
    who: Who,
    Path((study, series, sop)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let rec = super::wado::instance_record(&st, &study, &series, &sop).await?;
    answer(&st, &who, vec![rec]).await
}
