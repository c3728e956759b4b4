//! What a reader sees in a nodule beyond its size, as numbers from our own segmentation:
//! calcium, density spread, shape (compactness, outline solidity and irregularity) and margin
//! (how sharply it stands off the lung, and what strands leave it). The malignancy
//! combination ([`crate::malignancy`]) weighs them with the CNN's output.

use nodulens_core::Volume;
use serde::{Deserialize, Serialize};

use crate::measure::largest_slice;
use crate::morphology::{convex_hull, for_each_neighbour, squared_distance_3d};

/// Voxels denser than this in the shell around a finding are strands or vessels leaving it.
const STRAND_HU: i16 = -500;
/// The shell around a finding where strands are counted, mm beyond its surface.
const SHELL_MM: f64 = 3.0;
/// Voxels denser than this are calcium (as [`crate::measure::CALCIUM_HU`]).
const CALCIUM_HU: i16 = crate::measure::CALCIUM_HU;

/// Shape, density and margin of one finding's body.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Descriptors {
    /// Share of voxels denser than calcium.
    pub calcium_share: f64,
    /// Standard deviation of the voxels' HU.
    pub hu_std: f64,
    /// 36πV²/A³ from the voxels' faces: 1 for a ball, less for anything rougher or flatter
    /// (the faces of a voxelised ball count about 1.5× its area, so a ball scores ~0.3).
    pub compactness: f64,
    /// Area of the largest axial slice over its convex hull's: below 1 for lobulated,
    /// notched or spiculated outlines.
    pub solidity: f64,
    /// Mean HU just inside the surface minus mean HU just outside it: a sharp margin
    /// stands off the lung by several hundred HU, an ill-defined one by less.
    pub margin_contrast: f64,
    /// Share of the shell up to [`SHELL_MM`] outside the surface that is denser than
    /// [`STRAND_HU`]: spicules, strands and vessels leaving the finding.
    pub strand_share: f64,
}

/// The descriptors of `body` (a box of `volume` at `origin`, `dims`, row by row, slice by
/// slice).
pub fn describe(
    volume: &Volume,
    body: &[bool],
    origin: [usize; 3],
    dims: [usize; 3],
) -> Descriptors {
    let spacing = volume.spacing();
    let hu_at = |v: [usize; 3]| volume.voxels()[volume.index(v[0], v[1], v[2])];
    let [nx, ny, _] = dims;
    let (mut n, mut calcium, mut sum, mut sum2) = (0usize, 0usize, 0.0f64, 0.0f64);
    // The body's own bounds (the segmentation's box is its search box, often far larger).
    let (mut first, mut last) = ([usize::MAX; 3], [0usize; 3]);
    for (at, _) in body.iter().enumerate().filter(|&(_, &m)| m) {
        let v = [at % nx, (at / nx) % ny, at / (nx * ny)];
        for a in 0..3 {
            first[a] = first[a].min(v[a]);
            last[a] = last[a].max(v[a]);
        }
        let hu = hu_at([origin[0] + v[0], origin[1] + v[1], origin[2] + v[2]]);
        n += 1;
        calcium += usize::from(hu > CALCIUM_HU);
        sum += f64::from(hu);
        sum2 += f64::from(hu).powi(2);
    }
    if n == 0 {
        return Descriptors::default();
    }
    let count = n as f64;
    let mean = sum / count;
    let hu_std = (sum2 / count - mean * mean).max(0.0).sqrt();

    // Grown by the shell, so the margin and the shell lie inside the box.
    let vdims = volume.dims();
    // At most the volume's extent (a degenerate spacing must not make it overflow).
    let grow: [usize; 3] = std::array::from_fn(|a| {
        ((SHELL_MM / spacing[a]).ceil() as usize)
            .saturating_add(1)
            .min(vdims[a])
    });
    let lo: [usize; 3] = std::array::from_fn(|a| (origin[a] + first[a]).saturating_sub(grow[a]));
    let hi: [usize; 3] = std::array::from_fn(|a| {
        (origin[a] + last[a] + 1)
            .saturating_add(grow[a])
            .min(vdims[a])
    });
    let g: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a]);
    let mut grown = vec![false; g[0] * g[1] * g[2]];
    for (at, _) in body.iter().enumerate().filter(|&(_, &m)| m) {
        let v = [
            origin[0] + at % nx - lo[0],
            origin[1] + (at / nx) % ny - lo[1],
            origin[2] + at / (nx * ny) - lo[2],
        ];
        grown[v[0] + g[0] * (v[1] + g[1] * v[2])] = true;
    }
    let to_body = squared_distance_3d(&grown, g, spacing);
    // "Just inside" and "just outside": the voxels on either side of a face of the surface,
    // so the margin is read at the same depth whatever the slice thickness.
    let shell = SHELL_MM * SHELL_MM;
    let (mut inner, mut inner_n, mut outer, mut outer_n) = (0.0, 0usize, 0.0, 0usize);
    let (mut strands, mut shell_n) = (0usize, 0usize);
    let mut faces = 0.0;
    let face_area = [
        spacing[1] * spacing[2],
        spacing[0] * spacing[2],
        spacing[0] * spacing[1],
    ];
    for k in 0..g[2] {
        for j in 0..g[1] {
            for i in 0..g[0] {
                let at = i + g[0] * (j + g[1] * k);
                let hu = hu_at([lo[0] + i, lo[1] + j, lo[2] + k]);
                if grown[at] {
                    // Faces towards a voxel outside the finding (or the box's edge).
                    let mut surface = false;
                    let p = [i, j, k];
                    for a in 0..3 {
                        for step in [-1i64, 1] {
                            let q = p[a] as i64 + step;
                            let open = q < 0 || q >= g[a] as i64 || {
                                let mut r = p;
                                r[a] = q as usize;
                                !grown[r[0] + g[0] * (r[1] + g[1] * r[2])]
                            };
                            if open {
                                faces += face_area[a];
                                surface = true;
                            }
                        }
                    }
                    if surface {
                        inner += f64::from(hu);
                        inner_n += 1;
                    }
                } else if to_body[at] <= shell {
                    shell_n += 1;
                    strands += usize::from(hu > STRAND_HU);
                    let mut touches = false;
                    for_each_neighbour(at, g, |n| touches |= grown[n]);
                    if touches {
                        outer += f64::from(hu);
                        outer_n += 1;
                    }
                }
            }
        }
    }
    let volume_mm3 = count * spacing.iter().product::<f64>();
    let compactness = if faces > 0.0 {
        (36.0 * std::f64::consts::PI * volume_mm3 * volume_mm3 / faces.powi(3)).min(1.0)
    } else {
        0.0
    };
    let margin_contrast = if inner_n > 0 && outer_n > 0 {
        inner / inner_n as f64 - outer / outer_n as f64
    } else {
        0.0
    };
    Descriptors {
        calcium_share: calcium as f64 / count,
        hu_std,
        compactness,
        solidity: largest_slice_solidity(body, dims),
        margin_contrast,
        strand_share: strands as f64 / shell_n.max(1) as f64,
    }
}

