//! A structure set's ROIs on a CT volume: selection (skip patterns, voxel
//! counts, the cheap profile for large ROIs), voxelisation, extraction
//! through the worker pool, and the output files `radiomics.csv` (one row
//! per ROI, pyradiomics' columns after rtnode's own: roi, roi_source,
//! status, reason) and `radiomics.json`. An ROI whose extraction fails is a
//! row with its reason; the other ROIs complete. Used by the course stage
//! (`stages::radiomics`) and the command line (`cli`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use ndarray::s;
use regex::Regex;
use serde::Serialize;
use serde_json::json;

use super::engine::{whole_stats, Task};
use super::params::Params;
use super::pool::{self, PoolOptions, RoiOutcome};
use super::settings::RadiomicsSection;
use super::voxelise::roi_window;
use crate::rt::RtStruct;
use crate::volume::Volume;

/// The feature table's file name: one row per ROI.
pub const CSV_FILE: &str = "radiomics.csv";
/// The same rows as JSON, with the run's counts.
pub const JSON_FILE: &str = "radiomics.json";

/// One row of the stage's output.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// ROI name as in the structure set (or `label N` for an image and mask).
    pub roi: String,
    /// Where the ROI comes from: `rtstruct`, `autoseg:<model>`, `derived`,
    /// or the image file's path.
    pub roi_source: String,
    /// done, failed, skipped.
    pub status: String,
    /// Why the ROI was skipped or failed; empty when done.
    pub reason: String,
    /// `diagnostics_…` columns → text, rtnode's first, then the engine's.
    pub diagnostics: Vec<(String, String)>,
    /// pyradiomics-named features (`original_glcm_JointEnergy`) → value, in
    /// pyradiomics' order; empty unless done. NaN where undefined.
    pub features: Vec<(String, f64)>,
}

