//! The built-in body contour against the synthetic phantom's analytic
//! outline, sampled at the voxel centres of the CT grid.

use ndarray::Array3;
use rtnode::segmentation::body::{body_mask, BodyOptions};
use rtnode::segmentation::contour::dice;
use rtnode::synth::{CtGrid, Phantom, SynthOptions, HU_AIR, HU_COUCH};
use rtnode::volume::{Geometry, Volume};

/// The phantom on its CT grid, exactly as `write_ct_series` samples it.
fn phantom_volume(opts: &SynthOptions) -> (Volume, Phantom, CtGrid) {
    let grid = CtGrid::for_options(opts).unwrap();
    let p = Phantom::for_options(opts);
    let (n, rows, cols) = (
        grid.slice_z.len(),
        grid.rows as usize,
        grid.columns as usize,
    );
    let mut data = Array3::<f32>::zeros((n, rows, cols));
    for ((k, r, c), v) in data.indexed_iter_mut() {
        let (x, y) = grid.pixel_centre(r as u16, c as u16);
        *v = p.hu_at(x, y, grid.slice_z[k]) as f32;
    }
    let s = grid.pixel_spacing_mm;
    let geometry = Geometry {
        origin: [grid.first_pixel_x, grid.first_pixel_y, grid.slice_z[0]],
        spacing: [s, s, grid.slice_thickness_mm],
        directions: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        size: [cols, rows, n],
    };
    (Volume { geometry, data }, p, grid)
}

fn truth(
    v: &Volume,
    p: &Phantom,
    grid: &CtGrid,
    f: impl Fn(&Phantom, f64, f64, f64) -> bool,
) -> Vec<bool> {
    v.data
        .indexed_iter()
        .map(|((k, r, c), _)| {
            let (x, y) = grid.pixel_centre(r as u16, c as u16);
            f(p, x, y, grid.slice_z[k])
        })
        .collect()
}

#[test]
fn body_contour_matches_the_phantom_outline_and_leaves_the_couch() {
    for rows in [128u16, 256] {
        let opts = SynthOptions {
            slices: 10,
            ..SynthOptions::default().with_rows(rows)
        };
        let (v, p, grid) = phantom_volume(&opts);
        let mask = body_mask(&v, &BodyOptions::default(), &|_| {}).unwrap();
        let body = truth(&v, &p, &grid, |p, x, y, z| p.inside_body(x, y, z));
        let couch = truth(&v, &p, &grid, |p, x, y, _| p.couch.contains(x, y));
        let d = dice(&mask, &body);
        let on_couch = mask.iter().zip(&couch).filter(|(m, c)| **m && **c).count();
        println!("rows {rows}: Dice {d:.6}, couch voxels in the body {on_couch}");
        assert!(d >= 0.99, "rows {rows}: Dice {d}");
        assert_eq!(on_couch, 0, "rows {rows}: couch in the body");
        // The couch is in the image (so its absence above means something),
        // and the lungs, holes of the threshold mask, were filled (else the
        // Dice would be near 0.8).
        assert!(couch.iter().any(|&c| c));
    }
}

/// A couch top of a thin shell, pressed against the back with no air gap
/// (as on a real couch, whose foam core is below the threshold): it is cut
/// away except under the contact, where shell and back together are
/// thicker than the erosion disc and part of the shell stays (documented
/// in `body.rs`).
#[test]
fn a_couch_shell_touching_the_body_is_cut_away() {
    let opts = SynthOptions {
        slices: 8,
        ..SynthOptions::default().with_rows(256)
    };
    let (mut v, p, grid) = phantom_volume(&opts);
    let s = grid.pixel_spacing_mm;
    // Shell: 4 mm thick, its top at the body's lowest point.
    let top = p.body.cy + p.body.ry - 0.5 * s;
    let shell = |x: f64, y: f64| y >= top && y < top + 4.0 && x.abs() < 0.45 * opts.fov_mm();
    for ((_, r, c), hu) in v.data.indexed_iter_mut() {
        let (x, y) = grid.pixel_centre(r as u16, c as u16);
        if p.couch.contains(x, y) {
            *hu = HU_AIR as f32;
        }
        if shell(x, y) && !p.body.contains(x, y) {
            *hu = HU_COUCH as f32;
        }
    }
    let mask = body_mask(&v, &BodyOptions::default(), &|_| {}).unwrap();
    let body = truth(&v, &p, &grid, |p, x, y, z| p.inside_body(x, y, z));
    let d = dice(&mask, &body);
    // Shell voxels farther below the back than the erosion radius, one
    // pixel and the shell's thickness: outside any contact zone.
    let reach = BodyOptions::default().separation_mm + s + 4.0;
    let far_shell = truth(&v, &p, &grid, |p, x, y, _| {
        shell(x, y) && !p.body.contains(x, y) && !p.body.contains(x, y - reach)
    });
    let kept_far = mask
        .iter()
        .zip(&far_shell)
        .filter(|(m, c)| **m && **c)
        .count();
    let kept_any = mask.iter().zip(&body).filter(|(m, b)| **m && !**b).count();
    println!(
        "touching shell: Dice {d:.6}, shell voxels kept {kept_any}, outside the contact {kept_far}"
    );
    assert!(d >= 0.99, "Dice {d}");
    assert_eq!(kept_far, 0);
    // Without the separation, the shell would be part of the body.
    let glued = body_mask(
        &v,
        &BodyOptions {
            separation_mm: 0.0,
            ..BodyOptions::default()
        },
        &|_| {},
    )
    .unwrap();
    let glued_far = glued
        .iter()
        .zip(&far_shell)
        .filter(|(m, c)| **m && **c)
        .count();
    assert!(glued_far > 100, "{glued_far}");
}

#[test]
fn nothing_above_the_threshold_gives_an_empty_mask() {
    let opts = SynthOptions {
        slices: 2,
        ..SynthOptions::default().with_rows(64)
    };
    let (mut v, _, _) = phantom_volume(&opts);
    v.data.fill(-1000.0);
    let mask = body_mask(&v, &BodyOptions::default(), &|_| {}).unwrap();
    assert!(mask.iter().all(|&b| !b));
}
