//! The geometry and arithmetic around a model's forward pass, in plain
//! Rust so that it is tested without libtorch: the CT is put on the model's
//! grid (reoriented to the model's axes, resampled trilinearly to its
//! spacing, intensities clipped and normalised), cut into overlapping
//! patches, the patch outputs are blended with a Gaussian weight, and the
//! class scores are resampled back to the CT grid where the argmax is taken.
//! The conventions are nnU-Net's (v2), since that is how the TotalSegmentator
//! and nnU-Net models we run were trained and evaluated.

use anyhow::{bail, ensure, Result};
use ndarray::Array3;
use rayon::prelude::*;

use crate::volume::{Geometry, Volume};

/// One axis of the model grid and the CT array axis it runs along.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisMap {
    /// CT array axis: 0 slices, 1 rows, 2 columns.
    pub ct_axis: usize,
    /// Whether the model axis runs against the CT axis.
    pub flip: bool,
    pub n_ct: usize,
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
    pub clip: Option<[f32; 2]>,
    pub mean: f32,
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

/// The model input padded to at least a patch along every axis (centred,
/// with 0 — the normalised mean — as nnU-Net pads), and the patches over it.
#[derive(Debug, Clone)]
pub struct Tiling {
    pub shape: [usize; 3],
    pub padded: [usize; 3],
    pub pad_before: [usize; 3],
    pub patch: [usize; 3],
    /// Patch origins in the padded grid.
    pub tiles: Vec<[usize; 3]>,
}

impl Tiling {
    pub fn new(shape: [usize; 3], patch: [usize; 3], overlap: f64) -> Tiling {
        let mut padded = [0; 3];
        let mut pad_before = [0; 3];
        for a in 0..3 {
            padded[a] = shape[a].max(patch[a]);
            pad_before[a] = (padded[a] - shape[a]) / 2;
        }
        let s: Vec<Vec<usize>> = (0..3)
            .map(|a| steps(padded[a], patch[a], overlap))
            .collect();
        let mut tiles = Vec::new();
        for &z in &s[0] {
            for &y in &s[1] {
                for &x in &s[2] {
                    tiles.push([z, y, x]);
                }
            }
        }
        Tiling {
            shape,
            padded,
            pad_before,
            patch,
            tiles,
        }
    }

    fn patch_len(&self) -> usize {
        self.patch.iter().product()
    }

    /// Copies the patch at `origin` of `input` (`[D, H, W]`, unpadded) into
    /// `dst`, padding with 0 outside the image.
    pub fn extract(&self, input: &[f32], origin: [usize; 3], dst: &mut [f32]) {
        let [d, h, w] = self.shape;
        let [pd, ph, pw] = self.patch;
        for z in 0..pd {
            for y in 0..ph {
                let row = &mut dst[(z * ph + y) * pw..(z * ph + y + 1) * pw];
                let sz = (origin[0] + z).checked_sub(self.pad_before[0]);
                let sy = (origin[1] + y).checked_sub(self.pad_before[1]);
                match (sz, sy) {
                    (Some(sz), Some(sy)) if sz < d && sy < h => {
                        let src = &input[(sz * h + sy) * w..(sz * h + sy + 1) * w];
                        for (x, o) in row.iter_mut().enumerate() {
                            *o = (origin[2] + x)
                                .checked_sub(self.pad_before[2])
                                .and_then(|sx| src.get(sx))
                                .copied()
                                .unwrap_or(0.0);
                        }
                    }
                    _ => row.fill(0.0),
                }
            }
        }
    }
}

/// Gaussian-weighted sum of patch outputs over the padded grid.
pub struct Aggregate {
    pub tiling: Tiling,
    pub classes: usize,
    /// `[C, D, H, W]` over the padded grid.
    sum: Vec<f32>,
    weight: Vec<f32>,
    gauss: Vec<f32>,
    host_sums: bool,
}

impl Aggregate {
    pub fn new(tiling: Tiling, classes: usize) -> Aggregate {
        let n: usize = tiling.padded.iter().product();
        let gauss = gaussian(tiling.patch);
        Aggregate {
            sum: vec![0.0; n * classes],
            weight: vec![0.0; n],
            gauss,
            tiling,
            classes,
            host_sums: false,
        }
    }

