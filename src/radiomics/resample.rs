//! Resampling of an image and its ROI mask to a new voxel spacing, the two
//! ways the standards define it.
//!
//! * pyradiomics (`imageoperations.resampleImage` with SimpleITK): the new
//!   grid is anchored on the corner of the original image and only covers the
//!   mask's bounding box plus `padDistance` new voxels; the image goes through
//!   the configured ITK interpolator (cubic B-spline by default) and is cast
//!   back to the input pixel type, the mask goes through nearest neighbour.
//! * IBSI 1 (image processing chapter): the new grid is centred on the
//!   original one, intensities are interpolated (trilinear by default) and
//!   optionally rounded, and the mask is interpolated as a 0/1 field and kept
//!   where it reaches the partial-volume threshold.
//!
//! Everything works in index space: arrays are `[z, y, x]`, spacings
//! `[dz, dy, dx]` in mm, and a grid position is the continuous index into the
//! input array. The origin of the result is reported as such a continuous
//! index (`Resampled::origin_index`), which the caller turns into a physical
//! point with the input's origin and direction if it needs one.
use ndarray::{s, Array3, Axis};
use rayon::prelude::*;

/// How intensities are read between voxel centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolator {
    /// ITK's cubic B-spline (`sitkBSpline`): B-spline coefficients from the
    /// recursive prefilter with mirror boundaries, then the cubic kernel.
    #[default]
    BSpline,
    /// Trilinear (`sitkLinear`), edge voxels repeated beyond the grid.
    Linear,
    /// Nearest neighbour (`sitkNearestNeighbor`), halves rounded up.
    NearestNeighbor,
}

/// What the interpolated intensities are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PixelCast {
    /// Kept as computed (a floating-point input image).
    #[default]
    Float,
    /// An integer pixel type: SimpleITK writes the result in the input's
    /// pixel type, clamping to its range and truncating toward zero.
    Truncate {
        /// Lowest value of the pixel type.
        min: f64,
        /// Highest value of the pixel type.
        max: f64,
    },
}

impl PixelCast {
    /// The 16-bit signed pixels of CT (and of pyradiomics' test cases).
    pub const INT16: PixelCast = PixelCast::Truncate {
        min: -32768.0,
        max: 32767.0,
    };

    fn apply(self, v: f64) -> f64 {
        match self {
            PixelCast::Float => v,
            PixelCast::Truncate { min, max } => {
                if v.is_nan() {
                    0.0
                } else {
                    v.clamp(min, max).trunc()
                }
            }
        }
    }
}

/// Where the arrays given to the resamplers lie in the whole image: both
/// standards place the new grid relative to the whole image (pyradiomics on
/// its first voxel, IBSI on its centre), so a crop must say where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Index of the array's first voxel in the whole image, `[z, y, x]`.
    pub offset: [usize; 3],
    /// Size of the whole image, `[z, y, x]`.
    pub full_dims: [usize; 3],
}

impl Placement {
    /// The array is the whole image.
    pub fn whole<T>(a: &Array3<T>) -> Placement {
        Placement {
            offset: [0; 3],
            full_dims: shape(a),
        }
    }
}

/// A resampled image and mask on one grid.
#[derive(Debug, Clone)]
pub struct Resampled {
    /// Interpolated intensities `[z, y, x]` on the new grid.
    pub image: Array3<f64>,
    /// The ROI on the new grid, same shape as `image`.
    pub mask: Array3<bool>,
    /// Spacing of the new grid `[dz, dy, dx]`, mm.
    pub spacing: [f64; 3],
    /// Continuous index, in the input array, of the new voxel `[0, 0, 0]`'s
    /// centre.
    pub origin_index: [f64; 3],
}

