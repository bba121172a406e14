//! The geometry and arithmetic around a model's forward pass, in plain
//! Rust so that it is tested without libtorch: the CT is put on the model's
//! grid (reoriented to the model's axes, resampled trilinearly to its
//! spacing, intensities clipped and normalised), cut into overlapping
//! patches, the patch outputs are blended with a Gaussian weight, and the
//! class scores are resampled back to the CT grid where the argmax is taken.
//! The conventions are nnU-Net's (v2), since that is how the TotalSegmentator
//! and nnU-Net models we run were trained and evaluated.

//!
//! Cutting the model-grid input into patches, running them (with the
//! fallbacks after running out of memory) and blending their outputs is
//! `tiles`.

use anyhow::{bail, ensure, Result};
use rayon::prelude::*;

use crate::volume::{Geometry, Volume};

/// One axis of the model grid and the CT array axis it runs along.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisMap {
    /// CT array axis: 0 slices, 1 rows, 2 columns.
    pub ct_axis: usize,
    /// Whether the model axis runs against the CT axis.
    pub flip: bool,
    /// Voxels along the CT axis.
    pub n_ct: usize,
    /// Voxels along the model axis (after resampling to the model's spacing).
    pub n_model: usize,
}

impl AxisMap {
    /// Continuous CT index of model index `m`. Voxel centres are matched
    /// with the two grids covering the same extent (the half-pixel rule of
    /// skimage's `resize`, which nnU-Net's resampling uses).
    fn ct_coordinate(&self, m: usize) -> f64 {
        let s = ((m as f64 + 0.5) * self.n_ct as f64 / self.n_model as f64 - 0.5)
            .clamp(0.0, (self.n_ct - 1) as f64);
        if self.flip {
            (self.n_ct - 1) as f64 - s
        } else {
            s
        }
    }

    /// Continuous model index of CT index `t` (the inverse of the above).
    fn model_coordinate(&self, t: usize) -> f64 {
        let t = if self.flip { self.n_ct - 1 - t } else { t };
        ((t as f64 + 0.5) * self.n_model as f64 / self.n_ct as f64 - 0.5)
            .clamp(0.0, (self.n_model - 1) as f64)
    }
}

impl AxisMap {
    /// Per CT index along this axis, the linear interpolation taps on the
    /// model axis (what the host and the device resampling both use).
    pub fn taps_to_ct(&self) -> Vec<Tap> {
        (0..self.n_ct)
            .map(|t| tap(self.model_coordinate(t), self.n_model))
            .collect()
    }
}

impl Plan {
    /// Which model axis runs along each CT array axis (slices, rows,
    /// columns).
    pub fn model_axis_of_ct(&self) -> [usize; 3] {
        let mut of_ct = [0usize; 3];
        for (a, ax) in self.axes.iter().enumerate() {
            of_ct[ax.ct_axis] = a;
        }
        of_ct
    }
}

/// Linear interpolation taps: (lower index, upper index, weight of upper).
pub type Tap = (usize, usize, f32);

fn tap(x: f64, n: usize) -> Tap {
    let i0 = (x.floor() as usize).min(n - 1);
    let i1 = (i0 + 1).min(n - 1);
    (i0, i1, (x - i0 as f64) as f32)
}

/// How the CT maps onto the model's input grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Model axes D, H, W (the tensor's last three dimensions).
    pub axes: [AxisMap; 3],
}

/// Parses an orientation code: the patient direction in which the model's
/// W, H and D axes increase (x, y, z order, as in "LPS" or "RAS").
/// Returns, per model axis D, H, W, the patient axis (0 x, 1 y, 2 z) and
/// the sign of its direction in DICOM's LPS coordinates.
pub fn parse_orientation(code: &str) -> Result<[(usize, f64); 3]> {
    let letters: Vec<char> = code.trim().chars().collect();
    ensure!(
        letters.len() == 3,
        "orientation {code:?} must be three letters such as LPS or RAS"
    );
    let mut out = [(0, 0.0); 3];
    let mut seen = [false; 3];
    for (k, c) in letters.iter().enumerate() {
        let (axis, sign) = match c.to_ascii_uppercase() {
            'L' => (0, 1.0),
            'R' => (0, -1.0),
            'P' => (1, 1.0),
            'A' => (1, -1.0),
            'S' => (2, 1.0),
            'I' => (2, -1.0),
            other => bail!("orientation {code:?}: {other:?} is none of L R P A S I"),
        };
        ensure!(
            !seen[axis],
            "orientation {code:?} names the same patient axis twice"
        );
        seen[axis] = true;
        // Letter 0 is W (model axis 2), letter 2 is D (model axis 0).
        out[2 - k] = (axis, sign);
    }
    Ok(out)
}

