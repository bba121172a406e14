//! Metrics around the histogram: prescriptions per target, relative doses,
//! constraints, derived structures with margins.
//!
//! Shapes and doses are chosen so that every expected value is exact or has
//! a stated tolerance: a uniform dose makes every dose metric equal to it;
//! spheres give closed-form volumes.

use std::f64::consts::PI;

use ndarray::Array3;
use rtnode::dvh::settings::{DerivedSource, DerivedSpec, Margin, MissingSource};
use rtnode::dvh::{compute, DvhSettings, RoiStatus};
use rtnode::rt::plan::Prescription;
use rtnode::rt::rtdose::{DoseHeader, GridGeometry};
use rtnode::rt::shape::BoolOp;
use rtnode::rt::{ContourPlane, DoseGrid, Roi, RtStruct};

fn sphere(number: i64, name: &str, c: [f64; 3], r: f64, t: f64) -> Roi {
    let n = (2.0 * r / t).round() as usize;
    let planes = (0..n)
        .map(|k| {
            let dz = -r + t * (k as f64 + 0.5);
            let rr = (r * r - dz * dz).sqrt();
            ContourPlane {
                z: c[2] + dz,
                polygons: vec![(0..360)
                    .map(|a| {
                        let a = (a as f64).to_radians();
                        [c[0] + rr * a.cos(), c[1] + rr * a.sin()]
                    })
                    .collect()],
            }
        })
        .collect();
    Roi::from_planes(number, name, planes)
}

/// A cylinder along z, contoured at slab centres so that with half-slice
/// end caps the structure is exactly the cylinder.
fn cylinder(number: i64, name: &str, c: [f64; 3], r: f64, h: f64, t: f64) -> Roi {
    let n = (h / t).round() as usize;
    let planes = (0..n)
        .map(|k| ContourPlane {
            z: c[2] - h / 2.0 + t * (k as f64 + 0.5),
            polygons: vec![(0..360)
                .map(|a| {
                    let a = (a as f64).to_radians();
                    [c[0] + r * a.cos(), c[1] + r * a.sin()]
                })
                .collect()],
        })
        .collect();
    Roi::from_planes(number, name, planes)
}

fn uniform(value: f32, units: &str) -> DoseGrid {
    let n = 41;
    let header = DoseHeader {
        sop_instance_uid: "1.2.3.4".into(),
        series_instance_uid: "1.2.3".into(),
        frame_of_reference_uid: "1.2.3.9".into(),
        units: units.into(),
        dose_type: "PHYSICAL".into(),
        summation_type: "PLAN".into(),
        referenced_plans: Vec::new(),
        referenced_structure_set: None,
        created: String::new(),
    };
    let geometry = GridGeometry {
        x0: -60.0,
        dx: 3.0,
        nx: n,
        y0: -60.0,
        dy: 3.0,
        ny: n,
        z: (0..n).map(|k| -60.0 + 3.0 * k as f64).collect(),
        z_margin: [1.5, 1.5],
    };
    DoseGrid::from_array(header, geometry, Array3::from_elem((n, n, n), value)).unwrap()
}

fn rx(dose_gy: f64, roi: Option<i64>, what: &str) -> Prescription {
    Prescription {
        dose_gy,
        roi_number: roi,
        description: what.into(),
        plan_uid: "1.2.3.7".into(),
    }
}

fn structures() -> RtStruct {
    RtStruct::from_rois(
        "1.2.3.5",
        "1.2.3.9",
        vec![
            sphere(1, "PTV_60", [-20.0, 0.0, 0.0], 12.0, 2.0),
            sphere(2, "PTV_50", [20.0, 0.0, 0.0], 12.0, 2.0),
            cylinder(3, "Cord", [0.0, 30.0, 0.0], 8.0, 16.0, 2.0),
            cylinder(4, "Big", [0.0, -45.0, 0.0], 20.0, 40.0, 2.0),
        ],
    )
}

