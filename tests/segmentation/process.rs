//! End to end: a synthetic CT through `rtnode process`, whose segmentation
//! stage must leave an RT Structure Set with the External ROI that matches
//! the phantom, and a label volume on the CT grid.

use crate::segmentation_support;

use std::process::Command;

use dicom_dictionary_std::tags;
use rtnode::segmentation::contour::dice;
use rtnode::synth::{write_ct_series, SynthOptions};
use rtnode::volume::Volume;
use segmentation_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_rtnode");

/// Runs `rtnode process` on a synthetic CT of `rows`² × `slices` and checks
/// the segmentation stage's output; returns the stage's duration (ms) and
/// the Dice of the label volume and of the RTSTRUCT against the phantom.
fn process_synthetic_ct(rows: u16, slices: u32) -> (u64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices,
        ..SynthOptions::default().with_rows(rows)
    };
    let series = write_ct_series(&input, &opts).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .arg("process")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("segmentation=done"), "{stdout}");

    let found = find(&out.join("courses"), "rtstruct.dcm");
    assert_eq!(found.len(), 1, "{found:?}");
    let rtstruct = &found[0];
    assert!(
        rtstruct.ends_with("v1/segmentation/rtstruct.dcm"),
        "{}",
        rtstruct.display()
    );
    let seg_dir = rtstruct.parent().unwrap();

    let obj = dicom_object::open_file(rtstruct).unwrap();
    assert_eq!(
        text(&obj, tags::STUDY_INSTANCE_UID),
        series.study_instance_uid
    );
    assert_eq!(text(&obj, tags::PATIENT_ID), opts.patient_id);
    assert_eq!(text(&obj, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert!(
        text(&obj, tags::SERIES_DESCRIPTION).starts_with("rtnode body contour "),
        "{}",
        text(&obj, tags::SERIES_DESCRIPTION)
    );
    let rois = read_rois(&obj);
    assert_eq!(rois.len(), 1);
    assert_eq!(rois[0].name, "External");
    assert_eq!(rois[0].interpreted_type, "EXTERNAL");
    assert_eq!(rois[0].algorithm, "AUTOMATIC");

    // The label volume and the contours both match the phantom.
    let labels = Volume::read_nrrd(&seg_dir.join("labels-rtnode-body-contour.nrrd")).unwrap();
    let g = &labels.geometry;
    let p = &series.phantom;
    let truth: Vec<bool> = labels
        .data
        .indexed_iter()
        .map(|((k, r, c), _)| {
            let x = g.position(k as f64, r as f64, c as f64);
            p.inside_body(x[0], x[1], x[2])
        })
        .collect();
    let mask: Vec<bool> = labels.data.iter().map(|&v| v == 1.0).collect();
    let d_mask = dice(&mask, &truth);
    let back = rasterise(&rois[0], g, &series.sop_instance_uids);
    let d_contours = dice(&back, &truth);
    assert!(d_mask >= 0.99, "{d_mask}");
    assert!(d_contours >= 0.98, "{d_contours}");

    // The stage's record names the structure set as an instance it made.
    let manifest = find(&out.join("courses"), "manifest.json");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest[0]).unwrap()).unwrap();
    let uid = text(&obj, tags::SOP_INSTANCE_UID);
    let job = m
        .pointer("/stages/segmentation")
        .cloned()
        .unwrap_or_else(|| panic!("no segmentation stage in {m}"));
    assert_eq!(
        job["summary"]["created_instances"][0],
        uid.as_str(),
        "{job}"
    );
    let ms = job["duration_ms"].as_u64().unwrap_or(0);
    println!(
        "{rows}x{rows}x{slices}: stage phases (ms) {}, {} contour points",
        job["summary"]["timings_ms"], job["summary"]["rois"][0]["points"]
    );
    let (errors, report) = dciodvfy(rtstruct);
    assert!(errors.is_empty(), "dciodvfy errors:\n{report}");
    (ms, d_mask, d_contours)
}

#[test]
fn process_contours_the_body_of_a_synthetic_ct() {
    let (ms, d_mask, d_contours) = process_synthetic_ct(128, 12);
    println!("128x128x12: stage {ms} ms, labels Dice {d_mask:.5}, RTSTRUCT Dice {d_contours:.5}");
}

/// The figure for BENCHMARKS.md: `cargo test --release --test
/// segmentation_process -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: 512x512x100, run in release"]
fn process_512x512x100() {
    let (ms, d_mask, d_contours) = process_synthetic_ct(512, 100);
    println!("512x512x100: stage {ms} ms, labels Dice {d_mask:.5}, RTSTRUCT Dice {d_contours:.5}");
}

/// A second segmenter in the test: bone is every voxel at or above 300 HU
/// (the phantom's vertebra, 700 and 1200 HU inside 20 HU tissue).
struct BoneThreshold;

