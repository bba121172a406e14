//! Neighbouring grey tone difference matrix (NGTDM) features: pyradiomics'
//! `RadiomicsNGTDM` and IBSI 1's NGTDM (section 3.9).
//!
//! The module also holds the neighbourhood and slicing helpers that the GLDM
//! and GLSZM modules share, since those three classes see the ROI the same
//! way: every voxel with its neighbours in the mask, no directions.

use ndarray::{ArrayView3, Axis};
use rayon::prelude::*;

use super::image::{Feature, Levels, Standard, TextureSettings};

/// pyradiomics' feature names, in its documentation order.
pub const NAMES: [&str; 5] = [
    "Coarseness",
    "Contrast",
    "Busyness",
    "Complexity",
    "Strength",
];

/// pyradiomics returns this coarseness when the weighted difference sum is
/// zero (a region without grey-tone change), rather than infinity.
const FLAT_COARSENESS: f64 = 1e6;

/// All features of the class for the ROI's grey levels.
///
/// An empty ROI gives NaN for every feature (pyradiomics refuses such a mask
/// before any class runs). In `Standard::Ibsi`, a ROI in which no voxel has a
/// neighbour in the ROI gives NaN as well (no valid neighbourhood).
pub fn features(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let offsets = neighbour_offsets(
        &settings.distances,
        settings.force2d,
        settings.force2d_dimension,
    );
    let m = matrix(levels.grid.view(), levels.ng, &offsets, settings.standard);
    compute(&m)
}

/// IBSI 2D (`merged == false`: one matrix per slice, features averaged over
/// slices) or 2.5D (`merged == true`: slice matrices summed, features of the
/// sum). Slices are taken across `settings.force2d_dimension` (0 = z, the
/// IBSI convention); neighbours are in-plane only; slices without ROI voxels
/// are left out.
pub fn features_slicewise(
    levels: &Levels,
    settings: &TextureSettings,
    merged: bool,
) -> Vec<Feature> {
    let axis = settings.force2d_dimension.min(2);
    let offsets = neighbour_offsets(&settings.distances, true, axis);
    let mats: Vec<Matrix> = slices(levels.grid.view(), axis)
        .into_par_iter()
        .map(|s| matrix(s, levels.ng, &offsets, settings.standard))
        .collect();
    if merged {
        let mut total = Matrix::new(levels.ng);
        for m in &mats {
            total.add(m);
        }
        compute(&total)
    } else {
        average(mats.iter().map(compute).collect(), &NAMES)
    }
}

/// The grey-tone difference matrix: per grey level, the number of voxels
/// `n` and the summed absolute difference `s` between each voxel and the
/// mean of its neighbours.
#[derive(Debug, Clone)]
struct Matrix {
    n: Vec<f64>,
    s: Vec<f64>,
}

impl Matrix {
    fn new(ng: u32) -> Matrix {
        let len = ng as usize + 1;
        Matrix {
            n: vec![0.0; len],
            s: vec![0.0; len],
        }
    }
    fn add(&mut self, o: &Matrix) {
        if o.n.len() > self.n.len() {
            self.n.resize(o.n.len(), 0.0);
            self.s.resize(o.s.len(), 0.0);
        }
        for (a, b) in self.n.iter_mut().zip(&o.n) {
            *a += b;
        }
        for (a, b) in self.s.iter_mut().zip(&o.s) {
            *a += b;
        }
    }
}

