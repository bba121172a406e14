//! Grey level distance zone matrix (GLDZM) features, IBSI 1 section 3.7
//! (pyradiomics has no such class). Zones are those of the GLSZM (26-
//! connected, 8 in-plane); a zone's distance is the smallest distance of its
//! voxels to the ROI's edge, counted in face-connected steps (6-, in-plane
//! 4-connectivity), a voxel on the edge being at distance 1.
//!
//! Self-contained apart from the shared image types, so it can be built on
//! its own.
use std::collections::{BTreeMap, VecDeque};

use ndarray::{ArrayView3, Axis};

use super::image::{Feature, Levels, TextureSettings};

/// Feature names, after pyradiomics' GLSZM names with "distance" for "size"
/// (IBSI ids in `features`' documentation).
pub const NAMES: [&str; 16] = [
    "SmallDistanceEmphasis",
    "LargeDistanceEmphasis",
    "LowGrayLevelZoneEmphasis",
    "HighGrayLevelZoneEmphasis",
    "SmallDistanceLowGrayLevelEmphasis",
    "SmallDistanceHighGrayLevelEmphasis",
    "LargeDistanceLowGrayLevelEmphasis",
    "LargeDistanceHighGrayLevelEmphasis",
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "ZoneDistanceNonUniformity",
    "ZoneDistanceNonUniformityNormalized",
    "ZonePercentage",
    "GrayLevelVariance",
    "ZoneDistanceVariance",
    "ZoneDistanceEntropy",
];

/// All features (IBSI 0GBI, MB4I, S1RA, K26C, RUVG, DKNJ, A7WM, KLTH, VFT7,
/// 7HP3, V294, IATH, VIWW, QK93, 7WT1, GBDU in `NAMES` order) over the
/// whole ROI; with `settings.force2d`, zone connectivity and edge distance
/// use in-plane steps only (across `force2d_dimension`), so zones stay
/// within a slice. The edge is the ROI mask's (the IBSI
/// morphological mask, the same as the intensity mask without
/// resegmentation). An empty ROI gives NaN for every feature.
pub fn features(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let skip = settings
        .force2d
        .then_some(settings.force2d_dimension.min(2));
    compute(&matrix(levels.grid.view(), skip))
}

/// IBSI 2D (`merged == false`: per slice, features averaged) or 2.5D
/// (`merged == true`: slice matrices summed). Slices across
/// `settings.force2d_dimension`; the edge distance is the slice's.
pub fn features_slicewise(
    levels: &Levels,
    settings: &TextureSettings,
    merged: bool,
) -> Vec<Feature> {
    let axis = settings.force2d_dimension.min(2);
    let grid = levels.grid.view();
    let mats: Vec<Zones> = (0..grid.len_of(Axis(axis)))
        .map(|k| grid.slice_axis(Axis(axis), (k..k + 1).into()))
        .filter(|s| s.iter().any(|l| *l != 0))
        .map(|s| matrix(s, Some(axis)))
        .collect();
    if merged {
        let mut total = Zones::default();
        for m in &mats {
            for (k, c) in &m.counts {
                *total.counts.entry(*k).or_insert(0.0) += c;
            }
            total.voxels += m.voxels;
        }
        return compute(&total);
    }
    let per: Vec<Vec<Feature>> = mats.iter().map(compute).collect();
    NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mean = if per.is_empty() {
                f64::NAN
            } else {
                per.iter().map(|f| f[i].1).sum::<f64>() / per.len() as f64
            };
            (*n, mean)
        })
        .collect()
}

/// (grey level, zone distance) → number of zones; and the ROI voxel count.
#[derive(Debug, Clone, Default)]
struct Zones {
    counts: BTreeMap<(u32, usize), f64>,
    voxels: f64,
}

