//! The segmentation engine: contours for a planning CT, as an RT Structure
//! Set. Each [`Segmenter`] turns a volume into a label volume (the built-in
//! [`BodyContour`] needs no model; every configured TorchScript model is
//! another), the labels are traced slice by slice into closed planar
//! contours ([`contour`], [`contour_labels`]), and [`rtstruct`] writes one
//! structure set with the ROIs of all of them, referencing every image of
//! the series. The course stage that runs it is `stages::segmentation`.

pub mod body;
pub mod contour;
pub mod model;
pub mod morph;
pub mod rtstruct;
pub mod settings;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{ensure, Result};
use ndarray::Array3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::volume::{Geometry, Volume};
pub use body::{BodyContour, BodyOptions};
use contour::Loop;
pub use model::{model_report, SegmentationSection};
use rtstruct::PlanarContour;

/// One label of a segmenter's output and the ROI it becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoiLabel {
    /// Voxel value in the label volume (0 is background).
    pub value: u16,
    /// ROI name; AAPM TG-263 names where the label map gives them.
    pub name: String,
    /// Display colour, RGB.
    pub colour: [u8; 3],
    /// RT ROI Interpreted Type (EXTERNAL, ORGAN, …).
    pub interpreted_type: String,
}

impl RoiLabel {
    /// TG-263 keeps names to 16 characters so that every planning system
    /// shows them whole; a longer name is a label-map error, not something
    /// to truncate silently.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.value != 0, "label 0 is background");
        ensure!(
            !self.name.is_empty() && self.name.chars().count() <= 16,
            "ROI name {:?} must be 1 to 16 characters (TG-263)",
            self.name
        );
        ensure!(
            !self.name.chars().any(|c| c == '\\' || c.is_control()),
            "ROI name {:?} has a backslash or control character",
            self.name
        );
        ensure!(
            !self.interpreted_type.is_empty() && self.interpreted_type.len() <= 16,
            "RT ROI Interpreted Type {:?} is not a CS value",
            self.interpreted_type
        );
        Ok(())
    }
}

/// Something that labels a CT volume: the built-in body contour, or a
/// model runner.
pub trait Segmenter: Send + Sync {
    /// The model's name, as the series description shows it.
    fn name(&self) -> &str;
    /// Its version (rtnode's for the body contour, the model's own for a
    /// model), recorded in the structure set and the stage record.
    fn version(&self) -> String;
    /// Everything that changes its output (name, version, weights hash,
    /// settings): part of the stage fingerprint, so that a change re-runs
    /// the stage rather than reusing an older result.
    fn identity(&self) -> String;
    /// Every label it can output and the ROI each becomes; a label absent
    /// from a run's output gives no ROI.
    fn labels(&self) -> Vec<RoiLabel>;
    /// How it works, in a sentence: the structure set's description.
    fn description(&self) -> String;
    /// A label volume on the CT grid, `[slice, row, column]`. Runs inside
    /// the stage's thread pool; reports its progress as a fraction.
    fn segment(&self, volume: &Volume, progress: &(dyn Fn(f64) + Sync)) -> Result<Array3<u16>>;
    /// As [`Segmenter::segment`], with what the run should add to the
    /// stage record (a model's device, precision and out-of-memory
    /// fallbacks); the default adds nothing.
    fn segment_noted(
        &self,
        volume: &Volume,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<(Array3<u16>, serde_json::Value)> {
        Ok((self.segment(volume, progress)?, serde_json::Value::Null))
    }
}

/// Settings of the stage; part of its fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentationOptions {
    /// Root of the UIDs of the structure sets made here.
    pub uid_root: String,
    /// Largest distance (mm) a simplified contour may stray from the
    /// traced mask boundary.
    pub tolerance_mm: f64,
}

impl Default for SegmentationOptions {
    fn default() -> Self {
        SegmentationOptions {
            uid_root: "2.25".into(),
            tolerance_mm: 0.5,
        }
    }
}

/// The label file of a segmenter: `labels-<name>.nrrd`, the name reduced
/// to lower-case letters, digits and dashes so that it is a safe file name.
pub fn labels_file_name(segmenter_name: &str) -> String {
    let mut slug = String::new();
    for c in segmenter_name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "model" } else { slug };
    format!("labels-{}.nrrd", &slug[..slug.len().min(48)])
}

