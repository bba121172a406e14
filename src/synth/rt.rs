//! RT objects for the synthetic phantom (`rtnode synth --rt`): an RTSTRUCT
//! with analytic shapes, an RTPLAN with a target prescription and
//! fractions, and an RTDOSE holding an exactly linear dose, so that a
//! course assembled from them is complete and every DVH metric of it has a
//! closed-form value.
//!
//! Geometry (mm, patient coordinates; `zc` is the centre of the series'
//! z extent, rounded to the slab boundary between two slices):
//! * `BODY` (EXTERNAL): the phantom's body ellipse on every CT slice.
//! * `PTV` (PTV): sphere of radius `r` at (0, 0, zc), the prescription target.
//! * `Sphere_small` (ORGAN): sphere of radius `r/2` at (-60, 20, zc).
//! * `Cylinder` (ORGAN): radius 15, axis along z from zc - r to zc + r, at (60, 20).
//! * `Cone` (ORGAN): base radius `r` at zc - r, apex at zc + r, axis at (0, -70).
//!
//! `r` is 20 mm, or less on short series (rounded to whole slices so that
//! every shape starts and ends on a slab boundary: with half-slice end
//! caps the contoured structures are exactly these solids at their ends).
//! Contours lie on the CT slice planes. The dose is
//! D(z) = [`RX_GY`] + [`GRADIENT_GY_PER_MM`] · (z − zc) everywhere.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

mod boost;
pub use boost::{write_boost, BoostOptions, SynthBoost};

