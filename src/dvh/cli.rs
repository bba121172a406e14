//! `rtnode dvh`: one-off DVHs from files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::rt::{DoseGrid, DoseHeader, DoseScope, Plan, RtStruct};

use super::{assemble_dose, compute, select_dose, write_outputs, DvhReport, DvhSettings};

/// Arguments of `rtnode dvh`.
#[derive(Debug, Clone)]
pub struct DvhArgs {
    /// The RT Structure Set whose ROIs are evaluated.
    pub rtstruct: PathBuf,
    /// RT Dose files to choose from by the rules of [`select_dose`] (several
    /// may be summed, e.g. BEAM doses).
    pub rtdose: Vec<PathBuf>,
    /// RT Plans the doses reference: fractions and prescriptions.
    pub rtplan: Vec<PathBuf>,
    /// Folder for the CSV/JSON outputs; None writes none.
    pub out: Option<PathBuf>,
    /// Print the metrics as JSON instead of the text table.
    pub json: bool,
    /// YAML with DVH settings, bare or under `dvh:` (e.g. conf/rtnode.yaml).
    pub settings: Option<PathBuf>,
    /// Multiplies a lone FRACTION dose whose plan is not given.
    pub fractions: Option<u32>,
}

/// Settings from a YAML file: the `dvh:` section of a config, or the
/// settings alone.
pub fn load_settings(path: &Path) -> Result<DvhSettings> {
    #[derive(Deserialize)]
    struct Wrapped {
        dvh: DvhSettings,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let settings = if value.get("dvh").is_some() {
        serde_yaml_ng::from_value::<Wrapped>(serde_yaml_ng::Value::Mapping(
            [(serde_yaml_ng::Value::from("dvh"), value["dvh"].clone())]
                .into_iter()
                .collect(),
        ))
        .map(|w| w.dvh)
    } else {
        serde_yaml_ng::from_value::<DvhSettings>(value)
    }
    .with_context(|| format!("{}: dvh settings", path.display()))?;
    settings.validate().map_err(anyhow::Error::msg)?;
    Ok(settings)
}

/// Who chooses the dose, which decides what may be used without a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseChooser {
    /// The course stage: only what the rules of [`select_dose`] allow; an
    /// RTDOSE without its plan is never used.
    Course,
    /// `rtnode dvh`: the user named the files, so a lone RTDOSE is used
    /// even without a plan reference, and a lone FRACTION dose whose plan
    /// is not given is used as stored (or multiplied by `fractions`), each
    /// said in the outputs.
    CommandLine {
        /// `--fractions`: multiplies a lone FRACTION dose; None uses it as
        /// stored.
        fractions: Option<u32>,
    },
}

/// Reads the files, chooses the dose, computes the report, as
/// `rtnode dvh` does (see [`DoseChooser::CommandLine`]).
pub fn report_for(args: &DvhArgs, settings: &DvhSettings) -> Result<DvhReport> {
    report_from_files(
        &args.rtstruct,
        &args.rtdose,
        &args.rtplan,
        settings,
        DoseChooser::CommandLine {
            fractions: args.fractions,
        },
    )
}

/// Reads the files, chooses the dose among `rtdose` with `select_dose`,
/// builds it and computes the report.
pub fn report_from_files(
    rtstruct: &Path,
    rtdose: &[PathBuf],
    rtplan: &[PathBuf],
    settings: &DvhSettings,
    chooser: DoseChooser,
) -> Result<DvhReport> {
    let rs = RtStruct::from_file(rtstruct)?;
    report_for_structures(&rs, rtdose, rtplan, settings, chooser)
}