fn matrix(grid: ArrayView3<u32>, ng: u32, offsets: &[[isize; 3]], standard: Standard) -> Matrix {
    let g = Padded::new(grid, offsets);
    // Level 0 is outside the ROI; a level above `ng` would be a caller's
    // error, so the matrix grows to the highest level present instead of
    // indexing out of range.
    let top = g.data.iter().copied().max().unwrap_or(0).max(ng);
    // One partial matrix per slice, summed in slice order: the same
    // floating-point sums whatever the number of threads.
    let planes: Vec<Matrix> = (0..g.shape[0])
        .into_par_iter()
        .map(|z| {
            let mut m = Matrix::new(top);
            for y in 0..g.shape[1] {
                let row = g.row(z, y);
                for x in 0..g.shape[2] {
                    let k = row + x;
                    let level = g.data[k];
                    if level == 0 {
                        continue;
                    }
                    // Integer sums: exact, as the f64 sum of integer levels is.
                    let (mut count, mut sum) = (0u32, 0u64);
                    for d in &g.steps {
                        let nl = g.data[k.wrapping_add_signed(*d)];
                        count += (nl != 0) as u32;
                        sum += nl as u64;
                    }
                    let diff = if count == 0 {
                        // IBSI: no valid neighbourhood, so the voxel is
                        // not part of the matrix at all; pyradiomics
                        // counts it with a zero difference.
                        if standard == Standard::Ibsi {
                            continue;
                        }
                        0.0
                    } else {
                        (level as f64 - sum as f64 / count as f64).abs()
                    };
                    m.n[level as usize] += 1.0;
                    m.s[level as usize] += diff;
                }
            }
            m
        })
        .collect();
    let mut total = Matrix::new(top);
    for m in &planes {
        total.add(m);
    }
    total
}

fn compute(m: &Matrix) -> Vec<Feature> {
    // Grey levels without voxels are dropped, as pyradiomics does; in the
    // IBSI definitions they contribute nothing either (every term carries
    // p_i, or is restricted to p_i > 0), so both standards share this.
    let rows: Vec<(f64, f64, f64)> =
        m.n.iter()
            .zip(&m.s)
            .enumerate()
            .filter(|(_, (n, _))| **n > 0.0)
            .map(|(i, (n, s))| (i as f64, *n, *s))
            .collect();
    let nvp: f64 = rows.iter().map(|r| r.1).sum();
    if rows.is_empty() || nvp <= 0.0 {
        return NAMES.iter().map(|n| (*n, f64::NAN)).collect();
    }
    // (grey level, p_i, s_i)
    let p: Vec<(f64, f64, f64)> = rows.iter().map(|(i, n, s)| (*i, n / nvp, *s)).collect();
    let ngp = p.len() as f64;
    let sum_s: f64 = p.iter().map(|r| r.2).sum();
    let sum_ps: f64 = p.iter().map(|r| r.1 * r.2).sum();

    let coarseness = if sum_ps != 0.0 {
        1.0 / sum_ps
    } else {
        FLAT_COARSENESS
    };

    let mut pp_d2 = 0.0; // sum p_i p_j (i-j)^2
    let mut abs_ip = 0.0; // sum |i p_i - j p_j|
    let mut complexity = 0.0; // sum |i-j| (p_i s_i + p_j s_j) / (p_i + p_j)
    let mut strength = 0.0; // sum (p_i + p_j) (i-j)^2
    for &(i, pi, si) in &p {
        for &(j, pj, sj) in &p {
            let d = i - j;
            pp_d2 += pi * pj * d * d;
            abs_ip += (i * pi - j * pj).abs();
            complexity += d.abs() * (pi * si + pj * sj) / (pi + pj);
            strength += (pi + pj) * d * d;
        }
    }
    let div = ngp * (ngp - 1.0);
    let contrast = if div != 0.0 {
        pp_d2 * sum_s / nvp / div
    } else {
        0.0
    };
    let busyness = if abs_ip != 0.0 { sum_ps / abs_ip } else { 0.0 };
    let complexity = complexity / nvp;
    let strength = if sum_s != 0.0 { strength / sum_s } else { 0.0 };
    vec![
        ("Coarseness", coarseness),
        ("Contrast", contrast),
        ("Busyness", busyness),
        ("Complexity", complexity),
        ("Strength", strength),
    ]
}

// ---------------------------------------------------------------------------
// Shared by the neighbourhood classes (GLSZM, GLDM, NGTDM).

