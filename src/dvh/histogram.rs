//! Dose-volume accumulation that is exact for doses varying linearly over
//! each deposited piece.
//!
//! A column piece over which the dose goes linearly from d0 to d1 spreads
//! its volume uniformly over [d0, d1]. Binning that uniform density
//! directly would cost one step per bin it spans; instead the cumulative
//! volume G(d) = volume below d is kept as a sum of ramp functions, each a
//! difference of two hinges (d - a)+, whose coefficients are accumulated
//! where they start and summed once at the end. Every deposit is O(1) and
//! the histogram is exact at bin edges.

/// Pieces narrower than this (Gy) are deposited at their midpoint: the
/// uniform spread would differ from a point by far less than a bin, and the
/// ramp coefficients would grow without bound.
const NARROW_GY: f64 = 1e-9;

/// A DVH being built: deposits of volume over linear dose ranges, summed in
/// O(1) each (see the module documentation); [`Accumulator::finish`] makes
/// the [`Histogram`].
#[derive(Debug, Clone)]
pub struct Accumulator {
    bin: f64,
    inv_bin: f64,
    /// Coefficient of e (the bin edge) starting at each edge index.
    slope: Vec<f64>,
    /// Constant term starting at each edge index.
    offset: Vec<f64>,
    /// Volume inside the dose grid, mm³.
    pub volume: f64,
    /// ∫ dose dV, Gy·mm³.
    pub dose_volume: f64,
    /// Lowest dose deposited, Gy (+∞ before any deposit).
    pub min: f64,
    /// Highest dose deposited, Gy (−∞ before any deposit).
    pub max: f64,
    /// Volume of the structure outside the dose grid, mm³.
    pub outside: f64,
}

impl Accumulator {
    /// Bins of `bin` Gy from 0 up to at least `max_dose`.
    pub fn new(bin: f64, max_dose: f64) -> Accumulator {
        let n = (max_dose.max(0.0) / bin).ceil() as usize + 2;
        Accumulator {
            bin,
            inv_bin: 1.0 / bin,
            slope: vec![0.0; n + 1],
            offset: vec![0.0; n + 1],
            volume: 0.0,
            dose_volume: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            outside: 0.0,
        }
    }

    #[inline]
    fn edge_index(&self, d: f64) -> usize {
        // First edge e_j = j·bin with e_j >= d, clamped into the table (a
        // dose beyond the last edge only happens through rounding). The
        // cast truncates, which is floor for the non-negative values that
        // matter and saturates negative ones to 0: cheaper than ceil().
        let t = d * self.inv_bin;
        let j = t as usize;
        let j = if (j as f64) < t { j + 1 } else { j };
        j.min(self.slope.len() - 1)
    }

    /// Adds `v` mm³ whose dose goes linearly from `d0` to `d1`.
    #[inline]
    pub fn deposit(&mut self, d0: f64, d1: f64, v: f64) {
        if v <= 0.0 {
            return;
        }
        let (a, b) = if d0 <= d1 { (d0, d1) } else { (d1, d0) };
        self.volume += v;
        self.dose_volume += v * 0.5 * (a + b);
        self.min = self.min.min(a);
        self.max = self.max.max(b);
        if b - a < NARROW_GY {
            // A step at the midpoint: G(e) += v for e > mid.
            let m = 0.5 * (a + b);
            let j = if m < 0.0 {
                0
            } else {
                (m * self.inv_bin) as usize + 1
            };
            let j = j.min(self.slope.len() - 1);
            self.offset[j] += v;
            return;
        }
        let c = v / (b - a);
        let ja = self.edge_index(a);
        let jb = self.edge_index(b);
        // c·[(e - a)+ - (e - b)+]
        self.slope[ja] += c;
        self.offset[ja] -= c * a;
        self.slope[jb] -= c;
        self.offset[jb] += c * b;
    }

    /// Adds `v` mm³ of the structure that lies outside the dose grid (counted
    /// apart, not in the DVH).
    pub fn add_outside(&mut self, v: f64) {
        self.outside += v;
    }

    /// Sums two accumulators of the same bin width (those of parallel workers).
    pub fn merge(mut self, other: Accumulator) -> Accumulator {
        if other.slope.len() > self.slope.len() {
            return other.merge(self);
        }
        for (s, o) in self.slope.iter_mut().zip(&other.slope) {
            *s += o;
        }
        for (s, o) in self.offset.iter_mut().zip(&other.offset) {
            *s += o;
        }
        self.volume += other.volume;
        self.dose_volume += other.dose_volume;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.outside += other.outside;
        self
    }

    /// The finished histogram: cumulative volumes at every bin edge up to just
    /// above the highest dose.
    pub fn finish(self) -> Histogram {
        // G at each edge, then bin contents as differences.
        let mut below = Vec::with_capacity(self.slope.len());
        let (mut s, mut o) = (0.0, 0.0);
        for j in 0..self.slope.len() {
            s += self.slope[j];
            o += self.offset[j];
            below.push((s * j as f64 * self.bin + o).clamp(0.0, self.volume));
        }
        // Force monotonicity lost to rounding.
        for j in 1..below.len() {
            if below[j] < below[j - 1] {
                below[j] = below[j - 1];
            }
        }
        // Trim empty bins above the maximum.
        let last = if self.max.is_finite() {
            ((self.max / self.bin).floor() as usize + 2).min(below.len())
        } else {
            1
        };
        below.truncate(last.max(1));
        if let Some(l) = below.last_mut() {
            *l = self.volume;
        }
        Histogram {
            bin_gy: self.bin,
            below,
            volume: self.volume,
            dose_volume: self.dose_volume,
            min: if self.min.is_finite() { self.min } else { 0.0 },
            max: if self.max.is_finite() { self.max } else { 0.0 },
            outside: self.outside,
        }
    }
}

