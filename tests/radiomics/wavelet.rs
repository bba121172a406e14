//! Wavelet image type against PyWavelets 1.8 `swtn` run the way
//! pyradiomics' `_swt3` runs it (wrap padding of odd axes, axes (2, 1, 0),
//! level-1 transforms repeated on the approximation, crop back).
//!
//! Why not `baseline/wavelet.npy`: pyradiomics' tests/test_wavelet.py
//! compares it with `sitk.GetArrayFromImage(image)[mask == 1]` of the
//! *input* image, not of the wavelet images (the loop yields the input image
//! with each decomposition's name). The file holds the same 2109 uint8
//! values (128 and 255) in all 8 rows: the masked voxels of the synthetic
//! test_wavelet_64x64x64 / 37x37x37 cases, which are not in fixtures/. It
//! therefore cannot check a wavelet transform; `wavelet_npy_is_the_input`
//! documents that. The references below were generated with PyWavelets
//! 1.8.0 and numpy 1.26 from the recipe in pyradiomics 3.1's `_swt3`.
//!
//! Ported from the radiomics lab's `tests/wavelet.rs`; test data from
//! fixtures/pyradiomics (pyradiomics' test cases and baselines, BSD-3).
use std::path::{Path, PathBuf};

use ndarray::Array3;
use rtnode::radiomics::image::bounding_box;
use rtnode::radiomics::io;
use rtnode::radiomics::wavelet::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyradiomics")
}

/// Relative difference as the tests judge it.
fn rel_diff(ours: f64, theirs: f64) -> f64 {
    if ours == theirs {
        return 0.0;
    }
    (ours - theirs).abs() / theirs.abs().max(1e-12)
}

/// Relative tolerance against the PyWavelets reference: both are the same
/// sums of products in double precision, so far below the 1e-4 allowed.
const TOL: f64 = 1e-9;

/// The synthetic input (odd z and x axes exercise the wrap padding).
fn synthetic() -> Array3<f64> {
    Array3::from_shape_fn((5, 6, 7), |(z, y, x)| {
        (((z * 7 + y * 3 + x * 5) % 11) as f64) + 0.1 * (z * z) as f64 - 0.05 * (x * y) as f64
    })
}

/// sum, sum of squares, sum weighted by (flat index mod 13), first, last.
fn fingerprint(a: &Array3<f64>) -> [f64; 5] {
    let sum = a.sum();
    let sq = a.iter().map(|v| v * v).sum();
    let w = a.iter().enumerate().map(|(i, v)| v * (i % 13) as f64).sum();
    [sum, sq, w, a[[0, 0, 0]], *a.iter().last().unwrap()]
}

/// Compare; sums that cancel to ~0 are compared in absolute terms against
/// the sum of squares' scale.
fn check(label: &str, ours: &[(String, Array3<f64>)], want: &[(&str, [f64; 5])]) {
    let names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, want_names, "{label}: names/order");
    for ((name, img), (_, w)) in ours.iter().zip(want) {
        let f = fingerprint(img);
        let scale = w[1].sqrt();
        for k in 0..5 {
            let ok = rel_diff(f[k], w[k]) <= TOL || (f[k] - w[k]).abs() <= TOL * scale;
            assert!(ok, "{label} {name} [{k}]: ours {} theirs {}", f[k], w[k]);
        }
    }
}

