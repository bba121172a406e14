//! Point-sampling lattices in the axial plane and even-odd polygon filling
//! on them.
//!
//! A lattice sample stands for the `hx × hy` rectangle centred on it, so a
//! filled lattice is a midpoint-rule estimate of the polygon's area whose
//! error shrinks with the step (and largely cancels along a boundary).

use super::rtstruct::ContourPlane;

/// Samples (x0 + i hx, y0 + j hy) for i < nx, j < ny, row-major (j outer).
#[derive(Debug, Clone, PartialEq)]
pub struct Lattice {
    /// x of the first sample (column 0), in the polygons' units: mm in the
    /// patient plane, or pixels for [`Lattice::pixel_centres`].
    pub x0: f64,
    /// y of the first sample (row 0), in the same units as `x0`.
    pub y0: f64,
    /// Step between columns, same units.
    pub hx: f64,
    /// Step between rows, same units.
    pub hy: f64,
    /// Number of columns (samples along x).
    pub nx: usize,
    /// Number of rows (samples along y).
    pub ny: usize,
}

impl Lattice {
    /// A lattice of step `h` covering `[x_min, x_max] × [y_min, y_max]`
    /// with at least one empty sample of padding on every side (so every
    /// filled region has a boundary inside the lattice).
    pub fn covering(bounds: [f64; 4], h: f64) -> Lattice {
        let nx = ((bounds[2] - bounds[0]) / h).ceil() as usize + 3;
        let ny = ((bounds[3] - bounds[1]) / h).ceil() as usize + 3;
        let cx = 0.5 * (bounds[0] + bounds[2]);
        let cy = 0.5 * (bounds[1] + bounds[3]);
        // Shifted off the centre by irrational fractions of a step: a lattice
        // symmetric about a contour's centre (circles, ellipses) counts the
        // same boundary error in every quadrant and every plane, a bias of
        // over 1 % in volume at a coarse step instead of noise that cancels.
        Lattice {
            x0: cx - 0.5 * (nx - 1) as f64 * h + 0.381_966 * h,
            y0: cy - 0.5 * (ny - 1) as f64 * h + 0.236_068 * h,
            hx: h,
            hy: h,
            nx,
            ny,
        }
    }

    /// The pixel centres of a `rows × cols` image plane in fractional
    /// pixel indices: x is the column, y the row, step 1, starting at 0.
    pub fn pixel_centres(rows: usize, cols: usize) -> Lattice {
        Lattice {
            x0: 0.0,
            y0: 0.0,
            hx: 1.0,
            hy: 1.0,
            nx: cols,
            ny: rows,
        }
    }

    /// Number of samples, nx·ny: the length of a mask [`Lattice::fill`] writes.
    pub fn len(&self) -> usize {
        self.nx * self.ny
    }

    /// Whether the lattice has no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// x of column `i`.
    pub fn x(&self, i: usize) -> f64 {
        self.x0 + i as f64 * self.hx
    }

    /// y of row `j`.
    pub fn y(&self, j: usize) -> f64 {
        self.y0 + j as f64 * self.hy
    }

    /// The area one sample stands for, hx·hy (mm² on a patient-plane lattice).
    pub fn area(&self) -> f64 {
        self.hx * self.hy
    }

    /// The first column whose x is at or after `x` (nx if none), exactly:
    /// the division only gives a guess that rounding can put one off.
    fn first_at_or_after(&self, x: f64) -> usize {
        let mut i = ((x - self.x0) / self.hx).ceil().clamp(0.0, self.nx as f64) as usize;
        while i > 0 && self.x(i - 1) >= x {
            i -= 1;
        }
        while i < self.nx && self.x(i) < x {
            i += 1;
        }
        i
    }

    /// Fills `mask` (len nx·ny) with the even-odd interior of every polygon
    /// of the plane together: a contour inside another is a hole, one
    /// inside a hole an island. `crossings` is scratch space.
    pub fn fill(&self, plane: &ContourPlane, mask: &mut Vec<bool>, crossings: &mut Vec<Vec<f64>>) {
        self.fill_polygons(&plane.polygons, mask, crossings);
    }

