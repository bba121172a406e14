//! An RTSTRUCT ROI as a voxel mask on the CT grid, the way radiomics tools
//! read structure sets: a voxel belongs to the ROI when its centre lies
//! inside the contours (even-odd rule: holes and islands) of the contour
//! plane on its slice. No interpolation between planes: a slice without a
//! contour plane within half a slice spacing is outside the ROI, as the
//! planning system drew it.

use ndarray::Array3;

use crate::rt::Roi;
use crate::stages::segmentation::contour::{rasterise, Loop};
use crate::volume::Geometry;

/// The mask and what was noticed on the way (planes matching no slice,
/// a non-axial grid).
pub fn roi_mask(roi: &Roi, g: &Geometry) -> (Array3<bool>, Vec<String>) {
    let [cols, rows, slices] = g.size;
    let mut mask = Array3::from_elem((slices, rows, cols), false);
    let mut notes = Vec::new();
    let d = &g.directions;
    if d[2][2].abs() < 0.99 {
        notes.push("the image is not axial: contours are projected along the slice normal".into());
    }
    let half = 0.5 * g.spacing[2].abs().max(1e-6);
    let mut used = vec![false; roi.planes.len()];
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
                        let v = [p[0] - o[0], p[1] - o[1], 0.0];
                        let col = (v[0] * d[0][0] + v[1] * d[0][1]) / g.spacing[0];
                        let row = (v[0] * d[1][0] + v[1] * d[1][1]) / g.spacing[1];
                        [row, col]
                    })
                    .collect()
            })
            .collect();
        let plane = rasterise(&loops, rows, cols);
        for (idx, inside) in plane.into_iter().enumerate() {
            if inside {
                mask[[k, idx / cols, idx % cols]] = true;
            }
        }
    }
    let unused = used.iter().filter(|u| !**u).count();
    if unused > 0 {
        notes.push(format!(
            "{unused} contour plane(s) lie on no image slice and were left out"
        ));
    }
    (mask, notes)
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
