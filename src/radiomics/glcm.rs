//! Grey level co-occurrence matrix (GLCM) features.
//!
//! `Standard::Pyradiomics` follows pyradiomics' `RadiomicsGLCM` (matrices over
//! the grey levels present in the ROI, `+ eps` inside every logarithm, its
//! conventions for flat regions); `Standard::Ibsi` follows the IBSI 1
//! reference manual (every level `1..=ng` a row, plain logarithms, undefined
//! values NaN). The two agree wherever both define a value: the grey levels
//! enter the formulas by their value, so empty levels only matter for `Ng`
//! (Idmn, Idn), MCC's eigenvalue count and the degenerate cases; matrices
//! store the present levels only, in both modes.
use ndarray::{s, Array3, ArrayView3, Axis};
use rayon::prelude::*;

use super::image::{Aggregation, Feature, Levels, Standard, TextureSettings, WeightingNorm};

/// pyradiomics' feature names, in the order `features` returns them.
pub const NAMES: [&str; 24] = [
    "Autocorrelation",
    "JointAverage",
    "ClusterProminence",
    "ClusterShade",
    "ClusterTendency",
    "Contrast",
    "Correlation",
    "DifferenceAverage",
    "DifferenceEntropy",
    "DifferenceVariance",
    "JointEnergy",
    "JointEntropy",
    "Imc1",
    "Imc2",
    "Idm",
    "Idmn",
    "Id",
    "Idn",
    "InverseVariance",
    "MaximumProbability",
    "SumAverage",
    "SumEntropy",
    "SumSquares",
    "MCC",
];

/// numpy.spacing(1), the epsilon pyradiomics adds inside logarithms and
/// denominators.
const EPS: f64 = f64::EPSILON;

/// GLCM features of the ROI, over all directions at once (3D, or the 2.5D
/// "direction-merged"/"merged" variants with `force2d`).
///
/// `settings.weighting_norm` (pyradiomics) weights and sums the direction
/// matrices before the features; otherwise `settings.aggregation` decides:
/// `Averaged` computes features per direction and averages them (NaN-skipping,
/// as pyradiomics' `nanmean`), `Merged` sums the direction matrices first.
pub fn features(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let Some((grid, map)) = prepare(levels, settings.standard) else {
        return nan_features();
    };
    let angles = angles(
        grid.dim(),
        &settings.distances,
        settings.force2d,
        settings.force2d_dimension,
    );
    let mats: Vec<Vec<f64>> = angles
        .par_iter()
        .map(|a| count(grid.view(), &map, *a, settings.symmetrical_glcm))
        .collect();
    let mats = combine(mats, &angles, levels.spacing, settings);
    average(
        mats.par_iter()
            .map(|m| matrix_features(m, &map, settings.standard))
            .collect(),
    )
}

/// IBSI "2D" GLCM features: matrices per slice (slices perpendicular to
/// `settings.force2d_dimension`), in-plane directions only. `Averaged`:
/// features of every slice's every direction matrix, averaged over all
/// ("2D, averaged"); `Merged`: each slice's direction matrices summed,
/// features averaged over slices ("2D, slice-merged").
pub fn features_2d(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let Some((grid, map)) = prepare(levels, settings.standard) else {
        return nan_features();
    };
    let axis = settings.force2d_dimension.min(2);
    let rows: Vec<[f64; 24]> = (0..grid.len_of(Axis(axis)))
        .into_par_iter()
        .flat_map_iter(|k| {
            let slice = grid
                .slice_axis(Axis(axis), ndarray::Slice::from(k..k + 1))
                .as_standard_layout()
                .into_owned();
            let angles = angles(slice.dim(), &settings.distances, true, axis);
            let mats: Vec<Vec<f64>> = angles
                .iter()
                .map(|a| count(slice.view(), &map, *a, settings.symmetrical_glcm))
                .collect();
            combine(mats, &angles, levels.spacing, settings)
                .into_iter()
                .map(|m| matrix_features(&m, &map, settings.standard))
                .collect::<Vec<_>>()
        })
        .collect();
    average(rows)
}

fn nan_features() -> Vec<Feature> {
    NAMES.iter().map(|n| (*n, f64::NAN)).collect()
}

