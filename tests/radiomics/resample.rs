//! Resampling: pyradiomics mode against pyradiomics' `*_resampling` baseline
//! columns (resampledPixelSpacing [2, 2, 2], sitkBSpline, padDistance 5,
//! label 1), IBSI mode against the manual's definitions, and a crop placed
//! in its image (`Placement`) against the whole image.
//!
//! Ported from the radiomics lab's `tests/resample.rs`; test data from
//! fixtures/pyradiomics (pyradiomics' test cases and baselines, BSD-3).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use rtnode::radiomics::discretise::{discretise, Binning};
use rtnode::radiomics::image::{bounding_box, Roi, Standard};
use rtnode::radiomics::io::{self, ImageFile};
use rtnode::radiomics::resample::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyradiomics")
}

/// A test case's image and label map (`<case>_image.nrrd`, `<case>_label.nrrd`).
fn load_case(case: &str) -> (ImageFile, ImageFile) {
    let read = |name: String| io::read(&fixtures().join(name)).unwrap();
    (
        read(format!("{case}_image.nrrd")),
        read(format!("{case}_label.nrrd")),
    )
}

/// Relative difference as the tests judge it.
fn rel_diff(ours: f64, theirs: f64) -> f64 {
    if ours == theirs {
        return 0.0;
    }
    (ours - theirs).abs() / theirs.abs().max(1e-12)
}

use crate::radiomics_support;
use radiomics_support::{python_dict, Baseline};

/// A baseline column's settings (its `diagnostics_Configuration_Settings`),
/// `None` values left out.
fn settings(b: &Baseline, column: &str) -> Settings {
    let text = b.get("diagnostics_Configuration_Settings", column).unwrap();
    Settings(
        python_dict(text)
            .into_iter()
            .filter(|(_, v)| v != "None")
            .collect(),
    )
}

struct Settings(HashMap<String, String>);

impl Settings {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.as_str())
    }
    fn f64(&self, k: &str) -> Option<f64> {
        self.get(k).and_then(|s| s.parse().ok())
    }
    fn list(&self, k: &str) -> Option<Vec<f64>> {
        self.get(k).map(|s| {
            s.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')')
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect()
        })
    }
}

/// The comparison tolerance with pyradiomics' baseline (relative).
const TOL: f64 = 1e-4;

/// numpy.percentile with its default linear interpolation.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let f = pos - i as f64;
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

/// pyradiomics' firstorder values that need no discretisation, plus Entropy
/// and Uniformity from the product's binning, over the masked voxels.
fn firstorder(r: &Resampled) -> Vec<(&'static str, f64)> {
    let mut v: Vec<f64> = r
        .image
        .iter()
        .zip(r.mask.iter())
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x)
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m3 = v.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
    let m4 = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    let p10 = percentile(&v, 10.0);
    let p90 = percentile(&v, 90.0);
    let robust: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| *x >= p10 && *x <= p90)
        .collect();
    let rmean = robust.iter().sum::<f64>() / robust.len() as f64;
    let energy = v.iter().map(|x| x * x).sum::<f64>();
    let volume = r.spacing.iter().product::<f64>();
    // Entropy and uniformity of the binWidth 25 histogram (the baseline's
    // default binning), via the product's discretisation of the resampled ROI.
    let roi = Roi {
        image: r.image.clone(),
        mask: r.mask.clone(),
        spacing: r.spacing,
    };
    let levels = discretise(&roi, Binning::Width(25.0), Standard::Pyradiomics, None);
    let mut counts = vec![0f64; levels.ng as usize + 1];
    for (g, m) in levels.grid.iter().zip(r.mask.iter()) {
        if *m {
            counts[*g as usize] += 1.0;
        }
    }
    let p: Vec<f64> = counts
        .iter()
        .skip(1)
        .map(|c| c / n)
        .filter(|p| *p > 0.0)
        .collect();
    let entropy = -p.iter().map(|p| p * (p + f64::EPSILON).log2()).sum::<f64>();
    let uniformity = p.iter().map(|p| p * p).sum::<f64>();
    vec![
        ("Mean", mean),
        ("Minimum", v[0]),
        ("Maximum", v[v.len() - 1]),
        ("Median", percentile(&v, 50.0)),
        ("10Percentile", p10),
        ("90Percentile", p90),
        ("Range", v[v.len() - 1] - v[0]),
        (
            "InterquartileRange",
            percentile(&v, 75.0) - percentile(&v, 25.0),
        ),
        ("Variance", var),
        ("Energy", energy),
        ("TotalEnergy", energy * volume),
        ("RootMeanSquared", (energy / n).sqrt()),
        (
            "MeanAbsoluteDeviation",
            v.iter().map(|x| (x - mean).abs()).sum::<f64>() / n,
        ),
        (
            "RobustMeanAbsoluteDeviation",
            robust.iter().map(|x| (x - rmean).abs()).sum::<f64>() / robust.len() as f64,
        ),
        ("Skewness", m3 / var.powf(1.5)),
        ("Kurtosis", m4 / (var * var)),
        ("Entropy", entropy),
        ("Uniformity", uniformity),
    ]
}

