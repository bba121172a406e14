//! A second plan and dose for the synthetic course ([`write_boost`]): a
//! boost or replan next to the primary RS/RP/RD of
//! [`super::write_rt_objects`], same patient, study and frame of reference,
//! with a linear dose on a finer grid so that the DVH of a plan sum has a
//! closed form too.

use super::*;

/// A second plan of the synthetic course (`write_boost`): a boost, or with
/// the primary's prescription and fractions a replan, with its own RTDOSE
/// on a finer grid than the primary's, holding an exactly linear field
/// D(x) = `dose_gy` + `gradient_x_gy_per_mm` · x inside a box around the
/// PTV and nothing outside it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoostOptions {
    /// TargetPrescriptionDose (Gy) to the PTV (ROI 2, as in the primary).
    pub rx_gy: f64,
    /// NumberOfFractionsPlanned of the boost plan.
    pub fractions: u32,
    /// Dose at x = 0 and its gradient along x.
    pub dose_gy: f64,
    /// Gradient of the dose along x, Gy/mm.
    pub gradient_x_gy_per_mm: f64,
    /// Node spacing along x, y and between frames (mm).
    pub spacing_mm: [f64; 3],
    /// Grid nodes lie in |x|, |y| ≤ this (mm).
    pub half_width_mm: f64,
    /// RTPlanLabel of the boost plan.
    pub label: String,
    /// Reference the primary plan with RTPlanRelationship PREDECESSOR.
    pub replaces_primary: bool,
    /// File names are `RP_<stem>.dcm` and `RD_<stem>.dcm`.
    pub file_stem: String,
}

impl Default for BoostOptions {
    fn default() -> Self {
        BoostOptions {
            rx_gy: 10.0,
            fractions: 5,
            dose_gy: 10.0,
            gradient_x_gy_per_mm: 0.1,
            spacing_mm: [2.0, 2.0, 1.25],
            half_width_mm: 40.0,
            label: "BOOST".into(),
            replaces_primary: false,
            file_stem: "boost".into(),
        }
    }
}

impl BoostOptions {
    /// Dose (Gy) of the second RTDOSE at x, inside its grid.
    pub fn dose_at(&self, x: f64) -> f64 {
        self.dose_gy + self.gradient_x_gy_per_mm * x
    }
}

/// What [`write_boost`] wrote.
#[derive(Debug, Clone)]
pub struct SynthBoost {
    /// Path of the boost RT Plan written.
    pub rtplan: PathBuf,
    /// Path of the boost RT Dose written.
    pub rtdose: PathBuf,
    /// SOP Instance UID of the boost RT Plan.
    pub rtplan_uid: String,
    /// SOP Instance UID of the boost RT Dose.
    pub rtdose_uid: String,
    /// Extent of the grid's nodes, [[x_min, x_max], [y…], [z…]] (mm): the
    /// dose is linear between them, and zero more than half a node
    /// spacing beyond.
    pub node_bounds: [[f64; 2]; 3],
}

