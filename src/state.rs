//! The state database: what cannot be rebuilt from the stored files. For now
//! the log of associations; the job queue, result versions and the outbound
//! queue of later stages belong here too, never in the rebuildable index.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const ASSOCIATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("associations");

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
        let db = Database::create(&path)
            .with_context(|| format!("opening state database {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(ASSOCIATIONS)?;
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

    pub fn flush(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }
}