#[test]
fn pyradiomics_resampling_matches_baseline() {
    let b = Baseline::load("firstorder");
    let mut fails = Vec::new();
    let mut checked = 0;
    for column in b.columns.iter().filter(|c| c.ends_with("_resampling")) {
        let settings = settings(&b, column);
        let target = settings.list("resampledPixelSpacing").unwrap();
        let interpolator = match settings.get("interpolator") {
            Some("sitkLinear") => Interpolator::Linear,
            Some("sitkNearestNeighbor") => Interpolator::NearestNeighbor,
            _ => Interpolator::BSpline,
        };
        let pad = settings.f64("padDistance").unwrap_or(5.0);
        let label = settings.f64("label").unwrap_or(1.0);
        let (image, labels) = load_case(column.split('_').next().unwrap());
        let mask = labels.data.mapv(|v| v == label);
        // resampledPixelSpacing is (x, y, z); the arrays are [z, y, x].
        let target = [target[2], target[1], target[0]];
        let t = std::time::Instant::now();
        // The test cases are 16-bit integer images: SimpleITK resamples into
        // that pixel type.
        let r = resample_pyradiomics(
            &image.data,
            &mask,
            image.spacing,
            target,
            interpolator,
            pad,
            PixelCast::INT16,
            Placement::whole(&image.data),
        )
        .unwrap();
        println!(
            "{column}: {:?} -> {:?}, {} voxels, {:?}",
            image.data.dim(),
            r.image.dim(),
            r.mask.iter().filter(|m| **m).count(),
            t.elapsed()
        );
        for (name, ours) in firstorder(&r) {
            let Some(theirs) = b.get(&format!("original_firstorder_{name}"), column) else {
                continue;
            };
            let theirs: f64 = theirs.parse().unwrap();
            let d = rel_diff(ours, theirs);
            checked += 1;
            if d > TOL {
                fails.push(format!(
                    "{column} {name}: ours {ours} theirs {theirs} rel {d:.2e}"
                ));
            }
        }
    }
    for f in &fails {
        println!("FAIL {f}");
    }
    println!("{checked} values compared, {} fail", fails.len());
    assert!(checked > 0 && fails.is_empty());
}

#[test]
fn pyradiomics_grid_is_corner_aligned_on_the_padded_bounding_box() {
    // One axis of 10 voxels of 1 mm, mask at index 4..=5, new spacing 2 mm,
    // padDistance 1: lower bound floor((4-0.5)/2 - 1) = 0, upper bound
    // ceil((6-0.5)/2 + 1) = 4 capped at ceil(10/2)-1 = 4 → 5 new voxels; the
    // first new centre is half a new voxel from the image corner, index 0.5.
    let mut mask = Array3::from_elem((3, 3, 10), false);
    mask[[0, 0, 4]] = true;
    mask[[2, 2, 5]] = true;
    let image = Array3::from_shape_fn((3, 3, 10), |(_, _, x)| x as f64);
    let r = resample_pyradiomics(
        &image,
        &mask,
        [1.0; 3],
        [0.0, 0.0, 2.0],
        Interpolator::Linear,
        1.0,
        PixelCast::Float,
        Placement::whole(&mask),
    )
    .unwrap();
    assert_eq!(r.image.dim(), (3, 3, 5));
    assert_eq!(r.spacing, [1.0, 1.0, 2.0]);
    assert!((r.origin_index[2] - 0.5).abs() < 1e-12);
    // A linear ramp is reproduced exactly by linear interpolation.
    for (i, v) in r.image.slice(ndarray::s![1, 1, ..]).iter().enumerate() {
        assert!((v - (0.5 + 2.0 * i as f64)).abs() < 1e-12);
    }
    // Nearest neighbour mask: centre 4.5 rounds up to 5, 2.5 to 3.
    let row: Vec<bool> = r.mask.slice(ndarray::s![2, 2, ..]).to_vec();
    assert_eq!(row, vec![false, false, true, false, false]);
    // Same spacing: only a crop with padding.
    let same = resample_pyradiomics(
        &image,
        &mask,
        [1.0; 3],
        [1.0; 3],
        Interpolator::BSpline,
        1.0,
        PixelCast::Float,
        Placement::whole(&mask),
    )
    .unwrap();
    assert_eq!(same.image.dim(), (3, 3, 4));
    assert_eq!(same.origin_index, [0.0, 0.0, 3.0]);
}

