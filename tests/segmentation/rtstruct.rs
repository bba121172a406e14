//! Masks → RTSTRUCT → masks again: label volumes on axial (head first
//! supine, prone, feet first), sagittal and oblique grids are traced,
//! written as an RT Structure Set, read back with dicom-object alone and
//! rasterised by the even-odd rule on the same grid. Then the file is put
//! before dciodvfy, dcmdump and pydicom.

use crate::segmentation_support;

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::Array3;
use rtnode::segmentation::contour::dice;
use rtnode::segmentation::rtstruct::{
    self, ImageRef, RoiContours, RoiSpec, SeriesRef, WriterOptions,
};
use rtnode::segmentation::{contour_labels, to_patient, RoiLabel};
use rtnode::volume::Geometry;
use segmentation_support::*;

const SIZE: [usize; 3] = [128, 96, 14]; // columns, rows, slices
const SPACING: [f64; 3] = [0.9, 1.1, 2.0];

fn geometry(directions: [[f64; 3]; 3]) -> Geometry {
    Geometry {
        origin: [-57.3, 41.25, -120.0],
        spacing: SPACING,
        directions,
        size: SIZE,
    }
}

fn rotation(ax: f64, az: f64) -> [[f64; 3]; 3] {
    let (sx, cx) = ax.to_radians().sin_cos();
    let (sz, cz) = az.to_radians().sin_cos();
    // Columns of Rz · Rx, applied to the unit axes.
    let m = |v: [f64; 3]| {
        let y = [v[0], cx * v[1] - sx * v[2], sx * v[1] + cx * v[2]];
        [cz * y[0] - sz * y[1], sz * y[0] + cz * y[1], y[2]]
    };
    [m([1.0, 0.0, 0.0]), m([0.0, 1.0, 0.0]), m([0.0, 0.0, 1.0])]
}

