//! pyradiomics' LoG image type (`getLoGImage`): SimpleITK's
//! `LaplacianRecursiveGaussianImageFilter` with `NormalizeAcrossScale` on,
//! one derived image per sigma (mm).
//!
//! ITK approximates the Gaussian and its second derivative with Deriche's
//! 4th-order recursive (IIR) filters: per line a causal and an anti-causal
//! pass, the edge value assumed to extend to infinity on either side. The
//! Laplacian is, for each axis, the second derivative along that axis
//! followed by Gaussian smoothing along the other two (ascending ITK axis
//! order x, y, z), divided by that axis' spacing squared and accumulated.
//! ITK keeps every intermediate image and the accumulator in `float`
//! (computing within a line in double), and the filter's output is `float`;
//! the rounding is reproduced here, so the values are the float image
//! pyradiomics computes its features on (bit for bit on the test images).
//!
//! Arrays are `[z, y, x]`, spacing `[dz, dy, dx]` mm.
use ndarray::Array3;
use rayon::prelude::*;

/// ITK refuses spacings below this (`RecursiveGaussianImageFilter::SetUp`).
const SPACING_TOLERANCE: f64 = 1e-8;

/// The LoG images pyradiomics yields for `sigmas` (mm), in order, named as
/// pyradiomics names them (`log-sigma-1-0-mm-3D`). As pyradiomics does, no
/// image at all when any dimension is under 4 voxels (the recursive filter
/// needs 4 samples per line), and a sigma is skipped unless it is positive
/// and every dimension has at least `ceil(sigma / spacing) + 1` voxels.
/// A spacing ITK would reject (under 1e-8 mm, or not finite) gives no
/// image either, where pyradiomics would stop with ITK's exception.
pub fn log_images(
    image: &Array3<f64>,
    spacing: [f64; 3],
    sigmas: &[f64],
) -> Vec<(String, Array3<f64>)> {
    let dim = image.dim();
    let size = [dim.0, dim.1, dim.2];
    if size.iter().any(|n| *n < 4) {
        return Vec::new();
    }
    if spacing
        .iter()
        .any(|s| !s.is_finite() || s.abs() < SPACING_TOLERANCE)
    {
        return Vec::new();
    }
    let data: Vec<f64> = image.iter().copied().collect();
    // One sigma per thread when the worker has several.
    sigmas
        .par_iter()
        .filter(|s| sigma_fits(**s, size, spacing))
        .map(|s| {
            let out = laplacian_of_gaussian(&data, size, spacing, *s);
            let arr = Array3::from_shape_vec(dim, out.into_iter().map(f64::from).collect())
                .unwrap_or_else(|_| Array3::zeros(dim));
            (log_image_name(*s), arr)
        })
        .collect()
}

/// pyradiomics' test before filtering with `sigma`.
pub fn sigma_fits(sigma: f64, size: [usize; 3], spacing: [f64; 3]) -> bool {
    sigma > 0.0
        && size
            .iter()
            .zip(spacing.iter())
            .all(|(n, sp)| *n as f64 >= (sigma / sp).ceil() + 1.0)
}

/// `'log-sigma-%s-mm-3D' % str(sigma).replace('.', "-")` for a Python float.
pub fn log_image_name(sigma: f64) -> String {
    format!(
        "log-sigma-{}-mm-3D",
        python_float_str(sigma).replace('.', "-")
    )
}

/// Python's `str(float)`: the shortest round-trip digits, with a `.0` on
/// integral values, and exponent notation (`1e-05`, `1e+16`) for decimal
/// exponents below -4 or from 16 up. Rust's `{:?}` makes the same choice of
/// digits and of notation but writes the exponent bare (`1e-5`, `1e16`).
pub fn python_float_str(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{x:?}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// One LoG image, as ITK's float values.
fn laplacian_of_gaussian(
    data: &[f64],
    size: [usize; 3],
    spacing: [f64; 3],
    sigma: f64,
) -> Vec<f32> {
    let mut acc = vec![0f32; data.len()];
    // ITK's axis d (x, y, z) is our axis 2 - d; ITK's order decides the
    // float rounding of the accumulator.
    for itk_dim in 0..3 {
        let axis = 2 - itk_dim;
        let second = Coefficients::new(sigma, spacing[axis], Order::Second);
        let mut cur = filter_axis(data, size, axis, &second);
        for other_itk in (0..3).filter(|d| *d != itk_dim) {
            let other = 2 - other_itk;
            let smooth = Coefficients::new(sigma, spacing[other], Order::Zero);
            cur = filter_axis(&cur, size, other, &smooth);
        }
        let inv = 1.0 / (spacing[axis] * spacing[axis]);
        acc.par_iter_mut().zip(cur.par_iter()).for_each(|(a, b)| {
            *a = (f64::from(*a) + f64::from(*b) * inv) as f32;
        });
    }
    acc
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    Zero,
    Second,
}

/// Deriche's recursive filter: causal `n`, anti-causal `m`, shared
/// feedback `d`, and the edge-extension terms `bn`, `bm`.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    n: [f64; 4],
    d: [f64; 4],
    m: [f64; 4],
    bn: [f64; 4],
    bm: [f64; 4],
}