fn average(rows: Vec<[f64; 24]>) -> Vec<Feature> {
    NAMES
        .iter()
        .enumerate()
        .map(|(f, n)| (*n, nan_mean(rows.iter().map(|r| r[f]))))
        .collect()
}

/// Mean of the non-NaN values (numpy.nanmean); NaN when there are none.
pub(crate) fn nan_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The grey levels a matrix is indexed by.
pub(crate) struct LevelMap {
    /// Matrix index → grey level.
    pub values: Vec<f64>,
    /// `Ng` of the normalised features: pyradiomics takes the highest level
    /// present, IBSI the number of levels of the discretisation.
    pub ng: f64,
    /// Rows of the matrix the definition has: the levels present
    /// (pyradiomics deletes empty levels) or `1..=ng` (IBSI). Only the
    /// present levels are stored, as empty rows add nothing to any sum; the
    /// count still decides MCC's eigenvalue list.
    pub rows: usize,
}

/// The grid cropped to the bounding box of its ROI voxels, each voxel
/// holding its matrix index + 1 (0 outside the ROI, so that counting needs
/// no level lookup), and the levels its matrices use; None for an empty ROI.
pub(crate) fn prepare(levels: &Levels, standard: Standard) -> Option<(Array3<u32>, LevelMap)> {
    let (lo, hi) = nonzero_box(&levels.grid)?;
    let crop = levels
        .grid
        .slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]]);
    let max_present = crop.iter().copied().max().unwrap_or(0) as usize;
    let top = max_present.max(levels.ng as usize);
    let mut present = vec![false; top + 1];
    for g in crop.iter() {
        present[*g as usize] = true;
    }
    let mut index = vec![u32::MAX; top + 1];
    let mut values = Vec::new();
    for level in 1..=top {
        if present[level] {
            index[level] = values.len() as u32;
            values.push(level as f64);
        }
    }
    let grid = crop.mapv(|g| if g == 0 { 0 } else { index[g as usize] + 1 });
    let (ng, rows) = match standard {
        Standard::Pyradiomics => (max_present as f64, values.len()),
        Standard::Ibsi => (top as f64, top),
    };
    Some((grid, LevelMap { values, ng, rows }))
}

/// Bounding box `(lo, hi_exclusive)` of the non-zero voxels, row by row.
fn nonzero_box(grid: &Array3<u32>) -> Option<([usize; 3], [usize; 3])> {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for ((z, y), row) in grid
        .lanes(Axis(2))
        .into_iter()
        .enumerate()
        .map(|(k, r)| ((k / grid.dim().1, k % grid.dim().1), r))
    {
        let first = row.iter().position(|g| *g != 0);
        let Some(first) = first else { continue };
        let last = row.len() - 1 - row.iter().rev().position(|g| *g != 0).unwrap_or(0);
        lo = [lo[0].min(z), lo[1].min(y), lo[2].min(first)];
        hi = [hi[0].max(z + 1), hi[1].max(y + 1), hi[2].max(last + 1)];
    }
    (lo[0] != usize::MAX).then_some((lo, hi))
}

/// pyradiomics' angles: every offset whose Chebyshev norm is one of
/// `distances`, one of each opposite pair (first non-zero component
/// positive), none that leaves a box of `dim` from every voxel, none out of
/// plane with `force2d`.
pub(crate) fn angles(
    dim: (usize, usize, usize),
    distances: &[usize],
    force2d: bool,
    force2d_dimension: usize,
) -> Vec<[isize; 3]> {
    let size = [dim.0 as isize, dim.1 as isize, dim.2 as isize];
    let max_d = distances.iter().copied().max().unwrap_or(0) as isize;
    let mut out = Vec::new();
    for dz in -max_d..=max_d {
        for dy in -max_d..=max_d {
            for dx in -max_d..=max_d {
                let a = [dz, dy, dx];
                let norm = a.iter().map(|c| c.abs()).max().unwrap_or(0);
                if norm == 0 || !distances.contains(&(norm as usize)) {
                    continue;
                }
                if a.iter().copied().find(|c| *c != 0).unwrap_or(0) < 0 {
                    continue;
                }
                if (0..3).any(|k| a[k].abs() >= size[k]) {
                    continue;
                }
                if force2d && a[force2d_dimension.min(2)] != 0 {
                    continue;
                }
                out.push(a);
            }
        }
    }
    out
}

