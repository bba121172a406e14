//! The built-in body contour: the patient's outline (TG-263 "External")
//! from the CT alone, so that every course gets one with no model
//! installed.
//!
//! The rule, in order:
//! 1. foreground = voxels above `threshold_hu` (−350 HU by default: above
//!    lung and the foam of couch tops and vacuum cushions, below every soft
//!    tissue);
//! 2. each slice's foreground is eroded by a disc of `separation_mm`, which
//!    cuts every connection thinner than twice that radius: the thin
//!    carbon-fibre shell of a couch top pressed against the back, a
//!    thermoplastic mask on the face, a cable or a sheet;
//! 3. the largest 6-connected 3-D component of what remains is the body's
//!    core; couch, immobilisation and anything not attached to the patient
//!    fall away with the other components (a couch with an air gap, as in
//!    the synthetic phantom, is already a separate component);
//! 4. the core is grown back by the same disc plus one pixel, but only
//!    into the original foreground, which restores the skin surface
//!    exactly wherever the body is locally thicker than the disc;
//! 5. holes are filled slice by slice (lungs, bowel gas, the trachea).
//!
//! What this loses, by design: parts of the body thinner than twice
//! `separation_mm` and farther than that from the core (ear tips, fingers,
//! a nose tip on a coarse grid), and limbs that are disconnected from the
//! trunk over the whole scanned length (arms beside the torso of a short
//! scan). What it may keep: where a couch shell or a mask lies on the skin,
//! shell and skin together are thicker than the disc, so under the contact
//! the shell (its thickness plus one pixel at most) stays in the body; a
//! couch whose solid part is thicker than twice the disc and touches the
//! body broadly is not separated at all (then raise `separation_mm`).

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{ensure, Result};
use ndarray::Array3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::morph::{distance_sq_2d, fill_holes_2d, keep_largest_component, EdtScratch};
use super::{RoiLabel, Segmenter};
use crate::volume::Volume;

/// Settings of the body contour; part of the stage fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BodyOptions {
    /// Voxels above this are candidates for the body.
    pub threshold_hu: f32,
    /// Radius (mm) of the erosion that separates the body from what
    /// touches it; 0 turns separation off.
    pub separation_mm: f64,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            threshold_hu: -350.0,
            separation_mm: 5.0,
        }
    }
}

/// The label the body gets in its label file (`labels-rtnode-body-contour.nrrd`).
pub const BODY_LABEL: u16 = 1;

/// The built-in [`Segmenter`] that outlines the patient ("External"), by
/// the rule in this module's description.
#[derive(Debug, Clone, Default)]
pub struct BodyContour {
    /// Its threshold and separation.
    pub options: BodyOptions,
}

impl Segmenter for BodyContour {
    fn name(&self) -> &str {
        "rtnode body contour"
    }

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    fn identity(&self) -> String {
        format!(
            "{} {} threshold_hu={} separation_mm={}",
            self.name(),
            self.version(),
            self.options.threshold_hu,
            self.options.separation_mm
        )
    }

    fn labels(&self) -> Vec<RoiLabel> {
        vec![RoiLabel {
            value: BODY_LABEL,
            // TG-263's name for the patient outline; the interpreted type
            // is what planning systems key on.
            name: "External".into(),
            colour: [0, 255, 0],
            interpreted_type: "EXTERNAL".into(),
        }]
    }

    fn description(&self) -> String {
        format!(
            "body outline: HU > {}, separated by a {} mm in-plane erosion, largest 3-D component, regrown, holes filled per slice",
            self.options.threshold_hu, self.options.separation_mm
        )
    }

    fn segment(&self, volume: &Volume, progress: &(dyn Fn(f64) + Sync)) -> Result<Array3<u16>> {
        let mask = body_mask(volume, &self.options, progress)?;
        let (n, rows, cols) = volume.data.dim();
        let labels: Vec<u16> = mask
            .iter()
            .map(|&b| if b { BODY_LABEL } else { 0 })
            .collect();
        Ok(Array3::from_shape_vec((n, rows, cols), labels)?)
    }
}

/// The body mask, `[slice, row, column]` flattened in standard order.
pub fn body_mask(
    volume: &Volume,
    opts: &BodyOptions,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Vec<bool>> {
    ensure!(
        opts.separation_mm.is_finite() && opts.separation_mm >= 0.0,
        "separation_mm must be a non-negative number"
    );
    let (n, rows, cols) = volume.data.dim();
    let plane = rows * cols;
    let g = &volume.geometry;
    // Geometry spacing is (column, row, slice); the 2-D transform takes
    // (row, column).
    let spacing = [g.spacing[1], g.spacing[0]];
    let mut fg: Vec<bool> = volume.data.iter().map(|&v| v > opts.threshold_hu).collect();
    if plane == 0 || n == 0 {
        return Ok(fg);
    }
    let slices_done = AtomicU64::new(0);
    // Three per-slice passes and one 3-D pass, weighted alike.
    let tick = |pass: f64| {
        let d = slices_done.fetch_add(1, Ordering::Relaxed) + 1;
        progress((pass + d as f64 / n as f64) / 4.0);
    };

    let r2 = opts.separation_mm * opts.separation_mm;
    let mut core = fg.clone();
    if opts.separation_mm > 0.0 {
        core.par_chunks_mut(plane)
            .zip(fg.par_chunks(plane))
            .for_each_init(
                || (EdtScratch::default(), Vec::new(), Vec::new()),
                |(s, bg, d2), (out, f)| {
                    bg.clear();
                    bg.extend(f.iter().map(|&b| !b));
                    distance_sq_2d(bg, rows, cols, spacing, d2, s);
                    for ((o, &b), &d) in out.iter_mut().zip(f).zip(d2.iter()) {
                        *o = b && d > r2;
                    }
                    tick(0.0);
                },
            );
    }
    slices_done.store(0, Ordering::Relaxed);
    let mut kept = keep_largest_component(&mut core, [n, rows, cols]);
    progress(0.5);
    if kept == 0 && opts.separation_mm > 0.0 {
        // Nothing survives the erosion (a body thinner than the disc, e.g.
        // a small phantom): fall back to the plain largest component.
        core.copy_from_slice(&fg);
        kept = keep_largest_component(&mut core, [n, rows, cols]);
    } else if opts.separation_mm > 0.0 {
        // One pixel more than the erosion, so that skin pixels whose
        // nearest core pixel sits diagonally beyond the disc come back.
        let grow = opts.separation_mm + spacing[0].max(spacing[1]);
        let grow2 = grow * grow;
        fg.par_chunks_mut(plane)
            .zip(core.par_chunks(plane))
            .for_each_init(
                || (EdtScratch::default(), Vec::new()),
                |(s, d2), (f, c)| {
                    distance_sq_2d(c, rows, cols, spacing, d2, s);
                    for (b, &d) in f.iter_mut().zip(d2.iter()) {
                        *b = *b && d <= grow2;
                    }
                    tick(2.0);
                },
            );
        core = fg;
    }
    if kept == 0 {
        return Ok(core);
    }
    slices_done.store(0, Ordering::Relaxed);
    core.par_chunks_mut(plane)
        .for_each_init(Vec::new, |stack, m| {
            fill_holes_2d(m, rows, cols, stack);
            tick(3.0);
        });
    progress(1.0);
    Ok(core)
}
