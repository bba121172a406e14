//! Which dose a course's DVH is computed on, and its prescription.
//!
//! A pure function over parsed headers and plans, so that the stage and
//! `rtnode dvh` decide identically and tests can state every rule:
//! * an RTDOSE without a plan reference is never attached;
//! * MULTI_PLAN is used as is; otherwise per plan, PLAN beats FRACTION and
//!   BEAM; FRACTION is multiplied by NumberOfFractionsPlanned; BEAM doses
//!   are summed only when they cover every treatment beam of the fraction
//!   group exactly once, otherwise the plan fails closed;
//! * EFFECTIVE and PHYSICAL are never summed together (the preferred type
//!   is used when a plan has both); RELATIVE gives no absolute metrics and
//!   is never summed;
//! * several plans are summed only when `sum_plans` allows it, on one frame
//!   of reference, with a replaced plan (RTPlanRelationship PREDECESSOR, or
//!   an older plan with the same prescription and fractions) left out;
//! * every decision is written into `reasons`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::rt::plan::Prescription;
use crate::rt::rtdose::DoseHeader;
use crate::rt::Plan;

use super::settings::{DvhSettings, SumPlans};

/// One RTDOSE entering the chosen dose, scaled by `factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// SOP Instance UID of the RTDOSE.
    pub dose_uid: String,
    /// SOP Instance UID of the plan it belongs to (empty when it references
    /// none).
    pub plan_uid: String,
    /// Its DoseSummationType (PLAN, FRACTION, BEAM, …).
    pub summation_type: String,
    /// Multiplier applied to its voxels: 1, or the number of fractions for a
    /// FRACTION dose scaled to the treatment total.
    pub factor: f64,
}

/// The dose chosen for a course's DVHs by [`select_dose`]: which RTDOSEs,
/// scaled how, and why, or why none could be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseChoice {
    /// Why no dose could be chosen; `None` when one was.
    pub failure: Option<String>,
    /// The RTDOSEs summed into the dose; empty on failure.
    pub components: Vec<Component>,
    /// In words, for outputs.
    pub description: String,
    /// SOP Instance UIDs of the plans the dose belongs to.
    pub plan_uids: Vec<String>,
    /// False for RELATIVE doses: no absolute metrics.
    pub absolute: bool,
    /// DoseType of the chosen doses (PHYSICAL, EFFECTIVE, ERROR).
    pub dose_type: String,
    /// Frame of reference of the chosen doses.
    pub frame_of_reference_uid: String,
    /// The plans' target prescriptions, which relative metrics refer to.
    pub prescriptions: Vec<Prescription>,
    /// Every decision, in the order taken.
    pub reasons: Vec<String>,
    /// RTDOSEs left out, with why.
    pub excluded: Vec<(String, String)>,
}

impl DoseChoice {
    /// Whether a dose was chosen (no failure and at least one component).
    pub fn is_chosen(&self) -> bool {
        self.failure.is_none() && !self.components.is_empty()
    }

    fn failed(mut self, why: String) -> DoseChoice {
        self.reasons.push(why.clone());
        self.failure = Some(why);
        self.components.clear();
        self
    }
}

/// What one plan contributes.
struct PlanDose {
    plan_uid: String,
    components: Vec<Component>,
    dose_type: String,
    units: String,
    frame: String,
    description: String,
}

pub(super) fn short(uid: &str) -> String {
    // UIDs are long; outputs carry them in full, sentences carry the tail.
    match uid.len() {
        0..=20 => uid.to_string(),
        n => format!("…{}", &uid[n - 12..]),
    }
}

fn plan_name(p: &Plan) -> String {
    if p.label.is_empty() {
        format!("plan {}", short(&p.sop_instance_uid))
    } else {
        format!("plan {:?}", p.label)
    }
}

