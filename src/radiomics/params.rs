//! Radiomics settings in pyradiomics' own parameter-file format (YAML with
//! `setting`, `imageType`, `featureClass`, `voxelSetting`), so that a
//! pyradiomics user's file works unchanged. Every key of pyradiomics'
//! schema is recognised; a key or value rtnode cannot honour is an error
//! that names it, never silently ignored. Defaults are pyradiomics'.
//!
//! rtnode's own additions live in `setting` too: `standard: pyradiomics |
//! ibsi` (which image-processing definitions apply where the two differ)
//! and `aggregation: averaged | merged` (how direction matrices combine).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_yaml_ng::Value;

use super::image::{Aggregation, Standard, WeightingNorm};

/// pyradiomics' feature classes, all computed by rtnode: the default set.
pub const CLASSES: &[&str] = &[
    "firstorder",
    "shape",
    "glcm",
    "glrlm",
    "glszm",
    "gldm",
    "ngtdm",
];

/// Classes rtnode adds, computed only when a parameter file names them:
/// the IBSI grey level distance zone matrix.
pub const EXTRA_CLASSES: &[&str] = &["gldzm"];

/// Features pyradiomics computes only when a parameter file names them.
const DEPRECATED: &[&str] = &[
    "StandardDeviation",
    "Compactness1",
    "Compactness2",
    "SphericalDisproportion",
];

/// Image interpolation for resampling (`interpolator`: SimpleITK names or
/// numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interpolator {
    /// `sitkNearestNeighbor` (1): the nearest voxel's value.
    NearestNeighbor,
    /// `sitkLinear` (2): trilinear.
    Linear,
    /// `sitkBSpline` (3): cubic B-spline, pyradiomics' default.
    BSpline,
}

/// How `resegmentRange` is read (`resegmentMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ResegmentMode {
    /// Bounds in image units (HU).
    Absolute,
    /// Bounds as fractions of the ROI's maximum intensity.
    Relative,
    /// Bounds in standard deviations about the ROI's mean.
    Sigma,
}