/// A finished DVH. Volumes in mm³.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Bin width, Gy.
    pub bin_gy: f64,
    /// Volume receiving less than edge j·bin_gy, for every edge; the last
    /// is the whole volume.
    pub below: Vec<f64>,
    /// Volume inside the dose grid, mm³.
    pub volume: f64,
    /// ∫ dose dV over that volume, Gy·mm³.
    pub dose_volume: f64,
    /// Lowest dose in the structure, Gy (0 when empty).
    pub min: f64,
    /// Highest dose in the structure, Gy (0 when empty).
    pub max: f64,
    /// Volume of the structure outside the dose grid, mm³ (not in `volume`).
    pub outside: f64,
}

impl Histogram {
    /// A histogram of no volume, with bins of `bin_gy` Gy.
    pub fn empty(bin_gy: f64) -> Histogram {
        Accumulator::new(bin_gy, 0.0).finish()
    }

    /// Number of bin edges (0, bin_gy, 2·bin_gy, …) in `below`.
    pub fn edges(&self) -> usize {
        self.below.len()
    }

    /// Cumulative DVH at edge j: volume receiving at least j·bin_gy.
    pub fn cumulative(&self, j: usize) -> f64 {
        (self.volume - self.below[j]).max(0.0)
    }

    /// Differential DVH: volume in [j·bin, (j+1)·bin).
    pub fn differential(&self) -> Vec<f64> {
        self.below.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Volume receiving at least `d` Gy (mm³), linear between edges.
    pub fn volume_at_least(&self, d: f64) -> f64 {
        if d <= self.min {
            return self.volume;
        }
        if d > self.max {
            return 0.0;
        }
        let t = d / self.bin_gy;
        let j = t.floor() as usize;
        if j + 1 >= self.below.len() {
            return 0.0;
        }
        let f = t - j as f64;
        let g = self.below[j] + (self.below[j + 1] - self.below[j]) * f;
        (self.volume - g).max(0.0)
    }

    /// The dose d such that `v` mm³ receive at least d; `None` when `v`
    /// exceeds the volume or the histogram is empty.
    pub fn dose_covering(&self, v: f64) -> Option<f64> {
        if self.volume <= 0.0 || v > self.volume * (1.0 + 1e-12) || v < 0.0 {
            return None;
        }
        // G(d) = volume - v; G is non-decreasing over edges.
        let target = self.volume - v;
        let j = self.below.partition_point(|g| *g < target);
        let d = if j == 0 {
            0.0
        } else if j >= self.below.len() {
            self.max
        } else {
            let (g0, g1) = (self.below[j - 1], self.below[j]);
            let f = if g1 > g0 {
                (target - g0) / (g1 - g0)
            } else {
                0.0
            };
            ((j - 1) as f64 + f) * self.bin_gy
        };
        Some(d.clamp(self.min, self.max))
    }

    /// Mean dose, Gy; None for a structure with no volume in the grid.
    pub fn mean(&self) -> Option<f64> {
        (self.volume > 0.0).then(|| self.dose_volume / self.volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_spread_is_exact() {
        let mut a = Accumulator::new(0.01, 10.0);
        a.deposit(2.0, 4.0, 100.0);
        a.deposit(5.0, 5.0, 50.0);
        let h = a.finish();
        assert!((h.volume - 150.0).abs() < 1e-9);
        assert!((h.volume_at_least(3.0) - 100.0).abs() < 1e-6);
        assert!((h.volume_at_least(4.5) - 50.0).abs() < 1e-6);
        assert!((h.dose_covering(75.0).unwrap() - 3.5).abs() < 1e-6);
        assert!((h.dose_covering(150.0).unwrap() - 2.0).abs() < 1e-6);
        assert!((h.mean().unwrap() - (100.0 * 3.0 + 50.0 * 5.0) / 150.0).abs() < 1e-9);
        assert_eq!((h.min, h.max), (2.0, 5.0));
        let diff: f64 = h.differential().iter().sum();
        assert!((diff - 150.0).abs() < 1e-6);
        assert!(h.dose_covering(151.0).is_none());
    }

    #[test]
    fn merge_equals_single() {
        let mut a = Accumulator::new(0.1, 3.0);
        let mut b = Accumulator::new(0.1, 8.0);
        let mut c = Accumulator::new(0.1, 8.0);
        for (i, (d0, d1)) in [(0.5, 1.7), (2.0, 2.95), (6.0, 7.3)].iter().enumerate() {
            c.deposit(*d0, *d1, 1.0 + i as f64);
            if i < 2 {
                a.deposit(*d0, *d1, 1.0 + i as f64);
            } else {
                b.deposit(*d0, *d1, 1.0 + i as f64);
            }
        }
        let (m, s) = (a.merge(b).finish(), c.finish());
        for j in 0..s.edges() {
            assert!((m.below[j] - s.below[j]).abs() < 1e-9);
        }
    }
}
