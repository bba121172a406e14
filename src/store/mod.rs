//! Durable storage of received instances.
//!
//! The rule that everything here serves: a C-STORE success is sent only once
//! the file is complete at its final name, fsynced with its directory, and
//! known to the index (or to the recovery scan that runs after a crash).
//!
//! Layout under the data directory:
//! - `store/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`: the instances, as
//!   received, behind a file meta group we write;
//! - `tmp/`: files being received (never visible in `store/`), emptied at start;
//! - `index.redb`: the instance index (rebuildable), `index.clean` marks a
//!   clean shutdown so that start-up can skip the recovery scan.

pub mod index;
pub mod query;
pub mod record;
mod recovery;
mod removal;
pub mod settings;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

pub use index::{Counts, Index};
pub use record::InstanceRecord;
pub use recovery::{rebuild_index, RecoveryReport};
pub use removal::remove_instances;
pub use writer::{PendingWrite, Prepared};

use crate::dicom::status::DimseStatus;

/// Why a C-STORE was not stored: the DIMSE status and a comment for the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    /// The C-STORE-RSP status, e.g. `OUT_OF_RESOURCES` (A700) or
    /// `PROCESSING_FAILURE` (0110).
    pub status: DimseStatus,
    /// Error Comment (0000,0902) for the peer and the log.
    pub comment: String,
}

impl StoreFailure {
    /// A failure with `status` and a comment for the peer.
    pub fn new(status: DimseStatus, comment: impl Into<String>) -> Self {
        StoreFailure {
            status,
            comment: comment.into(),
        }
    }
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X} {}", self.status, self.comment)
    }
}

/// How [`Store::open`] sets up the store; from the `storage:` config section.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The data directory holding `store/`, `tmp/` and `index.redb`.
    pub data_dir: PathBuf,
    /// Fsync each file and its directory before the C-STORE success
    /// (`storage.fsync`); off only for tests and benchmarks.
    pub fsync: bool,
    /// Below this much free space on the data directory, bytes, new
    /// instances are refused with Out of Resources (`storage.min_free_bytes`).
    pub min_free_bytes: u64,
    /// Page cache of index.redb (`storage.index_cache_mb`).
    pub index_cache_bytes: usize,
}

/// Told of every instance once it is committed (the course assembler).
pub type Listener = Arc<dyn Fn(&InstanceRecord) + Send + Sync>;
type ListenerSlot = Arc<std::sync::RwLock<Option<Listener>>>;

struct CommitRequest {
    prepared: Prepared,
    reply: oneshot::Sender<Result<(), StoreFailure>>,
}

/// The durable instance store: files under the data directory, their
/// index, and the single commit thread that makes both durable in batches.
pub struct Store {
    opts: StoreOptions,
    store_dir: PathBuf,
    tmp_dir: PathBuf,
    index: Arc<Index>,
    commits: std::sync::Mutex<Option<std_mpsc::Sender<CommitRequest>>>,
    committer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    listener: ListenerSlot,
}

const CLEAN_MARKER: &str = "index.clean";

/// Where the instance index lives in a data directory (`index.redb`).
pub fn index_path(data_dir: &Path) -> PathBuf {
    data_dir.join("index.redb")
}

impl Store {
    /// Opens (creating) the store, recovers from an unclean stop, and starts
    /// the commit thread.
    pub fn open(opts: StoreOptions) -> Result<Store> {
        let store_dir = opts.data_dir.join("store");
        let tmp_dir = opts.data_dir.join("tmp");
        for d in [&opts.data_dir, &store_dir, &tmp_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        clear_tmp(&tmp_dir);
        let index = Arc::new(Index::open_with_cache(
            &index_path(&opts.data_dir),
            opts.index_cache_bytes,
        )?);
        let marker = opts.data_dir.join(CLEAN_MARKER);
        if marker.exists() {
            std::fs::remove_file(&marker).context("removing the clean-shutdown marker")?;
            fsync_dir(&opts.data_dir)?;
            debug!("clean shutdown last time; no recovery scan");
        } else {
            let started = Instant::now();
            let report = recovery::reconcile(&opts.data_dir, &index)?;
            index.flush()?;
            info!(
                scanned = report.files_scanned,
                indexed = report.indexed,
                repointed = report.repointed,
                removed_stale = report.stale_removed,
                dropped = report.records_dropped,
                unreadable = report.unreadable,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "recovery scan after an unclean stop"
            );
        }
        let (tx, rx) = std_mpsc::channel();
        let listener: ListenerSlot = Arc::new(std::sync::RwLock::new(None));
        let committer = {
            let index = index.clone();
            let data_dir = opts.data_dir.clone();
            let fsync = opts.fsync;
            let listener = listener.clone();
            std::thread::Builder::new()
                .name("store-commit".into())
                .spawn(move || commit_loop(rx, index, data_dir, fsync, listener))
                .context("starting the commit thread")?
        };
        Ok(Store {
            opts,
            store_dir,
            tmp_dir,
            index,
            commits: std::sync::Mutex::new(Some(tx)),
            committer: std::sync::Mutex::new(Some(committer)),
            listener,
        })
    }

    /// Registers the one listener told of each committed instance.
    pub fn set_listener(&self, l: Listener) {
        *self.listener.write().unwrap_or_else(|p| p.into_inner()) = Some(l);
    }

    /// The instance index the store keeps.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// The data directory the store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }

    /// `store/` under the data directory: where committed instances live.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Free space on the data directory's file system, bytes available to
    /// an unprivileged user.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        free_bytes(&self.opts.data_dir)
    }

