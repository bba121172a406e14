//! Shape features (pyradiomics' `shape` class and the IBSI "Morphological
//! features" family).
//!
//! The surface is a marching-cubes mesh of the mask with every vertex at the
//! midpoint of an edge between an ROI voxel centre and a background voxel
//! centre. pyradiomics' mesh has two peculiarities that change its volume and
//! area, and that this module reproduces on purpose:
//! - a cube whose corner `(+1, +1, 0)` lies in the ROI is handled as its
//!   complement (same triangles, opposite sign), so on a face with diagonal
//!   corners the "set" corners of the (possibly complemented) cube are the ones
//!   cut off; neighbouring cubes can then disagree and leave small gaps, which
//!   makes the volume (summed as signed tetrahedra from a fixed origin) depend
//!   on that origin (see `PYRADIOMICS_ORIGIN_VOXELS`);
//! - the triangulation of each non-planar polygon is the one of the classic
//!   Lorensen–Cline case table. Here the table is generated, not written out:
//!   polygons with up to six vertices take the triangulation of largest area
//!   (ties: smallest volume swept about the cube centre), the one heptagon
//!   shape takes the fan whose diagonals all join skew cube edges. Both rules
//!   reproduce the classic table's area and volume case by case.
use std::sync::OnceLock;

use ndarray::Array3;
use rayon::prelude::*;

use super::image::{bounding_box, Feature, Roi};

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
fn case_table() -> &'static [Vec<[Half; 3]>] {
    static TABLE: OnceLock<Vec<Vec<[Half; 3]>>> = OnceLock::new();
    TABLE.get_or_init(|| (0..256u32).map(|c| triangles_of_case(c as u8)).collect())
}

fn corner(k: usize) -> [i32; 3] {
    [(k >> 2 & 1) as i32, (k >> 1 & 1) as i32, (k & 1) as i32]
}

fn sub3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
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