impl Plan {
    /// `orientation` as for [`parse_orientation`]; `spacing_zyx` is the
    /// model's voxel size along D, H, W (nnU-Net's plans order).
    pub fn new(geometry: &Geometry, orientation: &str, spacing_zyx: [f64; 3]) -> Result<Plan> {
        let wanted = parse_orientation(orientation)?;
        // For each CT geometry axis (column, row, slice): the patient axis
        // it mostly runs along and the sign. An oblique CT is taken on its
        // closest patient axes and never rotated, as nibabel's "closest
        // canonical" does for TotalSegmentator.
        let mut dominant = [(0usize, 0.0f64); 3];
        for (c, d) in geometry.directions.iter().enumerate() {
            let p = (0..3)
                .max_by(|&a, &b| d[a].abs().total_cmp(&d[b].abs()))
                .unwrap_or(0);
            dominant[c] = (p, d[p].signum());
        }
        let mut axes = Vec::with_capacity(3);
        for (a, &(p, sign)) in wanted.iter().enumerate() {
            let Some(c) = (0..3).find(|&c| dominant[c].0 == p) else {
                bail!(
                    "the CT's axes {:?} do not each run along one patient axis; it cannot be put in the model's orientation",
                    geometry.directions
                );
            };
            let n_ct = geometry.size[c];
            let sp = spacing_zyx[a];
            ensure!(
                sp.is_finite() && sp > 0.0,
                "model spacing {sp} is not positive"
            );
            ensure!(n_ct > 0, "the CT has an empty axis");
            let n_model = ((n_ct as f64 * geometry.spacing[c] / sp).round() as usize).max(1);
            axes.push(AxisMap {
                ct_axis: 2 - c,
                flip: dominant[c].1 != sign,
                n_ct,
                n_model,
            });
        }
        if (0..3).any(|c| dominant.iter().filter(|d| d.0 == c).count() != 1) {
            bail!(
                "two axes of the CT run closest to the same patient axis ({:?})",
                geometry.directions
            );
        }
        let axes: [AxisMap; 3] = [axes[0].clone(), axes[1].clone(), axes[2].clone()];
        Ok(Plan { axes })
    }

    /// D, H, W of the model grid.
    pub fn shape(&self) -> [usize; 3] {
        [
            self.axes[0].n_model,
            self.axes[1].n_model,
            self.axes[2].n_model,
        ]
    }
}

/// Intensity preprocessing: clip, then `(x - mean) / std`, as nnU-Net's
/// CTNormalization does with the training set's foreground statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalise {
    /// `[low, high]` HU to clip to first; none: no clipping.
    pub clip: Option<[f32; 2]>,
    /// Subtracted after clipping, HU.
    pub mean: f32,
    /// Divided by after subtracting, HU.
    pub std: f32,
}

impl Normalise {
    fn clip(&self, v: f32) -> f32 {
        match self.clip {
            Some([lo, hi]) => v.clamp(lo, hi),
            None => v,
        }
    }
}