#[test]
fn coif1_level1_matches_pywavelets() {
    let w = Wavelet::by_name("coif1").unwrap();
    let ours = wavelet_images(&synthetic(), &w, 1, 0, &pyradiomics_axes(false, 0));
    check(
        "coif1",
        &ours,
        &[
            (
                "wavelet-LLH",
                [
                    -19.452559841143383,
                    1206.336880297415,
                    -70.01334058500137,
                    -2.7845573553266436,
                    2.9993360751320117,
                ],
            ),
            (
                "wavelet-LHL",
                [
                    2.602362769721367e-13,
                    1745.0909896140686,
                    141.15211332611784,
                    -4.017702580830642,
                    -2.054226787135123,
                ],
            ),
            (
                "wavelet-LHH",
                [
                    -8.881784197001252e-15,
                    1679.3299247147088,
                    -57.14752846698093,
                    4.686005928680215,
                    1.4772760880825255,
                ],
            ),
            (
                "wavelet-HLL",
                [
                    5.161423310332047,
                    1550.3444943221566,
                    113.67911843400637,
                    -3.0916048898103385,
                    -2.5272494859451413,
                ],
            ),
            (
                "wavelet-HLH",
                [
                    -3.156070538875465,
                    3124.7471687174866,
                    43.26463522307121,
                    -6.259895927772971,
                    -2.0555104090604304,
                ],
            ),
            (
                "wavelet-HHL",
                [
                    8.881784197001252e-16,
                    1929.3832510009433,
                    46.43825777771615,
                    5.12620966371494,
                    -0.6261361385883201,
                ],
            ),
            (
                "wavelet-HHH",
                [
                    1.687538997430238e-14,
                    5802.634762357846,
                    -171.35895651548236,
                    4.553663779353691,
                    1.932169358452242,
                ],
            ),
            (
                "wavelet-LLL",
                [
                    3082.6554969937724,
                    46417.8935284662,
                    18429.67532876078,
                    7.677637490508236,
                    15.60909958260942,
                ],
            ),
        ],
    );
}

#[test]
fn haar_matches_pywavelets() {
    let w = Wavelet::by_name("haar").unwrap();
    let ours = wavelet_images(&synthetic(), &w, 1, 0, &pyradiomics_axes(false, 0));
    check(
        "haar",
        &ours,
        &[
            (
                "wavelet-LLH",
                [
                    0.0,
                    1341.15,
                    66.3266160752982,
                    -2.262741699796952,
                    6.85893577750951,
                ],
            ),
            (
                "wavelet-LHL",
                [
                    3.552713678800501e-15,
                    1521.3250000000007,
                    -61.55364530228897,
                    -4.207285348059958,
                    0.7071067811865464,
                ],
            ),
            (
                "wavelet-LHH",
                [
                    -3.552713678800501e-15,
                    1724.2500000000007,
                    0.0,
                    -4.440892098500626e-16,
                    3.8890872965260117,
                ],
            ),
            (
                "wavelet-HLL",
                [
                    1.2434497875801753e-14,
                    1345.2250000000004,
                    5.055813485483839,
                    0.7424621202458743,
                    -1.4142135623730947,
                ],
            ),
            (
                "wavelet-HLH",
                [
                    3.9968028886505635e-15,
                    3660.250000000001,
                    202.23253941935255,
                    -7.778174593052024,
                    -3.8890872965260117,
                ],
            ),
            (
                "wavelet-HHL",
                [
                    3.9968028886505635e-15,
                    1611.1250000000007,
                    104.33360556407516,
                    -0.03535533905932757,
                    -4.9497474683058345,
                ],
            ),
            (
                "wavelet-HHH",
                [
                    9.769962616701378e-15,
                    5656.750000000002,
                    101.1162697096764,
                    3.157196726277789e-16,
                    3.8890872965260135,
                ],
            ),
            (
                "wavelet-LLL",
                [
                    3114.8053711267426,
                    47162.66500000002,
                    18580.750955256088,
                    13.541094859722389,
                    14.990663761154808,
                ],
            ),
        ],
    );
}