/// pyradiomics' `setting` section (global, or one image type's overrides).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// `minimumROIDimensions`: how many axes (1–3) the ROI must extend over more than one
    /// voxel; fewer is an error for that ROI.
    pub minimum_roi_dimensions: usize,
    /// `minimumROISize`: the fewest voxels an ROI may have; `None`, no minimum beyond one voxel.
    pub minimum_roi_size: Option<usize>,
    /// `geometryTolerance`: the largest relative difference between image and
    /// mask spacing accepted for `--image`/`--mask`; `None`, 1e-6. (In the
    /// pipeline the mask is rasterised on the CT's own grid.)
    pub geometry_tolerance: Option<f64>,
    /// `correctMask`: accepted for compatibility; rtnode never resamples a mask onto a
    /// differing grid, so it has no effect.
    pub correct_mask: bool,
    /// `additionalInfo`: accepted for compatibility; rtnode always writes its diagnostics columns.
    pub additional_info: bool,
    /// `label`: the mask value that marks the ROI in a `--mask` label map (≥ 1).
    pub label: i64,
    /// `label_channel`: which channel of a vector label map to read; only 0 (single-channel
    /// maps) is supported.
    pub label_channel: usize,
    /// `binWidth`: width of a grey-level bin in image units (HU for CT; after normalisation, in
    /// its scaled units). Ignored when `bin_count` is set.
    pub bin_width: f64,
    /// `binCount`: a fixed number of grey-level bins over the ROI's range instead of a fixed
    /// width; `None`, fixed width.
    pub bin_count: Option<usize>,
    /// `normalize`: z-score the image over the whole image (not the ROI) before everything else.
    pub normalize: bool,
    /// `normalizeScale`: factor applied to the z-scores when `normalize` is on.
    pub normalize_scale: f64,
    /// `removeOutliers`: with `normalize`, clip z-scores to ± this many standard deviations;
    /// `None`, no clipping.
    pub remove_outliers: Option<f64>,
    /// `resampledPixelSpacing`: resample image and mask to this spacing `[x, y, z]` in mm
    /// before extraction (0 keeps that axis); `None`, no resampling.
    pub resampled_pixel_spacing: Option<Vec<f64>>,
    /// `interpolator`: how the image is interpolated when resampling (the mask always by its
    /// own rule).
    pub interpolator: Interpolator,
    /// `padDistance`: voxels of image kept around the ROI's bounding box when cropping, so that
    /// filters see real neighbours.
    pub pad_distance: usize,
    /// `distances`: neighbour distances (voxels, Chebyshev) for GLCM, GLDM and NGTDM; positive,
    /// at least one.
    pub distances: Vec<usize>,
    /// `force2D`: compute texture matrices slice by slice (2-D neighbourhoods) instead of in 3-D.
    pub force2d: bool,
    /// `force2Ddimension`: the axis (0 = z, 1 = y, 2 = x, in the voxel array's order) across
    /// which `force2d` slices.
    pub force2d_dimension: usize,
    /// `resegmentRange`: one (lower) or two (lower, upper) bounds; ROI voxels outside them are
    /// dropped before the features, meaning as `resegment_mode`
    /// says. `None`, no resegmentation.
    pub resegment_range: Option<Vec<f64>>,
    /// `resegmentMode`: how `resegment_range` is read.
    pub resegment_mode: ResegmentMode,
    /// `resegmentShape`: also compute shape features on the resegmented mask (else on the
    /// original one).
    pub resegment_shape: bool,
    /// `preCrop`: crop to the ROI's bounding box plus `pad_distance` before
    /// filtering (faster; the filters then see the crop's edge rather than
    /// the surrounding image).
    pub pre_crop: bool,
    /// `sigma`: Laplacian-of-Gaussian widths in mm, one derived image each; must be non-empty
    /// when LoG is enabled.
    pub sigma: Vec<f64>,
    /// `start_level`: wavelet levels decomposed but not output before the first one that is (0
    /// outputs from the first).
    pub start_level: usize,
    /// `level`: how many wavelet levels are output (≥ 1).
    pub level: usize,
    /// `wavelet`: the wavelet family name (`coif1`, `haar`, `db1`, `db2`, `sym2`).
    pub wavelet: String,
    /// `voxelArrayShift`: added to intensities (image units) in the first-order Energy,
    /// TotalEnergy and RootMeanSquared, to keep negative values such
    /// as HU from lowering them.
    pub voxel_array_shift: f64,
    /// `symmetricalGLCM`: count each GLCM pair in both directions.
    pub symmetrical_glcm: bool,
    /// `weightingNorm`: weight each direction's matrix by its offset length in mm, in this
    /// norm, and sum them; `None`, features averaged over
    /// directions.
    pub weighting_norm: Option<WeightingNorm>,
    /// `gldm_a`: the GLDM dependence cutoff α, in grey levels: a neighbour is dependent when it
    /// differs by at most this.
    pub gldm_a: f64,
    /// rtnode's `standard`: which definitions apply where pyradiomics and IBSI differ.
    pub standard: Standard,
    /// rtnode's `aggregation`: whether per-direction texture matrices give features that are
    /// averaged, or are merged into one matrix first.
    pub aggregation: Aggregation,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            minimum_roi_dimensions: 2,
            minimum_roi_size: None,
            geometry_tolerance: None,
            correct_mask: false,
            additional_info: true,
            label: 1,
            label_channel: 0,
            bin_width: 25.0,
            bin_count: None,
            normalize: false,
            normalize_scale: 1.0,
            remove_outliers: None,
            resampled_pixel_spacing: None,
            interpolator: Interpolator::BSpline,
            pad_distance: 5,
            distances: vec![1],
            force2d: false,
            force2d_dimension: 0,
            resegment_range: None,
            resegment_mode: ResegmentMode::Absolute,
            resegment_shape: false,
            pre_crop: false,
            sigma: Vec::new(),
            start_level: 0,
            level: 1,
            wavelet: "coif1".into(),
            voxel_array_shift: 0.0,
            symmetrical_glcm: true,
            weighting_norm: None,
            gldm_a: 0.0,
            standard: Standard::Pyradiomics,
            aggregation: Aggregation::Averaged,
        }
    }
}

/// An enabled image type (`imageType`) with its effective settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageType {
    /// `Original`, `LoG`, `Wavelet`.
    pub name: String,
    /// The global settings with this image type's overrides applied.
    pub settings: Settings,
}

/// A whole radiomics parameter file, parsed and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    /// The global `setting` section.
    pub settings: Settings,
    /// The enabled image types in file order, each with its own settings;
    /// never empty (`Original` when the file names none).
    pub image_types: Vec<ImageType>,
    /// Class → the features asked for (None: every feature of the class).
    pub classes: BTreeMap<String, Option<Vec<String>>>,
}

