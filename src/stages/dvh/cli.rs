//! `rtnode dvh`: one-off DVHs from files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::rt::{DoseGrid, DoseHeader, Plan, RtStruct};

use super::{assemble_dose, compute, select_dose, write_outputs, DvhReport, DvhSettings};

#[derive(Debug, Clone)]
pub struct DvhArgs {
    pub rtstruct: PathBuf,
    pub rtdose: Vec<PathBuf>,
    pub rtplan: Vec<PathBuf>,
    pub out: Option<PathBuf>,
    pub json: bool,
    /// YAML with DVH settings, bare or under `dvh:` (e.g. conf/rtnode.yaml).
    pub settings: Option<PathBuf>,
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

/// Reads the files, chooses the dose, computes the report, as
/// `rtnode dvh` does: a single RTDOSE that references no plan is used
/// (with a note saying so) because the user named it.
pub fn report_for(args: &DvhArgs, settings: &DvhSettings) -> Result<DvhReport> {
    report_from_files(&args.rtstruct, &args.rtdose, &args.rtplan, settings, true)
}

/// Reads the files, chooses the dose among `rtdose` with `select_dose`,
/// builds it and computes the report. With `attach_unreferenced` false
/// (the course stage) an RTDOSE without a plan reference is never used.
pub fn report_from_files(
    rtstruct: &Path,
    rtdose: &[PathBuf],
    rtplan: &[PathBuf],
    settings: &DvhSettings,
    attach_unreferenced: bool,
) -> Result<DvhReport> {
    let rs = RtStruct::from_file(rtstruct)?;
    report_for_structures(&rs, rtdose, rtplan, settings, attach_unreferenced)
}

/// As [`report_from_files`], for a structure set already read (the course
/// stage adds the auto-segmentation's ROIs to the plan's).
pub fn report_for_structures(
    rs: &RtStruct,
    rtdose: &[PathBuf],
    rtplan: &[PathBuf],
    settings: &DvhSettings,
    attach_unreferenced: bool,
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
    let dose = if attach_unreferenced
        && headers.len() == 1
        && headers[0].referenced_plans.is_empty()
    {
        // Named on the command line, so attached — but said loudly: the
        // stage never attaches such a dose.
        let mut grid = DoseGrid::from_file(&rtdose[0])?;
        grid.provenance.notes.push(
            "this RTDOSE references no plan: used only because it was named on the command line; no prescription"
                .into(),
        );
        grid
    } else {
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
    };
    compute(rs, &dose, settings)
}

pub fn run(args: &DvhArgs) -> Result<()> {
    let settings = match &args.settings {
        Some(p) => load_settings(p)?,
        None => DvhSettings::default(),
    };
    let report = report_for(args, &settings)?;
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