    /// Adds one patch's output, `[C, pd, ph, pw]`.
    pub fn add(&mut self, origin: [usize; 3], out: &[f32]) {
        let [_, ph_all, pw_all] = self.tiling.padded;
        let [pd, ph, pw] = self.tiling.patch;
        let plen = self.tiling.patch_len();
        let n: usize = self.tiling.padded.iter().product();
        let gauss = &self.gauss;
        let place = |dst: &mut [f32], src: &[f32]| {
            for z in 0..pd {
                for y in 0..ph {
                    let o = ((origin[0] + z) * ph_all + origin[1] + y) * pw_all + origin[2];
                    let g = &gauss[(z * ph + y) * pw..(z * ph + y + 1) * pw];
                    let s = &src[(z * ph + y) * pw..(z * ph + y + 1) * pw];
                    for ((d, &v), &g) in dst[o..o + pw].iter_mut().zip(s).zip(g) {
                        *d += v * g;
                    }
                }
            }
        };
        self.sum
            .par_chunks_mut(n)
            .zip(out.par_chunks(plen))
            .for_each(|(dst, src)| place(dst, src));
        self.host_sums = true;
        self.add_weight(origin);
    }

    /// The Gaussian weight of a patch at `origin`, alone: for scores that
    /// were summed elsewhere (on the GPU) and arrive through
    /// [`Aggregate::add_sums`].
    pub fn add_weight(&mut self, origin: [usize; 3]) {
        let [_, ph_all, pw_all] = self.tiling.padded;
        let [pd, ph, pw] = self.tiling.patch;
        let gauss = &self.gauss;
        for z in 0..pd {
            for y in 0..ph {
                let o = ((origin[0] + z) * ph_all + origin[1] + y) * pw_all + origin[2];
                let g = &gauss[(z * ph + y) * pw..(z * ph + y + 1) * pw];
                for (d, &g) in self.weight[o..o + pw].iter_mut().zip(g) {
                    *d += g;
                }
            }
        }
    }

    /// Adds Gaussian-weighted class scores summed elsewhere, `[C, D, H, W]`
    /// over the padded grid (what [`Aggregate::add`] would have summed).
    pub fn add_sums(&mut self, sums: &[f32]) -> Result<()> {
        ensure!(
            sums.len() == self.sum.len(),
            "{} summed scores for a grid of {}",
            sums.len(),
            self.sum.len()
        );
        self.sum
            .par_iter_mut()
            .zip(sums.par_iter())
            .for_each(|(d, s)| *d += s);
        self.host_sums = true;
        Ok(())
    }

    /// The Gaussian weights of a patch, `[pd, ph, pw]`.
    pub fn gaussian(&self) -> &[f32] {
        &self.gauss
    }

    /// The summed Gaussian weight of every voxel of the padded grid.
    pub fn weights(&self) -> &[f32] {
        &self.weight
    }

    /// Whether any scores were summed here on the host.
    pub fn has_host_sums(&self) -> bool {
        self.host_sums
    }