fn cases() -> Vec<(&'static str, Geometry)> {
    vec![
        (
            "HFS",
            geometry([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
        ),
        // ImageOrientationPatient -1\0\0\0\-1\0; normal +z.
        (
            "HFP prone",
            geometry([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]),
        ),
        // -1\0\0\0\1\0: the normal points to the feet, so slices run -z.
        (
            "FFS",
            geometry([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]),
        ),
        (
            "sagittal",
            geometry([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]),
        ),
        ("oblique", geometry(rotation(25.0, 10.0))),
    ]
}

/// Label 1: an ellipsoid. Label 2: on every slice from 2 to 11, a ring
/// (outer boundary and hole), an island inside the hole on slices 4 to 9,
/// and two islands beside the ring. Label 3: a small box (under 5 cc).
fn labels() -> Array3<u16> {
    let [cols, rows, n] = SIZE;
    let mut l = Array3::<u16>::zeros((n, rows, cols));
    for ((k, r, c), v) in l.indexed_iter_mut() {
        let (kf, rf, cf) = (k as f64, r as f64, c as f64);
        let e = ((kf - 7.0) / 5.0).powi(2)
            + ((rf - 48.0) / 30.0).powi(2)
            + ((cf - 32.0) / 24.0).powi(2);
        let ring = ((rf - 48.0).powi(2) + (cf - 92.0).powi(2)).sqrt();
        let disc = |r0: f64, c0: f64, rad: f64| (rf - r0).powi(2) + (cf - c0).powi(2) <= rad * rad;
        if e <= 1.0 {
            *v = 1;
        } else if (2..=11).contains(&k)
            && ((13.0..=26.0).contains(&ring)
                || ((4..=9).contains(&k) && ring <= 5.0)
                || disc(10.0, 70.0, 4.5)
                || disc(10.0, 114.0, 4.0))
        {
            *v = 2;
        } else if (3..=4).contains(&k) && (85..=88).contains(&r) && (5..=9).contains(&c) {
            *v = 3;
        }
    }
    l
}

fn label_map() -> Vec<RoiLabel> {
    vec![
        RoiLabel {
            value: 1,
            name: "Liver".into(),
            colour: [200, 120, 40],
            interpreted_type: "ORGAN".into(),
        },
        RoiLabel {
            value: 2,
            name: "Bowel".into(),
            colour: [250, 200, 0],
            interpreted_type: "ORGAN".into(),
        },
        RoiLabel {
            value: 3,
            name: "Marker".into(),
            colour: [255, 0, 0],
            interpreted_type: "MARKER".into(),
        },
    ]
}

const STUDY: &str = "1.2.826.0.1.3680043.10.543.7.1";
const FRAME: &str = "1.2.826.0.1.3680043.10.543.7.2";
const SERIES: &str = "1.2.826.0.1.3680043.10.543.7.3";

/// A CT slice's header with a Latin-1 patient name.
fn ct_header() -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    let mut put = |tag, vr, v: &str| o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        rtnode::dicom::uids::CT_IMAGE_STORAGE,
    );
    put(tags::PATIENT_NAME, VR::PN, "Müller^Jürgen");
    put(tags::PATIENT_ID, VR::LO, "RT-0042");
    put(tags::PATIENT_BIRTH_DATE, VR::DA, "19600102");
    put(tags::PATIENT_SEX, VR::CS, "M");
    put(tags::STUDY_INSTANCE_UID, VR::UI, STUDY);
    put(tags::STUDY_DATE, VR::DA, "20240301");
    put(tags::STUDY_TIME, VR::TM, "101500");
    put(tags::STUDY_ID, VR::SH, "S1");
    put(tags::ACCESSION_NUMBER, VR::SH, "A77");
    put(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(tags::STUDY_DESCRIPTION, VR::LO, "Thorax planning");
    o
}

fn slice_uids() -> Vec<String> {
    (0..SIZE[2])
        .map(|k| format!("{SERIES}.{}", k + 1))
        .collect()
}

/// Traces and writes the labels on `g`; returns the file's path.
fn write(dir: &Path, name: &str, g: &Geometry, tolerance_mm: f64) -> std::path::PathBuf {
    let l = labels();
    let map = label_map();
    let traced = contour_labels(&l, g, &map, tolerance_mm, &|_| {});
    let rois: Vec<RoiContours> = traced
        .iter()
        .enumerate()
        .map(|(i, t)| RoiContours {
            spec: RoiSpec {
                number: i as u32 + 1,
                name: t.label.name.clone(),
                colour: t.label.colour,
                interpreted_type: t.label.interpreted_type.clone(),
                generation_description: "test labels".into(),
            },
            contours: to_patient(t, g),
        })
        .collect();
    let series = SeriesRef {
        study_instance_uid: STUDY.into(),
        series_instance_uid: SERIES.into(),
        frame_of_reference_uid: FRAME.into(),
        images: slice_uids()
            .into_iter()
            .map(|u| ImageRef {
                sop_class_uid: rtnode::dicom::uids::CT_IMAGE_STORAGE.into(),
                sop_instance_uid: u,
            })
            .collect(),
    };
    let opts = WriterOptions {
        uid_root: "2.25".into(),
        series_description: "rtnode test model 1.0".into(),
        label: "rtnode auto".into(),
        name: "rtnode test model 1.0".into(),
        description: "round trip".into(),
    };
    let path = dir.join(format!("{}.dcm", name.replace(' ', "_")));
    rtstruct::write(&path, &ct_header(), &series, &rois, &opts).unwrap();
    path
}

/// Dice per ROI of the file's contours against the label volume.
fn dice_per_roi(path: &Path, g: &Geometry) -> Vec<(String, f64, f64)> {
    let obj = dicom_object::open_file(path).unwrap();
    let rois = read_rois(&obj);
    let l = labels();
    let voxel_cc = SPACING.iter().product::<f64>() / 1000.0;
    label_map()
        .iter()
        .map(|m| {
            let roi = rois.iter().find(|r| r.name == m.name).expect("ROI written");
            let back = rasterise(roi, g, &slice_uids());
            let want: Vec<bool> = l.iter().map(|&v| v == m.value).collect();
            let cc = want.iter().filter(|&&b| b).count() as f64 * voxel_cc;
            (m.name.clone(), cc, dice(&back, &want))
        })
        .collect()
}

#[test]
fn masks_survive_the_round_trip_in_every_orientation() {
    let dir = tempfile::tempdir().unwrap();
    for (name, g) in cases() {
        // Unsimplified, the traced loops are exact at the voxel centres.
        let exact = write(dir.path(), &format!("{name} exact"), &g, 0.0);
        for (roi, _, d) in dice_per_roi(&exact, &g) {
            assert_eq!(d, 1.0, "{name} {roi}: unsimplified contours must be exact");
        }
        let path = write(dir.path(), name, &g, 0.5);
        for (roi, cc, d) in dice_per_roi(&path, &g) {
            println!("{name:10} {roi:7} {cc:7.2} cc  Dice {d:.5}");
            if cc > 5.0 {
                assert!(d >= 0.98, "{name} {roi}: Dice {d} over {cc} cc");
            }
        }
    }
}

#[test]
fn holes_and_islands_are_separate_closed_contours() {
    let dir = tempfile::tempdir().unwrap();
    let (_, g) = &cases()[0];
    let path = write(dir.path(), "islands", g, 0.5);
    let obj = dicom_object::open_file(&path).unwrap();
    let rois = read_rois(&obj);
    let bowel = rois.iter().find(|r| r.name == "Bowel").unwrap();
    let uids = slice_uids();
    let on = |k: usize| bowel.contours.iter().filter(|(u, _)| *u == uids[k]).count();
    // Ring outside, ring hole, island in the hole, two islands beside.
    assert_eq!(on(6), 5);
    assert_eq!(on(2), 4);
    assert_eq!(on(0), 0);
    // Contours are simplified: far fewer points than traced pixel edges.
    let liver = rois.iter().find(|r| r.name == "Liver").unwrap();
    let points: usize = liver.contours.iter().map(|(_, p)| p.len()).sum();
    assert!(points < 1500, "{points}");
}

#[test]
fn the_structure_set_is_a_valid_iod_that_dcmtk_and_pydicom_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_, g) = &cases()[1];
    let path = write(dir.path(), "valid", g, 0.5);
    let obj = dicom_object::open_file(&path).unwrap();

    // What the standard and the issue ask of it.
    assert_eq!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        rtnode::dicom::uids::IMPLICIT_VR_LE
    );
    assert_eq!(text(&obj, tags::MODALITY), "RTSTRUCT");
    assert_eq!(
        text(&obj, tags::SOP_CLASS_UID),
        rtnode::dicom::uids::RT_STRUCTURE_SET_STORAGE
    );
    assert_eq!(text(&obj, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 100");
    assert_eq!(text(&obj, tags::PATIENT_NAME), "Müller^Jürgen");
    assert_eq!(text(&obj, tags::PATIENT_ID), "RT-0042");
    assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), STUDY);
    assert_eq!(text(&obj, tags::ACCESSION_NUMBER), "A77");
    assert_eq!(text(&obj, tags::MANUFACTURER), "rtnode");
    assert_eq!(text(&obj, tags::APPROVAL_STATUS), "UNAPPROVED");
    assert_eq!(
        text(&obj, tags::SERIES_DESCRIPTION),
        "rtnode test model 1.0"
    );
    let sop = text(&obj, tags::SOP_INSTANCE_UID);
    assert!(sop.starts_with("2.25.") && sop.len() <= 64, "{sop}");
    assert_ne!(text(&obj, tags::SERIES_INSTANCE_UID), SERIES);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.windows(6).any(|w| w == b"M\xfcller"),
        "the name is encoded in the CT's character set"
    );
    let frame = &items(&obj, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)[0];
    assert_eq!(text(frame, tags::FRAME_OF_REFERENCE_UID), FRAME);
    let study = &items(frame, tags::RT_REFERENCED_STUDY_SEQUENCE)[0];
    assert_eq!(text(study, tags::REFERENCED_SOP_INSTANCE_UID), STUDY);
    let series = &items(study, tags::RT_REFERENCED_SERIES_SEQUENCE)[0];
    assert_eq!(text(series, tags::SERIES_INSTANCE_UID), SERIES);
    let images: Vec<String> = items(series, tags::CONTOUR_IMAGE_SEQUENCE)
        .iter()
        .map(|i| text(i, tags::REFERENCED_SOP_INSTANCE_UID))
        .collect();
    assert_eq!(images, slice_uids());
    let rois = read_rois(&obj);
    assert_eq!(rois.len(), 3);
    for r in &rois {
        assert_eq!(r.algorithm, "AUTOMATIC");
    }
    assert_eq!(rois[0].colour, vec![200, 120, 40]);
    assert_eq!(rois[2].interpreted_type, "MARKER");

    let (errors, report) = dciodvfy(&path);
    println!("dciodvfy:\n{report}");
    assert!(errors.is_empty(), "dciodvfy errors:\n{report}");

    let dump = dcmdump(&path);
    assert!(dump.contains("RTStructureSetStorage"), "{dump}");
    assert!(dump.contains("Müller^Jürgen"), "{dump}");

    let py = pydicom_summary(&path);
    assert_eq!(py["modality"], "RTSTRUCT");
    assert_eq!(py["patient_name"], "Müller^Jürgen");
    assert_eq!(py["study"], STUDY);
    assert_eq!(py["approval"], "UNAPPROVED");
    assert_eq!(py["images"], SIZE[2]);
    let names: Vec<&str> = py["rois"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Liver", "Bowel", "Marker"]);
}