#[test]
fn two_levels_and_start_level_match_pywavelets() {
    let w = Wavelet::by_name("coif1").unwrap();
    let ours = wavelet_images(&synthetic(), &w, 2, 0, &pyradiomics_axes(false, 0));
    check(
        "coif1 level 2",
        &ours,
        &[
            (
                "wavelet-LLH",
                [
                    -19.452559841143383,
                    1206.336880297415,
                    -70.01334058500137,
                    -2.7845573553266436,
                    2.9993360751320117,
                ],
            ),
            (
                "wavelet-LHL",
                [
                    2.602362769721367e-13,
                    1745.0909896140686,
                    141.15211332611784,
                    -4.017702580830642,
                    -2.054226787135123,
                ],
            ),
            (
                "wavelet-LHH",
                [
                    -8.881784197001252e-15,
                    1679.3299247147088,
                    -57.14752846698093,
                    4.686005928680215,
                    1.4772760880825255,
                ],
            ),
            (
                "wavelet-HLL",
                [
                    5.161423310332047,
                    1550.3444943221566,
                    113.67911843400637,
                    -3.0916048898103385,
                    -2.5272494859451413,
                ],
            ),
            (
                "wavelet-HLH",
                [
                    -3.156070538875465,
                    3124.7471687174866,
                    43.26463522307121,
                    -6.259895927772971,
                    -2.0555104090604304,
                ],
            ),
            (
                "wavelet-HHL",
                [
                    8.881784197001252e-16,
                    1929.3832510009433,
                    46.43825777771615,
                    5.12620966371494,
                    -0.6261361385883201,
                ],
            ),
            (
                "wavelet-HHH",
                [
                    1.687538997430238e-14,
                    5802.634762357846,
                    -171.35895651548236,
                    4.553663779353691,
                    1.932169358452242,
                ],
            ),
            (
                "wavelet2-LLH",
                [
                    -85.72873297902017,
                    1321.1062066297416,
                    -497.84138986714663,
                    -1.203608768270929,
                    2.988662586811401,
                ],
            ),
            (
                "wavelet2-LHL",
                [
                    6.981082378842984e-13,
                    664.5811888497442,
                    -1.5977740199048753,
                    -0.2133602934465293,
                    -1.3899187132330084,
                ],
            ),
            (
                "wavelet2-LHH",
                [
                    -3.9968028886505635e-15,
                    199.64041030507966,
                    3.672264191080888,
                    3.188597830408891,
                    -1.4904745210704302,
                ],
            ),
            (
                "wavelet2-HLL",
                [
                    22.978777706695993,
                    1002.9787374207903,
                    144.68391986459284,
                    -4.689923301318544,
                    -2.652854222817209,
                ],
            ),
            (
                "wavelet2-HLH",
                [
                    -4.495895567859059,
                    230.10251472309585,
                    -5.410459076047271,
                    -1.7009440626740446,
                    -2.431311445583094,
                ],
            ),
            (
                "wavelet2-HHL",
                [
                    7.771561172376096e-15,
                    272.98846605810365,
                    -0.3430785407168919,
                    -0.3311763521583316,
                    1.3223941064110571,
                ],
            ),
            (
                "wavelet2-HHH",
                [
                    -4.440892098500626e-16,
                    92.3826374334564,
                    -19.349820132695207,
                    1.018811031882984,
                    1.1393189827550207,
                ],
            ),
            (
                "wavelet2-LLL",
                [
                    8700.100944161126,
                    366536.7767528967,
                    51938.49216908196,
                    26.57362070161593,
                    43.55984751414508,
                ],
            ),
        ],
    );
    let ours = wavelet_images(&synthetic(), &w, 1, 1, &pyradiomics_axes(false, 0));
    check(
        "coif1 start_level 1",
        &ours,
        &[
            (
                "wavelet-LLH",
                [
                    -85.72873297902017,
                    1321.1062066297416,
                    -497.84138986714663,
                    -1.203608768270929,
                    2.988662586811401,
                ],
            ),
            (
                "wavelet-LHL",
                [
                    6.981082378842984e-13,
                    664.5811888497442,
                    -1.5977740199048753,
                    -0.2133602934465293,
                    -1.3899187132330084,
                ],
            ),
            (
                "wavelet-LHH",
                [
                    -3.9968028886505635e-15,
                    199.64041030507966,
                    3.672264191080888,
                    3.188597830408891,
                    -1.4904745210704302,
                ],
            ),
            (
                "wavelet-HLL",
                [
                    22.978777706695993,
                    1002.9787374207903,
                    144.68391986459284,
                    -4.689923301318544,
                    -2.652854222817209,
                ],
            ),
            (
                "wavelet-HLH",
                [
                    -4.495895567859059,
                    230.10251472309585,
                    -5.410459076047271,
                    -1.7009440626740446,
                    -2.431311445583094,
                ],
            ),
            (
                "wavelet-HHL",
                [
                    7.771561172376096e-15,
                    272.98846605810365,
                    -0.3430785407168919,
                    -0.3311763521583316,
                    1.3223941064110571,
                ],
            ),
            (
                "wavelet-HHH",
                [
                    -4.440892098500626e-16,
                    92.3826374334564,
                    -19.349820132695207,
                    1.018811031882984,
                    1.1393189827550207,
                ],
            ),
            (
                "wavelet-LLL",
                [
                    8700.100944161126,
                    366536.7767528967,
                    51938.49216908196,
                    26.57362070161593,
                    43.55984751414508,
                ],
            ),
        ],
    );
}

