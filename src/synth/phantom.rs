//! The analytic phantom the synthetic CT samples: a body ellipse with
//! lungs, spine and a couch, each region a constant HU, so that any
//! slice's expected values are known in closed form.

use super::*;

/// An axis-aligned ellipse in the axial (x, y) plane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipse {
    /// Centre x, patient mm.
    pub cx: f64,
    /// Centre y, patient mm.
    pub cy: f64,
    /// Semi-axis along x.
    pub rx: f64,
    /// Semi-axis along y.
    pub ry: f64,
}

#[allow(
    dead_code,
    reason = "consumed by the RTSTRUCT/RTDOSE synthesis and contour-validation stages"
)]
impl Ellipse {
    /// Closed ellipse test (boundary counts as inside).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let u = (x - self.cx) / self.rx;
        let v = (y - self.cy) / self.ry;
        u * u + v * v <= 1.0
    }

    /// Area in mm², π·rx·ry.
    pub fn area(&self) -> f64 {
        std::f64::consts::PI * self.rx * self.ry
    }

    /// `n` points on the boundary, counter-clockwise in the (x, y) plane
    /// starting at +x; intended for writing exact contours (RTSTRUCT).
    pub fn boundary(&self, n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let t = std::f64::consts::TAU * i as f64 / n as f64;
                (self.cx + self.rx * t.cos(), self.cy + self.ry * t.sin())
            })
            .collect()
    }
}

/// An axis-aligned rectangle in the axial plane, infinite along z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slab {
    /// Lowest x, mm (inclusive).
    pub x_min: f64,
    /// Highest x, mm (inclusive).
    pub x_max: f64,
    /// Lowest y, mm (inclusive).
    pub y_min: f64,
    /// Highest y, mm (inclusive).
    pub y_max: f64,
}

impl Slab {
    /// Whether (x, y), mm, lies in the rectangle (edges included).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        (self.x_min..=self.x_max).contains(&x) && (self.y_min..=self.y_max).contains(&y)
    }
}

/// Analytic phantom geometry in patient coordinates (mm).
///
/// Every structure is a prism along z (an infinite cylinder); only the lungs
/// are limited in z, to `z >= lung_z_min`, so that the series is not the
/// same image repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct Phantom {
    /// Outer body outline (soft tissue).
    pub body: Ellipse,
    /// Right lung (patient right = -x) and left lung (+x).
    pub lungs: [Ellipse; 2],
    /// Lungs exist only for z at or above this value.
    pub lung_z_min: f64,
    /// Outer boundary of the vertebral body (cortical bone ring).
    pub spine_cortical: Ellipse,
    /// Inner trabecular bone; lies inside `spine_cortical`.
    pub spine_trabecular: Ellipse,
    /// Couch slab posterior to the body, separated by `couch_gap_mm` of air.
    pub couch: Slab,
    /// Air gap between the most posterior body point and the couch top.
    pub couch_gap_mm: f64,
    /// Noise inside the body (see [`SynthOptions::noise_hu`]).
    pub noise_hu: f64,
}

impl Phantom {
    /// Geometry for the given options. All dimensions scale with the field
    /// of view (values quoted for 500 mm); the couch gap additionally stays
    /// at least 2.5 pixels wide so the couch never touches the body in the
    /// sampled image, whatever the matrix size.
    pub fn for_options(opts: &SynthOptions) -> Phantom {
        let fov = opts.fov_mm();
        let spacing = opts.pixel_spacing_mm;

        // 350 x 250 mm body: a broad adult thorax.
        let body = Ellipse {
            cx: 0.0,
            cy: 0.0,
            rx: 0.35 * fov,
            ry: 0.25 * fov,
        };
        let lung = |side: f64| Ellipse {
            cx: side * 0.15 * fov,
            cy: -0.02 * fov,
            rx: 0.10 * fov,
            ry: 0.14 * fov,
        };
        let spine_centre_y = 0.16 * fov;
        let spine_cortical = Ellipse {
            cx: 0.0,
            cy: spine_centre_y,
            rx: 0.036 * fov,
            ry: 0.036 * fov,
        };
        let spine_trabecular = Ellipse {
            rx: 0.026 * fov,
            ry: 0.026 * fov,
            ..spine_cortical
        };

        let couch_gap_mm = (0.012 * fov).max(2.5 * spacing);
        let couch_thickness = (0.04 * fov).max(2.0 * spacing);
        let couch_top = body.cy + body.ry + couch_gap_mm;
        let couch = Slab {
            x_min: -0.45 * fov,
            x_max: 0.45 * fov,
            y_min: couch_top,
            y_max: couch_top + couch_thickness,
        };

        // Slices cover z in [-t/2, (N - 1/2) t]; the lungs occupy the upper
        // (superior) 60 % of that extent. The bound falls between slice
        // centres for every N, so no slice sits exactly on it.
        let t = opts.slice_thickness_mm;
        let lung_z_min = -0.5 * t + 0.4 * f64::from(opts.slices) * t;

        Phantom {
            body,
            lungs: [lung(-1.0), lung(1.0)],
            lung_z_min,
            spine_cortical,
            spine_trabecular,
            couch,
            couch_gap_mm,
            noise_hu: opts.noise_hu,
        }
    }

    /// HU at patient point (x,y,z) in mm
    pub fn hu_at(&self, x: f64, y: f64, z: f64) -> f64 {
        if self.body.contains(x, y) {
            if self.spine_trabecular.contains(x, y) {
                HU_TRABECULAR_BONE
            } else if self.spine_cortical.contains(x, y) {
                HU_CORTICAL_BONE
            } else if self.lungs_present(z) && self.lungs.iter().any(|l| l.contains(x, y)) {
                HU_LUNG
            } else {
                HU_SOFT_TISSUE
            }
        } else if self.couch.contains(x, y) {
            HU_COUCH
        } else {
            HU_AIR
        }
    }

    /// true where the point is inside the patient's body outline (body ellipse, excluding couch)
    ///
    /// The body is an infinite cylinder, so `z` does not matter; it is taken
    /// so callers need not know that.
    #[allow(
        dead_code,
        reason = "consumed by the RTSTRUCT/RTDOSE synthesis and contour-validation stages"
    )]
    pub fn inside_body(&self, x: f64, y: f64, _z: f64) -> bool {
        self.body.contains(x, y)
    }

    /// Whether the lungs are present on the axial plane at `z`.
    pub fn lungs_present(&self, z: f64) -> bool {
        z >= self.lung_z_min
    }
}
