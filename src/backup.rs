//! Backup and restore of the state database (`state.redb`), the one part of
//! a data directory that cannot be rebuilt: the instances are files (back
//! them up as files) and the index is rebuilt from them.
//!
//! A backup is a point-in-time copy taken inside one read transaction (see
//! [`StateDb::backup_to`]), so it can be taken while the node serves. When a
//! node runs, it makes the copy itself (it holds the database) into its
//! `tmp/`, and this process moves it to where it was asked: the service may
//! write only its data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::state::{state_path, BackupSummary, StateDb};

/// A backup a running node made into its `tmp/`, for the client to move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminBackup {
    /// The copy, `<data dir>/tmp/state-backup-<8 hex>.redb`.
    pub path: PathBuf,
    /// Rows copied, per table.
    pub summary: BackupSummary,
}

/// The admin socket's `backup`: a copy in the node's `tmp/` (the node holds
/// the database, so it makes the copy).
pub fn backup_in_node(data_dir: &Path, state: &StateDb) -> Result<AdminBackup> {
    let tmp = data_dir.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let path = tmp.join(format!("state-backup-{:08x}.redb", rand::random::<u32>()));
    let summary = state.backup_to(&path)?;
    info!(path = %path.display(), "state database backed up");
    Ok(AdminBackup { path, summary })
}

/// Moves a backup the running node made to `out`, where it was asked for
/// (the service may write only its data directory); the node's copy goes
/// either way.
pub fn take_from_node(made: AdminBackup, out: &Path) -> Result<BackupSummary> {
    let moved = move_into_place(&made.path, out);
    if moved.is_err() {
        let _ = std::fs::remove_file(&made.path);
    }
    moved?;
    Ok(made.summary)
}

/// `rtnode backup --out FILE` with no node running: from the state database
/// directly (see `admin::client::backup` for the command).
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupSummary> {
    let path = state_path(data_dir);
    anyhow::ensure!(path.exists(), "{} has no state database", path.display());
    let state = StateDb::open(data_dir)
        .context("opening the state database (is a server running without its admin socket?)")?;
    state.backup_to(out)
}

/// Renames (same file system) or copies and syncs, never leaving a partial
/// file under the final name.
fn move_into_place(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return sync_parent(to);
    }
    let name = to
        .file_name()
        .with_context(|| format!("{} names no file", to.display()))?
        .to_string_lossy()
        .to_string();
    let partial = to.with_file_name(format!(".{name}.partial"));
    std::fs::copy(from, &partial)
        .with_context(|| format!("copying {} to {}", from.display(), partial.display()))?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, to)
        .with_context(|| format!("renaming {} to {}", partial.display(), to.display()))?;
    sync_parent(to)?;
    std::fs::remove_file(from).with_context(|| format!("removing {}", from.display()))?;
    Ok(())
}

fn sync_parent(p: &Path) -> Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::fsync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// What [`restore`] put in place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restored {
    /// Rows of the restored database, per table.
    pub summary: BackupSummary,
    /// Where the state database that was replaced was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// `rtnode restore FILE`: replaces the data directory's state database with
/// a backup. The caller refuses while a node answers on the admin socket
/// (`admin::client::restore`); a node without one is caught by the
/// database's lock. The database it replaces is kept beside it as
/// `state.redb.before-restore-<time>`.
pub fn restore(data_dir: &Path, backup_file: &Path) -> Result<Restored> {
    anyhow::ensure!(
        backup_file.is_file(),
        "{} is not a file",
        backup_file.display()
    );
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let current = state_path(data_dir);
    // Opening the current database takes redb's lock: it fails when some
    // process (a node without admin socket) still has it open.
    if current.exists() {
        drop(StateDb::open(data_dir).context(
            "the state database is in use (is a node running?): stop it before restoring",
        )?);
    }
    // Copy first and check the copy: the backup file itself stays untouched.
    let incoming = data_dir.join(".state.redb.restoring");
    let _ = std::fs::remove_file(&incoming);
    std::fs::copy(backup_file, &incoming)
        .with_context(|| format!("copying {}", backup_file.display()))?;
    let summary = {
        let check = StateDb::open_at(&incoming)
            .with_context(|| format!("{} is not a state database", backup_file.display()));
        match check.and_then(|db| db.counts()) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&incoming);
                return Err(e);
            }
        }
    };
    std::fs::File::open(&incoming)?.sync_all()?;
    let previous = if current.exists() {
        let stamp = crate::time::now_rfc3339().replace(':', "-");
        let aside = data_dir.join(format!("state.redb.before-restore-{stamp}"));
        std::fs::rename(&current, &aside)
            .with_context(|| format!("moving {} aside", current.display()))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&incoming, &current)
        .with_context(|| format!("putting the backup in place at {}", current.display()))?;
    crate::store::fsync_dir(data_dir)?;
    info!(from = %backup_file.display(), "state database restored");
    Ok(Restored { summary, previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_holds_every_row_and_restores_in_place_of_the_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let state = StateDb::open(&data).unwrap();
        state
            .put_course("P1-aa", &serde_json::json!({"id": "P1-aa"}))
            .unwrap();
        state
            .put_job("P1-aa/v0001/qc", &serde_json::json!({"s": 1}))
            .unwrap();
        state.mark_created("1.2.3", "P1-aa").unwrap();
        state
            .enqueue_outbound(&[serde_json::json!({"x": 1})])
            .unwrap();
        state.count_stage_run("qc").unwrap();
        let file = dir.path().join("backup.redb");
        let copied = state.backup_to(&file).unwrap();
        assert_eq!(copied, state.counts().unwrap());
        assert_eq!((copied.courses, copied.jobs, copied.outbound), (1, 1, 1));
        // Changes after the backup are not in it, and a restore brings
        // back the rows as they were.
        let removed = state.remove_course("P1-aa", &[1]).unwrap();
        assert_eq!((removed.jobs, removed.created, removed.outbound), (1, 1, 1));
        assert!(removed.course);
        drop(state);
        let r = restore(&data, &file).unwrap();
        assert_eq!(r.summary, copied);
        assert!(r.previous.is_some_and(|p| p.exists()));
        let back = StateDb::open(&data).unwrap();
        assert_eq!(back.counts().unwrap(), copied);
        assert_eq!(back.created_for("P1-aa").unwrap(), ["1.2.3"]);
    }

    #[test]
    fn restore_refuses_a_file_that_is_no_database_and_keeps_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        drop(StateDb::open(&data).unwrap());
        let bogus = dir.path().join("bogus.redb");
        std::fs::write(&bogus, b"not a database").unwrap();
        assert!(restore(&data, &bogus).is_err());
        assert!(state_path(&data).exists());
        assert!(!data.join(".state.redb.restoring").exists());
    }
}
