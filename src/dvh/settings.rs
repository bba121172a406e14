//! `dvh:` in conf/rtnode.yaml. Every key is optional; the defaults are
//! those of [`DvhSettings::default`] and are written next to each field.

use serde::{Deserialize, Serialize};

use crate::rt::EndCap;

/// The `dvh:` settings: sampling, metrics, dose choice, constraints and
/// derived structures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DvhSettings {
    /// Histogram bin width in Gy. Default 0.01.
    pub bin_width_gy: f64,
    /// Beyond the outermost contour planes of a structure: `half_slice`
    /// (default) extrudes the end contours by half the plane spacing,
    /// `none` stops at the end planes.
    pub end_cap: EndCap,
    /// Must be false (the default): each contour plane owns the slab
    /// half-way to its neighbours. true, shape interpolation between
    /// planes, is refused: it was less accurate than per-plane slabs on the
    /// analytic matrix of tests/dvh/analytic.rs (up to 15 % of a lying
    /// cylinder's volume lost at 3 mm; README, "DVH on its own"). The key
    /// stays so that configurations naming it with false still load.
    pub interpolate_between_planes: bool,
    /// In-plane sampling: about this many samples per contour plane's mean
    /// cross-section (default 20000), with the step kept within
    /// `min_step_mm` (default 0.05) and `max_step_mm` (default: half the
    /// dose grid's in-plane spacing).
    pub samples_per_plane: f64,
    /// Smallest in-plane sampling step, mm (default 0.05); see
    /// `samples_per_plane`.
    pub min_step_mm: f64,
    /// Largest in-plane sampling step, mm; None (default) is half the dose
    /// grid's in-plane spacing.
    pub max_step_mm: Option<f64>,
    /// Dx% metrics (dose to at least x % of the volume). Default
    /// [99, 98, 95, 50, 5, 2, 1].
    pub d_percent: Vec<f64>,
    /// Dx cc metrics. Default [0.03, 0.1, 1].
    pub d_cc: Vec<f64>,
    /// VxGy metrics, reported in cc (`V20Gy`) and % of the volume
    /// (`V20Gy_pct`). Default 1, 2, … 60.
    pub v_gy: Vec<f64>,
    /// V x %Rx metrics (`V95%Rx` in cc, `V95%Rx_pct`). Default [95, 100].
    pub v_rx_percent: Vec<f64>,
    /// Prescription in Gy when the plans give none (or no plan is known).
    /// Default: none (relative metrics are then omitted).
    pub prescription: Option<f64>,
    /// Whether this prescription replaces the plans' own. Default false.
    pub prescription_overrides_plan: bool,
    /// Several plans of one course: `auto` (default) sums them when they
    /// are one treatment (same frame of reference, neither a replan of the
    /// other nor a verification plan), `always` sums every usable plan,
    /// `never` refuses to choose between several.
    pub sum_plans: SumPlans,
    /// Dose type wanted when a plan has both: `physical` (default) or
    /// `effective`; the two are never summed together.
    pub dose_type: DoseTypePreference,
    /// Constraints, one per string: `"<ROI name pattern>: <metric> <op>
    /// <value> [unit]"`, e.g. `"SpinalCord*: Dmax < 45 Gy"`, `"Lung*:
    /// V20Gy < 30 %"`, `"PTV*: D95 >= 95 %Rx"`. Patterns are
    /// case-insensitive with `*` and `?`. Default none.
    pub constraints: Vec<String>,
    /// Derived structures, built in order (later ones may use earlier
    /// ones). Default none.
    pub derived: Vec<DerivedSpec>,
    /// Lattice step (mm) for derived structures; default 1.
    pub derived_step_mm: f64,
    /// Largest lattice (samples × z voxels) a margin may use before its
    /// step is coarsened, to bound memory (about 7 bytes each). Default 16 Mi.
    pub max_margin_voxels: usize,
}

