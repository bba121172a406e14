//! The `segmentation:` section of the node configuration: the built-in
//! body contour's settings and the registry of TorchScript models. The
//! engine's own settings, so they live here; the config only aggregates
//! them and maps the keys [`SegmentationSection::check`] names to lines.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::model::{model_segmenter, ModelSpec};
use super::{BodyContour, BodyOptions, SegmentationOptions, Segmenter};

/// The `segmentation:` section of `conf/rtnode.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentationSection {
    /// Root of the UIDs of the structure sets made here.
    pub uid_root: String,
    /// Largest distance (mm) a simplified contour may stray from the mask.
    pub tolerance_mm: f64,
    /// The built-in body contour, which runs with or without models.
    pub body: BodyOptions,
    /// TorchScript models (feature `torch`); none by default.
    pub models: Vec<ModelSpec>,
    /// Replaced by `pipeline.stages.segmentation.workers` (one setting per
    /// value): read only so that [`SegmentationSection::check`] can name the
    /// replacement instead of serde's bare "unknown field".
    #[serde(skip_serializing)]
    pub workers: Option<u32>,
}

// The config as a whole is compared with `Eq`; every float here is checked
// finite by `check`, so equality is an equivalence on accepted configs.
impl Eq for SegmentationSection {}

impl Default for SegmentationSection {
    fn default() -> Self {
        let o = SegmentationOptions::default();
        SegmentationSection {
            uid_root: o.uid_root,
            tolerance_mm: o.tolerance_mm,
            body: BodyOptions::default(),
            models: Vec::new(),
            workers: None,
        }
    }
}

impl SegmentationSection {
    /// The stage options these settings give.
    pub fn options(&self) -> SegmentationOptions {
        SegmentationOptions {
            uid_root: self.uid_root.clone(),
            tolerance_mm: self.tolerance_mm,
        }
    }

    /// Every problem, as (key under `segmentation:`, message), for
    /// the config's validation. `base_dir` is the config file's directory.
    pub fn check(&self, base_dir: &Path) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !crate::dicom::uids::is_valid_uid(&self.uid_root) || self.uid_root.len() > 24 {
            out.push((
                "uid_root",
                format!(
                    "{:?} is not a UID root of at most 24 characters",
                    self.uid_root
                ),
            ));
        }
        if !(self.tolerance_mm.is_finite() && self.tolerance_mm > 0.0 && self.tolerance_mm <= 5.0) {
            out.push((
                "tolerance_mm",
                format!("{} must be above 0 and at most 5 mm", self.tolerance_mm),
            ));
        }
        if let Some(n) = self.workers {
            out.push((
                "workers",
                format!(
                    "replaced by pipeline.stages.segmentation.workers; write `workers: {n}` there"
                ),
            ));
        }
        let b = &self.body;
        let separation_ok = b.separation_mm.is_finite() && b.separation_mm >= 0.0;
        if !b.threshold_hu.is_finite() || !separation_ok {
            out.push((
                "body",
                "threshold_hu must be a number and separation_mm at least 0".into(),
            ));
        }
        // ROI names must differ across everything one structure set holds.
        let mut names: Vec<String> = BodyContour::default()
            .labels()
            .into_iter()
            .map(|l| l.name)
            .collect();
        let mut model_names = Vec::new();
        for (i, m) in self.models.iter().enumerate() {
            let tag = format!("models[{i}] ({:?})", m.name);
            for p in m.problems(base_dir) {
                out.push(("models", format!("{tag}: {p}")));
            }
            if model_names.contains(&m.name) {
                out.push(("models", format!("{tag}: the name is used twice")));
            }
            model_names.push(m.name.clone());
            for l in &m.labels {
                if names.iter().any(|n| n.eq_ignore_ascii_case(&l.name)) {
                    out.push((
                        "models",
                        format!("{tag}: ROI name {:?} is used by another label", l.name),
                    ));
                }
                names.push(l.name.clone());
            }
        }
        out
    }

    /// What runs on a course: the body contour, then each model in the
    /// order configured. `base_dir` is the config file's directory.
    pub fn segmenters(&self, base_dir: &Path) -> Result<Vec<Arc<dyn Segmenter>>> {
        let mut out: Vec<Arc<dyn Segmenter>> = vec![Arc::new(BodyContour {
            options: self.body.clone(),
        })];
        for m in &self.models {
            out.push(model_segmenter(m, base_dir)?);
        }
        Ok(out)
    }
}