impl Default for Params {
    /// pyradiomics' defaults: the Original image, every class.
    fn default() -> Self {
        let settings = Settings::default();
        Params {
            image_types: vec![ImageType {
                name: "Original".into(),
                settings: settings.clone(),
            }],
            classes: CLASSES.iter().map(|c| (c.to_string(), None)).collect(),
            settings,
        }
    }
}

impl Params {
    /// Reads and checks a parameter file (YAML); errors name the file and
    /// the offending key.
    pub fn from_file(path: &Path) -> Result<Params> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Params::from_yaml(&text)
            .with_context(|| format!("in radiomics parameter file {}", path.display()))
    }

    /// Parses a parameter file's text; an empty document gives the defaults.
    pub fn from_yaml(text: &str) -> Result<Params> {
        let doc: Value = serde_yaml_ng::from_str(text).context("not YAML")?;
        let map = match &doc {
            Value::Null => return Ok(Params::default()),
            Value::Mapping(m) => m,
            _ => bail!("the parameter file must be a mapping of setting, imageType, featureClass"),
        };
        let mut settings = Settings::default();
        let mut image_types_v = None;
        let mut classes_v = None;
        for (k, v) in map {
            let key = k
                .as_str()
                .ok_or_else(|| anyhow!("a top-level key is not text"))?;
            match key {
                "setting" => apply_settings(&mut settings, v, "setting")?,
                "imageType" => image_types_v = Some(v.clone()),
                "featureClass" => classes_v = Some(v.clone()),
                "voxelSetting" => {
                    if !matches!(v, Value::Null) && v.as_mapping().is_none_or(|m| !m.is_empty()) {
                        bail!("voxelSetting: voxel-based (feature map) extraction is not supported by rtnode; remove the section")
                    }
                }
                other => bail!("unknown top-level key {other:?} (pyradiomics' schema has setting, imageType, featureClass, voxelSetting)"),
            }
        }
        let image_types = match image_types_v {
            None | Some(Value::Null) => vec![ImageType {
                name: "Original".into(),
                settings: settings.clone(),
            }],
            Some(Value::Mapping(m)) => {
                let mut out = Vec::new();
                for (k, v) in &m {
                    let name = k
                        .as_str()
                        .ok_or_else(|| anyhow!("imageType: a key is not text"))?;
                    let mut s = settings.clone();
                    apply_settings(&mut s, v, &format!("imageType.{name}"))?;
                    match name {
                        "Original" => {}
                        "Wavelet" => {
                            if super::wavelet::Wavelet::by_name(&s.wavelet).is_none() {
                                bail!("imageType.Wavelet: wavelet {:?} is not available in rtnode (coif1, haar, db1, db2, sym2)", s.wavelet);
                            }
                        }
                        "LoG" => {
                            if s.sigma.is_empty() {
                                bail!("imageType.LoG: no sigma given (e.g. `LoG: {{sigma: [1.0, 2.0, 3.0]}}`); pyradiomics would compute no LoG image");
                            }
                            if s.sigma.iter().any(|x| !x.is_finite() || *x <= 0.0) {
                                bail!("imageType.LoG: every sigma must be > 0 mm");
                            }
                        }
                        "Square" | "SquareRoot" | "Logarithm" | "Exponential" | "Gradient"
                        | "LBP2D" | "LBP3D" => {
                            bail!(
                                "imageType.{name}: not supported by rtnode (it computes Original, LoG and Wavelet)"
                            )
                        }
                        other => bail!("imageType.{other}: unknown image type"),
                    }
                    out.push(ImageType {
                        name: name.to_string(),
                        settings: s,
                    });
                }
                if out.is_empty() {
                    bail!("imageType: no image type enabled");
                }
                out
            }
            Some(_) => bail!("imageType must be a mapping (e.g. `Original: {{}}`)"),
        };
        let classes = match classes_v {
            None | Some(Value::Null) => CLASSES.iter().map(|c| (c.to_string(), None)).collect(),
            Some(Value::Mapping(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in &m {
                    let name = k
                        .as_str()
                        .ok_or_else(|| anyhow!("featureClass: a key is not text"))?;
                    if !CLASSES.contains(&name) && !EXTRA_CLASSES.contains(&name) {
                        bail!(
                            "featureClass.{name}: not a feature class rtnode computes ({}, {})",
                            CLASSES.join(", "),
                            EXTRA_CLASSES.join(", ")
                        );
                    }
                    let list = match v {
                        Value::Null => None,
                        Value::Sequence(items) => {
                            let names = items
                                .iter()
                                .map(|i| {
                                    i.as_str().map(|s| s.to_string()).ok_or_else(|| {
                                        anyhow!("featureClass.{name}: feature names must be text")
                                    })
                                })
                                .collect::<Result<Vec<_>>>()?;
                            for n in &names {
                                if !super::is_feature(name, n) {
                                    bail!("featureClass.{name}: unknown feature {n:?}");
                                }
                            }
                            Some(names)
                        }
                        _ => bail!("featureClass.{name}: must be empty or a list of feature names"),
                    };
                    out.insert(name.to_string(), list);
                }
                out
            }
            Some(_) => bail!("featureClass must be a mapping"),
        };
        Ok(Params {
            settings,
            image_types,
            classes,
        })
    }

    /// Whether the parameter file enables `class`.
    pub fn enabled(&self, class: &str) -> bool {
        self.classes.contains_key(class)
    }

    /// Whether `feature` of `class` goes into the output: every feature of an
    /// enabled class but pyradiomics' deprecated ones (StandardDeviation,
    /// Compactness1/2, SphericalDisproportion), which only when named.
    pub fn wants(&self, class: &str, feature: &str) -> bool {
        match self.classes.get(class) {
            Some(None) => !DEPRECATED.contains(&feature),
            Some(Some(list)) => list.iter().any(|n| n == feature),
            None => false,
        }
    }

    /// A short stable hash of the effective settings, for the diagnostics
    /// columns and the stage fingerprint.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        blake3::hash(json.as_bytes()).to_hex()[..16].to_string()
    }
}