/// pyradiomics' resampling (`resampleImage`).
///
/// `target` is `resampledPixelSpacing` in `[dz, dy, dx]` order; a 0 keeps
/// the input spacing on that axis. Axes where the mask spans one voxel are
/// never resampled. When the spacing does not change, the image and mask are
/// only cropped to the bounding box padded by `pad_distance` voxels, as
/// pyradiomics does. `cast` is the input's pixel type (SimpleITK keeps it).
/// None for an empty mask, a shape mismatch or a spacing that is not > 0.
#[allow(clippy::too_many_arguments)]
pub fn resample_pyradiomics(
    image: &Array3<f64>,
    mask: &Array3<bool>,
    spacing: [f64; 3],
    target: [f64; 3],
    interpolator: Interpolator,
    pad_distance: f64,
    cast: PixelCast,
    place: Placement,
) -> Option<Resampled> {
    if image.dim() != mask.dim()
        || spacing.iter().any(|s| !positive(*s))
        || target.iter().any(|s| !non_negative(*s))
    {
        return None;
    }
    let local_dims = shape(image);
    let dims = place.full_dims;
    let (lo_local, hi_local) = super::image::bounding_box(mask)?;
    let lo: [usize; 3] = std::array::from_fn(|a| lo_local[a] + place.offset[a]);
    let hi: [usize; 3] = std::array::from_fn(|a| hi_local[a] + place.offset[a]);
    let mut new_spacing = [0.0; 3];
    for a in 0..3 {
        new_spacing[a] = if target[a] == 0.0 || hi[a] - lo[a] == 1 {
            spacing[a]
        } else {
            target[a]
        };
    }
    // numpy.allclose(imageSpacing, resampledPixelSpacing)
    if (0..3).all(|a| (spacing[a] - new_spacing[a]).abs() <= 1e-8 + 1e-5 * new_spacing[a].abs()) {
        let pad = pad_distance.max(0.0) as usize;
        let lo_p: Vec<usize> = (0..3).map(|a| lo_local[a].saturating_sub(pad)).collect();
        let hi_p: Vec<usize> = (0..3)
            .map(|a| (hi_local[a] + pad).min(local_dims[a]))
            .collect();
        let sl = s![lo_p[0]..hi_p[0], lo_p[1]..hi_p[1], lo_p[2]..hi_p[2]];
        return Some(Resampled {
            image: image.slice(sl).to_owned(),
            mask: mask.slice(sl).to_owned(),
            spacing,
            origin_index: [lo_p[0] as f64, lo_p[1] as f64, lo_p[2] as f64],
        });
    }
    let mut coords: [Vec<f64>; 3] = Default::default();
    let mut origin_index = [0.0; 3];
    for a in 0..3 {
        let ratio = spacing[a] / new_spacing[a];
        // Rounded outwards by half a voxel so upsampling loses nothing.
        let mut new_lo = ((lo[a] as f64 - 0.5) * ratio - pad_distance).floor();
        let mut new_hi = ((hi[a] as f64 - 0.5) * ratio + pad_distance).ceil();
        let max_hi = (dims[a] as f64 * ratio).ceil() - 1.0;
        if new_lo < 0.0 {
            new_lo = 0.0;
        }
        if new_hi > max_hi {
            new_hi = max_hi;
        }
        let n = (new_hi - new_lo + 1.0).max(0.0) as usize;
        // The new grid's voxel 0 shares its corner with the input's voxel 0,
        // then is moved by whole new voxels to the padded bounding box.
        let c0 = 0.5 * (new_spacing[a] - spacing[a]) / spacing[a] + new_lo / ratio;
        origin_index[a] = c0;
        // ITK goes through physical space: origin + j * new spacing, then back
        // to an index by dividing by the input spacing.
        let origin_mm = c0 * spacing[a];
        let off = place.offset[a] as f64;
        origin_index[a] -= off;
        coords[a] = (0..n)
            .map(|j| (origin_mm + j as f64 * new_spacing[a]) / spacing[a] - off)
            .collect();
    }
    let img = sample(image, &coords, interpolator, true, cast);
    let mask_f = sample_mask_nearest(mask, &coords);
    Some(Resampled {
        image: img,
        mask: mask_f,
        spacing: new_spacing,
        origin_index,
    })
}

