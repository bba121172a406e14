//! The instance index: patient → study → series → instance in redb.
//!
//! It can always be rebuilt from the stored files (`rtnode rebuild-index`),
//! which is why it lives in its own database file, apart from the state
//! that cannot be rebuilt.
//!
//! Besides the hierarchy it keeps what is referenced by whom
//! (`referenced_by`: image series, structure set and plan UIDs → the SOP
//! Instance UIDs that reference them), so that course assembly can find
//! everything linked to what just arrived — [`Index::linked`] — without
//! reading the whole archive. Its schema version lives in `meta`; an index
//! of an older version is upgraded in place when opened.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use redb::{
    Database, Durability, MultimapTableDefinition, ReadableMultimapTable, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::record::{InstanceRecord, PatientInfo, Reference};

pub(super) const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
pub(super) const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series");
pub(super) const STUDIES: TableDefinition<&str, &[u8]> = TableDefinition::new("studies");
pub(super) const PATIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("patients");
pub(super) const SERIES_INSTANCES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("series_instances");
pub(super) const STUDY_SERIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_series");
const PATIENT_STUDIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("patient_studies");
/// Referenced UID (image series, structure set, plan) → referencing SOP
/// Instance UIDs. Added in schema version 2.
const REFERENCED_BY: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("referenced_by");
/// `schema_version` → the version the tables follow.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The version of the tables this code writes. 1: the hierarchy (no `meta`
/// table); 2: `referenced_by`.
pub const SCHEMA_VERSION: u64 = 2;

/// The index's page cache when the config names none: enough for the hot
/// part of a large archive, far below redb's 1 GiB default, which would let
/// a long-running node's resident memory grow with the archive.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The series row of the index, taken from the latest instance stored in
/// the series (see [`InstanceRecord`] for each attribute).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    /// SeriesInstanceUID (0020,000E): the row's key.
    pub series_instance_uid: String,
    /// StudyInstanceUID of the study the series belongs to.
    pub study_instance_uid: String,
    /// Modality (0008,0060), e.g. `CT`, `RTSTRUCT`.
    pub modality: String,
    /// SeriesNumber (0020,0011); None when absent.
    pub series_number: Option<i64>,
    /// SeriesDescription (0008,103E); empty when absent.
    pub series_description: String,
    /// FrameOfReferenceUID the series' geometry lives in; empty when unknown.
    pub frame_of_reference_uid: String,
    /// SOPClassUID of the series' instances.
    pub sop_class_uid: String,
}

/// The study row of the index, taken from the latest instance stored in
/// the study.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    /// StudyInstanceUID (0020,000D): the row's key.
    pub study_instance_uid: String,
    /// [`PatientInfo::key`] of the study's patient (a hash, not the PatientID).
    pub patient_key: String,
    /// StudyDate (0008,0020), DICOM DA `YYYYMMDD`; empty when absent.
    pub study_date: String,
    /// StudyDescription (0008,1030); empty when absent.
    pub study_description: String,
    /// AccessionNumber (0008,0050); empty when absent.
    pub accession_number: String,
}

/// How many rows each level of the index holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Distinct patients (issuer + PatientID).
    pub patients: u64,
    /// Distinct studies.
    pub studies: u64,
    /// Distinct series.
    pub series: u64,
    /// Stored SOP instances.
    pub instances: u64,
}

/// What applying one record changed: the file an older copy lived in, when
/// it was elsewhere and must now be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The older copy's path, relative to the data directory.
    pub old_path: String,
}

/// The redb instance index (`index.redb`); cheap to share behind an `Arc`,
/// as redb serialises writers itself.
pub struct Index {
    pub(super) db: Database,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).context("encoding index record")
}

/// The UIDs a record references that course assembly follows.
fn followed_references(rec: &InstanceRecord) -> impl Iterator<Item = &str> {
    rec.references.iter().filter_map(|r| match r {
        Reference::ImageSeries(uid) | Reference::StructureSet(uid) => Some(uid.as_str()),
        Reference::Plan { uid, .. } => Some(uid.as_str()),
        Reference::FrameOfReference(_) => None,
    })
}

