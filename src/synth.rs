//! Synthetic CT phantom series (`rtnode synth`).
//!
//! The phantom is defined analytically in patient coordinates (mm) so that
//! later stages (RTSTRUCT/RTPLAN/RTDOSE synthesis, auto-contour validation)
//! can compare their results against exact geometry instead of against
//! another rasterisation of it.
//!
//! Conventions, chosen once so that every consumer can rely on them:
//! * Axial HFS, ImageOrientationPatient `1\0\0\0\1\0`: column index grows
//!   along +x (patient left), row index grows along +y (posterior).
//! * The in-plane grid is centred on x = y = 0; slice `k` (0-based) lies at
//!   z = k * slice thickness.
//! * Pixels are unsigned 16 bit, stored = HU + 1024, RescaleIntercept -1024,
//!   RescaleSlope 1, so air (-1000 HU) is stored as 24 and nothing is negative.
//! * Voxels are point samples of [`Phantom::hu_at`] at the pixel centre, with
//!   no noise and no partial-volume averaging, so tests can predict every
//!   stored value exactly.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use rayon::prelude::*;

mod phantom;
pub mod rt;

pub use phantom::{Ellipse, Phantom, Slab};

use crate::dicom::uids::{check_uid_root, generate_uid};
use crate::dicom::values::{format_ds, now_da_tm};

/// Implementation Class UID written into the file meta group of every file
/// produced by this module (a fixed UUID-derived UID, generated once).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.190164243644202394618346894308131840346";
/// Implementation Version Name (SH, at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = "RTNODE_SYNTH";

/// Field of view used by [`SynthOptions::default`] and [`SynthOptions::with_rows`].
pub const DEFAULT_FOV_MM: f64 = 500.0;

/// Rescale intercept: stored value = HU - intercept.
pub const RESCALE_INTERCEPT: f64 = -1024.0;
/// Rescale slope (1, so stored values are integral HU offsets).
pub const RESCALE_SLOPE: f64 = 1.0;

/// Air, everywhere outside the body and the couch, HU. The phantom's
/// materials follow, each a constant value.
pub const HU_AIR: f64 = -1000.0;
/// Soft tissue (the phantom's body), HU.
pub const HU_SOFT_TISSUE: f64 = 20.0;
/// Lung, HU.
pub const HU_LUNG: f64 = -800.0;
/// Trabecular bone (inside the vertebral body), HU.
pub const HU_TRABECULAR_BONE: f64 = 700.0;
/// Cortical bone (the vertebral body's outer ring), HU.
pub const HU_CORTICAL_BONE: f64 = 1200.0;
/// The treatment couch below the body, HU.
pub const HU_COUCH: f64 = 100.0;

/// Smallest supported matrix: below this the couch gap (which must be at
/// least a couple of pixels wide) no longer fits inside the field of view.
pub const MIN_ROWS: u16 = 32;
/// Largest supported matrix, to keep a slice well below any length limit.
pub const MAX_ROWS: u16 = 4096;

const SPECIFIC_CHARACTER_SET: &str = "ISO_IR 192";
const MANUFACTURER: &str = "rtnode synth";
const SERIES_DESCRIPTION: &str = "rtnode synthetic CT phantom";
const WINDOW_CENTER: &str = "40";
const WINDOW_WIDTH: &str = "400";
const KVP: &str = "120";

/// Options of `rtnode synth`.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Number of axial slices (default 64).
    pub slices: u32,
    /// Matrix size; columns = rows (default 256).
    pub rows: u16,
    /// In-plane pixel spacing (default `500.0 / rows`, i.e. a 500 mm field
    /// of view). Changing `rows` alone does not update it; use
    /// [`SynthOptions::with_rows`] to keep the field of view.
    pub pixel_spacing_mm: f64,
    /// Slice thickness and spacing (default 2.5).
    pub slice_thickness_mm: f64,
    /// PatientID written into every file (up to 64 characters, not empty).
    pub patient_id: String,
    /// PatientName, DICOM PN form `Family^Given` (may be empty).
    pub patient_name: String,
    /// UID root; UIDs are `<root>.<random decimal>` (default "2.25").
    pub uid_root: String,
    /// Standard deviation of reproducible pseudo-random noise added inside
    /// the body, HU (default 0: every value predictable, as the tests
    /// need; the radiomics benchmark wants texture).
    pub noise_hu: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        let rows = 256;
        SynthOptions {
            slices: 64,
            rows,
            pixel_spacing_mm: DEFAULT_FOV_MM / f64::from(rows),
            slice_thickness_mm: 2.5,
            patient_id: "RTNODE-PHANTOM-001".to_string(),
            patient_name: "Phantom^Water".to_string(),
            uid_root: "2.25".to_string(),
            noise_hu: 0.0,
        }
    }
}