/// Chooses the dose among `doses` for the course whose plans are `plans`.
pub fn select_dose(doses: &[DoseHeader], plans: &[Plan], settings: &DvhSettings) -> DoseChoice {
    let mut choice = DoseChoice {
        failure: None,
        components: Vec::new(),
        description: String::new(),
        plan_uids: Vec::new(),
        absolute: false,
        dose_type: String::new(),
        frame_of_reference_uid: String::new(),
        prescriptions: Vec::new(),
        reasons: Vec::new(),
        excluded: Vec::new(),
    };
    let mut usable_plans: Vec<&Plan> = Vec::new();
    for p in plans {
        if matches!(p.intent.as_str(), "VERIFICATION" | "MACHINE_QA" | "SERVICE") {
            choice.reasons.push(format!(
                "{} has intent {}: not a treatment, left out",
                plan_name(p),
                p.intent
            ));
        } else if p.approval_status == "REJECTED" {
            choice
                .reasons
                .push(format!("{} is REJECTED: left out", plan_name(p)));
        } else {
            usable_plans.push(p);
        }
    }
    let known = |uid: &str| plans.iter().any(|p| p.sop_instance_uid == uid);

    // Doses that can enter at all.
    let mut cands: Vec<&DoseHeader> = Vec::new();
    for d in doses {
        let why = if d.referenced_plans.is_empty() {
            Some("no plan reference: never attached to a course".to_string())
        } else if d.dose_type == "ERROR" {
            Some("DoseType ERROR (an uncertainty map, not a dose)".to_string())
        } else if !matches!(d.units.as_str(), "GY" | "RELATIVE" | "CGY") {
            Some(format!("unknown DoseUnits {:?}", d.units))
        } else if !matches!(
            d.summation_type.as_str(),
            "PLAN" | "MULTI_PLAN" | "FRACTION" | "BEAM"
        ) {
            Some(format!(
                "DoseSummationType {} is not a planned total rtnode sums",
                if d.summation_type.is_empty() {
                    "(none)"
                } else {
                    &d.summation_type
                }
            ))
        } else if d.referenced_plans.iter().all(|r| {
            known(&r.plan_uid)
                && !usable_plans
                    .iter()
                    .any(|p| p.sop_instance_uid == r.plan_uid)
        }) {
            Some("its plan was left out".to_string())
        } else {
            None
        };
        match why {
            Some(w) => choice.excluded.push((d.sop_instance_uid.clone(), w)),
            None => cands.push(d),
        }
    }
    for (uid, why) in &choice.excluded {
        choice
            .reasons
            .push(format!("RTDOSE {} excluded: {why}", short(uid)));
    }
    if cands.is_empty() {
        return choice.failed("no usable RTDOSE".into());
    }

    // MULTI_PLAN is the planning system's own sum: used as is.
    let multi: Vec<&&DoseHeader> = cands
        .iter()
        .filter(|d| d.summation_type == "MULTI_PLAN")
        .collect();
    if let Some(d) = pick_preferred(&multi, settings) {
        let plan_uids: Vec<String> =
            distinct(d.referenced_plans.iter().map(|r| r.plan_uid.clone()));
        choice.reasons.push(format!(
            "MULTI_PLAN dose {} covers {} plan(s): used as is",
            short(&d.sop_instance_uid),
            plan_uids.len()
        ));
        let pd = PlanDose {
            plan_uid: plan_uids.first().cloned().unwrap_or_default(),
            components: vec![component(d, 1.0)],
            dose_type: d.dose_type.clone(),
            units: d.units.clone(),
            frame: d.frame_of_reference_uid.clone(),
            description: "MULTI_PLAN dose".into(),
        };
        let used: Vec<&Plan> = plans
            .iter()
            .filter(|p| plan_uids.contains(&p.sop_instance_uid))
            .collect();
        return finish(choice, vec![pd], &used, plan_uids, settings);
    }

    // Per plan, including plans the doses name but that were not given
    // (then only a PLAN dose can be used, without fractions or prescription).
    let mut plan_uids: Vec<String> = usable_plans
        .iter()
        .map(|p| p.sop_instance_uid.clone())
        .collect();
    for d in &cands {
        for r in &d.referenced_plans {
            if !known(&r.plan_uid) && !plan_uids.contains(&r.plan_uid) {
                plan_uids.push(r.plan_uid.clone());
            }
        }
    }
    let mut per_plan: Vec<PlanDose> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for uid in &plan_uids {
        let plan = usable_plans
            .iter()
            .find(|p| &p.sop_instance_uid == uid)
            .copied();
        let mine: Vec<&DoseHeader> = cands
            .iter()
            .filter(|d| {
                d.summation_type != "MULTI_PLAN"
                    && d.referenced_plans.iter().any(|r| &r.plan_uid == uid)
            })
            .copied()
            .collect();
        let name = plan
            .map(plan_name)
            .unwrap_or_else(|| format!("plan {} (not available)", short(uid)));
        if mine.is_empty() {
            choice.reasons.push(format!("{name} has no usable RTDOSE"));
            continue;
        }
        match plan_dose(uid, plan, &name, &mine, settings, &mut choice.reasons) {
            Ok(pd) => per_plan.push(pd),
            Err(why) => failures.push(why),
        }
    }
    if !failures.is_empty() {
        let why = failures.join("; ");
        return choice.failed(why);
    }
    if per_plan.is_empty() {
        return choice.failed("no plan has a usable dose".into());
    }
    let used_plans: Vec<&Plan> = usable_plans
        .iter()
        .filter(|p| per_plan.iter().any(|d| d.plan_uid == p.sop_instance_uid))
        .copied()
        .collect();
    let kept = drop_replaced(per_plan, &used_plans, settings, &mut choice.reasons);
    let uids: Vec<String> = kept.iter().map(|d| d.plan_uid.clone()).collect();
    let used: Vec<&Plan> = used_plans
        .into_iter()
        .filter(|p| uids.contains(&p.sop_instance_uid))
        .collect();
    finish(choice, kept, &used, uids, settings)
}

