//! What the report says, built from the course's stage outputs into the
//! document model. Every section is optional: what an upstream stage did
//! not produce is left out and named at the end, never invented.

use std::collections::HashMap;

use serde_json::Value;

use super::csv::Csv;
use super::figures::{dvh_figure, slice_figures, Colours};
use super::model::{Block, Document, Table};
use crate::rt::RtStruct;
use crate::stages::qc;
use crate::volume::Volume;

/// Everything the report is made from; `None` where the course or its
/// stages have none.
#[derive(Debug, Default)]
pub struct ReportInputs {
    pub course_id: String,
    pub version: u32,
    /// As decoded from the images: `^` between components, `=` between
    /// the alphabetic, ideographic and phonetic groups.
    pub patient_name: String,
    pub patient_id: String,
    pub created: String,
    pub ct: Option<Volume>,
    pub plan_structures: Option<RtStruct>,
    pub auto_structures: Option<RtStruct>,
    /// dvh.json.
    pub dvh: Option<Value>,
    pub dvh_metrics: Option<Csv>,
    pub dvh_constraints: Option<Csv>,
    pub qc: Option<qc::Report>,
    pub radiomics: Option<Csv>,
    /// The version's manifest.json.
    pub manifest: Option<Value>,
    /// Inputs that were missing or unreadable, in words.
    pub missing: Vec<String>,
    /// VxGy metrics listed besides those named in constraints
    /// (`report.v_gy`).
    pub v_gy: Vec<f64>,
}

/// ROI columns per metric table: what fits across A4 at a legible size.
const ROIS_PER_TABLE: usize = 6;

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

    if let Some(t) = inp.manifest.as_ref().and_then(stage_table) {
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

fn unit_of(metric: &str) -> &'static str {
    crate::dvh::metrics::unit_of(metric)
}

/// `V20Gy` from `V20Gy`, `V20Gy_pct` and `V20Gy_pct@PTV`; None for every
/// other metric (V95%Rx included).
fn v_gy_base(metric: &str) -> Option<&str> {
    let base = metric.split('@').next().unwrap_or(metric);
    let base = base.strip_suffix("_pct").unwrap_or(base);
    let dose = base.strip_prefix('V')?.strip_suffix("Gy")?;
    dose.parse::<f64>().ok().map(|_| base)
}

