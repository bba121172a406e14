//! Segmentation models: the `segmentation:` section of the config (the
//! built-in body contour's settings and a registry of TorchScript models)
//! and, with the cargo feature `torch`, the runner that makes each model a
//! [`Segmenter`].
//!
//! A model runs as nnU-Net and TotalSegmentator run theirs ([`grid`]): the
//! CT is put in the model's orientation and resampled to its spacing, its
//! intensities clipped and normalised, cut into overlapping patches run in
//! batches (half precision on CUDA), the patch outputs blended with a
//! Gaussian weight, and the class scores resampled back to the CT grid
//! where the argmax is taken. Channel `c` of the output is label `c`.
//!
//! Without the `torch` feature a configured model is an error, never a
//! silent fallback to the body contour: [`SegmentationSection::check`]
//! reports it and [`SegmentationSection::segmenters`] refuses it.

pub mod grid;
pub mod tiles;
#[cfg(feature = "torch")]
pub mod torch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{RoiLabel, Segmenter};

/// Whether this build can run models.
pub const TORCH_BUILD: bool = cfg!(feature = "torch");

pub use super::settings::SegmentationSection;

/// One model of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Shown in the structure set's series description and `status`.
    pub name: String,
    /// Shown with the name; defaults to the first 12 hex digits of the
    /// file's BLAKE3 hash, so that new weights never pass for old ones.
    #[serde(default)]
    pub version: String,
    /// TorchScript file (`torch.jit.save`); relative to the config file.
    pub file: PathBuf,
    /// Voxel size (mm) the model was trained at, in the order of the
    /// tensor's axes D, H, W (nnU-Net's plans.json `spacing`).
    pub spacing_mm: [f64; 3],
    /// Patient directions in which the model input's W, H and D axes
    /// increase: `LPS` (DICOM's, the default) or `RAS` (NIfTI canonical, as
    /// TotalSegmentator reorients), or any other such code.
    #[serde(default = "default_orientation")]
    pub orientation: String,
    /// How CT numbers are normalised before the model sees them.
    #[serde(default)]
    pub intensity: Intensity,
    /// Patch size D, H, W (nnU-Net's `patch_size`); part of the trained
    /// model, never changed at run time.
    pub patch_size: [usize; 3],
    /// Overlap of neighbouring patches, 0 to below 1 (nnU-Net: 0.5).
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// Patches per forward pass.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// `auto` (the first CUDA device when there is one), `cpu`, `cuda` or
    /// `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Half precision on CUDA (never on the CPU, where it is slower).
    #[serde(default = "default_true")]
    pub half_precision: bool,
    /// Output channel → ROI. Channel 0 is background; channels not listed
    /// are background too.
    pub labels: Vec<LabelSpec>,
}

/// Intensity preprocessing (nnU-Net's CTNormalization): clip, then
/// `(HU - mean) / std` with the training set's foreground statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Intensity {
    /// `[low, high]` HU (nnU-Net's percentile_00_5, percentile_99_5).
    pub clip_hu: Option<[f32; 2]>,
    /// Mean HU subtracted after clipping (0: none).
    pub mean: f32,
    /// Standard deviation, HU, divided by after subtracting `mean` (1: none).
    pub std: f32,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity {
            clip_hu: None,
            mean: 0.0,
            std: 1.0,
        }
    }
}

/// One label of a model's label map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// Output channel, and the label's value in the model's label file.
    pub value: u16,
    /// ROI name, AAPM TG-263 (at most 16 characters).
    pub name: String,
    /// Display colour, RGB.
    pub colour: [u8; 3],
    /// RT ROI Interpreted Type.
    #[serde(default = "default_interpreted_type")]
    pub interpreted_type: String,
}

fn default_orientation() -> String {
    "LPS".into()
}
fn default_overlap() -> f64 {
    0.5
}
fn default_batch() -> usize {
    2
}
fn default_device() -> String {
    "auto".into()
}
fn default_true() -> bool {
    true
}
fn default_interpreted_type() -> String {
    "ORGAN".into()
}

/// Where a model runs, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA device when libtorch sees one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device number N (`cuda` is 0).
    Cuda(usize),
}

impl DeviceChoice {
    /// Parses the `device` setting: `auto`, `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<DeviceChoice> {
        Ok(match s.trim() {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda(0),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => DeviceChoice::Cuda(n),
                _ => bail!("device {other:?} is none of auto, cpu, cuda, cuda:N"),
            },
        })
    }
}

