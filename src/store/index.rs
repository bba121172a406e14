//! The instance index: patient → study → series → instance in redb.
//!
//! It can always be rebuilt from the stored files (`rtnode rebuild-index`),
//! which is why it lives in its own database file, apart from the state
//! that cannot be rebuilt.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use redb::{
    Database, Durability, MultimapTableDefinition, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::record::{InstanceRecord, PatientInfo};

const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series");
const STUDIES: TableDefinition<&str, &[u8]> = TableDefinition::new("studies");
const PATIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("patients");
const SERIES_INSTANCES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("series_instances");
const STUDY_SERIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_series");
const PATIENT_STUDIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("patient_studies");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub frame_of_reference_uid: String,
    pub sop_class_uid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub study_instance_uid: String,
    pub patient_key: String,
    pub study_date: String,
    pub study_description: String,
    pub accession_number: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
}

/// What applying one record changed: the file an older copy lived in, when
/// it was elsewhere and must now be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub old_path: String,
}

pub struct Index {
    db: Database,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).context("encoding index record")
}

impl Index {
    pub fn open(path: &Path) -> Result<Index> {
        let db =
            Database::create(path).with_context(|| format!("opening index {}", path.display()))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(INSTANCES)?;
            txn.open_table(SERIES)?;
            txn.open_table(STUDIES)?;
            txn.open_table(PATIENTS)?;
            txn.open_multimap_table(SERIES_INSTANCES)?;
            txn.open_multimap_table(STUDY_SERIES)?;
            txn.open_multimap_table(PATIENT_STUDIES)?;
        }
        txn.commit()?;
        Ok(Index { db })
    }

    /// Applies a batch of new or replacing instances in one transaction.
    /// `durable: false` leaves persistence to a later [`Index::flush`]; the
    /// store's startup recovery covers the window in between.
    pub fn apply(
        &self,
        records: &[InstanceRecord],
        durable: bool,
    ) -> Result<Vec<Option<Replaced>>> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        let mut out = Vec::with_capacity(records.len());
        for rec in records {
            out.push(apply_one(&mut txn, rec)?);
        }
        txn.commit()?;
        Ok(out)
    }

    pub fn remove(&self, sop_instance_uid: &str, durable: bool) -> Result<Option<InstanceRecord>> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        let old = remove_one(&mut txn, sop_instance_uid)?;
        txn.commit()?;
        Ok(old)
    }

    /// Makes every earlier non-durable commit durable.
    pub fn flush(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }

    pub fn get(&self, sop_instance_uid: &str) -> Result<Option<InstanceRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INSTANCES)?;
        match t.get(sop_instance_uid)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn counts(&self) -> Result<Counts> {
        let txn = self.db.begin_read()?;
        Ok(Counts {
            patients: txn.open_table(PATIENTS)?.len()?,
            studies: txn.open_table(STUDIES)?.len()?,
            series: txn.open_table(SERIES)?.len()?,
            instances: txn.open_table(INSTANCES)?.len()?,
        })
    }

    /// SOP Instance UID → stored path, for reconciling with the files.
    pub fn paths(&self) -> Result<HashMap<String, String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INSTANCES)?;
        let mut out = HashMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let rec: InstanceRecord = serde_json::from_slice(v.value())?;
            out.insert(k.value().to_string(), rec.path);
        }
        Ok(out)
    }

    /// Every instance record (the pipeline's starting picture).
    pub fn all_records(&self) -> Result<Vec<InstanceRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INSTANCES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok(out)
    }

    pub fn series_instances(&self, series_instance_uid: &str) -> Result<Vec<InstanceRecord>> {
        let txn = self.db.begin_read()?;
        let members = txn.open_multimap_table(SERIES_INSTANCES)?;
        let instances = txn.open_table(INSTANCES)?;
        let mut out = Vec::new();
        for uid in members.get(series_instance_uid)? {
            let uid = uid?;
            if let Some(v) = instances.get(uid.value())? {
                out.push(serde_json::from_slice(v.value())?);
            }
        }
        Ok(out)
    }

    pub fn all_series(&self) -> Result<Vec<SeriesRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SERIES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok(out)
    }

    pub fn patient(&self, key: &str) -> Result<Option<PatientInfo>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PATIENTS)?;
        match t.get(key)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }
}

