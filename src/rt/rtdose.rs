//! RT Dose reading into an axis-aligned grid in Gy.
//!
//! Every accepted grid is axial: its row and column directions are patient
//! axes, possibly reversed or swapped (HFS, FFS, HFP, FFP and the decubitus
//! positions). On reading, the voxels are reordered so that x, y and z grow
//! with the array indices; after that no consumer needs to know the
//! patient position. Oblique grids are refused: resampling them would
//! silently change the dose the planning system reported.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use ndarray::Array3;
use serde::{Deserialize, Serialize};

use super::dose_pixels::read_samples;
use crate::dicom::attrs;

/// Direction cosines further than this from a patient axis make a grid oblique.
const AXIS_TOLERANCE: f64 = 1e-3;

/// Everything about an RTDOSE except its voxels; enough to choose doses
/// (`dvh::select_dose`) without loading any grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseHeader {
    /// SOP Instance UID of the RTDOSE.
    pub sop_instance_uid: String,
    /// Series Instance UID of the RTDOSE.
    pub series_instance_uid: String,
    /// FrameOfReferenceUID: the patient coordinate system the grid is in; empty
    /// when absent.
    pub frame_of_reference_uid: String,
    /// DoseUnits: GY or RELATIVE (upper case as read).
    pub units: String,
    /// DoseType: PHYSICAL, EFFECTIVE or ERROR.
    pub dose_type: String,
    /// DoseSummationType: PLAN, MULTI_PLAN, FRACTION, BEAM, BRACHY, …
    pub summation_type: String,
    /// ReferencedRTPlanSequence, one entry per referenced fraction group (or per
    /// plan when it names none); empty when the dose references no plan.
    pub referenced_plans: Vec<PlanReference>,
    /// SOP Instance UID of the referenced RT Structure Set, if any.
    pub referenced_structure_set: Option<String>,
    /// InstanceCreationDate+Time (or ContentDate+Time), for "newest" choices.
    pub created: String,
}

/// One item of the dose's ReferencedRTPlanSequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReference {
    /// SOP Instance UID of the referenced RT Plan.
    pub plan_uid: String,
    /// ReferencedFractionGroupNumber, for FRACTION and BEAM doses.
    pub fraction_group: Option<i64>,
    /// ReferencedBeamNumbers, for BEAM doses.
    pub beams: Vec<i64>,
}

impl DoseHeader {
    /// Reads the header only (stops before Pixel Data).
    pub fn from_file(path: &Path) -> Result<DoseHeader> {
        let obj = attrs::open(path, true)?;
        Self::from_object(&obj).with_context(|| format!("reading RTDOSE {}", path.display()))
    }

    /// Reads the header of a parsed RTDOSE; an error when the modality is other
    /// than RTDOSE (an absent Modality is accepted).
    pub fn from_object(obj: &InMemDicomObject) -> Result<DoseHeader> {
        let modality = attrs::code(obj, tags::MODALITY);
        ensure!(
            modality == "RTDOSE" || modality.is_empty(),
            "modality is {modality}, not RTDOSE"
        );
        let mut referenced_plans = Vec::new();
        for p in attrs::items(obj, tags::REFERENCED_RT_PLAN_SEQUENCE) {
            let plan_uid = attrs::text(&p, tags::REFERENCED_SOP_INSTANCE_UID);
            let fgs = attrs::items(&p, tags::REFERENCED_FRACTION_GROUP_SEQUENCE);
            if fgs.is_empty() {
                referenced_plans.push(PlanReference {
                    plan_uid: plan_uid.clone(),
                    fraction_group: None,
                    beams: Vec::new(),
                });
            }
            for fg in fgs {
                let beams = attrs::items(&fg, tags::REFERENCED_BEAM_SEQUENCE)
                    .iter()
                    .filter_map(|b| attrs::int(b, tags::REFERENCED_BEAM_NUMBER))
                    .collect();
                referenced_plans.push(PlanReference {
                    plan_uid: plan_uid.clone(),
                    fraction_group: attrs::int(&fg, tags::REFERENCED_FRACTION_GROUP_NUMBER),
                    beams,
                });
            }
        }
        let date_time = |d, t| {
            let d = attrs::text(obj, d);
            (!d.is_empty()).then(|| format!("{d}{}", attrs::text(obj, t)))
        };
        let created = date_time(tags::INSTANCE_CREATION_DATE, tags::INSTANCE_CREATION_TIME)
            .or_else(|| date_time(tags::CONTENT_DATE, tags::CONTENT_TIME))
            .unwrap_or_default();
        Ok(DoseHeader {
            sop_instance_uid: attrs::text(obj, tags::SOP_INSTANCE_UID),
            series_instance_uid: attrs::text(obj, tags::SERIES_INSTANCE_UID),
            frame_of_reference_uid: attrs::text(obj, tags::FRAME_OF_REFERENCE_UID),
            units: attrs::code(obj, tags::DOSE_UNITS),
            dose_type: attrs::code(obj, tags::DOSE_TYPE),
            summation_type: attrs::code(obj, tags::DOSE_SUMMATION_TYPE),
            referenced_plans,
            referenced_structure_set: attrs::referenced_uids(
                obj,
                tags::REFERENCED_STRUCTURE_SET_SEQUENCE,
            )
            .into_iter()
            .next(),
            created,
        })
    }