/// Selects, voxelises and extracts every ROI of `rs` on `volume` through
/// the worker pool: one [`Row`] per ROI in structure-set order, and a
/// summary `{"done", "failed", "skipped"}`. `lossy_slices` is how many CT
/// slices were lossy-compressed (recorded in the diagnostics);
/// `progress(done, total)` after each ROI. Fails only on a bad skip
/// pattern.
#[allow(clippy::too_many_arguments)]
pub fn compute(
    rs: &RtStruct,
    volume: &Volume,
    section: &RadiomicsSection,
    params_yaml: &str,
    params: &Params,
    opts: &PoolOptions,
    lossy_slices: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Vec<Row>, serde_json::Value)> {
    let skip: Vec<Regex> = section
        .skip
        .iter()
        .map(|p| Regex::new(&format!("^(?:{p})$")))
        .collect::<Result<_, _>>()?;
    let normalisation = params.settings.normalize.then(|| whole_stats(&volume.data));
    let g = &volume.geometry;
    let spacing = [g.spacing[2].abs(), g.spacing[1], g.spacing[0]];
    // The crop each worker gets: the ROI's bounding box and padDistance,
    // and when the ROI is resampled or filtered, room for the B-spline
    // prefilter and the wavelet's support, so that the crop's edges never
    // reach the values the features read (the same numbers as on the
    // whole image).
    let filtered = params.settings.resampled_pixel_spacing.is_some()
        || params.image_types.iter().any(|t| t.name != "Original");
    let pad = params.settings.pad_distance + if filtered { 50 } else { 0 };
    // The pixel type of the CT as organize stores it (16-bit when every
    // value is an integer in range): SimpleITK resamples into that type.
    let in_i16 = |v: &f32| v.fract() == 0.0 && *v >= i16::MIN as f32 && *v <= i16::MAX as f32;
    let integral = match volume.data.as_slice() {
        Some(all) => {
            use rayon::prelude::*;
            all.par_chunks(1 << 16).all(|c| c.iter().all(in_i16))
        }
        None => volume.data.iter().all(in_i16),
    };
    let integer_range = integral.then_some([i16::MIN as f64, i16::MAX as f64]);
    let large_yaml = large_profile_yaml(params_yaml, section.large_roi_spacing_mm);
    let mut rows: Vec<Row> = Vec::new();
    let mut tasks: Vec<Task> = Vec::new();
    let mut task_row: Vec<usize> = Vec::new();
    for roi in &rs.rois {
        let mut row = Row {
            roi: roi.name.clone(),
            roi_source: roi.source.label(),
            status: "skipped".into(),
            reason: String::new(),
            diagnostics: Vec::new(),
            features: Vec::new(),
        };
        if skip.iter().any(|r| r.is_match(&roi.name)) {
            row.reason = "name matches radiomics.skip".into();
            rows.push(row);
            continue;
        }
        if roi.planes.is_empty() {
            row.reason = "no closed planar contours".into();
            rows.push(row);
            continue;
        }
        let (window, notes) = roi_window(roi, g);
        let n = window.mask.iter().filter(|m| **m).count();
        if n < section.min_voxels {
            row.reason = format!("{n} voxels, radiomics.min_voxels is {}", section.min_voxels);
            rows.push(row);
            continue;
        }
        let Some((wlo, whi)) = super::image::bounding_box(&window.mask) else {
            row.reason = "no voxel centre lies inside the contours".into();
            rows.push(row);
            continue;
        };
        let large = n > section.large_roi_voxels;
        // A resampled large ROI needs the same room as any resampled one.
        let pad = if large && section.large_roi_spacing_mm.is_some() {
            params.settings.pad_distance + 50
        } else {
            pad
        };
        let (nz, ny, nx) = volume.data.dim();
        let lo: Vec<usize> = (0..3)
            .map(|a| (window.offset[a] + wlo[a]).saturating_sub(pad))
            .collect();
        let hi: Vec<usize> = (0..3)
            .map(|a| (window.offset[a] + whi[a] + pad).min([nz, ny, nx][a]))
            .collect();
        // The ROI's mask on the crop: the window's voxels, shifted.
        let mut crop_mask =
            ndarray::Array3::from_elem((hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), false);
        for ((z, y, x), m) in window.mask.indexed_iter() {
            if *m {
                let at = [
                    window.offset[0] + z - lo[0],
                    window.offset[1] + y - lo[1],
                    window.offset[2] + x - lo[2],
                ];
                crop_mask[at] = true;
            }
        }
        let crop = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
        row.diagnostics.push((
            "diagnostics_rtnode_Profile".into(),
            if large {
                "large (shape, firstorder of Original, resampled to large_roi_spacing_mm)"
            } else {
                "full"
            }
            .into(),
        ));
        if !notes.is_empty() {
            row.diagnostics
                .push(("diagnostics_rtnode_Voxelisation".into(), notes.join("; ")));
        }
        row.diagnostics.push((
            "diagnostics_Image-original_LossyImageCompression".into(),
            if lossy_slices > 0 {
                format!("YES ({lossy_slices} slices)")
            } else {
                "NO".into()
            },
        ));
        tasks.push(Task {
            roi: roi.name.clone(),
            image: volume.data.slice(crop).to_owned(),
            mask: crop_mask,
            spacing,
            params_yaml: if large {
                large_yaml.clone()
            } else {
                params_yaml.to_string()
            },
            normalisation,
            placement: super::resample::Placement {
                offset: [lo[0], lo[1], lo[2]],
                full_dims: [nz, ny, nx],
            },
            integer_range,
        });
        task_row.push(rows.len());
        rows.push(row);
    }
    tracing::debug!(rois = tasks.len(), "radiomics ROIs voxelised");
    let outcomes = pool::run(tasks, opts, progress);
    let (mut done, mut failed) = (0, 0);
    for ((_, outcome), i) in outcomes.into_iter().zip(task_row) {
        let row = &mut rows[i];
        match outcome {
            RoiOutcome::Done(e) => {
                done += 1;
                row.status = "done".into();
                row.diagnostics.extend(e.diagnostics);
                row.features = e.features;
            }
            RoiOutcome::Failed { reason, attempts } => {
                failed += 1;
                row.status = "failed".into();
                row.reason = format!("{reason} ({attempts} attempt(s))");
            }
        }
    }
    let skipped = rows.len() - done - failed;
    Ok((
        rows,
        json!({"done": done, "failed": failed, "skipped": skipped}),
    ))
}

