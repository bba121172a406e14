//! Page 1 of the report: what a physicist checks first — patient, course,
//! plans and prescription, the dose used and why, target coverage, the
//! constraint results, the QC verdict, the automatic contours, how the DVH
//! was computed, and lines for the review.

use std::collections::HashMap;

use serde_json::Value;

use super::appendix::constraint_table;
use super::content::{
    display_name, is_target, metric_map, round_value, unit_of, QcReport, QcVerdict, ReportInputs,
};
use super::model::{Block, Table};

/// The page-1 blocks, in reading order.
pub(super) fn summary(inp: &ReportInputs) -> Vec<Block> {
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
                .filter(|c| c.status != QcVerdict::Pass)
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

fn status_word(v: QcVerdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn qc_verdict(q: &QcReport) -> Block {
    let count = |v: QcVerdict| q.checks.iter().filter(|c| c.status == v).count();
    Block::Paragraph(format!(
        "Verdict {}: {} pass, {} warning(s), {} fail.",
        status_word(q.verdict),
        count(QcVerdict::Pass),
        count(QcVerdict::Warning),
        count(QcVerdict::Fail)
    ))
}
