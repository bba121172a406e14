//! Grey level run length matrix (GLRLM) features.
//!
//! pyradiomics' `RadiomicsGLRLM` and the IBSI 1 manual agree on every
//! formula here: grey levels and run lengths enter by their value, so the
//! empty rows and columns pyradiomics deletes change nothing, and
//! pyradiomics' run percentage divides by `sum(P·j)`, which is IBSI's `N_v`
//! (times the number of directions for a merged matrix). What differs is
//! `log2(p + eps)` (pyradiomics) against `log2 p` (IBSI) in the run entropy.
use ndarray::{ArrayView3, Axis};
use rayon::prelude::*;

use super::glcm::{angles, nan_mean, offset_norm, prepare, LevelMap};
use super::image::{Aggregation, Feature, Levels, Standard, TextureSettings, WeightingNorm};

/// pyradiomics' feature names, in the order `features` returns them.
pub const NAMES: [&str; 16] = [
    "ShortRunEmphasis",
    "LongRunEmphasis",
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "RunLengthNonUniformity",
    "RunLengthNonUniformityNormalized",
    "RunPercentage",
    "GrayLevelVariance",
    "RunVariance",
    "RunEntropy",
    "LowGrayLevelRunEmphasis",
    "HighGrayLevelRunEmphasis",
    "ShortRunLowGrayLevelEmphasis",
    "ShortRunHighGrayLevelEmphasis",
    "LongRunLowGrayLevelEmphasis",
    "LongRunHighGrayLevelEmphasis",
];

/// A run length matrix: `counts[level_index * max_run + (length - 1)]`.
struct Rlm {
    counts: Vec<f64>,
    max_run: usize,
}

/// GLRLM features of the ROI over all directions (3D, or 2.5D with
/// `force2d`). Runs follow the 13 (4 with `force2d`) unit directions;
/// pyradiomics ignores `distances` for the GLRLM, and so does this.
///
/// `settings.weighting_norm` (pyradiomics) weights each direction matrix by
/// its step length in mm and sums them; otherwise `Averaged` averages the
/// features of the direction matrices and `Merged` sums the matrices first.
pub fn features(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let Some((grid, map)) = prepare(levels, settings.standard) else {
        return nan_features();
    };
    let angles = angles(
        grid.dim(),
        &[1],
        settings.force2d,
        settings.force2d_dimension,
    );
    let mats: Vec<Rlm> = angles
        .par_iter()
        .map(|a| runs(grid.view(), &map, *a))
        .collect();
    let mats = combine(mats, &angles, levels.spacing, settings);
    average(
        mats.par_iter()
            .map(|m| matrix_features(m, &map, settings.standard))
            .collect(),
    )
}

