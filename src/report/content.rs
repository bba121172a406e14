//! What the report says, built from the course's stage outputs into the
//! document model. Every section is optional: what an upstream stage did
//! not produce is left out and named at the end, never invented. Page 1 is
//! [`super::summary`], the tables after the figures [`super::appendix`];
//! this module orders the sections and holds the rules both share (how a
//! value is rounded, which ROIs are targets, which VxGy metrics are shown).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::appendix::{metric_tables, qc_blocks, radiomics, stage_table};
use super::csv::Csv;
use super::figures::{dvh_figure, slice_figures, Colours};
use super::model::{Block, Document};
use super::summary::summary;
use crate::dvh::metrics::{num, unit_of as dvh_unit_of};
use crate::rt::RtStruct;
use crate::volume::Volume;

/// Everything the report is made from; `None` where the course or its
/// stages have none.
#[derive(Debug, Default)]
pub struct ReportInputs {
    /// The course's id, as in its folder name and the pipeline's messages.
    pub course_id: String,
    /// The course version the report describes (its `v<N>` folder).
    pub version: u32,
    /// As decoded from the images: `^` between components, `=` between
    /// the alphabetic, ideographic and phonetic groups.
    pub patient_name: String,
    /// PatientID as in the images.
    pub patient_id: String,
    /// When the report was made, RFC 3339 (printed as is).
    pub created: String,
    /// The planning CT in HU, as the organize stage wrote it; the report
    /// stage always supplies it.
    pub ct: Option<Volume>,
    /// The course's current structure set (from the planning system).
    pub plan_structures: Option<RtStruct>,
    /// The segmentation stage's RTSTRUCT (automatic contours).
    pub auto_structures: Option<RtStruct>,
    /// dvh.json.
    pub dvh: Option<Value>,
    /// dvh_metrics.csv: every DVH metric per ROI and source.
    pub dvh_metrics: Option<Csv>,
    /// dvh_constraints.csv: each configured constraint with value, limit
    /// and pass/fail.
    pub dvh_constraints: Option<Csv>,
    /// qc.json from the QC stage.
    pub qc: Option<QcReport>,
    /// radiomics.csv: the features per ROI.
    pub radiomics: Option<Csv>,
    /// The version's manifest.json.
    pub manifest: Option<Value>,
    /// The stages that run before the report, in the pipeline's order (the
    /// adapter passes the registry's): the order of the stage table.
    pub stages_before: Vec<String>,
    /// Inputs that were missing or unreadable, in words.
    pub missing: Vec<String>,
    /// VxGy metrics listed besides those named in constraints
    /// (`report.v_gy`).
    pub v_gy: Vec<f64>,
}

/// qc.json as the report reads it (the QC stage writes it; fields the
/// report does not print are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct QcReport {
    /// The worst status of any check.
    pub verdict: QcVerdict,
    /// Every check the QC stage ran.
    pub checks: Vec<QcCheck>,
}

/// One QC check's outcome, as qc.json spells it (`PASS`, `WARNING`, `FAIL`);
/// ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QcVerdict {
    /// Nothing to look at.
    Pass,
    /// Worth a look before approval.
    Warning,
    /// Must be resolved.
    Fail,
}

/// One QC check in qc.json.
#[derive(Debug, Clone, Deserialize)]
pub struct QcCheck {
    /// The check's identifier.
    pub id: String,
    /// What the check is about (geometry, dose, structures, ...).
    pub category: String,
    /// Its outcome.
    pub status: QcVerdict,
    /// What was found, in words.
    pub detail: String,
}

/// What a physicist reads first, on page 1: patient, course, plans and
/// prescription, the dose used and why, target coverage, constraints, the
/// QC verdict, the automatic contours, how the DVH was computed and lines
/// for the review. Then the figures; then the full tables as an appendix.
pub fn build(inp: &ReportInputs) -> Document {
    let mut colours = Colours::default();
    let mut blocks = summary(inp);

    blocks.push(Block::PageBreak);
    blocks.push(Block::Heading("Dose-volume histograms".into()));
    match inp.dvh.as_ref().and_then(|d| dvh_figure(d, &mut colours)) {
        Some(f) => blocks.push(Block::Figure(f)),
        None => blocks.push(Block::Paragraph("No DVH for this course.".into())),
    }

    blocks.push(Block::Heading("CT with contours".into()));
    match &inp.ct {
        Some(ct) => {
            let figs = slice_figures(
                ct,
                inp.plan_structures.as_ref(),
                inp.auto_structures.as_ref(),
                &mut colours,
            );
            if figs.is_empty() {
                blocks.push(Block::Paragraph(
                    "The image series is not axial; no slices are shown.".into(),
                ));
            }
            blocks.extend(figs.into_iter().map(Block::Figure));
        }
        None => blocks.push(Block::Paragraph("No CT volume.".into())),
    }

    blocks.push(Block::PageBreak);
    blocks.push(Block::Heading("Appendix: DVH metrics".into()));
    match &inp.dvh_metrics {
        Some(csv) => {
            blocks.push(Block::Paragraph(
                "Gy and cc to 2 decimals, % to 1, HI to 3. VxGy metrics: those named in \
                 dvh.constraints or listed in report.v_gy; dvh/dvh_metrics.csv has them all."
                    .into(),
            ));
            let shown = shown_v_metrics(inp);
            blocks.extend(metric_tables(csv, &shown).into_iter().map(Block::Table));
        }
        None => blocks.push(Block::Paragraph("No DVH metrics for this course.".into())),
    }

    if let Some(r) = &inp.radiomics {
        blocks.push(Block::Heading("Radiomics".into()));
        blocks.extend(radiomics(r));
    }

    blocks.push(Block::Heading("Quality checks".into()));
    match &inp.qc {
        Some(q) => blocks.extend(qc_blocks(q)),
        None => blocks.push(Block::Paragraph("No QC report.".into())),
    }

    if let Some(t) = inp
        .manifest
        .as_ref()
        .and_then(|m| stage_table(m, &inp.stages_before))
    {
        blocks.push(Block::Heading("Stages".into()));
        blocks.push(Block::Table(t));
    }

    if !inp.missing.is_empty() {
        blocks.push(Block::Heading("Not in this report".into()));
        for m in &inp.missing {
            blocks.push(Block::Paragraph(m.clone()));
        }
    }
    Document {
        title: format!("Course report {} v{}", inp.course_id, inp.version),
        blocks,
    }
}

