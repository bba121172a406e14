//! Derived structures (`dvh.derived`): booleans of other ROIs with margins,
//! built on one shared lattice so that columns line up.

use std::collections::HashMap;

use crate::rt::raster::Lattice;
use crate::rt::shape::{self, BoolOp, Shape, ShapeOptions};
use crate::rt::{Roi, RtStruct};

use super::settings::{DerivedSpec, DvhSettings, MissingSource};

/// One derived structure as built: its definition, its solid and how it came
/// about.
pub struct Derived {
    /// The definition from `dvh.derived`.
    pub spec: DerivedSpec,
    /// None when skipped.
    pub shape: Option<Shape>,
    /// True when some sources were missing and it was built from the others (as
    /// `missing: partial` allows); its DVH is marked so.
    pub partial: bool,
    /// How it was built and what was missing, in words.
    pub notes: Vec<String>,
}

fn find_roi<'a>(rs: &'a RtStruct, name: &str) -> Option<&'a Roi> {
    rs.rois
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name) && !r.planes.is_empty())
}

/// Builds every derived structure in order.
pub fn build(rs: &RtStruct, settings: &DvhSettings, opts: &ShapeOptions) -> Vec<Derived> {
    if settings.derived.is_empty() {
        return Vec::new();
    }
    // One lattice over every contoured ROI a spec names, padded by the
    // largest growth any chain of specs could add.
    let names: Vec<&str> = settings
        .derived
        .iter()
        .flat_map(|d| d.sources.iter().map(|s| s.name()))
        .collect();
    let mut bounds: Option<[f64; 4]> = None;
    let mut z_extent: Option<(f64, f64)> = None;
    for n in &names {
        if let Some(r) = find_roi(rs, n) {
            if let Some(b) = shape::roi_bounds(r) {
                let bb = bounds.get_or_insert(b);
                bb[0] = bb[0].min(b[0]);
                bb[1] = bb[1].min(b[1]);
                bb[2] = bb[2].max(b[2]);
                bb[3] = bb[3].max(b[3]);
            }
            let (lo, hi) = (r.planes[0].z, r.planes[r.planes.len() - 1].z);
            let e = z_extent.get_or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        }
    }
    let growth: f64 = settings
        .derived
        .iter()
        .map(|d| {
            let m = |a: [f64; 3]| a.iter().fold(0.0f64, |x, y| x.max(*y));
            m(d.margin_mm.axes()) + d.sources.iter().map(|s| m(s.margin())).fold(0.0, f64::max)
        })
        .sum();
    let Some(mut b) = bounds else {
        return settings
            .derived
            .iter()
            .map(|spec| Derived {
                spec: spec.clone(),
                shape: None,
                partial: false,
                notes: vec!["none of its sources has contours: skipped".into()],
            })
            .collect();
    };
    b[0] -= growth;
    b[1] -= growth;
    b[2] += growth;
    b[3] += growth;
    let (z0, z1) = z_extent.unwrap_or((0.0, 0.0));
    let depth = (z1 - z0) + 2.0 * growth + 2.0 * opts.fallback_spacing;
    // Step so that a margin's voxel grid stays within max_margin_voxels.
    let volume = (b[2] - b[0]) * (b[3] - b[1]) * depth.max(1.0);
    let mut step = settings.derived_step_mm;
    let cap = settings.max_margin_voxels.max(1) as f64;
    let mut lattice_note = None;
    if volume / step.powi(3) > cap {
        step = (volume / cap).cbrt();
        lattice_note = Some(format!(
            "derived lattice step raised to {step:.2} mm to bound memory"
        ));
    }
    let lattice = Lattice::covering(b, step);

    let mut base: HashMap<String, (Shape, Vec<String>)> = HashMap::new();
    let mut out: Vec<Derived> = Vec::new();
    for spec in &settings.derived {
        let mut notes: Vec<String> = lattice_note.iter().cloned().collect();
        let mut shapes: Vec<Shape> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for src in &spec.sources {
            let name = src.name();
            let shape = if let Some(d) = out.iter().find(|d| d.spec.name.eq_ignore_ascii_case(name))
            {
                match &d.shape {
                    Some(s) => {
                        if d.partial {
                            notes.push(format!("source {name:?} is itself partial"));
                        }
                        Some(s.clone())
                    }
                    None => None,
                }
            } else if let Some(roi) = find_roi(rs, name) {
                let key = roi.name.clone();
                if !base.contains_key(&key) {
                    let built = Shape::from_roi(roi, &lattice, opts);
                    base.insert(key.clone(), built);
                }
                let (s, roi_notes) = &base[&key];
                notes.extend(roi_notes.iter().map(|n| format!("{name}: {n}")));
                Some(s.clone())
            } else {
                None
            };
            match shape {
                Some(s) => shapes.push(s.with_margin(src.margin(), step)),
                None => missing.push(name.to_string()),
            }
        }
        let fatal = !missing.is_empty()
            && (spec.missing == MissingSource::Skip
                || shapes.is_empty()
                // The first source of a subtraction is what the result is
                // made of: without it there is nothing to keep.
                || (spec.op == BoolOp::Subtraction && find_first_missing(spec, &missing)));
        if fatal {
            notes.push(format!("missing source(s) {}: skipped", missing.join(", ")));
            out.push(Derived {
                spec: spec.clone(),
                shape: None,
                partial: false,
                notes,
            });
            continue;
        }
        let partial = !missing.is_empty();
        if partial {
            notes.push(format!(
                "missing source(s) {}: built from the others and marked partial",
                missing.join(", ")
            ));
        }
        let mut it = shapes.into_iter();
        let first = it.next().unwrap_or_else(|| Shape::empty(lattice.clone()));
        let combined = match spec.op {
            BoolOp::Subtraction => {
                let rest = it.fold(Shape::empty(lattice.clone()), |a, s| {
                    a.combine(&s, BoolOp::Union)
                });
                first.combine(&rest, BoolOp::Subtraction)
            }
            op => it.fold(first, |a, s| a.combine(&s, op)),
        };
        let shape = combined.with_margin(spec.margin_mm.axes(), step);
        if shape.spans.is_empty() {
            notes.push("the result is empty".into());
        }
        out.push(Derived {
            spec: spec.clone(),
            shape: Some(shape),
            partial,
            notes,
        });
    }
    out
}

fn find_first_missing(spec: &DerivedSpec, missing: &[String]) -> bool {
    spec.sources
        .first()
        .is_some_and(|s| missing.iter().any(|m| m == s.name()))
}