#[test]
fn bspline_reproduces_cubic_polynomials_and_truncates_casts() {
    // A cubic B-spline interpolant reproduces polynomials up to degree 3
    // away from the mirror boundary; at the voxel centres it interpolates.
    let f = |x: f64| 0.01 * x * x * x - 0.3 * x * x + 2.0 * x + 5.0;
    let image = Array3::from_shape_fn((1, 1, 64), |(_, _, x)| f(x as f64));
    let mask = Array3::from_elem((1, 1, 64), true);
    let r = resample_pyradiomics(
        &image,
        &mask,
        [1.0; 3],
        [1.0, 1.0, 0.37],
        Interpolator::BSpline,
        0.0,
        PixelCast::Float,
        Placement::whole(&mask),
    )
    .unwrap();
    for (i, v) in r.image.iter().enumerate() {
        let c = r.origin_index[2] + i as f64 * 0.37;
        if (20.0..44.0).contains(&c) {
            assert!((v - f(c)).abs() < 1e-9, "{c}: {v} vs {}", f(c));
        }
    }
    let r = resample_pyradiomics(
        &image,
        &mask,
        [1.0; 3],
        [1.0, 1.0, 0.5],
        Interpolator::BSpline,
        0.0,
        PixelCast::Float,
        Placement::whole(&mask),
    )
    .unwrap();
    for (i, v) in r.image.iter().enumerate() {
        let c = r.origin_index[2] + i as f64 * 0.5;
        if c.fract() == 0.0 && c >= 0.0 {
            assert!((v - f(c)).abs() < 1e-9);
        }
    }
    assert_eq!(
        PixelCast::INT16,
        PixelCast::Truncate {
            min: -32768.0,
            max: 32767.0
        }
    );
    let r = resample_pyradiomics(
        &image.mapv(|v| -v),
        &mask,
        [1.0; 3],
        [1.0, 1.0, 0.37],
        Interpolator::Linear,
        0.0,
        PixelCast::INT16,
        Placement::whole(&mask),
    )
    .unwrap();
    assert!(r.image.iter().all(|v| v.fract() == 0.0));
}

#[test]
fn odd_inputs_do_not_panic() {
    let empty = Array3::from_elem((2, 2, 2), false);
    let image = Array3::zeros((2, 2, 2));
    assert!(resample_pyradiomics(
        &image,
        &empty,
        [1.0; 3],
        [2.0; 3],
        Interpolator::BSpline,
        5.0,
        PixelCast::INT16,
        Placement::whole(&empty)
    )
    .is_none());
    assert!(resample_ibsi(
        &image,
        &empty,
        [1.0; 3],
        &IbsiResampling {
            spacing: [2.0; 3],
            ..Default::default()
        },
        Placement::whole(&empty)
    )
    .is_none());
    let mut one = empty.clone();
    one[[1, 1, 1]] = true;
    // A single voxel spans one voxel on every axis: nothing is resampled.
    let r = resample_pyradiomics(
        &image,
        &one,
        [1.0; 3],
        [2.0; 3],
        Interpolator::BSpline,
        5.0,
        PixelCast::INT16,
        Placement::whole(&one),
    )
    .unwrap();
    assert_eq!(r.mask.iter().filter(|m| **m).count(), 1);
    let single = Array3::from_elem((1, 1, 1), true);
    for interp in [
        Interpolator::BSpline,
        Interpolator::Linear,
        Interpolator::NearestNeighbor,
    ] {
        let r = resample_ibsi(
            &Array3::from_elem((1, 1, 1), 7.0),
            &single,
            [3.0; 3],
            &IbsiResampling {
                spacing: [1.0; 3],
                interpolator: interp,
                ..Default::default()
            },
            Placement::whole(&single),
        )
        .unwrap();
        assert_eq!(r.image.dim(), (3, 3, 3));
        assert!(r.image.iter().all(|v| *v == 7.0));
        assert!(r.mask.iter().all(|m| *m));
    }
    // Axes of two voxels (the B-spline mirror reflects twice there).
    let two = Array3::from_shape_fn((2, 2, 2), |(z, y, x)| (z * 4 + y * 2 + x) as f64);
    let r = resample_pyradiomics(
        &two,
        &Array3::from_elem((2, 2, 2), true),
        [1.0; 3],
        [0.3; 3],
        Interpolator::BSpline,
        5.0,
        PixelCast::Float,
        Placement::whole(&two),
    )
    .unwrap();
    assert!(r.image.iter().all(|v| v.is_finite()));
    assert!(resample_pyradiomics(
        &two,
        &Array3::from_elem((2, 2, 2), true),
        [0.0; 3],
        [0.3; 3],
        Interpolator::BSpline,
        5.0,
        PixelCast::Float,
        Placement::whole(&two)
    )
    .is_none());
}

