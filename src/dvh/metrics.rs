//! DVH metrics, named as reported: `volume_cc`, `Dmin`, `Dmean`, `Dmax`,
//! `D95` (dose to at least 95 % of the volume), `D0.03cc`, `HI`, `spread`,
//! `integral_dose_gycc`, `V20Gy` (cc) and `V20Gy_pct`, and relative to a
//! prescription `Dmean_pctRx`, `D95_pctRx`, `V95%Rx` (cc), `V95%Rx_pct`.
//! With several prescriptions that do not belong to the ROI itself, the
//! relative metrics repeat per target with `@<target>` appended.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::rt::DoseScope;

use super::histogram::Histogram;
use super::settings::DvhSettings;

/// Metrics in the order they are reported; `None` when undefined (e.g.
/// D1cc of a 0.5 cc structure).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics(pub Vec<(String, Option<f64>)>);

impl Metrics {
    /// The value of metric `name`; None when absent or undefined.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v)
    }

    fn push(&mut self, name: impl Into<String>, v: Option<f64>) {
        self.0.push((name.into(), v.filter(|x| x.is_finite())));
    }

    /// Metric name → value, for constraint evaluation.
    pub fn as_map(&self) -> std::collections::BTreeMap<String, Option<f64>> {
        self.0.iter().cloned().collect()
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A prescription as a metric needs it: its dose and, when the ROI is not
/// its own target and there are several, the label to append.
#[derive(Debug, Clone, PartialEq)]
pub struct RxRef {
    /// The prescription dose, Gy (total over the fractions).
    pub dose_gy: f64,
    /// The target label appended as `@<label>`; None for the ROI's own
    /// prescription, or when there is only one.
    pub suffix: Option<String>,
}

/// Unit of a metric, by its name.
pub fn unit_of(name: &str) -> &'static str {
    let base = name.split('@').next().unwrap_or(name);
    if base.ends_with("_pctRx") || base.ends_with("_pct") {
        "%"
    } else if base == "HI" {
        ""
    } else if base == "integral_dose_gycc" {
        "Gy·cm³"
    } else if base.starts_with('V') || base.starts_with("volume") {
        "cc"
    } else {
        "Gy"
    }
}

/// Whether a metric (or a constraint on it) compares the dose with an
/// absolute dose level or a prescription — which a fraction's dose as
/// stored cannot answer: dose levels in Gy (`V20Gy`, `V20Gy_pct`),
/// anything relative to a prescription, and limits on doses in Gy.
/// Volumes and the scale-free `HI` need no treatment total.
pub fn needs_treatment_total(name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name);
    base.contains("Rx") || base.contains("Gy") || unit_of(base) == "Gy"
}

/// The metrics that a [`DoseScope::FractionAsStored`] dose leaves out
/// (VxGy in cc and %), by name, so that outputs can list them.
pub fn not_evaluated(s: &DvhSettings) -> Vec<String> {
    s.v_gy
        .iter()
        .flat_map(|g| [format!("V{}Gy", num(*g)), format!("V{}Gy_pct", num(*g))])
        .collect()
}

/// "0.03", "1", "99.5": numbers in metric names.
pub fn num(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

const MM3_PER_CC: f64 = 1000.0;

/// The metrics of one ROI from its histogram. `total_mm3` is the ROI's
/// whole volume (including any part outside the dose grid). Only volumes are
/// reported when `absolute` is false (relative dose) or nothing lies in the
/// grid; relative-to-prescription metrics repeat for each of `rx`; VxGy
/// metrics are left out for a FRACTION dose used as stored.
pub fn compute(
    h: &Histogram,
    total_mm3: f64,
    absolute: bool,
    rx: &[RxRef],
    s: &DvhSettings,
    scope: DoseScope,
) -> Metrics {
    let mut m = Metrics::default();
    m.push("volume_cc", Some(total_mm3 / MM3_PER_CC));
    m.push("volume_in_dose_grid_cc", Some(h.volume / MM3_PER_CC));
    if !absolute || h.volume <= 0.0 {
        return m;
    }
    let pct = |p: f64| h.dose_covering(h.volume * p / 100.0);
    let cc = |c: f64| h.dose_covering(c * MM3_PER_CC);
    let mut doses: Vec<(String, Option<f64>)> = vec![
        ("Dmin".into(), Some(h.min)),
        ("Dmean".into(), h.mean()),
        ("Dmax".into(), Some(h.max)),
    ];
    for p in &s.d_percent {
        doses.push((format!("D{}", num(*p)), pct(*p)));
    }
    for c in &s.d_cc {
        doses.push((format!("D{}cc", num(*c)), cc(*c)));
    }
    for (n, v) in &doses {
        m.push(n.clone(), *v);
    }
    let (d2, d98, d50) = (pct(2.0), pct(98.0), pct(50.0));
    let spread = d2.zip(d98).map(|(a, b)| a - b);
    m.push(
        "HI",
        spread.zip(d50).and_then(|(s, d)| (d > 0.0).then(|| s / d)),
    );
    m.push("spread", spread);
    m.push("integral_dose_gycc", Some(h.dose_volume / MM3_PER_CC));
    for r in rx {
        let tag = r
            .suffix
            .as_ref()
            .map(|t| format!("@{t}"))
            .unwrap_or_default();
        for (n, v) in &doses {
            m.push(format!("{n}_pctRx{tag}"), v.map(|d| 100.0 * d / r.dose_gy));
        }
        for p in &s.v_rx_percent {
            let v = h.volume_at_least(r.dose_gy * p / 100.0);
            m.push(format!("V{}%Rx{tag}", num(*p)), Some(v / MM3_PER_CC));
            m.push(
                format!("V{}%Rx_pct{tag}", num(*p)),
                Some(100.0 * v / h.volume),
            );
        }
    }
    if scope == DoseScope::FractionAsStored {
        // VxGy thresholds are treatment totals: see `not_evaluated`.
        return m;
    }
    for g in &s.v_gy {
        let v = h.volume_at_least(*g);
        m.push(format!("V{}Gy", num(*g)), Some(v / MM3_PER_CC));
        m.push(format!("V{}Gy_pct", num(*g)), Some(100.0 * v / h.volume));
    }
    m
}