/// Area over convex hull area of the largest axial slice of `mask`.
fn largest_slice_solidity(mask: &[bool], dims: [usize; 3]) -> f64 {
    let [nx, ny, _] = dims;
    let plane = nx * ny;
    let Some(k) = largest_slice(mask, dims) else {
        return 0.0;
    };
    let slice = &mask[plane * k..plane * (k + 1)];
    let area = slice.iter().filter(|&&m| m).count();
    let hull = convex_hull(slice, nx, ny);
    area as f64 / hull.iter().filter(|&&m| m).count().max(area) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment;
    use nodulens_core::preprocess::synthetic_volume;

    /// A ball of soft tissue in aerated lung, with a strand leaving it when `strand`.
    fn ball(strand: bool) -> Descriptors {
        let volume = synthetic_volume([40, 40, 40], [1.0; 3], [0.0; 3], |i, j, k| {
            let d2 = [i, j, k]
                .iter()
                .map(|&v| (v as i64 - 20).pow(2))
                .sum::<i64>();
            if d2 <= 36 || (strand && j == 20 && k == 20 && i > 20 && i < 30) {
                40
            } else {
                -850
            }
        });
        let seg = segment(&volume, [20.0; 3]).expect("the ball is segmented");
        describe(&volume, seg.mask(), seg.origin(), seg.dims())
    }

    #[test]
    fn a_ball_is_compact_solid_and_sharp() {
        let d = ball(false);
        assert!(d.compactness > 0.25 && d.compactness <= 1.0, "{d:?}");
        assert!(d.solidity > 0.9, "{d:?}");
        assert!(d.margin_contrast > 500.0, "{d:?}");
        assert!(d.strand_share < 0.01, "{d:?}");
        assert_eq!(d.calcium_share, 0.0);
        assert!(d.hu_std < 1.0, "{d:?}");
    }

    #[test]
    fn a_strand_leaving_the_ball_is_counted() {
        let (plain, spiculated) = (ball(false), ball(true));
        assert!(
            spiculated.strand_share > plain.strand_share,
            "{plain:?} {spiculated:?}"
        );
    }
}
