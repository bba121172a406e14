//! The DVH files. Every file opens with the dose that was chosen and the
//! SOP Instance UIDs it was made from (CSV: `#` comment lines, which
//! pandas reads with `comment="#"`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::json;

use super::histogram::Histogram;
use super::metrics::{num, unit_of};
use super::{DvhReport, RoiStatus};

/// The auto-segmentation structure sets some ROIs came from.
fn autoseg_uids(r: &DvhReport) -> Vec<String> {
    let mut uids: Vec<String> = r
        .rois
        .iter()
        .filter_map(|roi| match &roi.source {
            crate::rt::RoiSource::AutoSegmentation {
                sop_instance_uid, ..
            } => Some(sop_instance_uid.clone()),
            _ => None,
        })
        .collect();
    uids.sort();
    uids.dedup();
    uids
}

fn provenance_lines(r: &DvhReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# rtnode {} DVH", r.rtnode_version);
    let _ = writeln!(
        s,
        "# dose: {} ({}, {})",
        r.dose.description, r.dose.units, r.dose.dose_type
    );
    if let Some(n) = &r.not_evaluated {
        let levels: Vec<String> = r.settings.v_gy.iter().map(|g| num(*g)).collect();
        let _ = writeln!(
            s,
            "# not evaluated ({}): VxGy in cc and % for x = {} Gy, metrics relative to a prescription, \
             constraints in absolute Gy or relative to a prescription",
            n.reason,
            levels.join(" ")
        );
    }
    let _ = writeln!(s, "# rtdose_uids: {}", r.dose.dose_uids.join(" "));
    let _ = writeln!(s, "# rtplan_uids: {}", r.dose.plan_uids.join(" "));
    let _ = writeln!(s, "# rtstruct_uid: {}", r.structure_set.sop_instance_uid);
    let auto = autoseg_uids(r);
    if !auto.is_empty() {
        let _ = writeln!(s, "# autoseg_rtstruct_uids: {}", auto.join(" "));
    }
    let rx: Vec<String> = r
        .prescriptions
        .iter()
        .map(|p| format!("{} Gy ({})", p.dose_gy, p.description))
        .collect();
    let _ = writeln!(
        s,
        "# prescription: {}",
        if rx.is_empty() {
            "unknown".to_string()
        } else {
            rx.join("; ")
        }
    );
    s
}

