//! First-order features: pyradiomics' `firstorder` class and the IBSI
//! "Intensity-based statistical features" and "Intensity histogram features"
//! families.
use super::image::{Feature, Levels, Roi};

/// numpy's default (linear) percentile of sorted values, `q` in 0..=100.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    match sorted.get(i + 1) {
        Some(next) if frac > 0.0 => sorted[i] + (next - sorted[i]) * frac,
        _ => sorted[i],
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Central moment of order `k` about `mu`.
fn moment(v: &[f64], mu: f64, k: i32) -> f64 {
    v.iter().map(|x| (x - mu).powi(k)).sum::<f64>() / v.len() as f64
}

fn mean_abs_dev(v: &[f64], about: f64) -> f64 {
    v.iter().map(|x| (x - about).abs()).sum::<f64>() / v.len() as f64
}

/// Mean absolute deviation of the values within the closed 10–90th
/// percentile range, about their own mean.
fn robust_mad(sorted: &[f64]) -> f64 {
    let (p10, p90) = (percentile(sorted, 10.0), percentile(sorted, 90.0));
    let kept: Vec<f64> = sorted
        .iter()
        .copied()
        .filter(|x| *x >= p10 && *x <= p90)
        .collect();
    mean_abs_dev(&kept, mean(&kept))
}

fn roi_values(roi: &Roi) -> Vec<f64> {
    let mut v: Vec<f64> = roi
        .image
        .iter()
        .zip(roi.mask.iter())
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x)
        .collect();
    // Values equal under total_cmp are the same bits: the unstable sort
    // gives the same sequence, faster.
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Voxel counts per grey level, index = level (0 unused), up to `levels.ng`.
fn level_counts(levels: &Levels) -> Vec<f64> {
    let ng = levels
        .grid
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(levels.ng) as usize;
    let mut h = vec![0.0; ng + 1];
    for g in levels.grid.iter() {
        if *g > 0 {
            h[*g as usize] += 1.0;
        }
    }
    h
}

/// The first-order features' pyradiomics names, in pyradiomics' output order.
pub const NAMES: [&str; 19] = [
    "Energy",
    "TotalEnergy",
    "Entropy",
    "Minimum",
    "10Percentile",
    "90Percentile",
    "Maximum",
    "Mean",
    "Median",
    "InterquartileRange",
    "Range",
    "MeanAbsoluteDeviation",
    "RobustMeanAbsoluteDeviation",
    "RootMeanSquared",
    "StandardDeviation",
    "Skewness",
    "Kurtosis",
    "Variance",
    "Uniformity",
];

/// pyradiomics' firstorder features. `voxel_array_shift` (pyradiomics'
/// `voxelArrayShift`) is added to the intensities in Energy, TotalEnergy and
/// RootMeanSquared only. Entropy and Uniformity use the discretised levels.
/// StandardDeviation is pyradiomics' deprecated (not enabled by default)
/// feature. An empty ROI gives NaN for every feature.
pub fn features(roi: &Roi, levels: &Levels, voxel_array_shift: f64) -> Vec<Feature> {
    let v = roi_values(roi);
    if v.is_empty() {
        return NAMES.iter().map(|n| (*n, f64::NAN)).collect();
    }
    let n = v.len() as f64;
    let mu = mean(&v);
    let energy: f64 = v.iter().map(|x| (x + voxel_array_shift).powi(2)).sum();
    let voxel_volume = roi.spacing.iter().product::<f64>();
    let m2 = moment(&v, mu, 2);
    // a flat region has all central moments 0: pyradiomics returns 0 then
    let (skew, kurt) = if m2 == 0.0 {
        (0.0, 0.0)
    } else {
        (
            moment(&v, mu, 3) / m2.powf(1.5),
            moment(&v, mu, 4) / (m2 * m2),
        )
    };
    let counts = level_counts(levels);
    let total: f64 = counts.iter().sum();
    let eps = f64::EPSILON;
    let (mut entropy, mut uniformity) = (0.0, 0.0);
    for c in counts.iter().filter(|c| **c > 0.0) {
        let p = c / total;
        entropy -= p * (p + eps).log2();
        uniformity += p * p;
    }
    let (min, max) = (v[0], v[v.len() - 1]);
    let values = [
        energy,
        energy * voxel_volume,
        entropy,
        min,
        percentile(&v, 10.0),
        percentile(&v, 90.0),
        max,
        mu,
        percentile(&v, 50.0),
        percentile(&v, 75.0) - percentile(&v, 25.0),
        max - min,
        mean_abs_dev(&v, mu),
        robust_mad(&v),
        (energy / n).sqrt(),
        m2.sqrt(),
        skew,
        kurt,
        m2,
        uniformity,
    ];
    NAMES.iter().copied().zip(values).collect()
}

