//! One ROI through pyradiomics' extraction order: normalise (statistics of
//! the whole image, computed by the caller), check the mask, crop, resegment,
//! shape on the (un-resegmented) mask, then per image type the first-order
//! and texture classes on the discretised intensities.
//!
//! One large tumour per course is the common case, and its worker then has
//! every thread of the pool (see `pool`): the image types, their filtered
//! images and each image's classes (and the classes' directions) run as
//! rayon tasks, whose results are put back in pyradiomics' order. Every
//! sum is formed in the same order whatever the number of threads, so the
//! values do not depend on it.

use anyhow::{bail, Result};
use ndarray::{s, Array3};
use rayon::prelude::*;

use super::discretise::{discretise, Binning};
use super::image::{bounding_box, Levels, Roi, Standard, TextureSettings};
use super::log_filter;
use super::params::{Interpolator, Params, ResegmentMode, Settings};
use super::resample::{self, IbsiResampling, PixelCast, Placement};
use super::wavelet;
use super::{firstorder, glcm, gldm, gldzm, glrlm, glszm, ngtdm, shape};

/// A texture class's feature function.
type ClassFn = fn(&Levels, &TextureSettings) -> Vec<(&'static str, f64)>;

/// A class's name and its features' values.
type ClassFeatures = (&'static str, Vec<(&'static str, f64)>);

/// One ROI to extract: the image around it (any crop that holds the mask;
/// the engine crops to the mask's bounding box itself) and its mask.
#[derive(Debug, Clone)]
pub struct Task {
    /// The ROI's name, as the output rows and error messages give it.
    pub roi: String,
    /// `[z, y, x]`, in the image's units (HU for CT).
    pub image: Array3<f32>,
    /// ROI membership, `[z, y, x]`, the same shape as `image`.
    pub mask: Array3<bool>,
    /// `[dz, dy, dx]`, mm.
    pub spacing: [f64; 3],
    /// The parameter file's text (empty: pyradiomics' defaults).
    pub params_yaml: String,
    /// Mean and standard deviation (n − 1) of the whole image, for
    /// `normalize` (pyradiomics normalises the full image, not the crop).
    pub normalisation: Option<[f64; 2]>,
    /// Where `image` lies in the whole image: the resampled grid is placed
    /// relative to the whole image, as pyradiomics and IBSI place it.
    pub placement: Placement,
    /// The range of the image's integer pixel type (SimpleITK resamples
    /// into the input's type: CT's int16 truncates), or None for floats.
    pub integer_range: Option<[f64; 2]>,
}

impl Task {
    /// A task over a whole image (no crop), pixels of a float type.
    pub fn whole(
        roi: &str,
        image: Array3<f32>,
        mask: Array3<bool>,
        spacing: [f64; 3],
        params_yaml: &str,
    ) -> Task {
        let placement = Placement::whole(&image);
        Task {
            roi: roi.to_string(),
            image,
            mask,
            spacing,
            params_yaml: params_yaml.to_string(),
            normalisation: None,
            placement,
            integer_range: None,
        }
    }
}

/// The result for one ROI: its feature values and pyradiomics-style
/// diagnostics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extraction {
    /// `original_glcm_JointEnergy` → value, in pyradiomics' order.
    pub features: Vec<(String, f64)>,
    /// `diagnostics_…` → text.
    pub diagnostics: Vec<(String, String)>,
}