    /// Whether the dose is in absolute units (DoseUnits GY), not RELATIVE.
    pub fn is_absolute(&self) -> bool {
        self.units == "GY"
    }
}

/// An axis-aligned grid: node (i, j, k) is at (x0 + i dx, y0 + j dy, `z[k]`),
/// with dx, dy > 0 and z ascending (frames may be unevenly spaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridGeometry {
    /// x of the first column of nodes, patient LPS mm.
    pub x0: f64,
    /// Node spacing along x, mm (> 0).
    pub dx: f64,
    /// Number of nodes along x.
    pub nx: usize,
    /// y of the first row of nodes, patient LPS mm.
    pub y0: f64,
    /// Node spacing along y, mm (> 0).
    pub dy: f64,
    /// Number of nodes along y.
    pub ny: usize,
    /// z of each frame, patient LPS mm, strictly ascending.
    pub z: Vec<f64>,
    /// How far the grid's voxels reach below the first and above the last
    /// frame (half a frame spacing; for a single frame, half its slice
    /// thickness or of the in-plane spacing).
    pub z_margin: [f64; 2],
}

/// Where an in-plane point falls in a grid, for repeated interpolation
/// along z at the same (x, y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellXY {
    /// Index of the node at or below x (clamped so that i0 + 1 < nx when nx > 1).
    pub i0: usize,
    /// Index of the node at or below y (clamped like `i0`).
    pub j0: usize,
    /// Fraction of the way from node `i0` to `i0 + 1` along x, 0 to 1.
    pub fx: f64,
    /// Fraction of the way from node `j0` to `j0 + 1` along y, 0 to 1.
    pub fy: f64,
}

impl GridGeometry {
    /// Number of frames (nodes along z).
    pub fn nz(&self) -> usize {
        self.z.len()
    }

    /// x of node column `i`, mm.
    pub fn x(&self, i: usize) -> f64 {
        self.x0 + i as f64 * self.dx
    }

    /// y of node row `j`, mm.
    pub fn y(&self, j: usize) -> f64 {
        self.y0 + j as f64 * self.dy
    }

    /// Voxel-edge bounds [[x_lo, x_hi], [y_lo, y_hi], [z_lo, z_hi]].
    pub fn bounds(&self) -> [[f64; 2]; 3] {
        let zl = self.z.first().copied().unwrap_or(0.0);
        let zh = self.z.last().copied().unwrap_or(0.0);
        [
            [
                self.x0 - 0.5 * self.dx,
                self.x(self.nx.saturating_sub(1)) + 0.5 * self.dx,
            ],
            [
                self.y0 - 0.5 * self.dy,
                self.y(self.ny.saturating_sub(1)) + 0.5 * self.dy,
            ],
            [zl - self.z_margin[0], zh + self.z_margin[1]],
        ]
    }

