//! Shared by the segmentation tests: an RT Structure Set read back with
//! dicom-object alone (independent of the writer), its contours
//! rasterised onto the CT grid by the even-odd rule, and the external
//! readers (dciodvfy, dcmdump, pydicom).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use rtnode::pipeline::PipelineSection;
use rtnode::pipeline::{Pipeline, PipelineOptions};
use rtnode::segmentation::contour;
use rtnode::stages::organize::Organize;
use rtnode::stages::segmentation::Segmentation;
use rtnode::stages::Stage;
use rtnode::state::StateDb;
use rtnode::store::{Store, StoreOptions};
use rtnode::volume::Geometry;

pub struct ReadRoi {
    pub number: i64,
    pub name: String,
    pub colour: Vec<i64>,
    pub interpreted_type: String,
    pub algorithm: String,
    /// (referenced SOP Instance UID, points in mm)
    pub contours: Vec<(String, Vec<[f64; 3]>)>,
}

pub fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

pub fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Vec<InMemDicomObject> {
    obj.get(tag)
        .and_then(|e| e.items())
        .map(|v| v.to_vec())
        .unwrap_or_default()
}

fn int(obj: &InMemDicomObject, tag: dicom_core::Tag) -> i64 {
    obj.get(tag)
        .and_then(|e| e.to_int::<i64>().ok())
        .unwrap_or(-1)
}

pub fn read_rois(obj: &InMemDicomObject) -> Vec<ReadRoi> {
    let mut rois: Vec<ReadRoi> = items(obj, tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .map(|it| ReadRoi {
            number: int(it, tags::ROI_NUMBER),
            name: text(it, tags::ROI_NAME),
            colour: Vec::new(),
            interpreted_type: String::new(),
            algorithm: text(it, tags::ROI_GENERATION_ALGORITHM),
            contours: Vec::new(),
        })
        .collect();
    for it in items(obj, tags::ROI_CONTOUR_SEQUENCE) {
        let n = int(&it, tags::REFERENCED_ROI_NUMBER);
        let roi = rois.iter_mut().find(|r| r.number == n).expect("ROI number");
        roi.colour = it
            .get(tags::ROI_DISPLAY_COLOR)
            .unwrap()
            .to_multi_int::<i64>()
            .unwrap();
        for c in items(&it, tags::CONTOUR_SEQUENCE) {
            assert_eq!(text(&c, tags::CONTOUR_GEOMETRIC_TYPE), "CLOSED_PLANAR");
            let imgs = items(&c, tags::CONTOUR_IMAGE_SEQUENCE);
            assert_eq!(imgs.len(), 1, "each contour references its one image");
            let uid = text(&imgs[0], tags::REFERENCED_SOP_INSTANCE_UID);
            let data = c
                .get(tags::CONTOUR_DATA)
                .unwrap()
                .to_multi_float64()
                .unwrap();
            assert_eq!(
                data.len() as i64,
                3 * int(&c, tags::NUMBER_OF_CONTOUR_POINTS)
            );
            let pts = data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
            roi.contours.push((uid, pts));
        }
    }
    for it in items(obj, tags::RTROI_OBSERVATIONS_SEQUENCE) {
        let n = int(&it, tags::REFERENCED_ROI_NUMBER);
        let roi = rois.iter_mut().find(|r| r.number == n).expect("ROI number");
        roi.interpreted_type = text(&it, tags::RTROI_INTERPRETED_TYPE);
    }
    rois
}

/// Continuous index (slice, row, column) of a patient point on an
/// orthonormal grid.
pub fn to_index(g: &Geometry, p: [f64; 3]) -> [f64; 3] {
    let d = [p[0] - g.origin[0], p[1] - g.origin[1], p[2] - g.origin[2]];
    let dot = |a: [f64; 3]| d[0] * a[0] + d[1] * a[1] + d[2] * a[2];
    [
        dot(g.directions[2]) / g.spacing[2],
        dot(g.directions[1]) / g.spacing[1],
        dot(g.directions[0]) / g.spacing[0],
    ]
}

/// The ROI's contours filled even-odd at the voxel centres of the grid.
/// Checks on the way that each contour lies in the plane of the image it
/// references.
pub fn rasterise(roi: &ReadRoi, g: &Geometry, slice_uids: &[String]) -> Vec<bool> {
    let [cols, rows, n] = g.size;
    let mut per_slice: Vec<Vec<contour::Loop>> = vec![Vec::new(); n];
    for (uid, pts) in &roi.contours {
        let k = slice_uids
            .iter()
            .position(|u| u == uid)
            .unwrap_or_else(|| panic!("contour references {uid}, not an image of the series"));
        let l: contour::Loop = pts
            .iter()
            .map(|&p| {
                let idx = to_index(g, p);
                assert!(
                    (idx[0] - k as f64).abs() * g.spacing[2] < 0.01,
                    "point {p:?} is off the plane of image {k} ({})",
                    idx[0]
                );
                [idx[1], idx[2]]
            })
            .collect();
        per_slice[k].push(l);
    }
    let mut out = Vec::with_capacity(n * rows * cols);
    for loops in &per_slice {
        out.extend(contour::rasterise(loops, rows, cols));
    }
    out
}

fn tool(name: &str, package: &str) -> std::path::PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: install {package} (bash tests/setup.sh)");
}