/// The CT on the model grid, `[D, H, W]`, normalised. Trilinear: the
/// corners are clipped first and the affine normalisation applied to the
/// weighted sum (the weights sum to one, so this is the same as normalising
/// each corner).
pub fn to_model_grid(volume: &Volume, plan: &Plan, norm: &Normalise) -> Vec<f32> {
    let data = volume.data.as_standard_layout();
    let raw = data.as_slice().unwrap_or(&[]);
    let (nk, nj, ni) = volume.data.dim();
    let strides = [nj * ni, ni, 1];
    // Per model axis: for each model index, the two CT offsets and weight.
    let taps: Vec<Vec<(usize, usize, f32)>> = plan
        .axes
        .iter()
        .map(|ax| {
            (0..ax.n_model)
                .map(|m| {
                    let (i0, i1, w) = tap(ax.ct_coordinate(m), ax.n_ct);
                    let s = strides[ax.ct_axis];
                    (i0 * s, i1 * s, w)
                })
                .collect()
        })
        .collect();
    debug_assert_eq!(raw.len(), nk * nj * ni);
    let [d, h, w] = plan.shape();
    let mut out = vec![0f32; d * h * w];
    let inv_std = 1.0 / norm.std;
    out.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(z, plane)| {
            let (z0, z1, wz) = taps[0][z];
            for y in 0..h {
                let (y0, y1, wy) = taps[1][y];
                let row = &mut plane[y * w..(y + 1) * w];
                for (x, o) in row.iter_mut().enumerate() {
                    let (x0, x1, wx) = taps[2][x];
                    let v = |a: usize, b: usize, c: usize| norm.clip(raw[a + b + c]);
                    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
                    let c00 = lerp(v(z0, y0, x0), v(z0, y0, x1), wx);
                    let c01 = lerp(v(z0, y1, x0), v(z0, y1, x1), wx);
                    let c10 = lerp(v(z1, y0, x0), v(z1, y0, x1), wx);
                    let c11 = lerp(v(z1, y1, x0), v(z1, y1, x1), wx);
                    let s = lerp(lerp(c00, c01, wy), lerp(c10, c11, wy), wz);
                    *o = (s - norm.mean) * inv_std;
                }
            }
        });
    out
}

/// Patch origins along one axis, as nnU-Net's
/// `compute_steps_for_sliding_window`: as few patches as cover the axis
/// with steps of at most `(1 - overlap) × patch`, spread evenly from 0 to
/// `size - patch`. `size` must be at least `patch` (pad first).
pub fn steps(size: usize, patch: usize, overlap: f64) -> Vec<usize> {
    debug_assert!(size >= patch && patch > 0);
    let target = patch as f64 * (1.0 - overlap);
    let n = ((size - patch) as f64 / target).ceil() as usize + 1;
    if n <= 1 {
        return vec![0];
    }
    let actual = (size - patch) as f64 / (n - 1) as f64;
    (0..n)
        .map(|i| (actual * i as f64).round() as usize)
        .collect()
}

