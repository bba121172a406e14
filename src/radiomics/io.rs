//! Readers for the research image formats pyradiomics accepts: NRRD
//! (raw or gzip, attached header) and NIfTI-1 (.nii or .nii.gz).
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::Array3;

/// A volume read from a file: `[z, y, x]` data, spacing in the same order (mm).
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Voxel values `[z, y, x]`, after any scaling the file declares (NIfTI
    /// `scl_slope`/`scl_inter`).
    pub data: Array3<f64>,
    /// Voxel spacing `[dz, dy, dx]`, mm.
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

/// Reads a whole NRRD or NIfTI-1 file (chosen by the `.nii`/`.nii.gz`
/// extension, else NRRD) into memory as f64.
pub fn read(path: &Path) -> Result<ImageFile> {
    let raw = read_raw(path)?;
    Ok(ImageFile {
        data: raw.map_region([0; 3], raw.dims, |v| v)?,
        spacing: raw.spacing,
        integer_range: raw.integer_range,
    })
}

/// A volume as its file stores it (after decompression): the voxels are
/// converted only where asked (`map_region`), so that a command measuring
/// one ROI of a CT neither converts nor holds the whole CT as f64.
#[derive(Debug, Clone)]
pub struct RawImage {
    bytes: Vec<u8>,
    /// Where the voxels start in `bytes`.
    offset: usize,
    ty: &'static str,
    /// `[z, y, x]`.
    pub dims: [usize; 3],
    /// `[dz, dy, dx]`, mm.
    pub spacing: [f64; 3],
    /// The range of the file's integer voxel type; None for floats.
    pub integer_range: Option<[f64; 2]>,
    /// NIfTI's `v · slope + inter`, when the file scales its values.
    scale: Option<(f64, f64)>,
}

/// Reads and decompresses a NRRD or NIfTI-1 file (by extension, as
/// [`read`]) without converting its voxels.
pub fn read_raw(path: &Path) -> Result<RawImage> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        read_nifti(path)
    } else {
        read_nrrd(path)
    }
}

impl RawImage {
    /// The voxels of `[lo, hi)` (per axis, `[z, y, x]`), each through `f`
    /// after the file's scaling.
    pub fn map_region<T>(
        &self,
        lo: [usize; 3],
        hi: [usize; 3],
        f: impl Fn(f64) -> T,
    ) -> Result<Array3<T>> {
        if (0..3).any(|a| lo[a] > hi[a] || hi[a] > self.dims[a]) {
            bail!("region {lo:?}..{hi:?} outside an image of {:?}", self.dims);
        }
        let [_, ny, nx] = self.dims;
        let len = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let mut out = Vec::with_capacity(len[0] * len[1] * len[2]);
        let (slope, inter) = self.scale.unwrap_or((1.0, 0.0));
        let scaled = self.scale.is_some();
        // One loop per voxel type (a CT is tens of millions of voxels).
        macro_rules! rows {
            ($w:literal, $t:ty) => {
                for z in lo[0]..hi[0] {
                    for y in lo[1]..hi[1] {
                        let start = self.offset + ((z * ny + y) * nx + lo[2]) * $w;
                        let row = self
                            .bytes
                            .get(start..start + len[2] * $w)
                            .context("image data shorter than its header says")?;
                        out.extend(row.chunks_exact($w).map(|b| {
                            let mut a = [0u8; $w];
                            a.copy_from_slice(b);
                            let v = <$t>::from_le_bytes(a) as f64;
                            f(if scaled { v * slope + inter } else { v })
                        }));
                    }
                }
            };
        }
        match self.ty {
            "short" => rows!(2, i16),
            "ushort" => rows!(2, u16),
            "int" => rows!(4, i32),
            "uint" => rows!(4, u32),
            "uchar" => rows!(1, u8),
            "int8" => rows!(1, i8),
            "float" => rows!(4, f32),
            _ => rows!(8, f64),
        }
        Ok(Array3::from_shape_vec((len[0], len[1], len[2]), out)?)
    }
}

impl RawImage {
    /// Bounding box `(lo, hi_exclusive)` of the voxels equal to `label`
    /// (after scaling), or None when there are none. Rows whose bytes are
    /// all zero are skipped unread when the label is not 0: a label map is
    /// mostly such rows, and most of a CT-sized label map is never decoded.
    pub fn label_box(&self, label: f64) -> Option<([usize; 3], [usize; 3])> {
        let [nz, ny, nx] = self.dims;
        let width = width_of(self.ty).unwrap_or(8);
        let zero_is_zero = label != 0.0 && self.scale.is_none_or(|(_, inter)| inter == 0.0);
        let mut lo = [usize::MAX; 3];
        let mut hi = [0usize; 3];
        for z in 0..nz {
            for y in 0..ny {
                let start = self.offset + (z * ny + y) * nx * width;
                let Some(bytes) = self.bytes.get(start..start + nx * width) else {
                    continue;
                };
                if zero_is_zero && bytes.iter().all(|b| *b == 0) {
                    continue;
                }
                let Ok(row) = self.map_region([z, y, 0], [z + 1, y + 1, nx], |v| v == label) else {
                    continue;
                };
                let row = row.as_slice().unwrap_or(&[]);
                let Some(first) = row.iter().position(|m| *m) else {
                    continue;
                };
                let last = nx - 1 - row.iter().rev().position(|m| *m).unwrap_or(0);
                lo = [lo[0].min(z), lo[1].min(y), lo[2].min(first)];
                hi = [hi[0].max(z + 1), hi[1].max(y + 1), hi[2].max(last + 1)];
            }
        }
        (lo[0] != usize::MAX).then_some((lo, hi))
    }
}