/// Deriche's fit of the Gaussian (a0) and its second derivative (a2) by
/// two damped cosines, as ITK tabulates it.
const W1: f64 = 0.6681;
const L1: f64 = -1.3932;
const W2: f64 = 2.0787;
const L2: f64 = -1.3732;
const ORDER0: [f64; 4] = [1.3530, 1.8151, -0.3531, 0.0902]; // A1, B1, A2, B2
const ORDER2: [f64; 4] = [-1.3563, 5.2318, 0.3446, -2.2355];

/// Numerator terms and their 0th, 1st, 2nd moments (SN, DN, EN).
fn numerator(sigmad: f64, abab: [f64; 4]) -> ([f64; 4], f64, f64, f64) {
    let [a1, b1, a2, b2] = abab;
    let (sin1, cos1) = (W1 / sigmad).sin_cos();
    let (sin2, cos2) = (W2 / sigmad).sin_cos();
    let e1 = (L1 / sigmad).exp();
    let e2 = (L2 / sigmad).exp();
    let n0 = a1 + a2;
    let n1 = e2 * (b2 * sin2 - (a2 + 2.0 * a1) * cos2) + e1 * (b1 * sin1 - (a1 + 2.0 * a2) * cos1);
    let n2 = 2.0 * e1 * e2 * ((a1 + a2) * cos2 * cos1 - (b1 * cos2 * sin1 + b2 * cos1 * sin2))
        + a2 * e1 * e1
        + a1 * e2 * e2;
    let n3 = e2 * e1 * e1 * (b2 * sin2 - a2 * cos2) + e1 * e2 * e2 * (b1 * sin1 - a1 * cos1);
    let sn = n0 + n1 + n2 + n3;
    let dn = n1 + 2.0 * n2 + 3.0 * n3;
    let en = n1 + 4.0 * n2 + 9.0 * n3;
    ([n0, n1, n2, n3], sn, dn, en)
}

impl Coefficients {
    /// `sigma` in mm, `spacing` the axis' (ITK works in pixel units
    /// `sigma / spacing` and normalises the second derivative by the
    /// physical sigma squared).
    fn new(sigma: f64, spacing: f64, order: Order) -> Coefficients {
        let spacing = spacing.abs();
        let sigmad = sigma / spacing;
        let cos1 = (W1 / sigmad).cos();
        let cos2 = (W2 / sigmad).cos();
        let e1 = (L1 / sigmad).exp();
        let e2 = (L2 / sigmad).exp();
        let d = [
            -2.0 * (e2 * cos2 + e1 * cos1),
            4.0 * cos2 * cos1 * e1 * e2 + e1 * e1 + e2 * e2,
            -2.0 * cos1 * e1 * e2 * e2 - 2.0 * cos2 * e2 * e1 * e1,
            e1 * e1 * e2 * e2,
        ];
        let sd = 1.0 + d[0] + d[1] + d[2] + d[3];
        let dd = d[0] + 2.0 * d[1] + 3.0 * d[2] + 4.0 * d[3];
        let ed = d[0] + 4.0 * d[1] + 9.0 * d[2] + 16.0 * d[3];
        let n = match order {
            Order::Zero => {
                // unit gain; NormalizeAcrossScale leaves the order-0 filter alone
                let (n, sn, _, _) = numerator(sigmad, ORDER0);
                let alpha0 = 2.0 * sn / sd - n[0];
                n.map(|v| v / alpha0)
            }
            Order::Second => {
                let (n0, sn0, dn0, en0) = numerator(sigmad, ORDER0);
                let (n2, sn2, dn2, en2) = numerator(sigmad, ORDER2);
                // the mix of both fits whose response to a constant is zero
                let beta = -(2.0 * sn2 - sd * n2[0]) / (2.0 * sn0 - sd * n0[0]);
                let n: [f64; 4] = std::array::from_fn(|i| n2[i] + beta * n0[i]);
                let sn = sn2 + beta * sn0;
                let dn = dn2 + beta * dn0;
                let en = en2 + beta * en0;
                // response 2 to x^2, i.e. a unit second derivative
                let alpha2 = (en * sd * sd - ed * sn * sd - 2.0 * dn * dd * sd
                    + 2.0 * dd * dd * sn)
                    / (sd * sd * sd);
                let scale = sigma * sigma / alpha2;
                n.map(|v| v * scale)
            }
        };
        // both orders are symmetric kernels
        let m = [
            n[1] - d[0] * n[0],
            n[2] - d[1] * n[0],
            n[3] - d[2] * n[0],
            -d[3] * n[0],
        ];
        let sn: f64 = n.iter().sum();
        let sm: f64 = m.iter().sum();
        Coefficients {
            n,
            d,
            m,
            bn: d.map(|v| v * sn / sd),
            bm: d.map(|v| v * sm / sd),
        }
    }

