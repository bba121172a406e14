//! The DVH engine: structures × chosen dose → cumulative and differential
//! DVHs, metrics, constraints, and the files `dvh.csv`, `dvh_metrics.csv`,
//! `dvh_constraints.csv` and `dvh.json`.
//!
//! Entry points: [`select_dose`] chooses the dose of a course (pure, over
//! parsed headers and plans), [`assemble_dose`] builds it from the loaded
//! grids, [`compute`] makes the report, [`write_outputs`] writes it.
//! The method (columns exact along z, shape interpolation between planes,
//! end caps) is described in `rt::shape` and `engine`.

pub mod assemble;
pub mod cli;
pub mod constraints;
pub mod derived;
pub mod engine;
pub mod histogram;
pub mod metrics;
pub mod output;
pub mod select;
pub mod settings;

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::rt::plan::Prescription;
use crate::rt::shape::{lattice_step, ShapeOptions};
use crate::rt::{DoseGrid, DoseScope, RoiSource, RtStruct};

pub use assemble::assemble_dose;
pub use constraints::{Constraint, ConstraintResult};
pub use histogram::Histogram;
pub use metrics::Metrics;
pub use output::{json_metrics, write_outputs};
pub use select::{select_dose, Component, DoseChoice};
pub use settings::DvhSettings;

/// Everything one DVH run produced: the dose and structures used, every
/// ROI's DVH and metrics, constraint verdicts and the settings, as written to
/// `dvh.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DvhReport {
    /// Version of rtnode that computed it.
    pub rtnode_version: String,
    /// The dose the DVHs were computed on.
    pub dose: DoseSummary,
    /// The structure set the ROIs come from.
    pub structure_set: StructureSetSummary,
    /// The prescriptions relative metrics refer to.
    pub prescriptions: Vec<Prescription>,
    /// False for a RELATIVE dose: only volumes are reported.
    pub absolute: bool,
    /// The structure set's ROIs in its order, then the derived structures.
    pub rois: Vec<RoiDvh>,
    /// Every constraint on every ROI it matches (a pattern matching none
    /// gives one row with an empty ROI).
    pub constraints: Vec<ConstraintResult>,
    /// Metrics left out because the dose cannot answer them (a FRACTION
    /// dose as stored: VxGy), with why; empty otherwise.
    pub not_evaluated: Option<NotEvaluated>,
    /// Decisions and oddities of the run as a whole, in words.
    pub notes: Vec<String>,
    /// The settings it ran with.
    pub settings: DvhSettings,
}

/// What was deliberately not computed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotEvaluated {
    /// Names of the metrics left out.
    pub metrics: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// The dose a report was computed on, for provenance in every output.
#[derive(Debug, Clone, Serialize)]
pub struct DoseSummary {
    /// A treatment total, or a fraction's dose as stored.
    pub scope: DoseScope,
    /// How the dose came about, in words ("PLAN dose", "sum of 4 BEAM doses", …).
    pub description: String,
    /// SOP Instance UIDs of every RTDOSE used.
    pub dose_uids: Vec<String>,
    /// SOP Instance UIDs of the plans those doses belong to.
    pub plan_uids: Vec<String>,
    /// GY (absolute) or RELATIVE.
    pub units: String,
    /// DoseType of the RTDOSE (PHYSICAL, EFFECTIVE, ERROR).
    pub dose_type: String,
    /// Frame of reference of the dose grid.
    pub frame_of_reference_uid: String,
    /// Highest voxel value of the grid, Gy (relative units for a RELATIVE dose).
    pub max_dose_gy: f64,
    /// nx, ny, nz.
    pub grid_size: [usize; 3],
    /// dx, dy, mean dz (mm).
    pub grid_spacing_mm: [f64; 3],
    /// Oddities of the dose files and how the dose was chosen, in words.
    pub notes: Vec<String>,
}

