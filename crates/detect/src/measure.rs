//! What a radiologist measures on a finding: long and short axis on the axial slice of
//! largest extent, their mean (which decides Lung-RADS), volume, mean density, and whether it
//! is solid, part-solid or ground glass, or calcified.

use nodulens_core::Volume;
use serde::{Deserialize, Serialize};

use crate::descriptors::{Descriptors, describe};
use crate::juxtapleural::pleural_contact;
use crate::lung::LungMask;
use crate::morphology::{for_each_neighbour, squared_distance_3d};
use crate::segment::Segmentation;

/// Voxels denser than this are the solid component (soft tissue; ground glass is below).
pub const SOLID_HU: i16 = -300;
/// Voxels denser than this are calcium. With [`CALCIFIED_MIN_SHARE`], chosen against the LIDC
/// calcification ratings of the 791 crops (`nodulens eval-measurement`) to call few nodules
/// calcified that readers rated without calcium (13 of 693; 68 of 94 benign patterns found):
/// a "calcified" call makes a nodule Lung-RADS 1, so it must be the rarer error. At 200 HU and
/// 10 % it was 51 of 693 (and 89 of 94).
pub const CALCIUM_HU: i16 = 300;
/// Solid share (of the finding's voxels) below which it is ground glass…
pub const GROUND_GLASS_MAX_SOLID: f64 = 0.10;
/// …and below which it is part-solid; at or above, solid.
pub const PART_SOLID_MAX_SOLID: f64 = 0.35;
/// Calcium share at or above which a finding is calcified.
pub const CALCIFIED_MIN_SHARE: f64 = 0.20;
/// A finding less its cap of chest wall is measured so when what is left holds a ball of at
/// least this share of the finding's inscribed radius: else the "wall" was the finding itself
/// (a mass on the pleura that the lung mask leaves out), and it is measured whole.
const MIN_PROPER_DEPTH: f64 = 0.3;
/// Lung-RADS's juxtapleural rule covers solid nodules below this mean diameter, mm.
pub const JUXTAPLEURAL_MAX_MM: f64 = 10.0;

/// Attenuation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoduleType {
    Solid,
    PartSolid,
    GroundGlass,
}

impl NoduleType {
    pub fn name(self) -> &'static str {
        match self {
            NoduleType::Solid => "solid",
            NoduleType::PartSolid => "part_solid",
            NoduleType::GroundGlass => "ground_glass",
        }
    }
}

/// The measurements of one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Centroid of the segmentation, LPS mm.
    pub center_mm: [f64; 3],
    /// Longest diameter on the axial slice of largest area, mm.
    pub long_axis_mm: f64,
    /// Longest diameter perpendicular to it on that slice, mm.
    pub short_axis_mm: f64,
    /// Mean of the two, rounded to 0.1 mm (what Lung-RADS categories are decided by).
    pub diameter_mm: f64,
    pub volume_mm3: f64,
    pub mean_hu: f64,
    #[serde(rename = "type")]
    pub nodule_type: NoduleType,
    /// Share of voxels denser than [`SOLID_HU`].
    pub solid_share: f64,
    /// Mean diameter of the largest solid component (part-solid findings), mm.
    pub solid_component_mm: Option<f64>,
    /// Calcium share at or above [`CALCIFIED_MIN_SHARE`].
    pub calcified: bool,
    /// A solid, uncalcified nodule under [`JUXTAPLEURAL_MAX_MM`] on the pleura
    /// ([`crate::juxtapleural`]): where the juxtapleural rule may apply.
    #[serde(default)]
    pub on_pleura: bool,
    /// First and last slice of the finding's body (the models' context along z).
    pub slices: [usize; 2],
    /// Shape, density and margin beyond size (the malignancy combination's inputs).
    #[serde(default)]
    pub descriptors: Descriptors,
}

/// Rounds to 0.1 mm, as Lung-RADS asks.
pub fn round_tenth(mm: f64) -> f64 {
    (mm * 10.0).round() / 10.0
}