#[test]
fn ibsi_grid_is_centred() {
    // IBSI 1, image interpolation: n_b = ceil(n_a s_a / s_b) and the grids
    // share their centre, x_b0 = x_a0 + (s_a (n_a - 1) - s_b (n_b - 1)) / 2.
    // 5 voxels of 2 mm → 1 mm: 10 voxels, first centre at -0.25 (index).
    assert_eq!(ibsi_grid(5, 2.0, 1.0), (10, -0.25));
    // 5 voxels of 1 mm → 2 mm: 3 voxels, centres at 0, 2, 4.
    assert_eq!(ibsi_grid(5, 1.0, 2.0), (3, 0.0));
    // 4 voxels of 1 mm → 3 mm: 2 voxels centred on index 1.5: 0 and 3.
    assert_eq!(ibsi_grid(4, 1.0, 3.0), (2, 0.0));
    // 10 voxels of 0.8 mm → 3 mm: ceil(8/3) = 3 voxels, first at
    // (0.8·9 - 3·2) / 1.6 = 0.75.
    let (n, first) = ibsi_grid(10, 0.8, 3.0);
    assert_eq!(n, 3);
    assert!((first - 0.75).abs() < 1e-12);
    // The centre of the new grid is the centre of the old one.
    let (n, first) = ibsi_grid(37, 0.7, 2.0);
    assert!((first + (n as f64 - 1.0) / 2.0 * 2.0 / 0.7 - 18.0).abs() < 1e-12);
}

#[test]
fn ibsi_interpolates_rounds_and_thresholds() {
    // A 4 voxel line of 2 mm to 1 mm: 8 new voxels at indices
    // -0.25, 0.25, ..., 3.25; trilinear with the edge voxel repeated
    // outside.
    let image = Array3::from_shape_vec((1, 1, 4), vec![0.0, 10.0, 20.0, 31.0]).unwrap();
    let mask = Array3::from_shape_vec((1, 1, 4), vec![false, true, true, false]).unwrap();
    let s = IbsiResampling {
        spacing: [2.0, 2.0, 1.0],
        round_intensities: false,
        ..Default::default()
    };
    let r = resample_ibsi(&image, &mask, [2.0; 3], &s, Placement::whole(&mask)).unwrap();
    assert_eq!(r.spacing, [2.0, 2.0, 1.0]);
    let whole: Vec<f64> = vec![0.0, 2.5, 7.5, 12.5, 17.5, 22.75, 28.25, 31.0];
    let first = (r.origin_index[2] - (-0.25)) / 0.5;
    let first = first.round() as usize;
    for (i, v) in r.image.iter().enumerate() {
        assert!((v - whole[first + i]).abs() < 1e-12, "{i}: {v}");
    }
    // Rounded: 2.5 → 3 (half away from zero), 22.75 → 23.
    let r2 = resample_ibsi(
        &image,
        &mask,
        [2.0; 3],
        &IbsiResampling {
            round_intensities: true,
            ..s
        },
        Placement::whole(&mask),
    )
    .unwrap();
    for (a, b) in r2.image.iter().zip(r.image.iter()) {
        assert_eq!(*a, b.round());
    }
    // Mask 0,1,1,0 interpolated at the same centres: 0, 0.25, 0.75, 1, 1,
    // 0.75, 0.25, 0 → kept where ≥ 0.5.
    let mask_whole = [0.0, 0.25, 0.75, 1.0, 1.0, 0.75, 0.25, 0.0];
    for (i, m) in r.mask.iter().enumerate() {
        assert_eq!(*m, mask_whole[first + i] >= 0.5, "{i}");
    }
    assert_eq!(r.mask.iter().filter(|m| **m).count(), 4);
    // A threshold exactly met keeps the voxel: a 0,1 line of 1 mm to 0.5 mm
    // (centres at -0.25, 0.25, 0.75, 1.25) gives 0, 0.25, 0.75, 1.
    let m2 = Array3::from_shape_vec((1, 1, 2), vec![false, true]).unwrap();
    let i2 = Array3::zeros((1, 1, 2));
    let r3 = resample_ibsi(
        &i2,
        &m2,
        [1.0; 3],
        &IbsiResampling {
            spacing: [1.0, 1.0, 0.5],
            ..threshold(0.75)
        },
        Placement::whole(&m2),
    )
    .unwrap();
    assert_eq!(r3.mask.iter().filter(|m| **m).count(), 2);
}