/// Extracts every feature `params` asks for from one ROI, as pyradiomics'
/// `RadiomicsFeatureExtractor.execute` would: normalise, check the ROI
/// (`minimumROIDimensions`, `minimumROISize`), resample, resegment, then
/// each enabled image type and class. Fails with the reason when the ROI is
/// empty, too small, or emptied by resampling or resegmentation.
pub fn extract(task: &Task, params: &Params) -> Result<Extraction> {
    let st = &params.settings;
    if task.image.dim() != task.mask.dim() {
        bail!(
            "image {:?} and mask {:?} differ in size",
            task.image.dim(),
            task.mask.dim()
        );
    }
    let mut out = Extraction::default();
    let mut image = task.image.mapv(|v| v as f64);
    if st.normalize {
        let [mean, sd] = task.normalisation.unwrap_or_else(|| whole_stats(&image));
        normalise(&mut image, mean, sd, st);
    }
    let Some((lo, hi)) = bounding_box(&task.mask) else {
        bail!("the mask is empty");
    };
    let voxels = task.mask.iter().filter(|m| **m).count();
    let dims = (0..3).filter(|a| hi[*a] - lo[*a] > 1).count();
    if dims < st.minimum_roi_dimensions {
        bail!(
            "the ROI spans {dims} dimension(s), minimumROIDimensions is {}",
            st.minimum_roi_dimensions
        );
    }
    if let Some(min) = st.minimum_roi_size {
        if voxels < min {
            bail!("the ROI has {voxels} voxels, minimumROISize is {min}");
        }
    }
    // The region the filters see: resampled (bounding box + padDistance on
    // the new grid), or the bounding box + padDistance of the original.
    let pad = st.pad_distance;
    let (region, region_mask, spacing) = match &st.resampled_pixel_spacing {
        Some(target) => {
            // pyradiomics lists spacings x, y, z; arrays are z, y, x.
            let t = [target[2], target[1], target[0]];
            let r = match st.standard {
                Standard::Pyradiomics => resample::resample_pyradiomics(
                    &image,
                    &task.mask,
                    task.spacing,
                    t,
                    interpolator(st.interpolator),
                    pad as f64,
                    match task.integer_range {
                        Some([min, max]) => PixelCast::Truncate { min, max },
                        None => PixelCast::Float,
                    },
                    task.placement,
                ),
                Standard::Ibsi => resample::resample_ibsi(
                    &image,
                    &task.mask,
                    task.spacing,
                    &IbsiResampling {
                        spacing: t,
                        interpolator: match st.interpolator {
                            // IBSI's default interpolation is trilinear.
                            Interpolator::BSpline => resample::Interpolator::BSpline,
                            i => interpolator(i),
                        },
                        round_intensities: task.integer_range.is_some(),
                        mask_threshold: 0.5,
                        pad,
                    },
                    task.placement,
                ),
            };
            let Some(r) = r else {
                bail!(
                    "resampling to {target:?} mm failed (spacing {:?})",
                    task.spacing
                );
            };
            (r.image, r.mask, r.spacing)
        }
        // Without preCrop, pyradiomics filters the image as it was given
        // (LoG's recursive filter reaches far beyond padDistance); the
        // stage's crops leave 50 voxels for that.
        None if !st.pre_crop && params.image_types.iter().any(|t| t.name != "Original") => {
            (image.clone(), task.mask.clone(), task.spacing)
        }
        None => {
            let (nz, ny, nx) = image.dim();
            let l: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(pad));
            let h: [usize; 3] = std::array::from_fn(|a| (hi[a] + pad).min([nz, ny, nx][a]));
            let c = s![l[0]..h[0], l[1]..h[1], l[2]..h[2]];
            (
                image.slice(c).to_owned(),
                task.mask.slice(c).to_owned(),
                task.spacing,
            )
        }
    };
    let Some((lo, hi)) = bounding_box(&region_mask) else {
        bail!("the mask is empty after resampling");
    };
    let crop = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let image = region.slice(crop).to_owned();
    let shape_mask = region_mask.slice(crop).to_owned();
    let (texture_mask, reseg_bounds) = match &st.resegment_range {
        Some(range) => resegment(&image, &shape_mask, range, st.resegment_mode),
        None => (shape_mask.clone(), None),
    };
    let texture_voxels = texture_mask.iter().filter(|m| **m).count();
    if texture_voxels == 0 {
        bail!("no voxel is left after resegmentation");
    }
    let diag = |k: &str, v: String| (format!("diagnostics_{k}"), v);
    out.diagnostics.push(diag(
        "Versions_rtnode",
        env!("CARGO_PKG_VERSION").to_string(),
    ));
    out.diagnostics
        .push(diag("Configuration_SettingsHash", params.hash()));
    out.diagnostics.push(diag(
        "Configuration_Standard",
        format!("{:?}", st.standard).to_lowercase(),
    ));
    out.diagnostics.push(diag(
        "Image-original_Spacing",
        format!(
            "({}, {}, {})",
            task.spacing[2], task.spacing[1], task.spacing[0]
        ),
    ));
    out.diagnostics
        .push(diag("Mask-original_VoxelNum", voxels.to_string()));
    out.diagnostics.push(diag(
        "Mask-resegmented_VoxelNum",
        texture_voxels.to_string(),
    ));

    if params.enabled("shape") {
        let m = if st.resegment_shape {
            &texture_mask
        } else {
            &shape_mask
        };
        for (name, v) in shape::features(m, spacing) {
            if params.wants("shape", name) {
                out.features.push((format!("original_shape_{name}"), v));
            }
        }
    }
    // Image types, their filtered images and each image's classes all run
    // in parallel (a lone ROI has the worker's every thread; rayon's work
    // stealing balances the uneven pieces), collected in pyradiomics' order.
    let per_type: Vec<Result<Vec<(String, f64)>>> = params
        .image_types
        .par_iter()
        .map(|it| -> Result<Vec<(String, f64)>> {
            let images: Vec<(String, Array3<f64>)> = match it.name.as_str() {
                "Original" => vec![("original".to_string(), image.clone())],
                "Wavelet" => {
                    let s = &it.settings;
                    let Some(w) = wavelet::Wavelet::by_name(&s.wavelet) else {
                        bail!("wavelet {:?} is not available", s.wavelet);
                    };
                    let axes = wavelet::pyradiomics_axes(s.force2d, s.force2d_dimension);
                    wavelet::wavelet_images(&region, &w, s.level, s.start_level, &axes)
                        .into_iter()
                        .map(|(name, img)| (name, img.slice(crop).to_owned()))
                        .collect()
                }
                "LoG" => log_filter::log_images(&region, spacing, &it.settings.sigma)
                    .into_iter()
                    .map(|(name, img)| (name, img.slice(crop).to_owned()))
                    .collect(),
                other => bail!("image type {other} is not computed by rtnode"),
            };
            let rows: Vec<Vec<(String, f64)>> = images
                .into_par_iter()
                .map(|(prefix, filtered)| {
                    features_of(
                        &prefix,
                        filtered,
                        &texture_mask,
                        spacing,
                        &it.settings,
                        reseg_bounds,
                        params,
                    )
                })
                .collect();
            Ok(rows.into_iter().flatten().collect())
        })
        .collect();
    for rows in per_type {
        out.features.extend(rows?);
    }
    Ok(out)
}

