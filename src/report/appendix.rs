//! The report's appendix: the full DVH metric and constraint tables
//! (values rounded by unit), the radiomics summary, every QC check and the
//! stages that ran before the report.

use std::collections::HashMap;

use serde_json::Value;

use super::content::{round_value, unit_of, v_gy_base, QcCheck, QcReport, QcVerdict};
use super::csv::Csv;
use super::model::{Block, Table};

/// ROI columns per metric table: what fits across A4 at a legible size.
const ROIS_PER_TABLE: usize = 6;

/// dvh_constraints.csv with value and limit rounded by the metric's unit.
pub(super) fn constraint_table(csv: &Csv) -> Table {
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
pub(super) fn metric_tables(csv: &Csv, v_shown: &[String]) -> Vec<Table> {
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

pub(super) fn radiomics(csv: &Csv) -> Vec<Block> {
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

pub(super) fn qc_blocks(q: &QcReport) -> Vec<Block> {
    let count = |v: QcVerdict| q.checks.iter().filter(|c| c.status == v).count();
    let verdict = serde_json::to_value(q.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut checks: Vec<&QcCheck> = q.checks.iter().collect();
    // What needs attention first.
    checks.sort_by_key(|c| std::cmp::Reverse(c.status));
    vec![
        Block::Paragraph(format!(
            "Verdict {verdict}: {} pass, {} warning(s), {} fail.",
            count(QcVerdict::Pass),
            count(QcVerdict::Warning),
            count(QcVerdict::Fail)
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

/// The stages that ran before the report, from the version's manifest, in
/// the pipeline's order (`order`).
pub(super) fn stage_table(manifest: &Value, order: &[String]) -> Option<Table> {
    let stages = manifest["stages"].as_object()?;
    let names: Vec<&String> = order.iter().filter(|n| stages.contains_key(*n)).collect();
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
        let t = metric_tables(&Csv::parse(&text).unwrap(), &["V20Gy".to_string()]);
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
        )
        .unwrap();
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
    fn short_numbers_only_shorten_long_ones() {
        assert_eq!(short_number("12.5"), "12.5");
        assert_eq!(short_number("123.456789012"), "123.5");
        assert_eq!(short_number("0.000012345678"), "1.235e-5");
        assert_eq!(short_number("not a number at all"), "not a number at all");
    }
}