/// IBSI settings with a given partial-volume threshold.
fn threshold(t: f64) -> IbsiResampling {
    IbsiResampling {
        mask_threshold: t,
        ..Default::default()
    }
}

/// Fingerprints of SimpleITK 2.5.7 (ITK 5.4) resampling outputs, computed
/// with pyradiomics' resampleImage recipe on the test cases (label 1,
/// padDistance 5, int16 output): shape, sum of intensities, sum weighted by
/// (flat index mod 97), mask count, mask count weighted the same way. The
/// outputs are integers, so the match is exact: every voxel of the three
/// interpolators agreed with ITK's during development.
type Fingerprint = (
    &'static str,
    Interpolator,
    [f64; 3],
    (usize, usize, usize),
    i64,
    i64,
    i64,
    i64,
);

#[rustfmt::skip]
const SITK: [Fingerprint; 12] = [
    ("brain1", Interpolator::Linear, [2.0; 3], (34, 39, 30), 23821679, 1142830640, 1915, 92615),
    ("brain1", Interpolator::Linear, [3.1, 0.9, 1.3], (26, 73, 40), 44294797, 2125825332, 4731, 227511),
    ("brain1", Interpolator::NearestNeighbor, [3.1, 0.9, 1.3], (26, 73, 40), 44395629, 2130787903, 4731, 227511),
    ("brain1", Interpolator::BSpline, [2.0; 3], (34, 39, 30), 23824908, 1143021925, 1915, 92615),
    ("brain1", Interpolator::BSpline, [3.1, 0.9, 1.3], (26, 73, 40), 44349171, 2128490372, 4731, 227511),
    ("lung2", Interpolator::Linear, [3.1, 0.9, 1.3], (30, 58, 54), -26559744, -1273944108, 13368, 642243),
    ("lung2", Interpolator::NearestNeighbor, [2.0; 3], (39, 32, 39), -11933825, -573013334, 6036, 289798),
    ("lung2", Interpolator::BSpline, [2.0; 3], (39, 32, 39), -11734979, -564004570, 6036, 289798),
    ("lung2", Interpolator::BSpline, [3.1, 0.9, 1.3], (30, 58, 54), -26560490, -1273841382, 13368, 642243),
    ("breast1", Interpolator::Linear, [3.1, 0.9, 1.3], (14, 21, 17), 304397, 14549357, 40, 1858),
    ("breast1", Interpolator::NearestNeighbor, [2.0; 3], (16, 16, 14), 221455, 10600178, 23, 1043),
    ("breast1", Interpolator::BSpline, [3.1, 0.9, 1.3], (14, 21, 17), 303957, 14530609, 40, 1858),
];

#[test]
fn pyradiomics_resampling_is_voxel_exact_with_simpleitk() {
    for (case, interp, target, dim, sum, wsum, count, wcount) in SITK {
        let (image, labels) = load_case(case);
        let mask = labels.data.mapv(|v| v == 1.0);
        let r = resample_pyradiomics(
            &image.data,
            &mask,
            image.spacing,
            target,
            interp,
            5.0,
            PixelCast::INT16,
            Placement::whole(&image.data),
        )
        .unwrap();
        let w = |i: usize| (i % 97) as i64;
        let ours = (
            r.image.dim(),
            r.image.iter().map(|v| *v as i64).sum::<i64>(),
            r.image
                .iter()
                .enumerate()
                .map(|(i, v)| *v as i64 * w(i))
                .sum::<i64>(),
            r.mask.iter().filter(|m| **m).count() as i64,
            r.mask
                .iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .map(|(i, _)| w(i))
                .sum::<i64>(),
        );
        println!("{case} {interp:?} {target:?}: {ours:?}");
        assert_eq!(
            ours,
            (dim, sum, wsum, count, wcount),
            "{case} {interp:?} {target:?}"
        );
    }
}

