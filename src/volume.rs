//! An image volume in patient coordinates, as the organize stage builds it
//! from a slice series and later stages read it: voxel values in HU (or the
//! modality's units), indexed `[slice, row, column]`, with the geometry that
//! maps an index to millimetres. Stored as NRRD (readable by 3D Slicer, ITK
//! and pyradiomics) with a JSON sidecar for the DICOM provenance.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::Array3;
use serde::{Deserialize, Serialize};

/// The voxel grid in the patient coordinate system (DICOM LPS, mm): where
/// voxel `[0,0,0]` lies, the spacing and the axis directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Patient position of the centre of voxel `[0,0,0]`, mm.
    pub origin: [f64; 3],
    /// Column, row and slice spacing, mm.
    pub spacing: [f64; 3],
    /// Unit vectors of increasing column, row and slice index.
    pub directions: [[f64; 3]; 3],
    /// Columns, rows, slices.
    pub size: [usize; 3],
}

impl Geometry {
    /// Patient coordinates (mm) of the centre of voxel (slice k, row j, column i).
    pub fn position(&self, k: f64, j: f64, i: f64) -> [f64; 3] {
        let d = &self.directions;
        let s = &self.spacing;
        let mut p = self.origin;
        for a in 0..3 {
            p[a] += d[0][a] * s[0] * i + d[1][a] * s[1] * j + d[2][a] * s[2] * k;
        }
        p
    }
}

/// A 3-D image (CT in HU) with its grid; see the module documentation.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Where the voxels lie in patient coordinates.
    pub geometry: Geometry,
    /// `[slice, row, column]`.
    pub data: Array3<f32>,
}

impl Volume {
    /// Writes `path` as a detached-header-free NRRD: 16-bit when every value
    /// is an integer in range (CT in HU always is), float otherwise.
    pub fn write_nrrd(&self, path: &Path) -> Result<()> {
        let g = &self.geometry;
        let integral = self
            .data
            .iter()
            .all(|v| v.fract() == 0.0 && *v >= i16::MIN as f32 && *v <= i16::MAX as f32);
        // NRRD's fastest axis is the first size: columns, then rows, then
        // slices, which is the standard layout of our [slice, row, column] array.
        if integral {
            write_raw_nrrd(
                path,
                g,
                "written by rtnode",
                "short",
                self.data.iter().map(|v| (*v as i16).to_le_bytes()),
            )
        } else {
            write_raw_nrrd(
                path,
                g,
                "written by rtnode",
                "float",
                self.data.iter().map(|v| v.to_le_bytes()),
            )
        }
    }

