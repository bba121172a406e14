//! Readers for the research image formats pyradiomics accepts: NRRD
//! (raw or gzip, attached header) and NIfTI-1 (.nii or .nii.gz).
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::Array3;

/// A volume read from a file: `[z, y, x]` data, spacing in the same order (mm).
#[derive(Debug, Clone)]
pub struct ImageFile {
    pub data: Array3<f64>,
    pub spacing: [f64; 3],
    /// The range of the file's integer voxel type; None for floats.
    pub integer_range: Option<[f64; 2]>,
}

fn integer_range(ty: &str) -> Option<[f64; 2]> {
    match ty {
        "short" | "int16" | "signed short" | "short int" => {
            Some([i16::MIN as f64, i16::MAX as f64])
        }
        "unsigned short" | "ushort" | "uint16" => Some([0.0, u16::MAX as f64]),
        "int" | "int32" | "signed int" => Some([i32::MIN as f64, i32::MAX as f64]),
        "unsigned int" | "uint" | "uint32" => Some([0.0, u32::MAX as f64]),
        "uchar" | "unsigned char" | "uint8" => Some([0.0, 255.0]),
        "signed char" | "int8" | "char" => Some([-128.0, 127.0]),
        _ => None,
    }
}

pub fn read(path: &Path) -> Result<ImageFile> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        read_nifti(path)
    } else {
        read_nrrd(path)
    }
}

fn read_nrrd(path: &Path) -> Result<ImageFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let Some(end) = bytes.windows(2).position(|w| w == b"\n\n") else {
        bail!("{}: no end of NRRD header", path.display());
    };
    let header = std::str::from_utf8(&bytes[..end]).context("NRRD header is not text")?;
    if !header.starts_with("NRRD") {
        bail!("{}: not an NRRD file", path.display());
    }
    let mut ty = None;
    let mut sizes: Vec<usize> = Vec::new();
    let mut encoding = "raw".to_string();
    let mut endian = "little".to_string();
    let mut spacing = [1.0f64; 3];
    for line in header.lines().skip(1) {
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim_start_matches('=').trim();
        match k.trim() {
            "type" => ty = Some(v.to_string()),
            "dimension" if v != "3" => bail!("{}: dimension {v}, only 3 is read", path.display()),
            "sizes" => {
                sizes = v
                    .split_whitespace()
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()?
            }
            "encoding" => encoding = v.to_string(),
            "endian" => endian = v.to_string(),
            "spacings" => {
                let s: Vec<f64> = v
                    .split_whitespace()
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()?;
                if s.len() == 3 {
                    spacing = s.try_into().unwrap_or(spacing);
                }
            }
            "space directions" => {
                let mut i = 0;
                for vec in v.split(')') {
                    let t = vec.trim().trim_start_matches('(');
                    if t.is_empty() {
                        continue;
                    }
                    let c: Vec<f64> = t
                        .split(',')
                        .map(|s| s.trim().parse())
                        .collect::<Result<_, _>>()?;
                    if i < 3 {
                        spacing[i] = c.iter().map(|x| x * x).sum::<f64>().sqrt();
                    }
                    i += 1;
                }
            }
            _ => {}
        }
    }
    if sizes.len() != 3 {
        bail!("{}: sizes must have 3 entries", path.display());
    }
    if endian != "little" {
        bail!("{}: big-endian NRRD is not read", path.display());
    }
    let body = &bytes[end + 2..];
    let raw = match encoding.as_str() {
        "raw" => body.to_vec(),
        "gzip" | "gz" => {
            // Sized up front: growing by doubling copies a CT several times.
            let expected =
                sizes.iter().product::<usize>() * ty.as_deref().and_then(width_of).unwrap_or(1);
            let mut out = Vec::with_capacity(expected);
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
            out
        }
        e => bail!("{}: NRRD encoding {e} is not read", path.display()),
    };
    let ty = ty.context("NRRD without type")?;
    let values = decode(&raw, &ty, sizes.iter().product())?;
    let data = Array3::from_shape_vec((sizes[2], sizes[1], sizes[0]), values)?;
    Ok(ImageFile {
        data,
        spacing: [spacing[2], spacing[1], spacing[0]],
        integer_range: integer_range(&ty),
    })
}

