//! Which dose a course's DVH uses: every rule of `select_dose`, on headers
//! and plans built in memory, and the plan sum of `assemble_dose`.

use ndarray::Array3;
use rtnode::dvh::settings::{DoseTypePreference, SumPlans};
use rtnode::dvh::{assemble_dose, select_dose, DvhSettings};
use rtnode::rt::plan::{Beam, DoseReference, FractionGroup};
use rtnode::rt::rtdose::{DoseHeader, GridGeometry, PlanReference};
use rtnode::rt::{DoseGrid, Plan};

const FOR: &str = "1.2.3.100";

fn plan(uid: &str, fractions: Option<u32>, beams: &[i64], rx: f64) -> Plan {
    Plan {
        sop_instance_uid: uid.into(),
        frame_of_reference_uid: FOR.into(),
        label: uid.into(),
        name: String::new(),
        date_time: "20240101120000".into(),
        intent: "CURATIVE".into(),
        approval_status: "APPROVED".into(),
        fraction_groups: vec![FractionGroup {
            number: 1,
            fractions_planned: fractions,
            beams: beams.to_vec(),
            brachy_setups: 0,
        }],
        beams: beams
            .iter()
            .map(|b| Beam {
                number: *b,
                name: format!("B{b}"),
                delivery_type: "TREATMENT".into(),
            })
            .collect(),
        dose_references: vec![DoseReference {
            number: Some(1),
            structure_type: "VOLUME".into(),
            description: "PTV".into(),
            reference_type: "TARGET".into(),
            target_prescription_dose: Some(rx),
            referenced_roi_number: Some(7),
        }],
        related_plans: Vec::new(),
        referenced_structure_set: None,
    }
}

fn dose(uid: &str, kind: &str, plan: Option<&str>, beams: &[i64]) -> DoseHeader {
    DoseHeader {
        sop_instance_uid: uid.into(),
        series_instance_uid: "1.2.3.200".into(),
        frame_of_reference_uid: FOR.into(),
        units: "GY".into(),
        dose_type: "PHYSICAL".into(),
        summation_type: kind.into(),
        referenced_plans: plan
            .map(|p| {
                vec![PlanReference {
                    plan_uid: p.into(),
                    fraction_group: (kind == "FRACTION" || kind == "BEAM").then_some(1),
                    beams: beams.to_vec(),
                }]
            })
            .unwrap_or_default(),
        referenced_structure_set: None,
        created: "20240101120000".into(),
    }
}

fn uids(c: &rtnode::dvh::DoseChoice) -> Vec<(String, f64)> {
    c.components
        .iter()
        .map(|c| (c.dose_uid.clone(), c.factor))
        .collect()
}

#[test]
fn plan_beats_fraction_and_beam() {
    let p = plan("P1", Some(25), &[1, 2], 50.0);
    let doses = [
        dose("D-beam1", "BEAM", Some("P1"), &[1]),
        dose("D-beam2", "BEAM", Some("P1"), &[2]),
        dose("D-frac", "FRACTION", Some("P1"), &[]),
        dose("D-plan", "PLAN", Some("P1"), &[]),
    ];
    let c = select_dose(&doses, &[p], &DvhSettings::default());
    assert!(c.is_chosen(), "{:?}", c.reasons);
    assert_eq!(uids(&c), vec![("D-plan".to_string(), 1.0)]);
    assert!(
        c.reasons.iter().any(|r| r.contains("PLAN beats")),
        "{:?}",
        c.reasons
    );
    assert_eq!(c.prescriptions.len(), 1);
    assert_eq!(
        (c.prescriptions[0].dose_gy, c.prescriptions[0].roi_number),
        (50.0, Some(7))
    );
}