    /// Reads the NRRD files this module writes (raw, little endian, short or
    /// float, 3-D with space directions).
    pub fn read_nrrd(path: &Path) -> Result<Volume> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut r = BufReader::new(f);
        let mut line = String::new();
        r.read_line(&mut line)?;
        if !line.starts_with("NRRD") {
            bail!("{} is not NRRD", path.display());
        }
        let mut fields = std::collections::HashMap::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                bail!("NRRD header not terminated");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if l.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = l.split_once(':') {
                fields.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let get = |k: &str| fields.get(k).with_context(|| format!("NRRD lacks {k}"));
        if get("encoding")? != "raw" || get("dimension")? != "3" {
            bail!("only raw 3-D NRRD is read here");
        }
        let sizes: Vec<usize> = get("sizes")?
            .split_whitespace()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        let vecs = parse_vectors(get("space directions")?)?;
        let origin = parse_vectors(get("space origin")?)?;
        if sizes.len() != 3 || vecs.len() != 3 || origin.len() != 1 {
            bail!("bad NRRD geometry");
        }
        let mut spacing = [0.0; 3];
        let mut directions = [[0.0; 3]; 3];
        for a in 0..3 {
            let v = vecs[a];
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            if n == 0.0 {
                bail!("zero space direction");
            }
            spacing[a] = n;
            directions[a] = [v[0] / n, v[1] / n, v[2] / n];
        }
        let n = sizes[0] * sizes[1] * sizes[2];
        let ty = get("type")?.as_str();
        let width = match ty {
            "short" | "int16" | "signed short" => 2,
            "float" => 4,
            other => bail!("NRRD type {other} not read here"),
        };
        let mut raw = vec![0u8; n * width];
        r.read_exact(&mut raw)?;
        let values: Vec<f32> = if width == 2 {
            raw.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect()
        } else {
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let data = Array3::from_shape_vec((sizes[2], sizes[1], sizes[0]), values)?;
        Ok(Volume {
            geometry: Geometry {
                origin: origin[0],
                spacing,
                directions,
                size: [sizes[0], sizes[1], sizes[2]],
            },
            data,
        })
    }
}

/// Writes a raw little-endian 3-D NRRD of `geometry` whose voxel values,
/// in NRRD order (columns fastest), come from `values`; `nrrd_type` names
/// their type ("short", "float").
pub fn write_raw_nrrd<const N: usize>(
    path: &Path,
    geometry: &Geometry,
    comment: &str,
    nrrd_type: &str,
    values: impl Iterator<Item = [u8; N]>,
) -> Result<()> {
    let g = geometry;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let dir = |v: [f64; 3], s: f64| format!("({},{},{})", v[0] * s, v[1] * s, v[2] * s);
    write!(
        w,
        "NRRD0004\n# {comment} {}\ntype: {nrrd_type}\ndimension: 3\nspace: left-posterior-superior\nsizes: {} {} {}\nspace directions: {} {} {}\nkinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: ({},{},{})\n\n",
        env!("CARGO_PKG_VERSION"),
        g.size[0],
        g.size[1],
        g.size[2],
        dir(g.directions[0], g.spacing[0]),
        dir(g.directions[1], g.spacing[1]),
        dir(g.directions[2], g.spacing[2]),
        g.origin[0],
        g.origin[1],
        g.origin[2],
    )?;
    let mut buf = Vec::with_capacity(1 << 20);
    for v in values {
        buf.extend_from_slice(&v);
        if buf.len() >= 1 << 20 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn parse_vectors(s: &str) -> Result<Vec<[f64; 3]>> {
    let mut out = Vec::new();
    for part in s.split(')') {
        let part = part.trim().trim_start_matches('(');
        if part.is_empty() {
            continue;
        }
        let v: Vec<f64> = part
            .split(',')
            .map(|x| x.trim().parse())
            .collect::<Result<_, _>>()?;
        if v.len() != 3 {
            bail!("bad NRRD vector {part}");
        }
        out.push([v[0], v[1], v[2]]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nrrd_round_trip_keeps_values_and_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Array3::<f32>::zeros((3, 4, 5));
        data[[2, 3, 4]] = -1000.0;
        data[[1, 0, 2]] = 42.0;
        let g = Geometry {
            origin: [-10.0, 20.5, 30.0],
            spacing: [0.5, 0.75, 2.5],
            directions: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            size: [5, 4, 3],
        };
        let v = Volume {
            geometry: g.clone(),
            data: data.clone(),
        };
        let p = dir.path().join("v.nrrd");
        v.write_nrrd(&p).unwrap();
        let back = Volume::read_nrrd(&p).unwrap();
        assert_eq!(back.data, data);
        for a in 0..3 {
            assert!((back.geometry.spacing[a] - g.spacing[a]).abs() < 1e-9);
            assert!((back.geometry.origin[a] - g.origin[a]).abs() < 1e-9);
        }
        assert_eq!(back.geometry.position(2.0, 3.0, 4.0), [-8.0, 22.75, 35.0]);
        // Fractional values switch to float.
        let mut v2 = v;
        v2.data[[0, 0, 0]] = 0.25;
        v2.write_nrrd(&p).unwrap();
        assert_eq!(Volume::read_nrrd(&p).unwrap().data[[0, 0, 0]], 0.25);
    }
}