/// A DICOM person name for print: each component group (alphabetic,
/// ideographic, phonetic) with `^` shown as a space, groups joined by " = ".
pub fn display_name(pn: &str) -> String {
    pn.split('=')
        .map(|g| {
            g.split('^')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|g| !g.is_empty())
        .collect::<Vec<_>>()
        .join(" = ")
}

/// A metric value rounded for print by its unit: Gy, cc and Gy·cm³ to 2
/// decimals, % to 1, unitless (HI) to 3. Anything not a number as is.
pub fn round_value(v: &str, unit: &str) -> String {
    let Ok(x) = v.trim().parse::<f64>() else {
        return v.to_string();
    };
    if !x.is_finite() {
        return v.to_string();
    }
    let decimals = match unit {
        "%" => 1,
        "" => 3,
        _ => 2,
    };
    let s = format!("{x:.decimals$}");
    // No "-0.00".
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// The unit of a DVH metric, as dvh_metrics.csv names it.
pub(super) fn unit_of(metric: &str) -> &'static str {
    dvh_unit_of(metric)
}

/// `V20Gy` from `V20Gy`, `V20Gy_pct` and `V20Gy_pct@PTV`; None for every
/// other metric (V95%Rx included).
pub(super) fn v_gy_base(metric: &str) -> Option<&str> {
    let base = metric.split('@').next().unwrap_or(metric);
    let base = base.strip_suffix("_pct").unwrap_or(base);
    let dose = base.strip_prefix('V')?.strip_suffix("Gy")?;
    dose.parse::<f64>().ok().map(|_| base)
}

/// The VxGy metrics (as `V20Gy`) the appendix lists.
fn shown_v_metrics(inp: &ReportInputs) -> Vec<String> {
    let mut out: Vec<String> = inp.v_gy.iter().map(|g| format!("V{}Gy", num(*g))).collect();
    if let Some(c) = &inp.dvh_constraints {
        if let Some(col) = c.column("metric") {
            for r in &c.rows {
                if let Some(b) = r.get(col).and_then(|m| v_gy_base(m)) {
                    out.push(b.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(super) fn is_target(name: &str, interpreted_type: &str) -> bool {
    let t = interpreted_type.to_ascii_uppercase();
    let n = name.to_ascii_uppercase();
    matches!(t.as_str(), "PTV" | "CTV" | "GTV" | "ITV")
        || ["PTV", "CTV", "GTV", "ITV"]
            .iter()
            .any(|p| n.starts_with(p))
}

/// (roi, source) → metric → value, from dvh_metrics.csv.
pub(super) type MetricMap = Vec<((String, String), HashMap<String, String>)>;

pub(super) fn metric_map(csv: &Csv) -> MetricMap {
    let mut out: MetricMap = Vec::new();
    let (Some(roi), Some(metric), Some(value)) =
        (csv.column("roi"), csv.column("metric"), csv.column("value"))
    else {
        return out;
    };
    let source = csv.column("source");
    for r in &csv.rows {
        let get = |i: Option<usize>| i.and_then(|i| r.get(i)).cloned().unwrap_or_default();
        let key = (get(Some(roi)), get(source));
        let i = match out.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                out.push((key, HashMap::new()));
                out.len() - 1
            }
        };
        out[i].1.insert(get(Some(metric)), get(Some(value)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_without_any_stage_output_says_what_is_missing() {
        let doc = build(&ReportInputs {
            course_id: "P-1".into(),
            version: 2,
            missing: vec!["dvh.json: unreadable (bad)".into()],
            ..ReportInputs::default()
        });
        assert_eq!(doc.title, "Course report P-1 v2");
        let text: Vec<String> = doc
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Paragraph(p) | Block::Heading(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        for expected in [
            "No DVH for this course.",
            "No CT volume.",
            "No QC report.",
            "dvh.json: unreadable (bad)",
        ] {
            assert!(text.iter().any(|t| t == expected), "{expected}: {text:?}");
        }
        assert!(!text.iter().any(|t| t == "Radiomics"));
    }

    #[test]
    fn names_print_every_group_with_spaces() {
        assert_eq!(display_name("Müller^Jürgen"), "Müller Jürgen");
        assert_eq!(
            display_name("Yamada^Tarou=山田^太郎=やまだ^たろう"),
            "Yamada Tarou = 山田 太郎 = やまだ たろう"
        );
        assert_eq!(display_name("Doe^John^^Dr^"), "Doe John Dr");
        assert_eq!(display_name("=李^明"), "李 明");
    }

    #[test]
    fn v_gy_metrics_are_recognised() {
        assert_eq!(v_gy_base("V20Gy_pct"), Some("V20Gy"));
        assert_eq!(v_gy_base("V0.5Gy@PTV"), Some("V0.5Gy"));
        assert_eq!(v_gy_base("V95%Rx"), None);
        assert_eq!(v_gy_base("volume_cc"), None);
    }
}
