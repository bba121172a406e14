//! The types every feature class works on. Arrays are indexed `[z, y, x]`
//! (slice, row, column), as pyradiomics' numpy arrays from SimpleITK are;
//! spacing is in the same axis order, mm.
use ndarray::{Array3, Axis};
use rayon::prelude::*;
use serde::Serialize;

/// An image and its ROI mask on one grid, cropped to the mask's bounding box.
#[derive(Debug, Clone)]
pub struct Roi {
    /// Intensities (HU for CT), `[z, y, x]`.
    pub image: Array3<f64>,
    /// ROI membership, same shape as `image`.
    pub mask: Array3<bool>,
    /// Voxel spacing `[dz, dy, dx]`, mm.
    pub spacing: [f64; 3],
}

/// The ROI's intensities discretised into grey levels.
#[derive(Debug, Clone)]
pub struct Levels {
    /// `0` outside the ROI, `1..=ng` inside. Same shape as the ROI.
    pub grid: Array3<u32>,
    /// Number of grey levels of the discretisation: the highest level any
    /// voxel could take. pyradiomics' matrices are sized by the highest level
    /// present and then drop the empty levels (see `Standard`); the IBSI
    /// manual keeps every level `1..=ng` (the digital phantom: ng = 6 with
    /// levels 2 and 5 empty).
    pub ng: u32,
    /// Voxel spacing `[dz, dy, dx]`, mm.
    pub spacing: [f64; 3],
}

/// Which definition a step follows where pyradiomics and the IBSI manual differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Standard {
    /// pyradiomics' behaviour (its resampling, binning edges and
    /// matrix conventions), so that values match a pyradiomics run.
    #[default]
    Pyradiomics,
    /// The IBSI reference manual's definitions, as checked against its
    /// digital phantom.
    Ibsi,
}

/// How texture matrices of several directions become one feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Aggregation {
    /// One matrix per direction, features averaged over directions
    /// (pyradiomics' GLCM and GLRLM; IBSI "3D, averaged").
    #[default]
    Averaged,
    /// Matrices of all directions summed into one, features of that
    /// (IBSI "3D, merged").
    Merged,
}

/// pyradiomics' `weightingNorm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WeightingNorm {
    /// Sum of the offset's absolute components, mm.
    Manhattan,
    /// Euclidean length of the offset, mm.
    Euclidean,
    /// Largest absolute component of the offset, mm.
    Infinity,
    /// pyradiomics' `no_weighting`: every direction weight 1.
    NoWeighting,
}

/// Settings of the texture classes, with pyradiomics' defaults.
#[derive(Debug, Clone)]
pub struct TextureSettings {
    /// Neighbour distances (Chebyshev, in voxels); pyradiomics `distances: [1]`.
    pub distances: Vec<usize>,
    /// Directions only in the plane perpendicular to `force2d_dimension`.
    pub force2d: bool,
    /// Axis (0 = z, 1 = y, 2 = x) that is ignored with `force2d`.
    pub force2d_dimension: usize,
    /// GLCM: count each pair in both orders (pyradiomics default true).
    pub symmetrical_glcm: bool,
    /// GLCM/GLRLM: weight direction matrices by their length before summing
    /// (pyradiomics' weightingNorm; None = features averaged over directions).
    pub weighting_norm: Option<WeightingNorm>,
    /// GLDM: coarseness parameter alpha (pyradiomics `gldm_a`, default 0).
    pub gldm_a: f64,
    /// Where pyradiomics and IBSI definitions differ, which apply.
    pub standard: Standard,
    /// How per-direction matrices combine into one value.
    pub aggregation: Aggregation,
}

impl Default for TextureSettings {
    fn default() -> Self {
        TextureSettings {
            distances: vec![1],
            force2d: false,
            force2d_dimension: 0,
            symmetrical_glcm: true,
            weighting_norm: None,
            gldm_a: 0.0,
            standard: Standard::Pyradiomics,
            aggregation: Aggregation::Averaged,
        }
    }
}

/// A feature value by its pyradiomics name within its class
/// (`JointEnergy`, not `original_glcm_JointEnergy`).
pub type Feature = (&'static str, f64);

/// The 13 unique neighbour directions of 3-D space (26-connectivity, one of
/// each opposite pair), or the 4 in-plane ones with `force2d`, as
/// `[dz, dy, dx]` steps, scaled by `distance`. Order: pyradiomics'
/// `generateAngles` order is not needed by any feature (averages and sums
/// are order-free), so this order is simply lexicographic.
pub fn directions(distance: usize, force2d: bool, force2d_dimension: usize) -> Vec<[isize; 3]> {
    let d = distance as isize;
    let mut out = Vec::new();
    for dz in -1isize..=1 {
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let v = [dz, dy, dx];
                if v == [0, 0, 0] {
                    continue;
                }
                // keep one of each opposite pair: first non-zero component positive
                let first = v.iter().copied().find(|c| *c != 0).unwrap_or(0);
                if first < 0 {
                    continue;
                }
                if force2d && v[force2d_dimension] != 0 {
                    continue;
                }
                out.push([dz * d, dy * d, dx * d]);
            }
        }
    }
    out
}

/// Bounding box `(lo, hi_exclusive)` of a mask's true voxels per axis, or
/// None for an empty mask. Slices in parallel (a mask can be as large as a
/// CT), each row searched from both ends.
pub fn bounding_box(mask: &Array3<bool>) -> Option<([usize; 3], [usize; 3])> {
    let views: Vec<_> = mask.axis_iter(Axis(0)).collect();
    let planes: Vec<Option<([usize; 3], [usize; 3])>> = views
        .into_par_iter()
        .enumerate()
        .map(|(z, plane)| {
            let mut lo = [usize::MAX; 3];
            let mut hi = [0usize; 3];
            for (y, row) in plane.outer_iter().enumerate() {
                let first = match row.as_slice() {
                    Some(r) => r.iter().position(|m| *m),
                    None => row.iter().position(|m| *m),
                };
                let Some(first) = first else { continue };
                let last = row.len() - 1 - row.iter().rev().position(|m| *m).unwrap_or(0);
                lo = [z, lo[1].min(y), lo[2].min(first)];
                hi = [z + 1, hi[1].max(y + 1), hi[2].max(last + 1)];
            }
            (lo[0] != usize::MAX).then_some((lo, hi))
        })
        .collect();
    planes.into_iter().flatten().reduce(|(l1, h1), (l2, h2)| {
        (
            [l1[0].min(l2[0]), l1[1].min(l2[1]), l1[2].min(l2[2])],
            [h1[0].max(h2[0]), h1[1].max(h2[1]), h1[2].max(h2[2])],
        )
    })
}
