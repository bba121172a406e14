//! Cohort export for research: `rtnode export` writes one table each of DVH
//! metrics, radiomics features, QC verdicts and course metadata across all
//! courses (the latest version of each), as CSV or Parquet, optionally
//! pseudonymised (see `pseudonym`).
//!
//! Everything comes from what the node already keeps: the course and job
//! records of the state database (through the running node's admin socket
//! when one runs, since it holds the database) and the stage outputs under
//! `courses/<id>/v<N>/`, plus the headers of the course's own RTPLAN files
//! for what no stage records (plan name, machine, fractions). Every row
//! carries its provenance: course id and version, the stage with its
//! revision and fingerprint, the SOP Instance UIDs it was computed from,
//! and the rtnode version that exported it.

pub mod cli;
mod course_table;
pub mod csv;
mod parquet;
pub mod pseudonym;
pub mod settings;
mod stage_tables;
pub mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::pipeline::{CourseRecord, JobRecord, JobState};
use crate::state::StateDb;
use pseudonym::{Identity, Pseudonymiser};
use table::{Cell, Kind, Row, Table};

/// File format of the exported tables (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CSV with a header row, RFC 4180 quoting (`<table>.csv`).
    Csv,
    /// Apache Parquet, one file per table (`<table>.parquet`).
    Parquet,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Where and how [`export`] writes the tables.
pub struct ExportOptions {
    /// Output folder, created if missing; each table replaces its file
    /// there whole.
    pub out: PathBuf,
    /// File format of the tables.
    pub format: Format,
    /// The keyed pseudonymiser; None exports identifying data as stored.
    pub pseudonymiser: Option<Pseudonymiser>,
}

/// One table an export wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableSummary {
    /// Table name: `dvh_metrics`, `radiomics`, `qc` or `courses`.
    pub name: String,
    /// The file written.
    pub path: PathBuf,
    /// Data rows (header not counted).
    pub rows: usize,
    /// Columns, provenance columns included.
    pub columns: usize,
}

/// What an export wrote, as `rtnode export` prints it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportSummary {
    /// Courses with at least one result version.
    pub courses: usize,
    /// The tables written, in the order written.
    pub tables: Vec<TableSummary>,
    /// Whether the tables were pseudonymised.
    pub pseudonymised: bool,
    /// Cells blanked because they still held a PatientID or name.
    pub blanked_cells: usize,
    /// Outputs that could not be read, per course; the rest is exported.
    pub problems: Vec<String>,
}

/// The records an export needs from the state database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Source {
    /// Every course record (courses without a version are skipped).
    pub courses: Vec<CourseRecord>,
    /// The jobs of each course's latest version.
    pub jobs: Vec<JobRecord>,
}

/// The records, read from a state database: the node's own when it runs
/// (the admin socket's `cohort`), else the data directory's.
pub fn source_from_state(state: &StateDb) -> Result<Source> {
    let courses: Vec<CourseRecord> = state.courses()?;
    let mut jobs = Vec::new();
    for c in &courses {
        if let Some(v) = c.latest_version() {
            jobs.extend(state.jobs::<JobRecord>(&format!("{}/v{:04}/", c.course.id, v.n))?);
        }
    }
    Ok(Source { courses, jobs })
}

/// The records with no node running: from the data directory's state
/// database (see `admin::client::cohort_source`, which asks a running
/// node first).
pub fn load_source(data_dir: &Path) -> Result<Source> {
    anyhow::ensure!(
        crate::state::state_path(data_dir).exists(),
        "{} has no state database",
        data_dir.display()
    );
    let state = StateDb::open(data_dir)
        .context("opening the state database (is a server running without its admin socket?)")?;
    source_from_state(&state)
}

/// One course's latest version, as the table builders see it.
struct CourseCtx<'a> {
    rec: &'a CourseRecord,
    version: u32,
    vdir: PathBuf,
    jobs: HashMap<String, &'a JobRecord>,
}

impl CourseCtx<'_> {
    /// A stage's output folder, when the stage finished in this version.
    fn output(&self, stage: &str) -> Option<PathBuf> {
        let done = self
            .jobs
            .get(stage)
            .is_none_or(|j| j.state == JobState::Done);
        let dir = self.vdir.join(stage);
        (done && dir.is_dir()).then_some(dir)
    }
}

struct Builder<'a> {
    data_dir: &'a Path,
    revisions: HashMap<&'static str, u32>,
    dvh: Table,
    radiomics: Table,
    qc: Table,
    courses: Table,
    problems: Vec<String>,
}