    /// Whether a file can be created, written, synced and removed where
    /// received files are written first (`tmp/`), for readiness checks.
    pub fn check_writable(&self) -> std::io::Result<()> {
        use std::io::Write;
        let probe = self
            .tmp_dir
            .join(format!(".write-probe-{}", std::process::id()));
        let res = (|| {
            let mut f = std::fs::File::create(&probe)?;
            f.write_all(b"probe")?;
            f.sync_all()
        })();
        let removed = std::fs::remove_file(&probe);
        res.and(removed)
    }

    /// Refuses new data before the disk is actually full.
    pub fn check_free_space(&self) -> Result<(), StoreFailure> {
        match self.free_bytes() {
            Ok(free) if free < self.opts.min_free_bytes => Err(StoreFailure::new(
                DimseStatus::OUT_OF_RESOURCES,
                format!(
                    "free space {} bytes below the low-watermark {}",
                    free, self.opts.min_free_bytes
                ),
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(StoreFailure::new(
                DimseStatus::OUT_OF_RESOURCES,
                format!("cannot read free space: {e}"),
            )),
        }
    }

    /// Starts receiving one instance into a temporary file. Blocking.
    pub fn begin(
        &self,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        transfer_syntax_uid: &str,
        calling_ae: &str,
    ) -> Result<PendingWrite, StoreFailure> {
        PendingWrite::create(
            &self.tmp_dir,
            self.opts.fsync,
            sop_class_uid,
            sop_instance_uid,
            transfer_syntax_uid,
            calling_ae,
        )
    }

    /// Moves a prepared instance to its final name and indexes it; resolves
    /// once that is durable (or covered by recovery).
    pub async fn commit(&self, prepared: Prepared) -> Result<(), StoreFailure> {
        let rx = self.submit(prepared);
        rx.await.unwrap_or_else(|_| {
            Err(StoreFailure::new(
                DimseStatus::OUT_OF_RESOURCES,
                "commit thread stopped",
            ))
        })
    }

    /// Blocking variant for callers outside the runtime (import, tests).
    pub fn commit_blocking(&self, prepared: Prepared) -> Result<(), StoreFailure> {
        let rx = self.submit(prepared);
        rx.blocking_recv().unwrap_or_else(|_| {
            Err(StoreFailure::new(
                DimseStatus::OUT_OF_RESOURCES,
                "commit thread stopped",
            ))
        })
    }

    fn submit(&self, prepared: Prepared) -> oneshot::Receiver<Result<(), StoreFailure>> {
        let (reply, rx) = oneshot::channel();
        self.commit_then_reply(prepared, reply);
        rx
    }

    /// Queues a prepared instance for the commit thread, which sends the
    /// outcome on `reply` once the instance is durable and indexed (or has
    /// failed). The C-STORE path calls this from its writer thread, so that
    /// the commit thread answers the association directly: one thread
    /// hand-off fewer per instance than handing the prepared instance back
    /// to the association first. Never blocks on the commit itself.
    pub fn commit_then_reply(
        &self,
        prepared: Prepared,
        reply: oneshot::Sender<Result<(), StoreFailure>>,
    ) {
        let guard = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        let refused = match guard.as_ref() {
            Some(tx) => tx
                .send(CommitRequest { prepared, reply })
                .err()
                .map(|e| e.0.reply),
            None => Some(reply),
        };
        if let Some(reply) = refused {
            let _ = reply.send(Err(StoreFailure::new(
                DimseStatus::OUT_OF_RESOURCES,
                "store is shutting down",
            )));
        }
    }

    /// Stops the commit thread, makes the index durable and marks the stop
    /// as clean so that the next start skips the recovery scan. Call it only
    /// once no writer can still commit.
    pub fn close(&self) -> Result<()> {
        drop(
            self.commits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.index.flush()?;
        let marker = self.opts.data_dir.join(CLEAN_MARKER);
        std::fs::write(&marker, b"clean\n").context("writing the clean-shutdown marker")?;
        fsync_dir(&self.opts.data_dir)?;
        Ok(())
    }
}

fn clear_tmp(tmp_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    if n > 0 {
        info!(
            files = n,
            "removed partial files of transfers that never completed"
        );
    }
}

/// Fsyncs a directory, making the creation, rename or removal of its
/// entries durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Free space, bytes available to an unprivileged user (statvfs `f_bavail`),
/// on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path with NUL"))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized
    // out-parameter that statvfs fills completely on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let s = unsafe { s.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Group commit: renames, directory syncs and one index transaction shared
/// by every instance that arrived while the previous batch was committing.
fn commit_loop(
    rx: std_mpsc::Receiver<CommitRequest>,
    index: Arc<Index>,
    data_dir: PathBuf,
    fsync: bool,
    listener: ListenerSlot,
) {
    let mut dirty_since: Option<Instant> = None;
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(r) => r,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                if dirty_since.take().is_some() {
                    if let Err(e) = index.flush() {
                        error!(error = %e, "index flush failed");
                    }
                }
                continue;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        commit_batch(batch, &index, &data_dir, fsync, &listener);
        let since = *dirty_since.get_or_insert_with(Instant::now);
        if since.elapsed() > Duration::from_secs(2) {
            if let Err(e) = index.flush() {
                error!(error = %e, "index flush failed");
            }
            dirty_since = None;
        }
    }
    if let Err(e) = index.flush() {
        error!(error = %e, "final index flush failed");
    }
}

fn commit_batch(
    batch: Vec<CommitRequest>,
    index: &Index,
    data_dir: &Path,
    fsync: bool,
    listener: &ListenerSlot,
) {
    let mut placed = Vec::with_capacity(batch.len());
    let mut dirs_to_sync: Vec<PathBuf> = Vec::new();
    for req in batch {
        let rel = req.prepared.record.path.clone();
        let dest = data_dir.join(&rel);
        let result = (|| -> std::io::Result<()> {
            let series_dir = dest
                .parent()
                .ok_or_else(|| std::io::Error::other("no parent"))?;
            if !series_dir.exists() {
                // New directories must reach the disk along with their entry
                // in the parent, or a crash could lose the whole series.
                let study_dir = series_dir
                    .parent()
                    .ok_or_else(|| std::io::Error::other("no parent"))?;
                let study_new = !study_dir.exists();
                std::fs::create_dir_all(series_dir)?;
                push_unique(&mut dirs_to_sync, study_dir.to_path_buf());
                if study_new {
                    if let Some(store) = study_dir.parent() {
                        push_unique(&mut dirs_to_sync, store.to_path_buf());
                    }
                }
            }
            std::fs::rename(&req.prepared.tmp_path, &dest)?;
            push_unique(&mut dirs_to_sync, series_dir.to_path_buf());
            Ok(())
        })();
        match result {
            Ok(()) => placed.push(req),
            Err(e) => {
                error!(path = %dest.display(), error = %e, "cannot place received file");
                let _ = std::fs::remove_file(&req.prepared.tmp_path);
                let _ = req.reply.send(Err(StoreFailure::new(
                    DimseStatus::OUT_OF_RESOURCES,
                    format!("write failed: {e}"),
                )));
            }
        }
    }
    let dir_sync = if fsync {
        // Deepest first, so a series directory is synced before its study's.
        dirs_to_sync.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        sync_dirs(&dirs_to_sync)
    } else {
        Ok(())
    };
    if let Err(e) = dir_sync {
        error!(error = %e, "directory fsync failed");
        for req in placed {
            let _ = req.reply.send(Err(StoreFailure::new(
                DimseStatus::OUT_OF_RESOURCES,
                format!("directory sync failed: {e}"),
            )));
        }
        return;
    }
    // The records are borrowed, not cloned, for the transaction.
    let records: Vec<&InstanceRecord> = placed.iter().map(|r| &r.prepared.record).collect();
    match index.apply(&records, false) {
        Ok(replaced) => {
            let l = listener.read().unwrap_or_else(|p| p.into_inner()).clone();
            for (req, rep) in placed.into_iter().zip(replaced) {
                if let Some(l) = &l {
                    l(&req.prepared.record);
                }
                if let Some(rep) = rep {
                    let old = data_dir.join(&rep.old_path);
                    match std::fs::remove_file(&old) {
                        Ok(()) => info!(
                            sop_instance_uid = %req.prepared.record.sop_instance_uid,
                            "duplicate received under other study/series; older copy removed"
                        ),
                        Err(e) => {
                            warn!(path = %old.display(), error = %e, "cannot remove older copy")
                        }
                    }
                }
                let _ = req.reply.send(Ok(()));
            }
        }
        Err(e) => {
            // The files are in place; recovery will index them, but the
            // sender is told to retry since we cannot vouch for them now.
            error!(error = %e, "index commit failed");
            for req in placed {
                let _ = req.reply.send(Err(StoreFailure::new(
                    DimseStatus::OUT_OF_RESOURCES,
                    format!("index commit failed: {e}"),
                )));
            }
        }
    }
}

/// fsyncs each directory in order; the first failure ends it.
fn sync_dirs(dirs: &[PathBuf]) -> std::io::Result<()> {
    for d in dirs {
        fsync_dir(d).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
    }
    Ok(())
}

fn push_unique(v: &mut Vec<PathBuf>, p: PathBuf) {
    if !v.contains(&p) {
        v.push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_object::InMemDicomObject;

    fn data_set(sop_instance: &str) -> Vec<u8> {
        let mut obj = InMemDicomObject::new_empty();
        for (tag, vr, v) in [
            (
                tags::SOP_CLASS_UID,
                VR::UI,
                crate::dicom::uids::CT_IMAGE_STORAGE,
            ),
            (tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.5"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.6"),
            (tags::MODALITY, VR::CS, "CT"),
            (tags::PATIENT_ID, VR::LO, "P1"),
        ] {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        }
        let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
            .get(crate::dicom::uids::EXPLICIT_VR_LE)
            .unwrap();
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, ts).unwrap();
        bytes
    }

    fn open(dir: &Path) -> Store {
        Store::open(StoreOptions {
            data_dir: dir.to_path_buf(),
            fsync: true,
            min_free_bytes: 0,
            index_cache_bytes: 1 << 20,
        })
        .unwrap()
    }

    /// The answer the C-STORE path waits for (sent by the commit thread
    /// straight to the association) comes only once the file is at its
    /// final name, the temporary file gone and the record in the index; the
    /// listener, told of committed instances only, has seen it by then.
    #[test]
    fn commit_answers_only_once_placed_and_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            store.set_listener(Arc::new(move |r: &InstanceRecord| {
                seen.lock().unwrap().push(r.sop_instance_uid.clone())
            }));
        }
        for uid in ["1.2.3.4.1", "1.2.3.4.2", "1.2.3.4.3"] {
            let mut w = store
                .begin(
                    crate::dicom::uids::CT_IMAGE_STORAGE,
                    uid,
                    crate::dicom::uids::EXPLICIT_VR_LE,
                    "SCU",
                )
                .unwrap();
            let bytes = data_set(uid);
            // In pieces, as P-DATA arrives; one smaller than the write buffer.
            let (a, b) = bytes.split_at(bytes.len() / 3);
            w.write(a);
            w.write(b);
            let prepared = w.finish().unwrap();
            let tmp = prepared.tmp_path.clone();
            let (tx, rx) = oneshot::channel();
            store.commit_then_reply(prepared, tx);
            assert_eq!(rx.blocking_recv().unwrap(), Ok(()));
            let rec = store
                .index()
                .get(uid)
                .unwrap()
                .expect("indexed before the answer");
            let path = dir.path().join(&rec.path);
            assert!(path.is_file(), "{} not in place", rec.path);
            assert!(!tmp.exists(), "temporary file left behind");
            let stored = std::fs::read(&path).unwrap();
            assert!(stored.ends_with(&bytes), "stored bytes differ");
            assert!(seen.lock().unwrap().contains(&uid.to_string()));
        }
        assert_eq!(store.index().counts().unwrap().instances, 3);
        store.close().unwrap();
    }

    /// A store that is shutting down refuses with a status instead of
    /// leaving the association waiting.
    #[test]
    fn commit_after_close_is_refused_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let uid = "1.2.3.4.9";
        let mut w = store
            .begin(
                crate::dicom::uids::CT_IMAGE_STORAGE,
                uid,
                crate::dicom::uids::EXPLICIT_VR_LE,
                "SCU",
            )
            .unwrap();
        w.write(&data_set(uid));
        let prepared = w.finish().unwrap();
        store.close().unwrap();
        let (tx, rx) = oneshot::channel();
        store.commit_then_reply(prepared, tx);
        let answer = rx.blocking_recv().unwrap();
        assert_eq!(answer.unwrap_err().status, DimseStatus::OUT_OF_RESOURCES);
    }
}