impl SynthOptions {
    /// Sets the matrix size and rescales the pixel spacing so the field of
    /// view stays at [`DEFAULT_FOV_MM`]; a CLI `--rows` should go through
    /// this so the anatomy keeps its physical size.
    pub fn with_rows(mut self, rows: u16) -> Self {
        self.rows = rows;
        self.pixel_spacing_mm = DEFAULT_FOV_MM / f64::from(rows);
        self
    }

    /// Field of view (mm) spanned by the matrix.
    pub fn fov_mm(&self) -> f64 {
        f64::from(self.rows) * self.pixel_spacing_mm
    }

    /// Rejects options that would produce invalid DICOM or a degenerate phantom.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.slices >= 1, "slices must be at least 1");
        ensure!(
            (MIN_ROWS..=MAX_ROWS).contains(&self.rows),
            "rows must be within {MIN_ROWS}..={MAX_ROWS}, got {}",
            self.rows
        );
        ensure!(
            self.pixel_spacing_mm.is_finite() && self.pixel_spacing_mm > 0.0,
            "pixel spacing must be a positive number, got {}",
            self.pixel_spacing_mm
        );
        ensure!(
            self.slice_thickness_mm.is_finite() && self.slice_thickness_mm > 0.0,
            "slice thickness must be a positive number, got {}",
            self.slice_thickness_mm
        );
        check_text("patient ID", &self.patient_id, 64, false)?;
        check_text("patient name", &self.patient_name, 64 * 3 + 2, true)?;
        check_uid_root(&self.uid_root)?;
        ensure!(
            self.noise_hu.is_finite() && (0.0..=500.0).contains(&self.noise_hu),
            "noise must be 0 to 500 HU, got {}",
            self.noise_hu
        );
        Ok(())
    }
}

/// PN/LO values must not contain the value delimiter or control characters;
/// `max_chars` is the VR's character limit.
fn check_text(what: &str, value: &str, max_chars: usize, allow_empty: bool) -> Result<()> {
    ensure!(allow_empty || !value.is_empty(), "{what} must not be empty");
    ensure!(
        value.chars().count() <= max_chars,
        "{what} is longer than {max_chars} characters"
    );
    ensure!(
        !value.chars().any(|c| c == '\\' || c.is_control()),
        "{what} must not contain backslashes or control characters"
    );
    Ok(())
}

/// The sampling grid of the written series, with every value exactly as
/// encoded in the DICOM headers (i.e. already rounded to DS precision), so
/// that positions computed from it match what a reader derives from the files.
#[derive(Debug, Clone, PartialEq)]
pub struct CtGrid {
    /// Rows of every slice.
    pub rows: u16,
    /// Columns of every slice (equal to `rows`).
    pub columns: u16,
    /// Equal row and column spacing (mm).
    pub pixel_spacing_mm: f64,
    /// SliceThickness, also the distance between slices (mm).
    pub slice_thickness_mm: f64,
    /// x of the centre of column 0 (`ImagePositionPatient[0]`).
    pub first_pixel_x: f64,
    /// y of the centre of row 0 (`ImagePositionPatient[1]`).
    pub first_pixel_y: f64,
    /// z of each slice, index 0 first (`ImagePositionPatient[2]`).
    pub slice_z: Vec<f64>,
}

