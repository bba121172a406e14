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

pub mod csv;
mod parquet;
pub mod pseudonym;
pub mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use dicom_dictionary_std::tags;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::pipeline::{CourseRecord, JobRecord, JobState};
use crate::state::StateDb;
use pseudonym::{Identity, Pseudonymiser};
use table::{Cell, Kind, Row, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
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

pub struct ExportOptions {
    pub out: PathBuf,
    pub format: Format,
    pub pseudonymiser: Option<Pseudonymiser>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableSummary {
    pub name: String,
    pub path: PathBuf,
    pub rows: usize,
    pub columns: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportSummary {
    /// Courses with at least one result version.
    pub courses: usize,
    pub tables: Vec<TableSummary>,
    pub pseudonymised: bool,
    /// Cells blanked because they still held a PatientID or name.
    pub blanked_cells: usize,
    /// Outputs that could not be read, per course; the rest is exported.
    pub problems: Vec<String>,
}

/// The records an export needs from the state database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Source {
    pub courses: Vec<CourseRecord>,
    /// The jobs of each course's latest version.
    pub jobs: Vec<JobRecord>,
}

fn source_from_state(state: &StateDb) -> Result<Source> {
    let courses: Vec<CourseRecord> = state.courses()?;
    let mut jobs = Vec::new();
    for c in &courses {
        if let Some(v) = c.latest_version() {
            jobs.extend(state.jobs::<JobRecord>(&format!("{}/v{:04}/", c.course.id, v.n))?);
        }
    }
    Ok(Source { courses, jobs })
}

/// The admin socket's `cohort`: the records, read by the node that holds them.
pub fn admin_source(node: &crate::scp::Node) -> Result<Source> {
    source_from_state(&node.state)
}

/// The records, from the running node or from the state database.
pub fn load_source(data_dir: &Path) -> Result<Source> {
    if let Some(reply) =
        crate::status::ask_server_for(data_dir, "cohort\n", Duration::from_secs(300))
    {
        return serde_json::from_value(reply?).context("bad cohort reply from the server");
    }
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

pub fn export(data_dir: &Path, source: &Source, opts: &ExportOptions) -> Result<ExportSummary> {
    let mut b = Builder {
        data_dir,
        revisions: crate::stages::registry()
            .iter()
            .map(|s| (s.name(), s.revision()))
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
                .map(|j| (j.stage.clone(), j))
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

/// (metric, value) pairs of one ROI, as dvh_metrics.csv lists them.
type Metrics = Vec<(String, String)>;

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

/// What dvh.json says about the dose and structure set it used.
#[derive(Debug, Default, Deserialize)]
struct DvhJson {
    #[serde(default)]
    rtnode_version: String,
    #[serde(default)]
    dose: DvhDose,
    #[serde(default)]
    structure_set: DvhStructureSet,
    #[serde(default)]
    prescriptions: Vec<crate::rt::plan::Prescription>,
}

#[derive(Debug, Default, Deserialize)]
struct DvhDose {
    #[serde(default)]
    description: String,
    #[serde(default)]
    dose_uids: Vec<String>,
    #[serde(default)]
    plan_uids: Vec<String>,
    #[serde(default)]
    units: String,
    #[serde(default)]
    dose_type: String,
    max_dose_gy: Option<f64>,
    grid_size: Option<[u64; 3]>,
    grid_spacing_mm: Option<[f64; 3]>,
}

#[derive(Debug, Default, Deserialize)]
struct DvhStructureSet {
    #[serde(default)]
    sop_instance_uid: String,
}

/// What the course's plans say that no stage output records.
#[derive(Debug, Default)]
struct PlanInfo {
    uids: Vec<String>,
    labels: Vec<String>,
    names: Vec<String>,
    intents: Vec<String>,
    approvals: Vec<String>,
    fractions: Vec<u32>,
    machines: BTreeSet<String>,
    prescriptions: Vec<crate::rt::plan::Prescription>,
}

struct Study {
    uid: String,
    date: String,
    description: String,
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

    fn dvh_rows(&mut self, ctx: &CourseCtx, dir: &Path) -> Result<DvhJson> {
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

    fn qc_row(&mut self, ctx: &CourseCtx, dir: &Path) -> Result<()> {
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

    fn radiomics_rows(&mut self, ctx: &CourseCtx, csv_path: &Path) -> Result<()> {
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

    fn plan_info(&mut self, ctx: &CourseCtx, only: &[String]) -> PlanInfo {
        let mut info = PlanInfo::default();
        for p in &ctx.rec.course.plans {
            let uid = &p.member.sop_instance_uid;
            if !only.is_empty() && !only.contains(uid) {
                continue;
            }
            let path = self.data_dir.join(&p.member.path);
            let read = crate::dcm::open(&path, true).and_then(|obj| {
                let plan = crate::rt::plan::Plan::from_object(&obj)?;
                let mut machines = BTreeSet::new();
                for seq in [tags::BEAM_SEQUENCE, tags::ION_BEAM_SEQUENCE] {
                    for beam in crate::dcm::items(&obj, seq) {
                        let m = crate::dcm::text(&beam, tags::TREATMENT_MACHINE_NAME);
                        if !m.is_empty() {
                            machines.insert(m);
                        }
                    }
                }
                Ok((plan, machines))
            });
            match read {
                Ok((plan, machines)) => {
                    info.uids.push(uid.clone());
                    info.labels.push(plan.label.clone());
                    info.names.push(plan.name.clone());
                    info.intents.push(plan.intent.clone());
                    info.approvals.push(plan.approval_status.clone());
                    if let Some(f) = plan.total_fractions() {
                        info.fractions.push(f);
                    }
                    info.machines.extend(machines);
                    info.prescriptions.extend(plan.prescriptions().0);
                }
                Err(e) => self.problem(&ctx.rec.course.id, format!("RTPLAN {uid}: {e:#}")),
            }
        }
        info
    }

    /// Study attributes from the first course object that can be read.
    fn study(&self, ctx: &CourseCtx) -> Option<Study> {
        let c = &ctx.rec.course;
        let candidates = c
            .plans
            .iter()
            .map(|p| &p.member)
            .chain(c.structure_sets.iter())
            .chain(c.images.iter().take(1));
        for m in candidates {
            if let Ok(obj) = crate::dcm::open(&self.data_dir.join(&m.path), true) {
                return Some(Study {
                    uid: crate::dcm::text(&obj, tags::STUDY_INSTANCE_UID),
                    date: crate::dcm::text(&obj, tags::STUDY_DATE),
                    description: crate::dcm::text(&obj, tags::STUDY_DESCRIPTION),
                });
            }
        }
        None
    }

    fn course_row(&mut self, ctx: &CourseCtx, dvh: Option<&DvhJson>) {
        let c = &ctx.rec.course;
        let plans_used: Vec<String> = dvh.map(|d| d.dose.plan_uids.clone()).unwrap_or_default();
        let plans = self.plan_info(ctx, &plans_used);
        let study = self.study(ctx);
        // The prescriptions the DVH used; the plans' own when there was none.
        let rx = match dvh {
            Some(d) if !d.prescriptions.is_empty() => d.prescriptions.clone(),
            _ => plans.prescriptions.clone(),
        };
        let jobs: Vec<&&JobRecord> = ctx.jobs.values().collect();
        let completed_at = if !jobs.is_empty() && jobs.iter().all(|j| j.state.is_final()) {
            jobs.iter().filter_map(|j| j.finished_at.clone()).max()
        } else {
            None
        };
        let version = ctx.rec.versions.iter().find(|v| v.n == ctx.version);
        let mut row = self.provenance(ctx, "course", &Self::rt_sources(ctx));
        row.put("course_state", Kind::Plain, Cell::text(&ctx.rec.state))
            .put("patient_id", Kind::PatientId, Cell::text(&c.patient.id))
            .put(
                "patient_name",
                Kind::PatientName,
                Cell::text(&c.patient.name),
            )
            .put(
                "patient_birth_date",
                Kind::Date,
                Cell::text(&c.patient.birth_date),
            )
            .put("patient_sex", Kind::Plain, Cell::text(&c.patient.sex))
            .put(
                "study_instance_uid",
                Kind::Uids,
                Cell::text(study.as_ref().map(|s| s.uid.clone()).unwrap_or_default()),
            )
            .put(
                "study_date",
                Kind::Date,
                Cell::text(study.as_ref().map(|s| s.date.clone()).unwrap_or_default()),
            )
            .put(
                "study_description",
                Kind::FreeText,
                Cell::text(
                    study
                        .as_ref()
                        .map(|s| s.description.clone())
                        .unwrap_or_default(),
                ),
            )
            .put(
                "planning_series_uid",
                Kind::Uids,
                Cell::text(&c.planning_series_uid),
            )
            .put("images", Kind::Plain, Cell::Int(c.images.len() as i64))
            .put(
                "rtstruct_uid",
                Kind::Uids,
                Cell::text(
                    c.current_structure_set()
                        .map(|m| m.sop_instance_uid.clone())
                        .unwrap_or_default(),
                ),
            )
            .put("plan_uids", Kind::Uids, Cell::text(join(&plans.uids, " ")))
            .put(
                "plan_labels",
                Kind::FreeText,
                Cell::text(join(&plans.labels, "; ")),
            )
            .put(
                "plan_names",
                Kind::FreeText,
                Cell::text(join(&plans.names, "; ")),
            )
            .put(
                "plan_intents",
                Kind::Plain,
                Cell::text(join(&plans.intents, " ")),
            )
            .put(
                "plan_approval",
                Kind::Plain,
                Cell::text(join(&plans.approvals, " ")),
            )
            .put(
                "fractions",
                Kind::Plain,
                match plans.fractions.iter().collect::<BTreeSet<_>>().len() {
                    0 => Cell::Null,
                    1 => Cell::Int(plans.fractions[0].into()),
                    _ => Cell::text(join(plans.fractions.iter().map(u32::to_string), " ")),
                },
            )
            .put(
                "prescription_gy",
                Kind::Plain,
                Cell::opt_num(rx.iter().map(|p| p.dose_gy).reduce(f64::max)),
            )
            .put(
                "prescriptions_gy",
                Kind::Plain,
                Cell::text(join(rx.iter().map(|p| p.dose_gy.to_string()), " ")),
            )
            .put(
                "prescription_descriptions",
                Kind::FreeText,
                Cell::text(join(rx.iter().map(|p| p.description.clone()), "; ")),
            )
            .put(
                "treatment_machines",
                Kind::Plain,
                Cell::text(join(&plans.machines, " ")),
            );
        let d = dvh.map(|d| &d.dose);
        let grid = d.and_then(|d| d.grid_size);
        let spacing = d.and_then(|d| d.grid_spacing_mm);
        row.put(
            "dose_description",
            Kind::Plain,
            Cell::text(d.map(|d| d.description.clone()).unwrap_or_default()),
        )
        .put(
            "dose_uids",
            Kind::Uids,
            Cell::text(d.map(|d| join(&d.dose_uids, " ")).unwrap_or_default()),
        )
        .put(
            "dose_plan_uids",
            Kind::Uids,
            Cell::text(d.map(|d| join(&d.plan_uids, " ")).unwrap_or_default()),
        )
        .put(
            "dose_units",
            Kind::Plain,
            Cell::text(d.map(|d| d.units.clone()).unwrap_or_default()),
        )
        .put(
            "dose_type",
            Kind::Plain,
            Cell::text(d.map(|d| d.dose_type.clone()).unwrap_or_default()),
        )
        .put(
            "dose_max_gy",
            Kind::Plain,
            Cell::opt_num(d.and_then(|d| d.max_dose_gy)),
        );
        for (i, axis) in ["x", "y", "z"].iter().enumerate() {
            row.put(
                &format!("dose_grid_n{axis}"),
                Kind::Plain,
                grid.map_or(Cell::Null, |g| Cell::Int(g[i] as i64)),
            );
        }
        for (i, axis) in ["x", "y", "z"].iter().enumerate() {
            row.put(
                &format!("dose_grid_d{axis}_mm"),
                Kind::Plain,
                spacing.map_or(Cell::Null, |s| Cell::Num(s[i])),
            );
        }
        row.put(
            "dvh_rtnode_version",
            Kind::Plain,
            Cell::text(dvh.map(|d| d.rtnode_version.clone()).unwrap_or_default()),
        )
        .put(
            "version_created_at",
            Kind::Date,
            Cell::text(version.map(|v| v.created_at.clone()).unwrap_or_default()),
        )
        .put(
            "completed_at",
            Kind::Date,
            Cell::text(completed_at.unwrap_or_default()),
        );
        self.courses.push(row);
    }
}
