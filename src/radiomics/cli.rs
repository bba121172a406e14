//! `rtnode radiomics`: features of a CT and structure set, or of a research
//! image and mask (NRRD, NIfTI), through the same worker processes as the
//! stage.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::engine::Task;
use super::io;
use super::params::Params;
use super::pool::{self, RoiOutcome};
use super::rois::{compute, write_outputs, Row};
use super::settings::RadiomicsSection;

/// The command's arguments, as the command line gave them. Exactly one pair
/// is given: `ct` with `rtstruct`, or `image` with `mask`.
pub struct RadiomicsArgs {
    /// Folder of the CT series (searched recursively).
    pub ct: Option<PathBuf>,
    /// The RT Structure Set whose ROIs are measured.
    pub rtstruct: Option<PathBuf>,
    /// Only these ROIs, by exact name (then the configured skip patterns do
    /// not apply); empty: every ROI not skipped.
    pub roi: Vec<String>,
    /// Research image (NRRD or NIfTI).
    pub image: Option<PathBuf>,
    /// Label map on `image`'s grid; the ROI is the parameter file's `label`.
    pub mask: Option<PathBuf>,
    /// pyradiomics parameter file (YAML); none: pyradiomics' defaults.
    pub params: Option<PathBuf>,
    /// Folder to write radiomics.csv and radiomics.json into.
    pub out: Option<PathBuf>,
    /// Folder to write the CT and each measured ROI's mask into, as NRRD
    /// (with `ct` only).
    pub masks_out: Option<PathBuf>,
    /// Print the features as JSON on stdout instead of a summary per ROI.
    pub json: bool,
    /// Worker processes; none: `RTNODE_RADIOMICS_WORKERS`, else cores − 1.
    pub workers: Option<usize>,
}

/// Runs `rtnode radiomics`: extracts the features in worker processes and
/// prints or writes them. Fails on bad arguments, unreadable inputs or
/// parameter file; an ROI that fails is reported in its row.
pub fn run(a: &RadiomicsArgs) -> Result<()> {
    let mut section = RadiomicsSection {
        params_file: a.params.clone(),
        workers: a.workers,
        ..RadiomicsSection::default()
    };
    let (yaml, params) = section.params(&std::env::current_dir()?)?;
    let exe = std::env::current_exe().context("locating the rtnode binary for the workers")?;
    match (&a.image, &a.mask, &a.ct, &a.rtstruct) {
        (Some(image), Some(mask), None, None) => {
            image_and_mask(a, image, mask, yaml, &params, &section, exe)
        }
        (None, None, Some(ct), Some(rtstruct)) => {
            if !a.roi.is_empty() {
                // ROIs asked for by name are computed whatever their name.
                section.skip.clear();
            }
            ct_and_structures(a, ct, rtstruct, &yaml, &params, &section, exe)
        }
        _ => bail!("give either --ct DIR and --rtstruct FILE, or --image FILE and --mask FILE"),
    }
}

