//! qc: a per-course report of what a physicist checks before trusting the
//! numbers — image series regularity and orientation, frames of reference
//! across objects, structure contours (empty, self-intersecting, touching
//! the image edge, outside the dose grid), and the plan and dose attributes
//! that decide how a dose may be used. Each check is PASS, WARNING or FAIL.

use std::path::Path;

use anyhow::{Context, Result};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};

use super::{member_keys, Inputs, Outcome, Stage, StageContext, StageId};
use crate::course::Course;
use crate::dicom::uids;

/// The qc stage.
pub struct Qc;

/// The stage's output file: the [`Report`] as JSON.
pub const REPORT_FILE: &str = "qc.json";

/// A check's outcome, written `PASS`, `WARNING`, `FAIL`; ordered by
/// severity, so the worst is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Nothing to look at.
    Pass,
    /// Worth a look before the numbers are trusted.
    Warning,
    /// The data cannot be used as it is.
    Fail,
}

/// One check and what it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier of the check (`missing_slices`, `dose_units`, ...).
    pub id: String,
    /// What it is about: `image`, `references`, `structures`, `plan`, `dose`.
    pub category: String,
    /// Its outcome.
    pub status: Verdict,
    /// What was found, in words for the physicist.
    pub detail: String,
}

/// The whole of qc.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The course checked.
    pub course_id: String,
    /// The worst status of any check (PASS when there is none).
    pub verdict: Verdict,
    /// Every check run, in order.
    pub checks: Vec<Check>,
}

struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, category: &str, id: &str, status: Verdict, detail: impl Into<String>) {
        self.0.push(Check {
            id: id.into(),
            category: category.into(),
            status,
            detail: detail.into(),
        });
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .unwrap_or_default()
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Vec<f64> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .unwrap_or_default()
}

fn header(path: &Path) -> Result<dicom_object::DefaultDicomObject> {
    dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .with_context(|| format!("reading {}", path.display()))
}

/// One ROI's closed planar contours, in patient coordinates.
struct Roi {
    number: i64,
    name: String,
    contours: Vec<Vec<[f64; 3]>>,
}