/// Writes a second plan and its RTDOSE next to the RS.dcm, RP.dcm and
/// RD.dcm of [`write_rt_objects`] in `dir`, for the same patient, study,
/// structure set and frame of reference. The grid's nodes are offset from
/// the primary's (x and y by a quarter, z by 0.4 of a spacing from the
/// primary's first frame) and span the primary's frames along z, so that
/// summing the two exercises trilinear resampling. Leaves the primary
/// files as they are.
pub fn write_boost(dir: &Path, opts: &BoostOptions) -> Result<SynthBoost> {
    let [dx, dy, dz] = opts.spacing_mm;
    ensure!(
        [dx, dy, dz, opts.half_width_mm]
            .iter()
            .all(|v| v.is_finite() && *v > 0.0),
        "boost spacing and half width must be positive"
    );
    ensure!(
        opts.rx_gy.is_finite() && opts.rx_gy > 0.0 && opts.fractions > 0,
        "boost prescription and fractions must be positive"
    );
    let open = |name: &str| -> Result<InMemDicomObject> {
        let p = dir.join(name);
        Ok(dicom_object::open_file(&p)
            .with_context(|| format!("reading {}", p.display()))?
            .into_inner())
    };
    let primary_plan = open("RP.dcm")?;
    let primary_dose = open("RD.dcm")?;
    let primary_plan_uid = crate::dicom::attrs::text(&primary_plan, tags::SOP_INSTANCE_UID);
    let uid_root = "2.25";
    let mut rng = rand::thread_rng();
    let mut uid = || generate_uid(uid_root, &mut rng);
    let (rp_uid, rp_series, rd_uid, rd_series, dose_ref_uid) =
        (uid()?, uid()?, uid()?, uid()?, uid()?);
    let (date, time) = now_da_tm();

    // RTPLAN: the primary's, with its own identity and prescription.
    let mut rp = primary_plan;
    for (tag, vr, v) in [
        (tags::SOP_INSTANCE_UID, VR::UI, s(&rp_uid)),
        (tags::SERIES_INSTANCE_UID, VR::UI, s(&rp_series)),
        (tags::SERIES_NUMBER, VR::IS, s("3")),
        (tags::INSTANCE_CREATION_DATE, VR::DA, s(&date)),
        (tags::INSTANCE_CREATION_TIME, VR::TM, s(&time)),
        (tags::RT_PLAN_LABEL, VR::SH, s(&opts.label)),
    ] {
        put(&mut rp, tag, vr, v);
    }
    seq(
        &mut rp,
        tags::DOSE_REFERENCE_SEQUENCE,
        vec![item(vec![
            (tags::DOSE_REFERENCE_NUMBER, VR::IS, s("1")),
            (tags::DOSE_REFERENCE_UID, VR::UI, s(&dose_ref_uid)),
            (tags::DOSE_REFERENCE_STRUCTURE_TYPE, VR::CS, s("VOLUME")),
            (tags::DOSE_REFERENCE_DESCRIPTION, VR::LO, s("PTV")),
            (tags::REFERENCED_ROI_NUMBER, VR::IS, s("2")),
            (tags::DOSE_REFERENCE_TYPE, VR::CS, s("TARGET")),
            (
                tags::TARGET_PRESCRIPTION_DOSE,
                VR::DS,
                s(&format_ds(opts.rx_gy)?),
            ),
        ])],
    );
    let mut groups = crate::dicom::attrs::items(&rp, tags::FRACTION_GROUP_SEQUENCE);
    ensure!(
        groups.len() == 1,
        "the primary plan has {} fraction groups, expected 1",
        groups.len()
    );
    put(
        &mut groups[0],
        tags::NUMBER_OF_FRACTIONS_PLANNED,
        VR::IS,
        s(&opts.fractions.to_string()),
    );
    seq(&mut rp, tags::FRACTION_GROUP_SEQUENCE, groups);
    if opts.replaces_primary {
        seq(
            &mut rp,
            tags::REFERENCED_RT_PLAN_SEQUENCE,
            vec![item(vec![
                (
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    s(uids::RT_PLAN_STORAGE),
                ),
                (
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    s(&primary_plan_uid),
                ),
                (tags::RT_PLAN_RELATIONSHIP, VR::CS, s("PREDECESSOR")),
            ])],
        );
    }
    let rp_path = dir.join(format!("RP_{}.dcm", opts.file_stem));
    write(rp, &rp_path, uids::EXPLICIT_VR_LITTLE_ENDIAN)?;

    // RTDOSE: the primary's header on a new grid.
    let z_first = crate::dicom::attrs::floats(&primary_dose, tags::IMAGE_POSITION_PATIENT)
        .and_then(|v| v.get(2).copied())
        .context("primary RTDOSE has no ImagePositionPatient")?;
    let offsets = crate::dicom::attrs::floats(&primary_dose, tags::GRID_FRAME_OFFSET_VECTOR)
        .context("primary RTDOSE has no GridFrameOffsetVector")?;
    let z_last = z_first + offsets.iter().copied().fold(0.0, f64::max);
    let hw = opts.half_width_mm;
    let nodes = |h: f64| -> (f64, usize) {
        let first = -hw + 0.25 * h;
        (first, ((hw - first) / h + 1e-9).floor() as usize + 1)
    };
    let (x0, nx) = nodes(dx);
    let (y0, ny) = nodes(dy);
    let z0 = z_first + 0.4 * dz;
    ensure!(
        z0 < z_last,
        "the primary dose is too thin for the boost grid"
    );
    let nz = ((z_last - z0) / dz + 1e-9).floor() as usize + 1;
    ensure!(
        nx <= usize::from(u16::MAX) && ny <= usize::from(u16::MAX),
        "boost grid too large"
    );
    let xs: Vec<f64> = (0..nx).map(|i| x0 + i as f64 * dx).collect();
    let values: Vec<f64> = xs.iter().map(|x| opts.dose_at(*x)).collect();
    ensure!(
        values.iter().all(|v| v.is_finite() && *v >= 0.0),
        "the boost dose must be non-negative on its grid"
    );
    let max_dose = values.iter().copied().fold(0.0, f64::max).max(1e-6);
    let scaling: f64 = format_ds(max_dose / f64::from(1u32 << 30))?.parse()?;
    let row: Vec<u8> = values
        .iter()
        .flat_map(|v| ((v / scaling).round().max(0.0) as u32).to_le_bytes())
        .collect();
    let mut pixels: Vec<u8> = Vec::with_capacity(row.len() * ny * nz);
    for _ in 0..ny * nz {
        pixels.extend_from_slice(&row);
    }
    let frame_offsets: Vec<f64> = (0..nz).map(|k| k as f64 * dz).collect();
    let mut rd = primary_dose;
    for (tag, vr, v) in [
        (tags::SOP_INSTANCE_UID, VR::UI, s(&rd_uid)),
        (tags::SERIES_INSTANCE_UID, VR::UI, s(&rd_series)),
        (tags::SERIES_NUMBER, VR::IS, s("4")),
        (tags::INSTANCE_CREATION_DATE, VR::DA, s(&date)),
        (tags::INSTANCE_CREATION_TIME, VR::TM, s(&time)),
        (
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            ds_values(&[x0, y0, z0])?,
        ),
        (tags::NUMBER_OF_FRAMES, VR::IS, s(&nz.to_string())),
        (tags::ROWS, VR::US, PrimitiveValue::from(ny as u16)),
        (tags::COLUMNS, VR::US, PrimitiveValue::from(nx as u16)),
        // PixelSpacing is row spacing (y), then column spacing (x).
        (tags::PIXEL_SPACING, VR::DS, ds_values(&[dy, dx])?),
        (
            tags::GRID_FRAME_OFFSET_VECTOR,
            VR::DS,
            ds_values(&frame_offsets)?,
        ),
        (tags::DOSE_GRID_SCALING, VR::DS, s(&format_ds(scaling)?)),
        (tags::DOSE_SUMMATION_TYPE, VR::CS, s("PLAN")),
    ] {
        put(&mut rd, tag, vr, v);
    }
    seq(
        &mut rd,
        tags::REFERENCED_RT_PLAN_SEQUENCE,
        vec![item(vec![
            (
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                s(uids::RT_PLAN_STORAGE),
            ),
            (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, s(&rp_uid)),
        ])],
    );
    put(
        &mut rd,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(pixels.into()),
    );
    let rd_path = dir.join(format!("RD_{}.dcm", opts.file_stem));
    write(rd, &rd_path, uids::IMPLICIT_VR_LITTLE_ENDIAN)?;

    let last = |first: f64, n: usize, h: f64| first + (n - 1) as f64 * h;
    Ok(SynthBoost {
        rtplan: rp_path,
        rtdose: rd_path,
        rtplan_uid: rp_uid,
        rtdose_uid: rd_uid,
        node_bounds: [
            [x0, last(x0, nx, dx)],
            [y0, last(y0, ny, dy)],
            [z0, last(z0, nz, dz)],
        ],
    })
}