impl Default for DvhSettings {
    fn default() -> Self {
        DvhSettings {
            bin_width_gy: 0.01,
            end_cap: EndCap::HalfSlice,
            interpolate_between_planes: false,
            samples_per_plane: 20_000.0,
            min_step_mm: 0.05,
            max_step_mm: None,
            d_percent: vec![99.0, 98.0, 95.0, 50.0, 5.0, 2.0, 1.0],
            d_cc: vec![0.03, 0.1, 1.0],
            v_gy: (1..=60).map(f64::from).collect(),
            v_rx_percent: vec![95.0, 100.0],
            prescription: None,
            prescription_overrides_plan: false,
            sum_plans: SumPlans::Auto,
            dose_type: DoseTypePreference::Physical,
            constraints: Vec::new(),
            derived: Vec::new(),
            derived_step_mm: 1.0,
            max_margin_voxels: 16 << 20,
        }
    }
}

/// Why `dvh.interpolate_between_planes: true` is a configuration error.
pub const INTERPOLATION_REFUSED: &str = "dvh.interpolate_between_planes: true is refused: shape interpolation between planes is less accurate than per-plane slabs on the analytic matrix; see README";

impl DvhSettings {
    /// Checks the settings as a whole (positive steps, percentages in range,
    /// constraints that parse, derived structures that make sense); the error
    /// says which key is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.interpolate_between_planes {
            return Err(INTERPOLATION_REFUSED.into());
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.bin_width_gy) {
            return Err("dvh.bin_width_gy must be positive".into());
        }
        if !positive(self.samples_per_plane)
            || !positive(self.min_step_mm)
            || !positive(self.derived_step_mm)
        {
            return Err("dvh sampling steps and counts must be positive".into());
        }
        if let Some(m) = self.max_step_mm {
            if !positive(m) {
                return Err("dvh.max_step_mm must be positive".into());
            }
        }
        if self.d_percent.iter().any(|p| !(0.0..=100.0).contains(p)) {
            return Err("dvh.d_percent values must lie in 0..=100".into());
        }
        if let Some(p) = self.prescription {
            if !positive(p) {
                return Err("dvh.prescription must be a positive dose in Gy".into());
            }
        }
        for c in &self.constraints {
            super::constraints::Constraint::parse(c)?;
        }
        for d in &self.derived {
            d.validate()?;
        }
        Ok(())
    }
}

/// `dvh.sum_plans`: whether the doses of several plans of one course are
/// summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SumPlans {
    /// Sum them when they are one treatment: same frame of reference, neither a
    /// replan of the other nor a verification plan.
    #[default]
    Auto,
    /// Sum every usable plan.
    Always,
    /// Refuse to choose between several plans.
    Never,
}

/// `dvh.dose_type`: which DoseType to use when a plan has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DoseTypePreference {
    /// PHYSICAL dose.
    #[default]
    Physical,
    /// EFFECTIVE dose (e.g. RBE-weighted).
    Effective,
}

impl DoseTypePreference {
    /// The DoseType code as DICOM writes it (PHYSICAL, EFFECTIVE).
    pub fn code(self) -> &'static str {
        match self {
            DoseTypePreference::Physical => "PHYSICAL",
            DoseTypePreference::Effective => "EFFECTIVE",
        }
    }
}

/// One derived structure:
/// ```yaml
/// - name: PTV_eval
///   op: subtraction            # union | intersection | subtraction | xor
///   sources: [PTV, {roi: Body, margin_mm: -3}]
///   margin_mm: 0               # on the result: mm, or [x, y, z]
///   missing: skip              # skip (default) | partial
/// ```
/// Subtraction takes the first source minus all others; the others
/// combine in order. Names match ROIs case-insensitively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedSpec {
    /// Name of the structure in outputs (and for later derived structures).
    pub name: String,
    /// How the sources combine.
    pub op: crate::rt::shape::BoolOp,
    /// The ROIs (or earlier derived structures) it is built from, each with an
    /// optional margin of its own.
    pub sources: Vec<DerivedSource>,
    /// Margin applied to the result (default 0).
    #[serde(default)]
    pub margin_mm: Margin,
    /// What to do when a source is missing (default `skip`).
    #[serde(default)]
    pub missing: MissingSource,
}