/// IBSI "2D" GLRLM features: matrices per slice perpendicular to
/// `settings.force2d_dimension`, in-plane directions. `Averaged`: features
/// of every slice's every direction averaged ("2D, averaged"); `Merged`: each
/// slice's directions summed, features averaged over slices ("2D,
/// slice-merged").
pub fn features_2d(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let Some((grid, map)) = prepare(levels, settings.standard) else {
        return nan_features();
    };
    let axis = settings.force2d_dimension.min(2);
    let rows: Vec<[f64; 16]> = (0..grid.len_of(Axis(axis)))
        .into_par_iter()
        .flat_map_iter(|k| {
            let slice = grid
                .slice_axis(Axis(axis), ndarray::Slice::from(k..k + 1))
                .as_standard_layout()
                .into_owned();
            let angles = angles(slice.dim(), &[1], true, axis);
            let mats: Vec<Rlm> = angles
                .iter()
                .map(|a| runs(slice.view(), &map, *a))
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

fn average(rows: Vec<[f64; 16]>) -> Vec<Feature> {
    NAMES
        .iter()
        .enumerate()
        .map(|(f, n)| (*n, nan_mean(rows.iter().map(|r| r[f]))))
        .collect()
}

/// Runs of equal grey level along direction `a`, within the box; a voxel
/// outside the ROI ends a run. A run starts at a ROI voxel whose predecessor
/// (one step back along `a`) is outside the box or holds another level; it
/// is walked from there. Every voxel is read about twice, however many
/// lines cross the box and however much of it lies outside the ROI.
fn runs(grid: ArrayView3<u32>, map: &LevelMap, a: [isize; 3]) -> Rlm {
    let (nz, ny, nx) = grid.dim();
    let size = [nz, ny, nx];
    let max_run = nz.max(ny).max(nx);
    let mut counts = vec![0u32; map.values.len() * max_run];
    let owned;
    let data = match grid.as_slice() {
        Some(d) => d,
        None => {
            owned = grid.as_standard_layout().into_owned();
            owned.as_slice().unwrap_or(&[])
        }
    };
    let step = a[0] * (ny * nx) as isize + a[1] * nx as isize + a[2];
    // Whether coordinate p moved by d stays in 0..n.
    let inside = |p: usize, d: isize, n: usize| p.checked_add_signed(d).is_some_and(|q| q < n);
    // Steps that remain along the axis from p before leaving 0..n.
    let ahead = |p: usize, d: isize, n: usize| match d.signum() {
        1 => n - 1 - p,
        -1 => p,
        _ => usize::MAX,
    };
    for z in 0..nz {
        let back_z = inside(z, -a[0], nz);
        let ahead_z = ahead(z, a[0], size[0]);
        for y in 0..ny {
            let back_zy = back_z && inside(y, -a[1], ny);
            let ahead_zy = ahead_z.min(ahead(y, a[1], size[1]));
            let row = (z * ny + y) * nx;
            for (x, &g) in data[row..row + nx].iter().enumerate() {
                if g == 0 {
                    continue;
                }
                let i = row + x;
                if back_zy && inside(x, -a[2], nx) && data[i.wrapping_add_signed(-step)] == g {
                    continue;
                }
                let more = ahead_zy.min(ahead(x, a[2], size[2]));
                let mut len = 1;
                let mut j = i;
                while len <= more {
                    j = j.wrapping_add_signed(step);
                    if data[j] != g {
                        break;
                    }
                    len += 1;
                }
                // the prepared grid holds matrix indices + 1
                counts[(g as usize - 1) * max_run + len - 1] += 1;
            }
        }
    }
    Rlm {
        counts: counts.into_iter().map(f64::from).collect(),
        max_run,
    }
}

/// Weighted sum (weightingNorm: each direction's matrix times its step
/// length in mm), plain sum (Merged) or one matrix per direction
/// (Averaged); directions without runs dropped, as pyradiomics deletes
/// empty angles.
fn combine(
    mats: Vec<Rlm>,
    angles: &[[isize; 3]],
    spacing: [f64; 3],
    settings: &TextureSettings,
) -> Vec<Rlm> {
    let mats = if settings.weighting_norm.is_some() || settings.aggregation == Aggregation::Merged {
        let norm = settings
            .weighting_norm
            .unwrap_or(WeightingNorm::NoWeighting);
        let mut sum: Option<Rlm> = None;
        for (m, a) in mats.into_iter().zip(angles) {
            let w = offset_norm(*a, spacing, norm);
            match sum.as_mut() {
                None => {
                    sum = Some(Rlm {
                        counts: m.counts.iter().map(|v| v * w).collect(),
                        max_run: m.max_run,
                    })
                }
                Some(s) => s
                    .counts
                    .iter_mut()
                    .zip(&m.counts)
                    .for_each(|(s, v)| *s += v * w),
            }
        }
        sum.into_iter().collect()
    } else {
        mats
    };
    mats.into_iter()
        .filter(|m| m.counts.iter().any(|v| *v > 0.0))
        .collect()
}

/// All features of one run length matrix, in `NAMES` order.
fn matrix_features(m: &Rlm, map: &LevelMap, standard: Standard) -> [f64; 16] {
    let nr = m.max_run;
    let v = &map.values;
    let total: f64 = m.counts.iter().sum();
    let mut pg = vec![0.0; v.len()];
    let mut pr = vec![0.0; nr];
    let (mut srlge, mut srhge, mut lrlge, mut lrhge, mut entropy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (g, row) in m.counts.chunks(nr).enumerate() {
        let i2 = v[g] * v[g];
        for (r, c) in row.iter().enumerate() {
            if *c == 0.0 {
                continue;
            }
            let j2 = ((r + 1) * (r + 1)) as f64;
            pg[g] += c;
            pr[r] += c;
            srlge += c / (i2 * j2);
            srhge += c * i2 / j2;
            lrlge += c * j2 / i2;
            lrhge += c * i2 * j2;
            let p = c / total;
            entropy -= match standard {
                Standard::Pyradiomics => p * (p + f64::EPSILON).log2(),
                Standard::Ibsi => p * p.log2(),
            };
        }
    }
    let j = |r: usize| (r + 1) as f64;
    let sre: f64 = pr.iter().enumerate().map(|(r, c)| c / (j(r) * j(r))).sum();
    let lre: f64 = pr.iter().enumerate().map(|(r, c)| c * j(r) * j(r)).sum();
    let gln: f64 = pg.iter().map(|c| c * c).sum();
    let rln: f64 = pr.iter().map(|c| c * c).sum();
    let voxels: f64 = pr.iter().enumerate().map(|(r, c)| c * j(r)).sum();
    let mu_i: f64 = pg.iter().zip(v).map(|(c, i)| c / total * i).sum();
    let glv: f64 = pg
        .iter()
        .zip(v)
        .map(|(c, i)| c / total * (i - mu_i).powi(2))
        .sum();
    let mu_j: f64 = pr.iter().enumerate().map(|(r, c)| c / total * j(r)).sum();
    let rv: f64 = pr
        .iter()
        .enumerate()
        .map(|(r, c)| c / total * (j(r) - mu_j).powi(2))
        .sum();
    let lglre: f64 = pg.iter().zip(v).map(|(c, i)| c / (i * i)).sum();
    let hglre: f64 = pg.iter().zip(v).map(|(c, i)| c * i * i).sum();
    [
        sre / total,
        lre / total,
        gln / total,
        gln / (total * total),
        rln / total,
        rln / (total * total),
        total / voxels,
        glv,
        rv,
        entropy,
        lglre / total,
        hglre / total,
        srlge / total,
        srhge / total,
        lrlge / total,
        lrhge / total,
    ]
}