/// Index range along one axis of length `len` whose voxels have a neighbour
/// at offset `d` inside the axis.
fn valid_range(len: usize, d: isize) -> std::ops::Range<usize> {
    let m = d.unsigned_abs().min(len);
    if d >= 0 {
        0..len - m
    } else {
        m..len
    }
}

/// Distance weight of an angle (pyradiomics' weightingNorm): the norm of
/// the offset in mm, by `norm`.
pub(crate) fn offset_norm(a: [isize; 3], spacing: [f64; 3], norm: WeightingNorm) -> f64 {
    let mm: Vec<f64> = (0..3)
        .map(|k| a[k].unsigned_abs() as f64 * spacing[k])
        .collect();
    match norm {
        WeightingNorm::Infinity => mm.iter().copied().fold(0.0, f64::max),
        WeightingNorm::Euclidean => mm.iter().map(|v| v * v).sum::<f64>().sqrt(),
        WeightingNorm::Manhattan => mm.iter().sum(),
        WeightingNorm::NoWeighting => 1.0,
    }
}

/// Co-occurrence counts of one angle: row = level of a voxel, column = level
/// of its neighbour at `+a`, both in the ROI.
fn count(grid: ArrayView3<u32>, map: &LevelMap, a: [isize; 3], symmetric: bool) -> Vec<f64> {
    let n = map.values.len();
    let mut m = vec![0.0; n * n];
    let (nz, ny, nx) = grid.dim();
    let off = [a[0] * (ny * nx) as isize, a[1] * nx as isize, a[2]];
    let step = off[0] + off[1] + off[2];
    let owned;
    let data = match grid.as_slice() {
        Some(d) => d,
        None => {
            owned = grid.as_standard_layout().into_owned();
            owned.as_slice().unwrap_or(&[])
        }
    };
    let xs = valid_range(nx, a[2]);
    for z in valid_range(nz, a[0]) {
        for y in valid_range(ny, a[1]) {
            // The row's voxels and their neighbours, as two slices.
            let from = (z * ny + y) * nx + xs.start;
            let to = from.wrapping_add_signed(step);
            let (Some(here), Some(there)) =
                (data.get(from..from + xs.len()), data.get(to..to + xs.len()))
            else {
                continue;
            };
            for (&g, &h) in here.iter().zip(there) {
                if g == 0 || h == 0 {
                    continue;
                }
                // the prepared grid holds matrix indices + 1
                m[(g as usize - 1) * n + (h as usize - 1)] += 1.0;
            }
        }
    }
    if symmetric {
        for r in 0..n {
            for c in r..n {
                let s = m[r * n + c] + m[c * n + r];
                m[r * n + c] = s;
                m[c * n + r] = s;
            }
        }
    }
    m
}

/// The matrices the features are computed on: weighted and summed
/// (weightingNorm), summed (Merged) or one per angle (Averaged); empty ones
/// dropped (pyradiomics deletes empty angles), the rest normalised to sum 1.
fn combine(
    mats: Vec<Vec<f64>>,
    angles: &[[isize; 3]],
    spacing: [f64; 3],
    settings: &TextureSettings,
) -> Vec<Vec<f64>> {
    let weight = |a: [isize; 3]| -> f64 {
        match settings.weighting_norm {
            Some(WeightingNorm::NoWeighting) | None => 1.0,
            Some(norm) => (-offset_norm(a, spacing, norm).powi(2)).exp(),
        }
    };
    let mats = if settings.weighting_norm.is_some() || settings.aggregation == Aggregation::Merged {
        let mut sum: Option<Vec<f64>> = None;
        for (m, a) in mats.into_iter().zip(angles) {
            let w = weight(*a);
            match sum.as_mut() {
                None => sum = Some(m.into_iter().map(|v| v * w).collect()),
                Some(s) => s.iter_mut().zip(m).for_each(|(s, v)| *s += v * w),
            }
        }
        sum.into_iter().collect()
    } else {
        mats
    };
    mats.into_iter()
        .filter_map(|mut m| {
            let total: f64 = m.iter().sum();
            (total > 0.0).then(|| {
                m.iter_mut().for_each(|v| *v /= total);
                m
            })
        })
        .collect()
}