use super::{Ellipse, SynthSeries, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::dicom::uids::generate_uid;
use crate::dicom::values::{ds_values, format_ds, now_da_tm};

/// Prescription (Gy) to the PTV, and the dose at zc.
pub const RX_GY: f64 = 50.0;
/// NumberOfFractionsPlanned of the synthetic plan.
pub const FRACTIONS: u32 = 25;
/// Dose gradient along z.
pub const GRADIENT_GY_PER_MM: f64 = 0.2;
/// In-plane dose grid spacing (mm); frames lie on the CT slices.
pub const DOSE_SPACING_MM: f64 = 3.0;
/// Points per circle contour.
const CIRCLE_POINTS: usize = 256;

/// What was written, with the analytic geometry tests compare against.
#[derive(Debug, Clone)]
pub struct SynthRt {
    /// Path of the RT Structure Set written.
    pub rtstruct: PathBuf,
    /// Path of the RT Plan written.
    pub rtplan: PathBuf,
    /// Path of the RT Dose written.
    pub rtdose: PathBuf,
    /// SOP Instance UID of the RT Structure Set.
    pub rtstruct_uid: String,
    /// SOP Instance UID of the RT Plan.
    pub rtplan_uid: String,
    /// SOP Instance UID of the RT Dose.
    pub rtdose_uid: String,
    /// Centre of the shapes along z (the middle of the series), mm.
    pub zc: f64,
    /// The PTV sphere's radius, mm; the other shapes scale with it (see the
    /// module documentation).
    pub r: f64,
}

/// Dose (Gy) of the synthetic RTDOSE at height z.
pub fn dose_at(zc: f64, z: f64) -> f64 {
    RX_GY + GRADIENT_GY_PER_MM * (z - zc)
}

struct RoiDef {
    number: i64,
    name: &'static str,
    kind: &'static str,
    color: [u8; 3],
    /// (z, polygon) per plane.
    planes: Vec<(f64, Vec<[f64; 2]>)>,
}

fn circle(cx: f64, cy: f64, r: f64) -> Vec<[f64; 2]> {
    Ellipse {
        cx,
        cy,
        rx: r,
        ry: r,
    }
    .boundary(CIRCLE_POINTS)
    .into_iter()
    .map(|(x, y)| [x, y])
    .collect()
}

fn rois(series: &SynthSeries, zc: f64, r: f64) -> Vec<RoiDef> {
    let zs = &series.grid.slice_z;
    let body = series.phantom.body;
    let on = |lo: f64, hi: f64| zs.iter().copied().filter(move |z| *z > lo && *z < hi);
    let sphere = |cx: f64, cy: f64, rad: f64| -> Vec<(f64, Vec<[f64; 2]>)> {
        on(zc - rad, zc + rad)
            .map(|z| (z, circle(cx, cy, (rad * rad - (z - zc).powi(2)).sqrt())))
            .collect()
    };
    vec![
        RoiDef {
            number: 1,
            name: "BODY",
            kind: "EXTERNAL",
            color: [0, 255, 0],
            planes: zs
                .iter()
                .map(|z| {
                    (
                        *z,
                        body.boundary(4 * CIRCLE_POINTS)
                            .into_iter()
                            .map(|(x, y)| [x, y])
                            .collect(),
                    )
                })
                .collect(),
        },
        RoiDef {
            number: 2,
            name: "PTV",
            kind: "PTV",
            color: [255, 0, 0],
            planes: sphere(0.0, 0.0, r),
        },
        RoiDef {
            number: 3,
            name: "Sphere_small",
            kind: "ORGAN",
            color: [255, 255, 0],
            planes: sphere(-60.0, 20.0, r / 2.0),
        },
        RoiDef {
            number: 4,
            name: "Cylinder",
            kind: "ORGAN",
            color: [0, 0, 255],
            planes: on(zc - r, zc + r)
                .map(|z| (z, circle(60.0, 20.0, 15.0)))
                .collect(),
        },
        RoiDef {
            number: 5,
            name: "Cone",
            kind: "ORGAN",
            color: [255, 0, 255],
            planes: on(zc - r, zc + r)
                .map(|z| (z, circle(0.0, -70.0, r * (zc + r - z) / (2.0 * r))))
                .collect(),
        },
    ]
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: PrimitiveValue) {
    obj.put(DataElement::new(tag, vr, value));
}

fn s(v: &str) -> PrimitiveValue {
    PrimitiveValue::from(v)
}

fn seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn item(elements: Vec<(Tag, VR, PrimitiveValue)>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(
        elements
            .into_iter()
            .map(|(t, vr, v)| DataElement::new(t, vr, v)),
    )
}

/// Patient, study, equipment and frame of reference, shared by all three.
fn common(
    series: &SynthSeries,
    opts: &super::SynthOptions,
    modality: &str,
    sop_class: &str,
    sop_uid: &str,
    series_uid: &str,
) -> InMemDicomObject {
    let (date, time) = now_da_tm();
    let mut o = InMemDicomObject::new_empty();
    for (tag, vr, v) in [
        (tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 192")),
        (tags::SOP_CLASS_UID, VR::UI, s(sop_class)),
        (tags::SOP_INSTANCE_UID, VR::UI, s(sop_uid)),
        (tags::INSTANCE_CREATION_DATE, VR::DA, s(&date)),
        (tags::INSTANCE_CREATION_TIME, VR::TM, s(&time)),
        (tags::STUDY_DATE, VR::DA, s(&date)),
        (tags::STUDY_TIME, VR::TM, s(&time)),
        (tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::Empty),
        (tags::MODALITY, VR::CS, s(modality)),
        (tags::MANUFACTURER, VR::LO, s(super::MANUFACTURER)),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            PrimitiveValue::Empty,
        ),
        (tags::PATIENT_NAME, VR::PN, s(&opts.patient_name)),
        (tags::PATIENT_ID, VR::LO, s(&opts.patient_id)),
        (tags::PATIENT_BIRTH_DATE, VR::DA, PrimitiveValue::Empty),
        (tags::PATIENT_SEX, VR::CS, s("O")),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            s(&series.study_instance_uid),
        ),
        (tags::SERIES_INSTANCE_UID, VR::UI, s(series_uid)),
        (tags::STUDY_ID, VR::SH, s("1")),
        (tags::SERIES_NUMBER, VR::IS, s("2")),
        (tags::INSTANCE_NUMBER, VR::IS, s("1")),
    ] {
        put(&mut o, tag, vr, v);
    }
    o
}

fn write(obj: InMemDicomObject, path: &Path, ts: &str) -> Result<()> {
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(ts)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(IMPLEMENTATION_VERSION_NAME),
        )
        .context("building file meta group")?;
    let tmp = path.with_extension("partial");
    file.write_to_file(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
}