    /// [`Lattice::fill`] for bare `[x, y]` polygons: the one even-odd
    /// filler of the crate (the DVH's sampling lattices, and the pixel grids
    /// of segmentation and radiomics through
    /// [`Lattice::pixel_centres`]). A sample row through a vertex counts
    /// each edge on the half-open interval `[low y, high y)`, so it is
    /// counted once.
    pub fn fill_polygons<P: AsRef<[[f64; 2]]>>(
        &self,
        polygons: &[P],
        mask: &mut Vec<bool>,
        crossings: &mut Vec<Vec<f64>>,
    ) {
        mask.clear();
        mask.resize(self.len(), false);
        crossings.resize_with(self.ny, Vec::new);
        for c in crossings.iter_mut() {
            c.clear();
        }
        for poly in polygons {
            let poly = poly.as_ref();
            let n = poly.len();
            for e in 0..n {
                let a = poly[e];
                let b = poly[(e + 1) % n];
                if a[1] == b[1] {
                    continue;
                }
                let (lo, hi) = if a[1] < b[1] { (a, b) } else { (b, a) };
                // Rows whose y lies in [lo.y, hi.y): each crossing counted once
                // even where rows pass exactly through vertices.
                // One row of slack each way: the division rounds, the exact
                // test below decides (a row through a vertex must be counted
                // by exactly one of its two edges).
                let j0 = ((lo[1] - self.y0) / self.hy).floor().max(0.0) as usize;
                let j1 = ((hi[1] - self.y0) / self.hy).ceil().max(0.0) as usize + 1;
                let slope = (hi[0] - lo[0]) / (hi[1] - lo[1]);
                let rows = j1.min(self.ny).saturating_sub(j0);
                for (j, row) in crossings.iter_mut().enumerate().skip(j0).take(rows) {
                    let y = self.y(j);
                    if y < lo[1] || y >= hi[1] {
                        continue;
                    }
                    row.push(lo[0] + (y - lo[1]) * slope);
                }
            }
        }
        for (j, row) in crossings.iter_mut().enumerate() {
            if row.len() < 2 {
                continue;
            }
            row.sort_by(f64::total_cmp);
            for pair in row.chunks_exact(2) {
                let i0 = self.first_at_or_after(pair[0]);
                let i1 = self.first_at_or_after(pair[1]);
                if i0 < i1 {
                    mask[j * self.nx + i0..j * self.nx + i1].fill(true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(c: [f64; 2], r: f64) -> Vec<[f64; 2]> {
        vec![
            [c[0] - r, c[1] - r],
            [c[0] + r, c[1] - r],
            [c[0] + r, c[1] + r],
            [c[0] - r, c[1] + r],
        ]
    }

    #[test]
    fn holes_and_islands_by_even_odd() {
        let plane = ContourPlane {
            z: 0.0,
            polygons: vec![
                square([0.0, 0.0], 10.0),
                square([0.0, 0.0], 6.0),
                square([0.0, 0.0], 2.0),
            ],
        };
        let lat = Lattice::covering([-10.0, -10.0, 10.0, 10.0], 0.1);
        let (mut mask, mut scratch) = (Vec::new(), Vec::new());
        lat.fill(&plane, &mut mask, &mut scratch);
        let area = mask.iter().filter(|m| **m).count() as f64 * lat.area();
        let exact = 400.0 - 144.0 + 16.0;
        assert!((area - exact).abs() < 0.01 * exact, "{area} vs {exact}");
        assert!((plane.area_mm2() - exact).abs() < 1e-9);
        let at = |x: f64, y: f64| {
            let i = ((x - lat.x0) / lat.hx).round() as usize;
            let j = ((y - lat.y0) / lat.hy).round() as usize;
            mask[j * lat.nx + i]
        };
        assert!(at(0.0, 0.0), "island");
        assert!(!at(4.0, 0.0), "hole");
        assert!(at(8.0, 0.0), "ring");
        assert!(!at(10.08, 0.0), "padding");
    }
}
