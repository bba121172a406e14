//! Dose constraints per ROI name pattern, evaluated pass/fail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A parsed constraint such as `Lung*: V20Gy <= 30 %`: an ROI name pattern,
/// a metric, a comparison and a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The constraint as written (trimmed), repeated in results.
    pub text: String,
    /// ROI name pattern with `*` and `?` wildcards, matched case-insensitively.
    pub pattern: String,
    /// The metric name as reported (unit folded in: `V20Gy` with `%`
    /// becomes `V20Gy_pct`, `D95` with `%Rx` becomes `D95_pctRx`).
    pub metric: String,
    /// The comparison the metric's value must satisfy.
    pub op: Op,
    /// The limit in the metric's reported unit: Gy for dose metrics (cGy
    /// converted), cc for absolute volumes, percent for `_pct`/`_pctRx` ones.
    pub limit: f64,
}

/// A constraint's comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Value strictly below the limit (`<`).
    #[serde(rename = "<")]
    Lt,
    /// Value at or below the limit (`<=`).
    #[serde(rename = "<=")]
    Le,
    /// Value strictly above the limit (`>`).
    #[serde(rename = ">")]
    Gt,
    /// Value at or above the limit (`>=`).
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
        }
    }
}

/// The outcome of one constraint on one ROI, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstraintResult {
    /// Name of the ROI it was evaluated on; empty when no ROI matches the
    /// pattern.
    pub roi: String,
    /// The constraint as written.
    pub constraint: String,
    /// The metric compared, as reported (e.g. `V20Gy_pct`).
    pub metric: String,
    /// The metric's value for the ROI, in the limit's unit; None when it could
    /// not be computed.
    pub value: Option<f64>,
    /// The limit, in the metric's reported unit.
    pub limit: f64,
    /// None when the metric could not be computed (then the reason says why).
    pub pass: Option<bool>,
    /// Why there is no verdict (no ROI matches, the metric is missing or
    /// undefined, or the dose cannot answer it); None otherwise.
    pub reason: Option<String>,
}

impl Constraint {
    /// Parses `"ROI pattern: metric op limit [unit]"`; units are Gy or cGy for
    /// dose metrics, cc/cm3 or `%` for volume metrics, `%Rx` for dose relative to
    /// the prescription (bare `%` on a dose metric means `%Rx` too). The error
    /// says in words what is wrong.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let bad = |why: &str| format!("constraint {text:?}: {why}");
        let (pattern, rule) = text
            .rsplit_once(':')
            .ok_or_else(|| bad("expected \"ROI: metric < value\""))?;
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(bad("no ROI pattern"));
        }
        let rule = rule.trim();
        let ops = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
        let (pos, sym, op) = ops
            .iter()
            .filter_map(|(s, o)| rule.find(s).map(|p| (p, *s, *o)))
            .min_by_key(|(p, s, _)| (*p, usize::MAX - s.len()))
            .ok_or_else(|| bad("no comparison (<, <=, >, >=)"))?;
        let metric = rule[..pos].trim();
        let rest = rule[pos + sym.len()..].trim();
        if metric.is_empty() {
            return Err(bad("no metric"));
        }
        let split = rest
            .find(|c: char| {
                !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
            })
            .unwrap_or(rest.len());
        let mut limit: f64 = rest[..split]
            .trim()
            .parse()
            .map_err(|_| bad("the limit is not a number"))?;
        let unit = rest[split..].trim();
        let is_dose = metric.starts_with('D') || metric == "HI";
        let metric = match (unit.to_ascii_lowercase().as_str(), is_dose) {
            ("", _) | ("gy", true) | ("cc", false) | ("cm3", false) => metric.to_string(),
            ("cgy", true) => {
                limit /= 100.0;
                metric.to_string()
            }
            ("%rx", true) => format!("{metric}_pctRx"),
            ("%", false) => format!("{metric}_pct"),
            ("%", true) => format!("{metric}_pctRx"),
            (u, _) => return Err(bad(&format!("unit {u:?} does not fit metric {metric}"))),
        };
        Ok(Constraint {
            text: text.trim().to_string(),
            pattern: pattern.to_string(),
            metric,
            op,
            limit,
        })
    }

    /// Whether the constraint applies to the ROI named `roi` (wildcards,
    /// case-insensitive).
    pub fn matches(&self, roi: &str) -> bool {
        glob(&self.pattern.to_lowercase(), &roi.to_lowercase())
    }

    /// Evaluates against one ROI's metrics (by reported name, None for
    /// undefined).
    pub fn evaluate(&self, roi: &str, metrics: &BTreeMap<String, Option<f64>>) -> ConstraintResult {
        let value = metrics.get(&self.metric).copied().flatten();
        let reason = match metrics.get(&self.metric) {
            None => Some(format!("no metric {} for this ROI", self.metric)),
            Some(None) => Some(format!("{} is undefined for this ROI", self.metric)),
            Some(Some(_)) => None,
        };
        ConstraintResult {
            roi: roi.to_string(),
            constraint: self.text.clone(),
            metric: self.metric.clone(),
            value,
            limit: self.limit,
            pass: value.map(|v| self.op.holds(v, self.limit)),
            reason,
        }
    }
}

/// `*` and `?` wildcards.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_in_the_docs() {
        let c = Constraint::parse("SpinalCord: Dmax < 45 Gy").unwrap();
        assert_eq!(
            (c.pattern.as_str(), c.metric.as_str(), c.op, c.limit),
            ("SpinalCord", "Dmax", Op::Lt, 45.0)
        );
        let c = Constraint::parse("Lung*: V20Gy <= 30 %").unwrap();
        assert_eq!((c.metric.as_str(), c.op), ("V20Gy_pct", Op::Le));
        let c = Constraint::parse("PTV*: D95 >= 95 %Rx").unwrap();
        assert_eq!(c.metric, "D95_pctRx");
        let c = Constraint::parse("Heart: Dmean < 2600 cGy").unwrap();
        assert_eq!(c.limit, 26.0);
        assert!(Constraint::parse("Heart Dmean 5").is_err());
        assert!(Constraint::parse("Heart: V20Gy < 5 Gy").is_err());
    }

    #[test]
    fn patterns() {
        assert!(glob("spinal*", "spinalcord_prv"));
        assert!(glob("l?ng*", "lung_l"));
        assert!(!glob("lung", "lung_l"));
        let c = Constraint::parse("spinalcord*: Dmax < 45").unwrap();
        assert!(c.matches("SpinalCord"));
        let mut m = BTreeMap::new();
        m.insert("Dmax".to_string(), Some(44.0));
        assert_eq!(c.evaluate("SpinalCord", &m).pass, Some(true));
        m.insert("Dmax".to_string(), Some(46.0));
        assert_eq!(c.evaluate("SpinalCord", &m).pass, Some(false));
        m.clear();
        assert_eq!(c.evaluate("SpinalCord", &m).pass, None);
    }
}
