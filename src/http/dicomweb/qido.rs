//! QIDO-RS (PS3.18 10.6): searches of the instance index, answered as
//! `application/dicom+json`.
//!
//! - `GET /dicom-web/studies`: matching on StudyInstanceUID (a list),
//!   PatientID, PatientName (`*` and `?` wildcards, case-insensitive),
//!   StudyDate (a `YYYYMMDD-YYYYMMDD` range, either end open),
//!   AccessionNumber and ModalitiesInStudy;
//! - `GET /dicom-web/studies/{study}/series`: Modality, SeriesInstanceUID
//!   (a list), SeriesNumber;
//! - `GET /dicom-web/studies/{study}/series/{series}/instances`:
//!   SOPInstanceUID (a list), SOPClassUID, InstanceNumber.
//!
//! Keys may be named by keyword or by tag (`00100020`). `limit` (default
//! [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) and `offset` page the result;
//! a page that leaves results behind carries `Warning: 299 …`;
//! `includefield` and `fuzzymatching=false` are accepted (the answer holds
//! the attributes the index has, listed above plus the patient's and the
//! counts); any other key is refused with 400 rather than ignored.
//!
//! The searches below a study read only that study's rows; a study search
//! by a key other than StudyInstanceUID walks the study table (see
//! `store::query` for why), so its cost grows with the studies held. The
//! top-level `/series` and `/instances` searches are not offered: the index
//! holds no table that would keep them from walking the whole archive.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::json::{tags, DataSet};
use super::{blocking, dicom_json, Who, BASE};
use crate::http::tokens::Role;
use crate::http::{ApiError, AppState};
use crate::store::record::InstanceRecord;

/// Results per answer when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// The largest `limit` honoured.
pub const MAX_LIMIT: usize = 10_000;

/// The matching keys and paging of one search.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Search {
    keys: Vec<(&'static str, String)>,
    offset: usize,
    limit: usize,
}

const KEYS: &[(&str, &str)] = &[
    ("StudyInstanceUID", "0020000D"),
    ("PatientID", "00100020"),
    ("PatientName", "00100010"),
    ("StudyDate", "00080020"),
    ("AccessionNumber", "00080050"),
    ("ModalitiesInStudy", "00080061"),
    ("Modality", "00080060"),
    ("SeriesInstanceUID", "0020000E"),
    ("SeriesNumber", "00200011"),
    ("SOPInstanceUID", "00080018"),
    ("SOPClassUID", "00080016"),
    ("InstanceNumber", "00200013"),
];

