//! RT Structure Set reading: closed planar contours grouped into axial
//! planes per ROI, with names, numbers and interpreted types.
//!
//! What real files do and what is done about it (each case leaves a note on
//! the ROI or the structure set, so that outputs can say it):
//! * POINT, OPEN_PLANAR and OPEN_NONPLANAR contours have no volume: ignored.
//! * contours in any order, several per plane: grouped by z (plane
//!   tolerance [`PLANE_TOLERANCE_MM`]); holes and islands follow from the
//!   even-odd rule when the plane is filled.
//! * a repeated closing point, repeated points, fewer than three points,
//!   NumberOfContourPoints disagreeing with ContourData: repaired or skipped.
//! * non-axial or non-planar contours: skipped (the dose grids we accept
//!   are axial, so an axial plane is what a contour must be).
//! * ROIs without contours, contours of an ROI missing from
//!   StructureSetROISequence, duplicate names: kept, named and noted.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};

use crate::dicom::attrs;

/// Contour points whose z differ by less than this lie on one plane; also
/// the largest z spread accepted within one contour (DS rounding in real
/// files reaches a few hundredths of a millimetre).
pub const PLANE_TOLERANCE_MM: f64 = 0.05;

/// Where an ROI comes from; every output row carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoiSource {
    /// The plan's (or any received) RT Structure Set.
    StructureSet {
        /// SOP Instance UID of the RT Structure Set.
        sop_instance_uid: String,
    },
    /// An RTSTRUCT written by an auto-segmentation model.
    AutoSegmentation {
        /// Name of the model that drew the contours.
        model: String,
        /// SOP Instance UID of the RTSTRUCT it wrote.
        sop_instance_uid: String,
    },
    /// Built from other ROIs by `dvh.derived`.
    Derived {
        /// The expression it was built from, as configured.
        definition: String,
    },
}

impl RoiSource {
    /// A short label for CSV rows.
    pub fn label(&self) -> String {
        match self {
            RoiSource::StructureSet { .. } => "rtstruct".into(),
            RoiSource::AutoSegmentation { model, .. } => format!("autoseg:{model}"),
            RoiSource::Derived { .. } => "derived".into(),
        }
    }
}

/// One closed polygon on an axial plane, as (x, y) in mm, not closed
/// explicitly (the last point connects to the first).
pub type Polygon = Vec<[f64; 2]>;

/// All closed contours of one ROI on one axial plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContourPlane {
    /// z of the plane, patient LPS mm.
    pub z: f64,
    /// The closed contours on it; by the even-odd rule a contour inside another
    /// is a hole.
    pub polygons: Vec<Polygon>,
}

impl ContourPlane {
    /// Area by the even-odd rule, assuming contours do not cross: holes are
    /// contours lying inside an odd number of others.
    pub fn area_mm2(&self) -> f64 {
        self.polygons
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let depth = self
                    .polygons
                    .iter()
                    .enumerate()
                    .filter(|(j, q)| *j != i && point_in_polygon(p[0], q))
                    .count();
                let a = polygon_area(p).abs();
                if depth % 2 == 0 {
                    a
                } else {
                    -a
                }
            })
            .sum()
    }

    /// (x_min, y_min, x_max, y_max) of every point.
    pub fn bounds(&self) -> Option<[f64; 4]> {
        bounds_of(self.polygons.iter().flatten())
    }
}

pub(crate) fn bounds_of<'a>(points: impl Iterator<Item = &'a [f64; 2]>) -> Option<[f64; 4]> {
    let mut b: Option<[f64; 4]> = None;
    for p in points {
        let bb = b.get_or_insert([p[0], p[1], p[0], p[1]]);
        bb[0] = bb[0].min(p[0]);
        bb[1] = bb[1].min(p[1]);
        bb[2] = bb[2].max(p[0]);
        bb[3] = bb[3].max(p[1]);
    }
    b
}

/// Signed shoelace area (positive counter-clockwise).
pub fn polygon_area(p: &[[f64; 2]]) -> f64 {
    let n = p.len();
    let mut s = 0.0;
    for i in 0..n {
        let a = p[i];
        let b = p[(i + 1) % n];
        s += a[0] * b[1] - b[0] * a[1];
    }
    0.5 * s
}