/// Bytes per voxel of an NRRD / NIfTI voxel type.
fn width_of(ty: &str) -> Option<usize> {
    Some(match ty {
        "short" | "int16" | "signed short" | "short int" => 2,
        "unsigned short" | "ushort" | "uint16" => 2,
        "int" | "int32" | "signed int" | "unsigned int" | "uint" | "uint32" | "float" => 4,
        "uchar" | "unsigned char" | "uint8" | "signed char" | "int8" | "char" => 1,
        "double" => 8,
        _ => return None,
    })
}

fn decode(raw: &[u8], ty: &str, n: usize) -> Result<Vec<f64>> {
    let Some(width) = width_of(ty) else {
        bail!("voxel type {ty} is not read");
    };
    if raw.len() < n * width {
        bail!(
            "image data holds {} bytes, {} expected",
            raw.len(),
            n * width
        );
    }
    let raw = &raw[..n * width];
    // One loop per type (a CT is tens of millions of voxels).
    macro_rules! each {
        ($w:literal, $t:ty) => {
            raw.chunks_exact($w)
                .map(|b| {
                    let mut a = [0u8; $w];
                    a.copy_from_slice(b);
                    <$t>::from_le_bytes(a) as f64
                })
                .collect()
        };
    }
    Ok(match ty {
        "short" | "int16" | "signed short" | "short int" => each!(2, i16),
        "unsigned short" | "ushort" | "uint16" => each!(2, u16),
        "int" | "int32" | "signed int" => each!(4, i32),
        "unsigned int" | "uint" | "uint32" => each!(4, u32),
        "uchar" | "unsigned char" | "uint8" => each!(1, u8),
        "signed char" | "int8" | "char" => each!(1, i8),
        "float" => each!(4, f32),
        _ => each!(8, f64),
    })
}

fn read_nifti(path: &Path) -> Result<ImageFile> {
    let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if file.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&file[..]).read_to_end(&mut out)?;
        out
    } else {
        file
    };
    if bytes.len() < 352 {
        bail!("{}: shorter than a NIfTI-1 header", path.display());
    }
    let i16_at = |o: usize| i16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let f32_at =
        |o: usize| f32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    if i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) != 348 {
        bail!("{}: not a little-endian NIfTI-1 file", path.display());
    }
    let ndim = i16_at(40);
    if !(3..=4).contains(&ndim) {
        bail!("{}: {ndim} dimensions, 3 are read", path.display());
    }
    let dims = [
        i16_at(42) as usize,
        i16_at(44) as usize,
        i16_at(46) as usize,
    ];
    if ndim == 4 && i16_at(48) > 1 {
        bail!("{}: a 4-D image", path.display());
    }
    let datatype = i16_at(70);
    let pix = [f32_at(80) as f64, f32_at(84) as f64, f32_at(88) as f64];
    let offset = f32_at(108) as usize;
    let slope = f32_at(112) as f64;
    let inter = f32_at(116) as f64;
    let ty = match datatype {
        2 => "uchar",
        4 => "short",
        8 => "int",
        16 => "float",
        64 => "double",
        256 => "int8",
        512 => "ushort",
        768 => "uint",
        t => bail!("{}: NIfTI datatype {t} is not read", path.display()),
    };
    let n = dims.iter().product();
    let mut values = decode(
        bytes.get(offset..).context("vox_offset past the end")?,
        ty,
        n,
    )?;
    if slope != 0.0 && !(slope == 1.0 && inter == 0.0) {
        for v in &mut values {
            *v = *v * slope + inter;
        }
    }
    let data = Array3::from_shape_vec((dims[2], dims[1], dims[0]), values)?;
    // A scaled NIfTI holds real numbers whatever its stored type.
    let scaled = slope != 0.0 && !(slope == 1.0 && inter == 0.0);
    Ok(ImageFile {
        data,
        spacing: [pix[2], pix[1], pix[0]],
        integer_range: if scaled { None } else { integer_range(ty) },
    })
}
