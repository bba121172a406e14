//! The TorchScript runner end to end on the CPU (feature `torch`): a
//! synthetic CT goes in as a course, the committed tiny model
//! (`tests/models/tiny_lung_shift.pt`, made by `make_tiny_model.py`) runs
//! through the segmentation stage, and the RT Structure Set that comes out
//! must hold its ROI where the model's rule puts it — class 1 where the
//! voxel one slice up lies in the lung band — computed here in Rust from
//! the organized HU volume. The rule is not voxel-local, so swapped axes, a
//! flipped slice order or misplaced tiles move the lungs' lower boundary
//! and fail the Dice bound.
#![cfg(feature = "torch")]

use crate::segmentation_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dicom_dictionary_std::tags;
use rtnode::segmentation::contour::dice;
use rtnode::segmentation::model::{model_segmenter, SegmentationSection};
use rtnode::segmentation::{SegmentationOptions, Segmenter};
use rtnode::stages::segmentation::Segmentation;
use rtnode::synth::{write_ct_series, SynthOptions};
use rtnode::volume::{Geometry, Volume};
use segmentation_support::*;

/// The band and shift the tiny model was made with (make_tiny_model.py).
const BAND_HU: (f32, f32) = (-900.0, -500.0);

fn model_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/tiny_lung_shift.pt")
}

/// The model's registry entry, as an operator would write it.
fn section(spacing_zyx: [f64; 3], patch: [usize; 3], batch: usize) -> SegmentationSection {
    let yaml = format!(
        r#"
models:
  - name: tiny lung shift
    version: "1"
    file: {}
    spacing_mm: {spacing_zyx:?}
    patch_size: {patch:?}
    overlap: 0.5
    batch_size: {batch}
    intensity: {{clip_hu: [-1000, 1000], mean: -100, std: 500}}
    device: auto
    labels:
      - {{value: 1, name: Lung_Shifted, colour: [0, 160, 255], interpreted_type: ORGAN}}
"#,
        model_file().display()
    );
    let s: SegmentationSection = serde_yaml_ng::from_str(&yaml).unwrap();
    let problems = s.check(Path::new("/"));
    assert!(problems.is_empty(), "{problems:?}");
    s
}

/// The expected mask: in the lung band one slice up (the model pads the
/// slice above the top one with its normalised zero, -100 HU: outside).
fn expected(hu: &Volume) -> Vec<bool> {
    let (n, _, _) = hu.data.dim();
    hu.data
        .indexed_iter()
        .map(|((k, j, i), _)| {
            k + 1 < n && {
                let v = hu.data[[k + 1, j, i]];
                v > BAND_HU.0 && v < BAND_HU.1
            }
        })
        .collect()
}

/// Voxels whose slice above has no air within `r` pixels in plane. A
/// model on another grid sees the skin's partial volume — between air
/// (-1000) and tissue (20) resampling passes through the lung band — and
/// rightly finds a thin shell there, which the HU rule on the CT grid
/// cannot know of; the comparison leaves that margin out.
fn away_from_air(hu: &Volume, r: usize) -> Vec<bool> {
    let (n, rows, cols) = hu.data.dim();
    hu.data
        .indexed_iter()
        .map(|((k, j, i), _)| {
            let k = (k + 1).min(n - 1);
            (j.saturating_sub(r)..(j + r + 1).min(rows)).all(|y| {
                (i.saturating_sub(r)..(i + r + 1).min(cols)).all(|x| hu.data[[k, y, x]] > -950.0)
            })
        })
        .collect()
}

fn only(mask: &[bool], keep: &[bool]) -> Vec<bool> {
    mask.iter().zip(keep).map(|(&m, &k)| m && k).collect()
}

fn lungs_unshifted(hu: &Volume) -> Vec<bool> {
    hu.data
        .iter()
        .map(|&v| v > BAND_HU.0 && v < BAND_HU.1)
        .collect()
}

/// The stage with the model alone, without the body contour.
fn model_only(segmenter: Arc<dyn Segmenter>) -> Segmentation {
    Segmentation {
        segmenters: vec![segmenter],
        options: SegmentationOptions::default(),
    }
}

struct Run {
    hu: Volume,
    labels: Volume,
    rtstruct: PathBuf,
    slice_uids: Vec<String>,
    summary: serde_json::Value,
}