#[test]
fn force2d_drops_an_axis() {
    // force2D with force2Ddimension 0: axes x, y only, two letters.
    let w = Wavelet::by_name("coif1").unwrap();
    let ours = wavelet_images(&synthetic(), &w, 1, 0, &pyradiomics_axes(true, 0));
    check(
        "coif1 2D",
        &ours,
        &[
            (
                "wavelet-LH",
                [
                    1.887379141862766e-13,
                    1817.8879728996233,
                    89.60517628821327,
                    -1.759976989135881,
                    0.30965105317079694,
                ],
            ),
            (
                "wavelet-HL",
                [
                    6.315480946372408,
                    2247.4588938783872,
                    115.26789597933046,
                    -3.806218889840503,
                    -3.365296147011997,
                ],
            ),
            (
                "wavelet-HH",
                [
                    -8.43769498715119e-15,
                    3672.6892195533,
                    -24.5242560841084,
                    5.160631233283699,
                    -0.5929124883546084,
                ],
            ),
            (
                "wavelet-LL",
                [
                    2211.587867556237,
                    24424.664556816926,
                    13247.2222528673,
                    4.754160227519978,
                    13.926393204442943,
                ],
            ),
        ],
    );
}

#[test]
fn brain1_roi_statistics_match_pywavelets() {
    // brain1, label 1, cropped to the bounding box padded by 5 voxels (as
    // pyradiomics' preCrop does), then every decomposition's mean, variance,
    // minimum and maximum over the masked voxels.
    #[rustfmt::skip]
    let want: [(&str, [f64; 4]); 8] = [
        ("wavelet-LLH", [9.941090785026738, 63709.17000171524, -783.0088926440542, 733.8505082763058]),
        ("wavelet-LHL", [-5.195410758481324, 4432.098160235004, -354.8947330376593, 286.5712199871117]),
        ("wavelet-LHH", [-1.458815107989458, 3189.2471471516797, -324.7034536822992, 279.35038075641216]),
        ("wavelet-HLL", [-5.077354241729555, 2328.1166596593844, -291.543962260902, 186.24612312778368]),
        ("wavelet-HLH", [-0.1134892629941303, 1812.8975907682616, -254.0726963338062, 195.25285126676468]),
        ("wavelet-HHL", [0.3405903521121076, 371.536288126144, -100.72323160995246, 96.92755982135392]),
        ("wavelet-HHH", [0.1648763594289033, 299.9522180134957, -74.75569866887916, 76.40996501874992]),
        ("wavelet-LLL", [2255.1595095005646, 122620.56279600722, 1468.0772410291193, 3180.639186772004]),
    ];
    let image = io::read(&fixtures().join("brain1_image.nrrd")).unwrap();
    let labels = io::read(&fixtures().join("brain1_label.nrrd")).unwrap();
    let mask = labels.data.mapv(|v| v == 1.0);
    let (lo, hi) = bounding_box(&mask).unwrap();
    let d = mask.dim();
    let dims = [d.0, d.1, d.2];
    let lo: Vec<usize> = (0..3).map(|a| lo[a].saturating_sub(5)).collect();
    let hi: Vec<usize> = (0..3).map(|a| (hi[a] + 5).min(dims[a])).collect();
    let sl = ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let image = image.data.slice(sl).to_owned();
    let mask = mask.slice(sl).to_owned();
    let t = std::time::Instant::now();
    let ours = wavelet_images(
        &image,
        &Wavelet::by_name("coif1").unwrap(),
        1,
        0,
        &pyradiomics_axes(false, 0),
    );
    println!(
        "brain1 {:?}: 8 wavelet images in {:?}",
        image.dim(),
        t.elapsed()
    );
    assert_eq!(ours.len(), 8);
    for ((name, img), (wname, w)) in ours.iter().zip(want) {
        assert_eq!(name, wname);
        let v: Vec<f64> = img
            .iter()
            .zip(mask.iter())
            .filter(|(_, m)| **m)
            .map(|(x, _)| *x)
            .collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (k, (o, t)) in [mean, var, min, max].into_iter().zip(w).enumerate() {
            assert!(
                rel_diff(o, t) <= TOL || (o - t).abs() <= TOL * w[1].sqrt(),
                "{name} [{k}]: ours {o} theirs {t}"
            );
        }
    }
}