/// Writes RS.dcm, RP.dcm and RD.dcm for `series` into `out_dir`.
pub fn write_rt_objects(
    out_dir: &Path,
    series: &SynthSeries,
    opts: &super::SynthOptions,
) -> Result<SynthRt> {
    let zs = &series.grid.slice_z;
    let t = series.grid.slice_thickness_mm;
    ensure!(zs.len() >= 8, "RT objects need at least 8 slices");
    let extent = zs.len() as f64 * t;
    // Shapes end on slab boundaries: zc is one, and r whole slices.
    let zc = zs[0] - 0.5 * t + (zs.len() / 2) as f64 * t;
    let r = (20.0f64.min(0.3 * extent) / t).floor().max(1.0) * t;
    let mut rng = rand::thread_rng();
    let mut uid = || generate_uid(&opts.uid_root, &mut rng);
    let (rs_uid, rp_uid, rd_uid) = (uid()?, uid()?, uid()?);
    let (rs_series, rp_series, rd_series) = (uid()?, uid()?, uid()?);
    let defs = rois(series, zc, r);

    // RTSTRUCT
    let mut rs = common(
        series,
        opts,
        "RTSTRUCT",
        uids::RT_STRUCTURE_SET_STORAGE,
        &rs_uid,
        &rs_series,
    );
    put(&mut rs, tags::STRUCTURE_SET_LABEL, VR::SH, s("SYNTH"));
    put(
        &mut rs,
        tags::STRUCTURE_SET_DATE,
        VR::DA,
        PrimitiveValue::Empty,
    );
    put(
        &mut rs,
        tags::STRUCTURE_SET_TIME,
        VR::TM,
        PrimitiveValue::Empty,
    );
    let image_ref = |k: usize| {
        item(vec![
            (
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                s(uids::CT_IMAGE_STORAGE),
            ),
            (
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                s(&series.sop_instance_uids[k]),
            ),
        ])
    };
    let mut rt_series = item(vec![(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        s(&series.series_instance_uid),
    )]);
    seq(
        &mut rt_series,
        tags::CONTOUR_IMAGE_SEQUENCE,
        (0..zs.len()).map(image_ref).collect(),
    );
    let mut rt_study = item(vec![
        (
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            s("1.2.840.10008.3.1.2.3.1"),
        ),
        (
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            s(&series.study_instance_uid),
        ),
    ]);
    seq(
        &mut rt_study,
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        vec![rt_series],
    );
    let mut frame = item(vec![(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        s(&series.frame_of_reference_uid),
    )]);
    seq(
        &mut frame,
        tags::RT_REFERENCED_STUDY_SEQUENCE,
        vec![rt_study],
    );
    seq(
        &mut rs,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![frame],
    );
    let mut ss_rois = Vec::new();
    let mut contours = Vec::new();
    let mut observations = Vec::new();
    for d in &defs {
        ss_rois.push(item(vec![
            (tags::ROI_NUMBER, VR::IS, s(&d.number.to_string())),
            (
                tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                VR::UI,
                s(&series.frame_of_reference_uid),
            ),
            (tags::ROI_NAME, VR::LO, s(d.name)),
            (tags::ROI_GENERATION_ALGORITHM, VR::CS, s("AUTOMATIC")),
        ]));
        let mut planes = Vec::new();
        for (z, poly) in &d.planes {
            let mut data = Vec::with_capacity(poly.len() * 3);
            for p in poly {
                data.extend_from_slice(&[p[0], p[1], *z]);
            }
            let mut c = item(vec![
                (tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, s("CLOSED_PLANAR")),
                (
                    tags::NUMBER_OF_CONTOUR_POINTS,
                    VR::IS,
                    s(&poly.len().to_string()),
                ),
                (tags::CONTOUR_DATA, VR::DS, ds_values(&data)?),
            ]);
            if let Some(k) = zs.iter().position(|s| (s - z).abs() < 1e-6) {
                seq(&mut c, tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(k)]);
            }
            planes.push(c);
        }
        let color = PrimitiveValue::Strs(d.color.iter().map(|c| c.to_string()).collect());
        let mut rc = item(vec![
            (tags::ROI_DISPLAY_COLOR, VR::IS, color),
            (
                tags::REFERENCED_ROI_NUMBER,
                VR::IS,
                s(&d.number.to_string()),
            ),
        ]);
        seq(&mut rc, tags::CONTOUR_SEQUENCE, planes);
        contours.push(rc);
        observations.push(item(vec![
            (tags::OBSERVATION_NUMBER, VR::IS, s(&d.number.to_string())),
            (
                tags::REFERENCED_ROI_NUMBER,
                VR::IS,
                s(&d.number.to_string()),
            ),
            (tags::RTROI_INTERPRETED_TYPE, VR::CS, s(d.kind)),
            (tags::ROI_INTERPRETER, VR::PN, PrimitiveValue::Empty),
        ]));
    }
    seq(&mut rs, tags::STRUCTURE_SET_ROI_SEQUENCE, ss_rois);
    seq(&mut rs, tags::ROI_CONTOUR_SEQUENCE, contours);
    seq(&mut rs, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);
    let rs_path = out_dir.join("RS.dcm");
    write(rs, &rs_path, uids::EXPLICIT_VR_LITTLE_ENDIAN)?;

    // RTPLAN
    let mut rp = common(
        series,
        opts,
        "RTPLAN",
        uids::RT_PLAN_STORAGE,
        &rp_uid,
        &rp_series,
    );
    put(
        &mut rp,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        s(&series.frame_of_reference_uid),
    );
    put(
        &mut rp,
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        PrimitiveValue::Empty,
    );
    put(&mut rp, tags::RT_PLAN_LABEL, VR::SH, s("SYNTH"));
    put(&mut rp, tags::RT_PLAN_DATE, VR::DA, PrimitiveValue::Empty);
    put(&mut rp, tags::RT_PLAN_TIME, VR::TM, PrimitiveValue::Empty);
    put(&mut rp, tags::PLAN_INTENT, VR::CS, s("CURATIVE"));
    put(&mut rp, tags::RT_PLAN_GEOMETRY, VR::CS, s("PATIENT"));
    put(&mut rp, tags::APPROVAL_STATUS, VR::CS, s("APPROVED"));
    seq(
        &mut rp,
        tags::REFERENCED_STRUCTURE_SET_SEQUENCE,
        vec![item(vec![
            (
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                s(uids::RT_STRUCTURE_SET_STORAGE),
            ),
            (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, s(&rs_uid)),
        ])],
    );
    let dose_ref_uid = generate_uid(&opts.uid_root, &mut rand::thread_rng())?;
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
                s(&format_ds(RX_GY)?),
            ),
        ])],
    );
    let beams = [(1, "AP", 0.0), (2, "PA", 180.0)];
    let mut fg = item(vec![
        (tags::FRACTION_GROUP_NUMBER, VR::IS, s("1")),
        (
            tags::NUMBER_OF_FRACTIONS_PLANNED,
            VR::IS,
            s(&FRACTIONS.to_string()),
        ),
        (tags::NUMBER_OF_BEAMS, VR::IS, s(&beams.len().to_string())),
        (tags::NUMBER_OF_BRACHY_APPLICATION_SETUPS, VR::IS, s("0")),
    ]);
    seq(
        &mut fg,
        tags::REFERENCED_BEAM_SEQUENCE,
        beams
            .iter()
            .map(|(n, _, _)| {
                item(vec![
                    (tags::BEAM_METERSET, VR::DS, s("100")),
                    (tags::REFERENCED_BEAM_NUMBER, VR::IS, s(&n.to_string())),
                ])
            })
            .collect(),
    );
    seq(&mut rp, tags::FRACTION_GROUP_SEQUENCE, vec![fg]);
    let mut beam_items = Vec::new();
    for (n, name, gantry) in beams {
        let mut b = item(vec![
            (tags::TREATMENT_MACHINE_NAME, VR::SH, s("SYNTH")),
            (tags::PRIMARY_DOSIMETER_UNIT, VR::CS, s("MU")),
            (tags::SOURCE_AXIS_DISTANCE, VR::DS, s("1000")),
            (tags::BEAM_NUMBER, VR::IS, s(&n.to_string())),
            (tags::BEAM_NAME, VR::LO, s(name)),
            (tags::BEAM_TYPE, VR::CS, s("STATIC")),
            (tags::RADIATION_TYPE, VR::CS, s("PHOTON")),
            (tags::TREATMENT_DELIVERY_TYPE, VR::CS, s("TREATMENT")),
            (tags::NUMBER_OF_WEDGES, VR::IS, s("0")),
            (tags::NUMBER_OF_COMPENSATORS, VR::IS, s("0")),
            (tags::NUMBER_OF_BOLI, VR::IS, s("0")),
            (tags::NUMBER_OF_BLOCKS, VR::IS, s("0")),
            (tags::FINAL_CUMULATIVE_METERSET_WEIGHT, VR::DS, s("1")),
            (tags::NUMBER_OF_CONTROL_POINTS, VR::IS, s("2")),
            (tags::REFERENCED_PATIENT_SETUP_NUMBER, VR::IS, s("1")),
        ]);
        let cp = |idx: &str, weight: &str, first: bool| {
            let mut v = vec![
                (tags::CONTROL_POINT_INDEX, VR::IS, s(idx)),
                (tags::CUMULATIVE_METERSET_WEIGHT, VR::DS, s(weight)),
            ];
            if first {
                v.push((tags::NOMINAL_BEAM_ENERGY, VR::DS, s("6")));
                v.push((tags::GANTRY_ANGLE, VR::DS, s(&gantry.to_string())));
                v.push((tags::GANTRY_ROTATION_DIRECTION, VR::CS, s("NONE")));
                v.push((
                    tags::ISOCENTER_POSITION,
                    VR::DS,
                    PrimitiveValue::Strs(
                        [
                            "0".to_string(),
                            "0".to_string(),
                            format_ds(zc).unwrap_or_default(),
                        ]
                        .into_iter()
                        .collect(),
                    ),
                ));
            }
            item(v)
        };
        seq(
            &mut b,
            tags::CONTROL_POINT_SEQUENCE,
            vec![cp("0", "0", true), cp("1", "1", false)],
        );
        beam_items.push(b);
    }
    seq(&mut rp, tags::BEAM_SEQUENCE, beam_items);
    seq(
        &mut rp,
        tags::PATIENT_SETUP_SEQUENCE,
        vec![item(vec![
            (tags::PATIENT_POSITION, VR::CS, s("HFS")),
            (tags::PATIENT_SETUP_NUMBER, VR::IS, s("1")),
        ])],
    );
    let rp_path = out_dir.join("RP.dcm");
    write(rp, &rp_path, uids::EXPLICIT_VR_LITTLE_ENDIAN)?;

    // RTDOSE: implicit VR, 32-bit, as planning systems write it.
    let mut rd = common(
        series,
        opts,
        "RTDOSE",
        uids::RT_DOSE_STORAGE,
        &rd_uid,
        &rd_series,
    );
    put(
        &mut rd,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        s(&series.frame_of_reference_uid),
    );
    put(
        &mut rd,
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        PrimitiveValue::Empty,
    );
    let body = series.phantom.body;
    let h = DOSE_SPACING_MM;
    let nx = ((2.0 * body.rx) / h).ceil() as usize + 3;
    let ny = ((2.0 * body.ry) / h).ceil() as usize + 3;
    let x0 = -0.5 * (nx - 1) as f64 * h;
    let y0 = -0.5 * (ny - 1) as f64 * h;
    let max_dose = zs.iter().map(|z| dose_at(zc, *z)).fold(0.0, f64::max);
    // Stored values up to ~2^30 keep the quantisation far below a bin.
    let scaling: f64 = format_ds(max_dose / f64::from(1u32 << 30))?.parse()?;
    let mut pixels: Vec<u8> = Vec::with_capacity(nx * ny * zs.len() * 4);
    for z in zs {
        let v = (dose_at(zc, *z) / scaling).round().max(0.0) as u32;
        for _ in 0..nx * ny {
            pixels.extend_from_slice(&v.to_le_bytes());
        }
    }
    let offsets: Vec<f64> = zs.iter().map(|z| z - zs[0]).collect();
    for (tag, vr, v) in [
        (
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            ds_values(&[x0, y0, zs[0]])?,
        ),
        (
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            ds_values(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])?,
        ),
        (tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        (tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        (tags::NUMBER_OF_FRAMES, VR::IS, s(&zs.len().to_string())),
        (
            tags::FRAME_INCREMENT_POINTER,
            VR::AT,
            PrimitiveValue::Tags(vec![tags::GRID_FRAME_OFFSET_VECTOR].into()),
        ),
        (tags::ROWS, VR::US, PrimitiveValue::from(ny as u16)),
        (tags::COLUMNS, VR::US, PrimitiveValue::from(nx as u16)),
        (tags::PIXEL_SPACING, VR::DS, ds_values(&[h, h])?),
        (tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(32u16)),
        (tags::BITS_STORED, VR::US, PrimitiveValue::from(32u16)),
        (tags::HIGH_BIT, VR::US, PrimitiveValue::from(31u16)),
        (
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        (tags::DOSE_UNITS, VR::CS, s("GY")),
        (tags::DOSE_TYPE, VR::CS, s("PHYSICAL")),
        (tags::DOSE_SUMMATION_TYPE, VR::CS, s("PLAN")),
        (tags::GRID_FRAME_OFFSET_VECTOR, VR::DS, ds_values(&offsets)?),
        (tags::DOSE_GRID_SCALING, VR::DS, s(&format_ds(scaling)?)),
        (tags::SLICE_THICKNESS, VR::DS, PrimitiveValue::Empty),
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
    seq(
        &mut rd,
        tags::REFERENCED_STRUCTURE_SET_SEQUENCE,
        vec![item(vec![
            (
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                s(uids::RT_STRUCTURE_SET_STORAGE),
            ),
            (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, s(&rs_uid)),
        ])],
    );
    put(
        &mut rd,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(pixels.into()),
    );
    let rd_path = out_dir.join("RD.dcm");
    write(rd, &rd_path, uids::IMPLICIT_VR_LITTLE_ENDIAN)?;

    Ok(SynthRt {
        rtstruct: rs_path,
        rtplan: rp_path,
        rtdose: rd_path,
        rtstruct_uid: rs_uid,
        rtplan_uid: rp_uid,
        rtdose_uid: rd_uid,
        zc,
        r,
    })
}
