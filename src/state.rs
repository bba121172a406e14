//! The state database: what cannot be rebuilt from the stored files. For now
//! the log of associations; the job queue, result versions and the outbound
//! queue of later stages belong here too, never in the rebuildable index.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const ASSOCIATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("associations");
/// course id → CourseRecord (JSON)
const COURSES: TableDefinition<&str, &[u8]> = TableDefinition::new("courses");
/// "<course id>/v<NNNN>/<stage>" → JobRecord (JSON)
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// SOP Instance UID of an object rtnode created → course id
const CREATED: TableDefinition<&str, &str> = TableDefinition::new("created_instances");
/// stage name → number of runs since the state database was made
const STAGE_RUNS: TableDefinition<&str, u64> = TableDefinition::new("stage_runs");
/// id → OutboundItem (JSON): each (object, destination) to send
const OUTBOUND: TableDefinition<u64, &[u8]> = TableDefinition::new("outbound");

/// Keeps the log bounded on a node that runs for years.
const MAX_ASSOCIATIONS_KEPT: u64 = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssociationRecord {
    pub calling_ae: String,
    pub called_ae: String,
    pub peer_address: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub instances: u64,
    pub bytes: u64,
    pub failures: u64,
    /// How it ended: released, aborted, rejected (with the reason), error.
    pub outcome: String,
}

pub struct StateDb {
    db: Database,
}

pub fn state_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("state.redb")
}

impl StateDb {
    pub fn open(data_dir: &Path) -> Result<StateDb> {
        let path = state_path(data_dir);
        // A small cache: this database is written often and read little,
        // and redb's default (1 GiB) would let it grow into resident memory.
        let db = redb::Builder::new()
            .set_cache_size(16 * 1024 * 1024)
            .create(&path)
            .with_context(|| format!("opening state database {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(ASSOCIATIONS)?;
        txn.open_table(COURSES)?;
        txn.open_table(JOBS)?;
        txn.open_table(CREATED)?;
        txn.open_table(STAGE_RUNS)?;
        txn.open_table(OUTBOUND)?;
        txn.commit()?;
        Ok(StateDb { db })
    }

    pub fn log_association(&self, rec: &AssociationRecord) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        // An association record lost in a crash loses no data; no fsync.
        txn.set_durability(Durability::Eventual);
        {
            let mut t = txn.open_table(ASSOCIATIONS)?;
            let next = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            t.insert(next, serde_json::to_vec(rec)?.as_slice())?;
            if t.len()? > MAX_ASSOCIATIONS_KEPT {
                let oldest = t.first()?.map(|(k, _)| k.value());
                if let Some(k) = oldest {
                    t.remove(k)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The most recent associations, newest first.
    pub fn recent_associations(&self, n: usize) -> Result<Vec<AssociationRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ASSOCIATIONS)?;
        let mut out = Vec::with_capacity(n);
        for row in t.iter()?.rev().take(n) {
            out.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok(out)
    }

    pub fn association_count(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(ASSOCIATIONS)?.len()?)
    }

    /// Stores a JSON value under `key` in one of the pipeline tables; job
    /// and course transitions are durable at once, since a crash must not
    /// forget that a stage finished or started.
    fn put_json<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        v: &T,
    ) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(table)?
            .insert(key, serde_json::to_vec(v)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn all_json<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        prefix: &str,
    ) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        for row in t.range(prefix..)? {
            let (k, v) = row?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    pub fn put_course<T: Serialize>(&self, id: &str, course: &T) -> Result<()> {
        self.put_json(COURSES, id, course)
    }

    pub fn courses<T: for<'de> Deserialize<'de>>(&self) -> Result<Vec<T>> {
        self.all_json(COURSES, "")
    }

    pub fn put_job<T: Serialize>(&self, key: &str, job: &T) -> Result<()> {
        self.put_json(JOBS, key, job)
    }

    /// Jobs whose key starts with `prefix` ("" for all), in key order.
    pub fn jobs<T: for<'de> Deserialize<'de>>(&self, prefix: &str) -> Result<Vec<T>> {
        self.all_json(JOBS, prefix)
    }

    pub fn mark_created(&self, sop_instance_uid: &str, course_id: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(CREATED)?
            .insert(sop_instance_uid, course_id)?;
        txn.commit()?;
        Ok(())
    }

    pub fn created(&self) -> Result<std::collections::HashSet<String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CREATED)?;
        let mut out = std::collections::HashSet::new();
        for row in t.iter()? {
            out.insert(row?.0.value().to_string());
        }
        Ok(out)
    }

    pub fn count_stage_run(&self, stage: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(STAGE_RUNS)?;
            let n = t.get(stage)?.map(|v| v.value()).unwrap_or(0);
            t.insert(stage, n + 1)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn stage_runs(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(STAGE_RUNS)?;
        let mut out = std::collections::BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.insert(k.value().to_string(), v.value());
        }
        Ok(out)
    }

    /// Adds items to the outbound queue durably; returns their ids.
    pub fn enqueue_outbound<T: Serialize>(&self, items: &[T]) -> Result<Vec<u64>> {
        let txn = self.db.begin_write()?;
        let mut ids = Vec::with_capacity(items.len());
        {
            let mut t = txn.open_table(OUTBOUND)?;
            let first = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            for (id, item) in (first..).zip(items) {
                t.insert(id, serde_json::to_vec(item)?.as_slice())?;
                ids.push(id);
            }
        }
        txn.commit()?;
        Ok(ids)
    }

    pub fn put_outbound<T: Serialize>(&self, id: u64, item: &T) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(OUTBOUND)?
            .insert(id, serde_json::to_vec(item)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn outbound<T: for<'de> Deserialize<'de>>(&self) -> Result<Vec<(u64, T)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(OUTBOUND)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), serde_json::from_slice(v.value())?));
        }
        Ok(out)
    }

    pub fn flush(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }
}
