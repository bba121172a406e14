//! An RTSTRUCT ROI as a voxel mask on the CT grid, the way radiomics tools
//! read structure sets: a voxel belongs to the ROI when its centre lies
//! inside the contours (even-odd rule: holes and islands) of the contour
//! plane on its slice. No interpolation between planes: a slice without a
//! contour plane within half a slice spacing is outside the ROI, as the
//! planning system drew it.

use ndarray::Array3;

use crate::rt::Roi;
use crate::segmentation::contour::{rasterise, Loop};
use crate::volume::Geometry;

/// An ROI's voxels in a window of the image grid.
#[derive(Debug, Clone)]
pub struct Window {
    /// Index `[slice, row, column]` of the window's first voxel.
    pub offset: [usize; 3],
    /// ROI membership within the window, `[slice, row, column]`.
    pub mask: Array3<bool>,
}

/// The mask on the whole grid and what was noticed on the way (planes
/// matching no slice, a non-axial grid).
pub fn roi_mask(roi: &Roi, g: &Geometry) -> (Array3<bool>, Vec<String>) {
    let [cols, rows, slices] = g.size;
    let (w, notes) = roi_window(roi, g);
    let mut mask = Array3::from_elem((slices, rows, cols), false);
    let (wz, wy, wx) = w.mask.dim();
    let [oz, oy, ox] = w.offset;
    mask.slice_mut(ndarray::s![oz..oz + wz, oy..oy + wy, ox..ox + wx])
        .assign(&w.mask);
    (mask, notes)
}

/// The mask within the window the contours cover (a CT of 512 × 512 × 200
/// voxels is 52 M booleans; an ROI's box is usually a small part of it).
pub fn roi_window(roi: &Roi, g: &Geometry) -> (Window, Vec<String>) {
    let [cols, rows, slices] = g.size;
    let mut notes = Vec::new();
    let d = &g.directions;
    if d[2][2].abs() < 0.99 {
        notes.push("the image is not axial: contours are projected along the slice normal".into());
    }
    let half = 0.5 * g.spacing[2].abs().max(1e-6);
    let mut used = vec![false; roi.planes.len()];
    // Per slice, the contour loops in fractional [row, column] indices.
    let mut per_slice: Vec<(usize, Vec<Loop>)> = Vec::new();
    for k in 0..slices {
        let o = g.position(k as f64, 0.0, 0.0);
        let nearest = roi
            .planes
            .iter()
            .enumerate()
            .map(|(i, p)| (i, (p.z - o[2]).abs()))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((pi, dist)) = nearest else { break };
        if dist > half {
            continue;
        }
        used[pi] = true;
        // Patient (x, y) → fractional [row, column] on this slice: the
        // in-plane axes are orthonormal, so projections give the indices.
        let loops: Vec<Loop> = roi.planes[pi]
            .polygons
            .iter()
            .map(|poly| {
                poly.iter()
                    .map(|p| {
                        let v = [p[0] - o[0], p[1] - o[1]];
                        let col = (v[0] * d[0][0] + v[1] * d[0][1]) / g.spacing[0];
                        let row = (v[0] * d[1][0] + v[1] * d[1][1]) / g.spacing[1];
                        [row, col]
                    })
                    .collect()
            })
            .collect();
        per_slice.push((k, loops));
    }
    let unused = used.iter().filter(|u| !**u).count();
    if unused > 0 {
        notes.push(format!(
            "{unused} contour plane(s) lie on no image slice and were left out"
        ));
    }
    // The window: every voxel centre any loop could enclose, within the grid.
    let (mut r0, mut r1, mut c0, mut c1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (_, loops) in &per_slice {
        for p in loops.iter().flatten() {
            r0 = r0.min(p[0]);
            r1 = r1.max(p[0]);
            c0 = c0.min(p[1]);
            c1 = c1.max(p[1]);
        }
    }
    let (Some(&(k0, _)), Some(&(k1, _))) = (per_slice.first(), per_slice.last()) else {
        return (
            Window {
                offset: [0; 3],
                mask: Array3::from_elem((0, 0, 0), false),
            },
            notes,
        );
    };
    let clamp = |v: f64, n: usize| v.max(0.0).min(n as f64) as usize;
    let (r0, r1) = (clamp(r0.floor(), rows), clamp(r1.ceil() + 1.0, rows));
    let (c0, c1) = (clamp(c0.floor(), cols), clamp(c1.ceil() + 1.0, cols));
    let (wr, wc) = (r1.saturating_sub(r0), c1.saturating_sub(c0));
    let mut mask = Array3::from_elem((k1 + 1 - k0, wr, wc), false);
    if wr > 0 && wc > 0 {
        for (k, loops) in &per_slice {
            let shifted: Vec<Loop> = loops
                .iter()
                .map(|l| {
                    l.iter()
                        .map(|p| [p[0] - r0 as f64, p[1] - c0 as f64])
                        .collect()
                })
                .collect();
            let plane = rasterise(&shifted, wr, wc);
            let mut dst = mask.index_axis_mut(ndarray::Axis(0), k - k0);
            for (idx, inside) in plane.into_iter().enumerate() {
                if inside {
                    dst[[idx / wc, idx % wc]] = true;
                }
            }
        }
    }
    (
        Window {
            offset: [k0, r0, c0],
            mask,
        },
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::ContourPlane;

    #[test]
    fn a_square_with_a_hole_covers_the_voxel_centres_inside() {
        let g = Geometry {
            origin: [-10.0, -10.0, 0.0],
            spacing: [1.0, 1.0, 2.0],
            directions: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            size: [21, 21, 3],
        };
        let sq = |r: f64| vec![[-r, -r], [r, -r], [r, r], [-r, r]];
        let roi = Roi::from_planes(
            1,
            "ring",
            vec![
                ContourPlane {
                    z: 2.0,
                    polygons: vec![sq(5.5), sq(2.5)],
                },
                ContourPlane {
                    z: 7.0,
                    polygons: vec![sq(5.5)],
                },
            ],
        );
        let (m, notes) = roi_mask(&roi, &g);
        // 11 × 11 outer minus 5 × 5 hole on slice 1 only.
        assert_eq!(m.iter().filter(|v| **v).count(), 121 - 25);
        assert!(m[[1, 10 - 5, 10 - 5]] && !m[[1, 10, 10]] && !m[[0, 10, 10]]);
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}