fn segment_synthetic_ct(rows: u16, slices: u32, section: &SegmentationSection) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices,
        ..SynthOptions::default().with_rows(rows)
    };
    let series = write_ct_series(&input, &opts).unwrap();
    let out = dir.path().join("out");
    // As the node sets it up from the config: the body contour, then the
    // model, into one structure set.
    let segmentation = Segmentation::from_section(section, Path::new("/")).unwrap();
    run_course(&input, &out, segmentation);

    let courses = out.join("courses");
    let rtstruct = find(&courses, "rtstruct.dcm");
    assert_eq!(rtstruct.len(), 1, "{rtstruct:?}");
    let seg_dir = rtstruct[0].parent().unwrap().to_path_buf();
    let hu = Volume::read_nrrd(&find(&courses, "volume.nrrd")[0]).unwrap();
    let labels = Volume::read_nrrd(&seg_dir.join("labels-tiny-lung-shift.nrrd")).unwrap();
    let body = Volume::read_nrrd(&seg_dir.join("labels-rtnode-body-contour.nrrd")).unwrap();
    assert_eq!(body.data.dim(), labels.data.dim());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&find(&courses, "manifest.json")[0]).unwrap())
            .unwrap();
    let summary = manifest
        .pointer("/stages/segmentation/summary")
        .cloned()
        .unwrap_or_else(|| panic!("no segmentation summary in {manifest}"));
    // Keep the files past the temporary directory.
    let keep = std::env::temp_dir().join(format!(
        "rtnode-torch-{}-{rows}x{slices}.dcm",
        std::process::id()
    ));
    std::fs::copy(&rtstruct[0], &keep).unwrap();
    Run {
        hu,
        labels,
        rtstruct: keep,
        slice_uids: series.sop_instance_uids,
        summary,
    }
}

fn mask_of(labels: &Volume, value: f32) -> Vec<bool> {
    labels.data.iter().map(|&v| v == value).collect()
}

#[test]
fn tiny_model_runs_through_the_stage_on_the_cpu() {
    // Model grid = CT grid (3.90625 mm, 2.5 mm slices), 128x128x24: 2 x 3 x 3
    // overlapping patches in batches of 4.
    let s = section([2.5, 3.90625, 3.90625], [16, 64, 64], 4);
    let run = segment_synthetic_ct(128, 24, &s);
    let want = expected(&run.hu);
    let got = mask_of(&run.labels, 1.0);
    let d_labels = dice(&got, &want);
    // The test can tell a shift from none: the lungs unshifted (what a
    // voxel-local or z-flipped runner would give) score well below.
    let d_unshifted = dice(&got, &lungs_unshifted(&run.hu));
    println!("Dice labels vs expected {d_labels:.5}, vs unshifted lungs {d_unshifted:.5}");
    assert!(d_labels >= 0.98, "{d_labels}");
    assert!(d_unshifted < 0.97, "{d_unshifted}");

    // The structure set: one ROI, on the CT, where the labels are.
    let obj = dicom_object::open_file(&run.rtstruct).unwrap();
    assert_eq!(
        text(&obj, tags::SERIES_DESCRIPTION),
        concat!(
            "rtnode body contour ",
            env!("CARGO_PKG_VERSION"),
            " + tiny lung shift 1"
        ),
        "series description names the segmenters and their versions"
    );
    // The body contour and the model's ROI in one structure set, numbered
    // in the order the segmenters ran.
    let rois = read_rois(&obj);
    assert_eq!(rois.len(), 2);
    assert_eq!((rois[0].number, rois[0].name.as_str()), (1, "External"));
    assert_eq!(rois[0].interpreted_type, "EXTERNAL");
    let roi = &rois[1];
    assert_eq!((roi.number, roi.name.as_str()), (2, "Lung_Shifted"));
    assert_eq!(roi.interpreted_type, "ORGAN");
    assert_eq!(roi.colour, vec![0, 160, 255]);
    assert_eq!(roi.algorithm, "AUTOMATIC");
    let g: &Geometry = &run.labels.geometry;
    let back = rasterise(roi, g, &run.slice_uids);
    let d_contours = dice(&back, &want);
    println!("Dice RTSTRUCT (rasterised) vs expected {d_contours:.5}");
    assert!(d_contours >= 0.98, "{d_contours}");

    let (errors, report) = dciodvfy(&run.rtstruct);
    assert!(errors.is_empty(), "dciodvfy errors:\n{report}");

    // pydicom reads it too.
    let py = pydicom_summary(&run.rtstruct);
    assert_eq!(py["modality"], "RTSTRUCT");
    assert_eq!(py["rois"][0]["name"], "External");
    assert_eq!(py["rois"][1]["name"], "Lung_Shifted");
    assert_eq!(py["rois"][1]["contours"], roi.contours.len());
    assert_eq!(py["images"], run.slice_uids.len());

    // The stage record says where and how the model ran.
    let r = &run.summary["segmenters"][1]["run"];
    assert_eq!(r["device"], "Cpu", "{r}");
    assert_eq!(r["precision"], "float32");
    assert_eq!(r["patches"], 18);
    assert_eq!(r["classes"], 2);
    assert_eq!(r["fallbacks"].as_array().map(Vec::len), Some(0), "{r}");
    println!("stage record: {r}");
    let _ = std::fs::remove_file(&run.rtstruct);
}