/// IBSI resampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IbsiResampling {
    /// New spacing `[dz, dy, dx]`, mm; 0 keeps the input spacing on that axis
    /// (e.g. in-plane only resampling).
    pub spacing: [f64; 3],
    /// Image interpolator: trilinear by default, cubic B-spline allowed.
    pub interpolator: Interpolator,
    /// Round interpolated intensities to the nearest integer (integer-valued
    /// modalities such as CT).
    pub round_intensities: bool,
    /// Partial-volume threshold of the interpolated mask (kept where ≥).
    pub mask_threshold: f64,
    /// Extra new voxels kept around the mask's extent (for filters).
    pub pad: usize,
}

impl Default for IbsiResampling {
    fn default() -> Self {
        IbsiResampling {
            spacing: [0.0; 3],
            interpolator: Interpolator::Linear,
            round_intensities: true,
            mask_threshold: 0.5,
            pad: 0,
        }
    }
}

/// The IBSI grid along one axis: number of new voxels and the continuous
/// input index of the first new voxel's centre. The new grid covers
/// `ceil(n·s_in/s_new)` voxels and shares its centre with the input grid.
pub fn ibsi_grid(n: usize, spacing: f64, new_spacing: f64) -> (usize, f64) {
    if n == 0 || !positive(spacing) || !positive(new_spacing) {
        return (0, 0.0);
    }
    let m = (n as f64 * spacing / new_spacing).ceil().max(1.0) as usize;
    let first = (spacing * (n as f64 - 1.0) - new_spacing * (m as f64 - 1.0)) / (2.0 * spacing);
    (m, first)
}

/// IBSI resampling: the centred grid over the whole image, evaluated only
/// where the interpolated mask can be non-zero (plus `settings.pad` voxels),
/// so the result is a crop of the full resampled image. The mask is
/// resampled trilinearly and thresholded. None for an empty mask, a shape
/// mismatch or a spacing that is not > 0.
pub fn resample_ibsi(
    image: &Array3<f64>,
    mask: &Array3<bool>,
    spacing: [f64; 3],
    settings: &IbsiResampling,
    place: Placement,
) -> Option<Resampled> {
    if image.dim() != mask.dim()
        || spacing.iter().any(|s| !positive(*s))
        || settings.spacing.iter().any(|s| !non_negative(*s))
    {
        return None;
    }
    let dims = place.full_dims;
    let (lo_local, hi_local) = super::image::bounding_box(mask)?;
    let lo: [usize; 3] = std::array::from_fn(|a| lo_local[a] + place.offset[a]);
    let hi: [usize; 3] = std::array::from_fn(|a| hi_local[a] + place.offset[a]);
    let mut coords: [Vec<f64>; 3] = Default::default();
    let mut origin_index = [0.0; 3];
    let mut new_spacing = [0.0; 3];
    for a in 0..3 {
        new_spacing[a] = if settings.spacing[a] == 0.0 {
            spacing[a]
        } else {
            settings.spacing[a]
        };
        let (m, first) = ibsi_grid(dims[a], spacing[a], new_spacing[a]);
        let step = new_spacing[a] / spacing[a];
        // A trilinear mask is non-zero only within one input voxel of the
        // mask's voxels: (lo - 1, hi).
        let j_lo = ((lo[a] as f64 - 1.0 - first) / step).floor().max(0.0) as usize;
        let j_hi = (((hi[a] as f64 - first) / step).ceil().max(0.0) as usize + 1).min(m);
        let j_lo = j_lo.saturating_sub(settings.pad);
        let j_hi = (j_hi + settings.pad).min(m);
        let off = place.offset[a] as f64;
        origin_index[a] = first + j_lo as f64 * step - off;
        coords[a] = (j_lo..j_hi)
            .map(|j| first + j as f64 * step - off)
            .collect();
    }
    let mut img = sample(
        image,
        &coords,
        settings.interpolator,
        false,
        PixelCast::Float,
    );
    if settings.round_intensities {
        img.mapv_inplace(|v| v.round());
    }
    let mask_in = mask.mapv(|m| if m { 1.0 } else { 0.0 });
    let mask_field = sample(
        &mask_in,
        &coords,
        Interpolator::Linear,
        false,
        PixelCast::Float,
    );
    // Tolerate the rounding of a weighted sum that is exactly the threshold.
    let thr = settings.mask_threshold - 1e-12;
    let mask_out = mask_field.mapv(|v| v >= thr);
    Some(Resampled {
        image: img,
        mask: mask_out,
        spacing: new_spacing,
        origin_index,
    })
}

