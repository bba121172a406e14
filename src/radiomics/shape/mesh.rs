//! The marching-cubes surface of a mask as pyradiomics builds it: vertices
//! at edge midpoints, its complemented cubes and its case table (generated
//! here, see the parent module's docs), giving the surface area, the mesh
//! volume (signed tetrahedra from pyradiomics' origin) and the vertices the
//! diameters are measured between.

use std::sync::OnceLock;

use ndarray::Array3;
use rayon::prelude::*;

/// pyradiomics hands the shape class the mask cropped to its bounding box
/// without `padDistance` (`cropToTumorMask(image, mask, boundingBox)` in the
/// feature extractor's shape step) and the class pads it by one voxel; the
/// mesh volume is summed from that array's first voxel, which matters because
/// of the gaps described in the module docs. Positions are therefore taken
/// relative to `bbox_lo - 1` voxels.
const PYRADIOMICS_ORIGIN_VOXELS: f64 = 1.0;

/// A point in half-voxel units within one cube: each coordinate 0, 1 or 2.
type Half = [u8; 3];

/// Triangles (in half-voxel units) of each cube configuration; bit
/// `4*dz + 2*dy + dx` of the index is the corner `(dz, dy, dx)`.
pub(super) fn case_table() -> &'static [Vec<[Half; 3]>] {
    static TABLE: OnceLock<Vec<Vec<[Half; 3]>>> = OnceLock::new();
    TABLE.get_or_init(|| (0..256u32).map(|c| triangles_of_case(c as u8)).collect())
}

fn corner(k: usize) -> [i32; 3] {
    [(k >> 2 & 1) as i32, (k >> 1 & 1) as i32, (k & 1) as i32]
}