/// The structure set a report's ROIs come from.
#[derive(Debug, Clone, Serialize)]
pub struct StructureSetSummary {
    /// SOP Instance UID of the RT Structure Set.
    pub sop_instance_uid: String,
    /// StructureSetLabel; empty when absent.
    pub label: String,
    /// Frame of reference the contours are in.
    pub frame_of_reference_uid: String,
    /// Oddities of the structure set as a whole, in words.
    pub notes: Vec<String>,
}

/// Whether an ROI's DVH could be computed, and how fully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoiStatus {
    /// Computed from the full structure.
    Ok,
    /// A derived structure built without some of its sources.
    Partial,
    /// No volume (no closed contours, or the derived result is empty).
    Empty,
    /// Not computed (missing sources, another frame of reference).
    Skipped,
}

/// One ROI's (or derived structure's) DVH, metrics and status.
#[derive(Debug, Clone, Serialize)]
pub struct RoiDvh {
    /// ROI name as in the structure set (or the derived structure's name).
    pub name: String,
    /// ROINumber; None for a derived structure.
    pub number: Option<i64>,
    /// Where the ROI comes from.
    pub source: RoiSource,
    /// RTROIInterpretedType (PTV, ORGAN, …); empty when absent.
    pub interpreted_type: String,
    /// Whether the DVH was computed, and how fully.
    pub status: RoiStatus,
    /// How the ROI was read and sampled, in words.
    pub notes: Vec<String>,
    /// In-plane sampling step used (mm).
    pub step_mm: Option<f64>,
    /// Its metrics (see the `metrics` module), in reporting order.
    pub metrics: Metrics,
    /// Its DVH (cumulative volumes at each bin edge), serialised as `dvh`.
    #[serde(rename = "dvh", serialize_with = "output::ser_histogram")]
    pub histogram: Histogram,
}