fn component(d: &DoseHeader, factor: f64) -> Component {
    Component {
        dose_uid: d.sop_instance_uid.clone(),
        plan_uid: d
            .referenced_plans
            .first()
            .map(|r| r.plan_uid.clone())
            .unwrap_or_default(),
        summation_type: d.summation_type.clone(),
        factor,
    }
}

fn distinct(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in it {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Absolute before relative, the preferred dose type before the other,
/// then the newest.
fn pick_preferred<'a>(list: &[&'a &DoseHeader], settings: &DvhSettings) -> Option<&'a DoseHeader> {
    let want = settings.dose_type.code();
    list.iter()
        .max_by(|a, b| {
            let key = |d: &DoseHeader| (d.is_absolute(), d.dose_type == want, d.created.clone());
            key(a).cmp(&key(b))
        })
        .map(|d| **d)
}

/// The dose of one plan from its RTDOSEs.
fn plan_dose(
    uid: &str,
    plan: Option<&Plan>,
    name: &str,
    mine: &[&DoseHeader],
    settings: &DvhSettings,
    reasons: &mut Vec<String>,
) -> Result<PlanDose, String> {
    let want = settings.dose_type.code();
    let types: BTreeSet<&str> = mine.iter().map(|d| d.dose_type.as_str()).collect();
    // Never mixed: the preferred type when present, else the other, said.
    let dose_type = if types.contains(want) {
        want.to_string()
    } else {
        let other = types.iter().next().copied().unwrap_or_default().to_string();
        reasons.push(format!("{name}: no {want} dose, {other} used"));
        other
    };
    let of_type: Vec<&DoseHeader> = mine
        .iter()
        .filter(|d| d.dose_type == dose_type)
        .copied()
        .collect();
    if types.len() > 1 {
        reasons.push(format!(
            "{name}: {dose_type} doses used, the others left out (never summed together)"
        ));
    }
    let absolute_present = of_type.iter().any(|d| d.is_absolute());
    let usable: Vec<&DoseHeader> = of_type
        .into_iter()
        .filter(|d| !absolute_present || d.is_absolute())
        .collect();
    if absolute_present && usable.len() < mine.len() && mine.iter().any(|d| !d.is_absolute()) {
        reasons.push(format!(
            "{name}: RELATIVE doses left out in favour of absolute ones"
        ));
    }
    let by = |kind: &str| -> Vec<&DoseHeader> {
        usable
            .iter()
            .filter(|d| d.summation_type == kind)
            .copied()
            .collect()
    };
    let (plan_doses, fraction_doses, beam_doses) = (by("PLAN"), by("FRACTION"), by("BEAM"));
    let base = |components: Vec<Component>, description: String| {
        let first = usable[0];
        PlanDose {
            plan_uid: uid.to_string(),
            components,
            dose_type: dose_type.clone(),
            units: first.units.clone(),
            frame: first.frame_of_reference_uid.clone(),
            description,
        }
    };
    if !plan_doses.is_empty() {
        let newest = newest(&plan_doses);
        let mut why = format!("{name}: PLAN dose {} used", short(&newest.sop_instance_uid));
        if plan_doses.len() > 1 {
            why.push_str(&format!(" (newest of {})", plan_doses.len()));
        }
        if !fraction_doses.is_empty() || !beam_doses.is_empty() {
            why.push_str("; PLAN beats FRACTION and BEAM doses");
        }
        reasons.push(why);
        return Ok(base(vec![component(newest, 1.0)], "PLAN dose".into()));
    }
    let Some(plan) = plan else {
        return Err(format!(
            "{name}: only FRACTION or BEAM doses, and the plan is not available to scale or check them"
        ));
    };
    if !fraction_doses.is_empty() {
        let mut comps = Vec::new();
        let mut words = Vec::new();
        for fg in &plan.fraction_groups {
            let here: Vec<&DoseHeader> = fraction_doses
                .iter()
                .filter(|d| refers_to_group(d, uid, fg.number, plan.fraction_groups.len()))
                .copied()
                .collect();
            if here.is_empty() {
                return Err(format!(
                    "{name}: fraction group {} has no FRACTION dose",
                    fg.number
                ));
            }
            let Some(n) = fg.fractions_planned else {
                return Err(format!(
                    "{name}: fraction group {} has no NumberOfFractionsPlanned to scale its FRACTION dose",
                    fg.number
                ));
            };
            let d = newest(&here);
            comps.push(component(d, f64::from(n)));
            words.push(format!(
                "FRACTION dose {} × {n}",
                short(&d.sop_instance_uid)
            ));
        }
        if comps.is_empty() {
            return Err(format!(
                "{name}: FRACTION doses but no fraction group in the plan"
            ));
        }
        reasons.push(format!("{name}: {}", words.join(" + ")));
        let desc = if comps.len() == 1 {
            format!("FRACTION dose × {}", comps[0].factor)
        } else {
            format!("{} FRACTION doses × their fractions", comps.len())
        };
        return Ok(base(comps, desc));
    }
    if !beam_doses.is_empty() {
        let mut comps = Vec::new();
        for fg in &plan.fraction_groups {
            let needed: BTreeSet<i64> = fg
                .beams
                .iter()
                .copied()
                .filter(|b| plan.beam(*b).is_none_or(|beam| beam.is_treatment()))
                .collect();
            if needed.is_empty() {
                continue;
            }
            let mut covered: BTreeMap<i64, &DoseHeader> = BTreeMap::new();
            for d in beam_doses
                .iter()
                .filter(|d| refers_to_group(d, uid, fg.number, plan.fraction_groups.len()))
            {
                let beams: BTreeSet<i64> = d
                    .referenced_plans
                    .iter()
                    .filter(|r| r.plan_uid == uid)
                    .flat_map(|r| r.beams.iter().copied())
                    .collect();
                if beams.is_empty() {
                    return Err(format!(
                        "{name}: BEAM dose {} names no beam: cannot check coverage",
                        short(&d.sop_instance_uid)
                    ));
                }
                for b in beams {
                    if let Some(other) = covered.insert(b, d) {
                        return Err(format!(
                            "{name}: beam {b} has two BEAM doses ({} and {}): refusing to double-count",
                            short(&other.sop_instance_uid),
                            short(&d.sop_instance_uid)
                        ));
                    }
                }
            }
            let have: BTreeSet<i64> = covered.keys().copied().collect();
            let missing: Vec<String> = needed.difference(&have).map(|b| b.to_string()).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "{name}: BEAM doses do not cover fraction group {} (beam(s) {} missing): refusing to sum an incomplete set",
                    fg.number,
                    missing.join(", ")
                ));
            }
            let extra: Vec<String> = have.difference(&needed).map(|b| b.to_string()).collect();
            if !extra.is_empty() {
                return Err(format!(
                    "{name}: BEAM doses for beam(s) {} that fraction group {} does not treat",
                    extra.join(", "),
                    fg.number
                ));
            }
            for d in distinct_headers(covered.values().copied()) {
                comps.push(component(d, 1.0));
            }
        }
        if comps.is_empty() {
            return Err(format!(
                "{name}: BEAM doses but the plan's fraction groups list no treatment beams"
            ));
        }
        reasons.push(format!(
            "{name}: {} BEAM doses cover every treatment beam: summed (taken as totals over the fraction group)",
            comps.len()
        ));
        let n = comps.len();
        return Ok(base(comps, format!("sum of {n} BEAM doses")));
    }
    Err(format!("{name}: no PLAN, FRACTION or BEAM dose"))
}