#[test]
fn fraction_dose_is_multiplied_by_the_fractions() {
    let p = plan("P1", Some(25), &[1, 2], 50.0);
    let c = select_dose(
        &[dose("D-frac", "FRACTION", Some("P1"), &[])],
        &[p],
        &DvhSettings::default(),
    );
    assert_eq!(uids(&c), vec![("D-frac".to_string(), 25.0)]);
    assert!(c.description.contains("× 25"), "{}", c.description);
    let no_count = plan("P1", None, &[1, 2], 50.0);
    let c = select_dose(
        &[dose("D-frac", "FRACTION", Some("P1"), &[])],
        &[no_count],
        &DvhSettings::default(),
    );
    assert!(
        c.failure
            .as_deref()
            .unwrap()
            .contains("NumberOfFractionsPlanned"),
        "{:?}",
        c.failure
    );
}

#[test]
fn beam_doses_are_summed_only_when_they_cover_the_fraction_group() {
    let mut p = plan("P1", Some(25), &[1, 2, 3], 50.0);
    // Beam 3 is a setup field: no dose is expected for it.
    p.beams[2].delivery_type = "SETUP".into();
    let s = DvhSettings::default();
    let both = [
        dose("D1", "BEAM", Some("P1"), &[1]),
        dose("D2", "BEAM", Some("P1"), &[2]),
    ];
    let c = select_dose(&both, std::slice::from_ref(&p), &s);
    assert!(c.is_chosen(), "{:?}", c.reasons);
    assert_eq!(
        uids(&c),
        vec![("D1".to_string(), 1.0), ("D2".to_string(), 1.0)]
    );

    let c = select_dose(&both[..1], std::slice::from_ref(&p), &s);
    let f = c.failure.expect("incomplete beam set must fail closed");
    assert!(f.contains("beam(s) 2 missing"), "{f}");
    assert!(c.components.is_empty());

    let twice = [
        dose("D1", "BEAM", Some("P1"), &[1]),
        dose("D12", "BEAM", Some("P1"), &[1, 2]),
    ];
    let f = select_dose(&twice, std::slice::from_ref(&p), &s)
        .failure
        .unwrap();
    assert!(f.contains("beam 1 has two BEAM doses"), "{f}");

    let extra = [
        dose("D12", "BEAM", Some("P1"), &[1, 2]),
        dose("D9", "BEAM", Some("P1"), &[9]),
    ];
    let f = select_dose(&extra, std::slice::from_ref(&p), &s)
        .failure
        .unwrap();
    assert!(f.contains("does not treat"), "{f}");

    // Without the plan, beam coverage cannot be checked.
    let f = select_dose(&both, &[], &s).failure.unwrap();
    assert!(f.contains("not available"), "{f}");
}

#[test]
fn effective_and_physical_are_never_summed() {
    let p = plan("P1", Some(25), &[1], 50.0);
    let mut eff = dose("D-eff", "PLAN", Some("P1"), &[]);
    eff.dose_type = "EFFECTIVE".into();
    let phys = dose("D-phys", "PLAN", Some("P1"), &[]);
    let both = [eff.clone(), phys.clone()];
    let c = select_dose(&both, std::slice::from_ref(&p), &DvhSettings::default());
    assert_eq!(uids(&c), vec![("D-phys".to_string(), 1.0)]);
    assert_eq!(c.dose_type, "PHYSICAL");
    let want_eff = DvhSettings {
        dose_type: DoseTypePreference::Effective,
        ..DvhSettings::default()
    };
    let c = select_dose(&both, std::slice::from_ref(&p), &want_eff);
    assert_eq!(uids(&c), vec![("D-eff".to_string(), 1.0)]);

    // Two plans, one with only an EFFECTIVE dose: not summed.
    let mut p2 = plan("P2", Some(5), &[1], 10.0);
    p2.dose_references[0].referenced_roi_number = Some(8);
    let mut eff2 = dose("D-eff2", "PLAN", Some("P2"), &[]);
    eff2.dose_type = "EFFECTIVE".into();
    let c = select_dose(&[phys, eff2], &[p, p2], &DvhSettings::default());
    assert!(c.failure.unwrap().contains("PHYSICAL and EFFECTIVE"));
}