fn image_and_mask(
    a: &RadiomicsArgs,
    image: &Path,
    mask: &Path,
    yaml: String,
    params: &Params,
    section: &RadiomicsSection,
    exe: PathBuf,
) -> Result<()> {
    // Both files at once: decompressing a gzip NRRD is serial, and the
    // label map of a CT is as large as the CT.
    let (img, msk) = std::thread::scope(|s| {
        let m = s.spawn(|| io::read_raw(mask));
        let i = io::read_raw(image);
        let m = m
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reading {} panicked", mask.display())));
        (i, m)
    });
    let (img, msk) = (img?, msk?);
    if img.dims != msk.dims {
        bail!(
            "image {:?} and mask {:?} differ in size",
            img.dims,
            msk.dims
        );
    }
    let tol = params.settings.geometry_tolerance.unwrap_or(1e-6);
    if img
        .spacing
        .iter()
        .zip(msk.spacing)
        .any(|(a, b)| (a - b).abs() > tol * a.abs().max(1.0))
    {
        bail!(
            "image spacing {:?} and mask spacing {:?} differ",
            img.spacing,
            msk.spacing
        );
    }
    let label = params.settings.label as f64;
    let crop = worker_crop(msk.label_box(label), img.dims, img.spacing, params);
    let roi_mask = msk.map_region(crop.lo, crop.hi, |v| v == label)?;
    drop(msk);
    let normalisation = if params.settings.normalize {
        Some(super::engine::whole_stats(&img.map_region(
            [0; 3],
            img.dims,
            |v| v,
        )?))
    } else {
        None
    };
    let task = Task {
        roi: format!("label {}", params.settings.label),
        normalisation,
        image: img.map_region(crop.lo, crop.hi, |v| v as f32)?,
        mask: roi_mask,
        spacing: img.spacing,
        params_yaml: yaml,
        placement: super::resample::Placement {
            offset: crop.lo,
            full_dims: img.dims,
        },
        integer_range: img.integer_range,
    };
    drop(img);
    let opts = cli_pool_options(section, a.workers, exe);
    let (_, outcome) = pool::run(vec![task], &opts, &|_, _| {})
        .into_iter()
        .next()
        .context("no result")?;
    let e = match outcome {
        RoiOutcome::Done(e) => e,
        RoiOutcome::Failed { reason, .. } => bail!("extraction failed: {reason}"),
    };
    let row = Row {
        roi: format!("label {}", params.settings.label),
        roi_source: image.display().to_string(),
        status: "done".into(),
        reason: String::new(),
        diagnostics: e.diagnostics.clone(),
        features: e.features.clone(),
    };
    if let Some(out) = &a.out {
        write_outputs(out, &[row])?;
    }
    if a.json || a.out.is_none() {
        println!(
            "{}",
            serde_json::to_string_pretty(&features_object(&e.features))?
        );
    }
    Ok(())
}

fn ct_and_structures(
    a: &RadiomicsArgs,
    ct: &Path,
    rtstruct: &Path,
    yaml: &str,
    params: &Params,
    section: &RadiomicsSection,
    exe: PathBuf,
) -> Result<()> {
    let started = std::time::Instant::now();
    let files = crate::import::collect_files(&[ct.to_path_buf()])?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (volume, left_out) = crate::series::read_series(&files, threads)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "CT series read"
    );
    if left_out > 0 {
        tracing::info!(
            left_out,
            "files in --ct that are not slices of the series were left out"
        );
    }
    let mut rs = crate::rt::RtStruct::from_file(rtstruct)?;
    if !a.roi.is_empty() {
        for name in &a.roi {
            if rs.roi(name).is_none() {
                let names: Vec<&str> = rs.rois.iter().map(|r| r.name.as_str()).collect();
                bail!(
                    "no ROI {name:?} in {} (it has {})",
                    rtstruct.display(),
                    names.join(", ")
                );
            }
        }
        rs.rois.retain(|r| a.roi.contains(&r.name));
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "structure set read"
    );
    let opts = cli_pool_options(section, a.workers, exe);
    let (rows, summary) = compute(&rs, &volume, section, yaml, params, &opts, 0, &|d, t| {
        tracing::info!(done = d, total = t, "radiomics ROIs");
    })?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "features computed"
    );
    if let Some(out) = &a.out {
        write_outputs(out, &rows)?;
    }
    if let Some(dir) = &a.masks_out {
        write_masks(dir, &volume, &rs, &rows)?;
    }
    if a.json {
        let obj: Map<String, Value> = rows
            .iter()
            .filter(|r| r.status == "done")
            .map(|r| (r.roi.clone(), Value::Object(features_object(&r.features))))
            .collect();
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        for r in &rows {
            println!(
                "{:<24} {:<8} {:>5} features {}",
                r.roi,
                r.status,
                r.features.len(),
                r.reason
            );
        }
        println!("{summary}");
    }
    for r in rows.iter().filter(|r| r.status == "failed") {
        eprintln!("radiomics: {} failed: {}", r.roi, r.reason);
    }
    Ok(())
}