/// Even-odd point-in-polygon test.
pub fn point_in_polygon(pt: [f64; 2], poly: &[[f64; 2]]) -> bool {
    let mut inside = false;
    let n = poly.len();
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > pt[1]) != (b[1] > pt[1]) {
            let x = a[0] + (pt[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if pt[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// One ROI of a structure set: its identity and closed contours, ready for
/// rasterising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roi {
    /// ROINumber, unique within the structure set.
    pub number: i64,
    /// Unique within the structure set (a duplicate gets " (ROI n)").
    pub name: String,
    /// RTROIInterpretedType (EXTERNAL, PTV, ORGAN, …), empty when absent.
    pub interpreted_type: String,
    /// ROIGenerationAlgorithm (AUTOMATIC, SEMIAUTOMATIC, MANUAL); empty when
    /// absent.
    pub generation_algorithm: String,
    /// ReferencedFrameOfReferenceUID of the ROI: the patient coordinate
    /// system its contours are in (the structure set's first one when the
    /// ROI names none).
    pub frame_of_reference_uid: String,
    /// Closed planar contours by plane, ascending z.
    pub planes: Vec<ContourPlane>,
    /// POINT (and open) contours, which have no volume.
    pub ignored_contours: usize,
    /// Where the ROI comes from.
    pub source: RoiSource,
    /// Oddities found and how they were handled.
    pub notes: Vec<String>,
}

impl Roi {
    /// An ROI built in memory (tests, synthetic data, derived structures).
    pub fn from_planes(number: i64, name: &str, mut planes: Vec<ContourPlane>) -> Roi {
        planes.sort_by(|a, b| a.z.total_cmp(&b.z));
        Roi {
            number,
            name: name.to_string(),
            interpreted_type: String::new(),
            generation_algorithm: String::new(),
            frame_of_reference_uid: String::new(),
            planes,
            ignored_contours: 0,
            source: RoiSource::StructureSet {
                sop_instance_uid: String::new(),
            },
            notes: Vec::new(),
        }
    }

    /// Median distance between consecutive contour planes.
    pub fn plane_spacing(&self) -> Option<f64> {
        median_gap(self.planes.iter().map(|p| p.z))
    }
}

/// Median of the gaps between consecutive values of an ascending sequence.
pub(crate) fn median_gap(zs: impl Iterator<Item = f64>) -> Option<f64> {
    let zs: Vec<f64> = zs.collect();
    let mut gaps: Vec<f64> = zs
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > PLANE_TOLERANCE_MM)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    Some(gaps[gaps.len() / 2])
}

/// An RT Structure Set: its ROIs with their contours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtStruct {
    /// SOP Instance UID of the structure set (empty for one built in memory).
    pub sop_instance_uid: String,
    /// StructureSetLabel; empty when absent.
    pub label: String,
    /// The frame of reference the structure set lives in.
    pub frame_of_reference_uid: String,
    /// ROIs in StructureSetROISequence order (ROIs with contours but no
    /// entry there last), names made unique.
    pub rois: Vec<Roi>,
    /// Oddities of the structure set as a whole.
    pub notes: Vec<String>,
}

impl RtStruct {
    /// Reads the RTSTRUCT file at `path`; see [`RtStruct::from_object`].
    pub fn from_file(path: &Path) -> Result<RtStruct> {
        let obj = attrs::open(path, false)?;
        Self::from_object(&obj).with_context(|| format!("reading RTSTRUCT {}", path.display()))
    }

    /// A structure set built in memory.
    pub fn from_rois(sop_instance_uid: &str, frame_of_reference_uid: &str, rois: Vec<Roi>) -> Self {
        RtStruct {
            sop_instance_uid: sop_instance_uid.into(),
            label: String::new(),
            frame_of_reference_uid: frame_of_reference_uid.into(),
            rois,
            notes: Vec::new(),
        }
    }

    /// Marks every ROI as coming from an auto-segmentation model.
    pub fn set_autoseg_model(&mut self, model: &str) {
        for r in &mut self.rois {
            r.source = RoiSource::AutoSegmentation {
                model: model.into(),
                sop_instance_uid: self.sop_instance_uid.clone(),
            };
        }
    }

    /// The ROI named exactly `name` (case-sensitive), if any.
    pub fn roi(&self, name: &str) -> Option<&Roi> {
        self.rois.iter().find(|r| r.name == name)
    }

    /// The median contour plane spacing over all ROIs: the image slice
    /// spacing, used for ROIs with a single plane.
    pub fn typical_plane_spacing(&self) -> Option<f64> {
        let mut zs: Vec<f64> = self
            .rois
            .iter()
            .flat_map(|r| r.planes.iter().map(|p| p.z))
            .collect();
        zs.sort_by(f64::total_cmp);
        zs.dedup_by(|a, b| (*a - *b).abs() < PLANE_TOLERANCE_MM);
        median_gap(zs.into_iter())
    }

    /// Reads a parsed RTSTRUCT: its ROIs with their closed planar contours
    /// grouped by plane; an error when the modality is other than RTSTRUCT (an
    /// absent Modality is accepted).
    pub fn from_object(obj: &InMemDicomObject) -> Result<RtStruct> {
        let modality = attrs::code(obj, tags::MODALITY);
        anyhow::ensure!(
            modality == "RTSTRUCT" || modality.is_empty(),
            "modality is {modality}, not RTSTRUCT"
        );
        let sop_instance_uid = attrs::text(obj, tags::SOP_INSTANCE_UID);
        let mut notes = Vec::new();
        let frames: Vec<String> = attrs::items(obj, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)
            .iter()
            .map(|i| attrs::text(i, tags::FRAME_OF_REFERENCE_UID))
            .filter(|u| !u.is_empty())
            .collect();
        if frames.len() > 1 {
            notes.push(format!(
                "structure set references {} frames of reference; ROIs keep their own",
                frames.len()
            ));
        }
        let default_for = frames.first().cloned().unwrap_or_default();

        // StructureSetROISequence: number → (name, frame, algorithm), in file order.
        let mut defs: Vec<(i64, String, String, String)> = Vec::new();
        for item in attrs::items(obj, tags::STRUCTURE_SET_ROI_SEQUENCE) {
            let Some(n) = attrs::int(&item, tags::ROI_NUMBER) else {
                notes.push("a StructureSetROISequence item has no ROINumber: ignored".into());
                continue;
            };
            let mut f = attrs::text(&item, tags::REFERENCED_FRAME_OF_REFERENCE_UID);
            if f.is_empty() {
                f = default_for.clone();
            }
            defs.push((
                n,
                attrs::text(&item, tags::ROI_NAME),
                f,
                attrs::code(&item, tags::ROI_GENERATION_ALGORITHM),
            ));
        }
        let mut types: HashMap<i64, String> = HashMap::new();
        for item in attrs::items(obj, tags::RTROI_OBSERVATIONS_SEQUENCE) {
            if let Some(n) = attrs::int(&item, tags::REFERENCED_ROI_NUMBER) {
                types.insert(n, attrs::code(&item, tags::RTROI_INTERPRETED_TYPE));
            }
        }
        let mut contours: BTreeMap<i64, InMemDicomObject> = BTreeMap::new();
        for item in attrs::items(obj, tags::ROI_CONTOUR_SEQUENCE) {
            match attrs::int(&item, tags::REFERENCED_ROI_NUMBER) {
                Some(n) => {
                    if contours.insert(n, item).is_some() {
                        notes.push(format!(
                            "ROI {n} has two ROIContourSequence items: the last is used"
                        ));
                    }
                }
                None => notes
                    .push("an ROIContourSequence item has no ReferencedROINumber: ignored".into()),
            }
        }
        for n in contours.keys() {
            if !defs.iter().any(|d| d.0 == *n) {
                notes.push(format!(
                    "ROI {n} has contours but no StructureSetROISequence entry: named \"ROI {n}\""
                ));
                defs.push((*n, String::new(), default_for.clone(), String::new()));
            }
        }

        let source = RoiSource::StructureSet {
            sop_instance_uid: sop_instance_uid.clone(),
        };
        let mut rois = Vec::new();
        let mut used_names: HashMap<String, usize> = HashMap::new();
        for (number, name, frame, algorithm) in defs {
            let mut roi_notes = Vec::new();
            let mut name = name;
            if name.is_empty() {
                name = format!("ROI {number}");
                roi_notes.push("no ROIName".to_string());
            }
            let count = used_names.entry(name.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                let renamed = format!("{name} (ROI {number})");
                roi_notes.push(format!("name {name:?} is used twice: renamed {renamed:?}"));
                name = renamed;
            }
            let (planes, ignored) = match contours.get(&number) {
                Some(item) => read_planes(item, &mut roi_notes),
                None => (Vec::new(), 0),
            };
            if planes.is_empty() {
                roi_notes.push("no closed planar contours: no volume".into());
            }
            if ignored > 0 {
                roi_notes.push(format!(
                    "{ignored} point or open contour(s) ignored for volumes"
                ));
            }
            rois.push(Roi {
                number,
                name,
                interpreted_type: types.get(&number).cloned().unwrap_or_default(),
                generation_algorithm: algorithm,
                frame_of_reference_uid: frame,
                planes,
                ignored_contours: ignored,
                source: source.clone(),
                notes: roi_notes,
            });
        }
        Ok(RtStruct {
            sop_instance_uid,
            label: attrs::text(obj, tags::STRUCTURE_SET_LABEL),
            frame_of_reference_uid: default_for,
            rois,
            notes,
        })
    }
}

/// Closed planar contours of one ROIContourSequence item, grouped by plane.
fn read_planes(item: &InMemDicomObject, notes: &mut Vec<String>) -> (Vec<ContourPlane>, usize) {
    let mut ignored = 0;
    let mut flat: Vec<(f64, Polygon)> = Vec::new();
    let (mut degenerate, mut non_axial, mut count_mismatch) = (0, 0, 0);
    for c in attrs::items(item, tags::CONTOUR_SEQUENCE) {
        let kind = attrs::code(&c, tags::CONTOUR_GEOMETRIC_TYPE);
        if kind != "CLOSED_PLANAR" {
            // A missing type is read as closed: that is what a contour with
            // three or more points nearly always is.
            if !kind.is_empty() {
                ignored += 1;
                continue;
            }
        }
        let data = attrs::floats(&c, tags::CONTOUR_DATA).unwrap_or_default();
        if !data.len().is_multiple_of(3) {
            count_mismatch += 1;
        }
        if let Some(n) = attrs::int(&c, tags::NUMBER_OF_CONTOUR_POINTS) {
            if n as usize != data.len() / 3 {
                count_mismatch += 1;
            }
        }
        let pts: Vec<[f64; 3]> = data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        if pts.len() < 3 {
            degenerate += 1;
            continue;
        }
        let z_min = pts.iter().map(|p| p[2]).fold(f64::INFINITY, f64::min);
        let z_max = pts.iter().map(|p| p[2]).fold(f64::NEG_INFINITY, f64::max);
        if z_max - z_min > PLANE_TOLERANCE_MM {
            non_axial += 1;
            continue;
        }
        let z = pts.iter().map(|p| p[2]).sum::<f64>() / pts.len() as f64;
        let mut poly: Polygon = Vec::with_capacity(pts.len());
        for p in pts {
            let q = [p[0], p[1]];
            if poly.last() != Some(&q) {
                poly.push(q);
            }
        }
        while poly.len() > 1 && poly.first() == poly.last() {
            poly.pop();
        }
        if poly.len() < 3 || polygon_area(&poly) == 0.0 {
            degenerate += 1;
            continue;
        }
        flat.push((z, poly));
    }
    if degenerate > 0 {
        notes.push(format!(
            "{degenerate} contour(s) with fewer than three distinct points or no area skipped"
        ));
    }
    if non_axial > 0 {
        notes.push(format!(
            "{non_axial} contour(s) not on an axial plane skipped"
        ));
    }
    if count_mismatch > 0 {
        notes.push(format!(
            "{count_mismatch} contour(s) whose NumberOfContourPoints disagrees with ContourData: the data was used"
        ));
    }
    (group_planes(flat), ignored)
}

/// Groups contours by z within [`PLANE_TOLERANCE_MM`], whatever their order.
pub fn group_planes(mut flat: Vec<(f64, Polygon)>) -> Vec<ContourPlane> {
    flat.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut planes: Vec<ContourPlane> = Vec::new();
    let mut zsum = 0.0;
    for (z, poly) in flat {
        match planes.last_mut() {
            Some(p) if (z - p.z).abs() < PLANE_TOLERANCE_MM => {
                zsum += z;
                p.polygons.push(poly);
            }
            _ => {
                if let Some(p) = planes.last_mut() {
                    p.z = zsum / p.polygons.len() as f64;
                }
                zsum = z;
                planes.push(ContourPlane {
                    z,
                    polygons: vec![poly],
                });
            }
        }
    }
    if let Some(p) = planes.last_mut() {
        p.z = zsum / p.polygons.len() as f64;
    }
    planes
}