#[test]
fn relative_dose_gives_no_absolute_metrics_and_loses_to_gy() {
    let p = plan("P1", Some(25), &[1], 50.0);
    let mut rel = dose("D-rel", "PLAN", Some("P1"), &[]);
    rel.units = "RELATIVE".into();
    let c = select_dose(
        std::slice::from_ref(&rel),
        std::slice::from_ref(&p),
        &DvhSettings::default(),
    );
    assert!(c.is_chosen());
    assert!(!c.absolute);
    let gy = dose("D-gy", "PLAN", Some("P1"), &[]);
    let c = select_dose(&[rel, gy], &[p], &DvhSettings::default());
    assert_eq!(uids(&c), vec![("D-gy".to_string(), 1.0)]);
    assert!(c.absolute);
}

#[test]
fn a_dose_without_plan_reference_is_never_attached() {
    let p = plan("P1", Some(25), &[1], 50.0);
    let orphan = dose("D-orphan", "PLAN", None, &[]);
    let c = select_dose(
        std::slice::from_ref(&orphan),
        std::slice::from_ref(&p),
        &DvhSettings::default(),
    );
    assert!(!c.is_chosen());
    assert!(c
        .excluded
        .iter()
        .any(|(u, why)| u == "D-orphan" && why.contains("no plan reference")));
    // Next to a referenced dose it is left out, and said so.
    let c = select_dose(
        &[orphan, dose("D-plan", "PLAN", Some("P1"), &[])],
        &[p],
        &DvhSettings::default(),
    );
    assert_eq!(uids(&c), vec![("D-plan".to_string(), 1.0)]);
    assert!(c.reasons.iter().any(|r| r.contains("no plan reference")));
}

#[test]
fn plans_are_summed_as_one_treatment_unless_told_not_to() {
    let primary = plan("P1", Some(25), &[1], 50.0);
    let mut boost = plan("P2", Some(5), &[1], 10.0);
    boost.dose_references[0].referenced_roi_number = Some(8);
    boost.date_time = "20240201120000".into();
    let doses = [
        dose("D1", "PLAN", Some("P1"), &[]),
        dose("D2", "PLAN", Some("P2"), &[]),
    ];
    let plans = [primary, boost];
    let c = select_dose(&doses, &plans, &DvhSettings::default());
    assert!(c.is_chosen(), "{:?}", c.reasons);
    assert_eq!(uids(&c).len(), 2);
    assert!(
        c.description.starts_with("sum of 2 plans"),
        "{}",
        c.description
    );
    assert_eq!(c.prescriptions.len(), 2);
    let never = DvhSettings {
        sum_plans: SumPlans::Never,
        ..DvhSettings::default()
    };
    assert!(select_dose(&doses, &plans, &never)
        .failure
        .unwrap()
        .contains("sum_plans is never"));

    // Different frames of reference: never summed.
    let mut other = doses.clone();
    other[1].frame_of_reference_uid = "9.9.9".into();
    assert!(select_dose(&other, &plans, &DvhSettings::default())
        .failure
        .unwrap()
        .contains("different frames of reference"));
}

#[test]
fn a_replan_is_not_double_counted() {
    let old = plan("P-old", Some(25), &[1], 50.0);
    let mut new = plan("P-new", Some(25), &[1], 50.0);
    new.date_time = "20240301120000".into();
    let doses = [
        dose("D-old", "PLAN", Some("P-old"), &[]),
        dose("D-new", "PLAN", Some("P-new"), &[]),
    ];
    // Same prescription and fractions, no reference: the newer is the replan.
    let c = select_dose(&doses, &[old.clone(), new.clone()], &DvhSettings::default());
    assert_eq!(uids(&c), vec![("D-new".to_string(), 1.0)]);
    assert!(
        c.reasons.iter().any(|r| r.contains("replan")),
        "{:?}",
        c.reasons
    );
    // A PREDECESSOR reference says so explicitly, whatever the prescriptions.
    let mut new2 = plan("P-new", Some(20), &[1], 40.0);
    new2.related_plans = vec![("P-old".into(), "PREDECESSOR".into())];
    let c = select_dose(&doses, &[old, new2], &DvhSettings::default());
    assert_eq!(uids(&c), vec![("D-new".to_string(), 1.0)]);
    assert!(c.reasons.iter().any(|r| r.contains("PREDECESSOR")));
}