fn fmt(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The provenance comments, then `rows` as CSV ([`crate::csv_format`]).
fn with_provenance(r: &DvhReport, rows: Vec<Vec<String>>) -> Result<String> {
    Ok(provenance_lines(r) + &crate::csv_format::to_string(rows)?)
}

/// A header record.
fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// dvh.csv: the cumulative DVH of every ROI, long format.
pub fn dvh_csv(r: &DvhReport) -> Result<String> {
    let mut rows = vec![header(&["roi", "dose_gy", "volume_cc", "volume_pct"])];
    let decimals = (-r.settings.bin_width_gy.log10()).ceil().max(0.0) as usize + 2;
    for roi in &r.rois {
        let h = &roi.histogram;
        if h.volume <= 0.0 {
            continue;
        }
        for j in 0..h.edges() {
            let v = h.cumulative(j);
            rows.push(vec![
                roi.name.clone(),
                fmt(j as f64 * h.bin_gy, decimals),
                fmt(v / 1000.0, 6),
                fmt(100.0 * v / h.volume, 4),
            ]);
        }
    }
    with_provenance(r, rows)
}

/// dvh_metrics.csv: one row per ROI and metric.
pub fn metrics_csv(r: &DvhReport) -> Result<String> {
    let mut rows = vec![header(&[
        "roi",
        "roi_number",
        "source",
        "status",
        "metric",
        "value",
        "unit",
    ])];
    for roi in &r.rois {
        let number = roi.number.map(|n| n.to_string()).unwrap_or_default();
        let status = serde_json::to_value(roi.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        for (name, v) in &roi.metrics.0 {
            rows.push(vec![
                roi.name.clone(),
                number.clone(),
                roi.source.label(),
                status.clone(),
                name.clone(),
                v.map(|v| fmt(v, 6)).unwrap_or_default(),
                unit_of(name).to_string(),
            ]);
        }
        if let (Some(n), RoiStatus::Ok | RoiStatus::Partial) = (&r.not_evaluated, roi.status) {
            for name in &n.metrics {
                rows.push(vec![
                    roi.name.clone(),
                    number.clone(),
                    roi.source.label(),
                    "not_evaluated".to_string(),
                    name.clone(),
                    String::new(),
                    unit_of(name).to_string(),
                ]);
            }
        }
    }
    with_provenance(r, rows)
}

/// dvh_constraints.csv: one row per constraint and matching ROI.
pub fn constraints_csv(r: &DvhReport) -> Result<String> {
    let mut rows = vec![header(&[
        "roi",
        "constraint",
        "metric",
        "value",
        "limit",
        "result",
    ])];
    for c in &r.constraints {
        let result = match c.pass {
            Some(true) => "pass".to_string(),
            Some(false) => "fail".to_string(),
            None => format!("not evaluated: {}", c.reason.as_deref().unwrap_or("")),
        };
        rows.push(vec![
            c.roi.clone(),
            c.constraint.clone(),
            c.metric.clone(),
            c.value.map(|v| fmt(v, 6)).unwrap_or_default(),
            fmt(c.limit, 6),
            result,
        ]);
    }
    with_provenance(r, rows)
}

/// The `dvh` member of each ROI in dvh.json: cumulative and differential
/// DVH in cc per bin.
pub fn ser_histogram<S: Serializer>(h: &Histogram, s: S) -> Result<S::Ok, S::Error> {
    let round = |x: f64| (x * 1e6).round() / 1e6;
    let cumulative: Vec<f64> = (0..h.edges())
        .map(|j| round(h.cumulative(j) / 1000.0))
        .collect();
    let differential: Vec<f64> = h.differential().iter().map(|d| round(d / 1000.0)).collect();
    let mut m = s.serialize_map(Some(3))?;
    m.serialize_entry("bin_width_gy", &h.bin_gy)?;
    m.serialize_entry("cumulative_cc", &cumulative)?;
    m.serialize_entry("differential_cc", &differential)?;
    m.end()
}

/// What `rtnode dvh --json` prints: ROI name → metric → value (in the
/// order computed), after `_dose`, which says which dose and UIDs were used.
pub struct JsonMetrics<'a>(pub &'a DvhReport);

impl Serialize for JsonMetrics<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(Some(r.rois.len() + 1))?;
        m.serialize_entry(
            "_dose",
            &json!({
                "scope": r.dose.scope,
                "not_evaluated": r.not_evaluated,
                "description": r.dose.description,
                "units": r.dose.units,
                "rtdose_uids": r.dose.dose_uids,
                "rtplan_uids": r.dose.plan_uids,
                "rtstruct_uid": r.structure_set.sop_instance_uid,
                "autoseg_rtstruct_uids": autoseg_uids(r),
                "prescriptions": r.prescriptions,
            }),
        )?;
        for roi in &r.rois {
            m.serialize_entry(&roi.name, &roi.metrics)?;
        }
        m.end()
    }
}

/// The report in the form `rtnode dvh --json` prints (see [`JsonMetrics`]).
pub fn json_metrics(r: &DvhReport) -> JsonMetrics<'_> {
    JsonMetrics(r)
}

/// Writes dvh.csv, dvh_metrics.csv, dvh_constraints.csv and dvh.json into
/// `dir` (created if needed).
pub fn write_outputs(dir: &Path, r: &DvhReport) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
    };
    write("dvh.csv", dvh_csv(r)?.as_bytes())?;
    write("dvh_metrics.csv", metrics_csv(r)?.as_bytes())?;
    write("dvh_constraints.csv", constraints_csv(r)?.as_bytes())?;
    let json = serde_json::to_vec_pretty(r).context("serialising dvh.json")?;
    write("dvh.json", &json)?;
    Ok(())
}
