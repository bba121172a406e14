//! The tables of stage outputs: DVH metrics (one row per ROI, its metrics
//! as columns), QC (one row per course) and radiomics (the stage's rows).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::table::{Cell, Kind};
use super::{csv, join, Builder, CourseCtx};

/// (metric, value) pairs of one ROI, as dvh_metrics.csv lists them.
type Metrics = Vec<(String, String)>;

/// What dvh.json says about the dose and structure set it used.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DvhJson {
    #[serde(default)]
    pub(super) rtnode_version: String,
    #[serde(default)]
    pub(super) dose: DvhDose,
    #[serde(default)]
    pub(super) structure_set: DvhStructureSet,
    #[serde(default)]
    pub(super) prescriptions: Vec<crate::rt::plan::Prescription>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DvhDose {
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) dose_uids: Vec<String>,
    #[serde(default)]
    pub(super) plan_uids: Vec<String>,
    #[serde(default)]
    pub(super) units: String,
    #[serde(default)]
    pub(super) dose_type: String,
    pub(super) max_dose_gy: Option<f64>,
    pub(super) grid_size: Option<[u64; 3]>,
    pub(super) grid_spacing_mm: Option<[f64; 3]>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DvhStructureSet {
    #[serde(default)]
    pub(super) sop_instance_uid: String,
}

impl Builder<'_> {
    pub(super) fn dvh_rows(&mut self, ctx: &CourseCtx, dir: &Path) -> Result<DvhJson> {
        let json: DvhJson = serde_json::from_slice(
            &std::fs::read(dir.join("dvh.json")).context("reading dvh.json")?,
        )
        .context("parsing dvh.json")?;
        let (header, records) = csv::read(&dir.join("dvh_metrics.csv"))?;
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("dvh_metrics.csv has no column {name}"))
        };
        let (roi, number, source, status, metric, value) = (
            col("roi")?,
            col("roi_number")?,
            col("source")?,
            col("status")?,
            col("metric")?,
            col("value")?,
        );
        let sources: Vec<String> = std::iter::once(json.structure_set.sop_instance_uid.clone())
            .chain(json.dose.dose_uids.iter().cloned())
            .chain(json.dose.plan_uids.iter().cloned())
            .collect();
        // One row per ROI, its metrics as columns, in the file's order.
        let mut rows: Vec<(Vec<String>, Metrics)> = Vec::new();
        for r in &records {
            let key = vec![
                r[roi].clone(),
                r[number].clone(),
                r[source].clone(),
                r[status].clone(),
            ];
            match rows.last_mut() {
                Some((k, m)) if *k == key => m.push((r[metric].clone(), r[value].clone())),
                _ => rows.push((key, vec![(r[metric].clone(), r[value].clone())])),
            }
        }
        for (key, metrics) in rows {
            let mut row = self.provenance(ctx, "dvh", &sources);
            row.put(
                "dose_description",
                Kind::Plain,
                Cell::text(&json.dose.description),
            )
            .put("roi", Kind::Plain, Cell::text(&key[0]))
            .put(
                "roi_number",
                Kind::Plain,
                key[1].parse::<i64>().map_or(Cell::Null, Cell::Int),
            )
            .put("roi_source", Kind::Plain, Cell::text(&key[2]))
            .put("roi_status", Kind::Plain, Cell::text(&key[3]));
            for (m, v) in metrics {
                row.put(&m, Kind::Measure, Cell::parse(&v));
            }
            self.dvh.push(row);
        }
        Ok(json)
    }

    pub(super) fn qc_row(&mut self, ctx: &CourseCtx, dir: &Path) -> Result<()> {
        let report: crate::stages::qc::Report = serde_json::from_slice(
            &std::fs::read(dir.join(crate::stages::qc::REPORT_FILE)).context("reading qc.json")?,
        )
        .context("parsing qc.json")?;
        use crate::stages::qc::Verdict;
        let count = |v: Verdict| report.checks.iter().filter(|c| c.status == v).count() as i64;
        let ids = |v: Verdict| {
            let set: BTreeSet<&str> = report
                .checks
                .iter()
                .filter(|c| c.status == v)
                .map(|c| c.id.as_str())
                .collect();
            join(set, " ")
        };
        let verdict = |v: Verdict| match v {
            Verdict::Pass => "PASS",
            Verdict::Warning => "WARNING",
            Verdict::Fail => "FAIL",
        };
        let mut row = self.provenance(ctx, "qc", &Self::rt_sources(ctx));
        row.put("verdict", Kind::Plain, Cell::text(verdict(report.verdict)))
            .put("checks", Kind::Plain, Cell::Int(report.checks.len() as i64))
            .put("passed", Kind::Plain, Cell::Int(count(Verdict::Pass)))
            .put("warnings", Kind::Plain, Cell::Int(count(Verdict::Warning)))
            .put("failed", Kind::Plain, Cell::Int(count(Verdict::Fail)))
            .put("failed_checks", Kind::Plain, Cell::text(ids(Verdict::Fail)))
            .put(
                "warning_checks",
                Kind::Plain,
                Cell::text(ids(Verdict::Warning)),
            )
            .put(
                "findings",
                Kind::FreeText,
                Cell::text(join(
                    report
                        .checks
                        .iter()
                        .filter(|c| c.status != Verdict::Pass)
                        .map(|c| format!("{}: {}", c.id, c.detail)),
                    "; ",
                )),
            );
        // The worst outcome of each check, one column per check id.
        let mut worst: BTreeMap<&str, Verdict> = BTreeMap::new();
        for c in &report.checks {
            let w = worst.entry(c.id.as_str()).or_insert(c.status);
            *w = (*w).max(c.status);
        }
        for (id, v) in worst {
            row.put(&format!("check_{id}"), Kind::Plain, Cell::text(verdict(v)));
        }
        self.qc.push(row);
        Ok(())
    }

    pub(super) fn radiomics_rows(&mut self, ctx: &CourseCtx, csv_path: &Path) -> Result<()> {
        let (header, records) = csv::read(csv_path)?;
        let sources: Vec<String> = ctx
            .rec
            .course
            .current_structure_set()
            .map(|m| m.sop_instance_uid.clone())
            .into_iter()
            .chain(std::iter::once(ctx.rec.course.planning_series_uid.clone()))
            .collect();
        for r in &records {
            let mut row = self.provenance(ctx, "radiomics", &sources);
            for (h, v) in header.iter().zip(r) {
                let kind = if h == "roi" || h == "roi_source" {
                    Kind::Plain
                } else {
                    Kind::Measure
                };
                let cell = if kind == Kind::Plain {
                    Cell::text(v)
                } else {
                    Cell::parse(v)
                };
                row.put(h, kind, cell);
            }
            self.radiomics.push(row);
        }
        Ok(())
    }
}
