//! Binary morphology for the built-in body contour: exact in-plane distance
//! transforms (so erosion and dilation are by true discs in millimetres on
//! anisotropic pixels, not by a pixel-count square), the largest 3-D
//! connected component, and per-slice hole filling.
//!
//! Masks are `[slice, row, column]` in standard layout, handled as flat
//! slices so that per-slice work can be split across threads.

/// Farther than any real squared distance, finite so sums stay ordered.
const FAR: f64 = 1.0e30;

/// Reusable buffers for [`distance_sq_2d`], one set per thread.
#[derive(Default)]
pub struct EdtScratch {
    f: Vec<f64>,
    d: Vec<f64>,
    v: Vec<usize>,
    z: Vec<f64>,
}

/// Lower envelope of the parabolas `f[q] + h²(p − q)²` (Felzenszwalb and
/// Huttenlocher's one-dimensional squared distance transform), evaluated at
/// every p of `f`, written to `d`.
fn transform_1d(f: &[f64], h2: f64, d: &mut [f64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    let n = f.len();
    let Some(first) = f.iter().position(|&x| x < FAR) else {
        d.fill(FAR);
        return;
    };
    v.clear();
    v.resize(n, 0);
    z.clear();
    z.resize(n + 1, 0.0);
    let mut k = 0;
    v[0] = first;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in first + 1..n {
        if f[q] >= FAR {
            continue;
        }
        let qf = q as f64;
        loop {
            let p = v[k];
            let pf = p as f64;
            let s = ((f[q] + h2 * qf * qf) - (f[p] + h2 * pf * pf)) / (2.0 * h2 * (qf - pf));
            // z[0] is -inf and s is finite, so this never underflows k.
            if s <= z[k] {
                k -= 1;
                continue;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
            break;
        }
    }
    k = 0;
    for (p, out) in d.iter_mut().enumerate() {
        let pf = p as f64;
        while z[k + 1] < pf {
            k += 1;
        }
        let dq = pf - v[k] as f64;
        *out = h2 * dq * dq + f[v[k]];
    }
}

/// Squared distance (mm²) from every pixel of a `rows × cols` plane to the
/// nearest pixel where `feature` holds; `FAR`-sized where the plane has
/// none. `spacing` is (row spacing, column spacing) in mm.
pub fn distance_sq_2d(
    feature: &[bool],
    rows: usize,
    cols: usize,
    spacing: [f64; 2],
    out: &mut Vec<f64>,
    s: &mut EdtScratch,
) {
    out.clear();
    out.extend(feature.iter().map(|&b| if b { 0.0 } else { FAR }));
    let (hr2, hc2) = (spacing[0] * spacing[0], spacing[1] * spacing[1]);
    s.d.resize(cols.max(rows), 0.0);
    for r in 0..rows {
        let line = &mut out[r * cols..(r + 1) * cols];
        transform_1d(line, hc2, &mut s.d[..cols], &mut s.v, &mut s.z);
        line.copy_from_slice(&s.d[..cols]);
    }
    s.f.resize(rows, 0.0);
    for c in 0..cols {
        for r in 0..rows {
            s.f[r] = out[r * cols + c];
        }
        transform_1d(&s.f[..rows], hr2, &mut s.d[..rows], &mut s.v, &mut s.z);
        for r in 0..rows {
            // Saturate so that FAR + FAR from two axes stays "far".
            out[r * cols + c] = s.d[r].min(FAR);
        }
    }
}

/// Keeps the largest 6-connected component of a 3-D mask (`dims` =
/// slices, rows, columns); returns its size in voxels (0 for an empty
/// mask, which is left empty).
pub fn keep_largest_component(mask: &mut [bool], dims: [usize; 3]) -> usize {
    let [n, rows, cols] = dims;
    let plane = rows * cols;
    debug_assert_eq!(mask.len(), n * plane);
    // 0 background, 1 foreground not yet visited, 2 visited, 3 kept.
    let mut state: Vec<u8> = mask.iter().map(|&b| u8::from(b)).collect();
    let mut stack: Vec<usize> = Vec::new();
    let flood = |state: &mut Vec<u8>, stack: &mut Vec<usize>, seed: usize, from: u8, to: u8| {
        let mut size = 0usize;
        stack.clear();
        stack.push(seed);
        state[seed] = to;
        while let Some(i) = stack.pop() {
            size += 1;
            let k = i / plane;
            let rem = i % plane;
            let (r, c) = (rem / cols, rem % cols);
            let mut visit = |j: usize| {
                if state[j] == from {
                    state[j] = to;
                    stack.push(j);
                }
            };
            if c > 0 {
                visit(i - 1);
            }
            if c + 1 < cols {
                visit(i + 1);
            }
            if r > 0 {
                visit(i - cols);
            }
            if r + 1 < rows {
                visit(i + cols);
            }
            if k > 0 {
                visit(i - plane);
            }
            if k + 1 < n {
                visit(i + plane);
            }
        }
        size
    };
    let mut best = (0usize, 0usize);
    for seed in 0..state.len() {
        if state[seed] == 1 {
            let size = flood(&mut state, &mut stack, seed, 1, 2);
            if size > best.0 {
                best = (size, seed);
            }
        }
    }
    if best.0 > 0 {
        flood(&mut state, &mut stack, best.1, 2, 3);
    }
    for (m, s) in mask.iter_mut().zip(&state) {
        *m = *s == 3;
    }
    best.0
}

/// Fills the holes of one plane: background not 4-connected to the plane's
/// border becomes foreground. Background is taken 4-connected so that it
/// pairs with the 8-connected foreground the contour tracer draws.
pub fn fill_holes_2d(mask: &mut [bool], rows: usize, cols: usize, stack: &mut Vec<usize>) {
    // 0 foreground, 1 background unreached, 2 background reached from the border.
    let mut state: Vec<u8> = mask.iter().map(|&b| if b { 0 } else { 1 }).collect();
    stack.clear();
    for r in 0..rows {
        for c in 0..cols {
            if r == 0 || c == 0 || r + 1 == rows || c + 1 == cols {
                let i = r * cols + c;
                if state[i] == 1 {
                    state[i] = 2;
                    stack.push(i);
                }
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (r, c) = (i / cols, i % cols);
        let mut visit = |j: usize| {
            if state[j] == 1 {
                state[j] = 2;
                stack.push(j);
            }
        };
        if c > 0 {
            visit(i - 1);
        }
        if c + 1 < cols {
            visit(i + 1);
        }
        if r > 0 {
            visit(i - cols);
        }
        if r + 1 < rows {
            visit(i + cols);
        }
    }
    for (m, s) in mask.iter_mut().zip(&state) {
        *m = *s != 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(feature: &[bool], rows: usize, cols: usize, sp: [f64; 2]) -> Vec<f64> {
        let mut out = vec![FAR; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                for rr in 0..rows {
                    for cc in 0..cols {
                        if feature[rr * cols + cc] {
                            let dy = (r as f64 - rr as f64) * sp[0];
                            let dx = (c as f64 - cc as f64) * sp[1];
                            out[r * cols + c] = out[r * cols + c].min(dx * dx + dy * dy);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn distance_transform_matches_brute_force_on_anisotropic_pixels() {
        let (rows, cols) = (13, 17);
        let mut seed = 7u64;
        let feature: Vec<bool> = (0..rows * cols)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33).is_multiple_of(11)
            })
            .collect();
        let sp = [0.7, 1.3];
        let mut out = Vec::new();
        distance_sq_2d(
            &feature,
            rows,
            cols,
            sp,
            &mut out,
            &mut EdtScratch::default(),
        );
        let want = brute_force(&feature, rows, cols, sp);
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        // No feature at all: everything stays far.
        distance_sq_2d(&[false; 6], 2, 3, sp, &mut out, &mut EdtScratch::default());
        assert!(out.iter().all(|&d| d >= FAR));
    }

    #[test]
    fn largest_component_and_holes() {
        // Two blobs in 3-D, the larger spanning two slices.
        let dims = [2, 4, 6];
        let mut m = vec![false; 48];
        for i in [0, 1, 6, 7, 24, 25] {
            m[i] = true; // 6 voxels
        }
        for i in [4, 5] {
            m[i] = true; // 2 voxels
        }
        assert_eq!(keep_largest_component(&mut m, dims), 6);
        assert!(!m[4] && !m[5] && m[24]);

        // A ring with a hole, and a diagonal-only gap that is still a hole.
        let (rows, cols) = (5, 5);
        let mut p = vec![false; 25];
        for r in 1..4 {
            for c in 1..4 {
                p[r * cols + c] = !(r == 2 && c == 2);
            }
        }
        fill_holes_2d(&mut p, rows, cols, &mut Vec::new());
        assert!(p[12]);
        assert_eq!(p.iter().filter(|&&b| b).count(), 9);
    }
}
