//! Grey-level discretisation of the ROI's intensities.
use ndarray::Array3;

use super::image::{Levels, Roi, Standard};

/// How intensities are binned into grey levels.
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

/// `numpy.digitize(x, edges)` for increasing edges: the i with `edges[i-1] <= x < edges[i]`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyradiomics_bins_start_at_a_multiple_of_the_width_below_the_minimum() {
        // min 3 → first edge 0 (3 - 3 % 25); max 60 + 2·25 → edges 0, 25, 50, 75, 100.
        let e = bin_edges(
            &[3.0, 30.0, 60.0],
            Binning::Width(25.0),
            Standard::Pyradiomics,
            Some(-10.0),
        );
        assert_eq!(e, vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(digitize(3.0, &e), 1);
        assert_eq!(digitize(25.0, &e), 2);
        assert_eq!(digitize(60.0, &e), 3);
        // Negative values: Python's % keeps the divisor's sign.
        let e = bin_edges(
            &[-1010.0, -990.0],
            Binning::Width(25.0),
            Standard::Pyradiomics,
            None,
        );
        assert_eq!(e[0], -1025.0);
    }

    #[test]
    fn ibsi_fixed_bin_size_starts_at_the_lower_resegmentation_bound() {
        // IBSI 1, fixed bin size: X_d = floor((X - X_min) / w_b) + 1 with
        // X_min the lower bound of the resegmentation range, not the ROI minimum.
        let e = bin_edges(
            &[3.0, 30.0, 60.0],
            Binning::Width(25.0),
            Standard::Ibsi,
            Some(-10.0),
        );
        assert_eq!(e[0], -10.0);
        for (x, level) in [(3.0, 1), (14.9, 1), (15.0, 2), (30.0, 2), (60.0, 3)] {
            let expected = ((x - -10.0) / 25.0_f64).floor() as u32 + 1;
            assert_eq!(expected, level);
            assert_eq!(digitize(x, &e), level, "{x}");
        }
        // Without a resegmentation range, IBSI and pyradiomics agree.
        assert_eq!(
            bin_edges(&[3.0, 60.0], Binning::Width(25.0), Standard::Ibsi, None),
            bin_edges(
                &[3.0, 60.0],
                Binning::Width(25.0),
                Standard::Pyradiomics,
                None
            )
        );
    }

    #[test]
    fn fixed_bin_count_puts_the_maximum_in_the_top_bin() {
        let e = bin_edges(
            &[0.0, 5.0, 10.0],
            Binning::Count(4),
            Standard::Pyradiomics,
            None,
        );
        assert_eq!(digitize(0.0, &e), 1);
        assert_eq!(digitize(10.0, &e), 4);
        assert_eq!(digitize(5.0, &e), 3);
    }
}
