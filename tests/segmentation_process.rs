//! End to end: a synthetic CT through `rtnode process`, whose segmentation
//! stage must leave an RT Structure Set with the External ROI that matches
//! the phantom, and a label volume on the CT grid.

mod segmentation_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use dicom_dictionary_std::tags;
use rtnode::stages::segmentation::contour::dice;
use rtnode::synth::{write_ct_series, SynthOptions};
use rtnode::volume::Volume;
use segmentation_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_rtnode");

fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}

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
    let labels = Volume::read_nrrd(&seg_dir.join("labels.nrrd")).unwrap();
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
