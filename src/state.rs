//! The state database: what cannot be rebuilt from the stored files. For now
//! the log of associations; the job queue, result versions and the outbound
//! queue of later stages belong here too, never in the rebuildable index.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
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
/// Series UID → JSON (`course::Unassembled`): the series that formed no
/// course, with why, as the pipeline last assembled them. Rebuilt by the
/// pipeline at every start, so neither backed up nor migrated: an older
/// data dir, or a restored backup, gains the table empty.
const UNASSEMBLED: TableDefinition<&str, &[u8]> = TableDefinition::new("unassembled_series");

/// Tables the pipeline rebuilds at start: known, but not in a backup.
const REBUILT_TABLES: [&str; 1] = ["unassembled_series"];

/// Every other table above: a backup copies exactly these.
const KNOWN_TABLES: [&str; 6] = [
    "associations",
    "courses",
    "jobs",
    "created_instances",
    "stage_runs",
    "outbound",
];

/// Keeps the log bounded on a node that runs for years.
const MAX_ASSOCIATIONS_KEPT: u64 = 100_000;

/// One entry of the association log: who connected, how long, how much
/// was stored and how it ended. Only associations that got as far as a
/// parseable request are logged; the newest 100 000 are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssociationRecord {
    /// AE title the peer called itself (trimmed).
    pub calling_ae: String,
    /// AE title the peer asked for (ours, if it asked right).
    pub called_ae: String,
    /// The peer's IP address and port, e.g. `10.0.0.5:51234`.
    pub peer_address: String,
    /// When the TCP connection was accepted, RFC 3339 UTC.
    pub started_at: String,
    /// From accept to close, ms.
    pub duration_ms: u64,
    /// Instances stored successfully over the association.
    pub instances: u64,
    /// Data set bytes of the instances stored successfully.
    pub bytes: u64,
    /// C-STOREs answered with a failure status.
    pub failures: u64,
    /// How it ended: released, aborted, rejected (with the reason), error.
    pub outcome: String,
}

/// What [`StateDb::remove_course`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedRows {
    /// Whether the course record itself existed and was removed.
    pub course: bool,
    /// Job rows removed, over all result versions.
    pub jobs: usize,
    /// Rows of objects rtnode had created for the course.
    pub created: usize,
    /// Outbound queue rows removed.
    pub outbound: usize,
}

/// Rows copied by [`StateDb::backup_to`], per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// Association log entries.
    pub associations: u64,
    /// Course records.
    pub courses: u64,
    /// Job records (one per course, result version and stage).
    pub jobs: u64,
    /// Objects rtnode created (SOP Instance UID → course).
    pub created_instances: u64,
    /// Stages with a run counter.
    pub stage_runs: u64,
    /// Outbound queue items (object, destination).
    pub outbound: u64,
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &redb::ReadTransaction,
    write: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64> {
    let from = read.open_table(def)?;
    let mut to = write.open_table(def)?;
    let mut n = 0;
    for row in from.iter()? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// The state database (`state.redb` in the data directory): what cannot be
/// rebuilt from the stored files — association log, courses, jobs, created
/// objects, stage run counters and the outbound queue.
pub struct StateDb {
    db: Database,
}

/// Where the state database lives in a data directory (`state.redb`).
pub fn state_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("state.redb")
}

impl StateDb {
    /// Opens (creating) the state database of a data directory.
    pub fn open(data_dir: &Path) -> Result<StateDb> {
        Self::open_at(&state_path(data_dir))
    }

    /// Opens a state database file by its path (a backup being restored).
    pub fn open_at(path: &Path) -> Result<StateDb> {
        // A small cache: this database is written often and read little,
        // and redb's default (1 GiB) would let it grow into resident memory.
        let db = redb::Builder::new()
            .set_cache_size(16 * 1024 * 1024)
            .create(path)
            .with_context(|| format!("opening state database {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(ASSOCIATIONS)?;
        txn.open_table(COURSES)?;
        txn.open_table(JOBS)?;
        txn.open_table(CREATED)?;
        txn.open_table(STAGE_RUNS)?;
        txn.open_table(OUTBOUND)?;
        txn.open_table(UNASSEMBLED)?;
        txn.commit()?;
        Ok(StateDb { db })
    }

    /// Appends to the association log, dropping the oldest entry beyond
    /// 100 000. Not fsynced: a lost log entry loses no data.
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

    /// Entries in the association log.
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

    /// Writes a course record (JSON) under its course id, durably.
    pub fn put_course<T: Serialize>(&self, id: &str, course: &T) -> Result<()> {
        self.put_json(COURSES, id, course)
    }

    /// Every course record, in course id order.
    pub fn courses<T: for<'de> Deserialize<'de>>(&self) -> Result<Vec<T>> {
        self.all_json(COURSES, "")
    }

    /// Updates the series that formed no course: `gone` (series UIDs) are
    /// removed, `put` are written, in one transaction.
    pub fn update_unassembled(
        &self,
        gone: &[String],
        put: &[crate::course::Unassembled],
    ) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(UNASSEMBLED)?;
            for k in gone {
                t.remove(k.as_str())?;
            }
            for u in put {
                t.insert(
                    u.series_instance_uid.as_str(),
                    serde_json::to_vec(u)?.as_slice(),
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The series that formed no course, in series UID order.
    pub fn unassembled(&self) -> Result<Vec<crate::course::Unassembled>> {
        self.all_json(UNASSEMBLED, "")
    }

    /// Writes a job record (JSON) under `<course id>/v<NNNN>/<stage>`,
    /// durably.
    pub fn put_job<T: Serialize>(&self, key: &str, job: &T) -> Result<()> {
        self.put_json(JOBS, key, job)
    }

    /// Jobs whose key starts with `prefix` ("" for all), in key order.
    pub fn jobs<T: for<'de> Deserialize<'de>>(&self, prefix: &str) -> Result<Vec<T>> {
        self.all_json(JOBS, prefix)
    }

    /// Records that rtnode created the object `sop_instance_uid` for a
    /// course, so that it is never taken for input when it comes back.
    pub fn mark_created(&self, sop_instance_uid: &str, course_id: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(CREATED)?
            .insert(sop_instance_uid, course_id)?;
        txn.commit()?;
        Ok(())
    }

    /// SOP Instance UIDs of every object rtnode created.
    pub fn created(&self) -> Result<std::collections::HashSet<String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CREATED)?;
        let mut out = std::collections::HashSet::new();
        for row in t.iter()? {
            out.insert(row?.0.value().to_string());
        }
        Ok(out)
    }

    /// Adds one to a stage's run counter.
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

    /// Stage name → runs since the state database was made.
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

    /// Overwrites the outbound item `id` (its attempts and state), durably.
    pub fn put_outbound<T: Serialize>(&self, id: u64, item: &T) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(OUTBOUND)?
            .insert(id, serde_json::to_vec(item)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Every outbound item with its id, oldest first.
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

    /// SOP Instance UIDs of the objects rtnode created for a course.
    pub fn created_for(&self, course_id: &str) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CREATED)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if v.value() == course_id {
                out.push(k.value().to_string());
            }
        }
        Ok(out)
    }