/// First order and texture classes of one (filtered) image of the ROI.
fn features_of(
    prefix: &str,
    image: Array3<f64>,
    mask: &Array3<bool>,
    spacing: [f64; 3],
    s: &Settings,
    reseg_bounds: Option<[f64; 2]>,
    params: &Params,
) -> Vec<(String, f64)> {
    let roi = Roi {
        image,
        mask: mask.clone(),
        spacing,
    };
    let lower = match (s.standard, s.resegment_mode) {
        (Standard::Ibsi, ResegmentMode::Absolute) => reseg_bounds.map(|b| b[0]),
        _ => None,
    };
    let levels = discretise(&roi, binning(s), s.standard, lower);
    let texture = texture_settings(s);
    let texture_classes: [(&str, ClassFn); 6] = [
        ("glcm", glcm::features),
        ("glrlm", glrlm::features),
        ("glszm", glszm::features),
        ("gldm", gldm::features),
        ("ngtdm", ngtdm::features),
        ("gldzm", gldzm::features),
    ];
    // First order beside the texture classes, each class on its own thread.
    let (first, computed): (Option<ClassFeatures>, Vec<ClassFeatures>) = rayon::join(
        || {
            params.enabled("firstorder").then(|| {
                (
                    "firstorder",
                    firstorder::features(&roi, &levels, s.voxel_array_shift),
                )
            })
        },
        || {
            texture_classes
                .par_iter()
                .filter(|(c, _)| params.enabled(c))
                .map(|(c, f)| (*c, f(&levels, &texture)))
                .collect()
        },
    );
    let mut classes: Vec<ClassFeatures> = first.into_iter().collect();
    classes.extend(computed);
    let mut out = Vec::new();
    for (class, feats) in classes {
        for (name, v) in feats {
            if params.wants(class, name) {
                out.push((format!("{prefix}_{class}_{name}"), v));
            }
        }
    }
    out
}

