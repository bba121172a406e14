//! Removing instances for good (retention). The files go first and the index
//! rows after, so that a crash in between leaves index rows without files —
//! which the recovery scan drops — and never files without rows, which a
//! recovery scan or `rebuild-index` would bring back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::{debug, warn};

use super::index::Index;
use super::record::InstanceRecord;
use super::{fsync_dir, CLEAN_MARKER};

/// Removes the instances named (unknown UIDs are ignored) from `store/` and
/// the index, and returns the records of what was removed. Empty series and
/// study folders go too.
pub fn remove_instances(
    data_dir: &Path,
    index: &Index,
    sop_instance_uids: &[String],
) -> Result<Vec<InstanceRecord>> {
    let mut records = Vec::new();
    for uid in sop_instance_uids {
        if let Some(r) = index.get(uid)? {
            records.push(r);
        }
    }
    if records.is_empty() {
        return Ok(records);
    }
    // Without a server the index may be marked clean; a crash between the
    // file removals and the index commit must then still trigger the
    // recovery scan at the next start, so the marker goes for the duration.
    let marker = data_dir.join(CLEAN_MARKER);
    let was_clean = marker.exists();
    if was_clean {
        std::fs::remove_file(&marker).context("removing the clean-shutdown marker")?;
        fsync_dir(data_dir)?;
    }
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for r in &records {
        let path = data_dir.join(&r.path);
        match std::fs::remove_file(&path) {
            Ok(()) => debug!(path = %path.display(), "instance file removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        if let Some(d) = path.parent() {
            dirs.insert(d.to_path_buf());
        }
    }
    for d in &dirs {
        fsync_dir(d).with_context(|| format!("syncing {}", d.display()))?;
    }
    for uid in records.iter().map(|r| r.sop_instance_uid.as_str()) {
        index.remove(uid, false)?;
    }
    index.flush()?;
    remove_empty_dirs(data_dir, &dirs);
    if was_clean {
        std::fs::write(&marker, b"clean\n").context("writing the clean-shutdown marker")?;
        fsync_dir(data_dir)?;
    }
    Ok(records)
}

/// Series folders left empty, then their study folders; a folder that still
/// holds something (a concurrent arrival) simply stays.
fn remove_empty_dirs(data_dir: &Path, series_dirs: &BTreeSet<PathBuf>) {
    let store = data_dir.join("store");
    let mut studies = BTreeSet::new();
    for d in series_dirs {
        if std::fs::remove_dir(d).is_ok() {
            if let Some(s) = d.parent() {
                studies.insert(s.to_path_buf());
            }
        }
    }
    for s in studies
        .iter()
        .filter(|s| s.starts_with(&store) && **s != store)
    {
        let _ = std::fs::remove_dir(s);
    }
    if let Err(e) = fsync_dir(&store) {
        warn!(error = %e, "cannot sync the store directory");
    }
}