/// Measures the finding `seg` of `volume`. With the scan's `lungs`, a finding on the pleura is
/// measured without the cap of chest wall its segmentation holds, and marked (see
/// [`crate::juxtapleural`]); without them it is measured whole and not marked. Its centre and
/// slices stay the segmentation's: they place the models' patch.
pub fn measure(volume: &Volume, seg: &Segmentation, lungs: Option<&LungMask>) -> Measurement {
    let spacing = volume.spacing();
    let dims = seg.dims();
    let contact = lungs.map(|lungs| pleural_contact(volume, seg, lungs));
    let proper = contact
        .as_ref()
        .and_then(|c| c.nodule.as_ref())
        .map(|nodule| largest_component(nodule, dims))
        .filter(|nodule| {
            let outside: Vec<bool> = nodule.iter().map(|&m| !m).collect();
            let deepest = squared_distance_3d(&outside, dims, spacing)
                .into_iter()
                .fold(0.0, f64::max);
            deepest.sqrt() >= MIN_PROPER_DEPTH * seg.inscribed_radius_mm
        });
    let body: &[bool] = proper.as_deref().unwrap_or(seg.mask());
    let (long, short) = axes_of_largest_slice(body, dims, [spacing[0], spacing[1]]);
    let mut sum = 0.0;
    let (mut count, mut solid, mut calcium) = (0usize, 0usize, 0usize);
    let [nx, ny, _] = dims;
    let o = seg.origin();
    let mut solid_mask = vec![false; body.len()];
    for (at, _) in body.iter().enumerate().filter(|&(_, &m)| m) {
        let v = [o[0] + at % nx, o[1] + (at / nx) % ny, o[2] + at / (nx * ny)];
        let hu = volume.voxels()[volume.index(v[0], v[1], v[2])];
        sum += f64::from(hu);
        count += 1;
        if hu > SOLID_HU {
            solid += 1;
            solid_mask[at] = true;
        }
        if hu > CALCIUM_HU {
            calcium += 1;
        }
    }
    let n = count.max(1) as f64;
    let solid_share = solid as f64 / n;
    let nodule_type = if solid_share < GROUND_GLASS_MAX_SOLID {
        NoduleType::GroundGlass
    } else if solid_share < PART_SOLID_MAX_SOLID {
        NoduleType::PartSolid
    } else {
        NoduleType::Solid
    };
    let solid_component_mm = (nodule_type == NoduleType::PartSolid).then(|| {
        let largest = largest_component(&solid_mask, dims);
        let (l, s) = axes_of_largest_slice(&largest, dims, [spacing[0], spacing[1]]);
        round_tenth((l + s) / 2.0)
    });
    let calcified = calcium as f64 / n >= CALCIFIED_MIN_SHARE;
    let diameter_mm = round_tenth((long + short) / 2.0);
    let on_pleura = nodule_type == NoduleType::Solid
        && !calcified
        && diameter_mm < JUXTAPLEURAL_MAX_MM
        && contact.is_some_and(|c| c.on_pleura());
    let c = seg.centroid_voxel();
    Measurement {
        center_mm: volume.voxel_to_world(c),
        long_axis_mm: long,
        short_axis_mm: short,
        diameter_mm,
        volume_mm3: count as f64 * spacing.iter().product::<f64>(),
        mean_hu: sum / n,
        nodule_type,
        solid_share,
        solid_component_mm,
        calcified,
        on_pleura,
        slices: seg.slices(),
        descriptors: describe(volume, body, o, dims),
    }
}

/// Long and short axis (mm) of `mask` (`dims`, row by row, slice by slice) on its slice of
/// largest area; `(0, 0)` for an empty mask. The same routine measures our segmentations and
/// the readers' masks.
pub fn axes_of_largest_slice(mask: &[bool], dims: [usize; 3], spacing: [f64; 2]) -> (f64, f64) {
    let [nx, ny, _] = dims;
    let area = nx * ny;
    match largest_slice(mask, dims) {
        Some(k) => axes(&mask[area * k..area * (k + 1)], nx, ny, spacing),
        None => (0.0, 0.0),
    }
}

/// The slice of `mask` (`dims`) with most set pixels (the first of equals), `None` when empty.
pub fn largest_slice(mask: &[bool], dims: [usize; 3]) -> Option<usize> {
    let [nx, ny, nz] = dims;
    let area = nx * ny;
    (0..nz)
        .map(|k| {
            (
                mask[area * k..area * (k + 1)]
                    .iter()
                    .filter(|&&m| m)
                    .count(),
                k,
            )
        })
        .max_by_key(|&(count, k)| (count, std::cmp::Reverse(k)))
        .filter(|&(count, _)| count > 0)
        .map(|(_, k)| k)
}

