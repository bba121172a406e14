//! The HTML report's CT slices as 8-bit greyscale PNG (the png crate),
//! and the base64 that embeds them in a `data:` URL.

use anyhow::{Context, Result};

use super::model::GrayImage;

/// An 8-bit greyscale PNG, no interlace.
pub fn encode(img: &GrayImage) -> Result<Vec<u8>> {
    anyhow::ensure!(
        img.pixels.len() == img.width * img.height && img.width > 0,
        "image of {}x{} with {} pixels",
        img.width,
        img.height,
        img.pixels.len()
    );
    let width = u32::try_from(img.width).context("PNG wider than 2^32")?;
    let height = u32::try_from(img.height).context("PNG taller than 2^32")?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding PNG")?;
    writer
        .write_image_data(&img.pixels)
        .context("encoding PNG")?;
    writer.finish().context("encoding PNG")?;
    Ok(out)
}

/// Standard base64 (RFC 4648, with padding) of `data`.
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

    #[test]
    fn png_decodes_to_the_same_pixels() {
        let img = GrayImage {
            width: 37,
            height: 5,
            pixels: (0..37 * 5).map(|i| (i * 7 % 256) as u8).collect(),
        };
        let bytes = encode(&img).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (37, 5));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        assert_eq!(&buf[..info.buffer_size()], &img.pixels[..]);
    }
}