/// Computes every ROI's DVH and metrics on `dose`. Fails only when nothing
/// sensible can be computed (settings invalid, frames of reference differ).
pub fn compute(rs: &RtStruct, dose: &DoseGrid, settings: &DvhSettings) -> Result<DvhReport> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let dose_for = &dose.header.frame_of_reference_uid;
    if !rs.frame_of_reference_uid.is_empty()
        && !dose_for.is_empty()
        && &rs.frame_of_reference_uid != dose_for
    {
        bail!(
            "the structure set's frame of reference {} is not the dose's {}: no DVH",
            rs.frame_of_reference_uid,
            dose_for
        );
    }
    let mut notes = Vec::new();
    let absolute = dose.header.units != "RELATIVE";
    if !absolute {
        notes.push("the dose is RELATIVE: only volumes are reported".to_string());
    }
    let Some(sampler) = engine::Sampler::new(dose) else {
        bail!("dose array is not contiguous");
    };
    let g = &dose.geometry;
    let dz = (g.bounds()[2][1] - g.bounds()[2][0]) / g.nz().max(1) as f64;
    let fallback_spacing = rs.typical_plane_spacing().unwrap_or(dz);
    let opts = ShapeOptions {
        end_cap: settings.end_cap,
        fallback_spacing,
    };
    let scope = dose.provenance.scope;
    let prescriptions = match scope {
        DoseScope::Total => sequential_boosts(
            prescriptions(dose, settings, &mut notes),
            rs,
            &opts,
            &mut notes,
        ),
        DoseScope::FractionAsStored => {
            notes.push(format!(
                "{}: no prescription applies (a prescription is a treatment total{})",
                DoseScope::FRACTION_AS_STORED,
                if settings.prescription.is_some() {
                    "; dvh.prescription not applied"
                } else {
                    ""
                }
            ));
            Vec::new()
        }
    };
    let max_step = settings.max_step_mm.unwrap_or(0.5 * g.dx.min(g.dy));
    let bin = settings.bin_width_gy;

    let mut rois: Vec<RoiDvh> = rs
        .rois
        .par_iter()
        .map(|roi| {
            let mut roi_notes = roi.notes.clone();
            let base = |status, notes, step, metrics, histogram| RoiDvh {
                name: roi.name.clone(),
                number: Some(roi.number),
                source: roi.source.clone(),
                interpreted_type: roi.interpreted_type.clone(),
                status,
                notes,
                step_mm: step,
                metrics,
                histogram,
            };
            if !roi.frame_of_reference_uid.is_empty()
                && !dose_for.is_empty()
                && &roi.frame_of_reference_uid != dose_for
            {
                roi_notes.push("on another frame of reference than the dose: skipped".into());
                return base(
                    RoiStatus::Skipped,
                    roi_notes,
                    None,
                    Metrics::default(),
                    Histogram::empty(bin),
                );
            }
            let step = lattice_step(
                roi,
                settings.samples_per_plane,
                settings.min_step_mm,
                max_step,
            );
            let Some((lattice, note)) = engine::roi_lattice(roi, step) else {
                let m =
                    metrics::compute(&Histogram::empty(bin), 0.0, absolute, &[], settings, scope);
                return base(RoiStatus::Empty, roi_notes, None, m, Histogram::empty(bin));
            };
            roi_notes.extend(note);
            let (h, shape_notes) = engine::roi_histogram(roi, &lattice, &opts, &sampler, bin);
            roi_notes.extend(shape_notes);
            let total = h.volume + h.outside;
            outside_note(&h, &mut roi_notes);
            let rx = rx_for(Some(roi.number), &prescriptions, rs);
            let m = metrics::compute(&h, total, absolute, &rx, settings, scope);
            let status = if total > 0.0 {
                RoiStatus::Ok
            } else {
                RoiStatus::Empty
            };
            base(status, roi_notes, Some(lattice.hx), m, h)
        })
        .collect();

    for d in derived::build(rs, settings, &opts) {
        let mut name = d.spec.name.clone();
        let mut notes = d.notes;
        if rois.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
            name = format!("{name} (derived)");
            notes.push(format!(
                "an ROI is already named {:?}: renamed {name:?}",
                d.spec.name
            ));
        }
        let source = RoiSource::Derived {
            definition: d.spec.describe(),
        };
        let (status, step, m, h) = match &d.shape {
            None => (
                RoiStatus::Skipped,
                None,
                Metrics::default(),
                Histogram::empty(bin),
            ),
            Some(shape) => {
                let h = engine::shape_histogram(shape, &sampler, bin);
                outside_note(&h, &mut notes);
                let total = h.volume + h.outside;
                let rx = rx_for(None, &prescriptions, rs);
                let m = metrics::compute(&h, total, absolute, &rx, settings, scope);
                let status = if d.partial {
                    RoiStatus::Partial
                } else if total > 0.0 {
                    RoiStatus::Ok
                } else {
                    RoiStatus::Empty
                };
                (status, Some(shape.lattice.hx), m, h)
            }
        };
        rois.push(RoiDvh {
            name,
            number: None,
            source,
            interpreted_type: String::new(),
            status,
            notes,
            step_mm: step,
            metrics: m,
            histogram: h,
        });
    }

    let mut results = Vec::new();
    for text in &settings.constraints {
        let c = Constraint::parse(text).map_err(anyhow::Error::msg)?;
        let mut any = false;
        for r in rois.iter().filter(|r| c.matches(&r.name)) {
            any = true;
            let mut result = c.evaluate(&r.name, &r.metrics.as_map());
            if scope == DoseScope::FractionAsStored && metrics::needs_treatment_total(&c.metric) {
                result.value = None;
                result.pass = None;
                result.reason = Some(DoseScope::FRACTION_AS_STORED.to_string());
            }
            results.push(result);
        }
        if !any {
            results.push(ConstraintResult {
                roi: String::new(),
                constraint: c.text.clone(),
                metric: c.metric.clone(),
                value: None,
                limit: c.limit,
                pass: None,
                reason: Some("no ROI matches the pattern".into()),
            });
        }
    }

    let mut dose_notes = dose.notes.clone();
    dose_notes.extend(dose.provenance.notes.iter().cloned());
    Ok(DvhReport {
        rtnode_version: env!("CARGO_PKG_VERSION").to_string(),
        dose: DoseSummary {
            scope,
            description: dose.provenance.description.clone(),
            dose_uids: dose.provenance.dose_uids.clone(),
            plan_uids: dose.provenance.plan_uids.clone(),
            units: if absolute {
                "GY".into()
            } else {
                "RELATIVE".into()
            },
            dose_type: dose.header.dose_type.clone(),
            frame_of_reference_uid: dose_for.clone(),
            max_dose_gy: dose.max_dose(),
            grid_size: [g.nx, g.ny, g.nz()],
            grid_spacing_mm: [g.dx, g.dy, dz],
            notes: dose_notes,
        },
        structure_set: StructureSetSummary {
            sop_instance_uid: rs.sop_instance_uid.clone(),
            label: rs.label.clone(),
            frame_of_reference_uid: rs.frame_of_reference_uid.clone(),
            notes: rs.notes.clone(),
        },
        prescriptions,
        absolute,
        rois,
        constraints: results,
        not_evaluated: (scope == DoseScope::FractionAsStored).then(|| NotEvaluated {
            metrics: metrics::not_evaluated(settings),
            reason: DoseScope::FRACTION_AS_STORED.to_string(),
        }),
        notes,
        settings: settings.clone(),
    })
}