    /// `w` interleaved lines of at least 4 samples (sample i of line k at
    /// `i * w + k`): causal plus anti-causal response, the first and last
    /// samples repeated to infinity outside. Interleaving lets the recursion, which
    /// is serial along a line, run across lines in SIMD.
    fn filter_block(&self, x: &[f64], w: usize, out: &mut [f64], anti: &mut [f64]) {
        let len = x.len() / w;
        let (n, d, m, bn, bm) = (&self.n, &self.d, &self.m, &self.bn, &self.bm);
        // summed left to right as ITK does, so results agree to the last bit
        let dot = |a: [f64; 4], c: &[f64; 4]| a[0] * c[0] + a[1] * c[1] + a[2] * c[2] + a[3] * c[3];
        let (db1, db2, db3) = (
            [d[0], bn[1], bn[2], bn[3]],
            [d[0], d[1], bn[2], bn[3]],
            [d[0], d[1], d[2], bn[3]],
        );
        let (dm1, dm2, dm3) = (
            [d[0], bm[1], bm[2], bm[3]],
            [d[0], d[1], bm[2], bm[3]],
            [d[0], d[1], d[2], bm[3]],
        );
        let at = |i: usize| i * w;

        for k in 0..w {
            let v = x[k];
            let o0 = dot([v, v, v, v], n) - dot([v, v, v, v], bn);
            let o1 = dot([x[at(1) + k], v, v, v], n) - dot([o0, v, v, v], &db1);
            let o2 = dot([x[at(2) + k], x[at(1) + k], v, v], n) - dot([o1, o0, v, v], &db2);
            let o3 =
                dot([x[at(3) + k], x[at(2) + k], x[at(1) + k], v], n) - dot([o2, o1, o0, v], &db3);
            out[k] = o0;
            out[at(1) + k] = o1;
            out[at(2) + k] = o2;
            out[at(3) + k] = o3;
        }
        for i in 4..len {
            let (done, rest) = out.split_at_mut(at(i));
            let row = &mut rest[..w];
            let (o1, o2, o3, o4) = (
                &done[at(i - 1)..],
                &done[at(i - 2)..],
                &done[at(i - 3)..],
                &done[at(i - 4)..],
            );
            let (x0, x1, x2, x3) = (
                &x[at(i)..],
                &x[at(i - 1)..],
                &x[at(i - 2)..],
                &x[at(i - 3)..],
            );
            for k in 0..w {
                row[k] =
                    dot([x0[k], x1[k], x2[k], x3[k]], n) - dot([o1[k], o2[k], o3[k], o4[k]], d);
            }
        }

        let l = len;
        for k in 0..w {
            let v = x[at(l - 1) + k];
            let x1 = x[at(l - 1) + k];
            let x2 = x[at(l - 2) + k];
            let x3 = x[at(l - 3) + k];
            let a1 = dot([v, v, v, v], m) - dot([v, v, v, v], bm);
            let a2 = dot([x1, v, v, v], m) - dot([a1, v, v, v], &dm1);
            let a3 = dot([x2, x1, v, v], m) - dot([a2, a1, v, v], &dm2);
            let a4 = dot([x3, x2, x1, v], m) - dot([a3, a2, a1, v], &dm3);
            anti[at(l - 1) + k] = a1;
            anti[at(l - 2) + k] = a2;
            anti[at(l - 3) + k] = a3;
            anti[at(l - 4) + k] = a4;
        }
        for i in (0..l - 4).rev() {
            let (head, done) = anti.split_at_mut(at(i + 1));
            let row = &mut head[at(i)..];
            let (a1, a2, a3, a4) = (&done[..], &done[at(1)..], &done[at(2)..], &done[at(3)..]);
            let (x1, x2, x3, x4) = (
                &x[at(i + 1)..],
                &x[at(i + 2)..],
                &x[at(i + 3)..],
                &x[at(i + 4)..],
            );
            for k in 0..w {
                row[k] =
                    dot([x1[k], x2[k], x3[k], x4[k]], m) - dot([a1[k], a2[k], a3[k], a4[k]], d);
            }
        }
        for (o, a) in out.iter_mut().zip(anti.iter()) {
            *o += a;
        }
    }
}