fn interpolator(i: Interpolator) -> resample::Interpolator {
    match i {
        Interpolator::NearestNeighbor => resample::Interpolator::NearestNeighbor,
        Interpolator::Linear => resample::Interpolator::Linear,
        Interpolator::BSpline => resample::Interpolator::BSpline,
    }
}

fn binning(s: &Settings) -> Binning {
    match s.bin_count {
        Some(n) => Binning::Count(n),
        None => Binning::Width(s.bin_width),
    }
}

fn texture_settings(s: &Settings) -> TextureSettings {
    TextureSettings {
        distances: s.distances.clone(),
        force2d: s.force2d,
        force2d_dimension: s.force2d_dimension,
        symmetrical_glcm: s.symmetrical_glcm,
        weighting_norm: s.weighting_norm,
        gldm_a: s.gldm_a,
        standard: s.standard,
        aggregation: s.aggregation,
    }
}

/// Mean and sample standard deviation (n − 1, as ITK's statistics filter
/// that pyradiomics' normalisation uses) of every voxel.
pub fn whole_stats<T: Copy + Into<f64>>(image: &Array3<T>) -> [f64; 2] {
    let n = image.len() as f64;
    let mean = image.iter().map(|v| (*v).into()).sum::<f64>() / n;
    let var = image
        .iter()
        .map(|v| {
            let d = (*v).into() - mean;
            d * d
        })
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    [mean, var.sqrt()]
}

/// pyradiomics' `normalizeImage`: z-score, outliers clipped at
/// ±removeOutliers standard deviations, then scaled.
fn normalise(image: &mut Array3<f64>, mean: f64, sd: f64, st: &Settings) {
    let sd = if sd > 0.0 { sd } else { 1.0 };
    image.mapv_inplace(|v| {
        let mut z = (v - mean) / sd;
        if let Some(k) = st.remove_outliers {
            z = z.clamp(-k, k);
        }
        z * st.normalize_scale
    });
}

/// pyradiomics' `resegmentMask`: keeps the ROI voxels whose intensity lies
/// in the range, given absolutely, relative to the ROI's maximum, or in
/// standard deviations (population) around the ROI's mean. Returns the new
/// mask and the absolute bounds used.
fn resegment(
    image: &Array3<f64>,
    mask: &Array3<bool>,
    range: &[f64],
    mode: ResegmentMode,
) -> (Array3<bool>, Option<[f64; 2]>) {
    let values: Vec<f64> = image
        .iter()
        .zip(mask.iter())
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v)
        .collect();
    let n = values.len().max(1) as f64;
    let mut thresholds: Vec<f64> = match mode {
        ResegmentMode::Absolute => range.to_vec(),
        ResegmentMode::Relative => {
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            range.iter().map(|t| max * t).collect()
        }
        ResegmentMode::Sigma => {
            let mean = values.iter().sum::<f64>() / n;
            let sd = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
            range.iter().map(|t| mean + sd * t).collect()
        }
    };
    thresholds.sort_by(f64::total_cmp);
    let lo = thresholds.first().copied().unwrap_or(f64::NEG_INFINITY);
    let hi = if thresholds.len() > 1 {
        thresholds[1]
    } else {
        f64::INFINITY
    };
    let out = ndarray::Zip::from(image)
        .and(mask)
        .map_collect(|v, m| *m && *v >= lo && *v <= hi);
    (out, Some([lo, hi]))
}