/// The traced contours of one label, slice by slice.
pub struct LabelContours {
    /// The label and its ROI.
    pub label: RoiLabel,
    /// How many voxels of the volume carry it.
    pub voxels: usize,
    /// (slice index, loops in `[row, column]` pixel coordinates).
    pub planes: Vec<(usize, Vec<Loop>)>,
}

/// Traces every label of `labels` on every slice, simplified within
/// `tolerance_mm`. Each slice is scanned once for the bounding box of
/// every label, and a label is traced only inside its box, so that a
/// hundred-organ label map costs about as much as one.
pub fn contour_labels(
    labels: &Array3<u16>,
    geometry: &Geometry,
    rois: &[RoiLabel],
    tolerance_mm: f64,
    progress: &(dyn Fn(f64) + Sync),
) -> Vec<LabelContours> {
    let n = labels.dim().0;
    let spacing = [geometry.spacing[1], geometry.spacing[0]];
    let max_value = rois.iter().map(|r| r.value).max().unwrap_or(0) as usize;
    let done = AtomicU64::new(0);
    // Per slice: per ROI (index into `rois`), its voxel count and loops.
    let per_slice: Vec<Vec<(usize, usize, Vec<Loop>)>> = (0..n)
        .into_par_iter()
        .map(|k| {
            let plane = labels.index_axis(ndarray::Axis(0), k);
            // [rmin, rmax, cmin, cmax, count] per label value.
            let mut boxes = vec![[usize::MAX, 0, usize::MAX, 0, 0]; max_value + 1];
            for ((r, c), &v) in plane.indexed_iter() {
                let v = v as usize;
                if v == 0 || v > max_value {
                    continue;
                }
                let b = &mut boxes[v];
                b[0] = b[0].min(r);
                b[1] = b[1].max(r);
                b[2] = b[2].min(c);
                b[3] = b[3].max(c);
                b[4] += 1;
            }
            let mut out = Vec::new();
            for (i, roi) in rois.iter().enumerate() {
                let b = boxes[roi.value as usize];
                if b[4] == 0 {
                    continue;
                }
                let (h, w) = (b[1] - b[0] + 1, b[3] - b[2] + 1);
                let loops = contour::trace(h, w, |r, c| plane[[b[0] + r, b[2] + c]] == roi.value)
                    .into_iter()
                    .map(|l| {
                        let l: Loop = l
                            .into_iter()
                            .map(|p| [p[0] + b[0] as f64, p[1] + b[2] as f64])
                            .collect();
                        contour::simplify(&l, spacing, tolerance_mm)
                    })
                    // A closed planar contour needs three points; the tracer
                    // never makes fewer, and this keeps the writer's rule
                    // from failing a whole run if it ever did.
                    .filter(|l| l.len() >= 3)
                    .collect();
                out.push((i, b[4], loops));
            }
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(d as f64 / n.max(1) as f64);
            out
        })
        .collect();
    let mut result: Vec<LabelContours> = rois
        .iter()
        .map(|r| LabelContours {
            label: r.clone(),
            voxels: 0,
            planes: Vec::new(),
        })
        .collect();
    for (k, slice) in per_slice.into_iter().enumerate() {
        for (i, count, loops) in slice {
            result[i].voxels += count;
            result[i].planes.push((k, loops));
        }
    }
    result
}

/// Maps traced loops to patient coordinates on the images of the series.
pub fn to_patient(lc: &LabelContours, geometry: &Geometry) -> Vec<PlanarContour> {
    let mut out = Vec::new();
    for (k, loops) in &lc.planes {
        for l in loops {
            out.push(PlanarContour {
                image: *k,
                points: l
                    .iter()
                    .map(|p| geometry.position(*k as f64, p[0], p[1]))
                    .collect(),
            });
        }
    }
    out
}

/// Writes a label volume as NRRD, signed 16-bit (labels are small, and
/// `Volume::read_nrrd` and every NRRD reader take "short").
pub fn write_labels_nrrd(path: &Path, geometry: &Geometry, labels: &Array3<u16>) -> Result<()> {
    ensure!(
        labels.iter().all(|&v| v <= i16::MAX as u16),
        "label values above {} do not fit the label file",
        i16::MAX
    );
    crate::volume::write_raw_nrrd(
        path,
        geometry,
        "labels written by rtnode",
        "short",
        labels.iter().map(|&v| (v as i16).to_le_bytes()),
    )
}