/// `p log2 p`, pyradiomics' way (`log2(p + eps)`, which makes a flat
/// region's entropies -3.2e-16 rather than 0) or IBSI's (`0 log 0 = 0`).
fn plogp(p: f64, standard: Standard) -> f64 {
    match standard {
        Standard::Pyradiomics => p * (p + EPS).log2(),
        Standard::Ibsi if p > 0.0 => p * p.log2(),
        Standard::Ibsi => 0.0,
    }
}

/// All features of one normalised matrix, in `NAMES` order.
fn matrix_features(p: &[f64], map: &LevelMap, standard: Standard) -> [f64; 24] {
    let v = &map.values;
    let n = v.len();
    let pyr = standard == Standard::Pyradiomics;
    let mut px = vec![0.0; n];
    let mut py = vec![0.0; n];
    for i in 0..n {
        for j in 0..n {
            px[i] += p[i * n + j];
            py[j] += p[i * n + j];
        }
    }
    let ux: f64 = (0..n).map(|i| px[i] * v[i]).sum();
    let uy: f64 = (0..n).map(|j| py[j] * v[j]).sum();
    let top = v.last().copied().unwrap_or(0.0) as usize;
    let mut p_sum = vec![0.0; 2 * top + 1];
    let mut p_diff = vec![0.0; top + 1];
    let (mut auto, mut prom, mut shade, mut tend, mut contrast) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut corm, mut varx, mut vary, mut energy, mut hxy, mut hxy1, mut maxp) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0f64);
    for i in 0..n {
        for j in 0..n {
            let q = p[i * n + j];
            if q == 0.0 {
                continue;
            }
            let (a, b) = (v[i], v[j]);
            auto += q * a * b;
            let c = a + b - ux - uy;
            let c2 = c * c;
            tend += q * c2;
            shade += q * c2 * c;
            prom += q * c2 * c2;
            contrast += q * (a - b) * (a - b);
            corm += q * (a - ux) * (b - uy);
            varx += q * (a - ux) * (a - ux);
            vary += q * (b - uy) * (b - uy);
            energy += q * q;
            hxy -= plogp(q, standard);
            let pp = px[i] * py[j];
            hxy1 -= q * if pyr { (pp + EPS).log2() } else { pp.log2() };
            maxp = maxp.max(q);
            p_sum[(a + b) as usize] += q;
            p_diff[(a - b).abs() as usize] += q;
        }
    }
    let hx: f64 = -px.iter().map(|q| plogp(*q, standard)).sum::<f64>();
    let hy: f64 = -py.iter().map(|q| plogp(*q, standard)).sum::<f64>();
    let hxy2: f64 = -px
        .iter()
        .map(|a| py.iter().map(|b| plogp(a * b, standard)).sum::<f64>())
        .sum::<f64>();

    let sig = varx.sqrt() * vary.sqrt();
    let correlation = if sig == 0.0 {
        // pyradiomics: 1 by convention; IBSI leaves it undefined
        if pyr {
            1.0
        } else {
            f64::NAN
        }
    } else if pyr {
        corm / (sig + EPS)
    } else {
        corm / sig
    };
    let div = hx.max(hy);
    let imc1 = if div != 0.0 {
        (hxy - hxy1) / div
    } else if pyr {
        0.0
    } else {
        f64::NAN
    };
    let imc2 = if hxy2 == hxy {
        0.0
    } else {
        let t = 1.0 - (-2.0 * (hxy2 - hxy)).exp();
        // rounding can put HXY above HXY2: numpy's sqrt gives NaN there
        // (skipped by the average); IBSI's value is 0
        if t < 0.0 && !pyr {
            0.0
        } else {
            t.sqrt()
        }
    };

    let ng = map.ng;
    let (mut diff_avg, mut diff_ent, mut idm, mut idmn, mut id, mut idn, mut inv_var) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, q) in p_diff.iter().enumerate() {
        let k = k as f64;
        diff_avg += k * q;
        diff_ent -= plogp(*q, standard);
        idm += q / (1.0 + k * k);
        idmn += q / (1.0 + k * k / (ng * ng));
        id += q / (1.0 + k);
        idn += q / (1.0 + k / ng);
        if k > 0.0 {
            inv_var += q / (k * k);
        }
    }
    let diff_var: f64 = p_diff
        .iter()
        .enumerate()
        .map(|(k, q)| q * (k as f64 - diff_avg).powi(2))
        .sum();
    let sum_avg: f64 = p_sum.iter().enumerate().map(|(k, q)| k as f64 * q).sum();
    let sum_ent: f64 = -p_sum.iter().map(|q| plogp(*q, standard)).sum::<f64>();

    [
        auto,
        ux,
        prom,
        shade,
        tend,
        contrast,
        correlation,
        diff_avg,
        diff_ent,
        diff_var,
        energy,
        hxy,
        imc1,
        imc2,
        idm,
        idmn,
        id,
        idn,
        inv_var,
        maxp,
        sum_avg,
        sum_ent,
        varx,
        mcc(p, &px, &py, n, map.rows, pyr),
    ]
}