    /// Forgets a course in one durable transaction: its course record, the
    /// jobs of every version, the objects created for it, and the outbound
    /// rows given (the export module decides which rows are the course's).
    /// A crash leaves either all of them or none.
    pub fn remove_course(&self, course_id: &str, outbound_ids: &[u64]) -> Result<RemovedRows> {
        let txn = self.db.begin_write()?;
        let mut removed = RemovedRows::default();
        {
            let mut courses = txn.open_table(COURSES)?;
            removed.course = courses.remove(course_id)?.is_some();
            let mut jobs = txn.open_table(JOBS)?;
            let prefix = format!("{course_id}/");
            let keys: Vec<String> = jobs
                .range(prefix.as_str()..)?
                .map(|r| r.map(|(k, _)| k.value().to_string()))
                .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                .collect::<Result<_, _>>()?;
            for k in &keys {
                jobs.remove(k.as_str())?;
            }
            removed.jobs = keys.len();
            let mut created = txn.open_table(CREATED)?;
            let ours: Vec<String> = created
                .iter()?
                .filter_map(|r| match r {
                    Ok((k, v)) if v.value() == course_id => Some(Ok(k.value().to_string())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()?;
            for k in &ours {
                created.remove(k.as_str())?;
            }
            removed.created = ours.len();
            let mut outbound = txn.open_table(OUTBOUND)?;
            for id in outbound_ids {
                if outbound.remove(*id)?.is_some() {
                    removed.outbound += 1;
                }
            }
        }
        txn.commit()?;
        Ok(removed)
    }

    /// Rows in each table.
    pub fn counts(&self) -> Result<BackupSummary> {
        let txn = self.db.begin_read()?;
        Ok(BackupSummary {
            associations: txn.open_table(ASSOCIATIONS)?.len()?,
            courses: txn.open_table(COURSES)?.len()?,
            jobs: txn.open_table(JOBS)?.len()?,
            created_instances: txn.open_table(CREATED)?.len()?,
            stage_runs: txn.open_table(STAGE_RUNS)?.len()?,
            outbound: txn.open_table(OUTBOUND)?.len()?,
        })
    }

    /// Writes a consistent copy of every table to a new redb file at
    /// `dest` while the database stays in use: redb has no online backup,
    /// but one read transaction is a snapshot, so copying all tables inside
    /// it gives a point-in-time copy. The copy is written beside `dest` and
    /// renamed into place only when complete and synced.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupSummary> {
        let read = self.db.begin_read()?;
        // A table this code does not know (added by a newer version) would
        // be silently missing from the copy: refuse instead.
        for t in read.list_tables()? {
            let name = t.name().to_string();
            if !KNOWN_TABLES.contains(&name.as_str()) && !REBUILT_TABLES.contains(&name.as_str()) {
                anyhow::bail!("state database has a table this rtnode does not know: {name}");
            }
        }
        if read.list_multimap_tables()?.next().is_some() {
            anyhow::bail!("state database has a multimap table this rtnode does not know");
        }
        let file_name = dest
            .file_name()
            .with_context(|| format!("{} names no file", dest.display()))?
            .to_string_lossy()
            .to_string();
        let tmp = dest.with_file_name(format!(".{file_name}.partial"));
        let _ = std::fs::remove_file(&tmp);
        let result = (|| -> Result<BackupSummary> {
            let copy =
                Database::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut summary = BackupSummary::default();
            let mut w = copy.begin_write()?;
            w.set_durability(Durability::Immediate);
            summary.associations = copy_table(&read, &w, ASSOCIATIONS)?;
            summary.courses = copy_table(&read, &w, COURSES)?;
            summary.jobs = copy_table(&read, &w, JOBS)?;
            summary.created_instances = copy_table(&read, &w, CREATED)?;
            summary.stage_runs = copy_table(&read, &w, STAGE_RUNS)?;
            summary.outbound = copy_table(&read, &w, OUTBOUND)?;
            w.commit()?;
            drop(copy);
            std::fs::File::open(&tmp)?.sync_all()?;
            Ok(summary)
        })();
        let summary = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::store::fsync_dir(dir)?;
        }
        Ok(summary)
    }

    /// Makes every earlier non-durable commit (the association log) durable.
    pub fn flush(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }
}