#[test]
fn simultaneous_boost_has_relative_metrics_per_target() {
    let mut dose = uniform(57.0, "GY");
    dose.provenance.prescriptions = vec![rx(60.0, Some(1), "PTV_60"), rx(50.0, Some(2), "PTV_50")];
    let report = compute(&structures(), &dose, &DvhSettings::default()).unwrap();
    let m = |roi: usize, k: &str| report.rois[roi].metrics.get(k);
    // Each target against its own prescription, under the plain names.
    assert!((m(0, "Dmean_pctRx").unwrap() - 95.0).abs() < 1e-6);
    assert!((m(0, "V95%Rx_pct").unwrap() - 100.0).abs() < 1e-6);
    assert_eq!(m(0, "V100%Rx_pct"), Some(0.0));
    assert!((m(1, "Dmean_pctRx").unwrap() - 114.0).abs() < 1e-6);
    // An organ gets both, labelled by target.
    assert!((m(2, "Dmax_pctRx@PTV_60").unwrap() - 95.0).abs() < 1e-6);
    assert!((m(2, "Dmax_pctRx@PTV_50").unwrap() - 114.0).abs() < 1e-6);
    assert!(m(2, "Dmax_pctRx").is_none());
    // Uniform dose: every dose metric is the dose, HI and spread are 0.
    for k in [
        "Dmin", "Dmean", "Dmax", "D99", "D50", "D1", "D0.03cc", "D0.1cc",
    ] {
        assert!((m(2, k).unwrap() - 57.0).abs() < 1e-4, "{k}");
    }
    assert!(m(2, "HI").unwrap().abs() < 1e-6);
    let v = m(2, "volume_cc").unwrap();
    assert!((v / (PI * 64.0 * 16.0 / 1000.0) - 1.0).abs() < 0.01, "{v}");
    assert!((m(2, "integral_dose_gycc").unwrap() - 57.0 * v).abs() < 1e-6 * 57.0 * v);
    assert!((m(2, "V57Gy_pct").unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(m(2, "V58Gy"), Some(0.0));
    // D5cc of a 3.2 cc structure does not exist.
    assert!(m(2, "D1cc").is_some());
    let s = DvhSettings {
        d_cc: vec![5.0],
        ..DvhSettings::default()
    };
    let report = compute(&structures(), &dose, &s).unwrap();
    let cord = &report.rois[2].metrics.0;
    assert!(cord.iter().any(|(k, v)| k == "D5cc" && v.is_none()));
}

#[test]
fn configured_prescription_and_unknown_prescription() {
    let dose = uniform(40.0, "GY");
    let report = compute(&structures(), &dose, &DvhSettings::default()).unwrap();
    assert!(report.prescriptions.is_empty());
    assert!(report.rois[0].metrics.get("Dmean_pctRx").is_none());
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("prescription unknown")));
    let s = DvhSettings {
        prescription: Some(50.0),
        ..DvhSettings::default()
    };
    let report = compute(&structures(), &dose, &s).unwrap();
    assert!((report.rois[0].metrics.get("Dmean_pctRx").unwrap() - 80.0).abs() < 1e-6);
}

#[test]
fn relative_dose_reports_volumes_only() {
    let dose = uniform(0.8, "RELATIVE");
    let report = compute(&structures(), &dose, &DvhSettings::default()).unwrap();
    assert!(!report.absolute);
    let m = &report.rois[0].metrics;
    assert!(m.get("volume_cc").unwrap() > 0.0);
    assert!(m.get("Dmean").is_none() && m.get("V20Gy").is_none());
}