fn distinct_headers<'a>(it: impl Iterator<Item = &'a DoseHeader>) -> Vec<&'a DoseHeader> {
    let mut out: Vec<&DoseHeader> = Vec::new();
    for d in it {
        if !out.iter().any(|o| o.sop_instance_uid == d.sop_instance_uid) {
            out.push(d);
        }
    }
    out
}

/// A dose refers to fraction group `fg` of the plan when it says so, or
/// says nothing and the plan has only one group.
fn refers_to_group(d: &DoseHeader, plan_uid: &str, fg: i64, groups: usize) -> bool {
    d.referenced_plans
        .iter()
        .filter(|r| r.plan_uid == plan_uid)
        .any(|r| r.fraction_group == Some(fg) || (r.fraction_group.is_none() && groups == 1))
}

fn newest<'a>(list: &[&'a DoseHeader]) -> &'a DoseHeader {
    list.iter()
        .max_by(|a, b| {
            a.created
                .cmp(&b.created)
                .then(a.sop_instance_uid.cmp(&b.sop_instance_uid))
        })
        .copied()
        .unwrap_or(list[0])
}

/// Leaves out plans another plan replaces.
fn drop_replaced(
    mut per_plan: Vec<PlanDose>,
    plans: &[&Plan],
    settings: &DvhSettings,
    reasons: &mut Vec<String>,
) -> Vec<PlanDose> {
    if per_plan.len() < 2 {
        return per_plan;
    }
    let find = |uid: &str| plans.iter().find(|p| p.sop_instance_uid == uid).copied();
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for p in plans {
        for (other, rel) in &p.related_plans {
            if rel == "PREDECESSOR" && per_plan.iter().any(|d| &d.plan_uid == other) {
                reasons.push(format!(
                    "{} replaces {} (RTPlanRelationship PREDECESSOR): the older is not counted",
                    plan_name(p),
                    find(other).map(plan_name).unwrap_or_else(|| short(other))
                ));
                dropped.insert(other.clone());
            }
        }
    }
    if settings.sum_plans == SumPlans::Auto {
        // A replan without a reference: same prescription and fractions as
        // an older plan. Primary and boost differ in at least one.
        let mut ordered: Vec<&Plan> = plans.to_vec();
        ordered.sort_by(|a, b| a.date_time.cmp(&b.date_time));
        for (i, older) in ordered.iter().enumerate() {
            for newer in &ordered[i + 1..] {
                let key = |p: &Plan| {
                    let mut rx: Vec<String> = p
                        .prescriptions()
                        .0
                        .iter()
                        .map(|r| format!("{:.3}|{:?}|{}", r.dose_gy, r.roi_number, r.description))
                        .collect();
                    rx.sort();
                    (rx, p.total_fractions())
                };
                let (k_old, k_new) = (key(older), key(newer));
                if !k_old.0.is_empty()
                    && k_old == k_new
                    && !dropped.contains(&newer.sop_instance_uid)
                {
                    reasons.push(format!(
                        "{} has the prescription and fractions of the older {}: taken as its replan, the older is not counted",
                        plan_name(newer),
                        plan_name(older)
                    ));
                    dropped.insert(older.sop_instance_uid.clone());
                }
            }
        }
    }
    per_plan.retain(|d| !dropped.contains(&d.plan_uid));
    per_plan
}

