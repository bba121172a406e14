//! Unit tests of the synthetic CT series: options, phantom geometry, and
//! the written files read back (and, where dcmdump exists, checked by it).

use super::*;
use crate::dicom::uids::is_valid_uid;
use dicom_object::open_file;
use std::collections::HashSet;

fn small_opts() -> SynthOptions {
    SynthOptions {
        slices: 10,
        ..SynthOptions::default().with_rows(64)
    }
}

fn elem_str(obj: &dicom_object::DefaultDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

fn elem_f64s(obj: &dicom_object::DefaultDicomObject, tag: Tag) -> Vec<f64> {
    obj.element(tag).unwrap().to_multi_float64().unwrap()
}

fn elem_u16(obj: &dicom_object::DefaultDicomObject, tag: Tag) -> u16 {
    obj.element(tag).unwrap().to_int::<u16>().unwrap()
}

/// HU image of one file, decoded via the file's own rescale tags.
fn decode_hu(obj: &dicom_object::DefaultDicomObject) -> Vec<f64> {
    let slope = elem_f64s(obj, tags::RESCALE_SLOPE)[0];
    let intercept = elem_f64s(obj, tags::RESCALE_INTERCEPT)[0];
    let stored: Vec<u16> = obj
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_multi_int::<u16>()
        .unwrap();
    stored
        .into_iter()
        .map(|v| f64::from(v) * slope + intercept)
        .collect()
}

#[test]
fn defaults_match_spec() {
    let o = SynthOptions::default();
    assert_eq!(o.slices, 64);
    assert_eq!(o.rows, 256);
    assert_eq!(o.pixel_spacing_mm, 500.0 / 256.0);
    assert_eq!(o.slice_thickness_mm, 2.5);
    assert_eq!(o.patient_id, "RTNODE-PHANTOM-001");
    assert_eq!(o.patient_name, "Phantom^Water");
    assert_eq!(o.uid_root, "2.25");
    assert_eq!(o.fov_mm(), 500.0);
    assert_eq!(o.clone().with_rows(512).fov_mm(), 500.0);
    o.validate().unwrap();
}

#[test]
fn invalid_options_are_rejected() {
    let base = SynthOptions::default();
    let bad = [
        SynthOptions {
            slices: 0,
            ..base.clone()
        },
        SynthOptions {
            rows: 8,
            ..base.clone()
        },
        SynthOptions {
            pixel_spacing_mm: f64::NAN,
            ..base.clone()
        },
        SynthOptions {
            slice_thickness_mm: 0.0,
            ..base.clone()
        },
        SynthOptions {
            patient_id: "a\\b".into(),
            ..base.clone()
        },
        SynthOptions {
            uid_root: "1.02.3".into(),
            ..base.clone()
        },
        SynthOptions {
            uid_root: format!("1.{}", "2".repeat(50)),
            ..base.clone()
        },
    ];
    for o in bad {
        assert!(o.validate().is_err(), "{o:?} should be rejected");
    }
}

#[test]
fn implementation_class_uid_is_conformant() {
    assert!(crate::dicom::uids::is_valid_uid(IMPLEMENTATION_CLASS_UID));
}

#[test]
fn phantom_geometry() {
    let opts = SynthOptions::default();
    let p = Phantom::for_options(&opts);
    let top = p.lung_z_min + 10.0;
    let bottom = p.lung_z_min - 10.0;
    assert_eq!(p.hu_at(0.0, 0.0, 0.0), HU_SOFT_TISSUE);
    for l in &p.lungs {
        assert_eq!(p.hu_at(l.cx, l.cy, top), HU_LUNG);
        assert_eq!(p.hu_at(l.cx, l.cy, bottom), HU_SOFT_TISSUE);
        // Lungs lie well inside the body outline.
        assert!(l.boundary(360).iter().all(|&(x, y)| {
            let u = x / p.body.rx;
            let v = y / p.body.ry;
            u * u + v * v < 0.9
        }));
    }
    let spine = p.spine_cortical;
    assert_eq!(p.hu_at(spine.cx, spine.cy, 0.0), HU_TRABECULAR_BONE);
    let ring_r = 0.5 * (p.spine_cortical.rx + p.spine_trabecular.rx);
    assert_eq!(p.hu_at(spine.cx, spine.cy + ring_r, 0.0), HU_CORTICAL_BONE);
    let couch_y = 0.5 * (p.couch.y_min + p.couch.y_max);
    assert_eq!(p.hu_at(0.0, couch_y, 0.0), HU_COUCH);
    assert!(!p.inside_body(0.0, couch_y, 0.0));
    assert!(p.inside_body(0.0, 0.0, 0.0));
    assert!(p.inside_body(p.body.rx - 1.0, 0.0, 5.0));
    assert!(!p.inside_body(p.body.rx + 1.0, 0.0, 5.0));
    // Air gap between body and couch.
    let gap_y = p.body.ry + 0.5 * p.couch_gap_mm;
    assert_eq!(p.hu_at(0.0, gap_y, 0.0), HU_AIR);
    assert!(p.couch_gap_mm >= 5.0);
    // Couch stays inside the field of view.
    assert!(p.couch.y_max < 0.5 * opts.fov_mm());
    assert_eq!(p.hu_at(-240.0, -240.0, 0.0), HU_AIR);
    // About 60 % of slices carry lungs.
    let grid = CtGrid::for_options(&opts).unwrap();
    let with_lungs = grid.slice_z.iter().filter(|&&z| p.lungs_present(z)).count();
    assert_eq!(with_lungs, 38);
}

#[test]
fn couch_is_separated_in_every_matrix_size() {
    for rows in [MIN_ROWS, 33, 64, 100, 256, 512] {
        let opts = SynthOptions::default().with_rows(rows);
        let p = Phantom::for_options(&opts);
        let grid = CtGrid::for_options(&opts).unwrap();
        let column = rows / 2;
        let materials: Vec<f64> = (0..rows)
            .map(|r| {
                let (x, y) = grid.pixel_centre(r, column);
                p.hu_at(x, y, 0.0)
            })
            .collect();
        let last_body = materials
            .iter()
            .rposition(|&h| h != HU_AIR && h != HU_COUCH)
            .unwrap();
        let first_couch = materials.iter().position(|&h| h == HU_COUCH).unwrap();
        assert!(
            first_couch >= last_body + 3,
            "rows {rows}: body ends at {last_body}, couch at {first_couch}"
        );
        assert!(materials[last_body + 1..first_couch]
            .iter()
            .all(|&h| h == HU_AIR));
    }
}

#[test]
fn written_series_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_opts();
    let series = write_ct_series(dir.path(), &opts).unwrap();
    let n = opts.slices as usize;
    assert_eq!(series.files.len(), n);
    assert_eq!(series.sop_instance_uids.len(), n);
    for uid in [
        &series.study_instance_uid,
        &series.series_instance_uid,
        &series.frame_of_reference_uid,
    ] {
        assert!(is_valid_uid(uid), "{uid}");
        assert!(uid.starts_with("2.25."));
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = (1..=n).map(|i| format!("CT_{i:04}.dcm")).collect();
    assert_eq!(names, expected, "no temporary files may remain");

    let p = &series.phantom;
    let mut sop_uids = HashSet::new();
    for (k, path) in series.files.iter().enumerate() {
        let obj = open_file(path).unwrap();
        let meta = obj.meta();
        assert_eq!(
            meta.transfer_syntax().trim_end_matches('\0'),
            uids::EXPLICIT_VR_LITTLE_ENDIAN
        );
        assert_eq!(
            meta.media_storage_sop_class_uid().trim_end_matches('\0'),
            uids::CT_IMAGE_STORAGE
        );
        assert_eq!(
            meta.implementation_class_uid().trim_end_matches('\0'),
            IMPLEMENTATION_CLASS_UID
        );
        let sop_uid = elem_str(&obj, tags::SOP_INSTANCE_UID);
        assert_eq!(
            meta.media_storage_sop_instance_uid().trim_end_matches('\0'),
            sop_uid
        );
        assert!(is_valid_uid(&sop_uid));
        assert_eq!(sop_uid, series.sop_instance_uids[k]);
        assert!(sop_uids.insert(sop_uid));

        assert_eq!(elem_str(&obj, tags::SOP_CLASS_UID), uids::CT_IMAGE_STORAGE);
        assert_eq!(elem_str(&obj, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
        assert_eq!(elem_str(&obj, tags::MODALITY), "CT");
        assert_eq!(elem_str(&obj, tags::PATIENT_NAME), "Phantom^Water");
        assert_eq!(elem_str(&obj, tags::PATIENT_ID), "RTNODE-PHANTOM-001");
        assert_eq!(elem_str(&obj, tags::PATIENT_POSITION), "HFS");
        assert_eq!(elem_str(&obj, tags::MANUFACTURER), MANUFACTURER);
        assert_eq!(elem_str(&obj, tags::RESCALE_TYPE), "HU");
        assert_eq!(
            elem_str(&obj, tags::PHOTOMETRIC_INTERPRETATION),
            "MONOCHROME2"
        );
        assert_eq!(
            obj.element(tags::IMAGE_TYPE)
                .unwrap()
                .to_multi_str()
                .unwrap()
                .as_ref(),
            ["ORIGINAL", "PRIMARY", "AXIAL"]
        );
        assert_eq!(
            elem_str(&obj, tags::STUDY_INSTANCE_UID),
            series.study_instance_uid
        );
        assert_eq!(
            elem_str(&obj, tags::SERIES_INSTANCE_UID),
            series.series_instance_uid
        );
        assert_eq!(
            elem_str(&obj, tags::FRAME_OF_REFERENCE_UID),
            series.frame_of_reference_uid
        );
        assert_eq!(
            obj.element(tags::INSTANCE_NUMBER)
                .unwrap()
                .to_int::<i32>()
                .unwrap(),
            k as i32 + 1
        );
        assert_eq!(elem_u16(&obj, tags::ROWS), 64);
        assert_eq!(elem_u16(&obj, tags::COLUMNS), 64);
        assert_eq!(elem_u16(&obj, tags::SAMPLES_PER_PIXEL), 1);
        assert_eq!(elem_u16(&obj, tags::BITS_ALLOCATED), 16);
        assert_eq!(elem_u16(&obj, tags::BITS_STORED), 16);
        assert_eq!(elem_u16(&obj, tags::HIGH_BIT), 15);
        assert_eq!(elem_u16(&obj, tags::PIXEL_REPRESENTATION), 0);
        assert_eq!(elem_f64s(&obj, tags::RESCALE_INTERCEPT), [-1024.0]);
        assert_eq!(elem_f64s(&obj, tags::RESCALE_SLOPE), [1.0]);
        assert_eq!(
            elem_f64s(&obj, tags::IMAGE_ORIENTATION_PATIENT),
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(elem_f64s(&obj, tags::SLICE_THICKNESS), [2.5]);

        // Geometry exactly as a reader reconstructs it from the headers.
        let spacing = elem_f64s(&obj, tags::PIXEL_SPACING);
        assert_eq!(spacing, [500.0 / 64.0, 500.0 / 64.0]);
        let ipp = elem_f64s(&obj, tags::IMAGE_POSITION_PATIENT);
        assert_eq!(ipp[0], -31.5 * spacing[1]);
        assert_eq!(ipp[1], -31.5 * spacing[0]);
        assert_eq!(ipp[2], 2.5 * k as f64);
        assert_eq!(elem_f64s(&obj, tags::SLICE_LOCATION), [ipp[2]]);

        // Every pixel equals the analytic phantom at the pixel centre.
        let hu = decode_hu(&obj);
        assert_eq!(hu.len(), 64 * 64);
        for r in 0..64_usize {
            for c in 0..64_usize {
                let x = ipp[0] + c as f64 * spacing[1];
                let y = ipp[1] + r as f64 * spacing[0];
                assert_eq!(hu[r * 64 + c], p.hu_at(x, y, ipp[2]), "({r},{c}) k={k}");
            }
        }

        // Known points, independent of hu_at: pixel nearest to a point.
        let at = |x: f64, y: f64| {
            let c = ((x - ipp[0]) / spacing[1]).round() as usize;
            let r = ((y - ipp[1]) / spacing[0]).round() as usize;
            hu[r * 64 + c]
        };
        assert_eq!(at(0.0, 0.0), 20.0);
        assert_eq!(at(-240.0, -240.0), -1000.0);
        assert_eq!(
            at(0.0, 0.5 * (p.couch.y_min + p.couch.y_max)),
            100.0,
            "couch"
        );
        assert_eq!(at(0.0, 80.0), 700.0, "spine");
        let lung = if p.lungs_present(ipp[2]) {
            -800.0
        } else {
            20.0
        };
        assert_eq!(at(-75.0, -10.0), lung);
        assert_eq!(at(75.0, -10.0), lung);
    }
    assert_eq!(
        series
            .grid
            .slice_z
            .iter()
            .filter(|&&z| p.lungs_present(z))
            .count(),
        6
    );

    // A second run into the same directory must not mix series.
    assert!(write_ct_series(dir.path(), &opts).is_err());
}

#[test]
fn dcmdump_accepts_output() {
    let dcmdump = Path::new("/usr/bin/dcmdump");
    if !dcmdump.exists() {
        eprintln!("note: /usr/bin/dcmdump not installed, skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        slices: 2,
        patient_name: "Phantôm^Wäter".into(),
        ..small_opts()
    };
    let series = write_ct_series(dir.path(), &opts).unwrap();
    let out = std::process::Command::new(dcmdump)
        .arg("-q")
        .arg(&series.files[1])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dcmdump failed: {stderr}\n{stdout}");
    assert!(stderr.trim().is_empty(), "dcmdump warned: {stderr}");
    assert!(stdout.contains("Phantôm^Wäter"), "{stdout}");
    assert!(stdout.contains("CTImageStorage"), "{stdout}");
}
