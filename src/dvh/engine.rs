//! Structures × dose → histograms.
//!
//! Each lattice sample's z interval is integrated down its column: split
//! at the dose frames, the trilinear dose is linear in z on every piece, so
//! each piece is deposited exactly as a uniform spread between its end
//! doses (see `histogram`). In-plane the dose is bilinear at the sample.

use rayon::prelude::*;

use crate::rt::raster::Lattice;
use crate::rt::rtdose::{CellXY, DoseGrid};
use crate::rt::shape::{self, Shape, ShapeOptions};
use crate::rt::Roi;

use super::histogram::{Accumulator, Histogram};

/// Lattices beyond this many samples get a coarser step: bounds memory and
/// time for ROIs whose outline spans far more than their area (scattered
/// islands, thin shells).
pub const MAX_LATTICE: usize = 1 << 21;

/// Reads dose from one grid for the DVH: interpolated between nodes,
/// integrated along z over a sample's intervals.
pub struct Sampler<'a> {
    grid: &'a DoseGrid,
    data: &'a [f32],
    nx: usize,
    plane: usize,
    z_lo: f64,
    z_hi: f64,
    /// Highest dose in the grid: sizes the histograms.
    pub max: f64,
}

impl<'a> Sampler<'a> {
    /// A sampler over `grid`; None when its voxels are not one contiguous
    /// array.
    pub fn new(grid: &'a DoseGrid) -> Option<Sampler<'a>> {
        let b = grid.geometry.bounds();
        Some(Sampler {
            grid,
            data: grid.data.as_slice()?,
            nx: grid.geometry.nx,
            plane: grid.geometry.nx * grid.geometry.ny,
            z_lo: b[2][0],
            z_hi: b[2][1],
            max: grid.max_dose(),
        })
    }

    #[inline(always)]
    fn value(&self, k: usize, c: &CellXY) -> f64 {
        let g = &self.grid.geometry;
        let base = k * self.plane + c.j0 * self.nx + c.i0;
        let di = usize::from(c.i0 + 1 < g.nx);
        let dj = if c.j0 + 1 < g.ny { self.nx } else { 0 };
        let a = f64::from(self.data[base]);
        let b = f64::from(self.data[base + di]);
        let e = f64::from(self.data[base + dj]);
        let f = f64::from(self.data[base + dj + di]);
        let top = a + (b - a) * c.fx;
        let bottom = e + (f - e) * c.fx;
        top + (bottom - top) * c.fy
    }

    /// Deposits the column piece [za, zb] at in-plane cell `c` of area `area`.
    pub fn deposit(&self, acc: &mut Accumulator, c: Option<&CellXY>, area: f64, za: f64, zb: f64) {
        let Some(c) = c else {
            acc.add_outside(area * (zb - za));
            return;
        };
        let (lo, hi) = (za.max(self.z_lo), zb.min(self.z_hi));
        if hi <= lo {
            acc.add_outside(area * (zb - za));
            return;
        }
        let out = (zb - za) - (hi - lo);
        if out > 0.0 {
            acc.add_outside(area * out);
        }
        let z = &self.grid.geometry.z;
        let n = z.len();
        if n == 1 {
            let d = self.value(0, c);
            acc.deposit(d, d, area * (hi - lo));
            return;
        }
        let mut s = lo;
        if s < z[0] {
            let e = hi.min(z[0]);
            let d = self.value(0, c);
            acc.deposit(d, d, area * (e - s));
            s = e;
        }
        let mut k = z.partition_point(|&v| v <= s).saturating_sub(1).min(n - 2);
        let mut vk = self.value(k, c);
        while s < hi && s < z[n - 1] {
            let vk1 = self.value(k + 1, c);
            let e = hi.min(z[k + 1]);
            let span = z[k + 1] - z[k];
            let ds = vk + (vk1 - vk) * ((s - z[k]) / span);
            let de = vk + (vk1 - vk) * ((e - z[k]) / span);
            acc.deposit(ds, de, area * (e - s));
            s = e;
            if k + 2 >= n {
                break;
            }
            k += 1;
            vk = vk1;
        }
        if s < hi {
            let d = self.value(n - 1, c);
            acc.deposit(d, d, area * (hi - s));
        }
    }
}

/// The lattice for a contoured ROI, and a note when it had to be coarsened.
pub fn roi_lattice(roi: &Roi, step: f64) -> Option<(Lattice, Option<String>)> {
    let bounds = shape::roi_bounds(roi)?;
    let mut h = step;
    let mut lat = Lattice::covering(bounds, h);
    let mut note = None;
    while lat.len() > MAX_LATTICE {
        h *= 1.5;
        lat = Lattice::covering(bounds, h);
        note = Some(format!(
            "in-plane step coarsened to {h:.3} mm to bound memory"
        ));
    }
    Some((lat, note))
}

/// DVH of a contoured ROI streamed from its contours: per window of
/// segments, lattice rows in parallel, each thread with its own histogram.
pub fn roi_histogram(
    roi: &Roi,
    lattice: &Lattice,
    opts: &ShapeOptions,
    sampler: &Sampler,
    bin: f64,
) -> (Histogram, Vec<String>) {
    let area = lattice.area();
    let geometry = &sampler.grid.geometry;
    // In-plane cell positions depend on x and y separately: per column
    // and per row once, not per sample.
    let xs: Vec<Option<(usize, f64)>> = (0..lattice.nx)
        .map(|i| geometry.cell_x(lattice.x(i)))
        .collect();
    let mut total = Accumulator::new(bin, sampler.max);
    let notes = shape::for_each_window(roi, lattice, opts, |window, rasters| {
        let part = in_fixed_pieces(
            lattice.ny,
            || Accumulator::new(bin, sampler.max),
            |acc, j| {
                let yc = geometry.cell_y(lattice.y(j));
                for seg in window {
                    shape::segment_row(seg, rasters, lattice.nx, j, |i, lo, hi| {
                        let c = match (xs[i], yc) {
                            (Some((i0, fx)), Some((j0, fy))) => Some(CellXY { i0, j0, fx, fy }),
                            _ => None,
                        };
                        sampler.deposit(acc, c.as_ref(), area, lo, hi);
                    });
                }
            },
        );
        total = std::mem::replace(&mut total, Accumulator::new(bin, 0.0)).merge(part);
    });
    (total.finish(), notes)
}

/// DVH of a shape (derived structures).
pub fn shape_histogram(shape: &Shape, sampler: &Sampler, bin: f64) -> Histogram {
    let lattice = &shape.lattice;
    let area = lattice.area();
    let max = sampler.max;
    in_fixed_pieces(
        lattice.ny,
        || Accumulator::new(bin, max),
        |acc, j| {
            for i in 0..lattice.nx {
                let idx = j * lattice.nx + i;
                let col = shape.column(idx);
                if col.is_empty() {
                    continue;
                }
                let c = sampler.grid.geometry.cell_xy(lattice.x(i), lattice.y(j));
                for s in col {
                    sampler.deposit(acc, c.as_ref(), area, s[0], s[1]);
                }
            }
        },
    )
    .finish()
}

/// Rows of the lattice per piece of parallel work. Fixed, and the pieces'
/// sums added in row order, so that a DVH is the same to the last bit
/// whatever the number of threads and however they were scheduled: a
/// course gives identical numbers on a laptop, the node and a cluster job.
const ROWS_PER_PIECE: usize = 8;

/// Accumulates `row(acc, j)` over rows `0..ny` in parallel, deterministically.
fn in_fixed_pieces(
    ny: usize,
    new: impl Fn() -> Accumulator + Sync,
    row: impl Fn(&mut Accumulator, usize) + Sync,
) -> Accumulator {
    let pieces: Vec<Accumulator> = (0..ny.div_ceil(ROWS_PER_PIECE))
        .into_par_iter()
        .map(|p| {
            let mut acc = new();
            for j in p * ROWS_PER_PIECE..((p + 1) * ROWS_PER_PIECE).min(ny) {
                row(&mut acc, j);
            }
            acc
        })
        .collect();
    pieces.into_iter().fold(new(), Accumulator::merge)
}