impl Search {
    /// Parses the query, accepting the keys of `level` only.
    pub fn parse(query: &[(String, String)], level: &[&'static str]) -> Result<Search, ApiError> {
        let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
        let mut s = Search {
            limit: DEFAULT_LIMIT,
            ..Search::default()
        };
        for (k, v) in query {
            match k.as_str() {
                "limit" => {
                    s.limit = v
                        .parse::<usize>()
                        .map_err(|_| bad(format!("limit={v:?} is not a count")))?
                        .min(MAX_LIMIT)
                }
                "offset" => {
                    s.offset = v
                        .parse()
                        .map_err(|_| bad(format!("offset={v:?} is not a count")))?
                }
                "includefield" => {}
                "fuzzymatching" if v == "false" => {}
                _ => {
                    let key = KEYS
                        .iter()
                        .find(|(kw, tag)| k == kw || k.eq_ignore_ascii_case(tag))
                        .map(|(kw, _)| *kw)
                        .filter(|kw| level.contains(kw))
                        .ok_or_else(|| {
                            bad(format!(
                                "{k:?} is not a matching key here (keys: {})",
                                level.join(", ")
                            ))
                        })?;
                    if key == "StudyDate" && date_range(v).is_none() {
                        return Err(bad(format!("StudyDate={v:?} is not a date or range")));
                    }
                    s.keys.push((key, v.clone()));
                }
            }
        }
        Ok(s)
    }

    fn get<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.keys
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether every condition on `key` holds for `value` (an absent key
    /// matches everything; an empty condition too, as universal matching).
    fn holds(&self, key: &str, value: &str) -> bool {
        self.get(key).all(|cond| matches(key, cond, value))
    }
}

/// One matching condition on one value, by the key's matching kind.
fn matches(key: &str, cond: &str, value: &str) -> bool {
    if cond.is_empty() {
        return true;
    }
    match key {
        "StudyInstanceUID" | "SeriesInstanceUID" | "SOPInstanceUID" => {
            uid_list(cond).any(|u| u == value)
        }
        "StudyDate" => date_range(cond).is_some_and(|(lo, hi)| {
            !value.is_empty() && lo.is_none_or(|l| value >= l) && hi.is_none_or(|h| value <= h)
        }),
        "PatientName" => wildcard(&cond.to_lowercase(), &value.to_lowercase()),
        _ => wildcard(cond, value),
    }
}

fn uid_list(cond: &str) -> impl Iterator<Item = &str> {
    cond.split([',', '\\'])
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

/// `YYYYMMDD`, `A-B`, `-B`, `A-`: the inclusive bounds.
fn date_range(cond: &str) -> Option<(Option<&str>, Option<&str>)> {
    let ok = |d: &str| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit());
    match cond.split_once('-') {
        None => ok(cond).then_some((Some(cond), Some(cond))),
        Some((a, b)) => {
            let a = (!a.is_empty()).then_some(a);
            let b = (!b.is_empty()).then_some(b);
            let valid = (a.is_some() || b.is_some()) && a.is_none_or(ok) && b.is_none_or(ok);
            valid.then_some((a, b))
        }
    }
}

/// `*` matches any run of characters, `?` any one (PS3.4 C.2.2.2.4).
fn wildcard(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

const STUDY_KEYS: &[&str] = &[
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "StudyDate",
    "AccessionNumber",
    "ModalitiesInStudy",
];
const SERIES_KEYS: &[&str] = &["Modality", "SeriesInstanceUID", "SeriesNumber"];
const INSTANCE_KEYS: &[&str] = &["SOPInstanceUID", "SOPClassUID", "InstanceNumber"];

/// The answer: at most `limit` results (one more was fetched to tell),
/// with PS3.18's Warning header when more are there to be asked for.
fn answer(mut out: Vec<serde_json::Value>, limit: usize) -> Response {
    let more = out.len() > limit;
    out.truncate(limit);
    let mut r = dicom_json(StatusCode::OK, &serde_json::Value::Array(out));
    if more {
        r.headers_mut().insert(
            axum::http::header::WARNING,
            axum::http::HeaderValue::from_static(
                "299 rtnode: There are additional results that can be requested",
            ),
        );
    }
    r
}

fn audit_search(st: &AppState, who: &Who, n: usize) {
    who.audit(
        &st.node,
        crate::audit::Event {
            event: "Query",
            action: "qido-rs",
            outcome: format!("{n} results"),
            ..Default::default()
        },
    );
}

/// `GET /dicom-web/studies`.
pub async fn studies(
    State(st): State<AppState>,
    who: Who,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let search = Search::parse(&q, STUDY_KEYS)?;
    let limit = search.limit;
    let node = st.node.clone();
    let hits = blocking(move || {
        let uids: Option<Vec<String>> = search
            .get("StudyInstanceUID")
            .next()
            .filter(|c| !c.is_empty())
            .map(|c| uid_list(c).map(str::to_owned).collect());
        let s = search.clone();
        node.store
            .index()
            .search_studies(
                uids.as_deref(),
                &move |study, patient, modalities| {
                    s.holds("StudyInstanceUID", &study.study_instance_uid)
                        && s.holds("PatientID", &patient.id)
                        && s.holds("PatientName", &patient.name)
                        && s.holds("StudyDate", &study.study_date)
                        && s.holds("AccessionNumber", &study.accession_number)
                        && s.get("ModalitiesInStudy")
                            .all(|c| c.is_empty() || modalities.iter().any(|m| matches("", c, m)))
                },
                search.offset,
                search.limit.saturating_add(1),
            )
            .map_err(|e| ApiError::internal(format!("{e:#}")))
    })
    .await?;
    audit_search(&st, &who, hits.len().min(limit));
    let out: Vec<serde_json::Value> = hits
        .into_iter()
        .map(|h| {
            DataSet::new()
                .text(tags::STUDY_DATE, "DA", &h.study.study_date)
                .text(tags::ACCESSION_NUMBER, "SH", &h.study.accession_number)
                .texts(tags::MODALITIES_IN_STUDY, "CS", &h.modalities)
                .text(tags::STUDY_DESCRIPTION, "LO", &h.study.study_description)
                .person_name(tags::PATIENT_NAME, &h.patient.name)
                .text(tags::PATIENT_ID, "LO", &h.patient.id)
                .text(tags::PATIENT_BIRTH_DATE, "DA", &h.patient.birth_date)
                .text(tags::PATIENT_SEX, "CS", &h.patient.sex)
                .text(tags::STUDY_INSTANCE_UID, "UI", &h.study.study_instance_uid)
                .int(
                    tags::NUMBER_OF_STUDY_RELATED_SERIES,
                    "IS",
                    Some(h.series as i64),
                )
                .int(
                    tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
                    "IS",
                    Some(h.instances as i64),
                )
                .text(
                    tags::RETRIEVE_URL,
                    "UR",
                    &format!("{BASE}/studies/{}", h.study.study_instance_uid),
                )
                .into_value()
        })
        .collect();
    Ok(answer(out, limit))
}

/// `GET /dicom-web/studies/{study}/series`.
pub async fn study_series(
    State(st): State<AppState>,
    who: Who,
    Path(study): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let search = Search::parse(&q, SERIES_KEYS)?;
    let node = st.node.clone();
    let s = study.clone();
    let hits = blocking(move || {
        node.store
            .index()
            .study_series(&s)
            .map_err(|e| ApiError::internal(format!("{e:#}")))
    })
    .await?;
    let out: Vec<serde_json::Value> = hits
        .into_iter()
        .filter(|h| {
            search.holds("Modality", &h.series.modality)
                && search.holds("SeriesInstanceUID", &h.series.series_instance_uid)
                && search.holds(
                    "SeriesNumber",
                    &h.series
                        .series_number
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                )
        })
        .skip(search.offset)
        .take(search.limit.saturating_add(1))
        .map(|h| {
            let s = &h.series;
            DataSet::new()
                .text(tags::MODALITY, "CS", &s.modality)
                .text(tags::SERIES_DESCRIPTION, "LO", &s.series_description)
                .text(tags::STUDY_INSTANCE_UID, "UI", &study)
                .text(tags::SERIES_INSTANCE_UID, "UI", &s.series_instance_uid)
                .int(tags::SERIES_NUMBER, "IS", s.series_number)
                .int(
                    tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
                    "IS",
                    Some(h.instances as i64),
                )
                .text(
                    tags::RETRIEVE_URL,
                    "UR",
                    &format!("{BASE}/studies/{study}/series/{}", s.series_instance_uid),
                )
                .into_value()
        })
        .collect();
    audit_search(&st, &who, out.len().min(search.limit));
    Ok(answer(out, search.limit))
}

/// The records of one series, checked to belong to `study`.
pub(super) async fn series_records(
    st: &AppState,
    study: &str,
    series: &str,
) -> Result<Vec<InstanceRecord>, ApiError> {
    let node = st.node.clone();
    let s = series.to_owned();
    let recs = blocking(move || {
        node.store
            .index()
            .series_instances(&s)
            .map_err(|e| ApiError::internal(format!("{e:#}")))
    })
    .await?;
    Ok(recs
        .into_iter()
        .filter(|r| r.study_instance_uid == study)
        .collect())
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances`.
pub async fn series_instances(
    State(st): State<AppState>,
    who: Who,
    Path((study, series)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    who.require(&st.node, Role::Read)?;
    let search = Search::parse(&q, INSTANCE_KEYS)?;
    let mut recs = series_records(&st, &study, &series).await?;
    recs.sort_by_key(|r| (r.instance_number, r.sop_instance_uid.clone()));
    let out: Vec<serde_json::Value> = recs
        .iter()
        .filter(|r| {
            search.holds("SOPInstanceUID", &r.sop_instance_uid)
                && search.holds("SOPClassUID", &r.sop_class_uid)
                && search.holds(
                    "InstanceNumber",
                    &r.instance_number.map(|n| n.to_string()).unwrap_or_default(),
                )
        })
        .skip(search.offset)
        .take(search.limit.saturating_add(1))
        .map(|r| {
            DataSet::new()
                .text(tags::SOP_CLASS_UID, "UI", &r.sop_class_uid)
                .text(tags::SOP_INSTANCE_UID, "UI", &r.sop_instance_uid)
                .text(tags::MODALITY, "CS", &r.modality)
                .text(tags::STUDY_INSTANCE_UID, "UI", &r.study_instance_uid)
                .text(tags::SERIES_INSTANCE_UID, "UI", &r.series_instance_uid)
                .int(tags::INSTANCE_NUMBER, "IS", r.instance_number)
                .text(
                    tags::RETRIEVE_URL,
                    "UR",
                    &format!(
                        "{BASE}/studies/{study}/series/{series}/instances/{}",
                        r.sop_instance_uid
                    ),
                )
                .into_value()
        })
        .collect();
    audit_search(&st, &who, out.len().min(search.limit));
    Ok(answer(out, search.limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules() {
        assert!(wildcard("Doe*", "Doe^Jane"));
        assert!(wildcard("*Ja?e", "Doe^Jane"));
        assert!(!wildcard("Doe", "Doe^Jane"));
        assert!(wildcard("", ""));
        assert!(matches("PatientName", "doe*", "DOE^JANE"));
        assert!(!matches("PatientID", "p1", "P1"));
        assert!(matches("StudyDate", "20240101-20240131", "20240115"));
        assert!(matches("StudyDate", "-20240131", "20240115"));
        assert!(matches("StudyDate", "20240116-", "20240116"));
        assert!(!matches("StudyDate", "20240116-", "20240115"));
        assert!(!matches("StudyDate", "20240116-", ""));
        assert!(date_range("2024").is_none());
        assert!(date_range("-").is_none());
        assert!(matches("StudyInstanceUID", "1.2,1.3", "1.3"));
        assert!(matches("StudyInstanceUID", "1.2\\1.3", "1.2"));
        assert!(!matches("StudyInstanceUID", "1.2", "1.23"));
    }

    #[test]
    fn parse_keys() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let s = Search::parse(&q(&[("00100020", "P1"), ("limit", "5")]), STUDY_KEYS).unwrap();
        assert_eq!(
            (s.keys.clone(), s.limit),
            (vec![("PatientID", "P1".into())], 5)
        );
        assert!(Search::parse(&q(&[("Modality", "CT")]), STUDY_KEYS).is_err());
        assert!(Search::parse(&q(&[("StudyDate", "yesterday")]), STUDY_KEYS).is_err());
        assert!(Search::parse(&q(&[("limit", "-1")]), STUDY_KEYS).is_err());
    }
}