#[test]
fn multi_plan_dose_is_used_as_is() {
    let p1 = plan("P1", Some(25), &[1], 50.0);
    let p2 = plan("P2", Some(5), &[1], 10.0);
    let mut multi = dose("D-multi", "MULTI_PLAN", Some("P1"), &[]);
    multi.referenced_plans.push(PlanReference {
        plan_uid: "P2".into(),
        fraction_group: None,
        beams: Vec::new(),
    });
    let doses = [dose("D1", "PLAN", Some("P1"), &[]), multi];
    let c = select_dose(&doses, &[p1, p2], &DvhSettings::default());
    assert_eq!(uids(&c), vec![("D-multi".to_string(), 1.0)]);
    assert_eq!(c.plan_uids, vec!["P1".to_string(), "P2".to_string()]);
}

#[test]
fn verification_plans_are_left_out() {
    let mut qa = plan("P-qa", Some(1), &[1], 2.0);
    qa.intent = "VERIFICATION".into();
    let c = select_dose(
        &[dose("D-qa", "PLAN", Some("P-qa"), &[])],
        &[qa],
        &DvhSettings::default(),
    );
    assert!(!c.is_chosen());
    assert!(c.reasons.iter().any(|r| r.contains("VERIFICATION")));
}

fn grid(uid: &str, x0: f64, h: f64, n: usize, value: f32) -> DoseGrid {
    let mut header = dose(uid, "FRACTION", Some("P1"), &[]);
    header.sop_instance_uid = uid.into();
    let geometry = GridGeometry {
        x0,
        dx: h,
        nx: n,
        y0: x0,
        dy: h,
        ny: n,
        z: (0..n).map(|k| x0 + k as f64 * h).collect(),
        z_margin: [h / 2.0, h / 2.0],
    };
    DoseGrid::from_array(header, geometry, Array3::from_elem((n, n, n), value)).unwrap()
}

#[test]
fn summed_doses_land_on_the_finest_grid() {
    let mut p1 = plan("P1", Some(25), &[1], 50.0);
    p1.dose_references[0].referenced_roi_number = Some(7);
    let mut p2 = plan("P2", Some(2), &[1], 4.0);
    p2.dose_references[0].referenced_roi_number = Some(7);
    p2.date_time = "20240201120000".into();
    let d1 = dose("G1", "FRACTION", Some("P1"), &[]);
    let d2 = dose("G2", "FRACTION", Some("P2"), &[]);
    let c = select_dose(&[d1, d2], &[p1, p2], &DvhSettings::default());
    assert!(c.is_chosen(), "{:?}", c.reasons);
    // Same target ROI in both plans: the prescriptions add.
    assert_eq!(c.prescriptions.len(), 1);
    assert_eq!(c.prescriptions[0].dose_gy, 54.0);
    // 2 Gy/fraction on a 3 mm grid, 1 Gy/fraction on a finer 2 mm grid
    // that covers only part of it.
    let coarse = grid("G1", -30.0, 3.0, 21, 2.0);
    let fine = grid("G2", -10.0, 2.0, 11, 1.0);
    let sum = assemble_dose(&c, &[coarse, fine]).unwrap();
    assert_eq!((sum.geometry.dx, sum.geometry.dy), (2.0, 2.0));
    let b = sum.geometry.bounds();
    assert!(b[0][0] <= -31.5 && b[0][1] >= 31.5, "{b:?}");
    let at = |x: f64| sum.sample(x, x, x).unwrap();
    assert!((at(0.0) - (25.0 * 2.0 + 2.0 * 1.0)).abs() < 1e-4);
    assert!((at(25.0) - 25.0 * 2.0).abs() < 1e-4);
    assert_eq!(
        sum.provenance.dose_uids,
        vec!["G1".to_string(), "G2".to_string()]
    );
}