/// Maximal correlation coefficient: the square root of the second largest
/// eigenvalue of `Q(i, j) = sum_k p(i,k) p(j,k) / (px(i) py(k))`.
///
/// Q is similar to the symmetric `S = A Aᵀ` with `A(i,k) = p(i,k) /
/// sqrt(px(i) py(k))` (Q = D S D⁻¹, D = diag(sqrt px)), restricted to the
/// rows with `px > 0`; every row with `px = 0` is a zero row of Q and adds an
/// eigenvalue 0. So the eigenvalues are real and a symmetric solver suffices.
/// pyradiomics adds eps to Q's denominator, a relative change of
/// eps / (px py), far below any tolerance for a populated matrix.
fn mcc(p: &[f64], px: &[f64], py: &[f64], n: usize, rows_total: usize, pyr: bool) -> f64 {
    if rows_total < 2 {
        // pyradiomics: a flat region has one eigenvalue, MCC 1 by convention
        return if pyr { 1.0 } else { f64::NAN };
    }
    let rows: Vec<usize> = (0..n).filter(|i| px[*i] > 0.0).collect();
    let cols: Vec<usize> = (0..n).filter(|k| py[*k] > 0.0).collect();
    let m = rows.len();
    let a: Vec<Vec<f64>> = rows
        .iter()
        .map(|&i| {
            cols.iter()
                .map(|&k| p[i * n + k] / (px[i] * py[k]).sqrt())
                .collect()
        })
        .collect();
    let mut s = vec![0.0; m * m];
    for r in 0..m {
        for c in r..m {
            let v: f64 = a[r].iter().zip(&a[c]).map(|(x, y)| x * y).sum();
            s[r * m + c] = v;
            s[c * m + r] = v;
        }
    }
    let mut eig = largest_eigenvalues(s, m, 2);
    // zero rows of Q
    eig.extend(std::iter::repeat_n(0.0, rows_total.saturating_sub(m)));
    eig.sort_by(|x, y| y.total_cmp(x));
    eig.get(1).map_or(f64::NAN, |l| l.max(0.0).sqrt())
}

