//! Building the dose [`select_dose`](super::select_dose) chose from the
//! loaded grids of its components: each scaled by its factor, and several
//! summed on the finest grid extended to cover them all (trilinear
//! sampling, with what was done written into the grid's notes).

use std::collections::BTreeSet;

use anyhow::{bail, ensure, Context, Result};
use ndarray::Array3;

use super::select::{short, DoseChoice};
use crate::rt::rtdose::{DoseGrid, DoseProvenance, GridGeometry};

/// Builds the chosen dose from the grids of its components (looked up by
/// SOP Instance UID): scaled, and summed on the finest grid when several.
pub fn assemble_dose(choice: &DoseChoice, grids: &[DoseGrid]) -> Result<DoseGrid> {
    if let Some(f) = &choice.failure {
        bail!("no dose chosen: {f}");
    }
    ensure!(!choice.components.is_empty(), "no dose chosen");
    let find = |uid: &str| {
        grids
            .iter()
            .find(|g| g.header.sop_instance_uid == uid)
            .with_context(|| format!("RTDOSE {uid} was chosen but not loaded"))
    };
    let parts: Vec<(&DoseGrid, f64)> = choice
        .components
        .iter()
        .map(|c| Ok((find(&c.dose_uid)?, c.factor)))
        .collect::<Result<_>>()?;
    let mut notes: Vec<String> = Vec::new();
    let frames: BTreeSet<&str> = parts
        .iter()
        .map(|(g, _)| g.header.frame_of_reference_uid.as_str())
        .collect();
    ensure!(
        frames.len() == 1,
        "chosen doses lie on different frames of reference"
    );
    let (finest, _) = parts
        .iter()
        .min_by(|a, b| {
            a.0.geometry
                .voxel_volume_mm3()
                .total_cmp(&b.0.geometry.voxel_volume_mm3())
        })
        .copied()
        .context("no component")?;
    let target = if parts.len() == 1 {
        finest.geometry.clone()
    } else {
        union_geometry(
            &finest.geometry,
            parts.iter().map(|(g, _)| &g.geometry),
            &mut notes,
        )
    };
    let mut data = Array3::<f32>::zeros((target.nz(), target.ny, target.nx));
    for (g, factor) in &parts {
        for n in &g.notes {
            notes.push(format!("RTDOSE {}: {n}", short(&g.header.sop_instance_uid)));
        }
        if g.geometry == target {
            data.zip_mut_with(&g.data, |a, b| *a += (f64::from(*b) * factor) as f32);
        } else {
            let (r, outside) = g.resample(&target);
            if parts.len() > 1 {
                notes.push(format!(
                    "RTDOSE {} resampled trilinearly onto the finest grid{}",
                    short(&g.header.sop_instance_uid),
                    if outside > 0.0 {
                        format!(
                            " ({:.1} % of it outside that dose: zero there)",
                            outside * 100.0
                        )
                    } else {
                        String::new()
                    }
                ));
            }
            data.zip_mut_with(&r, |a, b| *a += (f64::from(*b) * factor) as f32);
        }
    }
    let mut header = finest.header.clone();
    header.summation_type = if parts.len() > 1 {
        "SUM".into()
    } else {
        header.summation_type
    };
    let provenance = DoseProvenance {
        // The chooser only ever makes treatment totals.
        scope: crate::rt::DoseScope::Total,
        description: choice.description.clone(),
        dose_uids: choice
            .components
            .iter()
            .map(|c| c.dose_uid.clone())
            .collect(),
        plan_uids: choice.plan_uids.clone(),
        prescriptions: choice.prescriptions.clone(),
        notes: choice.reasons.clone(),
    };
    let mut grid = DoseGrid::from_array(header, target, data)?;
    grid.provenance = provenance;
    grid.notes = notes;
    Ok(grid)
}

/// The finest grid extended, on its own lattice, to cover all grids.
fn union_geometry<'a>(
    finest: &GridGeometry,
    all: impl Iterator<Item = &'a GridGeometry>,
    notes: &mut Vec<String>,
) -> GridGeometry {
    let mut b = finest.bounds();
    for g in all {
        let o = g.bounds();
        for a in 0..3 {
            b[a][0] = b[a][0].min(o[a][0]);
            b[a][1] = b[a][1].max(o[a][1]);
        }
    }
    let fb = finest.bounds();
    let extend = |lo: f64, hi: f64, flo: f64, fhi: f64, h: f64| {
        let before = ((flo - lo) / h - 1e-6).ceil().max(0.0) as usize;
        let after = ((hi - fhi) / h - 1e-6).ceil().max(0.0) as usize;
        (before, after)
    };
    let (bx, ax) = extend(b[0][0], b[0][1], fb[0][0], fb[0][1], finest.dx);
    let (by, ay) = extend(b[1][0], b[1][1], fb[1][0], fb[1][1], finest.dy);
    let mut z = finest.z.clone();
    let uniform = z.len() > 1 && {
        let d = z[1] - z[0];
        z.windows(2).all(|w| ((w[1] - w[0]) - d).abs() < 1e-3)
    };
    if uniform {
        let dz = z[1] - z[0];
        let (bz, az) = extend(b[2][0], b[2][1], fb[2][0], fb[2][1], dz);
        let first = z[0];
        let last = z[z.len() - 1];
        let mut out: Vec<f64> = (1..=bz).rev().map(|k| first - k as f64 * dz).collect();
        out.extend(z.iter().copied());
        out.extend((1..=az).map(|k| last + k as f64 * dz));
        z = out;
    } else if b[2] != fb[2] {
        notes.push("the finest dose grid has uneven frames: the sum keeps its z extent".into());
    }
    if bx + ax + by + ay > 0 {
        notes.push("the summed grid was extended to cover every plan's dose".into());
    }
    GridGeometry {
        x0: finest.x0 - bx as f64 * finest.dx,
        dx: finest.dx,
        nx: finest.nx + bx + ax,
        y0: finest.y0 - by as f64 * finest.dy,
        dy: finest.dy,
        ny: finest.ny + by + ay,
        z,
        z_margin: finest.z_margin,
    }
}