fn apply_settings(s: &mut Settings, v: &Value, at: &str) -> Result<()> {
    let m = match v {
        Value::Null => return Ok(()),
        Value::Mapping(m) => m,
        _ => bail!("{at}: must be a mapping of settings"),
    };
    for (k, val) in m {
        let key = k
            .as_str()
            .ok_or_else(|| anyhow!("{at}: a key is not text"))?;
        let here = format!("{at}.{key}");
        let null = matches!(val, Value::Null);
        match key {
            "minimumROIDimensions" => s.minimum_roi_dimensions = int_in(val, &here, 1, 3)? as usize,
            "minimumROISize" => s.minimum_roi_size = if null { None } else { Some(int_in(val, &here, 1, i64::MAX)? as usize) },
            "geometryTolerance" => s.geometry_tolerance = if null { None } else { Some(pos(val, &here)?) },
            "correctMask" => s.correct_mask = boolean(val, &here)?,
            "additionalInfo" => s.additional_info = boolean(val, &here)?,
            "label" => s.label = int_in(val, &here, 1, i64::MAX)?,
            "label_channel" => {
                s.label_channel = int_in(val, &here, 0, i64::MAX)? as usize;
                if s.label_channel != 0 {
                    bail!("{here}: only single-channel label maps are read (0)");
                }
            }
            "binWidth" => s.bin_width = pos(val, &here)?,
            "binCount" => s.bin_count = if null { None } else { Some(int_in(val, &here, 1, i64::MAX)? as usize) },
            "normalize" => s.normalize = boolean(val, &here)?,
            "normalizeScale" => s.normalize_scale = pos(val, &here)?,
            "removeOutliers" => s.remove_outliers = if null { None } else { Some(pos(val, &here)?) },
            "resampledPixelSpacing" => {
                s.resampled_pixel_spacing = if null { None } else { Some(floats(val, &here)?) };
                if let Some(r) = &s.resampled_pixel_spacing {
                    if r.len() != 3 || r.iter().any(|x| !x.is_finite() || *x < 0.0) {
                        bail!("{here}: three spacings (x, y, z) in mm, each >= 0 (0 keeps that axis)");
                    }
                }
            }
            "interpolator" => {
                s.interpolator = match val {
                    Value::Null => s.interpolator,
                    Value::String(t) => match t.as_str() {
                        "sitkNearestNeighbor" => Interpolator::NearestNeighbor,
                        "sitkLinear" => Interpolator::Linear,
                        "sitkBSpline" => Interpolator::BSpline,
                        other => bail!("{here}: interpolator {other:?} is not supported (sitkNearestNeighbor, sitkLinear, sitkBSpline)"),
                    },
                    Value::Number(n) => match n.as_i64() {
                        Some(1) => Interpolator::NearestNeighbor,
                        Some(2) => Interpolator::Linear,
                        Some(3) => Interpolator::BSpline,
                        _ => bail!("{here}: interpolator {n} is not supported (1, 2, 3)"),
                    },
                    _ => bail!("{here}: must be a name such as sitkBSpline"),
                }
            }
            "padDistance" => s.pad_distance = int_in(val, &here, 0, i64::MAX)? as usize,
            "distances" => {
                let d = ints(val, &here)?;
                if d.is_empty() || d.iter().any(|x| *x <= 0) {
                    bail!("{here}: distances must be a non-empty list of positive integers");
                }
                s.distances = d.into_iter().map(|x| x as usize).collect();
            }
            "force2D" => s.force2d = boolean(val, &here)?,
            "force2Ddimension" => s.force2d_dimension = int_in(val, &here, 0, 2)? as usize,
            "resegmentRange" => {
                s.resegment_range = if null { None } else { Some(floats(val, &here)?) };
                if let Some(r) = &s.resegment_range {
                    if r.is_empty() || r.len() > 2 {
                        bail!("{here}: one or two values");
                    }
                }
            }
            "resegmentMode" => {
                s.resegment_mode = match val.as_str() {
                    Some("absolute") => ResegmentMode::Absolute,
                    Some("relative") => ResegmentMode::Relative,
                    Some("sigma") => ResegmentMode::Sigma,
                    _ => bail!("{here}: absolute, relative or sigma"),
                }
            }
            "resegmentShape" => s.resegment_shape = boolean(val, &here)?,
            "preCrop" => s.pre_crop = boolean(val, &here)?,
            "sigma" => s.sigma = floats(val, &here)?,
            "start_level" => s.start_level = int_in(val, &here, 0, i64::MAX)? as usize,
            "level" => s.level = int_in(val, &here, 1, i64::MAX)? as usize,
            "wavelet" => {
                s.wavelet = val.as_str().ok_or_else(|| anyhow!("{here}: a wavelet name"))?.to_string()
            }
            "gradientUseSpacing" | "lbp2DRadius" | "lbp2DSamples" | "lbp2DMethod" | "lbp3DLevels"
            | "lbp3DIcosphereRadius" | "lbp3DIcosphereSubdivision" => {
                // Settings of image types rtnode refuses anyway; accepted
                // here so that a file naming them fails on the image type.
            }
            "voxelArrayShift" => s.voxel_array_shift = int_in(val, &here, i64::MIN, i64::MAX)? as f64,
            "symmetricalGLCM" => s.symmetrical_glcm = boolean(val, &here)?,
            "weightingNorm" => {
                s.weighting_norm = match val {
                    Value::Null => None,
                    Value::String(t) => Some(match t.as_str() {
                        "manhattan" => WeightingNorm::Manhattan,
                        "euclidean" => WeightingNorm::Euclidean,
                        "infinity" => WeightingNorm::Infinity,
                        "no_weighting" => WeightingNorm::NoWeighting,
                        other => bail!("{here}: {other:?} is not manhattan, euclidean, infinity or no_weighting"),
                    }),
                    _ => bail!("{here}: a norm name"),
                }
            }
            "gldm_a" => s.gldm_a = int_in(val, &here, 0, i64::MAX)? as f64,
            "standard" => {
                s.standard = match val.as_str() {
                    Some("pyradiomics") => Standard::Pyradiomics,
                    Some("ibsi") => Standard::Ibsi,
                    _ => bail!("{here}: pyradiomics or ibsi"),
                }
            }
            "aggregation" => {
                s.aggregation = match val.as_str() {
                    Some("averaged") => Aggregation::Averaged,
                    Some("merged") => Aggregation::Merged,
                    _ => bail!("{here}: averaged or merged"),
                }
            }
            _ => bail!("{here}: unknown setting (not in pyradiomics' parameter schema)"),
        }
    }
    if s.geometry_tolerance.is_some() {
        // Image and mask come from one grid in rtnode (the mask is
        // rasterised on the CT); for --image/--mask the grids must match exactly.
    }
    Ok(())
}

