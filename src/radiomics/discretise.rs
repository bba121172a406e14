//! Grey-level discretisation of the ROI's intensities.
use ndarray::Array3;

use super::image::{Levels, Roi, Standard};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binning {
    /// Fixed bin size (pyradiomics `binWidth`, default 25).
    Width(f64),
    /// Fixed bin number (pyradiomics `binCount`).
    Count(usize),
    /// Intensities are already grey levels 1, 2, … (the IBSI digital phantom).
    None,
}

/// The bin edges pyradiomics' `getBinEdges` makes for the ROI's values.
/// `lower_bound`: in IBSI mode with fixed bin size, bins start at the lower
/// resegmentation bound when there is one (IBSI 1, 2.7.2); pyradiomics
/// starts them at the multiple of the width at or below the minimum.
pub fn bin_edges(
    values: &[f64],
    binning: Binning,
    standard: Standard,
    lower_bound: Option<f64>,
) -> Vec<f64> {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    match binning {
        Binning::Width(w) => {
            let low = match (standard, lower_bound) {
                (Standard::Ibsi, Some(b)) => b,
                _ => min - min.rem_euclid(w),
            };
            let high = max + 2.0 * w;
            // numpy.arange(low, high, w): ceil((high - low) / w) values low + i*w
            let n = ((high - low) / w).ceil().max(1.0) as usize;
            let mut e: Vec<f64> = (0..n).map(|i| low + i as f64 * w).collect();
            if e.len() == 1 {
                e = vec![e[0] - 0.5, e[0] + 0.5];
            }
            e
        }
        Binning::Count(n) => {
            // numpy.histogram(values, n)[1] with the last edge raised by 1
            let (lo, hi) = if min == max {
                (min - 0.5, max + 0.5)
            } else {
                (min, max)
            };
            let mut e: Vec<f64> = (0..=n)
                .map(|i| lo + (hi - lo) * i as f64 / n as f64)
                .collect();
            if let Some(last) = e.last_mut() {
                *last += 1.0;
            }
            e
        }
        Binning::None => Vec::new(),
    }
}

/// numpy.digitize(x, edges) for increasing edges: the i with edges[i-1] <= x < edges[i].
pub fn digitize(x: f64, edges: &[f64]) -> u32 {
    edges.partition_point(|e| *e <= x) as u32
}

/// Discretises the ROI voxels: 0 outside the mask, 1.. inside.
pub fn discretise(
    roi: &Roi,
    binning: Binning,
    standard: Standard,
    lower_bound: Option<f64>,
) -> Levels {
    let values: Vec<f64> = roi
        .image
        .iter()
        .zip(roi.mask.iter())
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v)
        .collect();
    let edges = bin_edges(&values, binning, standard, lower_bound);
    let grid: Array3<u32> = ndarray::Zip::from(&roi.image)
        .and(&roi.mask)
        .map_collect(|v, m| {
            if !*m {
                0
            } else if binning == Binning::None {
                v.round().max(1.0) as u32
            } else {
                digitize(*v, &edges).max(1)
            }
        });
    let ng = grid.iter().copied().max().unwrap_or(0);
    Levels {
        grid,
        ng,
        spacing: roi.spacing,
    }
}