    /// Mean voxel volume in mm³ (for choosing the finest of several grids).
    pub fn voxel_volume_mm3(&self) -> f64 {
        let b = self.bounds();
        self.dx * self.dy * (b[2][1] - b[2][0]) / self.nz().max(1) as f64
    }

    /// Whether (x, y), in mm, lies within the grid's in-plane voxel bounds.
    pub fn contains_xy(&self, x: f64, y: f64) -> bool {
        let b = self.bounds();
        x >= b[0][0] && x <= b[0][1] && y >= b[1][0] && y <= b[1][1]
    }

    /// Bilinear position of (x, y): inside the voxel bounds, values beyond
    /// the outermost nodes are the outermost nodes' (no extrapolation).
    pub fn cell_xy(&self, x: f64, y: f64) -> Option<CellXY> {
        let (i0, fx) = self.cell_x(x)?;
        let (j0, fy) = self.cell_y(y)?;
        Some(CellXY { i0, j0, fx, fy })
    }

    /// The x part of [`Self::cell_xy`].
    pub fn cell_x(&self, x: f64) -> Option<(usize, f64)> {
        let b = self.x0 - 0.5 * self.dx;
        if x < b || x > b + self.nx as f64 * self.dx {
            return None;
        }
        Some(axis_cell((x - self.x0) / self.dx, self.nx))
    }

    /// The y part of [`Self::cell_xy`].
    pub fn cell_y(&self, y: f64) -> Option<(usize, f64)> {
        let b = self.y0 - 0.5 * self.dy;
        if y < b || y > b + self.ny as f64 * self.dy {
            return None;
        }
        Some(axis_cell((y - self.y0) / self.dy, self.ny))
    }

    /// The frame interval holding z: (k, w) with z between frames k and
    /// k+1 at fraction w; clamped to the end frames within `z_margin`.
    pub fn cell_z(&self, z: f64) -> Option<(usize, f64)> {
        let b = self.bounds();
        if z < b[2][0] || z > b[2][1] || self.z.is_empty() {
            return None;
        }
        let n = self.z.len();
        if n == 1 || z <= self.z[0] {
            return Some((0, 0.0));
        }
        if z >= self.z[n - 1] {
            return Some((n - 2, 1.0));
        }
        let k = self
            .z
            .partition_point(|&v| v <= z)
            .saturating_sub(1)
            .min(n - 2);
        let w = (z - self.z[k]) / (self.z[k + 1] - self.z[k]);
        Some((k, w.clamp(0.0, 1.0)))
    }
}

fn axis_cell(t: f64, n: usize) -> (usize, f64) {
    if n <= 1 {
        return (0, 0.0);
    }
    let t = t.clamp(0.0, (n - 1) as f64);
    let i = (t.floor() as usize).min(n - 2);
    (i, t - i as f64)
}

/// What a dose grid stands for, which decides what may be compared with
/// it: a planned total (what prescriptions, constraints and VxGy
/// thresholds refer to), or one fraction's dose used as stored because the
/// user named it without the plan that says how many fractions there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DoseScope {
    /// The dose of the whole treatment (PLAN, MULTI_PLAN, a FRACTION dose
    /// scaled by its fractions, summed BEAM doses).
    #[default]
    Total,
    /// A FRACTION dose as stored, not scaled: dose metrics describe the
    /// grid, but nothing in absolute Gy or relative to a prescription is
    /// evaluated against it.
    FractionAsStored,
}

impl DoseScope {
    /// The words every output repeats for a [`DoseScope::FractionAsStored`] dose.
    pub const FRACTION_AS_STORED: &'static str =
        "FRACTION dose as stored; plan not available; not scaled";
}

/// How a grid came about; every DVH output repeats it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DoseProvenance {
    /// Total, or a fraction's dose as stored.
    #[serde(default)]
    pub scope: DoseScope,
    /// In words: "PLAN dose", "sum of 4 BEAM doses", "FRACTION dose × 25"…
    pub description: String,
    /// SOP Instance UIDs of every RTDOSE that went into the grid.
    pub dose_uids: Vec<String>,
    /// SOP Instance UIDs of the plans they belong to.
    pub plan_uids: Vec<String>,
    /// Prescriptions of those plans.
    pub prescriptions: Vec<super::plan::Prescription>,
    /// Decisions and oddities, in words.
    pub notes: Vec<String>,
}