/// The statistics both IBSI families share, keyed by the part of the tag
/// after the family prefix.
fn ibsi_stats(v: &[f64]) -> Vec<(&'static str, f64)> {
    let mu = mean(v);
    let m2 = moment(v, mu, 2);
    let (p25, p75) = (percentile(v, 25.0), percentile(v, 75.0));
    let median = percentile(v, 50.0);
    let (skew, kurt) = if m2 == 0.0 {
        (0.0, 0.0)
    } else {
        (
            moment(v, mu, 3) / m2.powf(1.5),
            moment(v, mu, 4) / (m2 * m2) - 3.0,
        )
    };
    vec![
        ("mean", mu),
        ("var", m2),
        ("skew", skew),
        ("kurt", kurt),
        ("median", median),
        ("min", v.first().copied().unwrap_or(f64::NAN)),
        ("p10", percentile(v, 10.0)),
        ("p90", percentile(v, 90.0)),
        ("max", v.last().copied().unwrap_or(f64::NAN)),
        ("iqr", p75 - p25),
        (
            "range",
            v.last().copied().unwrap_or(f64::NAN) - v.first().copied().unwrap_or(f64::NAN),
        ),
        ("mad", mean_abs_dev(v, mu)),
        ("rmad", robust_mad(v)),
        ("medad", mean_abs_dev(v, median)),
        ("cov", m2.sqrt() / mu),
        ("qcod", (p75 - p25) / (p75 + p25)),
    ]
}

/// IBSI "Intensity-based statistical features" (tags `stat.*`, on the raw
/// intensities) and "Intensity histogram features" (tags `ih.*`, on the
/// discretised levels `1..=ng`, empty levels included for the gradients).
pub fn features_ibsi(roi: &Roi, levels: &Levels) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    let v = roi_values(roi);
    let stat_tags = [
        "stat.mean",
        "stat.var",
        "stat.skew",
        "stat.kurt",
        "stat.median",
        "stat.min",
        "stat.p10",
        "stat.p90",
        "stat.max",
        "stat.iqr",
        "stat.range",
        "stat.mad",
        "stat.rmad",
        "stat.medad",
        "stat.cov",
        "stat.qcod",
    ];
    let ih_tags = [
        "ih.mean",
        "ih.var",
        "ih.skew",
        "ih.kurt",
        "ih.median",
        "ih.min",
        "ih.p10",
        "ih.p90",
        "ih.max",
        "ih.iqr",
        "ih.range",
        "ih.mad",
        "ih.rmad",
        "ih.medad",
        "ih.cov",
        "ih.qcod",
    ];
    for (tag, (_, value)) in stat_tags.iter().zip(ibsi_stats(&v)) {
        out.push((*tag, value));
    }
    let energy: f64 = v.iter().map(|x| x * x).sum();
    out.push(("stat.energy", energy));
    out.push(("stat.rms", (energy / v.len() as f64).sqrt()));

    let mut g: Vec<f64> = levels
        .grid
        .iter()
        .filter(|l| **l > 0)
        .map(|l| *l as f64)
        .collect();
    g.sort_by(f64::total_cmp);
    for (tag, (_, value)) in ih_tags.iter().zip(ibsi_stats(&g)) {
        out.push((*tag, value));
    }
    let h = level_counts(levels);
    let total: f64 = h.iter().sum();
    let (mut entropy, mut uniformity) = (0.0, 0.0);
    for c in h.iter().filter(|c| **c > 0.0) {
        let p = c / total;
        entropy -= p * p.log2();
        uniformity += p * p;
    }
    // the mode: the most frequent level, the lowest of tied ones
    let mode = (1..h.len()).fold(None::<usize>, |best, i| match best {
        Some(b) if h[b] >= h[i] => Some(b),
        _ => Some(i),
    });
    out.push(("ih.mode", mode.map_or(f64::NAN, |m| m as f64)));
    out.push(("ih.entropy", entropy));
    out.push(("ih.uniformity", uniformity));
    // histogram gradient over levels 1..=ng: one-sided at the ends
    let ng = h.len() - 1;
    let grad: Vec<f64> = (1..=ng)
        .map(|i| {
            if ng == 1 {
                0.0
            } else if i == 1 {
                h[2] - h[1]
            } else if i == ng {
                h[ng] - h[ng - 1]
            } else {
                (h[i + 1] - h[i - 1]) / 2.0
            }
        })
        .collect();
    let arg = |better: fn(f64, f64) -> bool| {
        grad.iter()
            .enumerate()
            .fold(None::<(usize, f64)>, |best, (i, g)| match best {
                Some((_, b)) if !better(*g, b) => best,
                _ => Some((i + 1, *g)),
            })
    };
    let max = arg(|a, b| a > b);
    let min = arg(|a, b| a < b);
    out.push(("ih.max.grad", max.map_or(f64::NAN, |m| m.1)));
    out.push(("ih.max.grad.gl", max.map_or(f64::NAN, |m| m.0 as f64)));
    out.push(("ih.min.grad", min.map_or(f64::NAN, |m| m.1)));
    out.push(("ih.min.grad.gl", min.map_or(f64::NAN, |m| m.0 as f64)));
    out
}