#[test]
fn resampling_to_the_model_grid_and_back() {
    // CT at 3.90625 mm in plane, model at half that: the CT is resampled to
    // twice the matrix and the class scores back. Slices stay at 2.5 mm, so
    // "one slice up" means the same on both grids. With a factor of two
    // the band's edges fall between the same CT voxels as on the CT grid,
    // so the answer is still exact.
    let s = section([2.5, 1.953125, 1.953125], [16, 96, 96], 2);
    let run = segment_synthetic_ct(128, 16, &s);
    let keep = away_from_air(&run.hu, 2);
    let want = only(&expected(&run.hu), &keep);
    let d_fine = dice(&only(&mask_of(&run.labels, 1.0), &keep), &want);
    let r = &run.summary["segmenters"][1]["run"];
    println!("model grid 2x finer: Dice {d_fine:.5}, {r}");
    assert_eq!(r["model_grid"], serde_json::json!([16, 256, 256]));
    assert!(d_fine >= 0.98, "{d_fine}");
    let _ = std::fs::remove_file(&run.rtstruct);

    // CT at 1.953 mm, model at twice that: the lungs' outline is known to
    // the model only on its 3.9 mm grid, a staircase against the CT's
    // (as nnU-Net's results at a coarser plan spacing are); the bound is
    // what that leaves, and a slice shift scores far below it.
    let s = section([2.5, 3.90625, 3.90625], [16, 48, 48], 2);
    let run = segment_synthetic_ct(256, 16, &s);
    let keep = away_from_air(&run.hu, 2);
    let want = only(&expected(&run.hu), &keep);
    let got = only(&mask_of(&run.labels, 1.0), &keep);
    let d_coarse = dice(&got, &want);
    let d_unshifted = dice(&got, &only(&lungs_unshifted(&run.hu), &keep));
    let r = &run.summary["segmenters"][1]["run"];
    println!("model grid 2x coarser: Dice {d_coarse:.5} (unshifted {d_unshifted:.5}), {r}");
    assert_eq!(r["model_grid"], serde_json::json!([16, 128, 128]));
    assert!(d_coarse >= 0.98, "{d_coarse}");
    assert!(d_unshifted < d_coarse - 0.03, "{d_unshifted} vs {d_coarse}");
    let _ = std::fs::remove_file(&run.rtstruct);
}

/// A feet-first CT (slices running inferior) is the same patient: the
/// model must see it superior-up and give the same voxels back.
#[test]
fn a_feet_first_ct_gives_the_same_labels() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices: 12,
        ..SynthOptions::default().with_rows(64)
    };
    write_ct_series(&input, &opts).unwrap();
    let out = dir.path().join("out");
    let s = section([2.5, 7.8125, 7.8125], [8, 32, 32], 2);
    let segmenter = model_segmenter(&s.models[0], Path::new("/")).unwrap();
    run_course(&input, &out, model_only(segmenter.clone()));
    let hu = Volume::read_nrrd(&find(&out.join("courses"), "volume.nrrd")[0]).unwrap();
    let hfs = segmenter.segment(&hu, &|_| {}).unwrap();
    assert_eq!(
        hfs.iter()
            .zip(expected(&hu))
            .filter(|(&l, e)| (l == 1) != *e)
            .count(),
        0,
        "on the model's own grid the labels are exact"
    );
    // The same voxels listed from the top slice down.
    let mut ffs = hu.clone();
    ffs.data.invert_axis(ndarray::Axis(0));
    ffs.data = ffs.data.as_standard_layout().to_owned();
    let g = &mut ffs.geometry;
    let top = hu.geometry.position((hu.data.dim().0 - 1) as f64, 0.0, 0.0);
    g.origin = top;
    g.directions[2] = [0.0, 0.0, -1.0];
    let mut labels = segmenter.segment(&ffs, &|_| {}).unwrap();
    labels.invert_axis(ndarray::Axis(0));
    assert_eq!(labels, hfs);
}

