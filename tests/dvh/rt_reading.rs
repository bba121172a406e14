//! Reading RT objects as real files come: every patient orientation of a
//! dose grid, absolute and relative frame offsets, 16- and 32-bit, signed,
//! implicit VR / big endian / RLE, files without a meta group, and
//! structure sets with holes, points, duplicates and disorder.

use std::path::PathBuf;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use rtnode::rt::{DoseGrid, Plan, RtStruct};

/// A dose that tells the axes apart: trilinear reproduces it exactly.
fn field(p: [f64; 3]) -> f64 {
    100.0 + 0.5 * p[0] + 0.25 * p[1] + 0.125 * p[2]
}

fn ds(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(v.iter().map(|x| format!("{x}")).collect())
}

struct Spec {
    iop: [f64; 6],
    ipp: [f64; 3],
    offsets: Vec<f64>,
    bits: u16,
    signed: bool,
}

/// Coarse enough for the field (~100–120 Gy) to fit signed 16 bits.
fn scaling_for(bits: u16) -> f64 {
    if bits == 16 {
        0.004
    } else {
        0.001
    }
}

fn rtdose(spec: &Spec) -> dicom_object::DefaultDicomObject {
    let (rows, cols) = (4usize, 5usize);
    let ps = [2.0, 3.0]; // row spacing, column spacing
    let row = [spec.iop[0], spec.iop[1], spec.iop[2]];
    let col = [spec.iop[3], spec.iop[4], spec.iop[5]];
    let n = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let absolute = spec.offsets[0] != 0.0;
    let scaling = scaling_for(spec.bits);
    let mut bytes = Vec::new();
    for off in &spec.offsets {
        for r in 0..rows {
            for c in 0..cols {
                let mut p = [0.0; 3];
                for a in 0..3 {
                    p[a] = spec.ipp[a] + c as f64 * ps[1] * row[a] + r as f64 * ps[0] * col[a];
                }
                if absolute {
                    p[2] = *off;
                } else {
                    for a in 0..3 {
                        p[a] += off * n[a];
                    }
                }
                let v = (field(p) / scaling).round();
                match (spec.bits, spec.signed) {
                    (16, false) => bytes.extend_from_slice(&(v as u16).to_le_bytes()),
                    (16, true) => bytes.extend_from_slice(&(v as i16).to_le_bytes()),
                    (_, false) => bytes.extend_from_slice(&(v as u32).to_le_bytes()),
                    (_, true) => bytes.extend_from_slice(&(v as i32).to_le_bytes()),
                }
            }
        }
    }
    let mut o = InMemDicomObject::new_empty();
    let mut put = |t: Tag, vr: VR, v: PrimitiveValue| o.put(DataElement::new(t, vr, v));
    put(tags::SOP_CLASS_UID, VR::UI, uids::RT_DOSE_STORAGE.into());
    put(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4".into());
    put(tags::MODALITY, VR::CS, "RTDOSE".into());
    put(tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.3.9".into());
    put(tags::IMAGE_POSITION_PATIENT, VR::DS, ds(&spec.ipp));
    put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds(&spec.iop));
    put(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        spec.offsets.len().to_string().into(),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows as u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(cols as u16));
    put(tags::PIXEL_SPACING, VR::DS, ds(&ps));
    put(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(spec.bits),
    );
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(spec.bits));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(spec.bits - 1));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(u16::from(spec.signed)),
    );
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(tags::DOSE_UNITS, VR::CS, "GY".into());
    put(tags::DOSE_TYPE, VR::CS, "PHYSICAL".into());
    put(tags::DOSE_SUMMATION_TYPE, VR::CS, "PLAN".into());
    put(tags::GRID_FRAME_OFFSET_VECTOR, VR::DS, ds(&spec.offsets));
    put(tags::DOSE_GRID_SCALING, VR::DS, ds(&[scaling]));
    put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(bytes.into()));
    o.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::IMPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(uids::RT_DOSE_STORAGE)
            .media_storage_sop_instance_uid("1.2.3.4"),
    )
    .unwrap()
}