/// brain1, label 1, cropped to the mask's bounding box padded by 60 voxels
/// (clamped to the image), with that crop's placement in the whole image.
fn brain1_crop() -> (
    ImageFile,
    Array3<bool>,
    Array3<f64>,
    Array3<bool>,
    Placement,
) {
    let (image, labels) = load_case("brain1");
    let mask = labels.data.mapv(|v| v == 1.0);
    let (lo, hi) = bounding_box(&mask).unwrap();
    let d = mask.dim();
    let dims = [d.0, d.1, d.2];
    let lo: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(60));
    let hi: [usize; 3] = std::array::from_fn(|a| (hi[a] + 60).min(dims[a]));
    let sl = ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let crop_image = image.data.slice(sl).to_owned();
    let crop_mask = mask.slice(sl).to_owned();
    let place = Placement {
        offset: lo,
        full_dims: dims,
    };
    println!("brain1 {dims:?}, crop {lo:?}..{hi:?}");
    // The crop must actually cut something off, or the test shows nothing.
    assert!(crop_image.dim() != image.data.dim());
    (image, mask, crop_image, crop_mask, place)
}

/// The same grid in the whole image and in the crop: equal shapes, equal
/// spacing, origins that differ by the crop's offset, and bit-identical
/// intensities and masks.
fn assert_same(label: &str, whole: &Resampled, crop: &Resampled, place: Placement) {
    assert_eq!(whole.image.dim(), crop.image.dim(), "{label}: image shape");
    assert_eq!(whole.mask.dim(), crop.mask.dim(), "{label}: mask shape");
    assert_eq!(whole.spacing, crop.spacing, "{label}: spacing");
    for a in 0..3 {
        let moved = crop.origin_index[a] + place.offset[a] as f64;
        assert!(
            (moved - whole.origin_index[a]).abs() < 1e-9,
            "{label}: origin axis {a}: whole {} crop {} + {}",
            whole.origin_index[a],
            crop.origin_index[a],
            place.offset[a]
        );
    }
    let differ = whole
        .image
        .iter()
        .zip(crop.image.iter())
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    let max_diff = whole
        .image
        .iter()
        .zip(crop.image.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let mask_differ = whole
        .mask
        .iter()
        .zip(crop.mask.iter())
        .filter(|(a, b)| a != b)
        .count();
    println!(
        "{label}: {:?}, {} mask voxels; {differ} intensities differ (max {max_diff:e}), {mask_differ} mask voxels differ",
        whole.image.dim(),
        whole.mask.iter().filter(|m| **m).count()
    );
    assert_eq!(differ, 0, "{label}: intensities differ (max {max_diff:e})");
    assert_eq!(mask_differ, 0, "{label}: mask voxels differ");
}

#[test]
fn pyradiomics_crop_placed_in_its_image_equals_the_whole_image() {
    let (image, mask, crop_image, crop_mask, place) = brain1_crop();
    for interp in [Interpolator::BSpline, Interpolator::Linear] {
        let run = |img: &Array3<f64>, m: &Array3<bool>, place: Placement| {
            resample_pyradiomics(
                img,
                m,
                image.spacing,
                [2.0; 3],
                interp,
                5.0,
                PixelCast::INT16,
                place,
            )
            .unwrap()
        };
        let whole = run(&image.data, &mask, Placement::whole(&image.data));
        let crop = run(&crop_image, &crop_mask, place);
        assert_same(&format!("pyradiomics {interp:?}"), &whole, &crop, place);
    }
}

#[test]
fn ibsi_crop_placed_in_its_image_equals_the_whole_image() {
    let (image, mask, crop_image, crop_mask, place) = brain1_crop();
    for interp in [Interpolator::BSpline, Interpolator::Linear] {
        let settings = IbsiResampling {
            spacing: [2.0; 3],
            interpolator: interp,
            ..Default::default()
        };
        let whole = resample_ibsi(
            &image.data,
            &mask,
            image.spacing,
            &settings,
            Placement::whole(&image.data),
        )
        .unwrap();
        let crop = resample_ibsi(&crop_image, &crop_mask, image.spacing, &settings, place).unwrap();
        assert_same(&format!("IBSI {interp:?}"), &whole, &crop, place);
    }
}