/// An RTDOSE with its voxels, reordered onto an axis-aligned grid (see the
/// module documentation).
#[derive(Debug, Clone)]
pub struct DoseGrid {
    /// The RTDOSE's attributes.
    pub header: DoseHeader,
    /// Where the voxels lie, patient LPS mm.
    pub geometry: GridGeometry,
    /// Dose in Gy (or relative units when `header.units` is RELATIVE),
    /// indexed [k (z), j (y), i (x)].
    pub data: Array3<f32>,
    /// How the grid came about (one file, a sum, a scaled fraction dose).
    pub provenance: DoseProvenance,
    /// Oddities of the file and how they were handled.
    pub notes: Vec<String>,
}

impl DoseGrid {
    /// Reads the RTDOSE file at `path`, voxels included; see
    /// [`DoseGrid::from_object`].
    pub fn from_file(path: &Path) -> Result<DoseGrid> {
        let obj = attrs::open(path, false)?;
        Self::from_object(&obj).with_context(|| format!("reading RTDOSE {}", path.display()))
    }

    /// A grid built in memory; `data` is `[z][y][x]` in Gy.
    pub fn from_array(
        header: DoseHeader,
        geometry: GridGeometry,
        data: Array3<f32>,
    ) -> Result<DoseGrid> {
        ensure!(
            data.dim() == (geometry.nz(), geometry.ny, geometry.nx),
            "array shape {:?} does not match the geometry",
            data.dim()
        );
        let provenance = DoseProvenance {
            description: format!("{} dose", header.summation_type),
            dose_uids: vec![header.sop_instance_uid.clone()],
            plan_uids: header
                .referenced_plans
                .iter()
                .map(|p| p.plan_uid.clone())
                .collect(),
            ..Default::default()
        };
        Ok(DoseGrid {
            header,
            geometry,
            data,
            provenance,
            notes: Vec::new(),
        })
    }

