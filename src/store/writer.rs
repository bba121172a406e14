//! One instance on its way to disk: a temporary file that receives the data
//! set as it streams in, then is synced, checked and described for the index.
//!
//! Throughput notes (BENCHMARKS.md, store throughput):
//! - The data set arrives in P-DATA pieces of up to the negotiated PDU
//!   (256 KiB by default). A piece of 64 KiB or more goes straight to the
//!   file (`BufWriter` passes large writes through); smaller ones, from
//!   senders that use small PDUs, are collected first.
//! - Starting writeback of each piece as it is written
//!   (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, so that the final
//!   `fdatasync` finds less to write) was tried and measured slower on the
//!   benchmark disk (virtio, write-back cache: the flush is the cost, and
//!   more, smaller write requests only add to it); see BENCHMARKS.md.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::record::{read_record, InstanceRecord};
use super::StoreFailure;
use crate::dicom::part10;
use crate::dicom::status::DimseStatus;
use crate::dicom::uids::{self, check_uid, UidCheck};

/// Pieces smaller than this are collected before they are written.
const WRITE_BUFFER: usize = 64 * 1024;

/// An instance being received: its temporary file in `tmp/`, the running
/// blake3 of the data set, and the first failure met, which `finish`
/// reports. Get one from `Store::begin`.
pub struct PendingWrite {
    file: BufWriter<File>,
    tmp_path: PathBuf,
    dataset_offset: u64,
    bytes: u64,
    hasher: blake3::Hasher,
    fsync: bool,
    sop_class_uid: String,
    sop_instance_uid: String,
    transfer_syntax_uid: String,
    calling_ae: String,
    failed: Option<StoreFailure>,
}

/// An instance that is complete and synced in `tmp/`, with its index record.
#[derive(Debug)]
pub struct Prepared {
    /// The complete, synced file under `tmp/`, to be renamed into `store/`
    /// on commit.
    pub tmp_path: PathBuf,
    /// Its index record; `path` already names the final place in `store/`.
    pub record: InstanceRecord,
}

fn out_of_resources(what: &str, e: std::io::Error) -> StoreFailure {
    StoreFailure::new(DimseStatus::OUT_OF_RESOURCES, format!("{what}: {e}"))
}

impl PendingWrite {
    pub(super) fn create(
        tmp_dir: &Path,
        fsync: bool,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        transfer_syntax_uid: &str,
        calling_ae: &str,
    ) -> Result<PendingWrite, StoreFailure> {
        let name = format!("{:032x}.part", rand::random::<u128>());
        let tmp_path = tmp_dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| out_of_resources("cannot create temporary file", e))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, file);
        let meta = part10::encode_file_meta(
            sop_class_uid,
            sop_instance_uid,
            transfer_syntax_uid,
            calling_ae,
        );
        if let Err(e) = file.write_all(&meta) {
            let f = out_of_resources("write failed", e);
            drop(file);
            let _ = std::fs::remove_file(&tmp_path);
            return Err(f);
        }
        Ok(PendingWrite {
            file,
            tmp_path,
            dataset_offset: meta.len() as u64,
            bytes: 0,
            hasher: blake3::Hasher::new(),
            fsync,
            sop_class_uid: sop_class_uid.to_string(),
            sop_instance_uid: sop_instance_uid.to_string(),
            transfer_syntax_uid: transfer_syntax_uid.to_string(),
            calling_ae: calling_ae.to_string(),
            failed: None,
        })
    }

    /// Appends received data set bytes. After a write error the rest of the
    /// stream is swallowed and the failure reported at `finish`.
    pub fn write(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        if let Err(e) = self.file.write_all(chunk) {
            self.failed = Some(out_of_resources("write failed", e));
        }
    }

    /// Drops the partial file (association aborted mid-data-set).
    pub fn abandon(self) {
        let path = self.tmp_path.clone();
        drop(self.file);
        let _ = std::fs::remove_file(path);
    }

    /// Syncs the file, proves the data set complete and parseable, checks the
    /// UIDs it will be filed under, and returns it ready to commit.
    pub fn finish(mut self) -> Result<Prepared, StoreFailure> {
        let tmp_path = self.tmp_path.clone();
        let result = self.finish_inner();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp_path);
        }
        result
    }

    fn finish_inner(&mut self) -> Result<Prepared, StoreFailure> {
        if let Some(f) = self.failed.take() {
            return Err(f);
        }
        if self.bytes == 0 {
            return Err(StoreFailure::new(
                DimseStatus::CANNOT_UNDERSTAND,
                "empty data set",
            ));
        }
        self.file
            .flush()
            .map_err(|e| out_of_resources("write failed", e))?;
        if self.fsync {
            self.file
                .get_ref()
                .sync_data()
                .map_err(|e| out_of_resources("fsync failed", e))?;
        }
        let end = self.dataset_offset + self.bytes;
        if self.transfer_syntax_uid != uids::DEFLATED_EXPLICIT_VR_LE {
            let f = File::open(&self.tmp_path).map_err(|e| out_of_resources("reopen failed", e))?;
            let mut r = BufReader::with_capacity(64 * 1024, f);
            r.seek(SeekFrom::Start(self.dataset_offset))
                .map_err(|e| out_of_resources("seek failed", e))?;
            part10::check_dataset_structure(&mut r, &self.transfer_syntax_uid, end)
                .map_err(|e| StoreFailure::new(DimseStatus::CANNOT_UNDERSTAND, e.to_string()))?;
        }
        let mut record = read_record(&self.tmp_path)
            .map_err(|e| StoreFailure::new(DimseStatus::CANNOT_UNDERSTAND, e.to_string()))?;
        if record.sop_instance_uid != self.sop_instance_uid {
            return Err(StoreFailure::new(
                DimseStatus::DATA_SET_DOES_NOT_MATCH,
                format!(
                    "SOPInstanceUID {} in the data set, {} in the command",
                    record.sop_instance_uid, self.sop_instance_uid
                ),
            ));
        }
        if !record.sop_class_uid.is_empty() && record.sop_class_uid != self.sop_class_uid {
            return Err(StoreFailure::new(
                DimseStatus::DATA_SET_DOES_NOT_MATCH,
                format!(
                    "SOPClassUID {} in the data set, {} in the command",
                    record.sop_class_uid, self.sop_class_uid
                ),
            ));
        }
        for (what, uid) in [
            ("StudyInstanceUID", &record.study_instance_uid),
            ("SeriesInstanceUID", &record.series_instance_uid),
        ] {
            match check_uid(uid) {
                Ok(UidCheck::Valid) => {}
                Ok(UidCheck::LeadingZeroComponent) => {
                    warn!(uid = %uid, calling_ae = %self.calling_ae, "{what} has a component with a leading zero; stored anyway")
                }
                Err(e) => {
                    return Err(StoreFailure::new(
                        DimseStatus::INVALID_UID,
                        format!("{what}: {e}"),
                    ))
                }
            }
        }
        record.sop_class_uid = self.sop_class_uid.clone();
        record.path = format!(
            "store/{}/{}/{}.dcm",
            record.study_instance_uid, record.series_instance_uid, record.sop_instance_uid
        );
        record.file_size = end;
        record.content_hash = self.hasher.finalize().to_hex().to_string();
        record.calling_ae = self.calling_ae.clone();
        record.received_at = crate::time::now_rfc3339();
        Ok(Prepared {
            tmp_path: self.tmp_path.clone(),
            record,
        })
    }
}