fn matrix(grid: ArrayView3<u32>, skip_axis: Option<usize>) -> Zones {
    let (a, b, c) = grid.dim();
    let shape = [a, b, c];
    let data: Vec<u32> = grid.iter().copied().collect();
    let index = |p: [usize; 3]| (p[0] * shape[1] + p[1]) * shape[2] + p[2];
    let step = |p: [usize; 3], o: [isize; 3]| -> Option<[usize; 3]> {
        let mut q = [0usize; 3];
        for ax in 0..3 {
            let v = p[ax].checked_add_signed(o[ax])?;
            if v >= shape[ax] {
                return None;
            }
            q[ax] = v;
        }
        Some(q)
    };
    let mut zone_steps = Vec::new();
    let mut face_steps = Vec::new();
    for dz in -1isize..=1 {
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let o = [dz, dy, dx];
                if o == [0, 0, 0] || skip_axis.is_some_and(|s| o[s] != 0) {
                    continue;
                }
                zone_steps.push(o);
                if o.iter().filter(|v| **v != 0).count() == 1 {
                    face_steps.push(o);
                }
            }
        }
    }

    // Edge distance by breadth-first search from the edge voxels: those
    // with a face neighbour outside the ROI or outside the grid.
    let coords = |k: usize| {
        [
            k / (shape[1] * shape[2]),
            (k / shape[2]) % shape[1],
            k % shape[2],
        ]
    };
    let mut dist = vec![0usize; data.len()];
    let mut queue = VecDeque::new();
    for k in 0..data.len() {
        if data[k] == 0 {
            continue;
        }
        let p = coords(k);
        let edge = face_steps
            .iter()
            .any(|o| step(p, *o).is_none_or(|q| data[index(q)] == 0));
        if edge {
            dist[k] = 1;
            queue.push_back(k);
        }
    }
    while let Some(k) = queue.pop_front() {
        let p = coords(k);
        for o in &face_steps {
            if let Some(q) = step(p, *o) {
                let j = index(q);
                if data[j] != 0 && dist[j] == 0 {
                    dist[j] = dist[k] + 1;
                    queue.push_back(j);
                }
            }
        }
    }

    let mut out = Zones::default();
    let mut done: Vec<bool> = data.iter().map(|l| *l == 0).collect();
    let mut stack = Vec::new();
    for start in 0..data.len() {
        if done[start] {
            continue;
        }
        let level = data[start];
        done[start] = true;
        stack.push(start);
        let mut d = usize::MAX;
        while let Some(k) = stack.pop() {
            out.voxels += 1.0;
            d = d.min(dist[k]);
            let p = coords(k);
            for o in &zone_steps {
                if let Some(q) = step(p, *o) {
                    let j = index(q);
                    if !done[j] && data[j] == level {
                        done[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        *out.counts.entry((level, d)).or_insert(0.0) += 1.0;
    }
    out
}

fn compute(m: &Zones) -> Vec<Feature> {
    let mut pg: BTreeMap<u32, f64> = BTreeMap::new();
    let mut pd: BTreeMap<usize, f64> = BTreeMap::new();
    for ((i, j), c) in &m.counts {
        *pg.entry(*i).or_insert(0.0) += c;
        *pd.entry(*j).or_insert(0.0) += c;
    }
    let nz: f64 = pd.values().sum();
    if nz <= 0.0 || m.voxels <= 0.0 {
        return NAMES.iter().map(|n| (*n, f64::NAN)).collect();
    }
    let pg: Vec<(f64, f64)> = pg.into_iter().map(|(i, c)| (i as f64, c)).collect();
    let pd: Vec<(f64, f64)> = pd.into_iter().map(|(j, c)| (j as f64, c)).collect();
    let e: Vec<(f64, f64, f64)> = m
        .counts
        .iter()
        .map(|((i, j), c)| (*i as f64, *j as f64, *c))
        .collect();
    let total = |it: &mut dyn Iterator<Item = f64>| -> f64 { it.sum() };
    let gln = total(&mut pg.iter().map(|(_, c)| c * c)) / nz;
    let zdn = total(&mut pd.iter().map(|(_, c)| c * c)) / nz;
    vec![
        (
            "SmallDistanceEmphasis",
            total(&mut pd.iter().map(|(j, c)| c / (j * j))) / nz,
        ),
        (
            "LargeDistanceEmphasis",
            total(&mut pd.iter().map(|(j, c)| c * j * j)) / nz,
        ),
        (
            "LowGrayLevelZoneEmphasis",
            total(&mut pg.iter().map(|(i, c)| c / (i * i))) / nz,
        ),
        (
            "HighGrayLevelZoneEmphasis",
            total(&mut pg.iter().map(|(i, c)| c * i * i)) / nz,
        ),
        (
            "SmallDistanceLowGrayLevelEmphasis",
            total(&mut e.iter().map(|(i, j, c)| c / (i * i * j * j))) / nz,
        ),
        (
            "SmallDistanceHighGrayLevelEmphasis",
            total(&mut e.iter().map(|(i, j, c)| c * i * i / (j * j))) / nz,
        ),
        (
            "LargeDistanceLowGrayLevelEmphasis",
            total(&mut e.iter().map(|(i, j, c)| c * j * j / (i * i))) / nz,
        ),
        (
            "LargeDistanceHighGrayLevelEmphasis",
            total(&mut e.iter().map(|(i, j, c)| c * i * i * j * j)) / nz,
        ),
        ("GrayLevelNonUniformity", gln),
        ("GrayLevelNonUniformityNormalized", gln / nz),
        ("ZoneDistanceNonUniformity", zdn),
        ("ZoneDistanceNonUniformityNormalized", zdn / nz),
        ("ZonePercentage", nz / m.voxels),
        ("GrayLevelVariance", variance(&pg, nz)),
        ("ZoneDistanceVariance", variance(&pd, nz)),
        (
            "ZoneDistanceEntropy",
            -total(&mut e.iter().map(|(_, _, c)| c / nz * (c / nz).log2())),
        ),
    ]
}

/// Variance of a marginal `(value, count)` normalised by `n`.
fn variance(marginal: &[(f64, f64)], n: f64) -> f64 {
    let mu: f64 = marginal.iter().map(|(v, c)| v * c / n).sum();
    marginal
        .iter()
        .map(|(v, c)| c / n * (v - mu) * (v - mu))
        .sum()
}
