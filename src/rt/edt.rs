//! Exact Euclidean distance transforms (Felzenszwalb & Huttenlocher,
//! "Distance transforms of sampled functions", 2012): squared distances in
//! one pass per axis, linear time, with a spacing per axis so that
//! anisotropic voxels and per-axis margins come out exact.

/// "Infinitely far": larger than any squared distance on a real grid, small
/// enough that sums of two stay finite in f32.
pub const FAR: f32 = 1.0e18;

/// In place: `f[q]` holds 0 at features and [`FAR`] elsewhere (or squared
/// distances from a previous axis); afterwards `f[p] = min_q f[q] + ((p - q) h)²`.
/// `v` and `z` are scratch buffers (resized here) so that callers reuse them.
pub fn transform_1d(
    f: &mut [f32],
    h: f32,
    v: &mut Vec<usize>,
    z: &mut Vec<f64>,
    out: &mut Vec<f32>,
) {
    let n = f.len();
    if n == 0 {
        return;
    }
    v.clear();
    v.resize(n, 0);
    z.clear();
    z.resize(n + 1, 0.0);
    out.clear();
    out.resize(n, 0.0);
    // f64 inside: with thousands of cells, q² h² swamps f32 precision.
    let h2 = f64::from(h) * f64::from(h);
    // Lower envelope of parabolas y = f(q) + h²(p - q)², in index units.
    let mut k = 0usize;
    let mut first = None;
    for (q, &fq) in f.iter().enumerate() {
        if fq >= FAR {
            continue;
        }
        match first {
            None => {
                first = Some(q);
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
            }
            Some(_) => loop {
                let p = v[k];
                let (qf, pf) = (q as f64, p as f64);
                let s = ((f64::from(fq) + h2 * qf * qf) - (f64::from(f[p]) + h2 * pf * pf))
                    / (2.0 * h2 * (qf - pf));
                // z[0] is -inf, so k never drops below 0.
                if s <= z[k] {
                    k -= 1;
                    continue;
                }
                k += 1;
                v[k] = q;
                z[k] = s;
                z[k + 1] = f64::INFINITY;
                break;
            },
        }
    }
    if first.is_none() {
        return; // no finite value: everything stays FAR
    }
    k = 0;
    for (p, o) in out.iter_mut().enumerate() {
        while z[k + 1] < p as f64 {
            k += 1;
        }
        let q = v[k];
        let d = p as f64 - q as f64;
        *o = (f64::from(f[q]) + h2 * d * d) as f32;
    }
    f.copy_from_slice(out);
}

/// Squared distance from every cell of an `nx × ny` row-major grid to the
/// nearest feature cell (`feature[i] == true`), with spacings hx, hy.
pub fn squared_2d(feature: &[bool], nx: usize, ny: usize, hx: f32, hy: f32) -> Vec<f32> {
    let mut d: Vec<f32> = feature.iter().map(|&f| if f { 0.0 } else { FAR }).collect();
    let (mut v, mut z, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for row in d.chunks_mut(nx) {
        transform_1d(row, hx, &mut v, &mut z, &mut out);
    }
    let mut col = vec![0.0f32; ny];
    for i in 0..nx {
        for j in 0..ny {
            col[j] = d[j * nx + i];
        }
        transform_1d(&mut col, hy, &mut v, &mut z, &mut out);
        for j in 0..ny {
            d[j * nx + i] = col[j];
        }
    }
    d
}

/// Squared distance in a `[nz][ny][nx]` grid to the nearest feature, along
/// the axes whose spacing is given (an axis with `None` does not propagate:
/// distances are then measured within planes/lines of that axis only,
/// which is what a zero margin along it means).
pub fn squared_3d(feature: &[bool], dims: [usize; 3], spacing: [Option<f32>; 3]) -> Vec<f32> {
    use rayon::prelude::*;
    let [nx, ny, nz] = dims;
    let mut d: Vec<f32> = feature.iter().map(|&f| if f { 0.0 } else { FAR }).collect();
    let plane = nx * ny;
    if let Some(hx) = spacing[0] {
        d.par_chunks_mut(nx).for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(v, z, out), row| transform_1d(row, hx, v, z, out),
        );
    }
    if let Some(hy) = spacing[1] {
        d.par_chunks_mut(plane).for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), vec![0.0f32; ny]),
            |(v, z, out, col), p| {
                for i in 0..nx {
                    for j in 0..ny {
                        col[j] = p[j * nx + i];
                    }
                    transform_1d(col, hy, v, z, out);
                    for j in 0..ny {
                        p[j * nx + i] = col[j];
                    }
                }
            },
        );
    }
    if let Some(hz) = spacing[2] {
        // Columns along z are strided by a whole plane; work on blocks of
        // rows so each thread writes a disjoint set of (j, i).
        let results: Vec<(usize, Vec<f32>)> = (0..ny)
            .into_par_iter()
            .map_init(
                || (Vec::new(), Vec::new(), Vec::new(), vec![0.0f32; nz]),
                |(v, z, out, col), j| {
                    let mut block = vec![0.0f32; nx * nz];
                    for i in 0..nx {
                        for k in 0..nz {
                            col[k] = d[k * plane + j * nx + i];
                        }
                        transform_1d(col, hz, v, z, out);
                        for k in 0..nz {
                            block[k * nx + i] = col[k];
                        }
                    }
                    (j, block)
                },
            )
            .collect();
        for (j, block) in results {
            for k in 0..nz {
                d[k * plane + j * nx..k * plane + j * nx + nx]
                    .copy_from_slice(&block[k * nx..k * nx + nx]);
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_2d(feature: &[bool], nx: usize, ny: usize, hx: f32, hy: f32) -> Vec<f32> {
        (0..nx * ny)
            .map(|p| {
                let (pi, pj) = (p % nx, p / nx);
                feature
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| **f)
                    .map(|(q, _)| {
                        let dx = (pi as f32 - (q % nx) as f32) * hx;
                        let dy = (pj as f32 - (q / nx) as f32) * hy;
                        dx * dx + dy * dy
                    })
                    .fold(FAR, f32::min)
            })
            .collect()
    }

    #[test]
    fn matches_brute_force() {
        let (nx, ny) = (23, 17);
        let mut seed = 12345u64;
        let feature: Vec<bool> = (0..nx * ny)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33).is_multiple_of(13)
            })
            .collect();
        let fast = squared_2d(&feature, nx, ny, 0.7, 1.3);
        let slow = brute_2d(&feature, nx, ny, 0.7, 1.3);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-3 * b.max(1.0), "{a} vs {b}");
        }
        let three = squared_3d(&feature, [nx, ny, 1], [Some(0.7), Some(1.3), Some(2.0)]);
        assert_eq!(three, fast);
    }

    #[test]
    fn no_feature_stays_far() {
        let d = squared_2d(&[false; 12], 4, 3, 1.0, 1.0);
        assert!(d.iter().all(|v| *v >= FAR));
    }

    #[test]
    fn axis_without_spacing_does_not_propagate() {
        // One feature in plane 0: plane 1 stays far when z does not propagate.
        let mut f = vec![false; 2 * 3 * 3];
        f[4] = true;
        let d = squared_3d(&f, [3, 3, 2], [Some(1.0), Some(1.0), None]);
        assert_eq!(d[0], 2.0);
        assert!(d[9..].iter().all(|v| *v >= FAR));
        let d = squared_3d(&f, [3, 3, 2], [Some(1.0), Some(1.0), Some(2.0)]);
        assert_eq!(d[9 + 4], 4.0);
    }
}