fn norm3(a: [f64; 3]) -> f64 {
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
struct Mesh {
    area: f64,
    volume: f64,
    vertices: Vec<[i64; 3]>,
}

fn mesh(
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

/// Vertices of the 2-D convex hull (monotone chain, collinear points dropped).
fn hull_2d(mut pts: Vec<[i64; 2]>) -> Vec<[i64; 2]> {
    pts.sort_unstable();
    pts.dedup();
    if pts.len() <= 2 {
        return pts;
    }
    let turn = |o: [i64; 2], a: [i64; 2], b: [i64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut h: Vec<[i64; 2]> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = h.len();
        let iter: Box<dyn Iterator<Item = &[i64; 2]>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while h.len() >= start + 2 && turn(h[h.len() - 2], h[h.len() - 1], p) <= 0 {
                h.pop();
            }
            h.push(p);
        }
        h.pop();
    }
    h
}

fn dist2(a: [i64; 3], b: [i64; 3], spacing: [f64; 3]) -> f64 {
    (0..3)
        .map(|k| ((a[k] - b[k]) as f64 * 0.5 * spacing[k]).powi(2))
        .sum()
}

/// pyradiomics' four diameters `[slice (equal z), column (equal y), row
/// (equal x), 3D]` over the mesh vertices. The largest distance is always
/// between vertices of the convex hull, and a vertex of the 3-D hull is a
/// vertex of the 2-D hull of its own plane, so only such vertices are paired.
fn diameters(vertices: &[[i64; 3]], spacing: [f64; 3]) -> [f64; 4] {
    let mut out = [0.0f64; 4];
    let mut on_hull = vec![[false; 3]; vertices.len()];
    for axis in 0..3 {
        let (u, w) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        let mut order: Vec<usize> = (0..vertices.len()).collect();
        order.sort_unstable_by_key(|&i| vertices[i][axis]);
        let groups: Vec<&[usize]> = order
            .chunk_by(|a, b| vertices[*a][axis] == vertices[*b][axis])
            .collect();
        let results: Vec<(f64, Vec<[i64; 3]>)> = groups
            .par_iter()
            .map(|g| {
                let plane = vertices[g[0]][axis];
                let hull = hull_2d(
                    g.iter()
                        .map(|&i| [vertices[i][u], vertices[i][w]])
                        .collect(),
                );
                let pts: Vec<[i64; 3]> = hull
                    .iter()
                    .map(|p| {
                        let mut v = [0i64; 3];
                        v[axis] = plane;
                        v[u] = p[0];
                        v[w] = p[1];
                        v
                    })
                    .collect();
                let mut best = 0.0f64;
                for i in 0..pts.len() {
                    for j in i + 1..pts.len() {
                        best = best.max(dist2(pts[i], pts[j], spacing));
                    }
                }
                (best, pts)
            })
            .collect();
        let mut hull_set = std::collections::HashSet::new();
        for (best, pts) in results {
            out[axis] = out[axis].max(best);
            hull_set.extend(pts);
        }
        for (i, v) in vertices.iter().enumerate() {
            on_hull[i][axis] = hull_set.contains(v);
        }
    }
    let cand: Vec<[i64; 3]> = vertices
        .iter()
        .zip(&on_hull)
        .filter(|(_, h)| h[0] && h[1] && h[2])
        .map(|(v, _)| *v)
        .collect();
    out[3] = (0..cand.len())
        .into_par_iter()
        .map(|i| {
            cand[i + 1..]
                .iter()
                .fold(0.0f64, |m, b| m.max(dist2(cand[i], *b, spacing)))
        })
        .reduce(|| 0.0, f64::max);
    out.map(f64::sqrt)
}

/// Eigenvalues (ascending) of a symmetric 3×3 matrix by Jacobi rotations.
fn eigenvalues_sym3(mut a: [[f64; 3]; 3]) -> [f64; 3] {
    for _ in 0..100 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        let scale = (0..3).map(|i| a[i][i].powi(2)).sum::<f64>();
        if off <= 1e-30 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            let mut r = a;
            for k in 0..3 {
                r[k][p] = c * a[k][p] - s * a[k][q];
                r[k][q] = s * a[k][p] + c * a[k][q];
            }
            let mut r2 = r;
            for k in 0..3 {
                r2[p][k] = c * r[p][k] - s * r[q][k];
                r2[q][k] = s * r[p][k] + c * r[q][k];
            }
            a = r2;
        }
    }
    let mut e = [a[0][0], a[1][1], a[2][2]];
    e.sort_by(f64::total_cmp);
    e
}

/// Eigenvalues (ascending) of the covariance (divided by N) of the physical
/// voxel-centre coordinates, with pyradiomics' rounding of tiny negatives.
fn principal_moments(mask: &Array3<bool>, spacing: [f64; 3]) -> [f64; 3] {
    let pts: Vec<[f64; 3]> = mask
        .indexed_iter()
        .filter(|(_, m)| **m)
        .map(|((z, y, x), _)| {
            [
                z as f64 * spacing[0],
                y as f64 * spacing[1],
                x as f64 * spacing[2],
            ]
        })
        .collect();
    let n = pts.len() as f64;
    let mut mean = [0.0; 3];
    for p in &pts {
        for k in 0..3 {
            mean[k] += p[k] / n;
        }
    }
    let mut cov = [[0.0; 3]; 3];
    for p in &pts {
        let d = sub3(*p, mean);
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] += d[i] * d[j] / n;
            }
        }
    }
    let mut e = eigenvalues_sym3(cov);
    for v in e.iter_mut() {
        if *v < 0.0 && *v > -1e-10 {
            *v = 0.0;
        }
    }
    e
}

fn axis_length(l: f64) -> f64 {
    if l < 0.0 {
        f64::NAN
    } else {
        4.0 * l.sqrt()
    }
}

fn ratio(small: f64, large: f64) -> f64 {
    if small < 0.0 || large < 0.0 {
        f64::NAN
    } else {
        (small / large).sqrt()
    }
}