/// pyradiomics' neighbourhood: every offset whose Chebyshev norm is one of
/// `distances`, in both directions (so distance 2 includes (2, 1, 0), not
/// only the 13 axes scaled), none moving along `force2d_dimension` when
/// `force2d`. Distances below 1 are ignored (pyradiomics rejects them).
pub(crate) fn neighbour_offsets(
    distances: &[usize],
    force2d: bool,
    force2d_dimension: usize,
) -> Vec<[isize; 3]> {
    let max = distances.iter().copied().max().unwrap_or(0) as isize;
    let mut out = Vec::new();
    for dz in -max..=max {
        for dy in -max..=max {
            for dx in -max..=max {
                let v = [dz, dy, dx];
                if force2d && force2d_dimension < 3 && v[force2d_dimension] != 0 {
                    continue;
                }
                let norm = v.iter().map(|c| c.unsigned_abs()).max().unwrap_or(0);
                if norm >= 1 && distances.contains(&norm) {
                    out.push(v);
                }
            }
        }
    }
    out
}

/// A grid with a border of zeros (outside the ROI) as wide as the
/// neighbourhood reaches, so that every voxel's neighbours are in memory
/// and are read without a bounds check. `shape` is the unpadded grid's.
pub(crate) struct Padded {
    pub data: Vec<u32>,
    pub shape: [usize; 3],
    /// Linear index steps of the offsets in the padded grid.
    pub steps: Vec<isize>,
    reach: [usize; 3],
    padded: [usize; 3],
}

impl Padded {
    pub fn new(grid: ArrayView3<u32>, offsets: &[[isize; 3]]) -> Padded {
        let (a, b, c) = grid.dim();
        let shape = [a, b, c];
        let mut reach = [0usize; 3];
        for o in offsets {
            for k in 0..3 {
                reach[k] = reach[k].max(o[k].unsigned_abs());
            }
        }
        let padded: [usize; 3] = std::array::from_fn(|k| shape[k] + 2 * reach[k]);
        let mut data = vec![0u32; padded[0] * padded[1] * padded[2]];
        for ((z, y), lane) in grid
            .lanes(Axis(2))
            .into_iter()
            .enumerate()
            .map(|(k, l)| ((k / b.max(1), k % b.max(1)), l))
        {
            let at = ((z + reach[0]) * padded[1] + y + reach[1]) * padded[2] + reach[2];
            for (d, v) in data[at..at + c].iter_mut().zip(lane.iter()) {
                *d = *v;
            }
        }
        let steps = offsets
            .iter()
            .map(|o| (o[0] * padded[1] as isize + o[1]) * padded[2] as isize + o[2])
            .collect();
        Padded {
            data,
            shape,
            steps,
            reach,
            padded,
        }
    }
    /// Linear index of the unpadded voxel `(z, y, 0)`.
    #[inline]
    pub fn row(&self, z: usize, y: usize) -> usize {
        ((z + self.reach[0]) * self.padded[1] + y + self.reach[1]) * self.padded[2] + self.reach[2]
    }
}

/// The slices of a grid across `axis` that hold ROI voxels, each as a
/// one-voxel-thick 3-D view.
pub(crate) fn slices(grid: ArrayView3<u32>, axis: usize) -> Vec<ArrayView3<u32>> {
    (0..grid.len_of(Axis(axis)))
        .map(move |k| grid.slice_axis_move(Axis(axis), (k..k + 1).into()))
        .filter(|s| s.iter().any(|l| *l != 0))
        .collect()
}

/// Features averaged over slices (IBSI 2D), by name, in `names` order. NaN
/// when there are no slices.
pub(crate) fn average(per_slice: Vec<Vec<Feature>>, names: &[&'static str]) -> Vec<Feature> {
    names
        .iter()
        .map(|name| {
            let v: Vec<f64> = per_slice
                .iter()
                .filter_map(|fs| fs.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
                .collect();
            let mean = if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            };
            (*name, mean)
        })
        .collect()
}
