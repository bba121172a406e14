//! Reconciling the index with the files: after an unclean stop (the index's
//! last commits may not have reached the disk) and for `rebuild-index`.
//!
//! The files are the truth. Every `store/<study>/<series>/<sop>.dcm` is
//! indexed; an index row whose file is gone is re-pointed at another copy of
//! the same instance or dropped; when two copies of one instance exist (a
//! crash between a duplicate's rename and the removal of the older copy),
//! the newer file wins, since only it can have been acknowledged last.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use tracing::warn;

use super::index::Index;
use super::record::read_record;

/// What a reconciliation of the index with the files did, in counts of
/// instances (files).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// `.dcm` files found under `store/`.
    pub files_scanned: u64,
    /// Files that had no index row and were added.
    pub indexed: u64,
    /// Index rows moved to another file of the same instance.
    pub repointed: u64,
    /// Older copies of a re-sent instance removed from disk.
    pub stale_removed: u64,
    /// Index rows dropped because their file is gone.
    pub records_dropped: u64,
    /// Files left out of the index: unparsable, or their SOPInstanceUID
    /// disagrees with the file name.
    pub unreadable: u64,
}

struct FoundFile {
    rel: String,
    abs: PathBuf,
    mtime: SystemTime,
}

fn scan(data_dir: &Path) -> Result<(HashMap<String, Vec<FoundFile>>, u64)> {
    let store = data_dir.join("store");
    let mut by_sop: HashMap<String, Vec<FoundFile>> = HashMap::new();
    let mut n = 0;
    let studies = match std::fs::read_dir(&store) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((by_sop, 0)),
        Err(e) => return Err(e).context("reading the store directory"),
    };
    for study in studies.flatten() {
        let Ok(series_dirs) = std::fs::read_dir(study.path()) else {
            continue;
        };
        for series in series_dirs.flatten() {
            let Ok(files) = std::fs::read_dir(series.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(sop) = name.strip_suffix(".dcm") else {
                    continue;
                };
                n += 1;
                let abs = f.path();
                let rel = format!(
                    "store/{}/{}/{}",
                    study.file_name().to_string_lossy(),
                    series.file_name().to_string_lossy(),
                    name
                );
                let mtime = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                by_sop
                    .entry(sop.to_string())
                    .or_default()
                    .push(FoundFile { rel, abs, mtime });
            }
        }
    }
    Ok((by_sop, n))
}

/// Brings the index in line with the files (see the module comment).
pub fn reconcile(data_dir: &Path, index: &Index) -> Result<RecoveryReport> {
    let (mut on_disk, scanned) = scan(data_dir)?;
    let indexed = index.paths()?;
    let mut report = RecoveryReport {
        files_scanned: scanned,
        ..RecoveryReport::default()
    };
    // Newest first; older copies of the same instance are stale.
    for copies in on_disk.values_mut() {
        copies.sort_by_key(|c| std::cmp::Reverse(c.mtime));
        for stale in copies.drain(1..) {
            warn!(path = %stale.rel, "older copy of a re-sent instance left by a crash; removing it");
            if std::fs::remove_file(&stale.abs).is_ok() {
                report.stale_removed += 1;
            }
        }
    }
    for (sop, path) in &indexed {
        if !on_disk.contains_key(sop) {
            index.remove(sop, false)?;
            report.records_dropped += 1;
            warn!(path = %path, "indexed file is gone; dropped from the index");
        }
    }
    let mut batch = Vec::new();
    for (sop, copies) in on_disk {
        let Some(file) = copies.into_iter().next() else {
            continue;
        };
        let known = indexed.get(&sop);
        if known == Some(&file.rel) {
            continue;
        }
        match read_record(&file.abs) {
            Ok(mut rec) if rec.sop_instance_uid == sop => {
                rec.path = file.rel.clone();
                rec.file_size = std::fs::metadata(&file.abs).map(|m| m.len()).unwrap_or(0);
                rec.received_at = crate::time::rfc3339(file.mtime);
                rec.content_hash = hash_dataset(&file.abs).unwrap_or_default();
                if known.is_some() {
                    report.repointed += 1;
                } else {
                    report.indexed += 1;
                }
                batch.push(rec);
            }
            Ok(rec) => {
                report.unreadable += 1;
                warn!(path = %file.rel, sop_in_file = %rec.sop_instance_uid, "file name and SOPInstanceUID disagree; not indexed");
            }
            Err(e) => {
                report.unreadable += 1;
                warn!(path = %file.rel, error = %e, "stored file cannot be read; not indexed");
            }
        }
        if batch.len() >= 512 {
            index.apply(&batch, false)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        index.apply(&batch, false)?;
    }
    Ok(report)
}

/// The hash the receiver computes: blake3 of the data set after the meta group.
fn hash_dataset(path: &Path) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let offset = crate::dicom::part10::read_file_meta(&mut f)?
        .map(|m| m.dataset_offset)
        .unwrap_or(0);
    f.seek(SeekFrom::Start(offset))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Throws the index away and builds it again from the files alone.
pub fn rebuild_index(data_dir: &Path) -> Result<RecoveryReport> {
    let path = super::index_path(data_dir);
    let fresh = data_dir.join("index.redb.rebuild");
    let _ = std::fs::remove_file(&fresh);
    let report = {
        let index = Index::open(&fresh)?;
        let r = reconcile(data_dir, &index)?;
        index.flush()?;
        r
    };
    // Swap in the new index only once it is complete.
    std::fs::rename(&fresh, &path).context("replacing the index")?;
    super::fsync_dir(data_dir)?;
    Ok(report)
}
