//! The segmentation stage: the adapter from a course to the segmentation
//! engine (`crate::segmentation`). It reads organize's volume and geometry,
//! runs every configured segmenter, and writes the course's outputs.
//!
//! Outputs: `rtstruct.dcm`; per segmenter a label volume on the CT grid,
//! `labels-<segmenter>.nrrd` (readable by `Volume::read_nrrd`, 3D Slicer
//! and ITK; one file each, because the body overlaps every organ); and
//! `labels.json` (per segmenter: label value → ROI name, colour, type,
//! volume, and which file holds it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use dicom_dictionary_std::tags;
use serde::Deserialize;

use super::organize::{GEOMETRY_FILE, VOLUME_FILE};
use super::{member_keys, Inputs, Outcome, Stage, StageContext, StageId};
use crate::course::Course;
use crate::segmentation::rtstruct::{
    self, ImageRef, RoiContours, RoiSpec, SeriesRef, WriterOptions,
};
use crate::segmentation::{
    contour_labels, labels_file_name, to_patient, write_labels_nrrd, BodyContour, RoiLabel,
    SegmentationOptions, SegmentationSection, Segmenter,
};
use crate::volume::{Geometry, Volume};

/// The structure set of every segmenter's ROIs, on the planning CT.
pub const RTSTRUCT_FILE: &str = "rtstruct.dcm";
/// Per segmenter: label value → ROI name, colour, type, volume, and which
/// label file holds it.
pub const LABEL_MAP_FILE: &str = "labels.json";

/// The segmentation stage.
pub struct Segmentation {
    /// Run in this order; their ROIs go into one structure set, numbered
    /// in the same order.
    pub segmenters: Vec<Arc<dyn Segmenter>>,
    /// UID root and contour tolerance.
    pub options: SegmentationOptions,
}

impl Default for Segmentation {
    fn default() -> Self {
        Segmentation {
            segmenters: vec![Arc::new(BodyContour::default())],
            options: SegmentationOptions::default(),
        }
    }
}

impl Segmentation {
    /// The stage as the config's `segmentation:` section sets it up: the
    /// body contour, then every model (loaded now, once, and kept warm).
    /// `base_dir` is the config file's directory.
    pub fn from_section(section: &SegmentationSection, base_dir: &Path) -> Result<Segmentation> {
        Ok(Segmentation {
            segmenters: section.segmenters(base_dir)?,
            options: section.options(),
        })
    }
}

#[derive(Deserialize)]
struct GeometryFile {
    geometry: Geometry,
    frame_of_reference_uid: String,
    series_instance_uid: String,
    slices: Vec<String>,
}