#[test]
fn constraints_pass_fail_and_unmatched() {
    let dose = uniform(46.0, "GY");
    let s = DvhSettings {
        constraints: vec![
            "Cord: Dmax < 45 Gy".into(),
            "PTV*: Dmin >= 45 Gy".into(),
            "Bladder: Dmean < 10".into(),
        ],
        ..DvhSettings::default()
    };
    let report = compute(&structures(), &dose, &s).unwrap();
    let res: Vec<(String, Option<bool>)> = report
        .constraints
        .iter()
        .map(|c| (c.roi.clone(), c.pass))
        .collect();
    assert_eq!(
        res,
        vec![
            ("Cord".to_string(), Some(false)),
            ("PTV_60".to_string(), Some(true)),
            ("PTV_50".to_string(), Some(true)),
            (String::new(), None),
        ]
    );
}

#[test]
fn frames_of_reference_must_agree() {
    let mut dose = uniform(1.0, "GY");
    dose.header.frame_of_reference_uid = "9.9.9".into();
    let err = compute(&structures(), &dose, &DvhSettings::default()).unwrap_err();
    assert!(format!("{err}").contains("frame of reference"));
}

/// Derived structures on a 0.5 mm derived lattice: volumes within 3 % of
/// the exact solids (sources are contoured on 2 mm planes as 360-gons, so
/// that the cylinder is modelled exactly, and margins are applied on
/// 0.5 mm voxels; at the default 1 mm, a 10 cc ring moves by ±2 % as the
/// margin's threshold crosses shells of voxel centres).
#[test]
fn derived_structures_with_margins() {
    let spec = |name: &str, op, sources: Vec<DerivedSource>, margin, missing| DerivedSpec {
        name: name.into(),
        op,
        sources,
        margin_mm: margin,
        missing,
    };
    let n = |s: &str| DerivedSource::Name(s.into());
    let iso = Margin::Iso;
    let skip = MissingSource::Skip;
    let s = DvhSettings {
        derived: vec![
            spec(
                "PTVs",
                BoolOp::Union,
                vec![n("PTV_60"), n("ptv_50")],
                iso(0.0),
                skip,
            ),
            spec("Cord_PRV", BoolOp::Union, vec![n("Cord")], iso(4.0), skip),
            spec("Big_shrunk", BoolOp::Union, vec![n("Big")], iso(-5.0), skip),
            spec(
                "Ring",
                BoolOp::Subtraction,
                vec![
                    DerivedSource::WithMargin {
                        roi: "Cord".into(),
                        margin_mm: iso(5.0),
                    },
                    n("Cord"),
                ],
                iso(0.0),
                skip,
            ),
            spec(
                "Overlap",
                BoolOp::Intersection,
                vec![n("Cord_PRV"), n("PTVs")],
                iso(0.0),
                skip,
            ),
            spec(
                "Cord_long",
                BoolOp::Union,
                vec![n("Cord")],
                Margin::Axes([0.0, 0.0, 6.0]),
                skip,
            ),
            spec(
                "NoSuch",
                BoolOp::Union,
                vec![n("Bladder"), n("Cord")],
                iso(0.0),
                skip,
            ),
            spec(
                "Partly",
                BoolOp::Union,
                vec![n("Bladder"), n("Cord")],
                iso(0.0),
                MissingSource::Partial,
            ),
        ],
        derived_step_mm: 0.5,
        ..DvhSettings::default()
    };
    let report = compute(&structures(), &uniform(10.0, "GY"), &s).unwrap();
    let get = |name: &str| report.rois.iter().find(|r| r.name == name).unwrap();
    let vol = |name: &str| get(name).metrics.get("volume_cc").unwrap();
    let ball = |r: f64| 4.0 / 3.0 * PI * r * r * r / 1000.0;
    let cyl = |r: f64, h: f64| PI * r * r * h / 1000.0;
    // A convex body grown by m (Steiner): V + S m + M m² + 4/3 π m³, with
    // for a cylinder S = 2πr² + 2πrh and M = πh + π²r.
    let grown_cyl = |r: f64, h: f64, m: f64| {
        (PI * r * r * h
            + (2.0 * PI * r * r + 2.0 * PI * r * h) * m
            + (PI * h + PI * PI * r) * m * m
            + 4.0 / 3.0 * PI * m * m * m)
            / 1000.0
    };
    let close = |name: &str, exact: f64| {
        let v = vol(name);
        eprintln!(
            "{name}: {v} vs {exact} ({:+.2} %)",
            100.0 * (v / exact - 1.0)
        );
        assert!((v / exact - 1.0).abs() < 0.03, "{name}: {v} vs {exact}");
    };
    close("PTVs", 2.0 * ball(12.0));
    close("Partly", cyl(8.0, 16.0));
    close("Cord_PRV", grown_cyl(8.0, 16.0, 4.0));
    close("Big_shrunk", cyl(15.0, 30.0));
    close("Ring", grown_cyl(8.0, 16.0, 5.0) - cyl(8.0, 16.0));
    // Grown along z only: a longer cylinder.
    close("Cord_long", cyl(8.0, 28.0));
    assert_eq!(
        vol("Overlap"),
        0.0,
        "the cord PRV stays clear of the targets"
    );
    assert_eq!(get("NoSuch").status, RoiStatus::Skipped);
    assert!(get("NoSuch").notes.iter().any(|n| n.contains("Bladder")));
    assert_eq!(get("Partly").status, RoiStatus::Partial);
    assert_eq!(get("Ring").metrics.get("Dmean"), Some(10.0));
}