/// What `rtnode doctor` prints about models.
#[test]
fn doctor_reports_libtorch_cuda_and_each_model() {
    use rtnode::segmentation::model::CheckLevel as Level;
    use rtnode::segmentation::model_report;
    let s = section([2.5, 3.90625, 3.90625], [16, 64, 64], 2);
    let report = model_report(&s, Path::new("/"));
    for f in &report {
        println!("{:?} {}: {}", f.level, f.check, f.detail);
    }
    let line = |check: &str| {
        report
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} line"))
    };
    assert!(line("libtorch").detail.contains("2.13.0"));
    assert_ne!(line("cuda").level, Level::Fail, "auto never requires CUDA");
    let model = line("model tiny lung shift");
    assert_eq!(model.level, Level::Ok, "{}", model.detail);
    assert!(model.detail.contains("2 channels"), "{}", model.detail);

    // A label map naming a channel the network does not have is caught
    // before any course runs.
    let mut bad = s.clone();
    bad.models[0].labels[0].value = 5;
    let report = model_report(&bad, Path::new("/"));
    let model = report
        .iter()
        .find(|f| f.check == "model tiny lung shift")
        .unwrap();
    assert_eq!(model.level, Level::Fail);
    assert!(model.detail.contains("output channels"), "{}", model.detail);
}

/// The rtnode side of `benches/segmentation_torch.sh` (run there in
/// release): a synthetic CT through the stage with the model named by
/// RTNODE_BENCH_MODEL (cold: a fresh process, as the first course), then
/// the same volume through the warm model RTNODE_BENCH_REPEAT times; prints
/// one `BENCH_JSON` line with the records and where the volume and labels
/// are.
#[test]
#[ignore = "a benchmark: bash benches/segmentation_torch.sh"]
fn bench_stage_for_the_script() {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let model = PathBuf::from(var("RTNODE_BENCH_MODEL", ""));
    let dir = PathBuf::from(var("RTNODE_BENCH_DIR", ""));
    assert!(
        model.is_file() && dir.is_dir(),
        "set RTNODE_BENCH_MODEL and RTNODE_BENCH_DIR"
    );
    let rows: u16 = var("RTNODE_BENCH_ROWS", "256").parse().unwrap();
    let slices: u32 = var("RTNODE_BENCH_SLICES", "64").parse().unwrap();
    let classes: u16 = var("RTNODE_BENCH_CLASSES", "5").parse().unwrap();
    let batch: usize = var("RTNODE_BENCH_BATCH", "2").parse().unwrap();
    let patch: Vec<usize> = var("RTNODE_BENCH_PATCH", "32,96,96")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let opts = SynthOptions {
        slices,
        ..SynthOptions::default().with_rows(rows)
    };
    let input = dir.join("in");
    write_ct_series(&input, &opts).unwrap();
    let labels: String = (1..classes)
        .map(|c| format!("      - {{value: {c}, name: Bench_{c}, colour: [{c}, 100, 200]}}\n"))
        .collect();
    // The model grid is the CT grid, so that Python torch can be fed the
    // same values without resampling.
    let yaml = format!(
        "models:\n  - name: bench unet\n    file: {}\n    spacing_mm: [{}, {}, {}]\n    patch_size: [{}, {}, {}]\n    batch_size: {batch}\n    device: cpu\n    intensity: {{clip_hu: [-1000, 1000], mean: -100, std: 500}}\n    labels:\n{labels}",
        model.display(),
        opts.slice_thickness_mm,
        opts.pixel_spacing_mm,
        opts.pixel_spacing_mm,
        patch[0],
        patch[1],
        patch[2],
    );
    let s: SegmentationSection = serde_yaml_ng::from_str(&yaml).unwrap();
    let segmenter = model_segmenter(&s.models[0], Path::new("/")).unwrap();
    let out = dir.join("out");
    run_course(&input, &out, model_only(segmenter.clone()));
    let courses = out.join("courses");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&find(&courses, "manifest.json")[0]).unwrap())
            .unwrap();
    let job = &manifest["stages"]["segmentation"];
    let volume = find(&courses, "volume.nrrd")[0].clone();
    let labels = find(&courses, "labels-bench-unet.nrrd")[0].clone();
    let cold = &job["summary"]["segmenters"][0]["run"];
    let threads = cold["threads"].as_u64().unwrap_or(1) as usize;
    let hu = Volume::read_nrrd(&volume).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let repeat: usize = var("RTNODE_BENCH_REPEAT", "3").parse().unwrap();
    let warm: Vec<serde_json::Value> = (0..repeat)
        .map(|_| {
            pool.install(|| segmenter.segment_noted(&hu, &|_| {}))
                .unwrap()
                .1
        })
        .collect();
    let report = serde_json::json!({
        "rows": rows,
        "slices": slices,
        "stage_ms": job["duration_ms"],
        "stage_timings_ms": job["summary"]["timings_ms"],
        "cold": cold,
        "warm": warm,
        "volume": volume,
        "labels": labels,
    });
    println!("BENCH_JSON {report}");
}