impl Index {
    /// Opens (creating, or upgrading an older schema in place) with the
    /// default page cache, [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: &Path) -> Result<Index> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (creating, or upgrading an older schema in place) with a page
    /// cache of `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Index> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .with_context(|| format!("opening index {}", path.display()))?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        let upgraded = {
            let instances = txn.open_table(INSTANCES)?;
            txn.open_table(SERIES)?;
            txn.open_table(STUDIES)?;
            txn.open_table(PATIENTS)?;
            txn.open_multimap_table(SERIES_INSTANCES)?;
            txn.open_multimap_table(STUDY_SERIES)?;
            txn.open_multimap_table(PATIENT_STUDIES)?;
            let mut refs = txn.open_multimap_table(REFERENCED_BY)?;
            let mut meta = txn.open_table(META)?;
            let version = meta.get("schema_version")?.map(|v| v.value());
            let version = match version {
                Some(v) => v,
                // No version: a new file, or one written before `meta`.
                None if instances.is_empty()? => SCHEMA_VERSION,
                None => 1,
            };
            if version > SCHEMA_VERSION {
                anyhow::bail!(
                    "index {} has schema version {version}, newer than this rtnode's {SCHEMA_VERSION}: \
                     use the newer rtnode, or rebuild the index (rtnode rebuild-index)",
                    path.display()
                );
            }
            let mut upgraded = None;
            if version < 2 {
                let t0 = std::time::Instant::now();
                let mut n = 0u64;
                for row in instances.iter()? {
                    let (_, v) = row?;
                    let rec: InstanceRecord = serde_json::from_slice(v.value())?;
                    for uid in followed_references(&rec) {
                        refs.insert(uid, rec.sop_instance_uid.as_str())?;
                    }
                    n += 1;
                }
                upgraded = Some((version, n, t0.elapsed()));
            }
            meta.insert("schema_version", SCHEMA_VERSION)?;
            upgraded
        };
        txn.commit()?;
        if let Some((from, n, took)) = upgraded {
            tracing::info!(
                from,
                to = SCHEMA_VERSION,
                instances = n,
                ms = took.as_millis() as u64,
                "index upgraded in place"
            );
        }
        Ok(Index { db })
    }

    /// The schema version the index follows (after any upgrade at open).
    pub fn schema_version(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get("schema_version")?.map(|v| v.value()).unwrap_or(1))
    }

    /// Every record linked to the `seeds` (SOP Instance UIDs), transitively:
    /// by series, by the references course assembly follows (RTSTRUCT →
    /// image series, RTPLAN → RTSTRUCT, RTDOSE → RTPLAN) and by being
    /// referenced. Course membership is decided by exactly these links, so
    /// this is the part of the archive a change to the seeds can affect; its
    /// cost grows with that part (a course, or the courses sharing a CT),
    /// not with the archive or the patient's history. Seeds no longer in
    /// the index (removed) are skipped. One read transaction: a consistent
    /// picture.
    pub fn linked(&self, seeds: &[&str]) -> Result<Vec<InstanceRecord>> {
        let txn = self.db.begin_read()?;
        let instances = txn.open_table(INSTANCES)?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let referenced_by = txn.open_multimap_table(REFERENCED_BY)?;

        let mut seen_sops: BTreeSet<String> = BTreeSet::new();
        let mut seen_series: BTreeSet<String> = BTreeSet::new();
        let mut queue: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        let mut out: Vec<InstanceRecord> = Vec::new();
        while let Some(sop) = queue.pop() {
            if !seen_sops.insert(sop.clone()) {
                continue;
            }
            let Some(v) = instances.get(sop.as_str())? else {
                continue;
            };
            let rec: InstanceRecord = serde_json::from_slice(v.value())?;
            let mut series_to_visit: Vec<String> = vec![rec.series_instance_uid.clone()];
            for uid in followed_references(&rec) {
                // A series UID, or the SOP Instance UID of a structure set or plan.
                series_to_visit.push(uid.to_string());
                queue.push(uid.to_string());
            }
            // What references this instance; what references its series is
            // looked up once, with the series below.
            for by in referenced_by.get(sop.as_str())? {
                queue.push(by?.value().to_string());
            }
            for series in series_to_visit {
                if seen_series.insert(series.clone()) {
                    for member in series_instances.get(series.as_str())? {
                        queue.push(member?.value().to_string());
                    }
                    for by in referenced_by.get(series.as_str())? {
                        queue.push(by?.value().to_string());
                    }
                }
            }
            out.push(rec);
        }
        Ok(out)
    }

    /// One SOP Instance UID per series, in series UID order after `after`
    /// (exclusive), at most `limit`: a walk over the archive a series at a
    /// time (the pipeline's start-up pass).
    pub fn series_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, String)>> {
        use std::ops::Bound;
        let txn = self.db.begin_read()?;
        let series_instances = txn.open_multimap_table(SERIES_INSTANCES)?;
        let series = txn.open_table(SERIES)?;
        let range = match after {
            Some(a) => series.range::<&str>((Bound::Excluded(a), Bound::Unbounded))?,
            None => series.range::<&str>(..)?,
        };
        let mut out = Vec::new();
        for row in range {
            let (k, _) = row?;
            let uid = k.value().to_string();
            if let Some(sop) = series_instances.get(uid.as_str())?.next() {
                out.push((uid, sop?.value().to_string()));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Applies a batch of new or replacing instances in one transaction.
    /// `durable: false` leaves persistence to a later [`Index::flush`]; the
    /// store's startup recovery covers the window in between.
    pub fn apply<R: std::borrow::Borrow<InstanceRecord>>(
        &self,
        records: &[R],
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
            out.push(apply_one(&mut txn, rec.borrow())?);
        }
        txn.commit()?;
        Ok(out)
    }

    /// Removes an instance and whatever series, study and patient rows it
    /// leaves empty; returns its record, or None when it was not indexed.
    /// `durable` as for [`Index::apply`].
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

    /// The record of one instance; None when it is not indexed.
    pub fn get(&self, sop_instance_uid: &str) -> Result<Option<InstanceRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INSTANCES)?;
        match t.get(sop_instance_uid)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }

    /// Row counts per level.
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

    /// The records of every indexed instance of a series, in SOP Instance
    /// UID order; empty for an unknown series.
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

    /// Every series row, in Series Instance UID order.
    pub fn all_series(&self) -> Result<Vec<SeriesRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SERIES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok(out)
    }

    /// The patient stored under a [`PatientInfo::key`]; None when unknown.
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
        put_if_changed(
            &mut txn.open_table(SERIES)?,
            rec.series_instance_uid.as_str(),
            &to_json(&series)?,
        )?;
        let study = StudyRecord {
            study_instance_uid: rec.study_instance_uid.clone(),
            patient_key: patient_key.clone(),
            study_date: rec.study_date.clone(),
            study_description: rec.study_description.clone(),
            accession_number: rec.accession_number.clone(),
        };
        put_if_changed(
            &mut txn.open_table(STUDIES)?,
            rec.study_instance_uid.as_str(),
            &to_json(&study)?,
        )?;
        put_if_changed(
            &mut txn.open_table(PATIENTS)?,
            patient_key.as_str(),
            &to_json(&rec.patient)?,
        )?;
        txn.open_multimap_table(SERIES_INSTANCES)?.insert(
            rec.series_instance_uid.as_str(),
            rec.sop_instance_uid.as_str(),
        )?;
        add_if_missing(
            &mut txn.open_multimap_table(STUDY_SERIES)?,
            rec.study_instance_uid.as_str(),
            rec.series_instance_uid.as_str(),
        )?;
        add_if_missing(
            &mut txn.open_multimap_table(PATIENT_STUDIES)?,
            patient_key.as_str(),
            rec.study_instance_uid.as_str(),
        )?;
        let mut refs = txn.open_multimap_table(REFERENCED_BY)?;
        for uid in followed_references(rec) {
            refs.insert(uid, rec.sop_instance_uid.as_str())?;
        }
    }
    Ok(old
        .filter(|o| o.path != rec.path)
        .map(|o| Replaced { old_path: o.path }))
}