/// The VxGy metrics (as `V20Gy`) the appendix lists.
fn shown_v_metrics(inp: &ReportInputs) -> Vec<String> {
    let mut out: Vec<String> = inp
        .v_gy
        .iter()
        .map(|g| format!("V{}Gy", crate::dvh::metrics::num(*g)))
        .collect();
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

fn is_target(name: &str, interpreted_type: &str) -> bool {
    let t = interpreted_type.to_ascii_uppercase();
    let n = name.to_ascii_uppercase();
    matches!(t.as_str(), "PTV" | "CTV" | "GTV" | "ITV")
        || ["PTV", "CTV", "GTV", "ITV"]
            .iter()
            .any(|p| n.starts_with(p))
}

/// (roi, source) → metric → value, from dvh_metrics.csv.
type MetricMap = Vec<((String, String), HashMap<String, String>)>;

fn metric_map(csv: &Csv) -> MetricMap {
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

fn summary(inp: &ReportInputs) -> Vec<Block> {
    let mut b = Vec::new();
    let dvh = inp.dvh.as_ref();
    let auto_contours = inp.auto_structures.is_some()
        || inp.plan_structures.as_ref().is_some_and(|rs| {
            rs.rois
                .iter()
                .any(|r| r.generation_algorithm.eq_ignore_ascii_case("AUTOMATIC"))
        });
    if auto_contours {
        b.push(Block::Strong(
            "UNAPPROVED — automatically generated contours: review before clinical use.".into(),
        ));
    }
    b.push(Block::Paragraph(format!(
        "Patient: {} (ID {})",
        display_name(&inp.patient_name),
        inp.patient_id
    )));
    b.push(Block::Paragraph(format!(
        "Course: {} version {}; report made {}",
        inp.course_id, inp.version, inp.created
    )));
    if let Some(rs) = &inp.plan_structures {
        b.push(Block::Paragraph(format!(
            "Structure set: {} ({})",
            if rs.label.is_empty() {
                "unlabelled"
            } else {
                &rs.label
            },
            rs.sop_instance_uid
        )));
    }

    b.push(Block::Heading("Plans, prescription and dose".into()));
    match dvh {
        Some(d) => {
            let uids = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| u.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let plans = uids(&d["dose"]["plan_uids"]);
            b.push(Block::Paragraph(format!(
                "Plans: {}",
                if plans.is_empty() {
                    "none known".to_string()
                } else {
                    plans.join(", ")
                }
            )));
            let rx: Vec<String> = d["prescriptions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            format!(
                                "{} Gy ({})",
                                round_value(&p["dose_gy"].to_string(), "Gy"),
                                p["description"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            b.push(Block::Paragraph(format!(
                "Prescription: {}",
                if rx.is_empty() {
                    "unknown (relative metrics omitted)".to_string()
                } else {
                    rx.join("; ")
                }
            )));
            b.push(Block::Paragraph(format!(
                "Dose used: {} ({}, {}); RTDOSE {}",
                d["dose"]["description"].as_str().unwrap_or("?"),
                d["dose"]["units"].as_str().unwrap_or("?"),
                d["dose"]["dose_type"].as_str().unwrap_or("?"),
                uids(&d["dose"]["dose_uids"]).join(", ")
            )));
            let notes: Vec<String> = uids(&d["dose"]["notes"])
                .into_iter()
                .chain(uids(&d["notes"]))
                .collect();
            if notes.is_empty() {
                b.push(Block::Paragraph(
                    "Why this dose: the only dose of the course.".into(),
                ));
            } else {
                b.push(Block::Paragraph(format!(
                    "Why this dose: {}",
                    notes.join("; ")
                )));
            }
        }
        None => b.push(Block::Paragraph(
            "No DVH for this course: no dose was evaluated.".into(),
        )),
    }

    b.push(Block::Heading("Target coverage".into()));
    let metrics = inp.dvh_metrics.as_ref().map(metric_map).unwrap_or_default();
    let types: HashMap<String, String> = dvh
        .and_then(|d| d["rois"].as_array())
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or("").to_string(),
                        r["interpreted_type"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let cov_cols: [(&str, &str); 8] = [
        ("D98", "D98 (Gy)"),
        ("D95", "D95 (Gy)"),
        ("D50", "D50 (Gy)"),
        ("D2", "D2 (Gy)"),
        ("V95%Rx", "V95%Rx (cc)"),
        ("V95%Rx_pct", "V95%Rx (%)"),
        ("HI", "HI"),
        ("volume_cc", "volume (cc)"),
    ];
    let rows: Vec<Vec<String>> = metrics
        .iter()
        .filter(|((name, _), _)| is_target(name, types.get(name).map(String::as_str).unwrap_or("")))
        .map(|((name, _), m)| {
            let mut row = vec![name.clone()];
            row.extend(cov_cols.iter().map(|(k, _)| {
                m.get(*k)
                    .filter(|v| !v.is_empty())
                    .map(|v| round_value(v, unit_of(k)))
                    .unwrap_or_else(|| "—".into())
            }));
            row
        })
        .collect();
    if rows.is_empty() {
        b.push(Block::Paragraph(
            "No target (PTV, CTV, GTV, ITV) with a DVH.".into(),
        ));
    } else {
        let mut header = vec!["target".to_string()];
        header.extend(cov_cols.iter().map(|(_, h)| h.to_string()));
        b.push(Block::Table(Table { header, rows }));
        b.push(Block::Paragraph(
            "HI = (D2 − D98) / D50. V95%Rx: volume receiving at least 95 % of the prescription."
                .into(),
        ));
    }

    b.push(Block::Heading("Dose constraints".into()));
    match &inp.dvh_constraints {
        Some(csv) if !csv.rows.is_empty() => {
            let results: Vec<&str> = csv
                .column("result")
                .map(|c| {
                    csv.rows
                        .iter()
                        .filter_map(|r| r.get(c).map(String::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let n = |w: &str| results.iter().filter(|r| **r == w).count();
            b.push(Block::Paragraph(format!(
                "{} constraint result(s): {} pass, {} fail, {} not evaluated.",
                csv.rows.len(),
                n("pass"),
                n("fail"),
                results
                    .iter()
                    .filter(|r| r.starts_with("not evaluated"))
                    .count()
            )));
            b.push(Block::Table(constraint_table(csv)));
        }
        Some(_) => b.push(Block::Paragraph(
            "No constraint is configured (dvh.constraints).".into(),
        )),
        None => b.push(Block::Paragraph("No constraint results.".into())),
    }

    b.push(Block::Heading("QC verdict".into()));
    match &inp.qc {
        Some(q) => {
            b.push(qc_verdict(q));
            let attention: Vec<Vec<String>> = q
                .checks
                .iter()
                .filter(|c| c.status != qc::Verdict::Pass)
                .map(|c| vec![status_word(c.status), c.id.clone(), c.detail.clone()])
                .collect();
            if !attention.is_empty() {
                b.push(Block::Table(Table {
                    header: vec!["status".into(), "check".into(), "detail".into()],
                    rows: attention,
                }));
            }
        }
        None => b.push(Block::Paragraph("No QC report.".into())),
    }

    b.push(Block::Heading("Auto-segmented structures".into()));
    match &inp.auto_structures {
        Some(rs) => {
            let rows = rs
                .rois
                .iter()
                .map(|r| {
                    let from_dvh = metrics
                        .iter()
                        .find(|((n, s), _)| n == &r.name && s.starts_with("autoseg"))
                        .and_then(|(_, m)| m.get("volume_cc").cloned())
                        .filter(|v| !v.is_empty());
                    let volume = match from_dvh {
                        Some(v) => round_value(&v, "cc"),
                        None => {
                            let spacing = rs.typical_plane_spacing().unwrap_or(0.0);
                            let mm3: f64 =
                                r.planes.iter().map(|p| p.area_mm2()).sum::<f64>() * spacing;
                            format!(
                                "{} (area × plane spacing)",
                                round_value(&(mm3 / 1000.0).to_string(), "cc")
                            )
                        }
                    };
                    vec![r.name.clone(), r.generation_algorithm.clone(), volume]
                })
                .collect();
            b.push(Block::Table(Table {
                header: vec![
                    "structure".into(),
                    "generation".into(),
                    "volume (cc)".into(),
                ],
                rows,
            }));
        }
        None => b.push(Block::Paragraph(
            "No auto-segmentation in this course.".into(),
        )),
    }

    b.push(Block::Heading("Method".into()));
    let mut method = format!("rtnode {}.", env!("CARGO_PKG_VERSION"));
    if let Some(s) = dvh.map(|d| &d["settings"]) {
        let end_cap = match s["end_cap"].as_str() {
            Some("half_slice") => "end contours extruded by half the plane spacing",
            Some("none") => "no end caps (stops at the end planes)",
            _ => "end caps as configured",
        };
        let interp = if s["interpolate_between_planes"].as_bool().unwrap_or(false) {
            "shape interpolated between contour planes"
        } else {
            "each plane's contour held to half-way to its neighbours (no interpolation)"
        };
        method.push_str(&format!(
            " DVH: {interp}; {end_cap}; bin width {} Gy.",
            s["bin_width_gy"]
        ));
    }
    b.push(Block::Paragraph(method));
    b.push(Block::Paragraph(
        "Reviewed by: ______________________________     Date: ________________".into(),
    ));
    b
}

fn status_word(v: qc::Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn qc_verdict(q: &qc::Report) -> Block {
    let count = |v: qc::Verdict| q.checks.iter().filter(|c| c.status == v).count();
    Block::Paragraph(format!(
        "Verdict {}: {} pass, {} warning(s), {} fail.",
        status_word(q.verdict),
        count(qc::Verdict::Pass),
        count(qc::Verdict::Warning),
        count(qc::Verdict::Fail)
    ))
}

/// dvh_constraints.csv with value and limit rounded by the metric's unit.
fn constraint_table(csv: &Csv) -> Table {
    let metric = csv.column("metric");
    let rounded: Vec<usize> = ["value", "limit"]
        .iter()
        .filter_map(|c| csv.column(c))
        .collect();
    Table {
        header: csv.header.clone(),
        rows: csv
            .rows
            .iter()
            .map(|r| {
                let unit = metric
                    .and_then(|m| r.get(m))
                    .map(|m| unit_of(m))
                    .unwrap_or("Gy");
                r.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if rounded.contains(&i) {
                            round_value(v, unit)
                        } else {
                            v.clone()
                        }
                    })
                    .collect()
            })
            .collect(),
    }
}

/// dvh_metrics.csv as tables of metric rows × ROI columns, values rounded
/// by unit ([`round_value`]); VxGy metrics only those in `v_shown`.
fn metric_tables(csv: &Csv, v_shown: &[String]) -> Vec<Table> {
    let (Some(roi), Some(metric), Some(value)) =
        (csv.column("roi"), csv.column("metric"), csv.column("value"))
    else {
        return vec![Table {
            header: csv.header.clone(),
            rows: csv.rows.clone(),
        }];
    };
    let source = csv.column("source");
    let unit = csv.column("unit");
    let mut rois: Vec<(String, String)> = Vec::new();
    let mut metrics: Vec<(String, String)> = Vec::new();
    let mut cells: HashMap<(usize, usize), String> = HashMap::new();
    for r in &csv.rows {
        let get = |i: Option<usize>| i.and_then(|i| r.get(i)).cloned().unwrap_or_default();
        let key = (get(Some(roi)), get(source));
        let ri = rois.iter().position(|k| *k == key).unwrap_or_else(|| {
            rois.push(key);
            rois.len() - 1
        });
        let m = get(Some(metric));
        if v_gy_base(&m).is_some_and(|b| !v_shown.iter().any(|s| s == b)) {
            continue;
        }
        let mi = metrics.iter().position(|k| k.0 == m).unwrap_or_else(|| {
            metrics.push((m, get(unit)));
            metrics.len() - 1
        });
        let u = unit_of(&metrics[mi].0);
        cells.insert((mi, ri), round_value(&get(Some(value)), u));
    }
    let label = |(name, source): &(String, String)| {
        if source.starts_with("autoseg") {
            format!("{name} (auto)")
        } else if source == "derived" {
            format!("{name} (derived)")
        } else {
            name.clone()
        }
    };
    (0..rois.len())
        .step_by(ROIS_PER_TABLE)
        .map(|start| {
            let cols: Vec<usize> = (start..(start + ROIS_PER_TABLE).min(rois.len())).collect();
            let mut header = vec!["metric".to_string(), "unit".to_string()];
            header.extend(cols.iter().map(|&c| label(&rois[c])));
            let rows = metrics
                .iter()
                .enumerate()
                .filter(|(mi, _)| cols.iter().any(|&c| cells.contains_key(&(*mi, c))))
                .map(|(mi, (m, u))| {
                    let mut row = vec![m.clone(), u.clone()];
                    row.extend(
                        cols.iter()
                            .map(|&c| cells.get(&(mi, c)).cloned().unwrap_or_default()),
                    );
                    row
                })
                .collect();
            Table { header, rows }
        })
        .collect()
}
fn short_number(s: &str) -> String {
    match s.trim().parse::<f64>() {
        Ok(v) if s.len() > 10 => {
            if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
                format!("{v:.3e}")
            } else {
                let digits = (4 - v.abs().log10().floor() as i32 - 1).clamp(0, 6) as usize;
                format!("{v:.digits$}")
            }
        }
        _ => s.to_string(),
    }
}

const PREFERRED_FEATURES: &[&str] = &[
    "shape_VoxelVolume",
    "shape_MeshVolume",
    "shape_Sphericity",
    "shape_Maximum3DDiameter",
    "firstorder_Mean",
    "firstorder_StandardDeviation",
    "firstorder_Entropy",
    "glcm_Contrast",
];
const FEATURES_SHOWN: usize = 8;

fn radiomics(csv: &Csv) -> Vec<Block> {
    let lower: Vec<String> = csv.header.iter().map(|h| h.to_ascii_lowercase()).collect();
    let label = ["roi", "roi_name", "structure", "name"]
        .iter()
        .find_map(|k| lower.iter().position(|h| h == k))
        .unwrap_or(0);
    let numeric = |c: usize| {
        let h = &lower[c];
        c != label
            && !h.starts_with("diagnostics")
            && !h.contains("roi_number")
            && csv
                .rows
                .iter()
                .any(|r| r.get(c).is_some_and(|v| !v.is_empty()))
            && csv.rows.iter().all(|r| {
                r.get(c)
                    .is_none_or(|v| v.is_empty() || v.trim().parse::<f64>().is_ok())
            })
    };
    let mut chosen: Vec<usize> = PREFERRED_FEATURES
        .iter()
        .filter_map(|f| {
            let f = f.to_ascii_lowercase();
            (0..csv.header.len()).find(|&c| lower[c].ends_with(&f) && numeric(c))
        })
        .collect();
    for c in 0..csv.header.len() {
        if chosen.len() >= FEATURES_SHOWN {
            break;
        }
        if !chosen.contains(&c) && numeric(c) {
            chosen.push(c);
        }
    }
    let all_numeric = (0..csv.header.len()).filter(|&c| numeric(c)).count();
    let mut out = vec![Block::Paragraph(format!(
        "{} ROI(s), {} numeric feature(s) in radiomics/radiomics.csv; {} shown.",
        csv.rows.len(),
        all_numeric,
        chosen.len()
    ))];
    for start in (0..csv.rows.len()).step_by(ROIS_PER_TABLE) {
        let rows_here = &csv.rows[start..(start + ROIS_PER_TABLE).min(csv.rows.len())];
        let mut header = vec!["feature".to_string()];
        header.extend(
            rows_here
                .iter()
                .map(|r| r.get(label).cloned().unwrap_or_default()),
        );
        let rows = chosen
            .iter()
            .map(|&c| {
                let mut row = vec![csv.header[c].clone()];
                row.extend(
                    rows_here
                        .iter()
                        .map(|r| r.get(c).map(|v| short_number(v)).unwrap_or_default()),
                );
                row
            })
            .collect();
        out.push(Block::Table(Table { header, rows }));
    }
    out
}

fn qc_blocks(q: &qc::Report) -> Vec<Block> {
    let count = |v: qc::Verdict| q.checks.iter().filter(|c| c.status == v).count();
    let verdict = serde_json::to_value(q.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut checks: Vec<&qc::Check> = q.checks.iter().collect();
    // What needs attention first.
    checks.sort_by_key(|c| std::cmp::Reverse(c.status));
    vec![
        Block::Paragraph(format!(
            "Verdict {verdict}: {} pass, {} warning(s), {} fail.",
            count(qc::Verdict::Pass),
            count(qc::Verdict::Warning),
            count(qc::Verdict::Fail)
        )),
        Block::Table(Table {
            header: vec![
                "status".into(),
                "category".into(),
                "check".into(),
                "detail".into(),
            ],
            rows: checks
                .iter()
                .map(|c| {
                    vec![
                        serde_json::to_value(c.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        c.category.clone(),
                        c.id.clone(),
                        c.detail.clone(),
                    ]
                })
                .collect(),
        }),
    ]
}

const STAGE_ORDER: &[&str] = &["organize", "segmentation", "qc", "dvh", "radiomics"];

/// The stages that ran before the report, from the version's manifest.
fn stage_table(manifest: &Value) -> Option<Table> {
    let stages = manifest["stages"].as_object()?;
    let mut names: Vec<&String> = stages
        .keys()
        .filter(|k| !matches!(k.as_str(), "report" | "export"))
        .collect();
    names.sort_by_key(|n| {
        (
            STAGE_ORDER
                .iter()
                .position(|s| s == n)
                .unwrap_or(STAGE_ORDER.len()),
            n.to_string(),
        )
    });
    let rows = names
        .into_iter()
        .map(|name| {
            let s = &stages[name];
            let time = s["duration_ms"]
                .as_u64()
                .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let note = s["reused_from"]
                .as_str()
                .map(|v| format!("reused from {v}"))
                .or_else(|| s["skip_reason"].as_str().map(str::to_string))
                .or_else(|| s["error"].as_str().map(str::to_string))
                .unwrap_or_default();
            vec![
                name.clone(),
                s["state"].as_str().unwrap_or("").to_string(),
                time,
                note,
            ]
        })
        .collect();
    Some(Table {
        header: vec!["stage".into(), "state".into(), "time".into(), "note".into()],
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_tables_round_by_unit_limit_v_metrics_and_split_rois() {
        let mut text = String::from("# dose: x\nroi,roi_number,source,status,metric,value,unit\n");
        for r in 0..8 {
            text.push_str(&format!("R{r},{r},rtstruct,ok,Dmean,{r}.505001,Gy\n"));
            text.push_str(&format!("R{r},{r},rtstruct,ok,D95,-1e-7,Gy\n"));
            text.push_str(&format!("R{r},{r},rtstruct,ok,V20Gy_pct,12.345678,%\n"));
            text.push_str(&format!("R{r},{r},rtstruct,ok,V30Gy,12.345678,cc\n"));
            text.push_str(&format!("R{r},{r},rtstruct,ok,HI,0.0612345,\n"));
        }
        text.push_str("R0,0,autoseg:body,ok,Dmean,3.25,Gy\n");
        let t = metric_tables(&Csv::parse(&text), &["V20Gy".to_string()]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].header[..3], ["metric", "unit", "R0"]);
        assert_eq!(t[0].rows[0][2], "0.51");
        assert_eq!(t[0].rows[1][2], "0.00");
        assert_eq!(t[0].rows[2][..3], ["V20Gy_pct", "%", "12.3"]);
        assert_eq!(t[0].rows[3][..3], ["HI", "", "0.061"]);
        assert_eq!(
            t[0].rows.len(),
            4,
            "V30Gy is neither constrained nor listed"
        );
        assert_eq!(t[1].header.last().map(String::as_str), Some("R0 (auto)"));
    }

    #[test]
    fn radiomics_shows_preferred_features_per_roi() {
        let csv = Csv::parse(
            "roi,roi_number,diagnostics_Versions_PyRadiomics,original_firstorder_Mean,original_shape_VoxelVolume,original_glszm_ZoneEntropy\n\
             PTV,1,3.1.0,41.123456789012,33466.0,5.5\n\
             Lung_L,2,3.1.0,-812.5,1200000.25,6.25\n",
        );
        let blocks = radiomics(&csv);
        let Block::Paragraph(p) = &blocks[0] else {
            panic!("summary first")
        };
        assert!(p.starts_with("2 ROI(s), 3 numeric feature(s)"), "{p}");
        let Block::Table(t) = &blocks[1] else {
            panic!("then a table")
        };
        assert_eq!(t.header, ["feature", "PTV", "Lung_L"]);
        // Preferred features first, then the others; diagnostics never.
        assert_eq!(t.rows[0][0], "original_shape_VoxelVolume");
        assert_eq!(t.rows[1], ["original_firstorder_Mean", "41.12", "-812.5"]);
        assert_eq!(t.rows[2][0], "original_glszm_ZoneEntropy");
        assert_eq!(t.rows.len(), 3);
    }

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

    #[test]
    fn short_numbers_only_shorten_long_ones() {
        assert_eq!(short_number("12.5"), "12.5");
        assert_eq!(short_number("123.456789012"), "123.5");
        assert_eq!(short_number("0.000012345678"), "1.235e-5");
        assert_eq!(short_number("not a number at all"), "not a number at all");
    }
}