fn outside_note(h: &Histogram, notes: &mut Vec<String>) {
    let total = h.volume + h.outside;
    if h.outside > 1e-6 * total.max(1.0) {
        notes.push(format!(
            "{:.3} cc ({:.1} %) lies outside the dose grid: dose metrics cover the {:.3} cc inside",
            h.outside / 1000.0,
            100.0 * h.outside / total,
            h.volume / 1000.0
        ));
    }
}

/// The plans' prescriptions, or the configured one.
fn prescriptions(dose: &DoseGrid, s: &DvhSettings, notes: &mut Vec<String>) -> Vec<Prescription> {
    let from_plan = dose.provenance.prescriptions.clone();
    match s.prescription {
        Some(gy) if s.prescription_overrides_plan || from_plan.is_empty() => {
            notes.push(format!("prescription {gy} Gy from dvh.prescription"));
            vec![Prescription {
                dose_gy: gy,
                roi_number: None,
                description: "dvh.prescription".into(),
                plan_uid: String::new(),
            }]
        }
        _ => {
            if from_plan.is_empty() {
                notes.push("prescription unknown: relative metrics omitted".into());
            }
            from_plan
        }
    }
}

/// Share of a boost target that must lie inside another plan's target for
/// that plan's dose to count towards the boost target's total.
pub const BOOST_CONTAINMENT: f64 = 0.95;

