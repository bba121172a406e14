//! DICOM Part 10 files at the byte level: the file meta group we write in
//! front of a data set received over the network (which arrives without
//! one), the meta group we read to send a file as is, and a structural walk
//! that proves a data set is complete without decoding its values.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use crate::dicom::uids;

/// Bytes of the Part 10 preamble before the `DICM` prefix.
pub const PREAMBLE_LEN: usize = 128;

/// What a Part 10 file's meta group says, and where its data set begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// MediaStorageSOPClassUID (0002,0002).
    pub sop_class_uid: String,
    /// MediaStorageSOPInstanceUID (0002,0003).
    pub sop_instance_uid: String,
    /// TransferSyntaxUID (0002,0010) of the data set that follows.
    pub transfer_syntax_uid: String,
    /// Byte offset of the data set from the start of the file (after preamble, prefix and meta group).
    pub dataset_offset: u64,
}

fn push_element(out: &mut Vec<u8>, element: u16, vr: &[u8; 2], value: &[u8]) {
    out.extend_from_slice(&0x0002u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if vr == b"OB" {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
}

fn padded(s: &str, pad: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

/// Preamble, `DICM` and the file meta group (always explicit VR little endian).
pub fn encode_file_meta(
    sop_class_uid: &str,
    sop_instance_uid: &str,
    transfer_syntax_uid: &str,
    source_ae: &str,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    push_element(&mut body, 0x0001, b"OB", &[0, 1]);
    push_element(&mut body, 0x0002, b"UI", &padded(sop_class_uid, 0));
    push_element(&mut body, 0x0003, b"UI", &padded(sop_instance_uid, 0));
    push_element(&mut body, 0x0010, b"UI", &padded(transfer_syntax_uid, 0));
    push_element(
        &mut body,
        0x0012,
        b"UI",
        &padded(crate::ul::IMPLEMENTATION_CLASS_UID, 0),
    );
    push_element(
        &mut body,
        0x0013,
        b"SH",
        &padded(crate::ul::IMPLEMENTATION_VERSION_NAME, b' '),
    );
    let ae = source_ae.trim();
    if !ae.is_empty() {
        push_element(&mut body, 0x0016, b"AE", &padded(ae, b' '));
    }
    let mut out = vec![0u8; PREAMBLE_LEN];
    out.extend_from_slice(b"DICM");
    push_element(&mut out, 0x0000, b"UL", &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn trim_uid(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\0', ' '])
        .trim()
        .to_string()
}

/// Reads the meta group of a Part 10 file. Returns `None` when the file has
/// no `DICM` marker (a bare data set, as some old systems write).
pub fn read_file_meta<R: Read>(r: &mut R) -> io::Result<Option<FileMeta>> {
    let mut head = [0u8; PREAMBLE_LEN + 4];
    if let Err(e) = r.read_exact(&mut head) {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return Ok(None);
        }
        return Err(e);
    }
    if &head[PREAMBLE_LEN..] != b"DICM" {
        return Ok(None);
    }
    let mut offset = (PREAMBLE_LEN + 4) as u64;
    let mut sop_class = None;
    let mut sop_instance = None;
    let mut ts = None;
    let mut group_end: Option<u64> = None;
    loop {
        if group_end.is_some_and(|end| offset >= end) {
            break;
        }
        let mut h = [0u8; 8];
        r.read_exact(&mut h)?;
        let group = u16::from_le_bytes([h[0], h[1]]);
        if group != 0x0002 {
            // Without a group length we only learn the end by overrunning it.
            return Err(crate::ul::invalid(
                "file meta group without a usable group length".into(),
            ));
        }
        let element = u16::from_le_bytes([h[2], h[3]]);
        let vr = [h[4], h[5]];
        let (len, header_len) =
            if matches!(&vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR") {
                let mut l = [0u8; 4];
                r.read_exact(&mut l)?;
                (u32::from_le_bytes(l), 12u64)
            } else {
                (u16::from_le_bytes([h[6], h[7]]) as u32, 8u64)
            };
        if len > 64 * 1024 {
            return Err(crate::ul::invalid(format!(
                "file meta element (0002,{element:04X}) of {len} bytes"
            )));
        }
        let mut value = vec![0u8; len as usize];
        r.read_exact(&mut value)?;
        offset += header_len + len as u64;
        match element {
            0x0000 if value.len() == 4 => {
                let gl = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                group_end = Some(offset + gl as u64);
            }
            0x0002 => sop_class = Some(trim_uid(&value)),
            0x0003 => sop_instance = Some(trim_uid(&value)),
            0x0010 => ts = Some(trim_uid(&value)),
            _ => {}
        }
        if group_end.is_none() {
            return Err(crate::ul::invalid(
                "file meta group does not start with its group length".into(),
            ));
        }
    }
    match (sop_class, sop_instance, ts) {
        (Some(c), Some(i), Some(t)) => Ok(Some(FileMeta {
            sop_class_uid: c,
            sop_instance_uid: i,
            transfer_syntax_uid: t,
            dataset_offset: offset,
        })),
        _ => Err(crate::ul::invalid(
            "file meta group lacks SOP class, instance or transfer syntax".into(),
        )),
    }
}

#[derive(Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQ_END: (u16, u16) = (0xFFFE, 0xE0DD);

/// Why a data set's structure does not hold together. The messages are
/// what a sender sees in the C-STORE response's Error Comment.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// Reading the stored bytes failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes end before the structure does.
    #[error("data set truncated at byte {0}")]
    Truncated(u64),
    /// A length, tag or delimiter that cannot be right.
    #[error("{0}")]
    Malformed(String),
}

/// Walks the data set's element structure from the reader's position to
/// `end`, checking that every length fits and every undefined-length
/// sequence and item is closed. A data set cut off anywhere (the typical
/// result of a dropped association or a broken sender) fails here, where a
/// parse that stops before Pixel Data would not notice.
///
/// Deflated data sets are not walked here (the caller inflates and parses).
pub fn check_dataset_structure<R: BufRead + Seek>(
    r: &mut R,
    transfer_syntax_uid: &str,
    end: u64,
) -> Result<(), StructureError> {
    let enc = match transfer_syntax_uid {
        uids::IMPLICIT_VR_LE => Encoding {
            explicit: false,
            big_endian: false,
        },
        uids::EXPLICIT_VR_BE => Encoding {
            explicit: true,
            big_endian: true,
        },
        _ => Encoding {
            explicit: true,
            big_endian: false,
        },
    };
    let start = r.stream_position().map_err(StructureError::Io)?;
    let mut walker = Walker { r, enc, pos: start };
    walker.elements(end, None, 0)?;
    if walker.pos != end {
        return Err(StructureError::Malformed(format!(
            "data set ends at {} but the file at {end}",
            walker.pos
        )));
    }
    Ok(())
}

struct Walker<'a, R> {
    r: &'a mut R,
    enc: Encoding,
    pos: u64,
}

impl<R: BufRead + Seek> Walker<'_, R> {
    fn read<const N: usize>(&mut self) -> Result<[u8; N], StructureError> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| StructureError::Truncated(self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn read_u16(&mut self) -> Result<u16, StructureError> {
        let b = self.read::<2>()?;
        Ok(self.u16(b))
    }

    fn read_u32(&mut self) -> Result<u32, StructureError> {
        let b = self.read::<4>()?;
        Ok(self.u32(b))
    }

    fn u16(&self, b: [u8; 2]) -> u16 {
        if self.enc.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        if self.enc.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn skip(&mut self, len: u32, limit: u64) -> Result<(), StructureError> {
        let to = self.pos + len as u64;
        if to > limit {
            return Err(StructureError::Malformed(format!(
                "element at byte {} claims {len} bytes but only {} remain",
                self.pos,
                limit.saturating_sub(self.pos)
            )));
        }
        // Small values are stepped over inside the read buffer; a seek would
        // throw the buffer away and re-read it for every element.
        let mut left = len as usize;
        while left > 0 && left <= 64 * 1024 {
            let buf = self.r.fill_buf().map_err(StructureError::Io)?;
            if buf.is_empty() {
                return Err(StructureError::Truncated(to - left as u64));
            }
            let n = left.min(buf.len());
            self.r.consume(n);
            left -= n;
        }
        if left > 0 {
            self.r
                .seek(SeekFrom::Start(to))
                .map_err(StructureError::Io)?;
        }
        self.pos = to;
        Ok(())
    }

    /// Item and delimiter tags always have the short implicit form.
    fn tag(&mut self) -> Result<(u16, u16), StructureError> {
        let g = self.read_u16()?;
        let e = self.read_u16()?;
        Ok((g, e))
    }

    /// Elements until `limit`, or until `stop` is read when the enclosing
    /// length is undefined.
    fn elements(
        &mut self,
        limit: u64,
        stop: Option<(u16, u16)>,
        depth: u32,
    ) -> Result<(), StructureError> {
        if depth > 64 {
            return Err(StructureError::Malformed(
                "sequences nested more than 64 deep".into(),
            ));
        }
        while self.pos < limit {
            let tag = self.tag()?;
            if Some(tag) == stop {
                let len = self.read_u32()?;
                if len != 0 {
                    return Err(StructureError::Malformed(format!(
                        "delimiter with length {len} at byte {}",
                        self.pos
                    )));
                }
                return Ok(());
            }
            if tag.0 == 0xFFFE {
                return Err(StructureError::Malformed(format!(
                    "unexpected item tag ({:04X},{:04X}) at byte {}",
                    tag.0,
                    tag.1,
                    self.pos - 4
                )));
            }
            let (vr, len) = if self.enc.explicit {
                let vr = self.read::<2>()?;
                if matches!(
                    &vr,
                    b"OB"
                        | b"OD"
                        | b"OF"
                        | b"OL"
                        | b"OV"
                        | b"OW"
                        | b"SQ"
                        | b"SV"
                        | b"UC"
                        | b"UN"
                        | b"UR"
                        | b"UT"
                        | b"UV"
                ) {
                    self.read::<2>()?;
                    (Some(vr), self.read_u32()?)
                } else {
                    (Some(vr), self.read_u16()? as u32)
                }
            } else {
                (None, self.read_u32()?)
            };
            if len == UNDEFINED {
                let is_pixel_data = tag == (0x7FE0, 0x0010);
                if is_pixel_data && vr != Some(*b"SQ") {
                    self.fragments(limit)?;
                } else {
                    self.sequence_undefined(limit, depth)?;
                }
            } else if vr == Some(*b"SQ") || (vr.is_none() && self.looks_like_sequence(len)?) {
                let seq_end = self.pos + len as u64;
                if seq_end > limit {
                    return Err(StructureError::Malformed(format!(
                        "sequence at byte {} overruns its parent",
                        self.pos
                    )));
                }
                self.items(seq_end, depth)?;
            } else {
                self.skip(len, limit)?;
            }
        }
        if stop.is_some() {
            return Err(StructureError::Malformed(format!(
                "data set truncated at byte {}: open item or sequence",
                self.pos
            )));
        }
        Ok(())
    }

    /// In implicit VR a defined-length value that starts with an item tag is
    /// a sequence; its items must be walked for their own lengths.
    fn looks_like_sequence(&mut self, len: u32) -> Result<bool, StructureError> {
        if len < 8 {
            return Ok(false);
        }
        let buf = self.r.fill_buf().map_err(StructureError::Io)?;
        if buf.len() < 4 {
            return Ok(false);
        }
        let head = [buf[0], buf[1], buf[2], buf[3]];
        let g = self.u16([head[0], head[1]]);
        let e = self.u16([head[2], head[3]]);
        Ok((g, e) == ITEM)
    }

    fn items(&mut self, seq_end: u64, depth: u32) -> Result<(), StructureError> {
        while self.pos < seq_end {
            let tag = self.tag()?;
            let len = self.read_u32()?;
            if tag != ITEM {
                return Err(StructureError::Malformed(format!(
                    "expected an item at byte {}",
                    self.pos - 8
                )));
            }
            if len == UNDEFINED {
                self.elements(seq_end, Some(ITEM_END), depth + 1)?;
            } else {
                let item_end = self.pos + len as u64;
                if item_end > seq_end {
                    return Err(StructureError::Malformed(format!(
                        "item at byte {} overruns its sequence",
                        self.pos
                    )));
                }
                self.elements(item_end, None, depth + 1)?;
            }
        }
        Ok(())
    }

    fn sequence_undefined(&mut self, limit: u64, depth: u32) -> Result<(), StructureError> {
        loop {
            let tag = self.tag()?;
            let len = self.read_u32()?;
            if tag == SEQ_END {
                return Ok(());
            }
            if tag != ITEM {
                return Err(StructureError::Malformed(format!(
                    "expected an item at byte {}",
                    self.pos - 8
                )));
            }
            if len == UNDEFINED {
                self.elements(limit, Some(ITEM_END), depth + 1)?;
            } else {
                let item_end = self.pos + len as u64;
                if item_end > limit {
                    return Err(StructureError::Malformed(format!(
                        "item at byte {} overruns the data set",
                        self.pos
                    )));
                }
                self.elements(item_end, None, depth + 1)?;
            }
        }
    }

    fn fragments(&mut self, limit: u64) -> Result<(), StructureError> {
        loop {
            let tag = self.tag()?;
            let len = self.read_u32()?;
            if tag == SEQ_END {
                return Ok(());
            }
            if tag != ITEM || len == UNDEFINED {
                return Err(StructureError::Malformed(format!(
                    "bad pixel data fragment at byte {}",
                    self.pos - 8
                )));
            }
            self.skip(len, limit)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn meta_we_write_is_meta_we_read() {
        let bytes = encode_file_meta("1.2.3", "1.2.3.4", uids::EXPLICIT_VR_LE, "SCU");
        let meta = read_file_meta(&mut Cursor::new(&bytes)).unwrap().unwrap();
        assert_eq!(meta.sop_class_uid, "1.2.3");
        assert_eq!(meta.sop_instance_uid, "1.2.3.4");
        assert_eq!(meta.transfer_syntax_uid, uids::EXPLICIT_VR_LE);
        assert_eq!(meta.dataset_offset, bytes.len() as u64);
    }

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ") {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn complete_and_truncated_data_sets() {
        let mut ds = explicit((0x0008, 0x0018), b"UI", b"1.2.3\0");
        // An undefined-length sequence with one undefined-length item.
        ds.extend_from_slice(&[
            0x08, 0x30, 0x10, 0x00, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend_from_slice(&explicit((0x0020, 0x0052), b"UI", b"1.2\0"));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.extend_from_slice(&explicit((0x7FE0, 0x0010), b"OW", &[1, 2, 3, 4]));
        let ok =
            check_dataset_structure(&mut Cursor::new(&ds), uids::EXPLICIT_VR_LE, ds.len() as u64);
        assert!(ok.is_ok(), "{ok:?}");
        for cut in [ds.len() - 1, ds.len() - 5, 40, 30, 3] {
            let short = &ds[..cut];
            assert!(
                check_dataset_structure(&mut Cursor::new(short), uids::EXPLICIT_VR_LE, cut as u64)
                    .is_err(),
                "cut at {cut} passed"
            );
        }
    }
}
