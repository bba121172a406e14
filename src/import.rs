//! DICOM files as senders and importers find them on disk: Part 10 files
//! (sent and imported as they are, after their meta group), bare data sets
//! without a meta group (old systems write them), and folders of both.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dicom_encoding::TransferSyntaxIndex;

use crate::dicom::part10;
use crate::dicom::uids;

/// Where the data set bytes of a file come from.
#[derive(Debug, Clone)]
pub enum Body {
    /// A Part 10 file: the bytes after its meta group, as they are.
    File {
        /// Byte offset of the data set in the file (just after the meta group).
        offset: u64,
        /// Length of the data set in bytes.
        len: u64,
    },
    /// A bare data set re-encoded in memory (files without a meta group).
    Memory(Vec<u8>),
}

/// One file ready to send or import: its identity from the data set, and where its bytes are.
#[derive(Debug, Clone)]
pub struct Item {
    /// The file on disk.
    pub path: PathBuf,
    /// SOPClassUID from the data set.
    pub sop_class: String,
    /// SOPInstanceUID from the data set.
    pub sop_instance: String,
    /// Transfer syntax UID the data set bytes are encoded in.
    pub ts: String,
    /// Where the data set bytes come from.
    pub body: Body,
}

/// Expands `paths` into files: files as given, folders walked recursively in name order keeping only files that look like DICOM (Part 10 or a bare data set).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() && looks_like_dicom(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn text_of(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .filter(|s| uids::check_uid(s).is_ok())
}

/// A bare data set (no preamble, no meta group) starts with a group-0008
/// element; explicit VR shows as two upper-case letters after the tag.
fn bare_dataset_syntax(head: &[u8]) -> Option<&'static str> {
    if head.len() < 8 || head[0..2] != [0x08, 0x00] {
        return None;
    }
    if head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase() {
        Some(uids::EXPLICIT_VR_LE)
    } else {
        Some(uids::IMPLICIT_VR_LE)
    }
}

/// Whether a file found while walking a folder is worth offering at all.
fn looks_like_dicom(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    (n == 132 && &head[128..132] == b"DICM") || bare_dataset_syntax(&head[..n]).is_some()
}

/// Reads `path`'s identity and locates its data set bytes; the error is a message for a person (unreadable, not DICOM, no SOP UIDs).
pub fn prepare(path: &Path) -> Result<Item, String> {
    use dicom_dictionary_std::tags;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if let Some(meta) = part10::read_file_meta(&mut f).map_err(|e| e.to_string())? {
        // The command carries the data set's own UIDs, as dcmtk's storescu
        // does: a meta group that disagrees with its data set is not ours to
        // believe, and the receiver checks the data set anyway.
        // When dicom-object will not parse the file (a meta group it finds
        // invalid, say), the meta group's UIDs are offered as they are: the
        // receiver is the one to judge the data set.
        let head = dicom_object::OpenFileOptions::new()
            .read_until(tags::STUDY_DATE)
            .open_file(path)
            .ok();
        let from_data_set = |tag| head.as_ref().and_then(|h| text_of(h, tag));
        return Ok(Item {
            path: path.to_path_buf(),
            sop_class: from_data_set(tags::SOP_CLASS_UID).unwrap_or(meta.sop_class_uid),
            sop_instance: from_data_set(tags::SOP_INSTANCE_UID).unwrap_or(meta.sop_instance_uid),
            ts: meta.transfer_syntax_uid,
            body: Body::File {
                offset: meta.dataset_offset,
                len: len.saturating_sub(meta.dataset_offset),
            },
        });
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let ts_uid =
        bare_dataset_syntax(&bytes).ok_or("not a DICOM file (no DICM marker, no data set)")?;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or("transfer syntax not registered")?;
    let obj = dicom_object::InMemDicomObject::read_dataset_with_ts(&bytes[..], ts)
        .map_err(|e| format!("not a DICOM file: {e}"))?;
    let sop_class = text_of(&obj, tags::SOP_CLASS_UID).ok_or("no SOPClassUID")?;
    let sop_instance = text_of(&obj, tags::SOP_INSTANCE_UID).ok_or("no SOPInstanceUID")?;
    Ok(Item {
        path: path.to_path_buf(),
        sop_class,
        sop_instance,
        ts: ts_uid.to_string(),
        body: Body::Memory(bytes),
    })
}

impl Item {
    /// The data set bytes, in pieces of at most `chunk` bytes.
    pub fn for_each_chunk(
        &self,
        chunk: usize,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        match &self.body {
            Body::Memory(bytes) => {
                for c in bytes.chunks(chunk.max(1)) {
                    f(c)?;
                }
            }
            Body::File { offset, len } => {
                let mut file = std::fs::File::open(&self.path)
                    .with_context(|| format!("{}", self.path.display()))?;
                file.seek(SeekFrom::Start(*offset))?;
                let mut left = *len;
                let mut buf = vec![0u8; chunk.max(1)];
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    file.read_exact(&mut buf[..n])?;
                    f(&buf[..n])?;
                    left -= n as u64;
                }
            }
        }
        Ok(())
    }
}
