//! pyradiomics' Wavelet image type (`imageoperations.getWaveletImage`): an
//! undecimated (stationary) wavelet transform as PyWavelets' `swtn` computes
//! it, one level at a time.
//!
//! Details that decide the values:
//! * Axes are taken in pyradiomics' order x, y, z (numpy axes 2, 1, 0), and
//!   a decomposition's name has one letter per axis in that order:
//!   `wavelet-LLH` is low-pass along x and y, high-pass along z. With
//!   force2D the ignored numpy axis is left out (two letters).
//! * Each level filters its input with the wavelet's decomposition filters
//!   as a circular convolution (`out[i] = Σ_j f[j]·x[(i + F/2 − j) mod N]`),
//!   without upsampling the filters: pyradiomics calls `swtn` with level 1
//!   for every level, feeding it the previous approximation.
//! * Axes of odd length are first extended by one voxel copied from the
//!   start of the axis (numpy's "wrap" padding), and every output is cropped
//!   back to the input's shape.
//! * Filtering wraps around the image: a voxel within F/2 voxels of a face
//!   sees the opposite face. The caller decides on what grid it runs
//!   (pyradiomics filters the whole, possibly pre-cropped, image).
use ndarray::Array3;
use rayon::prelude::*;

/// An orthogonal wavelet's decomposition filters, as PyWavelets gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct Wavelet {
    /// PyWavelets' name (`coif1`, `haar`, ...).
    pub name: String,
    /// Decomposition low-pass filter taps (the L of LLH...).
    pub dec_lo: Vec<f64>,
    /// Decomposition high-pass filter taps (the H).
    pub dec_hi: Vec<f64>,
}

impl Wavelet {
    /// From the reconstruction low-pass (scaling) filter, normalised to sum
    /// √2, the way PyWavelets derives the filters of its orthogonal
    /// families: `dec_lo[i] = h[F−1−i]`, `dec_hi[i] = h[i]` negated where
    /// `F−1−i` is odd.
    pub fn orthogonal(name: &str, rec_lo: &[f64]) -> Wavelet {
        let f = rec_lo.len();
        let dec_lo = (0..f).map(|i| rec_lo[f - 1 - i]).collect();
        let dec_hi = (0..f)
            .map(|i| {
                if (f - 1 - i) % 2 == 1 {
                    -rec_lo[i]
                } else {
                    rec_lo[i]
                }
            })
            .collect();
        Wavelet {
            name: name.to_string(),
            dec_lo,
            dec_hi,
        }
    }

    /// The wavelets pyradiomics users pick most: `coif1` (its default),
    /// `haar` / `db1`, `db2`, `sym2`. None for other names.
    pub fn by_name(name: &str) -> Option<Wavelet> {
        let s2 = std::f64::consts::SQRT_2;
        match name {
            "haar" | "db1" => Some(Wavelet::orthogonal(name, &[1.0 / s2, 1.0 / s2])),
            // Daubechies' 4-tap filter, closed form (1±√3)/(4√2), (3±√3)/(4√2).
            "db2" | "sym2" => {
                let r3 = 3f64.sqrt();
                let d = 4.0 * s2;
                Some(Wavelet::orthogonal(
                    name,
                    &[
                        (1.0 + r3) / d,
                        (3.0 + r3) / d,
                        (3.0 - r3) / d,
                        (1.0 - r3) / d,
                    ],
                ))
            }
            // Coiflet 1 (Daubechies' table, sum 1), scaled by √2 as
            // PyWavelets does.
            "coif1" => {
                // The published table's digits, kept as printed.
                #[allow(clippy::excessive_precision)]
                const C: [f64; 6] = [
                    -5.142972847076845595317549230122688830344559947132656813651045e-02,
                    2.389297284707684559531754923012268883034455994713265681365104e-01,
                    6.028594569415369119063509846024537766068911989426531362730209e-01,
                    2.721405430584630880936490153975462233931088010573468637269790e-01,
                    -5.142972847076845595317549230122688830344559947132656813651045e-02,
                    -1.107027152923154404682450769877311169655440052867343186348954e-02,
                ];
                Some(Wavelet::orthogonal(name, &C.map(|c| c * s2)))
            }
            _ => None,
        }
    }
}

/// pyradiomics' axes: x, y, z (numpy 2, 1, 0), without `force2d_dimension`
/// (a numpy axis, 0 = z) when force2D is on.
pub fn pyradiomics_axes(force2d: bool, force2d_dimension: usize) -> Vec<usize> {
    [2usize, 1, 0]
        .into_iter()
        .filter(|a| !force2d || *a != force2d_dimension)
        .collect()
}