/// The pool of a command-line run: `--workers` wins over
/// `RTNODE_RADIOMICS_WORKERS`, and without either every core works (the
/// node's default leaves one core to the node; here the command only
/// waits for its workers).
fn cli_pool_options(
    section: &RadiomicsSection,
    workers: Option<usize>,
    exe: PathBuf,
) -> pool::PoolOptions {
    let mut opts = section.pool_options(exe);
    if let Some(w) = workers.filter(|w| *w > 0) {
        opts.workers = w;
    } else if std::env::var_os("RTNODE_RADIOMICS_WORKERS").is_none() && section.workers.is_none() {
        opts.workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
    }
    opts
}

/// The part of an image the worker needs, `[lo, hi)` per axis.
struct Crop {
    lo: [usize; 3],
    hi: [usize; 3],
}

/// What of a research image the worker gets: encoding, sending, decoding
/// and scanning a whole CT for one ROI cost more than its features. Cropped
/// as the stage crops (the ROI's bounding box, padDistance, and when the ROI
/// is resampled room for the B-spline's taps and prefilter), except where
/// the engine filters the image as given (no resampling, no preCrop, a
/// filter on): pyradiomics then filters the whole image, and so does
/// rtnode. An empty mask is sent whole, for the engine to report.
fn worker_crop(
    mask_box: Option<([usize; 3], [usize; 3])>,
    dims: [usize; 3],
    spacing: [f64; 3],
    params: &Params,
) -> Crop {
    let whole = Crop {
        lo: [0; 3],
        hi: dims,
    };
    let st = &params.settings;
    let filtered = params.image_types.iter().any(|t| t.name != "Original");
    let resampled = st.resampled_pixel_spacing.is_some();
    if !resampled && filtered && !st.pre_crop {
        return whole;
    }
    let Some((lo, hi)) = mask_box else {
        return whole;
    };
    // The resampled grid reaches padDistance new voxels past the mask, the
    // B-spline's taps 2 input voxels past that, and its prefilter's crop 48
    // more (resample.rs); 2 to spare.
    let pad = st.pad_distance;
    let margin = |a: usize| -> usize {
        match &st.resampled_pixel_spacing {
            Some(t) => {
                let target = t.get(2 - a).copied().unwrap_or(0.0);
                let ratio = if spacing[a] > 0.0 && target > spacing[a] {
                    target / spacing[a]
                } else {
                    1.0
                };
                (pad as f64 * ratio).ceil() as usize + 52
            }
            None => pad,
        }
        .min(dims[a])
    };
    Crop {
        lo: std::array::from_fn(|a| lo[a].saturating_sub(margin(a))),
        hi: std::array::from_fn(|a| (hi[a] + margin(a)).min(dims[a])),
    }
}

fn features_object(features: &[(String, f64)]) -> Map<String, Value> {
    features
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::Number::from_f64(*v)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The CT and the voxel mask of every ROI that was measured, as NRRD
/// (`image.nrrd`, `mask-<ROI>.nrrd`): what another tool needs to measure
/// exactly the same voxels.
fn write_masks(
    dir: &Path,
    volume: &crate::volume::Volume,
    rs: &crate::rt::RtStruct,
    rows: &[Row],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    volume.write_nrrd(&dir.join("image.nrrd"))?;
    for r in rows.iter().filter(|r| r.status != "skipped") {
        let Some(roi) = rs.roi(&r.roi) else { continue };
        let (mask, _) = super::voxelise::roi_mask(roi, &volume.geometry);
        let safe: String = r
            .roi
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        crate::volume::write_raw_nrrd(
            &dir.join(format!("mask-{safe}.nrrd")),
            &volume.geometry,
            "ROI mask written by rtnode",
            "short",
            mask.iter().map(|m| (*m as i16).to_le_bytes()),
        )?;
    }
    Ok(())
}