/// Every node of the file, at its patient position, reads back the field.
fn check_orientation(name: &str, iop: [f64; 6]) {
    let spec = Spec {
        iop,
        ipp: [-10.0, 20.0, -30.0],
        offsets: vec![0.0, 2.5, 5.0],
        bits: 32,
        signed: false,
    };
    let grid = DoseGrid::from_object(&rtdose(&spec)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let g = &grid.geometry;
    assert!(
        g.dx > 0.0 && g.dy > 0.0 && g.z.windows(2).all(|w| w[1] > w[0]),
        "{name}"
    );
    assert_eq!(g.nx * g.ny * g.nz(), 4 * 5 * 3, "{name}");
    for k in 0..g.nz() {
        for j in 0..g.ny {
            for i in 0..g.nx {
                let p = [g.x(i), g.y(j), g.z[k]];
                let got = f64::from(grid.data[[k, j, i]]);
                assert!(
                    (got - field(p)).abs() < 2e-3,
                    "{name}: node {p:?} holds {got}, field {}",
                    field(p)
                );
            }
        }
    }
    // Between nodes, trilinear interpolation of a linear field is exact.
    let b = g.bounds();
    let mid = [
        0.5 * (b[0][0] + b[0][1]) + 0.3,
        0.5 * (b[1][0] + b[1][1]) - 0.2,
        0.5 * (b[2][0] + b[2][1]) + 0.7,
    ];
    assert!(
        (grid.sample(mid[0], mid[1], mid[2]).unwrap() - field(mid)).abs() < 2e-3,
        "{name}"
    );
}

#[test]
fn every_axial_patient_position() {
    for (name, iop) in [
        ("HFS", [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        ("FFS", [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        ("HFP", [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]),
        ("FFP", [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]),
        ("HFDL", [0.0, -1.0, 0.0, 1.0, 0.0, 0.0]),
        ("HFDR", [0.0, 1.0, 0.0, -1.0, 0.0, 0.0]),
        ("FFDL", [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
        ("FFDR", [0.0, -1.0, 0.0, -1.0, 0.0, 0.0]),
    ] {
        check_orientation(name, iop);
    }
}

#[test]
fn oblique_and_non_axial_grids_are_refused() {
    let c = std::f64::consts::FRAC_1_SQRT_2;
    for iop in [[c, c, 0.0, -c, c, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]] {
        let spec = Spec {
            iop,
            ipp: [0.0; 3],
            offsets: vec![0.0, 2.0],
            bits: 32,
            signed: false,
        };
        assert!(DoseGrid::from_object(&rtdose(&spec)).is_err(), "{iop:?}");
    }
}

#[test]
fn absolute_offsets_16_bit_and_signed() {
    for (bits, signed) in [(16, false), (16, true), (32, true)] {
        let spec = Spec {
            iop: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            ipp: [0.0, 0.0, -30.0],
            offsets: vec![-30.0, -27.0, -21.0], // absolute z, uneven
            bits,
            signed,
        };
        let grid = DoseGrid::from_object(&rtdose(&spec)).unwrap();
        assert_eq!(grid.geometry.z, vec![-30.0, -27.0, -21.0]);
        assert!(
            grid.notes.iter().any(|n| n.contains("absolute")),
            "{:?}",
            grid.notes
        );
        let p = [3.0, 2.0, -24.0];
        let got = grid.sample(p[0], p[1], p[2]).unwrap();
        assert!(
            (got - field(p)).abs() <= scaling_for(bits),
            "{bits} {signed}: {got} vs {}",
            field(p)
        );
    }
}

fn pydicom(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pydicom")
        .join(name)
}

#[test]
fn encodings_read_to_the_same_grid() {
    let base = DoseGrid::from_file(&pydicom("rtdose.dcm")).unwrap();
    assert_eq!(base.header.units, "RELATIVE");
    assert_eq!(base.geometry.nz(), 15);
    for other in ["rtdose_expb.dcm", "rtdose_rle.dcm"] {
        let g = DoseGrid::from_file(&pydicom(other)).unwrap();
        assert_eq!(g.geometry, base.geometry, "{other}");
        assert_eq!(g.data, base.data, "{other}");
        assert_eq!(
            g.header.units, "RELATIVE",
            "{other} (UN-encoded in the RLE file)"
        );
    }
    for one in [
        "rtdose_1frame.dcm",
        "rtdose_expb_1frame.dcm",
        "rtdose_rle_1frame.dcm",
    ] {
        let g = DoseGrid::from_file(&pydicom(one)).unwrap();
        assert_eq!(g.geometry.nz(), 1, "{one}");
        let plane = base.data.index_axis(ndarray::Axis(0), 0);
        assert_eq!(g.data.index_axis(ndarray::Axis(0), 0), plane, "{one}");
    }
}

#[test]
fn pydicom_structure_set_without_meta_and_plan() {
    let rs = RtStruct::from_file(&pydicom("rtstruct.dcm")).unwrap();
    assert!(!rs.rois.is_empty());
    for r in &rs.rois {
        assert!(!r.name.is_empty());
    }
    let plan = Plan::from_file(&pydicom("rtplan.dcm")).unwrap();
    assert!(!plan.fraction_groups.is_empty());
    assert!(Plan::from_file(&pydicom("rtplan_truncated.dcm")).is_err());
}

fn contour(points: &[[f64; 2]], z: f64, kind: &str) -> InMemDicomObject {
    let data: Vec<f64> = points.iter().flat_map(|p| [p[0], p[1], z]).collect();
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::CONTOUR_GEOMETRIC_TYPE,
            VR::CS,
            PrimitiveValue::from(kind),
        ),
        DataElement::new(
            tags::NUMBER_OF_CONTOUR_POINTS,
            VR::IS,
            PrimitiveValue::from((points.len() + 1).to_string()),
        ),
        DataElement::new(tags::CONTOUR_DATA, VR::DS, ds(&data)),
    ])
}

fn square(c: f64, r: f64) -> Vec<[f64; 2]> {
    vec![
        [c - r, c - r],
        [c + r, c - r],
        [c + r, c + r],
        [c - r, c + r],
        [c - r, c - r],
    ]
}

#[test]
fn untidy_structure_set() {
    let roi_item = |n: i64, name: &str| {
        InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::ROI_NUMBER,
                VR::IS,
                PrimitiveValue::from(n.to_string()),
            ),
            DataElement::new(tags::ROI_NAME, VR::LO, PrimitiveValue::from(name)),
        ])
    };
    let rc = |n: i64, contours: Vec<InMemDicomObject>| {
        let mut o = InMemDicomObject::from_element_iter([DataElement::new(
            tags::REFERENCED_ROI_NUMBER,
            VR::IS,
            PrimitiveValue::from(n.to_string()),
        )]);
        o.put(DataElement::new(
            tags::CONTOUR_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(contours),
        ));
        o
    };
    let mut o = InMemDicomObject::new_empty();
    o.put(DataElement::new(
        tags::MODALITY,
        VR::CS,
        PrimitiveValue::from("RTSTRUCT"),
    ));
    o.put(DataElement::new(
        tags::STRUCTURE_SET_ROI_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![
            roi_item(1, "Ring"),
            roi_item(2, "Ring"),
            roi_item(3, "Empty"),
        ]),
    ));
    o.put(DataElement::new(
        tags::ROI_CONTOUR_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![
            // Out of z order, a hole drawn as a second contour, a point, a
            // repeated closing point, NumberOfContourPoints off by one.
            rc(
                1,
                vec![
                    contour(&square(0.0, 10.0), 6.0, "CLOSED_PLANAR"),
                    contour(&square(0.0, 10.0), 0.0, "CLOSED_PLANAR"),
                    contour(&square(0.0, 5.0), 0.004, "CLOSED_PLANAR"),
                    contour(&[[1.0, 1.0]], 3.0, "POINT"),
                    contour(&square(0.0, 10.0), 3.0, "CLOSED_PLANAR"),
                ],
            ),
            rc(2, vec![contour(&square(50.0, 3.0), 0.0, "CLOSED_PLANAR")]),
            rc(9, vec![contour(&square(-50.0, 3.0), 0.0, "CLOSED_PLANAR")]),
        ]),
    ));
    let rs = RtStruct::from_object(&o).unwrap();
    let names: Vec<&str> = rs.rois.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Ring", "Ring (ROI 2)", "Empty", "ROI 9"]);
    let ring = &rs.rois[0];
    assert_eq!(
        ring.planes.iter().map(|p| p.z.round()).collect::<Vec<_>>(),
        [0.0, 3.0, 6.0]
    );
    assert_eq!(ring.planes[0].polygons.len(), 2);
    assert_eq!(ring.planes[0].polygons[0].len(), 4, "closing point removed");
    assert!(
        (ring.planes[0].area_mm2() - 300.0).abs() < 1e-9,
        "the inner square is a hole"
    );
    assert_eq!(ring.ignored_contours, 1);
    assert!(ring
        .notes
        .iter()
        .any(|n| n.contains("NumberOfContourPoints")));
    assert!(ring.notes.iter().any(|n| n.contains("point or open")));
    assert!(rs.rois[1].notes.iter().any(|n| n.contains("used twice")));
    assert!(
        rs.rois[2].planes.is_empty() && rs.rois[2].notes.iter().any(|n| n.contains("no closed"))
    );
    assert!(rs.notes.iter().any(|n| n.contains("ROI 9")));
}