/// Long axis (the largest distance between two points of the pixels' outline, pixel corners
/// included) and short axis (the outline's extent perpendicular to it) of one slice, mm.
pub fn axes(mask: &[bool], nx: usize, ny: usize, spacing: [f64; 2]) -> (f64, f64) {
    let set = |i: i64, j: i64| {
        i >= 0
            && j >= 0
            && (i as usize) < nx
            && (j as usize) < ny
            && mask[i as usize + nx * j as usize]
    };
    // Only boundary pixels' corners can be extreme.
    let mut points: Vec<[f64; 2]> = Vec::new();
    for j in 0..ny as i64 {
        for i in 0..nx as i64 {
            if !set(i, j) {
                continue;
            }
            if set(i - 1, j) && set(i + 1, j) && set(i, j - 1) && set(i, j + 1) {
                continue;
            }
            for (di, dj) in [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)] {
                points.push([(i as f64 + di) * spacing[0], (j as f64 + dj) * spacing[1]]);
            }
        }
    }
    if points.is_empty() {
        return (0.0, 0.0);
    }
    let hull = convex_hull(points);
    let (mut best, mut a, mut b) = (-1.0, hull[0], hull[0]);
    for (n, p) in hull.iter().enumerate() {
        for q in &hull[n + 1..] {
            let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
            if d > best {
                (best, a, b) = (d, *p, *q);
            }
        }
    }
    let long = best.max(0.0).sqrt();
    if long == 0.0 {
        return (0.0, 0.0);
    }
    let normal = [-(b[1] - a[1]) / long, (b[0] - a[0]) / long];
    let (lo, hi) = hull
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            let t = p[0] * normal[0] + p[1] * normal[1];
            (lo.min(t), hi.max(t))
        });
    (long, hi - lo)
}

/// Andrew's monotone chain: the hull's vertices (extreme points are all a diameter needs).
fn convex_hull(mut points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    points.sort_by(|p, q| p[0].total_cmp(&q[0]).then(p[1].total_cmp(&q[1])));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * points.len());
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(points.iter())
        } else {
            Box::new(points.iter().rev())
        };
        for &p in ordered {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// The largest face-connected component of `mask`.
fn largest_component(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let mut label = vec![0u32; mask.len()];
    let mut best = (0usize, 0u32);
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut size = 0;
        while let Some(at) = stack.pop() {
            size += 1;
            for_each_neighbour(at, dims, |n| {
                if mask[n] && label[n] == 0 {
                    label[n] = next;
                    stack.push(n);
                }
            });
        }
        if size > best.0 {
            best = (size, next);
        }
    }
    label.iter().map(|&l| l != 0 && l == best.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(n: usize, radius_px: f64) -> Vec<bool> {
        let c = (n as f64 - 1.0) / 2.0;
        (0..n * n)
            .map(|at| {
                let (i, j) = ((at % n) as f64 - c, (at / n) as f64 - c);
                i * i + j * j <= radius_px * radius_px
            })
            .collect()
    }

    #[test]
    fn a_disc_has_equal_axes_near_its_diameter() {
        let (long, short) = axes(&disc(41, 10.0), 41, 41, [0.5, 0.5]);
        assert!((long - 10.5).abs() < 0.6, "long {long}");
        assert!((short - long).abs() < 0.6, "short {short}");
    }

    #[test]
    fn a_rectangle_has_its_diagonal_and_its_width() {
        // 20 × 6 pixels of 1 × 0.5 mm: 20 mm by 3 mm.
        let (nx, ny) = (30, 12);
        let mask: Vec<bool> = (0..nx * ny)
            .map(|at| (5..25).contains(&(at % nx)) && (3..9).contains(&(at / nx)))
            .collect();
        let (long, short) = axes(&mask, nx, ny, [1.0, 0.5]);
        assert!((long - (400.0f64 + 9.0).sqrt()).abs() < 1e-9, "long {long}");
        // Perpendicular to the diagonal, the rectangle's extent is its full projection.
        assert!(short > 2.9 && short < 6.0, "short {short}");
        assert_eq!(axes(&[false; 4], 2, 2, [1.0, 1.0]), (0.0, 0.0));
        let one = [true];
        assert_eq!(axes(&one, 1, 1, [1.0, 1.0]).0, 2f64.sqrt());
    }

    #[test]
    fn the_largest_slice_decides() {
        let n = 21;
        let mut mask = disc(n, 3.0);
        mask.extend(disc(n, 8.0));
        mask.extend(disc(n, 5.0));
        let (long, _) = axes_of_largest_slice(&mask, [n, n, 3], [1.0, 1.0]);
        assert!((long - 17.0).abs() < 1.0, "long {long}");
        assert_eq!(round_tenth(5.96), 6.0);
        assert_eq!(round_tenth(5.94), 5.9);
    }
}