impl rtnode::segmentation::Segmenter for BoneThreshold {
    fn name(&self) -> &str {
        "bone threshold"
    }
    fn version(&self) -> String {
        "t1".into()
    }
    fn identity(&self) -> String {
        "bone threshold t1 >=300HU".into()
    }
    fn labels(&self) -> Vec<rtnode::segmentation::RoiLabel> {
        vec![rtnode::segmentation::RoiLabel {
            value: 1,
            name: "Bones".into(),
            colour: [240, 240, 200],
            interpreted_type: "ORGAN".into(),
        }]
    }
    fn description(&self) -> String {
        "HU >= 300".into()
    }
    fn segment(
        &self,
        volume: &Volume,
        _progress: &(dyn Fn(f64) + Sync),
    ) -> anyhow::Result<ndarray::Array3<u16>> {
        Ok(volume.data.mapv(|v| u16::from(v >= 300.0)))
    }
}

/// Several segmenters (the node's body contour and each model) make one
/// structure set: their ROIs numbered in order, each label volume in its
/// own file (the body overlaps every organ), each ROI where its segmenter
/// put it.
#[test]
fn segmenters_share_one_structure_set() {
    use std::sync::Arc;

    use rtnode::segmentation::{BodyContour, SegmentationOptions};
    use rtnode::stages::segmentation::Segmentation;

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices: 10,
        ..SynthOptions::default().with_rows(128)
    };
    let series = write_ct_series(&input, &opts).unwrap();
    let out = dir.path().join("out");
    run_course(
        &input,
        &out,
        Segmentation {
            segmenters: vec![Arc::new(BodyContour::default()), Arc::new(BoneThreshold)],
            options: SegmentationOptions::default(),
        },
    );
    let courses = out.join("courses");
    let rtstruct = find(&courses, "rtstruct.dcm");
    assert_eq!(rtstruct.len(), 1, "{rtstruct:?}");
    let seg_dir = rtstruct[0].parent().unwrap();
    let obj = dicom_object::open_file(&rtstruct[0]).unwrap();
    assert_eq!(
        text(&obj, tags::SERIES_DESCRIPTION),
        concat!(
            "rtnode body contour ",
            env!("CARGO_PKG_VERSION"),
            " + bone threshold t1"
        )
    );
    let rois = read_rois(&obj);
    let names: Vec<(i64, &str)> = rois.iter().map(|r| (r.number, r.name.as_str())).collect();
    assert_eq!(names, [(1, "External"), (2, "Bones")]);

    let body = Volume::read_nrrd(&seg_dir.join("labels-rtnode-body-contour.nrrd")).unwrap();
    let bone = Volume::read_nrrd(&seg_dir.join("labels-bone-threshold.nrrd")).unwrap();
    let hu = Volume::read_nrrd(&find(&courses, "volume.nrrd")[0]).unwrap();
    let want: Vec<bool> = hu.data.iter().map(|&v| v >= 300.0).collect();
    assert!(
        want.iter().filter(|&&b| b).count() > 100,
        "the phantom has bone"
    );
    let got: Vec<bool> = bone.data.iter().map(|&v| v == 1.0).collect();
    assert_eq!(
        got, want,
        "the bone label file holds the bone segmenter's labels"
    );
    // Bone lies inside the body: both labels overlap, which one file could
    // not hold.
    assert!(body.data.iter().zip(&want).all(|(&b, &w)| !w || b == 1.0));
    let back = rasterise(&rois[1], &hu.geometry, &series.sop_instance_uids);
    let d = dice(&back, &want);
    assert!(d >= 0.95, "Bones contours vs mask: Dice {d}");
    let back = rasterise(&rois[0], &hu.geometry, &series.sop_instance_uids);
    let body_mask: Vec<bool> = body.data.iter().map(|&v| v == 1.0).collect();
    let d = dice(&back, &body_mask);
    assert!(d >= 0.98, "External contours vs mask: Dice {d}");

    let map: serde_json::Value =
        serde_json::from_slice(&std::fs::read(seg_dir.join("labels.json")).unwrap()).unwrap();
    let files: Vec<&str> = map["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "labels-rtnode-body-contour.nrrd",
            "labels-bone-threshold.nrrd"
        ]
    );
    assert_eq!(map["rois"][1]["segmenter"], "bone threshold");
    let (errors, report) = dciodvfy(&rtstruct[0]);
    assert!(errors.is_empty(), "dciodvfy errors:\n{report}");
}

/// A model in the config of a build without the `torch` feature is an
/// error that says so, never a quiet run with the body contour alone.
#[cfg(not(feature = "torch"))]
#[test]
fn a_configured_model_without_torch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_ct_series(
        &input,
        &SynthOptions {
            slices: 4,
            ..SynthOptions::default().with_rows(32)
        },
    )
    .unwrap();
    std::fs::write(dir.path().join("organs.pt"), b"not read").unwrap();
    let config = dir.path().join("rtnode.yaml");
    std::fs::write(
        &config,
        "segmentation:\n  models:\n    - name: organs\n      file: organs.pt\n      spacing_mm: [3, 1.5, 1.5]\n      patch_size: [32, 64, 64]\n      labels:\n        - {value: 1, name: Liver, colour: [220, 120, 60]}\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .arg("process")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("segmentation.models") && stderr.contains("without the torch feature"),
        "{stderr}"
    );
    assert!(!dir.path().join("out/courses").exists());
}
