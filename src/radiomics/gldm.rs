//! Grey level dependence matrix (GLDM) features: pyradiomics'
//! `RadiomicsGLDM`, which is IBSI 1's neighbouring grey level dependence
//! matrix (NGLDM, section 3.10) with Chebyshev distance 1 and coarseness
//! alpha = `gldm_a`.
use ndarray::ArrayView3;
use rayon::prelude::*;

use super::image::{Feature, Levels, Standard, TextureSettings};
use super::ngtdm::{average, neighbour_offsets, slices, Padded};

/// pyradiomics' feature names. Its two deprecated GLDM features
/// (GrayLevelNonUniformityNormalized, DependencePercentage) compute no value
/// there and are not in its baselines, so pyradiomics mode omits them.
pub const NAMES: [&str; 14] = [
    "SmallDependenceEmphasis",
    "LargeDependenceEmphasis",
    "GrayLevelNonUniformity",
    "DependenceNonUniformity",
    "DependenceNonUniformityNormalized",
    "GrayLevelVariance",
    "DependenceVariance",
    "DependenceEntropy",
    "LowGrayLevelEmphasis",
    "HighGrayLevelEmphasis",
    "SmallDependenceLowGrayLevelEmphasis",
    "SmallDependenceHighGrayLevelEmphasis",
    "LargeDependenceLowGrayLevelEmphasis",
    "LargeDependenceHighGrayLevelEmphasis",
];

/// Features IBSI defines that pyradiomics does not compute, added in
/// `Standard::Ibsi`: normalised grey level non-uniformity (5SPA), dependence
/// count percentage (6XV8) and dependence count energy (CAS9).
pub const IBSI_EXTRA: [&str; 3] = [
    "GrayLevelNonUniformityNormalized",
    "DependencePercentage",
    "DependenceEnergy",
];

/// All features of the class. An empty ROI gives NaN for every feature
/// (pyradiomics refuses such a mask before any class runs).
pub fn features(levels: &Levels, settings: &TextureSettings) -> Vec<Feature> {
    let offsets = neighbour_offsets(
        &settings.distances,
        settings.force2d,
        settings.force2d_dimension,
    );
    let m = matrix(levels.grid.view(), levels.ng, &offsets, settings.gldm_a);
    compute(&m, settings.standard)
}

/// IBSI 2D (`merged == false`: features per slice, averaged) or 2.5D
/// (`merged == true`: slice matrices summed). Slices across
/// `settings.force2d_dimension`; neighbours in-plane only.
pub fn features_slicewise(
    levels: &Levels,
    settings: &TextureSettings,
    merged: bool,
) -> Vec<Feature> {
    let axis = settings.force2d_dimension.min(2);
    let offsets = neighbour_offsets(&settings.distances, true, axis);
    let mats: Vec<Matrix> = slices(levels.grid.view(), axis)
        .into_par_iter()
        .map(|s| matrix(s, levels.ng, &offsets, settings.gldm_a))
        .collect();
    if merged {
        let mut total = Matrix::new(levels.ng, offsets.len());
        for m in &mats {
            total.add(m);
        }
        compute(&total, settings.standard)
    } else {
        let names: Vec<&'static str> = names(settings.standard);
        average(
            mats.iter().map(|m| compute(m, settings.standard)).collect(),
            &names,
        )
    }
}

fn names(standard: Standard) -> Vec<&'static str> {
    let mut v = NAMES.to_vec();
    if standard == Standard::Ibsi {
        v.extend(IBSI_EXTRA);
    }
    v
}

/// Counts of voxels by grey level (row) and dependence (column: 1 + the
/// number of neighbours within alpha of the voxel's level; column 0 unused).
#[derive(Debug, Clone)]
struct Matrix {
    cols: usize,
    counts: Vec<f64>,
}

