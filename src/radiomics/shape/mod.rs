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
//!   on that origin (see `mesh::PYRADIOMICS_ORIGIN_VOXELS`);
//! - the triangulation of each non-planar polygon is the one of the classic
//!   Lorensen–Cline case table. Here the table is generated, not written out:
//!   polygons with up to six vertices take the triangulation of largest area
//!   (ties: smallest volume swept about the cube centre), the one heptagon
//!   shape takes the fan whose diagonals all join skew cube edges. Both rules
//!   reproduce the classic table's area and volume case by case.
use ndarray::Array3;
use rayon::prelude::*;

mod mesh;

use super::image::{bounding_box, Feature, Roi};
use mesh::{case_table, mesh, norm3, sub3};

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

/// The shape features' pyradiomics names, in pyradiomics' output order.
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