fn apply_one(txn: &mut WriteTransaction, rec: &InstanceRecord) -> Result<Option<Replaced>> {
    let old = remove_one(txn, &rec.sop_instance_uid)?;
    let patient_key = rec.patient.key();
    {
        let mut t = txn.open_table(INSTANCES)?;
        t.insert(rec.sop_instance_uid.as_str(), to_json(rec)?.as_slice())?;
    }
    {
        let series = SeriesRecord {
            series_instance_uid: rec.series_instance_uid.clone(),
            study_instance_uid: rec.study_instance_uid.clone(),
            modality: rec.modality.clone(),
            series_number: rec.series_number,
            series_description: rec.series_description.clone(),
            frame_of_reference_uid: rec.frame_of_reference_uid.clone(),
            sop_class_uid: rec.sop_class_uid.clone(),
        };
        txn.open_table(SERIES)?.insert(
            rec.series_instance_uid.as_str(),
            to_json(&series)?.as_slice(),
        )?;
        let study = StudyRecord {
            study_instance_uid: rec.study_instance_uid.clone(),
            patient_key: patient_key.clone(),
            study_date: rec.study_date.clone(),
            study_description: rec.study_description.clone(),
            accession_number: rec.accession_number.clone(),
        };
        txn.open_table(STUDIES)?
            .insert(rec.study_instance_uid.as_str(), to_json(&study)?.as_slice())?;
        txn.open_table(PATIENTS)?
            .insert(patient_key.as_str(), to_json(&rec.patient)?.as_slice())?;
        txn.open_multimap_table(SERIES_INSTANCES)?.insert(
            rec.series_instance_uid.as_str(),
            rec.sop_instance_uid.as_str(),
        )?;
        txn.open_multimap_table(STUDY_SERIES)?.insert(
            rec.study_instance_uid.as_str(),
            rec.series_instance_uid.as_str(),
        )?;
        txn.open_multimap_table(PATIENT_STUDIES)?
            .insert(patient_key.as_str(), rec.study_instance_uid.as_str())?;
    }
    Ok(old
        .filter(|o| o.path != rec.path)
        .map(|o| Replaced { old_path: o.path }))
}

/// Removes an instance and whatever series, study and patient it leaves empty.
fn remove_one(
    txn: &mut WriteTransaction,
    sop_instance_uid: &str,
) -> Result<Option<InstanceRecord>> {
    let old: Option<InstanceRecord> = {
        let mut t = txn.open_table(INSTANCES)?;
        let removed = t.remove(sop_instance_uid)?;
        match removed {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        }
    };
    let Some(old) = old else { return Ok(None) };
    let series_empty = {
        let mut m = txn.open_multimap_table(SERIES_INSTANCES)?;
        m.remove(old.series_instance_uid.as_str(), sop_instance_uid)?;
        let empty = m.get(old.series_instance_uid.as_str())?.next().is_none();
        empty
    };
    if series_empty {
        txn.open_table(SERIES)?
            .remove(old.series_instance_uid.as_str())?;
        let study_empty = {
            let mut m = txn.open_multimap_table(STUDY_SERIES)?;
            m.remove(
                old.study_instance_uid.as_str(),
                old.series_instance_uid.as_str(),
            )?;
            let empty = m.get(old.study_instance_uid.as_str())?.next().is_none();
            empty
        };
        if study_empty {
            txn.open_table(STUDIES)?
                .remove(old.study_instance_uid.as_str())?;
            let key = old.patient.key();
            let patient_empty = {
                let mut m = txn.open_multimap_table(PATIENT_STUDIES)?;
                m.remove(key.as_str(), old.study_instance_uid.as_str())?;
                let empty = m.get(key.as_str())?.next().is_none();
                empty
            };
            if patient_empty {
                txn.open_table(PATIENTS)?.remove(key.as_str())?;
            }
        }
    }
    Ok(Some(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sop: &str, series: &str, study: &str, pid: &str) -> InstanceRecord {
        InstanceRecord {
            sop_instance_uid: sop.into(),
            series_instance_uid: series.into(),
            study_instance_uid: study.into(),
            patient: PatientInfo {
                id: pid.into(),
                ..PatientInfo::default()
            },
            path: format!("store/{study}/{series}/{sop}.dcm"),
            ..InstanceRecord::default()
        }
    }

    #[test]
    fn duplicates_move_and_empty_parents_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("index.redb")).unwrap();
        idx.apply(
            &[
                rec("1.1", "2.1", "3.1", "P1"),
                rec("1.2", "2.1", "3.1", "P1"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            idx.counts().unwrap(),
            Counts {
                patients: 1,
                studies: 1,
                series: 1,
                instances: 2
            }
        );
        // Same SOP instance re-sent under another study and patient.
        let r = idx.apply(&[rec("1.2", "2.2", "3.2", "P2")], true).unwrap();
        assert_eq!(r[0].as_ref().unwrap().old_path, "store/3.1/2.1/1.2.dcm");
        assert_eq!(
            idx.counts().unwrap(),
            Counts {
                patients: 2,
                studies: 2,
                series: 2,
                instances: 2
            }
        );
        idx.apply(&[rec("1.1", "2.2", "3.2", "P2")], true).unwrap();
        assert_eq!(
            idx.counts().unwrap(),
            Counts {
                patients: 1,
                studies: 1,
                series: 1,
                instances: 2
            }
        );
        assert_eq!(idx.series_instances("2.2").unwrap().len(), 2);
        // A plain duplicate at the same path replaces nothing on disk.
        let r = idx.apply(&[rec("1.1", "2.2", "3.2", "P2")], true).unwrap();
        assert!(r[0].is_none());
    }
}
