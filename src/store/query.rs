//! Searches of the instance index for DICOMweb's QIDO-RS: studies with
//! their patient, a study's series, and a page of either.
//!
//! Cost: a search by StudyInstanceUID reads that study's rows only, and a
//! study's series or a series' instances read only those rows. A study
//! search by any other key walks the study table in UID order, reading each
//! study's patient row to match, and stops once `offset + limit` studies
//! matched: the index has no table by PatientID, name, date or accession
//! number (the patient table is keyed by a hash of issuer and PatientID,
//! so that the ID appears nowhere else), so such a search grows with the
//! studies held, not with its result.

use anyhow::Result;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::index::{
    Index, SeriesRecord, StudyRecord, INSTANCES, PATIENTS, SERIES, SERIES_INSTANCES, STUDIES,
    STUDY_SERIES,
};
use super::record::{InstanceRecord, PatientInfo};

/// One study as a search returns it: its row, its patient, and what its
/// series hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyHit {
    /// The study row.
    pub study: StudyRecord,
    /// Its patient; default (empty) when the patient row is missing.
    pub patient: PatientInfo,
    /// The distinct modalities of its series, sorted.
    pub modalities: Vec<String>,
    /// How many series it has.
    pub series: u64,
    /// How many instances its series hold.
    pub instances: u64,
}

/// One series as a search returns it, with its instance count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesHit {
    /// The series row.
    pub series: SeriesRecord,
    /// How many instances it holds.
    pub instances: u64,
}

impl Index {
    /// Studies for which `matches` holds, in Study Instance UID order,
    /// skipping `offset` and returning at most `limit`. With `study_uids`,
    /// only those studies are read.
    pub fn search_studies(
        &self,
        study_uids: Option<&[String]>,
        matches: &dyn Fn(&StudyRecord, &PatientInfo, &[String]) -> bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StudyHit>> {
        let txn = self.db.begin_read()?;
        let studies = txn.open_table(STUDIES)?;
        let patients = txn.open_table(PATIENTS)?;
        let study_series = txn.open_multimap_table(STUDY_SERIES)?;
        let series_t = txn.open_table(SERIES)?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let mut out = Vec::new();
        let mut skipped = 0usize;
        let mut consider = |study: StudyRecord| -> Result<Option<StudyHit>> {
            let patient: PatientInfo = match patients.get(study.patient_key.as_str())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => PatientInfo::default(),
            };
            let mut modalities = Vec::new();
            let mut series_uids = Vec::new();
            for s in study_series.get(study.study_instance_uid.as_str())? {
                let uid = s?.value().to_string();
                if let Some(v) = series_t.get(uid.as_str())? {
                    let rec: SeriesRecord = serde_json::from_slice(v.value())?;
                    modalities.push(rec.modality);
                }
                series_uids.push(uid);
            }
            modalities.sort();
            modalities.dedup();
            if !matches(&study, &patient, &modalities) {
                return Ok(None);
            }
            if skipped < offset {
                skipped += 1;
                return Ok(None);
            }
            let mut instances = 0;
            for uid in &series_uids {
                instances += series_instances.get(uid.as_str())?.len();
            }
            Ok(Some(StudyHit {
                study,
                patient,
                modalities,
                series: series_uids.len() as u64,
                instances,
            }))
        };
        match study_uids {
            Some(uids) => {
                let mut uids: Vec<&String> = uids.iter().collect();
                uids.sort();
                uids.dedup();
                for uid in uids {
                    if let Some(v) = studies.get(uid.as_str())? {
                        out.extend(consider(serde_json::from_slice(v.value())?)?);
                    }
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            None => {
                for row in studies.iter()? {
                    if out.len() >= limit {
                        break;
                    }
                    out.extend(consider(serde_json::from_slice(row?.1.value())?)?);
                }
            }
        }
        Ok(out)
    }

    /// The series of one study, in Series Instance UID order, with their
    /// instance counts; empty for an unknown study.
    pub fn study_series(&self, study_instance_uid: &str) -> Result<Vec<SeriesHit>> {
        let txn = self.db.begin_read()?;
        let study_series = txn.open_multimap_table(STUDY_SERIES)?;
        let series_t = txn.open_table(SERIES)?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let mut out = Vec::new();
        for s in study_series.get(study_instance_uid)? {
            let uid = s?.value().to_string();
            if let Some(v) = series_t.get(uid.as_str())? {
                out.push(SeriesHit {
                    series: serde_json::from_slice(v.value())?,
                    instances: series_instances.get(uid.as_str())?.len(),
                });
            }
        }
        Ok(out)
    }

    /// The records of the instances of a study's series, series by series;
    /// empty for an unknown study.
    pub fn study_instances(&self, study_instance_uid: &str) -> Result<Vec<InstanceRecord>> {
        let txn = self.db.begin_read()?;
        let study_series = txn.open_multimap_table(STUDY_SERIES)?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let instances = txn.open_table(INSTANCES)?;
        let mut out = Vec::new();
        for s in study_series.get(study_instance_uid)? {
            let s = s?;
            for uid in series_instances.get(s.value())? {
                if let Some(v) = instances.get(uid?.value())? {
                    out.push(serde_json::from_slice(v.value())?);
                }
            }
        }
        Ok(out)
    }
}