fn boolean(v: &Value, at: &str) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| anyhow!("{at}: must be true or false"))
}

fn int_in(v: &Value, at: &str, lo: i64, hi: i64) -> Result<i64> {
    let n = v
        .as_i64()
        .ok_or_else(|| anyhow!("{at}: must be an integer"))?;
    if n < lo || n > hi {
        bail!("{at}: {n} is out of range");
    }
    Ok(n)
}

fn pos(v: &Value, at: &str) -> Result<f64> {
    let x = v
        .as_f64()
        .ok_or_else(|| anyhow!("{at}: must be a number"))?;
    if x.is_nan() || x <= 0.0 || !x.is_finite() {
        bail!("{at}: must be greater than 0");
    }
    Ok(x)
}

fn floats(v: &Value, at: &str) -> Result<Vec<f64>> {
    v.as_sequence()
        .ok_or_else(|| anyhow!("{at}: must be a list of numbers"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| anyhow!("{at}: must be a list of numbers"))
        })
        .collect()
}

fn ints(v: &Value, at: &str) -> Result<Vec<i64>> {
    v.as_sequence()
        .ok_or_else(|| anyhow!("{at}: must be a list of integers"))?
        .iter()
        .map(|x| {
            x.as_i64()
                .ok_or_else(|| anyhow!("{at}: must be a list of integers"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_pyradiomics_defaults() {
        let p = Params::from_yaml("").unwrap();
        assert_eq!(p, Params::default());
        assert_eq!(p.settings.bin_width, 25.0);
        assert_eq!(p.settings.minimum_roi_dimensions, 2);
        assert_eq!(p.settings.pad_distance, 5);
        assert!(p.settings.symmetrical_glcm);
        assert_eq!(p.classes.len(), CLASSES.len());
    }

    #[test]
    fn settings_and_class_lists_are_read() {
        let p = Params::from_yaml(
            "setting:\n  binCount: 32\n  force2D: true\n  weightingNorm: euclidean\n  resegmentRange: [-100, 400]\n  standard: ibsi\n\
             imageType:\n  Original: {binWidth: 10}\n\
             featureClass:\n  glcm: [Contrast, Idmn]\n  shape:\n",
        )
        .unwrap();
        assert_eq!(p.settings.bin_count, Some(32));
        assert!(p.settings.force2d);
        assert_eq!(p.settings.weighting_norm, Some(WeightingNorm::Euclidean));
        assert_eq!(p.settings.standard, Standard::Ibsi);
        assert_eq!(p.image_types[0].settings.bin_width, 10.0);
        assert_eq!(
            p.classes["glcm"],
            Some(vec!["Contrast".into(), "Idmn".into()])
        );
        assert_eq!(p.classes["shape"], None);
        assert!(!p.classes.contains_key("glrlm"));
        // rtnode's IBSI addition is opt-in, and its features are named.
        let p = Params::from_yaml("featureClass:\n  gldzm:\n  shape: [Compactness1]\n").unwrap();
        assert!(p.enabled("gldzm") && !Params::default().enabled("gldzm"));
        assert!(p.wants("gldzm", "SmallDistanceEmphasis"));
        assert!(p.wants("shape", "Compactness1") && !p.wants("shape", "MeshVolume"));
        assert!(!Params::default().wants("firstorder", "StandardDeviation"));
        assert!(Params::default().wants("firstorder", "Mean"));
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_that_names_it() {
        for (yaml, named) in [
            ("setting: {binWith: 25}", "setting.binWith"),
            ("setting: {binWidth: -1}", "setting.binWidth"),
            ("setting: {resegmentMode: median}", "setting.resegmentMode"),
            (
                "setting: {interpolator: sitkGaussian}",
                "setting.interpolator",
            ),
            ("imageType: {Gradient: {}}", "imageType.Gradient"),
            ("featureClass: {glcm: [Contrastt]}", "Contrastt"),
            ("featureClass: {lbp: }", "featureClass.lbp"),
            ("voxelSetting: {kernelRadius: 2}", "voxelSetting"),
            ("settings: {}", "settings"),
        ] {
            let e = format!("{:#}", Params::from_yaml(yaml).unwrap_err());
            assert!(e.contains(named), "{yaml}: {e}");
        }
    }

    #[test]
    fn the_hash_follows_the_settings() {
        let a = Params::from_yaml("setting: {binWidth: 25}").unwrap();
        let b = Params::from_yaml("setting: {binWidth: 10}").unwrap();
        assert_eq!(a.hash(), Params::default().hash());
        assert_ne!(a.hash(), b.hash());
    }
}