/// dciodvfy's verdict: its error lines (empty when the IOD is valid) and
/// everything it printed.
pub fn dciodvfy(path: &Path) -> (Vec<String>, String) {
    let out = Command::new(tool("dciodvfy", "dicom3tools"))
        .arg(path)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = all
        .lines()
        .filter(|l| l.starts_with("Error") || l.contains("E:"))
        .map(str::to_string)
        .collect();
    (errors, all)
}

/// dcmdump's listing, text converted from the file's character set.
pub fn dcmdump(path: &Path) -> String {
    let out = Command::new(tool("dcmdump", "dcmtk"))
        .args(["-q", "+U8"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dcmdump failed: {stderr}");
    assert!(stderr.trim().is_empty(), "dcmdump warned: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads the structure set with pydicom and returns what it saw, as JSON.
pub fn pydicom_summary(path: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
rois = {r.ROINumber: r.ROIName for r in ds.StructureSetROISequence}
out = {
    "modality": ds.Modality,
    "patient_name": str(ds.PatientName),
    "study": ds.StudyInstanceUID,
    "charset": ds.get("SpecificCharacterSet", ""),
    "approval": ds.ApprovalStatus,
    "images": len(ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
                  .RTReferencedSeriesSequence[0].ContourImageSequence),
    "rois": [],
}
for rc in ds.ROIContourSequence:
    cs = rc.get("ContourSequence", [])
    for c in cs:
        assert len(c.ContourData) == 3 * int(c.NumberOfContourPoints)
    out["rois"].append({"name": rois[rc.ReferencedROINumber],
                        "contours": len(cs),
                        "points": sum(int(c.NumberOfContourPoints) for c in cs)})
print(json.dumps(out))
"#;
    // The repo's test venv (tests/setup.sh) has pydicom.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run tests/setup.sh",
        python.display()
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "pydicom could not read the structure set (pip install pydicom): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn find(root: &Path, name: &str) -> Vec<PathBuf> {
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

/// Imports `input` into a data directory at `out` and runs organize and
/// `segmentation` on every course, as `rtnode process` does.
pub fn run_course(input: &Path, out: &Path, segmentation: Segmentation) {
    let store = Store::open(StoreOptions {
        data_dir: out.to_path_buf(),
        fsync: false,
        min_free_bytes: 0,
        index_cache_bytes: rtnode::store::index::DEFAULT_CACHE_BYTES,
    })
    .unwrap();
    for path in rtnode::import::collect_files(&[input.to_path_buf()]).unwrap() {
        let item = rtnode::import::prepare(&path).unwrap();
        let mut pending = store
            .begin(&item.sop_class, &item.sop_instance, &item.ts, "")
            .unwrap();
        item.for_each_chunk(1 << 20, |c| {
            pending.write(c);
            Ok(())
        })
        .unwrap();
        store.commit_blocking(pending.finish().unwrap()).unwrap();
    }
    let state = Arc::new(StateDb::open(out).unwrap());
    let stages: Vec<Arc<dyn Stage>> = vec![Arc::new(Organize), Arc::new(segmentation)];
    let pipeline = Pipeline::with_stages(
        out,
        state.clone(),
        PipelineOptions {
            settings: PipelineSection {
                trigger: rtnode::pipeline::TriggerRule::Ct,
                ..PipelineSection::default()
            },
            immediate: true,
            stage_config: None,
        },
        stages,
    )
    .unwrap();
    pipeline.load_index(store.index().clone());
    pipeline.run_until_idle().unwrap();
    let problems = pipeline.any_failed_or_held();
    assert!(problems.is_empty(), "{problems:?}");
    state.flush().unwrap();
    store.close().unwrap();
}
