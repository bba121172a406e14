//! Is an image series a complete volume? Parallel slices, equally spaced
//! along their normal, no gap, no duplicate position.

use serde::{Deserialize, Serialize};

use crate::store::InstanceRecord;

/// Whether an image series forms a complete volume, and its slice layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesGeometry {
    /// Number of slices (instances) in the series.
    pub slices: usize,
    /// True when the slices are parallel, equally spaced, without gap or
    /// duplicate position; `problems` says why not.
    pub complete: bool,
    /// Slice spacing along the normal (median of neighbour distances), mm.
    pub spacing_mm: Option<f64>,
    /// Row × column direction: the slice normal.
    pub normal: Option<[f64; 3]>,
    /// Lowest slice position along the normal, mm (slices sorted along it);
    /// None when no slice has a position.
    pub first_mm: Option<f64>,
    /// Highest slice position along the normal, mm; None when no slice has a
    /// position.
    pub last_mm: Option<f64>,
    /// Why it is not complete, for a person to read.
    pub problems: Vec<String>,
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Orientation cosines agree within this (about 0.06 degrees).
const ORIENTATION_TOL: f64 = 1e-3;

/// Checks an image series; `images` are the series' instance records.
pub fn check_series(images: &[&InstanceRecord]) -> SeriesGeometry {
    let mut g = SeriesGeometry {
        slices: images.len(),
        ..SeriesGeometry::default()
    };
    if images.len() < 2 {
        g.problems
            .push(format!("{} slice(s): not a volume", images.len()));
        return g;
    }
    let Some(iop) = images[0].image_orientation_patient else {
        g.problems.push("no ImageOrientationPatient".into());
        return g;
    };
    let row = [iop[0], iop[1], iop[2]];
    let col = [iop[3], iop[4], iop[5]];
    let normal = cross(row, col);
    g.normal = Some(normal);
    let mut positions = Vec::with_capacity(images.len());
    for rec in images {
        let (Some(o), Some(p)) = (rec.image_orientation_patient, rec.image_position_patient) else {
            g.problems.push(format!(
                "instance {} lacks ImagePositionPatient or ImageOrientationPatient",
                rec.sop_instance_uid
            ));
            return g;
        };
        if o.iter()
            .zip(iop.iter())
            .any(|(a, b)| (a - b).abs() > ORIENTATION_TOL)
        {
            g.problems.push(format!(
                "instance {} is not parallel to the others",
                rec.sop_instance_uid
            ));
            return g;
        }
        positions.push(dot(p, normal));
    }
    positions.sort_by(f64::total_cmp);
    let diffs: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = diffs.clone();
    sorted.sort_by(f64::total_cmp);
    let spacing = sorted[sorted.len() / 2];
    g.first_mm = positions.first().copied();
    g.last_mm = positions.last().copied();
    if spacing < 1e-3 {
        g.problems
            .push("most slices share one position (duplicates)".into());
        return g;
    }
    g.spacing_mm = Some(spacing);
    // DS values carry at most 16 characters; allow their rounding, and a
    // small relative jitter some scanners write.
    let tol = (0.02 * spacing).max(0.02);
    for (i, d) in diffs.iter().enumerate() {
        let (a, b) = (positions[i], positions[i + 1]);
        if *d < tol {
            g.problems
                .push(format!("duplicate slice position at {a:.2} mm"));
        } else if (d - spacing).abs() > tol {
            let missing = (d / spacing).round() as i64 - 1;
            if missing >= 1 && (d - (missing + 1) as f64 * spacing).abs() <= tol {
                g.problems.push(format!(
                    "gap: {missing} slice(s) missing between {a:.2} mm and {b:.2} mm"
                ));
            } else {
                g.problems.push(format!(
                    "irregular spacing: {d:.3} mm between {a:.2} mm and {b:.2} mm (usual {spacing:.3} mm)"
                ));
            }
        }
    }
    g.complete = g.problems.is_empty();
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(uid: &str, z: f64) -> InstanceRecord {
        InstanceRecord {
            sop_instance_uid: uid.into(),
            image_position_patient: Some([-250.0, -250.0, z]),
            image_orientation_patient: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            ..InstanceRecord::default()
        }
    }

    fn check(zs: &[f64]) -> SeriesGeometry {
        let recs: Vec<_> = zs
            .iter()
            .enumerate()
            .map(|(i, z)| slice(&i.to_string(), *z))
            .collect();
        let refs: Vec<&InstanceRecord> = recs.iter().collect();
        check_series(&refs)
    }

    #[test]
    fn regular_series_in_any_order_is_complete() {
        let g = check(&[5.0, 0.0, 2.5, 7.5, 10.0]);
        assert!(g.complete, "{:?}", g.problems);
        assert_eq!(g.spacing_mm, Some(2.5));
        assert_eq!((g.first_mm, g.last_mm), (Some(0.0), Some(10.0)));
    }

    #[test]
    fn a_missing_slice_is_named() {
        let g = check(&[0.0, 2.5, 5.0, 10.0, 12.5, 15.0]);
        assert!(!g.complete);
        assert_eq!(
            g.problems,
            vec!["gap: 1 slice(s) missing between 5.00 mm and 10.00 mm"]
        );
    }

    #[test]
    fn duplicates_and_odd_spacing_are_problems() {
        assert!(check(&[0.0, 2.5, 2.5, 5.0, 7.5]).problems[0].starts_with("duplicate"));
        assert!(check(&[0.0, 2.5, 5.0, 6.0, 8.5, 11.0]).problems[0].starts_with("irregular"));
        assert!(!check(&[0.0]).complete);
    }

    #[test]
    fn rounding_in_positions_is_tolerated() {
        assert!(check(&[0.0, 2.50001, 4.99999, 7.5]).complete);
    }

    #[test]
    fn feet_first_and_prone_normals_work() {
        // Prone: rows run -x, columns -y; the normal is still ±z.
        let recs: Vec<_> = [0.0, -3.0, -6.0]
            .iter()
            .enumerate()
            .map(|(i, z)| InstanceRecord {
                sop_instance_uid: i.to_string(),
                image_position_patient: Some([250.0, 250.0, *z]),
                image_orientation_patient: Some([-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]),
                ..InstanceRecord::default()
            })
            .collect();
        let refs: Vec<&InstanceRecord> = recs.iter().collect();
        let g = check_series(&refs);
        assert!(g.complete, "{:?}", g.problems);
        assert_eq!(g.spacing_mm, Some(3.0));
    }
}