/// Checks that the plans' doses can be combined and fills the choice.
fn finish(
    mut choice: DoseChoice,
    per_plan: Vec<PlanDose>,
    used: &[&Plan],
    plan_uids: Vec<String>,
    settings: &DvhSettings,
) -> DoseChoice {
    if per_plan.len() > 1 {
        let frames: BTreeSet<&str> = per_plan.iter().map(|d| d.frame.as_str()).collect();
        if frames.len() > 1 {
            return choice.failed(
                "the plans' doses lie on different frames of reference: never summed".into(),
            );
        }
        let types: BTreeSet<&str> = per_plan.iter().map(|d| d.dose_type.as_str()).collect();
        if types.len() > 1 {
            return choice
                .failed("the plans' doses mix PHYSICAL and EFFECTIVE: never summed".into());
        }
        if per_plan.iter().any(|d| d.units == "RELATIVE") {
            return choice.failed("relative doses of several plans cannot be summed".into());
        }
        match settings.sum_plans {
            SumPlans::Never => {
                return choice.failed(format!(
                    "{} plans have doses and dvh.sum_plans is never: no single dose to choose",
                    per_plan.len()
                ))
            }
            SumPlans::Auto | SumPlans::Always => choice.reasons.push(format!(
                "{} plans summed as one treatment (dvh.sum_plans: {})",
                per_plan.len(),
                // The spelling of the config file, not of the code.
                if settings.sum_plans == SumPlans::Auto {
                    "auto"
                } else {
                    "always"
                }
            )),
        }
    }
    let first = &per_plan[0];
    choice.absolute = per_plan.iter().all(|d| d.units != "RELATIVE");
    if !choice.absolute {
        choice
            .reasons
            .push("DoseUnits RELATIVE: no absolute dose metrics".into());
    }
    choice.dose_type = first.dose_type.clone();
    choice.frame_of_reference_uid = first.frame.clone();
    choice.description = if per_plan.len() == 1 {
        first.description.clone()
    } else {
        format!(
            "sum of {} plans ({})",
            per_plan.len(),
            per_plan
                .iter()
                .map(|d| d.description.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        )
    };
    choice.components = per_plan.iter().flat_map(|d| d.components.clone()).collect();
    choice.plan_uids = plan_uids;
    let mut rx: Vec<Prescription> = Vec::new();
    for p in used {
        let (list, notes) = p.prescriptions();
        choice
            .reasons
            .extend(notes.into_iter().map(|n| format!("{}: {n}", plan_name(p))));
        for r in list {
            // Summed plans prescribing to the same ROI (or site) add up.
            match rx.iter_mut().find(|o| {
                o.plan_uid != r.plan_uid
                    && o.roi_number == r.roi_number
                    && (o.roi_number.is_some() || o.description == r.description)
            }) {
                Some(o) => {
                    choice.reasons.push(format!(
                        "prescriptions to {:?} of summed plans added: {} + {} Gy",
                        r.description, o.dose_gy, r.dose_gy
                    ));
                    o.dose_gy += r.dose_gy;
                }
                None => rx.push(r),
            }
        }
    }
    if rx.is_empty() {
        choice
            .reasons
            .push("no target prescription in the plan(s)".into());
    }
    choice.prescriptions = rx;
    choice
}