/// Builds the four cohort tables from `source` and the stage outputs under
/// `data_dir`, and writes them to `opts.out`. Unreadable outputs are listed
/// in the summary's `problems`, not fatal.
pub fn export(data_dir: &Path, source: &Source, opts: &ExportOptions) -> Result<ExportSummary> {
    let mut b = Builder {
        data_dir,
        revisions: crate::stages::Registry::defaults()
            .stages()
            .iter()
            .map(|s| (s.name().as_str(), s.revision()))
            .collect(),
        dvh: Table::with_columns("dvh_metrics", &provenance_columns()),
        radiomics: Table::with_columns("radiomics", &provenance_columns()),
        qc: Table::with_columns("qc", &provenance_columns()),
        courses: Table::with_columns("courses", &provenance_columns()),
        problems: Vec::new(),
    };
    let mut identities = HashMap::new();
    let mut n = 0;
    for rec in &source.courses {
        let Some(v) = rec.latest_version() else {
            continue;
        };
        n += 1;
        let id = &rec.course.id;
        let prefix = format!("{id}/v{:04}/", v.n);
        let ctx = CourseCtx {
            rec,
            version: v.n,
            vdir: crate::pipeline::version_dir(data_dir, id, v.n),
            jobs: source
                .jobs
                .iter()
                .filter(|j| j.key().starts_with(&prefix))
                .map(|j| (j.stage.to_string(), j))
                .collect(),
        };
        identities.insert(
            id.clone(),
            Identity {
                patient_id: rec.course.patient.id.clone(),
                patient_name: rec.course.patient.name.clone(),
                issuer: rec.course.patient.issuer.clone(),
            },
        );
        b.course(&ctx);
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut summary = ExportSummary {
        courses: n,
        pseudonymised: opts.pseudonymiser.is_some(),
        problems: std::mem::take(&mut b.problems),
        ..ExportSummary::default()
    };
    for mut t in [b.dvh, b.radiomics, b.qc, b.courses] {
        if let Some(p) = &opts.pseudonymiser {
            summary.blanked_cells += p.apply(&mut t, &identities);
        }
        let path = opts
            .out
            .join(format!("{}.{}", t.name, opts.format.extension()));
        let partial = opts
            .out
            .join(format!(".{}.{}.partial", t.name, opts.format.extension()));
        match opts.format {
            Format::Csv => csv::write(&t, &partial)?,
            Format::Parquet => parquet::write(&t, &partial)?,
        }
        std::fs::rename(&partial, &path)
            .with_context(|| format!("renaming {} into place", partial.display()))?;
        summary.tables.push(TableSummary {
            name: t.name.to_string(),
            path,
            rows: t.rows.len(),
            columns: t.columns.len(),
        });
    }
    Ok(summary)
}

/// The provenance columns every table starts with.
fn provenance_columns() -> Row {
    let mut r = Row::default();
    for (name, kind) in [
        ("course_id", Kind::CourseId),
        ("course_version", Kind::Plain),
        ("stage", Kind::Plain),
        ("stage_revision", Kind::Plain),
        ("stage_fingerprint", Kind::Plain),
        ("source_sop_instance_uids", Kind::Uids),
        ("rtnode_version", Kind::Plain),
    ] {
        r.put(name, kind, Cell::Null);
    }
    r
}

fn join<S: AsRef<str>>(v: impl IntoIterator<Item = S>, sep: &str) -> String {
    v.into_iter()
        .map(|s| s.as_ref().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(sep)
}

impl Builder<'_> {
    fn problem(&mut self, course: &str, what: String) {
        warn!(course, problem = %what, "cohort export");
        self.problems.push(format!("{course}: {what}"));
    }

    fn provenance(&self, ctx: &CourseCtx, stage: &str, sources: &[String]) -> Row {
        let mut r = Row::default();
        // The course row's "stage" is the course itself: its fingerprint is
        // that of its member objects.
        let fingerprint = match ctx.jobs.get(stage) {
            Some(j) => j.fingerprint.clone(),
            None if stage == "course" => ctx.rec.fingerprint.clone(),
            None => String::new(),
        };
        r.put("course_id", Kind::CourseId, Cell::text(&ctx.rec.course.id))
            .put("course_version", Kind::Plain, Cell::Int(ctx.version.into()))
            .put("stage", Kind::Plain, Cell::text(stage))
            .put(
                "stage_revision",
                Kind::Plain,
                self.revisions
                    .get(stage)
                    .map_or(Cell::Null, |v| Cell::Int((*v).into())),
            )
            .put("stage_fingerprint", Kind::Plain, Cell::text(fingerprint))
            .put(
                "source_sop_instance_uids",
                Kind::Uids,
                Cell::text(join(sources, " ")),
            )
            .put(
                "rtnode_version",
                Kind::Plain,
                Cell::text(env!("CARGO_PKG_VERSION")),
            );
        r
    }

    /// The RT objects a stage reads besides the images: the current
    /// structure set, the plans and the doses.
    fn rt_sources(ctx: &CourseCtx) -> Vec<String> {
        let c = &ctx.rec.course;
        c.current_structure_set()
            .map(|m| m.sop_instance_uid.clone())
            .into_iter()
            .chain(c.plans.iter().map(|p| p.member.sop_instance_uid.clone()))
            .chain(c.doses.iter().map(|d| d.member.sop_instance_uid.clone()))
            .collect()
    }

    fn course(&mut self, ctx: &CourseCtx) {
        let id = ctx.rec.course.id.clone();
        let dvh = match ctx.output("dvh") {
            Some(dir) => match self.dvh_rows(ctx, &dir) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.problem(&id, format!("dvh: {e:#}"));
                    None
                }
            },
            None => None,
        };
        if let Some(dir) = ctx.output("qc") {
            if let Err(e) = self.qc_row(ctx, &dir) {
                self.problem(&id, format!("qc: {e:#}"));
            }
        }
        if let Some(dir) = ctx.output("radiomics") {
            let csv = dir.join("radiomics.csv");
            if csv.exists() {
                if let Err(e) = self.radiomics_rows(ctx, &csv) {
                    self.problem(&id, format!("radiomics: {e:#}"));
                }
            }
        }
        self.course_row(ctx, dvh.as_ref());
    }
}
