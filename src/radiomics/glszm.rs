//! Grey level size zone matrix (GLSZM) features: pyradiomics'
//! `RadiomicsGLSZM` and IBSI 1's GLSZM (section 3.8). A zone is a set of
//! connected ROI voxels of one grey level, connected through any of the 26
//! neighbours (8 in-plane with force2D); pyradiomics' GLSZM takes no
//! `distances`.
use std::collections::BTreeMap;

use ndarray::ArrayView3;
use rayon::prelude::*;

use super::image::{Feature, Levels, TextureSettings};
use super::ngtdm::{average, neighbour_offsets, slices, Padded};

/// pyradiomics' feature names, in its documentation order.
pub const NAMES: [&str; 16] = [
    "SmallAreaEmphasis",
    "LargeAreaEmphasis",
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "SizeZoneNonUniformity",
    "SizeZoneNonUniformityNormalized",
    "ZonePercentage",
    "GrayLevelVariance",
    "ZoneVariance",
    "ZoneEntropy",
    "LowGrayLevelZoneEmphasis",
    "HighGrayLevelZoneEmphasis",
    "SmallAreaLowGrayLevelEmphasis",
    "SmallAreaHighGrayLevelEmphasis",
    "LargeAreaLowGrayLevelEmphasis",
    "LargeAreaHighGrayLevelEmphasis",
];

/// All features of the class. The two standards agree here: pyradiomics
/// drops empty grey levels, IBSI keeps them, but an empty row adds zero to
/// every sum and the grey level values (not row indices) are the weights in
/// both. An empty ROI gives NaN for every feature.
pub fn features(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let offsets = neighbour_offsets(&[1], settings.force2d, settings.force2d_dimension);
    compute(&zones(levels.grid.view(), &offsets))
}

/// IBSI 2D (`merged == false`: zones per slice, features averaged over
/// slices) or 2.5D (`merged == true`: the slices' zones counted in one
/// matrix). Slices across `settings.force2d_dimension`; 8-connectivity.
pub fn features_slicewise(
    levels: &Levels,
    settings: &TextureSettings,
    merged: bool,
) -> Vec<Feature> {
    let axis = settings.force2d_dimension.min(2);
    let offsets = neighbour_offsets(&[1], true, axis);
    let mats: Vec<Zones> = slices(levels.grid.view(), axis)
        .into_par_iter()
        .map(|s| zones(s, &offsets))
        .collect();
    if merged {
        let mut total = Zones::default();
        for m in &mats {
            for (k, c) in &m.counts {
                *total.counts.entry(*k).or_insert(0.0) += c;
            }
        }
        compute(&total)
    } else {
        average(mats.iter().map(compute).collect(), &NAMES)
    }
}

/// The size zone matrix, sparse: (grey level, zone size) → number of zones.
/// Sizes run up to the voxel count, so a dense matrix would not scale.
#[derive(Debug, Clone, Default)]
struct Zones {
    counts: BTreeMap<(u32, usize), f64>,
}

/// Flood-fills every zone once, with an explicit stack (zones of a CT ROI
/// can hold 10^5 voxels, too deep for recursion).
fn zones(grid: ArrayView3<u32>, offsets: &[[isize; 3]]) -> Zones {
    // Padded: the flood fill steps to neighbours without bounds checks or
    // coordinates (the zeros of the border are never part of a zone).
    let g = Padded::new(grid, offsets);
    let mut done: Vec<bool> = g.data.iter().map(|l| *l == 0).collect();
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Zones::default();
    for z in 0..g.shape[0] {
        for y in 0..g.shape[1] {
            let row = g.row(z, y);
            for x in 0..g.shape[2] {
                let start = row + x;
                if done[start] {
                    continue;
                }
                let level = g.data[start];
                done[start] = true;
                stack.push(start);
                let mut size = 0usize;
                while let Some(p) = stack.pop() {
                    size += 1;
                    for d in &g.steps {
                        let k = p.wrapping_add_signed(*d);
                        if !done[k] && g.data[k] == level {
                            done[k] = true;
                            stack.push(k);
                        }
                    }
                }
                *out.counts.entry((level, size)).or_insert(0.0) += 1.0;
            }
        }
    }
    out
}

