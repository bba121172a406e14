//! Just enough PNG and base64 to embed a greyscale CT slice in the HTML
//! report (no image crate: one chunk layout and zlib, which flate2 gives).

use std::io::Write;

use anyhow::{Context, Result};
use flate2::write::ZlibEncoder;
use flate2::{Compression, Crc};

use super::model::GrayImage;

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) -> Result<()> {
    let len = u32::try_from(data.len()).context("PNG chunk over 4 GiB")?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    Ok(())
}

/// zlib stream of `data`; the PDF writer uses it too (FlateDecode).
pub fn zlib(data: &[u8]) -> Result<Vec<u8>> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(data).context("compressing")?;
    z.finish().context("compressing")
}

/// An 8-bit greyscale PNG.
pub fn encode(img: &GrayImage) -> Result<Vec<u8>> {
    anyhow::ensure!(
        img.pixels.len() == img.width * img.height && img.width > 0,
        "image of {}x{} with {} pixels",
        img.width,
        img.height,
        img.pixels.len()
    );
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(img.width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(img.height as u32).to_be_bytes());
    // 8 bits, greyscale, deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr)?;
    let mut raw = Vec::with_capacity((img.width + 1) * img.height);
    for row in img.pixels.chunks_exact(img.width) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    chunk(&mut out, b"IDAT", &zlib(&raw)?)?;
    chunk(&mut out, b"IEND", &[])?;
    Ok(out)
}

pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn png_has_signature_header_and_end() {
        let img = GrayImage {
            width: 3,
            height: 2,
            pixels: vec![0, 128, 255, 1, 2, 3],
        };
        let p = encode(&img).unwrap();
        assert!(p.starts_with(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x03\0\0\0\x02"));
        // IEND with its fixed CRC.
        assert!(p.ends_with(b"\0\0\0\0IEND\xae\x42\x60\x82"));
        assert!(encode(&GrayImage {
            width: 2,
            height: 2,
            pixels: vec![0; 3]
        })
        .is_err());
    }
}