/// The cheap profile for very large ROIs: the same settings, shape and
/// first order of the Original image only, at `spacing` (x, y, z mm) when given.
fn large_profile_yaml(params_yaml: &str, spacing: Option<[f64; 3]>) -> String {
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(params_yaml).unwrap_or(serde_yaml_ng::Value::Null);
    if !doc.is_mapping() {
        doc = serde_yaml_ng::Value::Mapping(Default::default());
    }
    if let Some(m) = doc.as_mapping_mut() {
        let mut classes = serde_yaml_ng::Mapping::new();
        classes.insert("shape".into(), serde_yaml_ng::Value::Null);
        classes.insert("firstorder".into(), serde_yaml_ng::Value::Null);
        m.insert(
            "featureClass".into(),
            serde_yaml_ng::Value::Mapping(classes),
        );
        let mut types = serde_yaml_ng::Mapping::new();
        types.insert(
            "Original".into(),
            serde_yaml_ng::Value::Mapping(Default::default()),
        );
        m.insert("imageType".into(), serde_yaml_ng::Value::Mapping(types));
        if let Some(sp) = spacing {
            let setting = m
                .entry("setting".into())
                .or_insert_with(|| serde_yaml_ng::Value::Mapping(Default::default()));
            if !setting.is_mapping() {
                *setting = serde_yaml_ng::Value::Mapping(Default::default());
            }
            if let Some(sm) = setting.as_mapping_mut() {
                sm.insert(
                    "resampledPixelSpacing".into(),
                    serde_yaml_ng::Value::Sequence(sp.iter().map(|v| (*v).into()).collect()),
                );
            }
        }
    }
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// `radiomics.csv` (rows × the union of columns, in first-seen order) and
/// `radiomics.json` ({ROI: {status, reason, source, diagnostics, features}}).
pub fn write_outputs(dir: &Path, rows: &[Row]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut diag_cols: Vec<String> = Vec::new();
    let mut feat_cols: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in rows {
        for (k, _) in &r.diagnostics {
            if seen.insert(k.clone()) {
                diag_cols.push(k.clone());
            }
        }
        for (k, _) in &r.features {
            if seen.insert(k.clone()) {
                feat_cols.push(k.clone());
            }
        }
    }
    let mut csv = crate::csv_format::writer(std::io::BufWriter::new(std::fs::File::create(
        dir.join(CSV_FILE),
    )?));
    let mut header = vec![
        "roi".to_string(),
        "roi_source".into(),
        "status".into(),
        "reason".into(),
    ];
    header.extend(diag_cols.iter().cloned());
    header.extend(feat_cols.iter().cloned());
    csv.write_record(&header)?;
    for r in rows {
        let mut cells = vec![
            r.roi.clone(),
            r.roi_source.clone(),
            r.status.clone(),
            r.reason.clone(),
        ];
        for c in &diag_cols {
            cells.push(
                r.diagnostics
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            );
        }
        for c in &feat_cols {
            cells.push(match r.features.iter().find(|(k, _)| k == c) {
                Some((_, v)) if v.is_finite() => format!("{v}"),
                Some((_, v)) if v.is_nan() => "nan".into(),
                Some((_, v)) => format!("{v}"),
                None => String::new(),
            });
        }
        csv.write_record(&cells)?;
    }
    csv.into_inner().map_err(|e| e.into_error())?.flush()?;
    let json: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|r| {
            let feats: serde_json::Map<String, serde_json::Value> = r
                .features
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Number::from_f64(*v).map(Into::into).unwrap_or(serde_json::Value::Null)))
                .collect();
            let diags: serde_json::Map<String, serde_json::Value> =
                r.diagnostics.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
            (
                r.roi.clone(),
                json!({"status": r.status, "reason": r.reason, "source": r.roi_source, "diagnostics": diags, "features": feats}),
            )
        })
        .collect();
    std::fs::write(dir.join(JSON_FILE), serde_json::to_vec_pretty(&json)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_profile_keeps_settings_and_is_cheap() {
        let yaml = large_profile_yaml(
            "setting: {binWidth: 10, label: 1}\nimageType: {Original: {}, LoG: {sigma: [1.0]}, Wavelet: {}}\n",
            Some([3.0, 3.0, 2.5]),
        );
        let p = Params::from_yaml(&yaml).unwrap();
        assert_eq!(p.settings.bin_width, 10.0);
        assert_eq!(
            p.settings.resampled_pixel_spacing,
            Some(vec![3.0, 3.0, 2.5])
        );
        assert_eq!(p.image_types.len(), 1);
        assert_eq!(p.image_types[0].name, "Original");
        assert_eq!(
            p.classes.keys().collect::<Vec<_>>(),
            ["firstorder", "shape"]
        );
        let p = Params::from_yaml(&large_profile_yaml("", None)).unwrap();
        assert_eq!(p.settings.resampled_pixel_spacing, None);
    }
}