impl CtGrid {
    /// The grid `opts` describe, centred on x = y = 0 with the first slice at
    /// z = 0 and values rounded as the DS strings will hold them; an error if a
    /// value cannot be encoded as DS.
    pub fn for_options(opts: &SynthOptions) -> Result<CtGrid> {
        let spacing = quantize_ds(opts.pixel_spacing_mm)?;
        let thickness = quantize_ds(opts.slice_thickness_mm)?;
        // Centre the matrix on x = y = 0: pixel centres sit at
        // (i - (n - 1) / 2) * spacing.
        let first = quantize_ds(-0.5 * (f64::from(opts.rows) - 1.0) * spacing)?;
        let slice_z = (0..opts.slices)
            .map(|k| quantize_ds(f64::from(k) * thickness))
            .collect::<Result<Vec<_>>>()?;
        Ok(CtGrid {
            rows: opts.rows,
            columns: opts.rows,
            pixel_spacing_mm: spacing,
            slice_thickness_mm: thickness,
            first_pixel_x: first,
            first_pixel_y: first,
            slice_z,
        })
    }

    /// Patient (x, y) of the centre of pixel (row, column).
    pub fn pixel_centre(&self, row: u16, column: u16) -> (f64, f64) {
        (
            self.first_pixel_x + f64::from(column) * self.pixel_spacing_mm,
            self.first_pixel_y + f64::from(row) * self.pixel_spacing_mm,
        )
    }
}

/// Result of [`write_ct_series`].
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "consumed by the RTSTRUCT/RTDOSE synthesis and contour-validation stages"
)]
pub struct SynthSeries {
    /// Study Instance UID of the series.
    pub study_instance_uid: String,
    /// Series Instance UID of the series.
    pub series_instance_uid: String,
    /// Frame of Reference UID, shared by the RT objects made for it.
    pub frame_of_reference_uid: String,
    /// One file per slice, in slice order (index 0 = lowest z).
    pub files: Vec<PathBuf>,
    /// The anatomy the slices show, in patient mm.
    pub phantom: Phantom,
    /// SOP Instance UIDs, parallel to `files` (needed to reference the
    /// images from RTSTRUCT contour image sequences).
    pub sop_instance_uids: Vec<String>,
    /// The sampling grid, as encoded in the files.
    pub grid: CtGrid,
}

/// Stored pixel value for a HU value under the module's rescale convention.
pub fn hu_to_stored(hu: f64) -> u16 {
    // The clamp makes the cast lossless; out-of-range HU cannot occur with
    // the phantom's materials anyway.
    (hu - RESCALE_INTERCEPT)
        .round()
        .clamp(0.0, f64::from(u16::MAX)) as u16
}