fn text(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// "name version", cut to an LO's 64 characters.
fn name_and_version(s: &dyn Segmenter) -> String {
    format!("{} {}", s.name(), s.version())
        .chars()
        .take(64)
        .collect()
}

impl Segmentation {
    /// Every segmenter with its version, e.g. "rtnode body contour 1 +
    /// TotalSegmentator 2.4"; an LO, so at most 64 characters (the full
    /// list is in each ROI's generation description and the structure
    /// set's description).
    fn series_description(&self) -> String {
        self.segmenters
            .iter()
            .map(|s| name_and_version(s.as_ref()))
            .collect::<Vec<_>>()
            .join(" + ")
            .chars()
            .take(64)
            .collect()
    }
}

impl Stage for Segmentation {
    fn name(&self) -> StageId {
        StageId::Segmentation
    }

    fn after(&self) -> &'static [StageId] {
        &[StageId::Organize]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        if !course.has_images() {
            return Err("no complete planning image series".into());
        }
        if course.modality != "CT" {
            return Err(format!(
                "the planning images are {}; the segmenters here read CT (HU)",
                course.modality
            ));
        }
        let mut keys = member_keys(course.images.iter());
        for s in &self.segmenters {
            keys.push(format!("segmenter:{}", s.identity()));
        }
        keys.push(format!(
            "options:{}",
            serde_json::to_string(&self.options).unwrap_or_default()
        ));
        Ok(keys)
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        let started = Instant::now();
        let mut timings = serde_json::Map::new();
        let mut lap = |name: String, since: &mut Instant| {
            timings.insert(name, (since.elapsed().as_millis() as u64).into());
            *since = Instant::now();
        };
        let mut t = started;
        ensure!(!self.segmenters.is_empty(), "no segmenter is configured");
        for s in &self.segmenters {
            for l in s.labels() {
                l.validate()
                    .with_context(|| format!("label map of {}", s.name()))?;
            }
        }
        let up = ctx
            .upstream
            .get(&StageId::Organize)
            .context("the organize output is missing")?;
        let gpath = up.join(GEOMETRY_FILE);
        let gf: GeometryFile = serde_json::from_slice(
            &std::fs::read(&gpath).with_context(|| format!("reading {}", gpath.display()))?,
        )
        .with_context(|| format!("parsing {}", gpath.display()))?;
        let volume = Volume::read_nrrd(&up.join(VOLUME_FILE))?;
        let geometry = gf.geometry.clone();
        let (n, rows, cols) = volume.data.dim();
        if [cols, rows, n] != geometry.size || gf.slices.len() != n {
            bail!(
                "organize's volume is {cols}x{rows}x{n}, its geometry {:?} with {} slices",
                geometry.size,
                gf.slices.len()
            );
        }
        // Patient and study come from a slice of the series itself.
        let first_uid = gf.slices.first().context("organize listed no slices")?;
        let first = ctx
            .course
            .images
            .iter()
            .find(|m| &m.sop_instance_uid == first_uid)
            .or_else(|| ctx.course.images.first())
            .context("the course has no images")?;
        let path = ctx.instance_path(&first.path);
        let ct = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let sop_class = text(&ct, tags::SOP_CLASS_UID)
            .unwrap_or_else(|| crate::dicom::uids::CT_IMAGE_STORAGE.to_string());
        let study =
            text(&ct, tags::STUDY_INSTANCE_UID).context("the CT has no StudyInstanceUID")?;

        const TOTAL: u64 = 1000;
        let report = |from: f64, span: f64| {
            move |f: f64| {
                (ctx.progress)(
                    (TOTAL as f64 * (from + span * f.clamp(0.0, 1.0))) as u64,
                    TOTAL,
                )
            }
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.threads.max(1))
            .build()
            .context("thread pool")?;
        lap("read".into(), &mut t);

        // Each segmenter in turn: its label volume is traced, written and
        // dropped before the next runs, so that memory holds one at a time.
        let share = 0.95 / self.segmenters.len() as f64;
        let voxel_cc = geometry.spacing.iter().product::<f64>() / 1000.0;
        let mut rois: Vec<RoiContours> = Vec::new();
        let mut summary_rois = Vec::new();
        let mut runs = Vec::new();
        let mut label_files = Vec::new();
        for (k, segmenter) in self.segmenters.iter().enumerate() {
            let from = share * k as f64;
            let seg_progress = report(from, share * 0.75);
            let contour_progress = report(from + share * 0.75, share * 0.25);
            let labels_map = segmenter.labels();
            let (labels, run_notes) =
                pool.install(|| segmenter.segment_noted(&volume, &seg_progress))?;
            lap(format!("segment {}", segmenter.name()), &mut t);
            ensure!(
                labels.dim() == (n, rows, cols),
                "{} returned {:?} labels for a {:?} volume",
                segmenter.name(),
                labels.dim(),
                (n, rows, cols)
            );
            let traced = pool.install(|| {
                contour_labels(
                    &labels,
                    &geometry,
                    &labels_map,
                    self.options.tolerance_mm,
                    &contour_progress,
                )
            });
            lap(format!("contour {}", segmenter.name()), &mut t);
            let file = labels_file_name(segmenter.name());
            ensure!(
                !label_files.iter().any(|(f, _)| f == &file),
                "two segmenters would write {file}: give them names that differ in letters or digits"
            );
            write_labels_nrrd(&ctx.out_dir.join(&file), &geometry, &labels)?;
            drop(labels);
            let found = traced.iter().filter(|t| t.voxels > 0).count();
            for t in traced.iter().filter(|t| t.voxels > 0) {
                let roi = RoiContours {
                    spec: RoiSpec {
                        number: rois.len() as u32 + 1,
                        name: t.label.name.clone(),
                        colour: t.label.colour,
                        interpreted_type: t.label.interpreted_type.clone(),
                        generation_description: name_and_version(segmenter.as_ref()),
                    },
                    contours: to_patient(t, &geometry),
                };
                summary_rois.push(serde_json::json!({
                    "number": roi.spec.number,
                    "name": roi.spec.name,
                    "segmenter": segmenter.name(),
                    "label": t.label.value,
                    "labels_file": file,
                    "colour": roi.spec.colour,
                    "interpreted_type": roi.spec.interpreted_type,
                    "voxels": t.voxels,
                    "volume_cc": t.voxels as f64 * voxel_cc,
                    "contours": roi.contours.len(),
                    "points": roi.contours.iter().map(|c| c.points.len()).sum::<usize>(),
                    "slices": t.planes.len(),
                }));
                rois.push(roi);
            }
            // A label the model did not find is said, not left out quietly:
            // an empty organ is a finding a physicist wants to see.
            let missing: Vec<&str> = traced
                .iter()
                .filter(|t| t.voxels == 0)
                .map(|t| t.label.name.as_str())
                .collect();
            runs.push(serde_json::json!({
                "segmenter": segmenter.identity(),
                "name": segmenter.name(),
                "version": segmenter.version(),
                "labels_file": file,
                "rois_found": found,
                "labels_not_found": missing,
                "run": run_notes,
            }));
            let label_map: BTreeMap<u16, RoiLabel> =
                labels_map.into_iter().map(|l| (l.value, l)).collect();
            label_files.push((file, (segmenter.identity(), label_map)));
        }
        drop(volume);
        if rois.is_empty() {
            return Ok(Outcome::Skipped(format!(
                "{} found nothing to contour",
                self.series_description()
            )));
        }

        let series = SeriesRef {
            study_instance_uid: study,
            series_instance_uid: gf.series_instance_uid.clone(),
            frame_of_reference_uid: gf.frame_of_reference_uid.clone(),
            images: gf
                .slices
                .iter()
                .map(|uid| ImageRef {
                    sop_class_uid: sop_class.clone(),
                    sop_instance_uid: uid.clone(),
                })
                .collect(),
        };
        let descriptions: Vec<String> = self
            .segmenters
            .iter()
            .map(|s| format!("{} ({})", name_and_version(s.as_ref()), s.description()))
            .collect();
        let opts = WriterOptions {
            uid_root: self.options.uid_root.clone(),
            series_description: self.series_description(),
            label: "rtnode auto".into(),
            name: self.series_description(),
            description: format!(
                "Automatic contours by {}; unapproved until reviewed",
                descriptions.join("; ")
            ),
        };
        let written =
            rtstruct::write(&ctx.out_dir.join(RTSTRUCT_FILE), &ct, &series, &rois, &opts)?;
        std::fs::write(
            ctx.out_dir.join(LABEL_MAP_FILE),
            serde_json::to_vec_pretty(&serde_json::json!({
                "files": label_files
                    .iter()
                    .map(|(file, (identity, labels))| serde_json::json!({
                        "file": file,
                        "segmenter": identity,
                        "labels": labels,
                    }))
                    .collect::<Vec<_>>(),
                "rois": summary_rois,
            }))?,
        )?;
        lap("write".into(), &mut t);
        (ctx.progress)(TOTAL, TOTAL);
        Ok(Outcome::Done {
            summary: serde_json::json!({
                "rtstruct_sop_instance_uid": written.sop_instance_uid,
                "rtstruct_series_instance_uid": written.series_instance_uid,
                "segmenters": runs,
                "series_description": self.series_description(),
                "tolerance_mm": self.options.tolerance_mm,
                "rois": summary_rois,
                "timings_ms": timings,
            }),
            created: vec![written.sop_instance_uid],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::{Member, SeriesGeometry};
    use crate::segmentation::BodyOptions;

    fn course(modality: &str) -> Course {
        Course {
            id: "P-1".into(),
            patient: Default::default(),
            planning_series_uid: "1.2.3".into(),
            modality: modality.into(),
            frame_of_reference_uid: "1.2.4".into(),
            images: vec![Member {
                sop_instance_uid: "1.2.3.1".into(),
                series_instance_uid: "1.2.3".into(),
                content_hash: "abc".into(),
                path: "store/x.dcm".into(),
                calling_ae: String::new(),
                received_at: String::new(),
            }],
            geometry: SeriesGeometry {
                slices: 1,
                complete: true,
                ..Default::default()
            },
            structure_sets: Vec::new(),
            plans: Vec::new(),
            doses: Vec::new(),
            held: None,
            waiting_for: Vec::new(),
            notes: Vec::new(),
            calling_aes: Default::default(),
        }
    }

    #[test]
    fn a_model_or_setting_change_changes_the_fingerprint() {
        let c = course("CT");
        let base = Segmentation::default().inputs(&c).unwrap();
        assert!(base.iter().any(|k| k.starts_with("1.2.3.1:abc")));
        assert!(base.iter().any(|k| k.contains("rtnode body contour")));
        let other_body = Segmentation {
            segmenters: vec![Arc::new(BodyContour {
                options: BodyOptions {
                    threshold_hu: -300.0,
                    ..BodyOptions::default()
                },
            })],
            options: SegmentationOptions::default(),
        };
        assert_ne!(other_body.inputs(&c).unwrap(), base);
        let other_tolerance = Segmentation {
            options: SegmentationOptions {
                tolerance_mm: 1.0,
                ..SegmentationOptions::default()
            },
            ..Segmentation::default()
        };
        assert_ne!(other_tolerance.inputs(&c).unwrap(), base);
        assert!(Segmentation::default().inputs(&course("MR")).is_err());
    }

    #[test]
    fn label_maps_keep_to_tg263_lengths() {
        let mut l = BodyContour::default().labels().remove(0);
        l.validate().unwrap();
        assert_eq!(l.name, "External");
        l.name = "A_Name_Longer_Than16".into();
        assert!(l.validate().is_err());
    }
}