#[test]
fn filters_are_pywavelets_filters() {
    // pywt.Wavelet(name).dec_lo / dec_hi.
    let coif1 = Wavelet::by_name("coif1").unwrap();
    let lo = [
        -0.015655728135791993,
        -0.07273261951252645,
        0.3848648468648578,
        0.8525720202116004,
        0.3378976624574818,
        -0.07273261951252645,
    ];
    let hi = [
        0.07273261951252645,
        0.3378976624574818,
        -0.8525720202116004,
        0.3848648468648578,
        0.07273261951252645,
        -0.015655728135791993,
    ];
    for k in 0..6 {
        assert!((coif1.dec_lo[k] - lo[k]).abs() < 1e-15 && (coif1.dec_hi[k] - hi[k]).abs() < 1e-15);
    }
    let db2 = Wavelet::by_name("db2").unwrap();
    let lo = [
        -0.12940952255126037,
        0.2241438680420134,
        0.8365163037378079,
        0.48296291314453416,
    ];
    let hi = [
        -0.48296291314453416,
        0.8365163037378079,
        -0.2241438680420134,
        -0.12940952255126037,
    ];
    for k in 0..4 {
        assert!((db2.dec_lo[k] - lo[k]).abs() < 1e-15 && (db2.dec_hi[k] - hi[k]).abs() < 1e-15);
    }
    assert!(Wavelet::by_name("nope").is_none());
}

#[test]
fn odd_inputs_do_not_panic() {
    let w = Wavelet::by_name("coif1").unwrap();
    let axes = pyradiomics_axes(false, 0);
    assert!(wavelet_images(&Array3::zeros((0, 3, 3)), &w, 1, 0, &axes).is_empty());
    assert!(wavelet_images(&Array3::zeros((2, 2, 2)), &w, 0, 0, &axes).is_empty());
    // One voxel: padded to 2 by wrapping, i.e. a constant; the low-pass
    // filters sum to √2 per axis, the high-pass ones to 0.
    let one = wavelet_images(&Array3::from_elem((1, 1, 1), 3.0), &w, 1, 0, &axes);
    assert_eq!(one.len(), 8);
    let lll = &one[7].1;
    assert!((lll[[0, 0, 0]] - 3.0 * 2f64.sqrt().powi(3)).abs() < 1e-12);
    assert!(one[..7].iter().all(|(_, a)| a[[0, 0, 0]].abs() < 1e-12));
}

/// pyradiomics' wavelet.npy holds the masked input voxels, 8 identical rows.
#[test]
fn wavelet_npy_is_the_input() {
    let path = fixtures().join("baseline").join("wavelet.npy");
    let bytes = std::fs::read(path).unwrap();
    let (shape, data) = read_npy_u8(&bytes).unwrap();
    assert_eq!(shape, vec![8, 2109]);
    let rows: Vec<&[u8]> = data.chunks(2109).collect();
    assert!(rows.iter().all(|r| *r == rows[0]));
    assert!(rows[0].iter().all(|v| *v == 128 || *v == 255));
}

/// Minimal .npy reader for uint8 C-order arrays (format versions 1 and 2).
fn read_npy_u8(b: &[u8]) -> Option<(Vec<usize>, Vec<u8>)> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return None;
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(b.get(start..start + hlen)?).ok()?;
    if !header.contains("'|u1'") || header.contains("'fortran_order': True") {
        return None;
    }
    let shape_txt = header
        .split("'shape':")
        .nth(1)?
        .split(')')
        .next()?
        .trim()
        .trim_start_matches('(');
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let n: usize = shape.iter().product();
    Some((shape, b.get(start + hlen..start + hlen + n)?.to_vec()))
}