/// The reader's name of a voxel type, or None for a type it does not read.
fn canonical(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "short" | "int16" | "signed short" | "short int" => "short",
        "unsigned short" | "ushort" | "uint16" => "ushort",
        "int" | "int32" | "signed int" => "int",
        "unsigned int" | "uint" | "uint32" => "uint",
        "uchar" | "unsigned char" | "uint8" => "uchar",
        "signed char" | "int8" | "char" => "int8",
        "float" => "float",
        "double" => "double",
        _ => return None,
    })
}

fn read_nrrd(path: &Path) -> Result<RawImage> {
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
    let ty = ty.context("NRRD without type")?;
    let Some(canon) = canonical(&ty) else {
        bail!("voxel type {ty} is not read");
    };
    let n: usize = sizes.iter().product();
    let width = width_of(canon).unwrap_or(8);
    let (raw, offset) = match encoding.as_str() {
        "raw" => (bytes, end + 2),
        "gzip" | "gz" => {
            // Sized up front: growing by doubling copies a CT several times.
            let mut out = Vec::with_capacity(n * width);
            flate2::read::GzDecoder::new(&bytes[end + 2..])
                .read_to_end(&mut out)
                .with_context(|| format!("decompressing {}", path.display()))?;
            (out, 0)
        }
        e => bail!("{}: NRRD encoding {e} is not read", path.display()),
    };
    if raw.len() < offset + n * width {
        bail!(
            "image data holds {} bytes, {} expected",
            raw.len() - offset.min(raw.len()),
            n * width
        );
    }
    Ok(RawImage {
        bytes: raw,
        offset,
        ty: canon,
        dims: [sizes[2], sizes[1], sizes[0]],
        spacing: [spacing[2], spacing[1], spacing[0]],
        integer_range: integer_range(canon),
        scale: None,
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

fn read_nifti(path: &Path) -> Result<RawImage> {
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
    let n: usize = dims.iter().product();
    let width = width_of(ty).unwrap_or(8);
    if bytes.len() < offset.saturating_add(n * width) {
        bail!(
            "{}: image data holds {} bytes, {} expected",
            path.display(),
            bytes.len().saturating_sub(offset),
            n * width
        );
    }
    // A scaled NIfTI holds real numbers whatever its stored type.
    let scaled = slope != 0.0 && !(slope == 1.0 && inter == 0.0);
    Ok(RawImage {
        bytes,
        offset,
        ty,
        dims: [dims[2], dims[1], dims[0]],
        spacing: [pix[2], pix[1], pix[0]],
        integer_range: if scaled { None } else { integer_range(ty) },
        scale: scaled.then_some((slope, inter)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw NRRD of shorts, x fastest: voxel (z, y, x) holds 100z + 10y + x,
    /// and label 7 at (1, 2, 3) and (2, 1, 1).
    fn write_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (nz, ny, nx) = (3usize, 4usize, 5usize);
        let header = |kind: &str| {
            format!(
                "NRRD0004\ntype: short\ndimension: 3\nsizes: {nx} {ny} {nz}\n\
                 spacings: 0.5 0.75 2\nendian: little\nencoding: raw\n# {kind}\n\n"
            )
        };
        let mut image = header("image").into_bytes();
        let mut mask = header("mask").into_bytes();
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let v = (100 * z + 10 * y + x) as i16;
                    image.extend(v.to_le_bytes());
                    let l: i16 = if [(1, 2, 3), (2, 1, 1)].contains(&(z, y, x)) {
                        7
                    } else {
                        0
                    };
                    mask.extend(l.to_le_bytes());
                }
            }
        }
        let (i, m) = (dir.join("image.nrrd"), dir.join("mask.nrrd"));
        std::fs::write(&i, image).unwrap();
        std::fs::write(&m, mask).unwrap();
        (i, m)
    }

    #[test]
    fn regions_and_label_box_match_the_whole_read() {
        let dir = tempfile::tempdir().unwrap();
        let (i, m) = write_pair(dir.path());
        let whole = read(&i).unwrap();
        let raw = read_raw(&i).unwrap();
        assert_eq!(raw.dims, [3, 4, 5]);
        assert_eq!(raw.spacing, [2.0, 0.75, 0.5]);
        assert_eq!(whole.data[[2, 3, 4]], 234.0);
        let part = raw.map_region([1, 1, 2], [3, 3, 5], |v| v).unwrap();
        assert_eq!(part, whole.data.slice(ndarray::s![1..3, 1..3, 2..5]));
        assert!(raw.map_region([0, 0, 0], [4, 1, 1], |v| v).is_err());
        let mask = read_raw(&m).unwrap();
        assert_eq!(mask.label_box(7.0), Some(([1, 1, 1], [3, 3, 4])));
        assert_eq!(mask.label_box(3.0), None);
    }
}