impl DerivedSpec {
    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a derived structure has no name".into());
        }
        if self.sources.is_empty() {
            return Err(format!("derived structure {:?} has no sources", self.name));
        }
        self.margin_mm.validate(&self.name)?;
        for s in &self.sources {
            if let DerivedSource::WithMargin { margin_mm, .. } = s {
                margin_mm.validate(&self.name)?;
            }
        }
        Ok(())
    }

    /// The definition in words, for outputs.
    pub fn describe(&self) -> String {
        let srcs: Vec<String> = self.sources.iter().map(|s| s.describe()).collect();
        let op = match self.op {
            crate::rt::shape::BoolOp::Union => " ∪ ",
            crate::rt::shape::BoolOp::Intersection => " ∩ ",
            crate::rt::shape::BoolOp::Subtraction => " − ",
            crate::rt::shape::BoolOp::Xor => " xor ",
        };
        let body = srcs.join(op);
        match self.margin_mm.axes() {
            [0.0, 0.0, 0.0] => body,
            m => format!("({body}) {}", Margin::Axes(m).describe()),
        }
    }
}

/// One source of a derived structure: a bare ROI name, or
/// `{roi: NAME, margin_mm: M}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DerivedSource {
    /// The ROI of this name (case-insensitive), as it is.
    Name(String),
    /// The ROI grown (or shrunk, when negative) by a margin first.
    WithMargin {
        /// The ROI name (case-insensitive).
        roi: String,
        /// Its margin (default 0).
        #[serde(default)]
        margin_mm: Margin,
    },
}

impl DerivedSource {
    /// The ROI name the source refers to.
    pub fn name(&self) -> &str {
        match self {
            DerivedSource::Name(n) => n,
            DerivedSource::WithMargin { roi, .. } => roi,
        }
    }

    /// The source's own margin along x, y, z in mm (zeros for a bare name).
    pub fn margin(&self) -> [f64; 3] {
        match self {
            DerivedSource::Name(_) => [0.0; 3],
            DerivedSource::WithMargin { margin_mm, .. } => margin_mm.axes(),
        }
    }

    fn describe(&self) -> String {
        match self {
            DerivedSource::Name(n) => n.clone(),
            DerivedSource::WithMargin { roi, margin_mm } => match margin_mm.axes() {
                [0.0, 0.0, 0.0] => roi.clone(),
                m => format!("{roi} {}", Margin::Axes(m).describe()),
            },
        }
    }
}

/// A margin in mm: one number (isotropic) or [x, y, z]; negative shrinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Margin {
    /// The same margin on every axis, mm.
    Iso(f64),
    /// Margins along x, y and z, mm.
    Axes([f64; 3]),
}

impl Default for Margin {
    fn default() -> Self {
        Margin::Iso(0.0)
    }
}

impl Margin {
    /// The margin along x, y, z in mm.
    pub fn axes(&self) -> [f64; 3] {
        match self {
            Margin::Iso(m) => [*m; 3],
            Margin::Axes(a) => *a,
        }
    }

    fn validate(&self, name: &str) -> Result<(), String> {
        let a = self.axes();
        if a.iter().any(|m| !m.is_finite()) {
            return Err(format!("derived structure {name:?}: margin must be finite"));
        }
        if a.iter().any(|m| *m > 0.0) && a.iter().any(|m| *m < 0.0) {
            return Err(format!(
                "derived structure {name:?}: a margin grows or shrinks on every axis, not both"
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let a = self.axes();
        if a[0] == a[1] && a[1] == a[2] {
            format!("{:+} mm", a[0])
        } else {
            format!("{:+}/{:+}/{:+} mm", a[0], a[1], a[2])
        }
    }
}

/// `missing:` of a derived structure: what to do when a source ROI is
/// absent or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingSource {
    /// Leave the structure out, saying which source was missing.
    #[default]
    Skip,
    /// Build it from the sources present, marked partial.
    Partial,
}