/// The wavelet images of pyradiomics' `getWaveletImage`, in its order: for
/// each level, the detail decompositions (`wavelet-LLH`, `wavelet-LHL`, …,
/// `wavelet-HHH`; from the second level on `wavelet2-…`), then the last
/// level's approximation (`wavelet-LLL`, or `waveletN-LLL`).
/// `start_level` levels are computed first and not returned, as pyradiomics
/// does. Empty for an empty image, no axes or level 0.
pub fn wavelet_images(
    image: &Array3<f64>,
    wavelet: &Wavelet,
    level: usize,
    start_level: usize,
    axes: &[usize],
) -> Vec<(String, Array3<f64>)> {
    let (z, y, x) = image.dim();
    if z * y * x == 0
        || axes.is_empty()
        || level == 0
        || axes.iter().any(|a| *a > 2)
        || wavelet.dec_lo.is_empty()
    {
        return Vec::new();
    }
    let shape = [z, y, x];
    let padded_shape = shape.map(|n| n + n % 2);
    let mut data = Array3::from_shape_fn(
        (padded_shape[0], padded_shape[1], padded_shape[2]),
        |(k, j, i)| image[[k % z, j % y, i % x]],
    );
    let crop = |a: &Array3<f64>| a.slice(ndarray::s![..z, ..y, ..x]).to_owned();
    for _ in 0..start_level {
        data = approximation(&data, wavelet, axes);
    }
    let mut out = Vec::new();
    for idx in 1..=level {
        let mut bands = decompose(&data, wavelet, axes);
        let approx_name = "L".repeat(axes.len());
        let prefix = if idx == 1 {
            "wavelet".to_string()
        } else {
            format!("wavelet{idx}")
        };
        let mut next = None;
        for (name, band) in bands.drain(..) {
            if name == approx_name {
                next = Some(band);
            } else {
                out.push((format!("{prefix}-{name}"), crop(&band)));
            }
        }
        if let Some(a) = next {
            data = a;
        }
    }
    let prefix = if level == 1 {
        "wavelet".to_string()
    } else {
        format!("wavelet{level}")
    };
    out.push((format!("{prefix}-{}", "L".repeat(axes.len())), crop(&data)));
    out
}

/// All 2^axes sub-bands of one level, named with L/H per axis in `axes`
/// order, listed in PyWavelets' order (low before high, first axis slowest).
fn decompose(data: &Array3<f64>, wavelet: &Wavelet, axes: &[usize]) -> Vec<(String, Array3<f64>)> {
    let mut bands = vec![(String::new(), data.clone())];
    for &axis in axes {
        let mut next = Vec::with_capacity(bands.len() * 2);
        for (name, band) in bands {
            next.push((
                format!("{name}L"),
                filter_axis(&band, &wavelet.dec_lo, axis),
            ));
            next.push((
                format!("{name}H"),
                filter_axis(&band, &wavelet.dec_hi, axis),
            ));
        }
        bands = next;
    }
    bands
}

fn approximation(data: &Array3<f64>, wavelet: &Wavelet, axes: &[usize]) -> Array3<f64> {
    let mut a = data.clone();
    for &axis in axes {
        a = filter_axis(&a, &wavelet.dec_lo, axis);
    }
    a
}

/// Circular convolution along one axis, aligned as PyWavelets' periodized
/// SWT: `out[i] = Σ_j f[j] · x[(i + F/2 − j) mod N]`, summed tap 0 first
/// (as `Iterator::sum`, whose -0.0 start adds nothing). Along x each line
/// is extended circularly and read as windows; along y and z whole rows
/// are multiplied and added, contiguous and in the same order per voxel.
fn filter_axis(data: &Array3<f64>, f: &[f64], axis: usize) -> Array3<f64> {
    let (nz, ny, nx) = data.dim();
    let dims = [nz, ny, nx];
    let n = dims[axis];
    if n == 0 || f.is_empty() || dims.contains(&0) {
        return Array3::zeros(data.raw_dim());
    }
    let taps = f.len();
    let half = taps / 2;
    let wrap = n * (taps / n + 1);
    let src = |i: usize, j: usize| (i + half + wrap - j) % n;
    let input = data.as_standard_layout();
    let input = input.as_slice().unwrap_or(&[]);
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = vec![0.0; input.len()];
    if inner == 1 {
        // ext[m] = x[(m + half + 1 − taps) mod n], so that
        // x[(i + half − j) mod n] = ext[i + taps − 1 − j].
        let shift = (half + wrap + 1 - taps) % n;
        out.par_chunks_mut(n)
            .zip(input.par_chunks(n))
            .for_each_init(
                || Vec::with_capacity(n + taps),
                |ext, (o, line)| {
                    ext.clear();
                    ext.extend((0..n + taps - 1).map(|m| line[(m + shift) % n]));
                    for (y, w) in o.iter_mut().zip(ext.windows(taps)) {
                        *y = f.iter().zip(w.iter().rev()).map(|(c, v)| c * v).sum();
                    }
                },
            );
    } else {
        out.par_chunks_mut(inner).enumerate().for_each(|(k, o)| {
            let (outer, i) = (k / n, k % n);
            let row = |j: usize| {
                let at = (outer * n + src(i, j)) * inner;
                &input[at..at + inner]
            };
            for (y, x) in o.iter_mut().zip(row(0)) {
                *y = f[0] * x;
            }
            for (j, c) in f.iter().enumerate().skip(1) {
                for (y, x) in o.iter_mut().zip(row(j)) {
                    *y += c * x;
                }
            }
        });
    }
    Array3::from_shape_vec(data.raw_dim(), out).unwrap_or_else(|_| Array3::zeros(data.raw_dim()))
}