/// The Gaussian importance map of a patch, `[D, H, W]`: σ = patch / 8,
/// centred at patch / 2 (nnU-Net's), 1 at the centre. Voxels near a
/// patch edge, where the network sees padding instead of context, count
/// least.
pub fn gaussian(patch: [usize; 3]) -> Vec<f32> {
    let axis = |p: usize| -> Vec<f32> {
        let c = (p / 2) as f64;
        let s = p as f64 / 8.0;
        (0..p)
            .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * s * s)).exp() as f32)
            .collect()
    };
    let (gz, gy, gx) = (axis(patch[0]), axis(patch[1]), axis(patch[2]));
    let mut out = Vec::with_capacity(patch.iter().product());
    for &a in &gz {
        for &b in &gy {
            for &c in &gx {
                // Never zero, so every voxel covered has a weight.
                out.push((a * b * c).max(f32::MIN_POSITIVE));
            }
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use ndarray::Array3;

    pub(in crate::segmentation::model) fn geometry(
        size: [usize; 3],
        spacing: [f64; 3],
        dirs: [[f64; 3]; 3],
    ) -> Geometry {
        Geometry {
            origin: [0.0; 3],
            spacing,
            directions: dirs,
            size,
        }
    }

    pub(in crate::segmentation::model) const HFS: [[f64; 3]; 3] =
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

    #[test]
    fn steps_follow_nnunet() {
        // What nnU-Net v2's compute_steps_for_sliding_window returns for
        // these (checked against it).
        assert_eq!(steps(100, 40, 0.5), vec![0, 20, 40, 60]);
        assert_eq!(steps(40, 40, 0.5), vec![0]);
        assert_eq!(steps(41, 40, 0.5), vec![0, 1]);
        assert_eq!(steps(64, 16, 0.5), vec![0, 8, 16, 24, 32, 40, 48]);
    }

    #[test]
    fn orientation_codes() {
        assert_eq!(
            parse_orientation("LPS").unwrap(),
            [(2, 1.0), (1, 1.0), (0, 1.0)]
        );
        assert_eq!(
            parse_orientation("RAS").unwrap(),
            [(2, 1.0), (1, -1.0), (0, -1.0)]
        );
        assert!(parse_orientation("LLS").is_err());
        assert!(parse_orientation("LP").is_err());
        assert!(parse_orientation("LPX").is_err());
    }

    #[test]
    fn same_spacing_and_orientation_is_the_identity() {
        let g = geometry([5, 4, 3], [1.0, 2.0, 3.0], HFS);
        let plan = Plan::new(&g, "LPS", [3.0, 2.0, 1.0]).unwrap();
        assert_eq!(plan.shape(), [3, 4, 5]);
        let data = Array3::from_shape_fn((3, 4, 5), |(k, j, i)| (k * 100 + j * 10 + i) as f32);
        let v = Volume {
            geometry: g,
            data: data.clone(),
        };
        let n = Normalise {
            clip: None,
            mean: 0.0,
            std: 1.0,
        };
        let m = to_model_grid(&v, &plan, &n);
        assert_eq!(m, data.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn prone_and_feet_first_are_flipped_into_lps() {
        // Prone: columns run to patient right, rows anterior. Feet first:
        // slices run inferior.
        let dirs = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]];
        let g = geometry([4, 3, 2], [1.0, 1.0, 1.0], dirs);
        let plan = Plan::new(&g, "LPS", [1.0, 1.0, 1.0]).unwrap();
        assert!(plan.axes.iter().all(|a| a.flip));
        let data = Array3::from_shape_fn((2, 3, 4), |(k, j, i)| (k * 100 + j * 10 + i) as f32);
        let v = Volume { geometry: g, data };
        let n = Normalise {
            clip: None,
            mean: 0.0,
            std: 1.0,
        };
        let m = to_model_grid(&v, &plan, &n);
        // Model voxel [0,0,0] is the CT's last slice, last row, last column.
        assert_eq!(m[0], 123.0);
        assert_eq!(m[m.len() - 1], 0.0);
        // RAS flips only the slice axis of this CT back.
        let plan = Plan::new(&v.geometry, "RAS", [1.0, 1.0, 1.0]).unwrap();
        assert_eq!(
            plan.axes.iter().map(|a| a.flip).collect::<Vec<_>>(),
            [true, false, false]
        );
    }

    #[test]
    fn a_sagittal_ct_is_permuted() {
        // Columns run posterior (+y), rows inferior (-z), slices left (+x).
        let dirs = [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]];
        let g = geometry([4, 3, 2], [1.0, 1.0, 1.0], dirs);
        let plan = Plan::new(&g, "LPS", [1.0, 1.0, 1.0]).unwrap();
        // D (superior) = CT rows, flipped; H (posterior) = columns; W (left) = slices.
        assert_eq!(plan.axes[0].ct_axis, 1);
        assert!(plan.axes[0].flip);
        assert_eq!(plan.axes[1].ct_axis, 2);
        assert_eq!(plan.axes[2].ct_axis, 0);
        assert_eq!(plan.shape(), [3, 4, 2]);
    }

    #[test]
    fn resampling_halves_and_restores() {
        // A ramp along columns at 1 mm, model at 2 mm: model voxel centres
        // fall between CT voxels.
        let g = geometry([8, 2, 2], [1.0, 1.0, 1.0], HFS);
        let plan = Plan::new(&g, "LPS", [1.0, 1.0, 2.0]).unwrap();
        assert_eq!(plan.shape(), [2, 2, 4]);
        let data = Array3::from_shape_fn((2, 2, 8), |(_, _, i)| i as f32);
        let v = Volume { geometry: g, data };
        let n = Normalise {
            clip: Some([0.0, 6.0]),
            mean: 1.0,
            std: 2.0,
        };
        let m = to_model_grid(&v, &plan, &n);
        // Centres at CT 0.5, 2.5, 4.5, 6.5 -> 0.5, 2.5, 4.5, 6 (clipped), normalised.
        assert_eq!(&m[..4], &[-0.25, 0.75, 1.75, 2.5]);
    }

    #[test]
    fn gaussian_peaks_at_the_centre() {
        let g = gaussian([4, 8, 8]);
        let max = g.iter().cloned().fold(0.0, f32::max);
        assert_eq!(max, 1.0);
        assert_eq!(g[(2 * 8 + 4) * 8 + 4], 1.0);
        assert!(g.iter().all(|&v| v > 0.0));
    }
}