pub const NAMES: [&str; 17] = [
    "MeshVolume",
    "VoxelVolume",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "Sphericity",
    "Compactness1",
    "Compactness2",
    "SphericalDisproportion",
    "Maximum3DDiameter",
    "Maximum2DDiameterSlice",
    "Maximum2DDiameterColumn",
    "Maximum2DDiameterRow",
    "MajorAxisLength",
    "MinorAxisLength",
    "LeastAxisLength",
    "Elongation",
    "Flatness",
];

/// Everything the pyradiomics and IBSI features are made of.
struct Measures {
    volume: f64,
    voxel_volume: f64,
    area: f64,
    diam: [f64; 4],
    eig: [f64; 3],
}

fn measures(mask: &Array3<bool>, spacing: [f64; 3]) -> Option<(Measures, [usize; 3], [usize; 3])> {
    let (lo, hi) = bounding_box(mask)?;
    let m = mesh(mask, lo, hi, spacing, case_table());
    let n = mask.iter().filter(|v| **v).count() as f64;
    Some((
        Measures {
            volume: m.volume,
            voxel_volume: n * spacing[0] * spacing[1] * spacing[2],
            area: m.area,
            diam: diameters(&m.vertices, spacing),
            eig: principal_moments(mask, spacing),
        },
        lo,
        hi,
    ))
}

/// pyradiomics' shape features of a 3-D mask (`[z, y, x]`, spacing
/// `[dz, dy, dx]` mm). An empty mask gives NaN for every feature.
pub fn features(mask: &Array3<bool>, spacing: [f64; 3]) -> Vec<Feature> {
    let Some((m, _, _)) = measures(mask, spacing) else {
        return NAMES.iter().map(|n| (*n, f64::NAN)).collect();
    };
    let (v, a) = (m.volume, m.area);
    let sphere = (36.0 * std::f64::consts::PI * v * v).cbrt();
    let values = [
        v,
        m.voxel_volume,
        a,
        a / v,
        sphere / a,
        v / (a.powf(1.5) * std::f64::consts::PI.sqrt()),
        36.0 * std::f64::consts::PI * v * v / a.powi(3),
        a / sphere,
        m.diam[3],
        m.diam[0],
        m.diam[1],
        m.diam[2],
        axis_length(m.eig[2]),
        axis_length(m.eig[1]),
        axis_length(m.eig[0]),
        ratio(m.eig[1], m.eig[2]),
        ratio(m.eig[0], m.eig[2]),
    ];
    NAMES.iter().copied().zip(values).collect()
}

/// Surface area of an ellipsoid with semi-axes `a >= b >= c` (IBSI 1,
/// 3.1.19: Legendre series to order 20).
fn ellipsoid_area(a: f64, b: f64, c: f64) -> f64 {
    let alpha = (1.0 - (b / a).powi(2)).max(0.0).sqrt();
    let beta = (1.0 - (c / a).powi(2)).max(0.0).sqrt();
    let ab = alpha * beta;
    let x = if ab > 0.0 {
        (alpha * alpha + beta * beta) / (2.0 * ab)
    } else {
        0.0
    };
    // P_nu(x) by the three-term recurrence
    let (mut p_prev, mut p) = (0.0, 1.0);
    let mut sum = 0.0;
    for nu in 0..=20i32 {
        sum += ab.powi(nu) * p / (1.0 - 4.0 * (nu * nu) as f64);
        let next = ((2 * nu + 1) as f64 * x * p - nu as f64 * p_prev) / (nu + 1) as f64;
        p_prev = p;
        p = next;
    }
    4.0 * std::f64::consts::PI * a * b * sum
}

