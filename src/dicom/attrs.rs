//! Attribute access that tolerates what real RT files carry: values
//! forwarded as UN by archives whose dictionary predates an attribute (the
//! bytes are still the text or implicit-VR sequence the standard defines,
//! PS3.5 6.2.2), trailing padding, and files without a meta group.

use std::path::Path;

use anyhow::{bail, Context, Result};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::uids::{EXPLICIT_VR_LE, IMPLICIT_VR_LE};

/// Opens a Part 10 file, or a bare data set (no preamble, no meta group, as
/// some old planning systems write) in implicit or explicit VR little endian.
/// `stop_before_pixels` leaves Pixel Data unread, for header-only reads.
pub fn open(path: &Path, stop_before_pixels: bool) -> Result<DefaultDicomObject> {
    let mut opts = OpenFileOptions::new();
    if stop_before_pixels {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    let part10_err = match opts.open_file(path) {
        Ok(obj) => return Ok(obj),
        Err(e) => e,
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        bail!("{}: {part10_err}", path.display());
    }
    // A bare data set starts with a group 0008 element; its third and fourth
    // bytes after the tag say whether an explicit VR follows.
    let ts_uid = match bytes.get(4..6) {
        Some(vr) if vr.iter().all(u8::is_ascii_uppercase) => EXPLICIT_VR_LE,
        _ => IMPLICIT_VR_LE,
    };
    if bytes.get(0..2) != Some(&[0x08, 0x00]) {
        bail!("{}: not a DICOM file ({part10_err})", path.display());
    }
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .context("transfer syntax registry lacks little endian")?;
    let obj = InMemDicomObject::read_dataset_with_ts(bytes.as_slice(), ts)
        .with_context(|| format!("{}: reading bare data set", path.display()))?;
    let sop_class = text(&obj, tags::SOP_CLASS_UID);
    let sop_uid = text(&obj, tags::SOP_INSTANCE_UID);
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(ts_uid)
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_uid),
    )
    .with_context(|| format!("{}: building a meta group", path.display()))
}

/// Raw bytes of a UN value, when they look like DICOM text.
fn un_text(bytes: &[u8]) -> Option<String> {
    bytes
        .iter()
        .all(|c| c.is_ascii() && (!c.is_ascii_control() || *c == 0))
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Text of an element, trimmed; empty when absent or not text.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    let Some(e) = obj.get(tag) else {
        return String::new();
    };
    let s = if e.vr() == VR::UN {
        match e.to_bytes().ok().and_then(|b| un_text(&b)) {
            Some(s) => s,
            None => return String::new(),
        }
    } else {
        match e.to_str() {
            Ok(s) => s.into_owned(),
            Err(_) => return String::new(),
        }
    };
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// A person name, decoded by the data set's SpecificCharacterSet — also in
/// the ISO 2022 form Japanese systems send (`\ISO 2022 IR 87`: the default
/// repertoire first, JIS X 0208 behind escape sequences), which the parser
/// reads as 7-bit text with the escape sequences left in: those are decoded
/// here as ISO-2022-JP. Other values are as [`text`] gives them.
pub fn person_name(obj: &InMemDicomObject, tag: Tag) -> String {
    use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
    let name = text(obj, tag);
    if !name.contains('\u{1b}') {
        return name;
    }
    let charset = code(obj, dicom_dictionary_std::tags::SPECIFIC_CHARACTER_SET);
    let japanese = charset.split('\\').any(|v| {
        matches!(
            v.trim(),
            "ISO 2022 IR 87" | "ISO 2022 IR 159" | "ISO 2022 IR 13"
        )
    });
    if !japanese {
        return name;
    }
    match SpecificCharacterSet::from_code("ISO 2022 IR 87").map(|c| c.decode(name.as_bytes())) {
        Some(Ok(decoded)) => decoded,
        _ => name,
    }
}

/// Upper-case code string (CS values are upper case by definition; some
/// writers do not care).
pub fn code(obj: &InMemDicomObject, tag: Tag) -> String {
    text(obj, tag).to_ascii_uppercase()
}

/// Every numeric value of an element (DS, IS, FD, FL, US, … or UN text).
/// `None` when absent, empty or unparseable.
pub fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let e = obj.get(tag)?;
    let v = if e.vr() == VR::UN {
        let s = un_text(&e.to_bytes().ok()?)?;
        s.split('\\')
            .map(|p| {
                p.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .parse::<f64>()
            })
            .collect::<Result<Vec<_>, _>>()
            .ok()?
    } else {
        e.to_multi_float64().ok()?
    };
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

/// The first numeric value of an element (see `floats`); `None` when absent, empty or unparseable.
pub fn float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(obj, tag).and_then(|v| v.first().copied())
}

/// An integer (IS, US, UL, …); DS-encoded integers written by careless
/// systems ("7.0") are accepted when integral.
pub fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    let e = obj.get(tag)?;
    if e.vr() != VR::UN {
        if let Ok(v) = e.to_int::<i64>() {
            return Some(v);
        }
    }
    let f = float(obj, tag)?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Items of a sequence; a sequence forwarded as UN is implicit VR little
/// endian inside and is decoded here (defined-length items only).
pub fn items(obj: &InMemDicomObject, tag: Tag) -> Vec<InMemDicomObject> {
    let Some(e) = obj.get(tag) else {
        return Vec::new();
    };
    if let Some(items) = e.items() {
        return items.to_vec();
    }
    if e.vr() != VR::UN {
        return Vec::new();
    }
    match e.to_bytes() {
        Ok(b) => un_items(&b),
        Err(_) => Vec::new(),
    }
}

fn un_items(bytes: &[u8]) -> Vec<InMemDicomObject> {
    let Some(ts) = TransferSyntaxRegistry.get(IMPLICIT_VR_LE) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let group = u16::from_le_bytes([head[0], head[1]]);
        let elem = u16::from_le_bytes([head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if (group, elem) != (0xFFFE, 0xE000) || len == u32::MAX {
            break;
        }
        let start = pos + 8;
        let Some(body) = bytes.get(start..start + len as usize) else {
            break;
        };
        if let Ok(item) = InMemDicomObject::read_dataset_with_ts(body, ts) {
            out.push(item);
        }
        pos = start + len as usize;
    }
    out
}

/// The Referenced SOP Instance UIDs of a reference sequence.
pub fn referenced_uids(obj: &InMemDicomObject, seq: Tag) -> Vec<String> {
    items(obj, seq)
        .iter()
        .map(|i| text(i, tags::REFERENCED_SOP_INSTANCE_UID))
        .filter(|u| !u.is_empty())
        .collect()
}
