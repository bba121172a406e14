//! organize: the planning image series as one volume — slices sorted along
//! their normal, the geometry built from them, pixel data decoded (any
//! transfer syntax dicom-pixeldata decodes) and rescaled to HU. The work is
//! `crate::series`; this adapter takes the positions from the course's
//! files and writes `volume.nrrd` and `geometry.json`.

use anyhow::{bail, Context, Result};
use dicom_dictionary_std::tags;
use ndarray::Array3;
use serde::Serialize;

use super::{member_keys, Inputs, Outcome, Stage, StageContext, StageId};
use crate::course::Course;
use crate::series::{decode_planes, series_geometry, text, Slice};
use crate::volume::{Geometry, Volume};

/// The organize stage.
pub struct Organize;

/// The CT volume in HU, `[slice, row, column]`, with its geometry (NRRD).
pub const VOLUME_FILE: &str = "volume.nrrd";
/// The series' geometry, modality, UIDs, the SOP Instance UIDs and
/// positions (mm) of the slices in order, and the HU range (JSON).
pub const GEOMETRY_FILE: &str = "geometry.json";

#[derive(Serialize)]
struct GeometryFile<'a> {
    geometry: &'a Geometry,
    modality: &'a str,
    frame_of_reference_uid: &'a str,
    series_instance_uid: &'a str,
    /// SOP Instance UIDs in slice order (index 0 first).
    slices: Vec<String>,
    slice_positions_mm: Vec<f64>,
    hu_min: f32,
    hu_max: f32,
}

impl Stage for Organize {
    fn name(&self) -> StageId {
        StageId::Organize
    }

    fn after(&self) -> &'static [StageId] {
        &[]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        if course.images.is_empty() {
            return Err("no planning image series".into());
        }
        if !course.geometry.complete {
            return Err(format!(
                "image series incomplete: {}",
                course.geometry.problems.join("; ")
            ));
        }
        Ok(member_keys(course.images.iter()))
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        let course = ctx.course;
        let normal = course.geometry.normal.context("no slice normal")?;
        // Positions come from the files themselves, not the index: this is
        // the geometry every later stage computes on.
        let mut slices = Vec::with_capacity(course.images.len());
        for m in &course.images {
            let path = ctx.instance_path(&m.path);
            let obj = dicom_object::OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let ipp = obj
                .get(tags::IMAGE_POSITION_PATIENT)
                .and_then(|e| e.to_multi_float64().ok())
                .filter(|v| v.len() == 3)
                .with_context(|| format!("{} lacks ImagePositionPatient", m.sop_instance_uid))?;
            let position = [ipp[0], ipp[1], ipp[2]];
            let along = position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2];
            slices.push(Slice {
                uid: m.sop_instance_uid.clone(),
                path,
                position,
                along,
            });
        }
        slices.sort_by(|a, b| a.along.total_cmp(&b.along));

        let first = dicom_object::open_file(&slices[0].path)?;
        let rows: usize = first.element(tags::ROWS)?.to_int::<u16>()? as usize;
        let cols: usize = first.element(tags::COLUMNS)?.to_int::<u16>()? as usize;
        let ps = first.element(tags::PIXEL_SPACING)?.to_multi_float64()?;
        let iop = first
            .element(tags::IMAGE_ORIENTATION_PATIENT)?
            .to_multi_float64()?;
        if ps.len() != 2 || iop.len() != 6 {
            bail!("bad PixelSpacing or ImageOrientationPatient");
        }
        let n = slices.len();
        let spacing_z = course.geometry.spacing_mm.context("no slice spacing")?;
        let geometry = series_geometry(&slices, &ps, &iop, spacing_z, rows, cols);

        let data = decode_planes(&slices, rows, cols, ctx.threads, ctx.progress)?;
        let volume = Volume {
            geometry,
            data: Array3::from_shape_vec((n, rows, cols), data)?,
        };
        let (hu_min, hu_max) = volume
            .data
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        volume.write_nrrd(&ctx.out_dir.join(VOLUME_FILE))?;
        let for_uid = text(&first, tags::FRAME_OF_REFERENCE_UID)
            .unwrap_or_else(|| course.frame_of_reference_uid.clone());
        let gf = GeometryFile {
            geometry: &volume.geometry,
            modality: &course.modality,
            frame_of_reference_uid: &for_uid,
            series_instance_uid: &course.planning_series_uid,
            slices: slices.iter().map(|s| s.uid.clone()).collect(),
            slice_positions_mm: slices.iter().map(|s| s.along).collect(),
            hu_min,
            hu_max,
        };
        std::fs::write(
            ctx.out_dir.join(GEOMETRY_FILE),
            serde_json::to_vec_pretty(&gf)?,
        )?;
        Ok(Outcome::done(serde_json::json!({
            "slices": n,
            "size": [cols, rows, n],
            "spacing_mm": volume.geometry.spacing,
            "hu_range": [hu_min, hu_max],
        })))
    }
}