impl LabelSpec {
    /// The ROI this label becomes.
    pub fn roi(&self) -> RoiLabel {
        RoiLabel {
            value: self.value,
            name: self.name.clone(),
            colour: self.colour,
            interpreted_type: self.interpreted_type.clone(),
        }
    }
}

impl ModelSpec {
    /// The model file, a relative path taken from the config's directory.
    pub fn resolved_file(&self, base_dir: &Path) -> PathBuf {
        if self.file.is_absolute() {
            self.file.clone()
        } else {
            base_dir.join(&self.file)
        }
    }

    /// The intensity preprocessing in the form the grid code applies it.
    pub fn normalise(&self) -> grid::Normalise {
        grid::Normalise {
            clip: self.intensity.clip_hu,
            mean: self.intensity.mean,
            std: self.intensity.std,
        }
    }

    /// Every problem with this entry, as sentences.
    pub fn problems(&self, base_dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut bad = |m: String| out.push(m);
        if self.name.trim().is_empty() || self.name.chars().count() > 48 {
            bad("name must be 1 to 48 characters".into());
        }
        let file = self.resolved_file(base_dir);
        if self.file.as_os_str().is_empty() {
            bad("file must not be empty".into());
        } else if !file.is_file() {
            bad(format!("file {} does not exist", file.display()));
        }
        if !self.spacing_mm.iter().all(|s| s.is_finite() && *s > 0.0) {
            bad(format!("spacing_mm {:?} must be positive", self.spacing_mm));
        }
        if let Err(e) = grid::parse_orientation(&self.orientation) {
            bad(e.to_string());
        }
        let i = &self.intensity;
        if !(i.mean.is_finite() && i.std.is_finite() && i.std > 0.0) {
            bad("intensity: mean must be a number and std positive".into());
        }
        if let Some([lo, hi]) = i.clip_hu {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                bad(format!("intensity.clip_hu [{lo}, {hi}] must be low < high"));
            }
        }
        if self.patch_size.contains(&0) || self.patch_size.iter().product::<usize>() > 1 << 26 {
            bad(format!(
                "patch_size {:?} must be positive (and below 2^26 voxels)",
                self.patch_size
            ));
        }
        if !(self.overlap.is_finite() && (0.0..0.95).contains(&self.overlap)) {
            bad(format!("overlap {} must be within 0 to 0.95", self.overlap));
        }
        if self.batch_size == 0 || self.batch_size > 256 {
            bad(format!("batch_size {} must be 1 to 256", self.batch_size));
        }
        if let Err(e) = DeviceChoice::parse(&self.device) {
            bad(e.to_string());
        }
        if self.labels.is_empty() {
            bad("labels: the label map is empty".into());
        }
        let mut values = std::collections::BTreeSet::new();
        for l in &self.labels {
            if let Err(e) = l.roi().validate() {
                bad(format!("label {}: {e}", l.value));
            }
            if !values.insert(l.value) {
                bad(format!("label {} is listed twice", l.value));
            }
        }
        if !TORCH_BUILD {
            bad(WITHOUT_TORCH.into());
        }
        out
    }
}

const WITHOUT_TORCH: &str = "this rtnode was built without the torch feature, so it cannot run models (build with `--features torch`, or remove the model)";

/// One configured model as a segmenter.
pub fn model_segmenter(spec: &ModelSpec, base_dir: &Path) -> Result<Arc<dyn Segmenter>> {
    #[cfg(feature = "torch")]
    {
        Ok(Arc::new(torch::TorchSegmenter::new(spec, base_dir)?))
    }
    #[cfg(not(feature = "torch"))]
    {
        let _ = base_dir;
        bail!("model {:?}: {WITHOUT_TORCH}", spec.name)
    }
}

/// How one check of the model runtime or of a model came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    /// Works.
    Ok,
    /// Works, with something the operator should know.
    Warn,
    /// Does not work: the node would refuse to start.
    Fail,
}

/// One line of what [`model_report`] found (`rtnode doctor` prints it).
#[derive(Debug, Clone)]
pub struct ModelCheck {
    /// How it came out.
    pub level: CheckLevel,
    /// What was checked.
    pub check: String,
    /// What was found.
    pub detail: String,
}

fn finding(level: CheckLevel, check: &str, detail: impl Into<String>) -> ModelCheck {
    ModelCheck {
        level,
        check: check.into(),
        detail: detail.into(),
    }
}