    /// Reads a parsed RTDOSE: the pixel data scaled by DoseGridScaling to Gy
    /// (CGY converted), reordered so that x, y and z grow with the indices. An
    /// error for oblique or non-axial grids, unknown DoseUnits or frames that
    /// share a z.
    pub fn from_object(obj: &DefaultDicomObject) -> Result<DoseGrid> {
        let header = DoseHeader::from_object(obj)?;
        let mut notes = Vec::new();
        let rows = attrs::int(obj, tags::ROWS).context("no Rows")? as usize;
        let cols = attrs::int(obj, tags::COLUMNS).context("no Columns")? as usize;
        let frames = attrs::int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
        ensure!(rows > 0 && cols > 0, "empty dose grid ({rows}×{cols})");
        let ipp = attrs::floats(obj, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .context("no ImagePositionPatient")?;
        let iop = attrs::floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() == 6)
            .context("no ImageOrientationPatient")?;
        let ps = attrs::floats(obj, tags::PIXEL_SPACING)
            .filter(|v| v.len() == 2 && v.iter().all(|s| *s > 0.0))
            .context("no valid PixelSpacing")?;
        let scaling = match attrs::float(obj, tags::DOSE_GRID_SCALING) {
            Some(s) if s > 0.0 => s,
            _ => {
                notes.push("no DoseGridScaling: 1 assumed".into());
                1.0
            }
        };
        let unit_factor = match header.units.as_str() {
            "GY" | "RELATIVE" => 1.0,
            "CGY" => {
                notes.push("DoseUnits CGY (not a standard value): converted to Gy".into());
                0.01
            }
            other => bail!("unknown DoseUnits {other:?}"),
        };
        let offsets = frame_offsets(obj, &ipp, &iop, frames, &mut notes)?;
        let raw = read_samples(obj, rows, cols, frames)?;
        let factor = scaling * unit_factor;

        let row_dir = [iop[0], iop[1], iop[2]];
        let col_dir = [iop[3], iop[4], iop[5]];
        let normal = cross(row_dir, col_dir);
        let axis_r = axis_of(row_dir).context("oblique ImageOrientationPatient (row direction)")?;
        let axis_c =
            axis_of(col_dir).context("oblique ImageOrientationPatient (column direction)")?;
        let axis_n = axis_of(normal).context("oblique ImageOrientationPatient")?;
        ensure!(
            axis_n.0 == 2,
            "dose planes are not axial (ImageOrientationPatient {iop:?})"
        );
        // Pixel (r, c) of frame f is at ipp + c*ps[1]*row_dir + r*ps[0]*col_dir + off[f]*normal.
        let (nx, ny, x_from_col) = if axis_r.0 == 0 {
            (cols, rows, true)
        } else {
            (rows, cols, false)
        };
        let (sx, sy) = if x_from_col {
            (ps[1] * axis_r.1, ps[0] * axis_c.1)
        } else {
            (ps[0] * axis_c.1, ps[1] * axis_r.1)
        };
        let zs: Vec<f64> = offsets.iter().map(|o| ipp[2] + o * axis_n.1).collect();
        let mut order: Vec<usize> = (0..frames).collect();
        order.sort_by(|a, b| zs[*a].total_cmp(&zs[*b]));
        let z: Vec<f64> = order.iter().map(|&f| zs[f]).collect();
        if z.windows(2).any(|w| w[1] - w[0] < 1e-6) {
            bail!("two dose frames share a z position");
        }
        if !offsets.windows(2).all(|w| w[1] > w[0]) && !offsets.windows(2).all(|w| w[1] < w[0]) {
            notes.push("GridFrameOffsetVector not monotonic: frames sorted by z".into());
        }
        let x0 = ipp[0] + if sx < 0.0 { sx * (nx - 1) as f64 } else { 0.0 };
        let y0 = ipp[1] + if sy < 0.0 { sy * (ny - 1) as f64 } else { 0.0 };
        let mut data = Array3::<f32>::zeros((frames, ny, nx));
        for (k, &f) in order.iter().enumerate() {
            let frame = &raw[f * rows * cols..(f + 1) * rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    let (i, j) = if x_from_col { (c, r) } else { (r, c) };
                    let i = if sx < 0.0 { nx - 1 - i } else { i };
                    let j = if sy < 0.0 { ny - 1 - j } else { j };
                    data[[k, j, i]] = (frame[r * cols + c] * factor) as f32;
                }
            }
        }
        let in_plane = sx.abs().min(sy.abs());
        let z_margin = if z.len() > 1 {
            [0.5 * (z[1] - z[0]), 0.5 * (z[z.len() - 1] - z[z.len() - 2])]
        } else {
            let t = attrs::float(obj, tags::SLICE_THICKNESS)
                .filter(|t| *t > 0.0)
                .unwrap_or_else(|| {
                    notes.push(
                        "single-frame dose without SliceThickness: its plane is taken as thick as a pixel"
                            .into(),
                    );
                    in_plane
                });
            [0.5 * t, 0.5 * t]
        };
        if data.iter().any(|v| *v < 0.0) {
            notes.push("negative dose values present (signed pixel data)".into());
        }
        let geometry = GridGeometry {
            x0,
            dx: sx.abs(),
            nx,
            y0,
            dy: sy.abs(),
            ny,
            z,
            z_margin,
        };
        let mut grid = DoseGrid::from_array(header, geometry, data)?;
        grid.notes = notes;
        Ok(grid)
    }

    /// The largest voxel value, Gy (or relative units); 0 for an all-negative or
    /// empty grid.
    pub fn max_dose(&self) -> f64 {
        self.data.iter().fold(0.0f32, |m, v| m.max(*v)) as f64
    }

    /// Dose at (x, y) on frame k.
    pub fn plane_value(&self, k: usize, c: &CellXY) -> f64 {
        let g = &self.geometry;
        let i1 = (c.i0 + 1).min(g.nx - 1);
        let j1 = (c.j0 + 1).min(g.ny - 1);
        let d = &self.data;
        let a = d[[k, c.j0, c.i0]] as f64;
        let b = d[[k, c.j0, i1]] as f64;
        let e = d[[k, j1, c.i0]] as f64;
        let f = d[[k, j1, i1]] as f64;
        let top = a + (b - a) * c.fx;
        let bottom = e + (f - e) * c.fx;
        top + (bottom - top) * c.fy
    }

    /// Trilinear dose at a patient point; `None` outside the grid's voxels.
    pub fn sample(&self, x: f64, y: f64, z: f64) -> Option<f64> {
        let c = self.geometry.cell_xy(x, y)?;
        let (k, w) = self.geometry.cell_z(z)?;
        let lo = self.plane_value(k, &c);
        if self.geometry.nz() == 1 {
            return Some(lo);
        }
        let hi = self.plane_value(k + 1, &c);
        Some(lo + (hi - lo) * w)
    }

    /// This dose resampled trilinearly onto `target`; zero outside its own
    /// voxels. Returns the array and the fraction of target nodes outside.
    pub fn resample(&self, target: &GridGeometry) -> (Array3<f32>, f64) {
        use rayon::prelude::*;
        let (nx, ny, nz) = (target.nx, target.ny, target.nz());
        let mut out = vec![0.0f32; nx * ny * nz];
        let outside: usize = out
            .par_chunks_mut((nx * ny).max(1))
            .enumerate()
            .map(|(k, plane)| {
                let z = target.z[k];
                let mut n = 0;
                for j in 0..ny {
                    for i in 0..nx {
                        match self.sample(target.x(i), target.y(j), z) {
                            Some(v) => plane[j * nx + i] = v as f32,
                            None => n += 1,
                        }
                    }
                }
                n
            })
            .sum();
        let total = (nx * ny * nz).max(1);
        let out = Array3::from_shape_vec((nz, ny, nx), out)
            .unwrap_or_else(|_| Array3::zeros((nz, ny, nx)));
        (out, outside as f64 / total as f64)
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// (axis index, sign) of a unit vector along a patient axis.
fn axis_of(v: [f64; 3]) -> Option<(usize, f64)> {
    let a = (0..3).max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))?;
    let others_small = (0..3)
        .filter(|&b| b != a)
        .all(|b| v[b].abs() < AXIS_TOLERANCE);
    ((v[a].abs() - 1.0).abs() < AXIS_TOLERANCE && others_small).then(|| (a, v[a].signum()))
}