impl Matrix {
    fn new(ng: u32, n_offsets: usize) -> Matrix {
        let cols = n_offsets + 2;
        Matrix {
            cols,
            counts: vec![0.0; (ng as usize + 1) * cols],
        }
    }
    fn add(&mut self, o: &Matrix) {
        // Same neighbourhood, so same column count; a longer matrix (higher
        // levels) extends this one.
        if o.counts.len() > self.counts.len() {
            self.counts.resize(o.counts.len(), 0.0);
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
    }
}

fn matrix(grid: ArrayView3<u32>, ng: u32, offsets: &[[isize; 3]], alpha: f64) -> Matrix {
    let g = Padded::new(grid, offsets);
    let top = g.data.iter().copied().max().unwrap_or(0).max(ng);
    let empty = || Matrix::new(top, offsets.len());
    (0..g.shape[0])
        .into_par_iter()
        .fold(empty, |mut m, z| {
            for y in 0..g.shape[1] {
                let row = g.row(z, y);
                for x in 0..g.shape[2] {
                    let k = row + x;
                    let level = g.data[k];
                    if level == 0 {
                        continue;
                    }
                    let mut dep = 1usize;
                    if (0.0..1.0).contains(&alpha) {
                        // alpha in [0, 1) (pyradiomics' default 0): only the
                        // same level depends (a ROI level is never 0).
                        for d in &g.steps {
                            dep += (g.data[k.wrapping_add_signed(*d)] == level) as usize;
                        }
                    } else {
                        for d in &g.steps {
                            let nl = g.data[k.wrapping_add_signed(*d)];
                            if nl != 0 && (level.abs_diff(nl) as f64) <= alpha {
                                dep += 1;
                            }
                        }
                    }
                    m.counts[level as usize * m.cols + dep] += 1.0;
                }
            }
            m
        })
        .reduce(empty, |mut a, b| {
            a.add(&b);
            a
        })
}

fn compute(m: &Matrix, standard: Standard) -> Vec<Feature> {
    let names = names(standard);
    let cols = m.cols;
    let rows = m.counts.len() / cols.max(1);
    // Marginals over grey levels present and dependences present (pyradiomics
    // deletes empty rows and columns; with IBSI's full 1..=ng they add zero).
    let mut pg: Vec<(f64, f64)> = Vec::new();
    let mut pd = vec![0.0; cols];
    let mut entries: Vec<(f64, f64, f64)> = Vec::new();
    for i in 1..rows {
        let row = &m.counts[i * cols..(i + 1) * cols];
        let total: f64 = row.iter().sum();
        if total > 0.0 {
            pg.push((i as f64, total));
        }
        for (j, c) in row.iter().enumerate() {
            if *c > 0.0 {
                pd[j] += c;
                entries.push((i as f64, j as f64, *c));
            }
        }
    }
    let pd: Vec<(f64, f64)> = pd
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0.0)
        .map(|(j, c)| (j as f64, *c))
        .collect();
    let nz: f64 = pd.iter().map(|p| p.1).sum();
    if nz <= 0.0 {
        return names.into_iter().map(|n| (n, f64::NAN)).collect();
    }

    let sde = pd.iter().map(|(j, c)| c / (j * j)).sum::<f64>() / nz;
    let lde = pd.iter().map(|(j, c)| c * j * j).sum::<f64>() / nz;
    let gln = pg.iter().map(|(_, c)| c * c).sum::<f64>() / nz;
    let dn = pd.iter().map(|(_, c)| c * c).sum::<f64>() / nz;
    let dnn = dn / nz;
    let glv = variance(&pg, nz);
    let dv = variance(&pd, nz);
    // pyradiomics adds eps inside the log; zero entries are not stored here
    // (they contribute 0 there too).
    let eps = f64::EPSILON;
    let entropy = -entries
        .iter()
        .map(|(_, _, c)| c / nz * (c / nz + eps).log2())
        .sum::<f64>();
    let lgle = pg.iter().map(|(i, c)| c / (i * i)).sum::<f64>() / nz;
    let hgle = pg.iter().map(|(i, c)| c * i * i).sum::<f64>() / nz;
    let sdlgle = entries
        .iter()
        .map(|(i, j, c)| c / (i * i * j * j))
        .sum::<f64>()
        / nz;
    let sdhgle = entries
        .iter()
        .map(|(i, j, c)| c * i * i / (j * j))
        .sum::<f64>()
        / nz;
    let ldlgle = entries
        .iter()
        .map(|(i, j, c)| c * j * j / (i * i))
        .sum::<f64>()
        / nz;
    let ldhgle = entries
        .iter()
        .map(|(i, j, c)| c * i * i * j * j)
        .sum::<f64>()
        / nz;
    let mut out = vec![
        ("SmallDependenceEmphasis", sde),
        ("LargeDependenceEmphasis", lde),
        ("GrayLevelNonUniformity", gln),
        ("DependenceNonUniformity", dn),
        ("DependenceNonUniformityNormalized", dnn),
        ("GrayLevelVariance", glv),
        ("DependenceVariance", dv),
        ("DependenceEntropy", entropy),
        ("LowGrayLevelEmphasis", lgle),
        ("HighGrayLevelEmphasis", hgle),
        ("SmallDependenceLowGrayLevelEmphasis", sdlgle),
        ("SmallDependenceHighGrayLevelEmphasis", sdhgle),
        ("LargeDependenceLowGrayLevelEmphasis", ldlgle),
        ("LargeDependenceHighGrayLevelEmphasis", ldhgle),
    ];
    if standard == Standard::Ibsi {
        // Every ROI voxel is counted once, so the dependence count
        // percentage (counts / voxels) is 1 by construction.
        out.push(("GrayLevelNonUniformityNormalized", gln / nz));
        out.push(("DependencePercentage", 1.0));
        out.push((
            "DependenceEnergy",
            entries
                .iter()
                .map(|(_, _, c)| (c / nz) * (c / nz))
                .sum::<f64>(),
        ));
    }
    out
}

/// Variance of a marginal `(value, count)` normalised by `n`.
fn variance(marginal: &[(f64, f64)], n: f64) -> f64 {
    let mu: f64 = marginal.iter().map(|(v, c)| v * c / n).sum();
    marginal
        .iter()
        .map(|(v, c)| c / n * (v - mu) * (v - mu))
        .sum()
}