    /// The class scores on the CT grid, argmax taken there (nnU-Net's
    /// order: resampling a label map instead would lose thin structures).
    /// Channel `c` is label `c`; channels not in `keep` (a label map of
    /// the model's classes) count as background.
    pub fn labels_on_ct(&self, plan: &Plan, keep: &[bool]) -> Result<Array3<u16>> {
        let c_n = self.classes;
        ensure!(c_n >= 1, "the model has no output channel");
        let [pd_all, ph_all, pw_all] = self.tiling.padded;
        let n = pd_all * ph_all * pw_all;
        let pad = self.tiling.pad_before;
        let [a_s, a_r, a_c] = plan.model_axis_of_ct();
        let back = |a: usize| plan.axes[a].taps_to_ct();
        let (ts, tr, tc) = (back(a_s), back(a_r), back(a_c));
        let padded = [pd_all, ph_all, pw_all];
        let stride = [ph_all * pw_all, pw_all, 1];
        // Offset of model index `m` along model axis `a` in the padded grid.
        let off = |a: usize, m: usize| (m + pad[a]) * stride[a];
        let (nu, nv) = (plan.axes[a_r].n_model, plan.axes[a_c].n_model);
        debug_assert!(padded.iter().product::<usize>() == n);
        let (nk, nj, ni) = (
            plan.axes[a_s].n_ct,
            plan.axes[a_r].n_ct,
            plan.axes[a_c].n_ct,
        );
        let mut labels = vec![0u16; nk * nj * ni];
        let sum = &self.sum;
        let weight = &self.weight;
        labels
            .par_chunks_mut((nj * ni).max(1))
            .enumerate()
            .for_each(|(k, out)| {
                // The model plane at this CT slice, blended along the
                // model axis of the CT's slices, channel-last and divided
                // by the Gaussian weight sum.
                let (m0, m1, wm) = ts[k];
                let mut plane = vec![0f32; nu * nv * c_n];
                for u in 0..nu {
                    for v in 0..nv {
                        let base = off(a_r, u) + off(a_c, v);
                        let (p0, p1) = (base + off(a_s, m0), base + off(a_s, m1));
                        let (w0, w1) = (weight[p0], weight[p1]);
                        let cell = &mut plane[(u * nv + v) * c_n..(u * nv + v + 1) * c_n];
                        for (c, o) in cell.iter_mut().enumerate() {
                            let s0 = sum[c * n + p0] / w0;
                            let s1 = sum[c * n + p1] / w1;
                            *o = s0 + (s1 - s0) * wm;
                        }
                    }
                }
                for j in 0..nj {
                    let (u0, u1, wu) = tr[j];
                    for i in 0..ni {
                        let (v0, v1, wv) = tc[i];
                        let cell = |u: usize, v: usize| &plane[(u * nv + v) * c_n..][..c_n];
                        let (a, b, c, d) = (cell(u0, v0), cell(u0, v1), cell(u1, v0), cell(u1, v1));
                        let w_a = (1.0 - wu) * (1.0 - wv);
                        let w_b = (1.0 - wu) * wv;
                        let w_c = wu * (1.0 - wv);
                        let w_d = wu * wv;
                        let mut best = (0usize, f32::NEG_INFINITY);
                        for ch in 0..c_n {
                            let s = a[ch] * w_a + b[ch] * w_b + c[ch] * w_c + d[ch] * w_d;
                            // The first of equal scores wins, as torch's argmax.
                            if s > best.1 {
                                best = (ch, s);
                            }
                        }
                        let label = if keep.get(best.0).copied().unwrap_or(false) {
                            best.0 as u16
                        } else {
                            0
                        };
                        out[j * ni + i] = label;
                    }
                }
            });
        Ok(Array3::from_shape_vec((nk, nj, ni), labels)?)
    }
}

/// Where a batch of patches runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The configured device, the configured batch.
    Preferred,
    /// The configured device, one patch at a time.
    Single,
    /// The CPU, one patch at a time (after the GPU ran out of memory).
    Cpu,
}

#[derive(Debug)]
pub enum ForwardError {
    /// The device ran out of memory: worth a smaller batch or the CPU.
    OutOfMemory(String),
    Other(anyhow::Error),
}

/// Whether a libtorch error message is an out-of-memory failure
/// (`torch.OutOfMemoryError`, "CUDA out of memory", the CPU allocator's).
pub fn is_oom(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("outofmemoryerror")
        || m.contains("can't allocate memory")
}