fn compute(m: &Zones) -> Vec<Feature> {
    let mut pg: BTreeMap<u32, f64> = BTreeMap::new();
    let mut ps: BTreeMap<usize, f64> = BTreeMap::new();
    for ((i, j), c) in &m.counts {
        *pg.entry(*i).or_insert(0.0) += c;
        *ps.entry(*j).or_insert(0.0) += c;
    }
    let nz: f64 = ps.values().sum();
    let np: f64 = ps.iter().map(|(j, c)| *j as f64 * c).sum();
    if nz <= 0.0 || np <= 0.0 {
        return NAMES.iter().map(|n| (*n, f64::NAN)).collect();
    }
    let pg: Vec<(f64, f64)> = pg.into_iter().map(|(i, c)| (i as f64, c)).collect();
    let ps: Vec<(f64, f64)> = ps.into_iter().map(|(j, c)| (j as f64, c)).collect();
    let e: Vec<(f64, f64, f64)> = m
        .counts
        .iter()
        .map(|((i, j), c)| (*i as f64, *j as f64, *c))
        .collect();

    let gln = total(pg.iter().map(|(_, c)| c * c)) / nz;
    let szn = total(ps.iter().map(|(_, c)| c * c)) / nz;
    // pyradiomics adds eps inside the log (absent zero entries add 0 there too).
    let eps = f64::EPSILON;
    vec![
        (
            "SmallAreaEmphasis",
            total(ps.iter().map(|(j, c)| c / (j * j))) / nz,
        ),
        (
            "LargeAreaEmphasis",
            total(ps.iter().map(|(j, c)| c * j * j)) / nz,
        ),
        ("GrayLevelNonUniformity", gln),
        ("GrayLevelNonUniformityNormalized", gln / nz),
        ("SizeZoneNonUniformity", szn),
        ("SizeZoneNonUniformityNormalized", szn / nz),
        ("ZonePercentage", nz / np),
        ("GrayLevelVariance", variance(&pg, nz)),
        ("ZoneVariance", variance(&ps, nz)),
        (
            "ZoneEntropy",
            -total(e.iter().map(|(_, _, c)| c / nz * (c / nz + eps).log2())),
        ),
        (
            "LowGrayLevelZoneEmphasis",
            total(pg.iter().map(|(i, c)| c / (i * i))) / nz,
        ),
        (
            "HighGrayLevelZoneEmphasis",
            total(pg.iter().map(|(i, c)| c * i * i)) / nz,
        ),
        (
            "SmallAreaLowGrayLevelEmphasis",
            total(e.iter().map(|(i, j, c)| c / (i * i * j * j))) / nz,
        ),
        (
            "SmallAreaHighGrayLevelEmphasis",
            total(e.iter().map(|(i, j, c)| c * i * i / (j * j))) / nz,
        ),
        (
            "LargeAreaLowGrayLevelEmphasis",
            total(e.iter().map(|(i, j, c)| c * j * j / (i * i))) / nz,
        ),
        (
            "LargeAreaHighGrayLevelEmphasis",
            total(e.iter().map(|(i, j, c)| c * i * i * j * j)) / nz,
        ),
    ]
}

fn total(it: impl Iterator<Item = f64>) -> f64 {
    it.sum()
}

/// Variance of a marginal `(value, count)` normalised by `n`.
fn variance(marginal: &[(f64, f64)], n: f64) -> f64 {
    let mu: f64 = marginal.iter().map(|(v, c)| v * c / n).sum();
    marginal
        .iter()
        .map(|(v, c)| c / n * (v - mu) * (v - mu))
        .sum()
}