/// Writes the phantom as a CT series `CT_0001.dcm`, `CT_0002.dcm`, ... into
/// `out_dir` (created if missing).
///
/// Refuses to write into a directory that already holds `CT_*.dcm` files:
/// leftovers from an earlier, longer run would otherwise be silently mixed
/// into this series by anything that imports the directory.
pub fn write_ct_series(out_dir: &Path, opts: &SynthOptions) -> Result<SynthSeries> {
    opts.validate()?;
    let grid = CtGrid::for_options(opts)?;
    let phantom = Phantom::for_options(opts);

    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output directory {}", out_dir.display()))?;
    if let Some(existing) = find_existing_ct_file(out_dir)? {
        bail!(
            "{} already contains a CT series file ({}); use an empty directory",
            out_dir.display(),
            existing.display()
        );
    }

    // ThreadRng is not Send, so every UID is drawn up front rather than
    // inside the parallel loop.
    let mut rng = rand::thread_rng();
    let study_instance_uid = generate_uid(&opts.uid_root, &mut rng)?;
    let series_instance_uid = generate_uid(&opts.uid_root, &mut rng)?;
    let frame_of_reference_uid = generate_uid(&opts.uid_root, &mut rng)?;
    let sop_instance_uids = (0..opts.slices)
        .map(|_| generate_uid(&opts.uid_root, &mut rng))
        .collect::<Result<Vec<_>, _>>()?;

    let (date, time) = now_da_tm();
    let template = series_template(
        opts,
        &grid,
        &date,
        &time,
        &study_instance_uid,
        &series_instance_uid,
        &frame_of_reference_uid,
    )?;

    let files = (0..opts.slices)
        .into_par_iter()
        .map(|k| {
            let idx = k as usize;
            write_slice(
                out_dir,
                &template,
                &phantom,
                &grid,
                k,
                &sop_instance_uids[idx],
            )
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(SynthSeries {
        study_instance_uid,
        series_instance_uid,
        frame_of_reference_uid,
        files,
        phantom,
        sop_instance_uids,
        grid,
    })
}

fn find_existing_ct_file(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("CT_") && name.ends_with(".dcm") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// File name of slice `k` (0-based).
pub fn slice_file_name(k: u32) -> String {
    format!("CT_{:04}.dcm", u64::from(k) + 1)
}

/// Everything that is identical across slices, built once and cloned per
/// slice so the per-slice cost is the pixel data and a few elements.
fn series_template(
    opts: &SynthOptions,
    grid: &CtGrid,
    date: &str,
    time: &str,
    study_uid: &str,
    series_uid: &str,
    for_uid: &str,
) -> Result<InMemDicomObject> {
    let spacing = format_ds(grid.pixel_spacing_mm)?;
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, value));
    };
    let s = |v: &str| PrimitiveValue::from(v);
    let multi = |vs: &[&str]| PrimitiveValue::Strs(vs.iter().map(|v| v.to_string()).collect());

    // SOP Common
    put(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        s(SPECIFIC_CHARACTER_SET),
    );
    put(tags::SOP_CLASS_UID, VR::UI, s(uids::CT_IMAGE_STORAGE));
    put(tags::INSTANCE_CREATION_DATE, VR::DA, s(date));
    put(tags::INSTANCE_CREATION_TIME, VR::TM, s(time));
    // Patient
    put(tags::PATIENT_NAME, VR::PN, s(&opts.patient_name));
    put(tags::PATIENT_ID, VR::LO, s(&opts.patient_id));
    put(tags::PATIENT_BIRTH_DATE, VR::DA, PrimitiveValue::Empty);
    put(tags::PATIENT_SEX, VR::CS, s("O"));
    // General Study
    put(tags::STUDY_INSTANCE_UID, VR::UI, s(study_uid));
    put(tags::STUDY_DATE, VR::DA, s(date));
    put(tags::STUDY_TIME, VR::TM, s(time));
    put(
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        PrimitiveValue::Empty,
    );
    put(tags::STUDY_ID, VR::SH, s("1"));
    put(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::Empty);
    put(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        s("rtnode synthetic phantom"),
    );
    // General Series
    put(tags::MODALITY, VR::CS, s("CT"));
    put(tags::SERIES_INSTANCE_UID, VR::UI, s(series_uid));
    put(tags::SERIES_NUMBER, VR::IS, s("1"));
    put(tags::SERIES_DATE, VR::DA, s(date));
    put(tags::SERIES_TIME, VR::TM, s(time));
    put(tags::SERIES_DESCRIPTION, VR::LO, s(SERIES_DESCRIPTION));
    put(tags::PATIENT_POSITION, VR::CS, s("HFS"));
    // Frame of Reference
    put(tags::FRAME_OF_REFERENCE_UID, VR::UI, s(for_uid));
    put(
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        PrimitiveValue::Empty,
    );
    // General Equipment
    put(tags::MANUFACTURER, VR::LO, s(MANUFACTURER));
    put(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        s(concat!("rtnode ", env!("CARGO_PKG_VERSION"))),
    );
    // General Image / CT Image
    put(
        tags::IMAGE_TYPE,
        VR::CS,
        multi(&["ORIGINAL", "PRIMARY", "AXIAL"]),
    );
    put(tags::CONTENT_DATE, VR::DA, s(date));
    put(tags::CONTENT_TIME, VR::TM, s(time));
    put(tags::ACQUISITION_NUMBER, VR::IS, s("1"));
    put(tags::KVP, VR::DS, s(KVP));
    put(
        tags::RESCALE_INTERCEPT,
        VR::DS,
        s(&format_ds(RESCALE_INTERCEPT)?),
    );
    put(tags::RESCALE_SLOPE, VR::DS, s(&format_ds(RESCALE_SLOPE)?));
    put(tags::RESCALE_TYPE, VR::LO, s("HU"));
    // Image Plane
    put(tags::PIXEL_SPACING, VR::DS, multi(&[&spacing, &spacing]));
    put(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        multi(&["1", "0", "0", "0", "1", "0"]),
    );
    put(
        tags::SLICE_THICKNESS,
        VR::DS,
        s(&format_ds(grid.slice_thickness_mm)?),
    );
    // Image Pixel
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16));
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2"));
    put(tags::ROWS, VR::US, PrimitiveValue::from(grid.rows));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(grid.columns));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    );
    // VOI LUT
    put(tags::WINDOW_CENTER, VR::DS, s(WINDOW_CENTER));
    put(tags::WINDOW_WIDTH, VR::DS, s(WINDOW_WIDTH));
    Ok(obj)
}