/// Runs every tile through `forward`, `batch` at a time, and hands each
/// output to `sink`. Out of memory on the preferred device retries the
/// same patches one at a time, then on the CPU (the patch size belongs to
/// the trained model and never shrinks); each step down is returned as a
/// sentence for the stage record. `on_cpu`: the preferred device is the
/// CPU already, so there is no further step.
pub fn run_tiles<T, F, S>(
    tiles: &[[usize; 3]],
    batch: usize,
    on_cpu: bool,
    mut forward: F,
    mut sink: S,
) -> Result<Vec<String>>
where
    F: FnMut(Placement, &[[usize; 3]]) -> Result<T, ForwardError>,
    S: FnMut(&[[usize; 3]], T) -> Result<()>,
{
    let batch = batch.max(1);
    let mut mode = Placement::Preferred;
    let mut notes = Vec::new();
    let mut i = 0;
    while i < tiles.len() {
        let n = if mode == Placement::Preferred {
            batch
        } else {
            1
        };
        let chunk = &tiles[i..(i + n).min(tiles.len())];
        match forward(mode, chunk) {
            Ok(out) => {
                sink(chunk, out)?;
                i += chunk.len();
            }
            Err(ForwardError::OutOfMemory(msg)) => {
                let first = msg.lines().next().unwrap_or("").trim();
                match mode {
                    Placement::Preferred if batch > 1 => {
                        notes.push(format!(
                            "out of memory with a batch of {batch} patches ({first}); continued one patch at a time"
                        ));
                        mode = Placement::Single;
                    }
                    Placement::Preferred | Placement::Single if !on_cpu => {
                        notes.push(format!(
                            "out of memory with one patch on the GPU ({first}); continued on the CPU"
                        ));
                        mode = Placement::Cpu;
                    }
                    _ => bail!("out of memory even with one patch on the CPU: {first}"),
                }
            }
            Err(ForwardError::Other(e)) => return Err(e),
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(size: [usize; 3], spacing: [f64; 3], dirs: [[f64; 3]; 3]) -> Geometry {
        Geometry {
            origin: [0.0; 3],
            spacing,
            directions: dirs,
            size,
        }
    }

    const HFS: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

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

    /// Two classes whose score is a function of position; tiles that
    /// overlap and a padded axis must give back exactly the function.
    #[test]
    fn stitched_tiles_reproduce_a_position_dependent_output() {
        let shape = [5, 20, 13];
        let tiling = Tiling::new(shape, [8, 8, 8], 0.5);
        assert_eq!(tiling.padded, [8, 20, 13]);
        assert_eq!(tiling.pad_before, [1, 0, 0]);
        assert!(tiling.tiles.len() > 4);
        let input: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| i as f32)
            .collect();
        let mut agg = Aggregate::new(tiling.clone(), 2);
        let [pd, ph, pw] = tiling.patch;
        let notes = run_tiles(
            &tiling.tiles,
            3,
            true,
            |_, chunk| {
                let mut out = Vec::new();
                for &o in chunk {
                    let mut p = vec![0f32; pd * ph * pw];
                    tiling.extract(&input, o, &mut p);
                    // Class 1 where the (unpadded) linear index is odd and
                    // the voxel is inside the image, class 0 elsewhere.
                    out.extend(p.iter().map(|_| 0.0));
                    out.extend(
                        p.iter()
                            .map(|&v| if v as usize % 2 == 1 { 1.0 } else { -1.0 }),
                    );
                }
                Ok(out)
            },
            |chunk, out| {
                let len = 2 * pd * ph * pw;
                for (o, s) in chunk.iter().zip(out.chunks(len)) {
                    agg.add(*o, s);
                }
                Ok(())
            },
        )
        .unwrap();
        assert!(notes.is_empty());
        let g = geometry([13, 20, 5], [1.0; 3], HFS);
        let plan = Plan::new(&g, "LPS", [1.0; 3]).unwrap();
        let labels = agg.labels_on_ct(&plan, &[false, true]).unwrap();
        for ((k, j, i), &l) in labels.indexed_iter() {
            let idx = (k * 20 + j) * 13 + i;
            assert_eq!(l, (idx % 2) as u16, "at {k},{j},{i}");
        }
    }

    #[test]
    fn out_of_memory_steps_down_to_one_patch_then_the_cpu() {
        let tiles: Vec<[usize; 3]> = (0..7).map(|i| [i, 0, 0]).collect();
        let mut seen = Vec::new();
        let notes = run_tiles(
            &tiles,
            4,
            false,
            |mode, chunk| {
                seen.push((mode, chunk.len()));
                match (mode, chunk[0][0]) {
                    (Placement::Preferred, _) => Err(ForwardError::OutOfMemory(
                        "CUDA out of memory. Tried to allocate 2 GiB".into(),
                    )),
                    (Placement::Single, 2) => {
                        Err(ForwardError::OutOfMemory("CUDA out of memory".into()))
                    }
                    _ => Ok(vec![0.0; chunk.len()]),
                }
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("batch of 4"), "{notes:?}");
        assert!(notes[1].contains("CPU"), "{notes:?}");
        assert_eq!(
            seen,
            vec![
                (Placement::Preferred, 4),
                (Placement::Single, 1),
                (Placement::Single, 1),
                (Placement::Single, 1),
                (Placement::Cpu, 1),
                (Placement::Cpu, 1),
                (Placement::Cpu, 1),
                (Placement::Cpu, 1),
                (Placement::Cpu, 1),
            ]
        );
        // On the CPU already, running out of memory is final.
        let err = run_tiles::<(), _, _>(
            &tiles,
            1,
            true,
            |_, _| {
                Err(ForwardError::OutOfMemory(
                    "DefaultCPUAllocator: can't allocate memory".into(),
                ))
            },
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("out of memory"), "{err}");
        assert!(is_oom("torch.OutOfMemoryError: CUDA out of memory."));
        assert!(!is_oom("shape mismatch"));
    }
}