/// Summed plans prescribing to different targets (a primary plan to
/// PTV_50, a sequential boost to PTV_boost inside it): the boost target
/// receives the primary plan's dose too, so its total prescription is its
/// own plus that of every other summed plan whose target contains it (at
/// least [`BOOST_CONTAINMENT`] of its volume, by the contours). A target
/// that contains the other (the primary's) keeps its own: the boost does
/// not cover it. Plans prescribing to the same ROI were already added when
/// the dose was chosen. Each addition is said in `notes`.
fn sequential_boosts(
    mut rx: Vec<Prescription>,
    rs: &RtStruct,
    opts: &ShapeOptions,
    notes: &mut Vec<String>,
) -> Vec<Prescription> {
    let plans: std::collections::BTreeSet<&str> = rx
        .iter()
        .filter(|p| p.roi_number.is_some())
        .map(|p| p.plan_uid.as_str())
        .collect();
    if plans.len() < 2 {
        return rx;
    }
    let roi = |n: Option<i64>| n.and_then(|n| rs.rois.iter().find(|r| r.number == n));
    let mut added: Vec<(usize, f64, String)> = Vec::new();
    for (i, b) in rx.iter().enumerate() {
        let Some(inner) = roi(b.roi_number) else {
            continue;
        };
        // Per other plan, the largest prescription to a target containing
        // this one (a plan counts once, whatever its number of targets).
        let mut per_plan: std::collections::BTreeMap<&str, (f64, String)> = Default::default();
        for a in &rx {
            if a.plan_uid == b.plan_uid || a.roi_number.is_none() || a.roi_number == b.roi_number {
                continue;
            }
            let Some(outer) = roi(a.roi_number) else {
                continue;
            };
            let Some(share) = contained_share(inner, outer, opts) else {
                continue;
            };
            if share >= BOOST_CONTAINMENT
                && per_plan
                    .get(a.plan_uid.as_str())
                    .is_none_or(|(d, _)| a.dose_gy > *d)
            {
                per_plan.insert(
                    &a.plan_uid,
                    (
                        a.dose_gy,
                        format!(
                            "{} Gy of the plan prescribing to {} ({:.1} % of {} inside it)",
                            metrics::num(a.dose_gy),
                            outer.name,
                            100.0 * share,
                            inner.name
                        ),
                    ),
                );
            }
        }
        for (_, (gy, why)) in per_plan {
            added.push((i, gy, why));
        }
    }
    for (i, gy, why) in added {
        let p = &mut rx[i];
        notes.push(format!(
            "sequential boost: the prescription to {:?} ({} Gy) adds {why}",
            p.description,
            metrics::num(p.dose_gy)
        ));
        p.dose_gy += gy;
    }
    rx
}

/// The share of `inner`'s volume inside `outer`, on a 1 mm lattice over
/// `inner` (None when `inner` has no volume).
fn contained_share(
    inner: &crate::rt::Roi,
    outer: &crate::rt::Roi,
    opts: &ShapeOptions,
) -> Option<f64> {
    use crate::rt::raster::Lattice;
    use crate::rt::shape::{roi_bounds, BoolOp, Shape};
    let lattice = Lattice::covering(roi_bounds(inner)?, 1.0);
    let (a, _) = Shape::from_roi(inner, &lattice, opts);
    let (b, _) = Shape::from_roi(outer, &lattice, opts);
    let v = a.volume_mm3();
    (v > 0.0).then(|| a.combine(&b, BoolOp::Intersection).volume_mm3() / v)
}

/// Which prescriptions an ROI's relative metrics refer to: its own when it
/// is a target; else the single prescription; else each, labelled.
fn rx_for(number: Option<i64>, all: &[Prescription], rs: &RtStruct) -> Vec<metrics::RxRef> {
    if let Some(own) = all
        .iter()
        .find(|p| p.roi_number.is_some() && p.roi_number == number)
    {
        return vec![metrics::RxRef {
            dose_gy: own.dose_gy,
            suffix: None,
        }];
    }
    let mut distinct: Vec<&Prescription> = Vec::new();
    for p in all {
        if !distinct
            .iter()
            .any(|d| (d.dose_gy - p.dose_gy).abs() < 1e-9)
        {
            distinct.push(p);
        }
    }
    match distinct.len() {
        0 => Vec::new(),
        1 => vec![metrics::RxRef {
            dose_gy: distinct[0].dose_gy,
            suffix: None,
        }],
        _ => distinct
            .iter()
            .map(|p| {
                let label = p
                    .roi_number
                    .and_then(|n| rs.rois.iter().find(|r| r.number == n))
                    .map(|r| r.name.clone())
                    .or_else(|| (!p.description.is_empty()).then(|| p.description.clone()))
                    .unwrap_or_else(|| format!("{}Gy", metrics::num(p.dose_gy)));
                metrics::RxRef {
                    dose_gy: p.dose_gy,
                    suffix: Some(label),
                }
            })
            .collect(),
    }
}