fn read_rois(obj: &InMemDicomObject) -> Vec<Roi> {
    let names: Vec<(i64, String)> = obj
        .get(tags::STRUCTURE_SET_ROI_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or(&[])
        .iter()
        .map(|i| {
            (
                i.get(tags::ROI_NUMBER)
                    .and_then(|e| e.to_int::<i64>().ok())
                    .unwrap_or(-1),
                text(i, tags::ROI_NAME),
            )
        })
        .collect();
    let mut rois: Vec<Roi> = names
        .iter()
        .map(|(n, name)| Roi {
            number: *n,
            name: name.clone(),
            contours: Vec::new(),
        })
        .collect();
    for item in obj
        .get(tags::ROI_CONTOUR_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or(&[])
    {
        let n = item
            .get(tags::REFERENCED_ROI_NUMBER)
            .and_then(|e| e.to_int::<i64>().ok())
            .unwrap_or(-1);
        let Some(roi) = rois.iter_mut().find(|r| r.number == n) else {
            continue;
        };
        for c in item
            .get(tags::CONTOUR_SEQUENCE)
            .and_then(|e| e.items())
            .unwrap_or(&[])
        {
            if text(c, tags::CONTOUR_GEOMETRIC_TYPE) != "CLOSED_PLANAR" {
                continue;
            }
            let d = floats(c, tags::CONTOUR_DATA);
            roi.contours
                .push(d.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect());
        }
    }
    rois
}

fn segments_cross(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let orient = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    };
    let (o1, o2, o3, o4) = (
        orient(a, b, c),
        orient(a, b, d),
        orient(c, d, a),
        orient(c, d, b),
    );
    o1 * o2 < 0.0 && o3 * o4 < 0.0
}

/// Proper crossings between non-adjacent edges of one closed polygon.
/// Quadratic, but contours have hundreds of points, not millions.
fn self_intersects(points: &[[f64; 3]]) -> bool {
    let n = points.len();
    if n < 4 {
        return false;
    }
    let p: Vec<[f64; 2]> = points.iter().map(|q| [q[0], q[1]]).collect();
    for i in 0..n {
        let (a, b) = (p[i], p[(i + 1) % n]);
        for j in (i + 2)..n {
            if i == 0 && j == n - 1 {
                continue;
            }
            if segments_cross(a, b, p[j], p[(j + 1) % n]) {
                return true;
            }
        }
    }
    false
}

/// A box in patient coordinates, for in/out tests of contour points.
struct Bounds {
    lo: [f64; 3],
    hi: [f64; 3],
}

impl Bounds {
    fn contains(&self, p: [f64; 3], margin: f64) -> bool {
        (0..3).all(|a| p[a] >= self.lo[a] - margin && p[a] <= self.hi[a] + margin)
    }
}

fn image_bounds(course: &Course, data_dir: &Path) -> Result<Option<Bounds>> {
    let Some(first) = course.images.first() else {
        return Ok(None);
    };
    let obj = header(&data_dir.join(&first.path))?;
    let rows = obj.element(tags::ROWS)?.to_int::<u16>()? as f64;
    let cols = obj.element(tags::COLUMNS)?.to_int::<u16>()? as f64;
    let ps = floats(&obj, tags::PIXEL_SPACING);
    let iop = floats(&obj, tags::IMAGE_ORIENTATION_PATIENT);
    let ipp = floats(&obj, tags::IMAGE_POSITION_PATIENT);
    if ps.len() != 2 || iop.len() != 6 || ipp.len() != 3 {
        return Ok(None);
    }
    let corner = |r: f64, c: f64| -> [f64; 3] {
        let mut p = [0.0; 3];
        for a in 0..3 {
            p[a] = ipp[a] + iop[a] * ps[1] * c + iop[3 + a] * ps[0] * r;
        }
        p
    };
    let (c0, c1) = (corner(0.0, 0.0), corner(rows - 1.0, cols - 1.0));
    let g = &course.geometry;
    let normal = g.normal.unwrap_or([0.0, 0.0, 1.0]);
    let (z0, z1) = (g.first_mm.unwrap_or(0.0), g.last_mm.unwrap_or(0.0));
    let mut lo = [0.0; 3];
    let mut hi = [0.0; 3];
    for a in 0..3 {
        lo[a] = c0[a].min(c1[a]);
        hi[a] = c0[a].max(c1[a]);
    }
    // Along the normal the extent is the slice stack (axial: z).
    let axis = (0..3)
        .max_by(|a, b| normal[*a].abs().total_cmp(&normal[*b].abs()))
        .unwrap_or(2);
    lo[axis] = z0.min(z1) * normal[axis].signum();
    hi[axis] = z0.max(z1) * normal[axis].signum();
    if lo[axis] > hi[axis] {
        std::mem::swap(&mut lo[axis], &mut hi[axis]);
    }
    Ok(Some(Bounds { lo, hi }))
}

fn dose_bounds(obj: &InMemDicomObject) -> Option<Bounds> {
    let rows = obj.get(tags::ROWS)?.to_int::<u16>().ok()? as f64;
    let cols = obj.get(tags::COLUMNS)?.to_int::<u16>().ok()? as f64;
    let ps = floats(obj, tags::PIXEL_SPACING);
    let ipp = floats(obj, tags::IMAGE_POSITION_PATIENT);
    let iop = floats(obj, tags::IMAGE_ORIENTATION_PATIENT);
    let offsets = floats(obj, tags::GRID_FRAME_OFFSET_VECTOR);
    if ps.len() != 2 || ipp.len() != 3 || iop.len() != 6 || offsets.is_empty() {
        return None;
    }
    let normal = [
        iop[1] * iop[5] - iop[2] * iop[4],
        iop[2] * iop[3] - iop[0] * iop[5],
        iop[0] * iop[4] - iop[1] * iop[3],
    ];
    // Offsets are relative to the first frame when the first is 0 (type 1),
    // else absolute positions along the normal (type 2, PS3.3 C.8.8.3.2).
    let base = if offsets[0] == 0.0 { 0.0 } else { -offsets[0] };
    let mut lo = [f64::MAX; 3];
    let mut hi = [f64::MIN; 3];
    for (r, c) in [(0.0, 0.0), (rows - 1.0, cols - 1.0)] {
        for off in [offsets[0] + base, offsets[offsets.len() - 1] + base] {
            for a in 0..3 {
                let v = ipp[a] + iop[a] * ps[1] * c + iop[3 + a] * ps[0] * r + normal[a] * off;
                lo[a] = lo[a].min(v);
                hi[a] = hi[a].max(v);
            }
        }
    }
    Some(Bounds { lo, hi })
}

impl Stage for Qc {
    fn name(&self) -> StageId {
        StageId::Qc
    }

    fn after(&self) -> &'static [StageId] {
        &[]
    }

    fn inputs(&self, course: &Course) -> Inputs {
        let keys = member_keys(course.all_members());
        if keys.is_empty() {
            return Err("no objects".into());
        }
        Ok(keys)
    }

    fn run(&self, ctx: &StageContext) -> Result<Outcome> {
        use Verdict::*;
        let course = ctx.course;
        let mut checks = Checks(Vec::new());
        let g = &course.geometry;

        // Image series.
        if course.images.is_empty() {
            checks.add(
                "image",
                "image_series_present",
                Fail,
                "no planning image series received",
            );
        } else {
            checks.add(
                "image",
                "image_series_present",
                Pass,
                format!("{} slices", course.images.len()),
            );
            let gaps: Vec<&String> = g.problems.iter().filter(|p| p.starts_with("gap")).collect();
            if gaps.is_empty() {
                checks.add("image", "missing_slices", Pass, "no gap between slices");
            } else {
                checks.add(
                    "image",
                    "missing_slices",
                    Fail,
                    gaps.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            let other: Vec<&String> = g
                .problems
                .iter()
                .filter(|p| !p.starts_with("gap"))
                .collect();
            match (other.is_empty(), g.spacing_mm) {
                (true, Some(s)) => checks.add(
                    "image",
                    "slice_spacing_regularity",
                    Pass,
                    format!("{s:.3} mm throughout"),
                ),
                _ => checks.add(
                    "image",
                    "slice_spacing_regularity",
                    Fail,
                    other
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
            match g.normal {
                Some(n) if n[2].abs() > 0.99 => checks.add("image", "orientation", Pass, "axial"),
                Some(n) => checks.add(
                    "image",
                    "orientation",
                    Warning,
                    format!(
                        "not axial: slice normal ({:.3}, {:.3}, {:.3})",
                        n[0], n[1], n[2]
                    ),
                ),
                None => checks.add("image", "orientation", Fail, "no orientation"),
            }
        }

        // Frames of reference.
        let image_for = course.frame_of_reference_uid.clone();
        let mut for_problems = Vec::new();
        let ss_obj = match course.current_structure_set() {
            Some(m) => Some(header(&ctx.instance_path(&m.path))?),
            None => None,
        };
        if let Some(ss) = &ss_obj {
            let refs: Vec<String> = ss
                .get(tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)
                .and_then(|e| e.items())
                .unwrap_or(&[])
                .iter()
                .map(|i| text(i, tags::FRAME_OF_REFERENCE_UID))
                .collect();
            if !image_for.is_empty() && !refs.contains(&image_for) {
                for_problems.push(format!(
                    "RTSTRUCT references {refs:?}, images are on {image_for}"
                ));
            }
        }
        let mut dose_objs = Vec::new();
        for d in &course.doses {
            let obj = header(&ctx.instance_path(&d.member.path))?;
            let f = text(&obj, tags::FRAME_OF_REFERENCE_UID);
            if !image_for.is_empty() && f != image_for {
                for_problems.push(format!(
                    "RTDOSE {} is on {f}, images on {image_for}",
                    d.member.sop_instance_uid
                ));
            }
            dose_objs.push((d, obj));
        }
        if for_problems.is_empty() {
            checks.add(
                "references",
                "frame_of_reference_consistency",
                Pass,
                format!("all objects on {image_for}"),
            );
        } else {
            checks.add(
                "references",
                "frame_of_reference_consistency",
                Fail,
                for_problems.join("; "),
            );
        }

        // Structures.
        match &ss_obj {
            None => checks.add(
                "structures",
                "structure_set_present",
                Warning,
                "no RTSTRUCT",
            ),
            Some(ss) => {
                let rois = read_rois(ss);
                checks.add(
                    "structures",
                    "structure_set_present",
                    Pass,
                    format!("{} ROIs", rois.len()),
                );
                let empty: Vec<&str> = rois
                    .iter()
                    .filter(|r| r.contours.iter().all(|c| c.is_empty()))
                    .map(|r| r.name.as_str())
                    .collect();
                if empty.is_empty() {
                    checks.add(
                        "structures",
                        "empty_structures",
                        Pass,
                        "every ROI has contours",
                    );
                } else {
                    checks.add(
                        "structures",
                        "empty_structures",
                        Warning,
                        format!("no contours: {}", empty.join(", ")),
                    );
                }
                let crossing: Vec<&str> = rois
                    .iter()
                    .filter(|r| r.contours.iter().any(|c| self_intersects(c)))
                    .map(|r| r.name.as_str())
                    .collect();
                if crossing.is_empty() {
                    checks.add("structures", "self_intersecting_contours", Pass, "none");
                } else {
                    checks.add(
                        "structures",
                        "self_intersecting_contours",
                        Warning,
                        format!("self-intersecting contours in: {}", crossing.join(", ")),
                    );
                }
                if let Some(b) = image_bounds(course, ctx.data_dir)? {
                    // Within half a millimetre of the outermost voxel centres.
                    let edge: Vec<&str> = rois
                        .iter()
                        .filter(|r| {
                            r.contours.iter().flatten().any(|p| {
                                (0..2).any(|a| {
                                    (p[a] - b.lo[a]).abs() < 0.5 || (p[a] - b.hi[a]).abs() < 0.5
                                }) || !b.contains(*p, 0.5)
                            })
                        })
                        .map(|r| r.name.as_str())
                        .collect();
                    if edge.is_empty() {
                        checks.add("structures", "structures_touching_image_edge", Pass, "none");
                    } else {
                        checks.add(
                            "structures",
                            "structures_touching_image_edge",
                            Warning,
                            format!("at or beyond the image edge: {}", edge.join(", ")),
                        );
                    }
                }
                for (d, obj) in &dose_objs {
                    let Some(b) = dose_bounds(obj) else {
                        checks.add(
                            "dose",
                            "dose_grid_coverage",
                            Fail,
                            format!(
                                "RTDOSE {}: no usable grid geometry",
                                d.member.sop_instance_uid
                            ),
                        );
                        continue;
                    };
                    let mut partial = Vec::new();
                    for r in &rois {
                        let pts: Vec<&[f64; 3]> = r.contours.iter().flatten().collect();
                        if pts.is_empty() {
                            continue;
                        }
                        let outside = pts.iter().filter(|p| !b.contains(***p, 1e-6)).count();
                        if outside > 0 {
                            partial.push(format!(
                                "{} ({:.0}% of contour points outside)",
                                r.name,
                                100.0 * outside as f64 / pts.len() as f64
                            ));
                        }
                    }
                    if partial.is_empty() {
                        checks.add(
                            "dose",
                            "dose_grid_coverage",
                            Pass,
                            format!(
                                "RTDOSE {} covers every structure",
                                d.member.sop_instance_uid
                            ),
                        );
                    } else {
                        checks.add(
                            "dose",
                            "dose_grid_coverage",
                            Warning,
                            format!(
                                "RTDOSE {} covers only part of: {}",
                                d.member.sop_instance_uid,
                                partial.join(", ")
                            ),
                        );
                    }
                }
            }
        }

        // Plans and doses.
        if course.plans.is_empty() {
            checks.add("plan", "plan_present", Warning, "no RTPLAN");
        }
        for p in &course.plans {
            let status = if p.approval_status == "APPROVED" {
                Pass
            } else {
                Warning
            };
            checks.add(
                "plan",
                "plan_approval",
                status,
                format!(
                    "RTPLAN {} ({}) is {}",
                    p.member.sop_instance_uid,
                    p.label,
                    if p.approval_status.is_empty() {
                        "without ApprovalStatus"
                    } else {
                        &p.approval_status
                    }
                ),
            );
        }
        for (d, obj) in &dose_objs {
            let uid = &d.member.sop_instance_uid;
            let class = text(obj, tags::SOP_CLASS_UID);
            checks.add(
                "dose",
                "dose_sop_class",
                if class == uids::RT_DOSE_STORAGE {
                    Pass
                } else {
                    Fail
                },
                format!("RTDOSE {uid}: {}", uids::sop_class_name(&class)),
            );
            match d.units.as_str() {
                "GY" => checks.add("dose", "dose_units", Pass, format!("RTDOSE {uid}: GY")),
                "RELATIVE" => checks.add(
                    "dose",
                    "dose_units",
                    Warning,
                    format!("RTDOSE {uid}: RELATIVE, no absolute metrics"),
                ),
                u => checks.add(
                    "dose",
                    "dose_units",
                    Fail,
                    format!("RTDOSE {uid}: unknown units {u:?}"),
                ),
            }
            match d.dose_type.as_str() {
                "PHYSICAL" => {
                    checks.add("dose", "dose_type", Pass, format!("RTDOSE {uid}: PHYSICAL"))
                }
                "EFFECTIVE" => checks.add(
                    "dose",
                    "dose_type",
                    Warning,
                    format!("RTDOSE {uid}: EFFECTIVE, never summed with PHYSICAL"),
                ),
                t => checks.add("dose", "dose_type", Fail, format!("RTDOSE {uid}: {t:?}")),
            }
            match d.summation_type.as_str() {
                "PLAN" | "MULTI_PLAN" => checks.add("dose", "dose_summation_type", Pass, format!("RTDOSE {uid}: {}", d.summation_type)),
                "FRACTION" | "BEAM" | "BRACHY" | "CONTROL_POINT" | "RECORD" => checks.add("dose", "dose_summation_type", Warning, format!("RTDOSE {uid}: {} (not a plan dose; the DVH stage must combine or scale it)", d.summation_type)),
                t => checks.add("dose", "dose_summation_type", Fail, format!("RTDOSE {uid}: unknown summation type {t:?}")),
            }
        }
        for note in &course.notes {
            checks.add("references", "course_notes", Warning, note.clone());
        }

        let verdict = checks.0.iter().map(|c| c.status).max().unwrap_or(Pass);
        let report = Report {
            course_id: course.id.clone(),
            verdict,
            checks: checks.0,
        };
        std::fs::write(
            ctx.out_dir.join(REPORT_FILE),
            serde_json::to_vec_pretty(&report)?,
        )?;
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.status == Fail)
            .map(|c| c.id.as_str())
            .collect();
        Ok(Outcome::done(serde_json::json!({
            "verdict": verdict,
            "checks": report.checks.len(),
            "failed": failed,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_eight_self_intersects_and_a_square_does_not() {
        let square = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
        ];
        assert!(!self_intersects(&square));
        let bowtie = [
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
        ];
        assert!(self_intersects(&bowtie));
    }

    #[test]
    fn verdict_orders_by_severity() {
        assert!(Verdict::Fail > Verdict::Warning && Verdict::Warning > Verdict::Pass);
    }
}
