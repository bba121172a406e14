//! A planning image series as one volume: slices sorted along their
//! normal, the geometry built from them (feet-first series keep a
//! right-handed grid), pixel data decoded (any transfer syntax
//! dicom-pixeldata decodes) and rescaled to HU. The organize stage builds
//! its volume with these; the radiomics command line reads a folder of
//! files with [`read_series`].

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use dicom_dictionary_std::tags;
use dicom_pixeldata::PixelDecoder;
use ndarray::Array3;
use rayon::prelude::*;

use crate::volume::{Geometry, Volume};

/// One slice of a series: its file and where it lies.
pub struct Slice {
    /// SOP Instance UID.
    pub uid: String,
    /// The slice's DICOM file.
    pub path: std::path::PathBuf,
    /// ImagePositionPatient.
    pub position: [f64; 3],
    /// Distance along the slice normal.
    pub along: f64,
}

/// A trimmed text value of a header.
pub fn text(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// The grid of sorted slices: the slice direction from their positions, so
/// feet-first series (whose normal points the other way) keep a
/// right-handed grid. `ps` is PixelSpacing (row spacing \ column spacing).
pub fn series_geometry(
    slices: &[Slice],
    ps: &[f64],
    iop: &[f64],
    spacing_z: f64,
    rows: usize,
    cols: usize,
) -> Geometry {
    let n = slices.len();
    let dz: [f64; 3] = std::array::from_fn(|a| {
        (slices[n - 1].position[a] - slices[0].position[a]) / (n as f64 - 1.0).max(1.0)
    });
    let len = (dz[0] * dz[0] + dz[1] * dz[1] + dz[2] * dz[2])
        .sqrt()
        .max(f64::MIN_POSITIVE);
    Geometry {
        origin: slices[0].position,
        spacing: [ps[1], ps[0], spacing_z],
        directions: [
            [iop[0], iop[1], iop[2]],
            [iop[3], iop[4], iop[5]],
            [dz[0] / len, dz[1] / len, dz[2] / len],
        ],
        size: [cols, rows, n],
    }
}

/// Decodes and rescales every slice's pixels in parallel, in slice order.
pub fn decode_planes(
    slices: &[Slice],
    rows: usize,
    cols: usize,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<f32>> {
    let n = slices.len();
    let done = AtomicU64::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("thread pool")?;
    let planes: Vec<Result<Vec<f32>>> = pool.install(|| {
        slices
            .par_iter()
            .map(|s| {
                let obj = dicom_object::open_file(&s.path)
                    .with_context(|| format!("reading {}", s.path.display()))?;
                let r: usize = obj.element(tags::ROWS)?.to_int::<u16>()? as usize;
                let c: usize = obj.element(tags::COLUMNS)?.to_int::<u16>()? as usize;
                if (r, c) != (rows, cols) {
                    bail!("slice {} is {r}x{c}, the series {rows}x{cols}", s.uid);
                }
                let pixels = obj
                    .decode_pixel_data()
                    .with_context(|| format!("decoding {}", s.uid))?
                    .to_vec::<f32>()
                    .with_context(|| format!("rescaling {}", s.uid))?;
                if pixels.len() != rows * cols {
                    bail!(
                        "slice {} has {} values, expected {}",
                        s.uid,
                        pixels.len(),
                        rows * cols
                    );
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(d, n as u64);
                Ok(pixels)
            })
            .collect()
    });
    let mut data = Vec::with_capacity(n * rows * cols);
    for p in planes {
        data.extend(p?);
    }
    Ok(data)
}

/// A CT (or any single-frame image) series from its files alone, for the
/// command line: the slice normal from the orientation, slices sorted
/// along it, spacing from their positions. Files of other series (the
/// first file's SeriesInstanceUID decides) and non-image objects are left
/// out, and counted in the second value.
pub fn read_series(files: &[std::path::PathBuf], threads: usize) -> Result<(Volume, usize)> {
    let mut slices = Vec::new();
    let mut series: Option<String> = None;
    let mut iop0: Option<Vec<f64>> = None;
    let mut left_out = 0;
    // Headers in parallel (the pixel data is read later, in slice order).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("thread pool")?;
    // (series UID, orientation, position, SOP instance UID)
    type Header = (String, Vec<f64>, Vec<f64>, String);
    let headers: Vec<Option<Header>> = pool.install(|| {
        files
            .par_iter()
            .map(|path| {
                let obj = dicom_object::OpenFileOptions::new()
                    .read_until(tags::PIXEL_DATA)
                    .open_file(path)
                    .ok()?;
                let ipp = obj
                    .get(tags::IMAGE_POSITION_PATIENT)
                    .and_then(|e| e.to_multi_float64().ok())
                    .filter(|v| v.len() == 3)?;
                let iop = obj
                    .get(tags::IMAGE_ORIENTATION_PATIENT)
                    .and_then(|e| e.to_multi_float64().ok())
                    .filter(|v| v.len() == 6)?;
                let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
                let sop = text(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
                Some((uid, iop, ipp, sop))
            })
            .collect()
    });
    for (path, header) in files.iter().zip(headers) {
        let Some((uid, iop, ipp, sop)) = header else {
            left_out += 1;
            continue;
        };
        if series.get_or_insert_with(|| uid.clone()) != &uid {
            left_out += 1;
            continue;
        }
        let iop0 = iop0.get_or_insert(iop);
        let normal = [
            iop0[1] * iop0[5] - iop0[2] * iop0[4],
            iop0[2] * iop0[3] - iop0[0] * iop0[5],
            iop0[0] * iop0[4] - iop0[1] * iop0[3],
        ];
        let position = [ipp[0], ipp[1], ipp[2]];
        slices.push(Slice {
            uid: sop,
            path: path.clone(),
            position,
            along: position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2],
        });
    }
    if slices.len() < 2 {
        bail!("fewer than two image slices of one series");
    }
    slices.sort_by(|a, b| a.along.total_cmp(&b.along));
    let first = dicom_object::open_file(&slices[0].path)?;
    let rows: usize = first.element(tags::ROWS)?.to_int::<u16>()? as usize;
    let cols: usize = first.element(tags::COLUMNS)?.to_int::<u16>()? as usize;
    let ps = first.element(tags::PIXEL_SPACING)?.to_multi_float64()?;
    let iop = iop0.context("no orientation")?;
    if ps.len() != 2 {
        bail!("bad PixelSpacing");
    }
    let n = slices.len();
    let gaps: Vec<f64> = slices.windows(2).map(|w| w[1].along - w[0].along).collect();
    let spacing_z = (slices[n - 1].along - slices[0].along) / (n as f64 - 1.0);
    if gaps
        .iter()
        .any(|g| (g - spacing_z).abs() > 0.01 * spacing_z.abs().max(1e-3))
        || spacing_z <= 0.0
    {
        bail!("the slices are not evenly spaced (or two share a position)");
    }
    let geometry = series_geometry(&slices, &ps, &iop, spacing_z, rows, cols);
    let data = decode_planes(&slices, rows, cols, threads, &|_, _| {})?;
    Ok((
        Volume {
            geometry,
            data: Array3::from_shape_vec((n, rows, cols), data)?,
        },
        left_out,
    ))
}
