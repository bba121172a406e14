//! The voxels of an RTDOSE: Pixel Data as stored (native little or big
//! endian, OB or OW, 16 or 32 bits, signed or not) or RLE Lossless
//! encapsulated, decoded to one f64 per sample in file order. What the
//! values mean (scaling, geometry) is [`super::rtdose`]'s business.

use anyhow::{bail, ensure, Context, Result};
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use crate::dicom::attrs;
use crate::dicom::uids::{EXPLICIT_VR_BE, RLE_LOSSLESS};

/// Stored values of every frame, as f64, in file order.
pub(super) fn read_samples(
    obj: &DefaultDicomObject,
    rows: usize,
    cols: usize,
    frames: usize,
) -> Result<Vec<f64>> {
    let bits = attrs::int(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    let signed = attrs::int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let n = rows * cols * frames;
    let elem = obj
        .get(tags::PIXEL_DATA)
        .context("no Pixel Data (a DVH-only RTDOSE?)")?;
    let big_endian = obj.meta().transfer_syntax().trim_end_matches('\0') == EXPLICIT_VR_BE;
    let bytes: Vec<u8> = match elem.value() {
        Value::Primitive(PrimitiveValue::U8(b)) => {
            let mut b = b.to_vec();
            if big_endian {
                swap_in_place(&mut b, (bits / 8) as usize);
            }
            b
        }
        Value::Primitive(PrimitiveValue::U16(w)) => {
            // OW words are already in host order; a 32-bit sample spans two
            // of them, most significant first in big endian files.
            let mut out = Vec::with_capacity(w.len() * 2);
            if bits == 32 && big_endian {
                for pair in w.chunks(2) {
                    let (hi, lo) = (pair[0], pair.get(1).copied().unwrap_or(0));
                    out.extend_from_slice(&lo.to_le_bytes());
                    out.extend_from_slice(&hi.to_le_bytes());
                }
            } else {
                for x in w.iter() {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            out
        }
        Value::Primitive(PrimitiveValue::U32(w)) => {
            w.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        Value::Primitive(PrimitiveValue::I32(w)) => {
            w.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        Value::Primitive(PrimitiveValue::I16(w)) => {
            w.iter().flat_map(|x| x.to_le_bytes()).collect()
        }
        Value::PixelSequence(seq)
            if obj.meta().transfer_syntax().trim_end_matches('\0') == RLE_LOSSLESS =>
        {
            // dicom-pixeldata decodes RLE only up to 16 bits; doses are
            // usually 32.
            let fragments = seq.fragments();
            ensure!(
                fragments.len() >= frames,
                "RLE Pixel Data has {} fragments for {frames} frames",
                fragments.len()
            );
            let mut out = Vec::with_capacity(rows * cols * frames * (bits as usize / 8));
            for f in &fragments[..frames] {
                out.extend(rle_frame(f, rows * cols, (bits / 8) as usize)?);
            }
            out
        }
        _ => {
            use dicom_pixeldata::PixelDecoder;
            let decoded = obj
                .decode_pixel_data()
                .map_err(|e| anyhow::anyhow!("decoding Pixel Data: {e}"))?;
            decoded.data().to_vec()
        }
    };
    let size = match bits {
        16 => 2,
        32 => 4,
        other => bail!("BitsAllocated {other} is not 16 or 32"),
    };
    ensure!(
        bytes.len() >= n * size,
        "Pixel Data has {} bytes for {n} samples of {bits} bits",
        bytes.len()
    );
    Ok(bytes[..n * size]
        .chunks_exact(size)
        .map(|c| match (size, signed) {
            (2, false) => u16::from_le_bytes([c[0], c[1]]) as f64,
            (2, true) => i16::from_le_bytes([c[0], c[1]]) as f64,
            (_, false) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            (_, true) => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
        })
        .collect())
}

/// One RLE Lossless frame (PS3.5 Annex G) as little-endian samples: a
/// 64-byte header of segment offsets, then one PackBits segment per byte
/// of the sample, most significant first.
fn rle_frame(fragment: &[u8], pixels: usize, bytes_per_sample: usize) -> Result<Vec<u8>> {
    let word = |i: usize| -> Result<usize> {
        let b = fragment
            .get(4 * i..4 * i + 4)
            .context("RLE header cut short")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let segments = word(0)?;
    ensure!(
        segments == bytes_per_sample,
        "RLE frame has {segments} segments for {bytes_per_sample}-byte samples"
    );
    let mut out = vec![0u8; pixels * bytes_per_sample];
    for seg in 0..segments {
        let start = word(1 + seg)?;
        let end = if seg + 1 < segments {
            word(2 + seg)?
        } else {
            fragment.len()
        };
        let data = fragment
            .get(start..end)
            .context("RLE segment offset beyond the fragment")?;
        // Segment 0 holds the most significant byte.
        let byte = bytes_per_sample - 1 - seg;
        let mut n = 0usize;
        let mut i = 0usize;
        while i < data.len() && n < pixels {
            let h = data[i] as i8;
            i += 1;
            if h >= 0 {
                let len = h as usize + 1;
                let lit = data.get(i..i + len).context("RLE literal run cut short")?;
                for &b in lit.iter().take(pixels - n) {
                    out[n * bytes_per_sample + byte] = b;
                    n += 1;
                }
                i += len;
            } else if h != -128 {
                let len = (1 - h as isize) as usize;
                let b = *data.get(i).context("RLE repeat run cut short")?;
                i += 1;
                for _ in 0..len.min(pixels - n) {
                    out[n * bytes_per_sample + byte] = b;
                    n += 1;
                }
            }
        }
        ensure!(
            n == pixels,
            "RLE segment decodes to {n} of {pixels} samples"
        );
    }
    Ok(out)
}

fn swap_in_place(b: &mut [u8], size: usize) {
    if size > 1 {
        for c in b.chunks_exact_mut(size) {
            c.reverse();
        }
    }
}