/// `rtnode doctor` itself, on a config that registers the model: it names
/// libtorch, CUDA, and the model loaded and run on a patch.
#[test]
fn the_doctor_command_loads_each_configured_model() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("peers.yaml"), "peers: []\n").unwrap();
    std::fs::copy(model_file(), dir.path().join("tiny.pt")).unwrap();
    let cfg = dir.path().join("rtnode.yaml");
    let write = |file: &str| {
        std::fs::write(
            &cfg,
            format!(
                "node: {{bind: 127.0.0.1, port: 0, data_dir: data, peers_file: peers.yaml}}\n\
                 storage: {{min_free_bytes: 1048576}}\n\
                 segmentation:\n  models:\n    - name: tiny lung shift\n      file: {file}\n      \
                 spacing_mm: [2.5, 3.90625, 3.90625]\n      patch_size: [16, 64, 64]\n      \
                 device: cpu\n      labels:\n        - {{value: 1, name: Lung_Shifted, colour: [0, 160, 255]}}\n"
            ),
        )
        .unwrap();
    };
    write("tiny.pt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtnode"))
        .args(["doctor", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("libtorch") && text.contains("2.13.0"),
        "{text}"
    );
    assert!(text.contains("OK    model tiny lung shift"), "{text}");

    // A file that is not a TorchScript model fails the check, by name.
    std::fs::write(dir.path().join("broken.pt"), b"not a model").unwrap();
    write("broken.pt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtnode"))
        .args(["doctor", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("FAIL  model tiny lung shift"), "{text}");
}

/// Summing the patches' scores on the model's device (the GPU path, which
/// keeps patches off the bus) gives the labels of summing them on the
/// host. Here both run on the CPU; only the order of float additions
/// differs, which can move an exact tie and nothing else.
#[test]
fn scores_summed_on_the_device_give_the_host_labels() {
    use rtnode::segmentation::model::torch::TorchSegmenter;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices: 16,
        ..SynthOptions::default().with_rows(96)
    };
    write_ct_series(&input, &opts).unwrap();
    let out = dir.path().join("out");
    // A model grid finer than the CT and overlapping patches, so that the
    // sums really overlap and are resampled back.
    let s = section([2.5, 3.0, 3.0], [8, 48, 48], 3);
    let host = TorchSegmenter::new(&s.models[0], Path::new("/"))
        .unwrap()
        .with_sums_on_device(false);
    let device = TorchSegmenter::new(&s.models[0], Path::new("/"))
        .unwrap()
        .with_sums_on_device(true);
    run_course(
        &input,
        &out,
        model_only(Arc::new(
            TorchSegmenter::new(&s.models[0], Path::new("/")).unwrap(),
        )),
    );
    let hu = Volume::read_nrrd(&find(&out.join("courses"), "volume.nrrd")[0]).unwrap();
    let (a, notes_a) = host.segment_noted(&hu, &|_| {}).unwrap();
    let (b, notes_b) = device.segment_noted(&hu, &|_| {}).unwrap();
    assert_eq!(notes_a["scores_summed_on"], "host");
    assert_eq!(notes_b["scores_summed_on"], "Cpu");
    let differ = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
    let lung = a.iter().filter(|&&v| v == 1).count();
    println!("{differ} of {} voxels differ ({lung} labelled)", a.len());
    assert!(lung > 1000, "the model labels something");
    assert!(differ <= a.len() / 100_000, "{differ} voxels differ");
}