/// What `rtnode doctor` reports about models: the libtorch this build
/// links and where, the CUDA devices it sees, and whether each configured
/// model loads and answers a patch with its label map's channels.
pub fn model_report(section: &SegmentationSection, base_dir: &Path) -> Vec<ModelCheck> {
    let mut out = Vec::new();
    #[cfg(feature = "torch")]
    {
        out.extend(torch::runtime_findings(section));
        for m in &section.models {
            let check = format!("model {}", m.name);
            let probe = torch::TorchSegmenter::new(m, base_dir).and_then(|s| s.probe());
            match probe {
                Ok(detail) => out.push(finding(CheckLevel::Ok, &check, detail)),
                Err(e) => out.push(finding(CheckLevel::Fail, &check, format!("{e:#}"))),
            }
        }
    }
    #[cfg(not(feature = "torch"))]
    {
        let _ = base_dir;
        if section.models.is_empty() {
            out.push(finding(
                CheckLevel::Ok,
                "segmentation",
                "built-in body contour; this build has no torch feature and no model is configured",
            ));
        }
        for m in &section.models {
            out.push(finding(
                CheckLevel::Fail,
                &format!("model {}", m.name),
                WITHOUT_TORCH,
            ));
        }
    }
    out
}

/// BLAKE3 of a file, hex; part of a model's identity.
pub fn file_hash(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
tolerance_mm: 0.5
models:
  - name: tiny lung shift
    file: tests/models/tiny_lung_shift.pt
    spacing_mm: [2.5, 3.90625, 3.90625]
    patch_size: [16, 64, 64]
    intensity: {clip_hu: [-1000, 1000], mean: -100, std: 500}
    device: cpu
    labels:
      - {value: 1, name: Lung_Shifted, colour: [0, 160, 255]}
"#;

    #[test]
    fn the_section_parses_with_defaults() {
        let s: SegmentationSection = serde_yaml_ng::from_str(YAML).unwrap();
        let m = &s.models[0];
        assert_eq!(m.orientation, "LPS");
        assert_eq!(m.overlap, 0.5);
        assert_eq!(m.batch_size, 2);
        assert!(m.half_precision);
        assert_eq!(m.labels[0].interpreted_type, "ORGAN");
        assert_eq!(s.uid_root, "2.25");
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        let problems = s.check(base);
        if TORCH_BUILD {
            assert!(problems.is_empty(), "{problems:?}");
        } else {
            // Never a silent fallback: the model is refused, clearly.
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].1.contains("without the torch feature"));
            let err = s.segmenters(base).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("without the torch feature")),
                "{err:?}"
            );
            let report = model_report(&s, base);
            assert_eq!(report[0].level, CheckLevel::Fail);
        }
        // No model: the body contour alone, in any build.
        let plain = SegmentationSection::default();
        assert!(plain.check(base).is_empty());
        assert_eq!(plain.segmenters(base).unwrap().len(), 1);
    }

    #[test]
    fn mistakes_are_reported_each() {
        let mut s: SegmentationSection = serde_yaml_ng::from_str(YAML).unwrap();
        let m = &mut s.models[0];
        m.file = "missing.pt".into();
        m.spacing_mm[1] = 0.0;
        m.orientation = "LPQ".into();
        m.overlap = 1.0;
        m.device = "gpu".into();
        m.labels.push(LabelSpec {
            value: 1,
            name: "External".into(),
            colour: [1, 2, 3],
            interpreted_type: "ORGAN".into(),
        });
        let problems = s.check(Path::new(env!("CARGO_MANIFEST_DIR")));
        let text = format!("{problems:?}");
        for needle in [
            "does not exist",
            "spacing_mm",
            "LPQ",
            "overlap",
            "gpu",
            "listed twice",
            "\\\"External\\\" is used",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        assert!(problems.iter().all(|p| p.0 == "models"));
        assert!(
            serde_yaml_ng::from_str::<SegmentationSection>("models: [{name: x, fle: y}]").is_err()
        );
    }

    #[test]
    fn devices_parse() {
        assert_eq!(DeviceChoice::parse("auto").unwrap(), DeviceChoice::Auto);
        assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:1").unwrap(),
            DeviceChoice::Cuda(1)
        );
        assert!(DeviceChoice::parse("cuda:x").is_err());
    }
}