/// Finite and > 0 (NaN fails).
fn positive(s: f64) -> bool {
    s.is_finite() && s > 0.0
}

/// Finite and >= 0 (NaN fails); 0 means "keep" in a target spacing.
fn non_negative(s: f64) -> bool {
    s.is_finite() && s >= 0.0
}

fn shape<T>(a: &Array3<T>) -> [usize; 3] {
    let (z, y, x) = a.dim();
    [z, y, x]
}

/// ITK's test for a continuous index inside the image: within half a voxel
/// of the first and before half a voxel past the last centre.
fn inside(c: f64, n: usize) -> bool {
    c >= -0.5 && c < n as f64 - 0.5
}

fn sample_mask_nearest(mask: &Array3<bool>, coords: &[Vec<f64>; 3]) -> Array3<bool> {
    let dims = shape(mask);
    // Nearest index per axis (halves rounded up), None outside the image.
    let idx: Vec<Vec<Option<usize>>> = (0..3)
        .map(|a| {
            coords[a]
                .iter()
                .map(|&c| {
                    inside(c, dims[a])
                        .then(|| ((c + 0.5).floor().max(0.0) as usize).min(dims[a] - 1))
                })
                .collect()
        })
        .collect();
    let mut out = Array3::from_elem((coords[0].len(), coords[1].len(), coords[2].len()), false);
    let planes: Vec<_> = out.axis_iter_mut(Axis(0)).collect();
    planes
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut plane)| {
            let Some(z) = idx[0][k] else { return };
            for ((j, i), v) in plane.indexed_iter_mut() {
                if let (Some(y), Some(x)) = (idx[1][j], idx[2][i]) {
                    *v = mask[[z, y, x]];
                }
            }
        });
    out
}