/// The `count` largest eigenvalues (descending) of a symmetric `m × m`
/// matrix (row-major): Householder reduction to tridiagonal form, then
/// bisection with Sturm counts. O(m³), with no iteration that can fail to
/// converge.
fn largest_eigenvalues(mut a: Vec<f64>, m: usize, count: usize) -> Vec<f64> {
    if m == 0 {
        return Vec::new();
    }
    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    for k in 0..m.saturating_sub(2) {
        // reflect column k below the sub-diagonal onto its first entry; only
        // the trailing block (k+1.., k+1..) changes
        let lo = k + 1;
        let norm = (lo..m).map(|r| a[r * m + k].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if a[lo * m + k] > 0.0 { -norm } else { norm };
        for r in lo..m {
            v[r] = a[r * m + k];
        }
        v[lo] -= alpha;
        let vn = (lo..m).map(|r| v[r] * v[r]).sum::<f64>().sqrt();
        if vn == 0.0 {
            continue;
        }
        (lo..m).for_each(|r| v[r] /= vn);
        // B ← H B H with H = I - 2vvᵀ, as B - 2vwᵀ - 2wvᵀ, w = Bv - (vᵀBv)v
        for r in lo..m {
            let row = &a[r * m + lo..r * m + m];
            w[r] = row.iter().zip(&v[lo..m]).map(|(x, y)| x * y).sum();
        }
        let kk: f64 = (lo..m).map(|r| v[r] * w[r]).sum();
        (lo..m).for_each(|r| w[r] -= kk * v[r]);
        for r in lo..m {
            let (vr, wr) = (v[r], w[r]);
            let row = &mut a[r * m + lo..r * m + m];
            for ((x, vc), wc) in row.iter_mut().zip(&v[lo..m]).zip(&w[lo..m]) {
                *x -= 2.0 * (vr * wc + wr * vc);
            }
        }
        a[lo * m + k] = alpha;
        a[k * m + lo] = alpha;
        for r in (lo + 1)..m {
            a[r * m + k] = 0.0;
            a[k * m + r] = 0.0;
        }
    }
    let d: Vec<f64> = (0..m).map(|i| a[i * m + i]).collect();
    let e2: Vec<f64> = (0..m.saturating_sub(1))
        .map(|i| a[(i + 1) * m + i].powi(2))
        .collect();
    // Gershgorin bounds
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..m {
        let r =
            if i > 0 { e2[i - 1].sqrt() } else { 0.0 } + if i + 1 < m { e2[i].sqrt() } else { 0.0 };
        lo = lo.min(d[i] - r);
        hi = hi.max(d[i] + r);
    }
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let (lo, hi) = (lo - 1e-12 * span, hi + 1e-12 * span);
    // number of eigenvalues below x (Sturm sequence of the tridiagonal matrix)
    let below = |x: f64| -> usize {
        let mut n = 0;
        let mut q = 1.0;
        for i in 0..m {
            q = d[i] - x - if i > 0 { e2[i - 1] / q } else { 0.0 };
            if q == 0.0 {
                q = -f64::EPSILON * span;
            }
            if q < 0.0 {
                n += 1;
            }
        }
        n
    };
    (0..count.min(m))
        .map(|t| {
            // the k-th smallest (k = m-1-t): the smallest x with more than k eigenvalues below it
            let k = m - 1 - t;
            let (mut a, mut b) = (lo, hi);
            for _ in 0..200 {
                let mid = 0.5 * (a + b);
                if mid <= a || mid >= b {
                    break;
                }
                if below(mid) > k {
                    b = mid;
                } else {
                    a = mid;
                }
            }
            0.5 * (a + b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenvalues_of_a_tridiagonal_matrix() {
        // the second-difference matrix: eigenvalues 2 - 2cos(kπ/4)
        let a = vec![2.0, -1.0, 0.0, -1.0, 2.0, -1.0, 0.0, -1.0, 2.0];
        let e = largest_eigenvalues(a, 3, 3);
        let s2 = 2f64.sqrt();
        for (g, w) in e.iter().zip([2.0 + s2, 2.0, 2.0 - s2]) {
            assert!((g - w).abs() < 1e-12, "{e:?}");
        }
    }

    #[test]
    fn eigenvalues_of_a_dense_matrix_keep_trace_and_norm() {
        let m = 7;
        let mut a = vec![0.0; m * m];
        for r in 0..m {
            for c in r..m {
                let v = ((r * 31 + c * 17) % 11) as f64 - 5.0 + if r == c { 3.0 } else { 0.0 };
                a[r * m + c] = v;
                a[c * m + r] = v;
            }
        }
        let trace: f64 = (0..m).map(|i| a[i * m + i]).sum();
        let frob: f64 = a.iter().map(|x| x * x).sum();
        let e = largest_eigenvalues(a, m, m);
        assert!(e.windows(2).all(|w| w[0] >= w[1]), "{e:?}");
        assert!((e.iter().sum::<f64>() - trace).abs() < 1e-9, "{e:?}");
        assert!(
            (e.iter().map(|x| x * x).sum::<f64>() - frob).abs() < 1e-8,
            "{e:?}"
        );
    }
}