/// IBSI "Morphological features" of an ROI (its mask is both the
/// morphological and the intensity mask). Keys are IBSI tags. Not computed:
/// convex-hull, oriented/minimum-volume bounding box and enclosing-ellipsoid
/// fits, Moran's I and Geary's C.
pub fn features_ibsi(roi: &Roi) -> Vec<(&'static str, f64)> {
    let keys = [
        "morph.vol",
        "morph.approx.vol",
        "morph.area",
        "morph.av",
        "morph.comp.1",
        "morph.comp.2",
        "morph.sph.dispr",
        "morph.sphericity",
        "morph.asphericity",
        "morph.com",
        "morph.diam",
        "morph.pca.major",
        "morph.pca.minor",
        "morph.pca.least",
        "morph.pca.elongation",
        "morph.pca.flatness",
        "morph.v.dens.aabb",
        "morph.a.dens.aabb",
        "morph.v.dens.aee",
        "morph.a.dens.aee",
        "morph.integ.int",
    ];
    let sp = roi.spacing;
    let Some((m, lo, hi)) = measures(&roi.mask, sp) else {
        return keys.iter().map(|k| (*k, f64::NAN)).collect();
    };
    let pi = std::f64::consts::PI;
    let (v, a) = (m.volume, m.area);
    // IBSI's PCA uses the sample covariance (N - 1), pyradiomics' divides by N
    let voxels = m.voxel_volume / (sp[0] * sp[1] * sp[2]);
    let eig = m.eig.map(|e| e * voxels / (voxels - 1.0));
    // centre of mass shift: voxel centroid vs intensity-weighted centroid
    let mut geo = [0.0; 3];
    let mut weighted = [0.0; 3];
    let mut n = 0.0;
    let mut total = 0.0;
    for ((z, y, x), inside) in roi.mask.indexed_iter() {
        if *inside {
            let p = [z as f64 * sp[0], y as f64 * sp[1], x as f64 * sp[2]];
            let w = roi.image[[z, y, x]];
            for k in 0..3 {
                geo[k] += p[k];
                weighted[k] += w * p[k];
            }
            n += 1.0;
            total += w;
        }
    }
    let com = norm3([
        geo[0] / n - weighted[0] / total,
        geo[1] / n - weighted[1] / total,
        geo[2] / n - weighted[2] / total,
    ]);
    // the mesh's bounding box spans whole voxels
    let ext = [
        (hi[0] - lo[0]) as f64 * sp[0],
        (hi[1] - lo[1]) as f64 * sp[1],
        (hi[2] - lo[2]) as f64 * sp[2],
    ];
    let aabb_v = ext[0] * ext[1] * ext[2];
    let aabb_a = 2.0 * (ext[0] * ext[1] + ext[1] * ext[2] + ext[0] * ext[2]);
    let semi = [
        2.0 * eig[2].max(0.0).sqrt(),
        2.0 * eig[1].max(0.0).sqrt(),
        2.0 * eig[0].max(0.0).sqrt(),
    ];
    let sphericity = (36.0 * pi * v * v).cbrt() / a;
    let values = [
        v,
        m.voxel_volume,
        a,
        a / v,
        v / (pi.sqrt() * a.powf(1.5)),
        36.0 * pi * v * v / a.powi(3),
        1.0 / sphericity,
        sphericity,
        1.0 / sphericity - 1.0,
        com,
        m.diam[3],
        axis_length(eig[2]),
        axis_length(eig[1]),
        axis_length(eig[0]),
        ratio(eig[1], eig[2]),
        ratio(eig[0], eig[2]),
        v / aabb_v,
        a / aabb_a,
        3.0 * v / (4.0 * pi * semi[0] * semi[1] * semi[2]),
        a / ellipsoid_area(semi[0], semi[1], semi[2]),
        v * total / n,
    ];
    keys.iter().copied().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_voxel_is_a_closed_octahedron() {
        let mask = Array3::from_elem((1, 1, 1), true);
        let f = features(&mask, [1.0, 1.0, 1.0]);
        let get = |n: &str| f.iter().find(|x| x.0 == n).map(|x| x.1).unwrap_or(f64::NAN);
        assert!(
            (get("MeshVolume") - 1.0 / 6.0).abs() < 1e-12,
            "{}",
            get("MeshVolume")
        );
        assert!((get("SurfaceArea") - 8.0 * 3f64.sqrt() / 8.0).abs() < 1e-12);
        assert!((get("Maximum3DDiameter") - 1.0).abs() < 1e-12);
        assert!(get("Elongation").is_nan());
    }
}