/// Interpolates `src` at every point of the separable grid `coords`
/// (continuous indices per axis). With `outside_zero`, points outside the
/// input (ITK's buffer test) get 0, as ResampleImageFilter's default pixel.
fn sample(
    src: &Array3<f64>,
    coords: &[Vec<f64>; 3],
    interpolator: Interpolator,
    outside_zero: bool,
    cast: PixelCast,
) -> Array3<f64> {
    let dims = shape(src);
    let out_dim = (coords[0].len(), coords[1].len(), coords[2].len());
    if out_dim.0 * out_dim.1 * out_dim.2 == 0 || dims.contains(&0) {
        return Array3::zeros(out_dim);
    }
    let ins: Vec<Vec<bool>> = (0..3)
        .map(|a| {
            coords[a]
                .iter()
                .map(|&c| !outside_zero || inside(c, dims[a]))
                .collect()
        })
        .collect();
    // Per axis and per output position: the input indices and weights.
    let (order, kernel): (usize, Kernel) = match interpolator {
        Interpolator::NearestNeighbor => (1, nearest_kernel),
        Interpolator::Linear => (2, linear_kernel),
        Interpolator::BSpline => (4, bspline_kernel),
    };
    let taps: Vec<Vec<(Vec<usize>, Vec<f64>)>> = (0..3)
        .map(|a| {
            coords[a]
                .iter()
                .map(|&c| {
                    let (ix, w) = kernel(c, dims[a]);
                    (ix.iter().map(|&i| i as usize).collect(), w)
                })
                .collect()
        })
        .collect();
    // The B-spline coefficients are needed only around the taps; the
    // prefilter's recursion forgets what lies more than ~30 voxels away
    // (|pole| = 0.268, 0.268^30 < 1e-17), so it runs on a crop with a wide
    // margin instead of the whole image (a CT volume would cost GBs).
    let (values, offset) = if interpolator == Interpolator::BSpline {
        const MARGIN: usize = 48;
        let mut lo = [0usize; 3];
        let mut hi = [0usize; 3];
        for a in 0..3 {
            let used = taps[a].iter().flat_map(|(ix, _)| ix.iter().copied());
            let (mn, mx) = used.fold((usize::MAX, 0), |(mn, mx), i| (mn.min(i), mx.max(i)));
            lo[a] = mn.saturating_sub(MARGIN);
            hi[a] = (mx + 1 + MARGIN).min(dims[a]);
        }
        let crop = src
            .slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]])
            .to_owned();
        (bspline_coefficients(crop), lo)
    } else {
        (src.clone(), [0; 3])
    };
    let mut out = Array3::zeros(out_dim);
    let planes: Vec<_> = out.axis_iter_mut(Axis(0)).collect();
    if interpolator == Interpolator::Linear {
        // ITK's trilinear form, nested lerps x, then y, then z: a weighted
        // sum rounds differently, and the truncating cast turns 1 ulp below
        // an integer into a whole unit.
        planes
            .into_par_iter()
            .enumerate()
            .for_each(|(k, mut plane)| {
                if !ins[0][k] {
                    return;
                }
                let (iz, wz) = &taps[0][k];
                for ((j, i), v) in plane.indexed_iter_mut() {
                    if !ins[1][j] || !ins[2][i] {
                        continue;
                    }
                    let (iy, wy) = &taps[1][j];
                    let (ix, wx) = &taps[2][i];
                    let line = |c: usize, b: usize| {
                        let p0 = values[[iz[c], iy[b], ix[0]]];
                        p0 + (values[[iz[c], iy[b], ix[1]]] - p0) * wx[1]
                    };
                    let face = |c: usize| {
                        let l0 = line(c, 0);
                        l0 + (line(c, 1) - l0) * wy[1]
                    };
                    let f0 = face(0);
                    *v = cast.apply(f0 + (face(1) - f0) * wz[1]);
                }
            });
        return out;
    }
    planes
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut plane)| {
            if !ins[0][k] {
                return;
            }
            let (iz, wz) = &taps[0][k];
            for ((j, i), v) in plane.indexed_iter_mut() {
                if !ins[1][j] || !ins[2][i] {
                    continue;
                }
                let (iy, wy) = &taps[1][j];
                let (ix, wx) = &taps[2][i];
                // ITK's order: x fastest, weight product x·y·z.
                let mut acc = 0.0;
                for c in 0..order {
                    for b in 0..order {
                        for a in 0..order {
                            let w = wx[a] * wy[b] * wz[c];
                            acc += w * values
                                [[iz[c] - offset[0], iy[b] - offset[1], ix[a] - offset[2]]];
                        }
                    }
                }
                *v = cast.apply(acc);
            }
        });
    out
}

/// Input indices and weights of one output position along one axis.
type Kernel = fn(f64, usize) -> (Vec<i64>, Vec<f64>);

fn nearest_kernel(c: f64, n: usize) -> (Vec<i64>, Vec<f64>) {
    let i = ((c + 0.5).floor() as i64).clamp(0, n as i64 - 1);
    (vec![i], vec![1.0])
}

