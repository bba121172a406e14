//! Masks to planar contours and back: marching squares on a binary plane,
//! Douglas–Peucker simplification of the closed loops, and an even-odd
//! rasteriser that samples polygons at pixel centres.
//!
//! Coordinates here are fractional pixel indices `[row, column]` of one
//! plane; the caller maps them to patient coordinates with the volume's
//! geometry, so any orientation (prone, feet-first, oblique) is handled
//! by that one mapping.
//!
//! The iso-line passes through the midpoints between a foreground and a
//! background pixel centre, so no pixel centre ever lies on a contour and
//! the even-odd interior of all loops of a plane (outer boundaries, holes,
//! islands in holes) is exactly the mask before simplification.

/// One closed loop of `[row, column]` points; the closing edge is implied.
pub type Loop = Vec<[f64; 2]>;

/// Traces every boundary of the foreground in an `h × w` window of a plane
/// (`fg(r, c)` for `r < h`, `c < w`; outside the window is background).
///
/// Where only diagonal pixels are foreground (a saddle) the foreground is
/// taken as connected, matching the 4-connected background of
/// [`super::morph::fill_holes_2d`].
pub fn trace(h: usize, w: usize, fg: impl Fn(usize, usize) -> bool) -> Vec<Loop> {
    // Corners are pixel centres of the window padded by one background
    // pixel on every side: corner (R, C) is pixel (R - 1, C - 1).
    let (ch, cw) = (h + 2, w + 2);
    let at = |r: usize, c: usize| r >= 1 && c >= 1 && r <= h && c <= w && fg(r - 1, c - 1);
    // Edge ids: 2·(R·cw + C) is the edge from corner (R, C) to (R, C + 1),
    // the same + 1 the edge from (R, C) to (R + 1, C).
    let hor = |r: usize, c: usize| 2 * (r * cw + c);
    let ver = |r: usize, c: usize| 2 * (r * cw + c) + 1;
    const NONE: u32 = u32::MAX;
    let mut next = vec![NONE; 2 * ch * cw];
    let mut starts = Vec::new();
    let mut row_above: Vec<bool> = (0..cw).map(|c| at(0, c)).collect();
    let mut row_below = vec![false; cw];
    for r in 0..ch - 1 {
        for (c, v) in row_below.iter_mut().enumerate() {
            *v = at(r + 1, c);
        }
        for c in 0..cw - 1 {
            // Corners clockwise on the image (rows down): tl, tr, br, bl.
            let k = [
                row_above[c],
                row_above[c + 1],
                row_below[c + 1],
                row_below[c],
            ];
            if k == [false; 4] || k == [true; 4] {
                continue;
            }
            // The edges between consecutive corners, in the same order.
            let e = [hor(r, c), ver(r, c + 1), hor(r + 1, c), ver(r, c)];
            // Each edge leaving the foreground (clockwise) is joined to the
            // next edge entering it. A neighbouring cell runs the shared
            // edge the other way, so every edge point gets exactly one
            // successor and one predecessor, and the pairing at a saddle
            // keeps the two foreground corners joined.
            for i in 0..4 {
                if k[i] && !k[(i + 1) % 4] {
                    let j = (1..4)
                        .map(|d| (i + d) % 4)
                        .find(|&j| !k[j] && k[(j + 1) % 4])
                        .unwrap_or(i);
                    next[e[i]] = e[j] as u32;
                    starts.push(e[i]);
                }
            }
        }
        std::mem::swap(&mut row_above, &mut row_below);
    }
    let point = |id: usize| -> [f64; 2] {
        let cell = id / 2;
        let (r, c) = ((cell / cw) as f64 - 1.0, (cell % cw) as f64 - 1.0);
        if id.is_multiple_of(2) {
            [r, c + 0.5]
        } else {
            [r + 0.5, c]
        }
    };
    let mut loops = Vec::new();
    for s in starts {
        if next[s] == NONE {
            continue;
        }
        let mut l = Vec::new();
        let mut id = s;
        while next[id] != NONE {
            l.push(point(id));
            let n = next[id] as usize;
            next[id] = NONE;
            id = n;
        }
        loops.push(l);
    }
    loops
}

/// Douglas–Peucker on a closed loop with distances in millimetres
/// (`spacing` = row, column spacing): every removed point lies within
/// `tolerance_mm` of the simplified loop. Loops that would fall below three
/// points are returned unchanged, so a one-pixel island stays a polygon.
pub fn simplify(l: &Loop, spacing: [f64; 2], tolerance_mm: f64) -> Loop {
    let n = l.len();
    if n <= 3 || tolerance_mm <= 0.0 {
        return l.clone();
    }
    let mm = |p: [f64; 2]| [p[0] * spacing[0], p[1] * spacing[1]];
    let pts: Vec<[f64; 2]> = l.iter().map(|&p| mm(p)).collect();
    // Split the loop at point 0 and the point farthest from it, so that
    // both chains have distinct end points.
    let far = (1..n)
        .max_by(|&a, &b| dist2(pts[0], pts[a]).total_cmp(&dist2(pts[0], pts[b])))
        .unwrap_or(n / 2);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[far] = true;
    let tol2 = tolerance_mm * tolerance_mm;
    let mut stack = vec![(0usize, far), (far, n)];
    while let Some((a, b)) = stack.pop() {
        if b - a < 2 {
            continue;
        }
        let (pa, pb) = (pts[a], pts[b % n]);
        let (mut worst, mut at) = (0.0, a);
        for (i, &p) in pts.iter().enumerate().take(b).skip(a + 1) {
            let d = segment_dist2(p, pa, pb);
            if d > worst {
                worst = d;
                at = i;
            }
        }
        if worst > tol2 {
            keep[at] = true;
            stack.push((a, at));
            stack.push((at, b));
        }
    }
    let out: Loop = l
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(p, _)| *p)
        .collect();
    if out.len() < 3 {
        l.clone()
    } else {
        out
    }
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
    dx * dx + dy * dy
}