/// Inserts `value` under `key` unless that is what the table already holds.
/// Every instance of a series carries the same series, study and patient
/// rows; rewriting them unchanged copied their B-tree pages in every
/// transaction, a good part of the commit thread's time on ingest. A read
/// costs no page copies.
fn put_if_changed(t: &mut redb::Table<&str, &[u8]>, key: &str, value: &[u8]) -> Result<()> {
    let same = t.get(key)?.is_some_and(|v| v.value() == value);
    if !same {
        t.insert(key, value)?;
    }
    Ok(())
}

/// Adds `value` to `key`'s values unless it is there already (see
/// [`put_if_changed`]). Meant for keys with few values (a study's series, a
/// patient's studies): it walks them.
fn add_if_missing(t: &mut redb::MultimapTable<&str, &str>, key: &str, value: &str) -> Result<()> {
    let mut present = false;
    for v in t.get(key)? {
        if v?.value() == value {
            present = true;
            break;
        }
    }
    if !present {
        t.insert(key, value)?;
    }
    Ok(())
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
    {
        let mut refs = txn.open_multimap_table(REFERENCED_BY)?;
        for uid in followed_references(&old) {
            refs.remove(uid, sop_instance_uid)?;
        }
    }
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
    fn an_index_of_schema_1_is_upgraded_in_place_and_links_by_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        // What rtnode wrote before `meta` and `referenced_by`: the hierarchy
        // tables only. A CT of P1, and an RTSTRUCT of P2 that references it.
        let ct = rec("1.1", "2.1", "3.1", "P1");
        let mut rs = rec("1.9", "2.9", "3.9", "P2");
        rs.references = vec![Reference::ImageSeries("2.1".into())];
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(INSTANCES).unwrap();
                for r in [&ct, &rs] {
                    t.insert(r.sop_instance_uid.as_str(), to_json(r).unwrap().as_slice())
                        .unwrap();
                }
                let mut m = txn.open_multimap_table(SERIES_INSTANCES).unwrap();
                m.insert("2.1", "1.1").unwrap();
                m.insert("2.9", "1.9").unwrap();
                txn.open_table(SERIES).unwrap();
                txn.open_table(STUDIES).unwrap();
                txn.open_table(PATIENTS).unwrap();
                txn.open_multimap_table(STUDY_SERIES).unwrap();
                txn.open_multimap_table(PATIENT_STUDIES).unwrap();
            }
            txn.commit().unwrap();
        }
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.schema_version().unwrap(), SCHEMA_VERSION);
        // From the CT alone, the RTSTRUCT that references it is found (it
        // belongs to another patient: only the reverse reference links them).
        let mut linked: Vec<String> = idx
            .linked(&["1.1"])
            .unwrap()
            .into_iter()
            .map(|r| r.sop_instance_uid)
            .collect();
        linked.sort();
        assert_eq!(linked, ["1.1", "1.9"]);
        drop(idx);
        // Opening again finds it current; a newer schema is refused.
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.schema_version().unwrap(), SCHEMA_VERSION);
        drop(idx);
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Index::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer than this rtnode"), "{err}");
    }

    #[test]
    fn references_are_forgotten_with_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("index.redb")).unwrap();
        let mut rs = rec("1.9", "2.9", "3.9", "P2");
        rs.references = vec![Reference::ImageSeries("2.1".into())];
        idx.apply(&[rec("1.1", "2.1", "3.1", "P1"), rs], false)
            .unwrap();
        assert_eq!(idx.linked(&["1.1"]).unwrap().len(), 2);
        idx.remove("1.9", false).unwrap();
        assert_eq!(idx.linked(&["1.1"]).unwrap().len(), 1);
        assert!(idx.linked(&["1.9"]).unwrap().is_empty());
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