/// Trilinear along one axis, the edge voxel repeated beyond the grid (ITK's
/// LinearInterpolateImageFunction and IBSI's nearest extrapolation).
fn linear_kernel(c: f64, n: usize) -> (Vec<i64>, Vec<f64>) {
    let last = n as i64 - 1;
    let base = c.floor() as i64;
    if base < 0 {
        return (vec![0, 0], vec![1.0, 0.0]);
    }
    if base >= last {
        return (vec![last, last], vec![1.0, 0.0]);
    }
    let w = c - base as f64;
    (vec![base, base + 1], vec![1.0 - w, w])
}

/// ITK's cubic B-spline kernel: support from the float-rounded position,
/// weights of the four coefficients, mirror boundary (reflection about the
/// first and last voxel).
fn bspline_kernel(c: f64, n: usize) -> (Vec<i64>, Vec<f64>) {
    let first = (c as f32).floor() as i64 - 1;
    let w = c - (first + 1) as f64;
    let w3 = w * w * w / 6.0;
    let w0 = 1.0 / 6.0 + 0.5 * w * (w - 1.0) - w3;
    let w2 = w + w0 - 2.0 * w3;
    let w1 = 1.0 - w0 - w2 - w3;
    let last = n as i64 - 1;
    let idx = (0..4)
        .map(|k| {
            if n == 1 {
                return 0;
            }
            let mut i = first + k;
            if i < 0 {
                i = -i;
            }
            if i >= last {
                i = last - (i - last);
            }
            // A second reflection would be needed only on axes of 2 voxels.
            i.clamp(0, last)
        })
        .collect();
    (idx, vec![w0, w1, w2, w3])
}

/// Cubic B-spline coefficients (ITK's BSplineDecompositionImageFilter,
/// Unser's recursive filter with mirror boundaries), axes x, y, z in turn.
fn bspline_coefficients(mut a: Array3<f64>) -> Array3<f64> {
    for axis in [2usize, 1, 0] {
        let len = a.len_of(Axis(axis));
        if len < 2 {
            continue;
        }
        // Lanes along `axis`; each is filtered independently.
        let mut lanes: Vec<_> = a.lanes_mut(Axis(axis)).into_iter().collect();
        lanes.par_iter_mut().for_each_init(
            || vec![0.0; len],
            |scratch, lane| {
                for (s, v) in scratch.iter_mut().zip(lane.iter()) {
                    *s = *v;
                }
                prefilter_1d(scratch);
                for (v, s) in lane.iter_mut().zip(scratch.iter()) {
                    *v = *s;
                }
            },
        );
    }
    a
}

fn prefilter_1d(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z = 3f64.sqrt() - 2.0;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    for v in c.iter_mut() {
        *v *= gain;
    }
    // Causal initial value: a truncated sum when the pole's powers fall
    // below ITK's 1e-10 tolerance within the line, else the exact mirror sum.
    let horizon = (1e-10f64.ln() / z.abs().ln()).ceil() as usize;
    if horizon < n {
        let mut zn = z;
        let mut sum = c[0];
        for v in c.iter().take(horizon).skip(1) {
            sum += zn * v;
            zn *= z;
        }
        c[0] = sum;
    } else {
        let iz = 1.0 / z;
        let mut zn = z;
        let mut z2n = z.powi(n as i32 - 1);
        let mut sum = c[0] + z2n * c[n - 1];
        // z^(2n-3): the mirrored sample's power, stepped down by 1/z.
        z2n = z2n * z2n * iz;
        for v in c.iter().take(n - 1).skip(1) {
            sum += (zn + z2n) * v;
            zn *= z;
            z2n *= iz;
        }
        c[0] = sum / (1.0 - zn * zn);
    }
    for k in 1..n {
        c[k] += z * c[k - 1];
    }
    c[n - 1] = (z / (z * z - 1.0)) * (z * c[n - 2] + c[n - 1]);
    for k in (0..n - 1).rev() {
        c[k] = z * (c[k + 1] - c[k]);
    }
}