/// Lines filtered together in one block (a few KiB per buffer).
const BLOCK: usize = 64;

/// Filters every line along `axis` of a `[z, y, x]` row-major volume; the
/// result is rounded to float as ITK stores it.
fn filter_axis<T: Copy + Into<f64> + Sync>(
    data: &[T],
    size: [usize; 3],
    axis: usize,
    c: &Coefficients,
) -> Vec<f32> {
    let len = size[axis];
    let mut out = vec![0f32; data.len()];
    if data.is_empty() || len < 4 {
        return out;
    }
    let buffers = || (Vec::<f64>::new(), Vec::<f64>::new(), Vec::<f64>::new());
    if axis == 2 {
        // lines are rows: take BLOCK rows at a time, interleaved
        out.par_chunks_mut(BLOCK * len)
            .zip(data.par_chunks(BLOCK * len))
            .for_each_init(buffers, |(x, y, a), (o, src)| {
                let w = src.len() / len;
                x.resize(len * w, 0.0);
                y.resize(len * w, 0.0);
                a.resize(len * w, 0.0);
                for (k, line) in src.chunks(len).enumerate() {
                    for (i, v) in line.iter().enumerate() {
                        x[i * w + k] = (*v).into();
                    }
                }
                c.filter_block(x, w, y, a);
                for (k, line) in o.chunks_mut(len).enumerate() {
                    for (i, v) in line.iter_mut().enumerate() {
                        *v = y[i * w + k] as f32;
                    }
                }
            });
        return out;
    }
    // [outer, len, inner] with inner contiguous: the lines of one outer index
    // are already interleaved; cut inner into chunks for the threads
    let inner: usize = size[axis + 1..].iter().product();
    let outer: usize = size[..axis].iter().product();
    let chunk = if outer >= 2 * rayon::current_num_threads() {
        inner
    } else {
        BLOCK.max(inner.div_ceil(4 * rayon::current_num_threads()))
    };
    let chunks = inner.div_ceil(chunk);
    let results: Vec<Vec<f32>> = (0..outer * chunks)
        .into_par_iter()
        .map_init(buffers, |(x, y, a), task| {
            let (o, k0) = (task / chunks, (task % chunks) * chunk);
            let w = chunk.min(inner - k0);
            x.resize(len * w, 0.0);
            y.resize(len * w, 0.0);
            a.resize(len * w, 0.0);
            let base = o * len * inner + k0;
            for i in 0..len {
                let src = &data[base + i * inner..base + i * inner + w];
                for (xi, v) in x[i * w..(i + 1) * w].iter_mut().zip(src) {
                    *xi = (*v).into();
                }
            }
            c.filter_block(x, w, y, a);
            y.iter().map(|v| *v as f32).collect()
        })
        .collect();
    out.par_chunks_mut(inner)
        .enumerate()
        .for_each(|(row, dst)| {
            let (o, i) = (row / len, row % len);
            for (ci, part) in dst.chunks_mut(chunk).enumerate() {
                let w = part.len();
                part.copy_from_slice(&results[o * chunks + ci][i * w..(i + 1) * w]);
            }
        });
    out
}