pub(super) fn sub3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot3(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(super) fn norm3(a: [f64; 3]) -> f64 {
    dot3(a, a).sqrt()
}

fn halff(h: Half) -> [f64; 3] {
    [h[0] as f64 * 0.5, h[1] as f64 * 0.5, h[2] as f64 * 0.5]
}

/// Midpoint of the edge between corners `a` and `b`, half-voxel units.
fn midpoint(a: usize, b: usize) -> Half {
    let (p, q) = (corner(a), corner(b));
    [
        (p[0] + q[0]) as u8,
        (p[1] + q[1]) as u8,
        (p[2] + q[2]) as u8,
    ]
}

fn triangles_of_case(case: u8) -> Vec<[Half; 3]> {
    let set = |k: usize| case >> k & 1 == 1;
    // Segments of the surface's intersection with each face, between edge
    // midpoints. Diagonal faces cut off each set corner on its own.
    let mut segments: Vec<(Half, Half)> = Vec::new();
    for axis in 0..3 {
        for value in 0..2 {
            let (u, w) = match axis {
                0 => (1, 2),
                1 => (0, 2),
                _ => (0, 1),
            };
            // the face's corners in cyclic order
            let ring: Vec<usize> = [(0, 0), (0, 1), (1, 1), (1, 0)]
                .iter()
                .map(|&(a, b)| {
                    let mut c = [0usize; 3];
                    c[axis] = value;
                    c[u] = a;
                    c[w] = b;
                    c[0] * 4 + c[1] * 2 + c[2]
                })
                .collect();
            let cuts: Vec<usize> = (0..4)
                .filter(|&i| set(ring[i]) != set(ring[(i + 1) % 4]))
                .collect();
            match cuts.len() {
                2 => {
                    let e = |i: usize| midpoint(ring[i], ring[(i + 1) % 4]);
                    segments.push((e(cuts[0]), e(cuts[1])));
                }
                4 => {
                    for i in 0..4 {
                        if set(ring[i]) {
                            let prev = (i + 3) % 4;
                            segments.push((
                                midpoint(ring[prev], ring[i]),
                                midpoint(ring[i], ring[(i + 1) % 4]),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Chain segments into closed loops: every midpoint lies on two faces.
    let mut used = vec![false; segments.len()];
    let mut out = Vec::new();
    for start in 0..segments.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut lp = vec![segments[start].0];
        let mut cur = segments[start].1;
        while cur != lp[0] {
            lp.push(cur);
            let Some(next) = (0..segments.len())
                .find(|&j| !used[j] && (segments[j].0 == cur || segments[j].1 == cur))
            else {
                break;
            };
            used[next] = true;
            cur = if segments[next].0 == cur {
                segments[next].1
            } else {
                segments[next].0
            };
        }
        orient_outward(&mut lp, case);
        out.extend(triangulate(&lp));
    }
    out
}

/// Orders the loop so that its normal points from the set corners to the
/// unset ones (outwards when the set corners are the ROI).
fn orient_outward(lp: &mut [Half], case: u8) {
    let n = lp.len();
    let mut normal = [0.0; 3];
    for i in 0..n {
        let c = cross3(halff(lp[i]), halff(lp[(i + 1) % n]));
        normal = [normal[0] + c[0], normal[1] + c[1], normal[2] + c[2]];
    }
    let mut outward = [0.0; 3];
    for p in lp.iter() {
        // the edge's two corners: the midpoint coordinate 1 is the varying axis
        let axis = (0..3).find(|&a| p[a] == 1).unwrap_or(0);
        let mut lo = [p[0] / 2, p[1] / 2, p[2] / 2];
        lo[axis] = 0;
        let k = |c: [u8; 3]| (c[0] * 4 + c[1] * 2 + c[2]) as usize;
        let sign = if case >> k(lo) & 1 == 1 { 1.0 } else { -1.0 };
        outward[axis] += sign;
    }
    if dot3(normal, outward) < 0.0 {
        lp.reverse();
    }
}

/// All triangulations of a convex-indexed polygon (vertex indices).
fn triangulations(idx: &[usize]) -> Vec<Vec<[usize; 3]>> {
    let n = idx.len();
    if n < 3 {
        return vec![Vec::new()];
    }
    let mut res = Vec::new();
    for k in 1..n - 1 {
        for left in triangulations(&idx[..=k]) {
            for right in triangulations(&idx[k..]) {
                let mut t = left.clone();
                t.extend(right.iter().copied());
                t.push([idx[0], idx[k], idx[n - 1]]);
                res.push(t);
            }
        }
    }
    res
}

fn triangulate(lp: &[Half]) -> Vec<[Half; 3]> {
    let n = lp.len();
    let all = triangulations(&(0..n).collect::<Vec<_>>());
    let pts: Vec<[f64; 3]> = lp.iter().map(|h| halff(*h)).collect();
    let area = |t: &[[usize; 3]]| -> f64 {
        t.iter()
            .map(|x| {
                0.5 * norm3(cross3(
                    sub3(pts[x[1]], pts[x[0]]),
                    sub3(pts[x[2]], pts[x[0]]),
                ))
            })
            .sum()
    };
    let swept = |t: &[[usize; 3]]| -> f64 {
        let c = [0.5; 3];
        t.iter()
            .map(|x| {
                dot3(
                    cross3(sub3(pts[x[0]], c), sub3(pts[x[1]], c)),
                    sub3(pts[x[2]], c),
                )
            })
            .sum::<f64>()
            .abs()
    };
    let chosen = if n == 7 {
        // the fan from the vertex whose diagonals all join skew edges
        // (length sqrt(3/2) voxels)
        all.iter().find(|t| {
            (0..n).any(|v| {
                t.iter().all(|x| x.contains(&v))
                    && (0..n).all(|o| {
                        let adj = o == v || (o + 1) % n == v || (v + 1) % n == o;
                        adj || (norm3(sub3(pts[o], pts[v])).powi(2) - 1.5).abs() < 1e-9
                    })
            })
        })
    } else {
        all.iter().max_by(|a, b| {
            let (aa, ab) = (area(a), area(b));
            if (aa - ab).abs() > 1e-9 {
                aa.total_cmp(&ab)
            } else {
                swept(b).total_cmp(&swept(a))
            }
        })
    };
    chosen
        .map(|t| t.iter().map(|x| [lp[x[0]], lp[x[1]], lp[x[2]]]).collect())
        .unwrap_or_default()
}

/// Surface area, mesh volume and the half-voxel coordinates (relative to the
/// bounding box's first voxel) of all mesh vertices.
pub(super) struct Mesh {
    pub(super) area: f64,
    pub(super) volume: f64,
    pub(super) vertices: Vec<[i64; 3]>,
}

pub(super) fn mesh(
    mask: &Array3<bool>,
    lo: [usize; 3],
    hi: [usize; 3],
    spacing: [f64; 3],
    table: &[Vec<[Half; 3]>],
) -> Mesh {
    let dims = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
    let inside = |z: isize, y: isize, x: isize| -> bool {
        if z < 0
            || y < 0
            || x < 0
            || z >= dims[0] as isize
            || y >= dims[1] as isize
            || x >= dims[2] as isize
        {
            return false;
        }
        mask[[lo[0] + z as usize, lo[1] + y as usize, lo[2] + x as usize]]
    };
    // cube (cz, cy, cx) has its first corner at voxel (cz-1, cy-1, cx-1)
    let (area, volume) = (0..=dims[0] as isize)
        .into_par_iter()
        .map(|cz| {
            let mut area = 0.0;
            let mut vol = 0.0;
            for cy in 0..=dims[1] as isize {
                for cx in 0..=dims[2] as isize {
                    let mut idx = 0u8;
                    for k in 0..8 {
                        let c = corner(k);
                        if inside(
                            cz - 1 + c[0] as isize,
                            cy - 1 + c[1] as isize,
                            cx - 1 + c[2] as isize,
                        ) {
                            idx |= 1 << k;
                        }
                    }
                    // pyradiomics' complement rule (see the module docs)
                    let sign = if idx & 0x40 != 0 {
                        idx ^= 0xff;
                        -1.0
                    } else {
                        1.0
                    };
                    if idx == 0 {
                        continue;
                    }
                    let base = [cz as f64, cy as f64, cx as f64];
                    let pos = |h: Half| -> [f64; 3] {
                        let mut p = [0.0; 3];
                        for a in 0..3 {
                            p[a] = (base[a] - 1.0 + PYRADIOMICS_ORIGIN_VOXELS + h[a] as f64 * 0.5)
                                * spacing[a];
                        }
                        p
                    };
                    for t in &table[idx as usize] {
                        let (a, b, c) = (pos(t[0]), pos(t[1]), pos(t[2]));
                        vol += sign * dot3(cross3(a, b), c);
                        area += 0.5 * norm3(cross3(sub3(a, c), sub3(b, c)));
                    }
                }
            }
            (area, vol)
        })
        .collect::<Vec<_>>()
        .into_iter()
        // summed plane by plane in order: the same sums whatever the
        // number of threads (a lone ROI's worker has several)
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    // every edge between an ROI voxel and a background voxel carries a vertex
    let vertices: Vec<[i64; 3]> = (0..dims[0] as isize)
        .into_par_iter()
        .flat_map_iter(|z| {
            let mut v = Vec::new();
            for y in 0..dims[1] as isize {
                for x in 0..dims[2] as isize {
                    if !inside(z, y, x) {
                        continue;
                    }
                    for (dz, dy, dx) in [
                        (-1, 0, 0),
                        (1, 0, 0),
                        (0, -1, 0),
                        (0, 1, 0),
                        (0, 0, -1),
                        (0, 0, 1),
                    ] {
                        if !inside(z + dz, y + dy, x + dx) {
                            v.push([
                                (2 * z + dz) as i64,
                                (2 * y + dy) as i64,
                                (2 * x + dx) as i64,
                            ]);
                        }
                    }
                }
            }
            v
        })
        .collect();
    Mesh {
        area,
        volume: volume / 6.0,
        vertices,
    }
}