fn write_slice(
    out_dir: &Path,
    template: &InMemDicomObject,
    phantom: &Phantom,
    grid: &CtGrid,
    k: u32,
    sop_instance_uid: &str,
) -> Result<PathBuf> {
    let z = grid.slice_z[k as usize];
    let z_ds = format_ds(z)?;
    let mut obj = template.clone();
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(sop_instance_uid),
    ));
    obj.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from((u64::from(k) + 1).to_string()),
    ));
    obj.put(DataElement::new(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(
            [
                format_ds(grid.first_pixel_x)?,
                format_ds(grid.first_pixel_y)?,
                z_ds.clone(),
            ]
            .into_iter()
            .collect(),
        ),
    ));
    obj.put(DataElement::new(
        tags::SLICE_LOCATION,
        VR::DS,
        PrimitiveValue::from(z_ds),
    ));
    // Raw little-endian bytes are written with a single write call, unlike
    // a U16 value which the encoder emits one sample at a time.
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(render_slice(phantom, grid, z).into()),
    ));

    let file_obj = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(IMPLEMENTATION_VERSION_NAME),
        )
        .context("building file meta group")?;

    let name = slice_file_name(k);
    let path = out_dir.join(&name);
    // Write under a hidden temporary name and rename, so a watcher on the
    // directory never picks up a half-written file.
    let tmp = out_dir.join(format!(".{name}.partial"));
    file_obj
        .write_to_file(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(path)
}

/// Reproducible noise of unit variance at a voxel: the sum of four
/// uniform numbers from a hash of the position (close to Gaussian), the
/// same for every run, so that benchmarks compare like with like.
fn noise(row: u16, column: u16, z: f64) -> f64 {
    let mut h = (u64::from(row) << 48) ^ (u64::from(column) << 32) ^ z.to_bits().rotate_left(7);
    let mut sum = 0.0;
    for _ in 0..4 {
        // splitmix64
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = h;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        sum += (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    }
    // Four uniforms on [-1/2, 1/2) have variance 4/12.
    sum * 3f64.sqrt()
}

/// Pixel data of the slice at `z`, as little-endian stored values.
fn render_slice(phantom: &Phantom, grid: &CtGrid, z: f64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(usize::from(grid.rows) * usize::from(grid.columns) * 2);
    for row in 0..grid.rows {
        for column in 0..grid.columns {
            let (x, y) = grid.pixel_centre(row, column);
            let mut hu = phantom.hu_at(x, y, z);
            if phantom.noise_hu > 0.0 && phantom.body.contains(x, y) {
                hu += phantom.noise_hu * noise(row, column, z);
            }
            bytes.extend_from_slice(&hu_to_stored(hu).to_le_bytes());
        }
    }
    bytes
}

/// The value a reader obtains after `v` has been written as DS.
fn quantize_ds(v: f64) -> Result<f64> {
    let s = format_ds(v)?;
    s.parse::<f64>()
        .with_context(|| format!("re-parsing decimal string {s:?}"))
}

#[cfg(test)]
mod tests;