/// Offsets of each frame along the plane normal, relative to the first
/// frame at ImagePositionPatient.
fn frame_offsets(
    obj: &InMemDicomObject,
    ipp: &[f64],
    iop: &[f64],
    frames: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<f64>> {
    let Some(v) = attrs::floats(obj, tags::GRID_FRAME_OFFSET_VECTOR) else {
        ensure!(frames == 1, "{frames} frames but no GridFrameOffsetVector");
        return Ok(vec![0.0]);
    };
    ensure!(
        v.len() >= frames,
        "GridFrameOffsetVector has {} values for {frames} frames",
        v.len()
    );
    if v.len() > frames {
        notes.push(format!(
            "GridFrameOffsetVector has {} values for {frames} frames: the first {frames} used",
            v.len()
        ));
    }
    let v = &v[..frames];
    if v[0] == 0.0 {
        return Ok(v.to_vec());
    }
    // PS3.3 C.8.8.3.2: a first value other than zero means absolute z
    // positions, allowed only for the standard orientation.
    let standard = iop
        .iter()
        .zip([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        .all(|(a, b)| (a - b).abs() < AXIS_TOLERANCE);
    if standard && (v[0] - ipp[2]).abs() < 0.01 {
        notes.push("GridFrameOffsetVector holds absolute z positions".into());
        return Ok(v.iter().map(|z| z - ipp[2]).collect());
    }
    notes.push(format!(
        "GridFrameOffsetVector starts at {} (neither 0 nor the z of ImagePositionPatient): taken relative to its first value",
        v[0]
    ));
    Ok(v.iter().map(|o| o - v[0]).collect())
}