/// As [`report_from_files`], for a structure set already read (the course
/// stage adds the auto-segmentation's ROIs to the plan's).
pub fn report_for_structures(
    rs: &RtStruct,
    rtdose: &[PathBuf],
    rtplan: &[PathBuf],
    settings: &DvhSettings,
    chooser: DoseChooser,
) -> Result<DvhReport> {
    if rtdose.is_empty() {
        bail!("no RTDOSE given");
    }
    let plans: Vec<Plan> = rtplan
        .iter()
        .map(|p| Plan::from_file(p))
        .collect::<Result<_>>()?;
    let headers: Vec<DoseHeader> = rtdose
        .iter()
        .map(|p| DoseHeader::from_file(p))
        .collect::<Result<_>>()?;
    let named = match chooser {
        DoseChooser::Course => None,
        DoseChooser::CommandLine { fractions } => Some(fractions),
    };
    let lone = (headers.len() == 1).then(|| &headers[0]);
    let plan_given = |h: &DoseHeader| {
        h.referenced_plans
            .iter()
            .any(|r| plans.iter().any(|p| p.sop_instance_uid == r.plan_uid))
    };
    let lone_fraction_without_plan =
        lone.filter(|h| h.summation_type == "FRACTION" && !plan_given(h));
    if let (Some(_), Some(h)) = (named, lone) {
        if h.summation_type == "BEAM" && !plan_given(h) {
            bail!(
                "RTDOSE {} is a BEAM dose and its plan was not given: one beam's share is not a plan \
                 dose, so it is not used (give the plan and every beam's RTDOSE to have them summed)",
                h.sop_instance_uid
            );
        }
    }
    if let Some(Some(n)) = named {
        if lone_fraction_without_plan.is_none() {
            bail!(
                "--fractions applies only to a single RTDOSE whose DoseSummationType is FRACTION \
                 and whose plan is not given (with the plan, its NumberOfFractionsPlanned is used)"
            );
        }
        if n == 0 {
            bail!("--fractions must be at least 1");
        }
    }
    let dose = match (named, lone, lone_fraction_without_plan) {
        (Some(fractions), _, Some(h)) => {
            let mut grid = DoseGrid::from_file(&rtdose[0])?;
            fraction_dose_without_plan(&mut grid, h, fractions);
            grid
        }
        (Some(_), Some(h), None) if h.referenced_plans.is_empty() => {
            // Named on the command line, so attached — but said loudly: the
            // stage never attaches such a dose.
            let mut grid = DoseGrid::from_file(&rtdose[0])?;
            grid.provenance.notes.push(
                "this RTDOSE references no plan: used only because it was named on the command line; no prescription"
                    .into(),
            );
            grid
        }
        _ => {
            let choice = select_dose(&headers, &plans, settings);
            if let Some(f) = &choice.failure {
                bail!(
                    "no dose could be chosen: {f}\n  {}",
                    choice.reasons.join("\n  ")
                );
            }
            let grids: Vec<DoseGrid> = rtdose
                .iter()
                .zip(&headers)
                .filter(|(_, h)| {
                    choice
                        .components
                        .iter()
                        .any(|c| c.dose_uid == h.sop_instance_uid)
                })
                .map(|(p, _)| DoseGrid::from_file(p))
                .collect::<Result<_>>()?;
            assemble_dose(&choice, &grids)?
        }
    };
    compute(rs, &dose, settings)
}

/// A FRACTION dose named alone without its plan: as stored, or multiplied
/// by the fractions the user gave, said in its provenance either way.
fn fraction_dose_without_plan(grid: &mut DoseGrid, h: &DoseHeader, fractions: Option<u32>) {
    let uid = &h.sop_instance_uid;
    match fractions {
        None => {
            grid.provenance.scope = DoseScope::FractionAsStored;
            grid.provenance.description = DoseScope::FRACTION_AS_STORED.to_string();
            grid.provenance.notes.push(format!(
                "RTDOSE {uid} is a FRACTION dose and its plan was not given: {}; \
                 metrics describe the grid, nothing in absolute Gy or relative to a prescription \
                 is evaluated (give the plan, or --fractions N, to have a treatment total)",
                DoseScope::FRACTION_AS_STORED
            ));
        }
        Some(n) => {
            grid.data
                .mapv_inplace(|v| (f64::from(v) * f64::from(n)) as f32);
            grid.provenance.description =
                format!("FRACTION dose × {n} (--fractions; plan not available)");
            grid.provenance.notes.push(format!(
                "RTDOSE {uid} is a FRACTION dose and its plan was not given: \
                 multiplied by {n} fractions as --fractions says; no prescription"
            ));
        }
    }
}

/// `rtnode dvh`: loads the settings, computes the report, writes the
/// outputs when `--out` is given and prints the metrics (a table, or JSON).
pub fn run(args: &DvhArgs) -> Result<()> {
    let settings = match &args.settings {
        Some(p) => load_settings(p)?,
        None => DvhSettings::default(),
    };
    let report = report_for(args, &settings)?;
    if report.dose.scope == DoseScope::FractionAsStored {
        eprintln!(
            "rtnode dvh: {}: metrics describe the stored grid; constraints and metrics in absolute Gy \
             or relative to a prescription are not evaluated (--fractions N scales it)",
            DoseScope::FRACTION_AS_STORED
        );
    }
    if let Some(dir) = &args.out {
        write_outputs(dir, &report)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&super::json_metrics(&report))
                .context("serialising metrics")?
        );
    } else {
        print!("{}", summary(&report));
    }
    Ok(())
}

/// A short text table for people.
pub fn summary(r: &DvhReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "dose: {} ({})",
        r.dose.description,
        r.dose.dose_uids.join(", ")
    );
    for p in &r.prescriptions {
        let _ = writeln!(s, "prescription: {} Gy ({})", p.dose_gy, p.description);
    }
    let _ = writeln!(
        s,
        "{:<24} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "ROI", "volume_cc", "Dmin", "Dmean", "Dmax", "D95", "D5"
    );
    let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for roi in &r.rois {
        let m = &roi.metrics;
        let _ = writeln!(
            s,
            "{:<24} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
            roi.name,
            f(m.get("volume_cc")),
            f(m.get("Dmin")),
            f(m.get("Dmean")),
            f(m.get("Dmax")),
            f(m.get("D95")),
            f(m.get("D5"))
        );
        for n in &roi.notes {
            let _ = writeln!(s, "    note: {n}");
        }
    }
    for c in &r.constraints {
        let verdict = match c.pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "n/a",
        };
        let _ = writeln!(s, "constraint {:<30} {:<20} {verdict}", c.constraint, c.roi);
    }
    s
}
