//! Patches over the model-grid input, as nnU-Net (v2) cuts them: the input
//! padded to at least a patch, overlapping patch origins, each patch's
//! class scores blended into the whole with a Gaussian weight, and the
//! blended scores resampled back to the CT grid where the argmax is taken.
//! `run_tiles` runs the forward passes, stepping down the batch and then to
//! the CPU when the device runs out of memory.

use anyhow::{bail, ensure, Result};
use ndarray::Array3;
use rayon::prelude::*;

use super::grid::{gaussian, steps, Plan};

/// The model input padded to at least a patch along every axis (centred,
/// with 0 — the normalised mean — as nnU-Net pads), and the patches over it.
#[derive(Debug, Clone)]
pub struct Tiling {
    /// The model input's size `[D, H, W]`, voxels.
    pub shape: [usize; 3],
    /// The padded grid's size: `shape` raised to at least `patch` per axis.
    pub padded: [usize; 3],
    /// Padding voxels before the input along each axis (the rest after).
    pub pad_before: [usize; 3],
    /// Patch size `[D, H, W]`, voxels.
    pub patch: [usize; 3],
    /// Patch origins in the padded grid.
    pub tiles: Vec<[usize; 3]>,
}

impl Tiling {
    /// Pads `shape` to at least `patch` and places patch origins along each
    /// axis so that neighbours overlap by at least `overlap` (0 to below 1) of
    /// a patch, the last one flush with the end, as nnU-Net does.
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
    /// The patches whose outputs are summed.
    pub tiling: Tiling,
    /// Output channels (classes, background included).
    pub classes: usize,
    /// `[C, D, H, W]` over the padded grid.
    sum: Vec<f32>,
    weight: Vec<f32>,
    gauss: Vec<f32>,
    host_sums: bool,
}

impl Aggregate {
    /// An empty sum for `classes` channels over `tiling`'s padded grid.
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

/// Why a forward pass failed.
#[derive(Debug)]
pub enum ForwardError {
    /// The device ran out of memory: worth a smaller batch or the CPU.
    OutOfMemory(String),
    /// Any other failure: not retried.
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
    use crate::segmentation::model::grid::tests::{geometry, HFS};

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