/// A primary plan to PTV_50 and a sequential boost plan to PTV_boost
/// inside it, summed: the boost target's prescription is the two plans'
/// together (50 + 16 = 66 Gy), the primary target's stays 50 Gy, and a
/// second boost target outside PTV_50 keeps its own.
#[test]
fn sequential_boost_targets_add_the_primary_prescription() {
    let rs = RtStruct::from_rois(
        "1.2.3.5",
        "1.2.3.9",
        vec![
            sphere(1, "PTV_50", [0.0, 0.0, 0.0], 24.0, 2.0),
            sphere(2, "PTV_boost", [4.0, 0.0, 0.0], 8.0, 2.0),
            sphere(3, "PTV_node", [0.0, 44.0, 0.0], 8.0, 2.0),
        ],
    );
    let mut dose = uniform(66.0, "GY");
    let plan = |dose_gy: f64, roi: i64, what: &str, plan: &str| Prescription {
        dose_gy,
        roi_number: Some(roi),
        description: what.into(),
        plan_uid: plan.into(),
    };
    dose.provenance.prescriptions = vec![
        plan(50.0, 1, "PTV_50", "1.2.3.70"),
        plan(16.0, 2, "PTV_boost", "1.2.3.71"),
        plan(16.0, 3, "PTV_node", "1.2.3.71"),
    ];
    let report = compute(&rs, &dose, &DvhSettings::default()).unwrap();
    let rx: Vec<(String, f64)> = report
        .prescriptions
        .iter()
        .map(|p| (p.description.clone(), p.dose_gy))
        .collect();
    assert_eq!(
        rx,
        [
            ("PTV_50".to_string(), 50.0),
            ("PTV_boost".to_string(), 66.0),
            ("PTV_node".to_string(), 16.0)
        ]
    );
    let m = |roi: usize, k: &str| report.rois[roi].metrics.get(k).unwrap();
    assert!((m(1, "Dmean_pctRx") - 100.0).abs() < 1e-6);
    assert!((m(0, "Dmean_pctRx") - 132.0).abs() < 1e-6);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("sequential boost") && n.contains("PTV_50")),
        "{:?}",
        report.notes
    );

    // One plan with two targets is a simultaneous boost: nothing is added.
    let mut dose = uniform(66.0, "GY");
    dose.provenance.prescriptions = vec![
        plan(60.0, 2, "PTV_boost", "1.2.3.70"),
        plan(50.0, 1, "PTV_50", "1.2.3.70"),
    ];
    let report = compute(&rs, &dose, &DvhSettings::default()).unwrap();
    let total: f64 = report.prescriptions.iter().map(|p| p.dose_gy).sum();
    assert_eq!(total, 110.0);
}