fn segment_dist2(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (ux, uy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = ux * ux + uy * uy;
    if len2 == 0.0 {
        return dist2(p, a);
    }
    let t = (((p[0] - a[0]) * ux + (p[1] - a[1]) * uy) / len2).clamp(0.0, 1.0);
    dist2(p, [a[0] + t * ux, a[1] + t * uy])
}

/// Even-odd fill of `loops` at the pixel centres of a `rows × cols` plane
/// (row-major): a centre is inside when a ray from it crosses the loops an
/// odd number of times, which is how RT Structure Sets encode holes and
/// islands as separate closed contours.
pub fn rasterise(loops: &[Loop], rows: usize, cols: usize) -> Vec<bool> {
    // The lattice fills [x, y] polygons; a loop is [row, column].
    let polygons: Vec<Vec<[f64; 2]>> = loops
        .iter()
        .map(|l| l.iter().map(|&[r, c]| [c, r]).collect())
        .collect();
    let mut mask = Vec::new();
    crate::rt::raster::Lattice::pixel_centres(rows, cols).fill_polygons(
        &polygons,
        &mut mask,
        &mut Vec::new(),
    );
    mask
}

/// Dice similarity of two masks of equal length (1 when both are empty).
pub fn dice(a: &[bool], b: &[bool]) -> f64 {
    let (mut both, mut na, mut nb) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        na += usize::from(x);
        nb += usize::from(y);
        both += usize::from(x && y);
    }
    if na + nb == 0 {
        1.0
    } else {
        2.0 * both as f64 / (na + nb) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(rows: &[&str]) -> (usize, usize, Vec<bool>) {
        let h = rows.len();
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'#'))
            .collect();
        (h, w, m)
    }

    #[test]
    fn traced_loops_rasterise_back_exactly() {
        let (h, w, m) = plane(&[
            "..........",
            ".######...",
            ".#....#.#.",
            ".#.##.#...",
            ".#....#..#",
            ".######.#.",
            "#.........",
        ]);
        let loops = trace(h, w, |r, c| m[r * w + c]);
        // Ring outside (joined through a saddle to the corner pixel), ring
        // hole, island in the hole, a speck, and a diagonal pair (joined).
        assert_eq!(loops.len(), 5);
        assert_eq!(rasterise(&loops, h, w), m);
        // Full plane: one loop round the border.
        let loops = trace(3, 4, |_, _| true);
        assert_eq!(loops.len(), 1);
        assert_eq!(rasterise(&loops, 3, 4), vec![true; 12]);
        assert!(trace(3, 3, |_, _| false).is_empty());
    }

    #[test]
    fn saddles_keep_diagonal_foreground_joined() {
        let (h, w, m) = plane(&["#.", ".#"]);
        let loops = trace(h, w, |r, c| m[r * w + c]);
        assert_eq!(loops.len(), 1);
        assert_eq!(rasterise(&loops, h, w), m);
    }

    #[test]
    fn simplification_stays_within_tolerance() {
        // A disc of radius 40 pixels at 0.8 mm.
        let n = 101;
        let fg = |r: usize, c: usize| {
            let (y, x) = (r as f64 - 50.0, c as f64 - 50.0);
            x * x + y * y <= 40.0 * 40.0
        };
        let loops = trace(n, n, fg);
        assert_eq!(loops.len(), 1);
        let sp = [0.8, 0.8];
        let s = simplify(&loops[0], sp, 0.5);
        assert!(
            s.len() * 4 < loops[0].len(),
            "{} of {}",
            s.len(),
            loops[0].len()
        );
        for p in &loops[0] {
            let d = (0..s.len())
                .map(|i| {
                    let a = s[i];
                    let b = s[(i + 1) % s.len()];
                    let mm = |q: [f64; 2]| [q[0] * sp[0], q[1] * sp[1]];
                    segment_dist2(mm(*p), mm(a), mm(b))
                })
                .fold(f64::MAX, f64::min);
            assert!(d.sqrt() <= 0.5 + 1e-9);
        }
        let back = rasterise(&[s], n, n);
        let want: Vec<bool> = (0..n * n).map(|i| fg(i / n, i % n)).collect();
        assert!(dice(&back, &want) > 0.99);
        // A one-pixel island keeps its four points.
        let one = trace(1, 1, |_, _| true);
        assert_eq!(simplify(&one[0], [1.0, 1.0], 5.0).len(), 4);
    }
}
