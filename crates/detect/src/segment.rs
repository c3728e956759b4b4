//! The 3-D segmentation of one finding, on the scan's own voxels (measurement needs its
//! resolution, not the working grid's).
//!
//! Half-maximum thresholding from a seed: the threshold lies halfway between the densest
//! in-plane 3×3 mean near the seed and air, so a ground-glass nodule (peak ≈ −500 HU) and a
//! solid one (≈ 0 HU) are both cut at their own edge; holes (cavities, air bronchograms) are
//! filled slice by slice, as readers draw them. Then the component holding the seed,
//! with what is attached through narrow necks (vessels) or lies far from the nodule's centre
//! (the chest wall, a neighbouring vessel) taken off: the deepest voxel near the seed gives
//! the nodule's inscribed radius r; voxels farther than [`SPHERE_FACTOR`]·r from it are cut,
//! and an opening of radius [`OPENING_FACTOR`]·r removes necks thinner than that.
//!
//! Tuned on LIDC crops against the readers' masks (`nodulens eval-measurement`).

use nodulens_core::Volume;

use crate::morphology::{fill_holes, for_each_neighbour, squared_distance_3d};

/// What the threshold is halfway to (air).
const BACKGROUND_HU: f32 = -1000.0;
/// The threshold is kept within these bounds, HU: no lower than aerated lung's densest, no
/// higher than a ground-glass nodule's body.
const THRESHOLD_RANGE_HU: (f32, f32) = (-800.0, -500.0);
/// The seed's neighbourhood: where the peak and the nodule's deepest voxel are looked for, mm
/// (at least 0.6 slice so that a thick-slice scan always has a slice in it).
const SEED_RADIUS_MM: f64 = 2.0;
/// Voxels farther than this many inscribed radii from the deepest voxel are not the nodule.
pub const SPHERE_FACTOR: f64 = 2.2;
/// Opening radius in inscribed radii (necks thinner than twice this are cut).
pub const OPENING_FACTOR: f64 = 0.3;
/// Squared distances (mm²) closer than this count as equal: the distance transform's sums
/// differ in their last bits with the box they run in, and a scan and its crop must agree.
const TIE_MM2: f64 = 1e-9;
/// Openings below this radius (mm) would not remove anything: skipped.
const MIN_OPENING_MM: f64 = 0.3;
const MAX_OPENING_MM: f64 = 3.0;
/// A quick first look this far around the seed (mm): enough for most candidates (vessels,
/// small nodules), and an eighth of the voxels of the full look.
const QUICK_LOOK_MM: f64 = 10.0;
/// The full first look (mm); a bigger finding gets a second, bigger look.
const FIRST_LOOK_MM: f64 = 20.0;
/// No finding is segmented beyond this distance from its centre, mm (a 90 mm mass).
const MAX_LOOK_MM: f64 = 45.0;

/// A slice belongs to a finding's body (its context along z) when it holds at least this share
/// of the largest slice's area.
pub const BODY_AREA_SHARE: f64 = 0.25;

/// The voxels of one finding, in a box of the source volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    /// The box's first voxel in the volume, `[column, row, slice]`.
    origin: [usize; 3],
    dims: [usize; 3],
    inside: Vec<bool>,
    spacing: [f64; 3],
    count: usize,
    /// The threshold the finding was cut at, HU.
    pub threshold_hu: f32,
    /// Radius of the largest ball inside the finding, mm.
    pub inscribed_radius_mm: f64,
}

impl Segmentation {
    /// Voxels in the finding.
    pub fn voxel_count(&self) -> usize {
        self.count
    }

    pub fn volume_mm3(&self) -> f64 {
        self.count as f64 * self.spacing.iter().product::<f64>()
    }

    /// The box's size and its first voxel in the volume.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    pub fn origin(&self) -> [usize; 3] {
        self.origin
    }

    /// Whether box voxel `(i, j, k)` is in the finding.
    pub fn contains(&self, i: usize, j: usize, k: usize) -> bool {
        let [nx, ny, _] = self.dims;
        self.inside[i + nx * (j + ny * k)]
    }

    /// The box's voxels row by row, slice by slice (true inside the finding).
    pub fn mask(&self) -> &[bool] {
        &self.inside
    }

    /// The volume's voxel indices `[i, j, k]` of the finding.
    pub fn voxels(&self) -> impl Iterator<Item = [usize; 3]> + '_ {
        let [nx, ny, _] = self.dims;
        let o = self.origin;
        self.inside
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m)
            .map(move |(at, _)| [o[0] + at % nx, o[1] + (at / nx) % ny, o[2] + at / (nx * ny)])
    }

    /// First and last slice of the volume that hold the finding's body: the run of slices
    /// around its largest whose area is at least [`BODY_AREA_SHARE`] of the largest (a thin
    /// cap of partial volume beyond them is not drawn by readers, nor held by the crops).
    pub fn slices(&self) -> [usize; 2] {
        let [nx, ny, nz] = self.dims;
        let plane = nx * ny;
        let areas: Vec<usize> = (0..nz)
            .map(|k| {
                self.inside[plane * k..plane * (k + 1)]
                    .iter()
                    .filter(|&&m| m)
                    .count()
            })
            .collect();
        let (largest, top) =
            areas.iter().enumerate().fold(
                (0, 0),
                |best, (k, &a)| if a > best.1 { (k, a) } else { best },
            );
        let body = |k: &usize| areas[*k] as f64 >= BODY_AREA_SHARE * top as f64 && areas[*k] > 0;
        let first = (0..=largest)
            .rev()
            .take_while(body)
            .last()
            .unwrap_or(largest);
        let last = (largest..nz).take_while(body).last().unwrap_or(largest);
        [self.origin[2] + first, self.origin[2] + last]
    }

    /// Mean position of the body's voxels (those on [`Segmentation::slices`]), in the volume's
    /// voxel coordinates: where the finding is reported and its patch centred, so a cap a
    /// crop does not hold moves neither.
    pub fn centroid_voxel(&self) -> [f64; 3] {
        let [first, last] = self.slices();
        let mut sum = [0.0; 3];
        let mut n = 0usize;
        for v in self.voxels().filter(|v| (first..=last).contains(&v[2])) {
            for a in 0..3 {
                sum[a] += v[a] as f64;
            }
            n += 1;
        }
        sum.map(|s| s / n.max(1) as f64)
    }
}

/// The finding around `seed_mm` (LPS), or `None` when nothing denser than the threshold lies
/// near the seed (or the seed is outside the volume).
pub fn segment(volume: &Volume, seed_mm: [f64; 3]) -> Option<Segmentation> {
    // The quick look gives exactly the full look's result when everything the segmentation
    // consults lies inside it: the sphere of SPHERE_FACTOR·r around a centre up to the seed
    // radius from the seed, plus a voxel. (A box that is too small only overestimates r,
    // which errs towards the full look.)
    let quick = segment_within(volume, seed_mm, QUICK_LOOK_MM)?;
    let spacing = volume.spacing();
    let margin = seed_radius_mm(spacing) + spacing.iter().copied().fold(0.0, f64::max);
    if SPHERE_FACTOR * quick.inscribed_radius_mm + margin <= QUICK_LOOK_MM {
        return Some(quick);
    }
    let first = segment_within(volume, seed_mm, FIRST_LOOK_MM)?;
    let needed = SPHERE_FACTOR * first.inscribed_radius_mm + 1.0;
    if needed <= FIRST_LOOK_MM {
        return Some(first);
    }
    segment_within(volume, seed_mm, needed.min(MAX_LOOK_MM))
}

fn segment_within(volume: &Volume, seed_mm: [f64; 3], look_mm: f64) -> Option<Segmentation> {
    let dims = volume.dims();
    let spacing = volume.spacing();
    let seed = volume.world_to_voxel(seed_mm);
    let mut origin = [0usize; 3];
    let mut size = [0usize; 3];
    for a in 0..3 {
        let s = seed[a].round();
        if !s.is_finite() || s < 0.0 || s >= dims[a] as f64 {
            return None;
        }
        let reach = (look_mm / spacing[a]).ceil() as usize;
        let s = s as usize;
        origin[a] = s.saturating_sub(reach);
        size[a] = (s + reach + 1).min(dims[a]) - origin[a];
    }
    let [nx, ny, nz] = size;
    let hu = |i: usize, j: usize, k: usize| -> f32 {
        f32::from(volume.voxels()[volume.index(origin[0] + i, origin[1] + j, origin[2] + k)])
    };
    let local_seed = [0, 1, 2].map(|a| seed[a] - origin[a] as f64);
    let distance2 = |i: usize, j: usize, k: usize, from: [f64; 3]| -> f64 {
        let d = [i as f64 - from[0], j as f64 - from[1], k as f64 - from[2]];
        (0..3).map(|a| (d[a] * spacing[a]).powi(2)).sum()
    };
    let seed_radius = seed_radius_mm(spacing);
    let near = |i: usize, j: usize, k: usize| distance2(i, j, k, local_seed) <= seed_radius.powi(2);

    // The peak: the densest in-plane 3×3 mean near the seed.
    let mut peak = f32::NEG_INFINITY;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                if !near(i, j, k) {
                    continue;
                }
                let (mut sum, mut n) = (0.0, 0.0);
                for jj in j.saturating_sub(1)..(j + 2).min(ny) {
                    for ii in i.saturating_sub(1)..(i + 2).min(nx) {
                        sum += hu(ii, jj, k);
                        n += 1.0;
                    }
                }
                peak = peak.max(sum / n);
            }
        }
    }
    if !peak.is_finite() {
        return None;
    }
    let threshold =
        ((peak + BACKGROUND_HU) / 2.0).clamp(THRESHOLD_RANGE_HU.0, THRESHOLD_RANGE_HU.1);
    let area = nx * ny;
    let mut inside: Vec<bool> = (0..area * nz)
        .map(|at| hu(at % nx, (at / nx) % ny, at / area) > threshold)
        .collect();
    // A cavity, an air bronchogram or a mottled centre is part of the finding: readers draw
    // around it, and the deepest voxel must not be found in a wall between holes.
    fill_holes_per_slice(&mut inside, size);

    // The deepest voxel near the seed: distance to the nearest voxel at or below the
    // threshold (the box's border is not an edge of the finding).
    let outside: Vec<bool> = inside.iter().map(|&m| !m).collect();
    let depth = squared_distance_3d(&outside, size, spacing);
    let mut centre = None;
    let mut deepest = 0.0;
    for (at, &d) in depth.iter().enumerate() {
        let (i, j, k) = (at % nx, (at / nx) % ny, at / area);
        if inside[at] && d > deepest + TIE_MM2 && near(i, j, k) {
            deepest = d;
            centre = Some(at);
        }
    }
    let centre = centre?;
    let radius = deepest.sqrt();
    let c = [centre % nx, (centre / nx) % ny, centre / area].map(|v| v as f64);
    let limit2 = (SPHERE_FACTOR * radius).powi(2);
    for (at, m) in inside.iter_mut().enumerate() {
        if *m && distance2(at % nx, (at / nx) % ny, at / area, c) > limit2 + TIE_MM2 {
            *m = false;
        }
    }

    // Opening: keep the part of the finding reachable by a ball of the opening radius rolled
    // from its centre, then everything within that radius of it.
    let opening = (OPENING_FACTOR * radius).min(MAX_OPENING_MM);
    if opening > MIN_OPENING_MM {
        let outside: Vec<bool> = inside.iter().map(|&m| !m).collect();
        let depth = squared_distance_3d(&outside, size, spacing);
        let core: Vec<bool> = depth
            .iter()
            .map(|&d| d > opening * opening + TIE_MM2)
            .collect();
        if core[centre] {
            let kept = component(&core, size, centre);
            let reach = squared_distance_3d(&kept, size, spacing);
            let r2 = (opening + 0.01).powi(2);
            for (m, &d) in inside.iter_mut().zip(&reach) {
                *m &= d <= r2;
            }
        }
    }
    let inside = component(&inside, size, centre);
    let count = inside.iter().filter(|&&m| m).count();
    Some(Segmentation {
        origin,
        dims: size,
        inside,
        spacing,
        count,
        threshold_hu: threshold,
        inscribed_radius_mm: radius,
    })
}

/// Fills the holes of each slice of `mask` (`dims`): what the slice's border cannot reach
/// through unset pixels.
fn fill_holes_per_slice(mask: &mut [bool], dims: [usize; 3]) {
    let [nx, ny, _] = dims;
    if nx * ny == 0 {
        return;
    }
    for slice in mask.chunks_exact_mut(nx * ny) {
        fill_holes(slice, nx, ny);
    }
}

/// Where the peak and the deepest voxel are looked for around the seed, mm.
fn seed_radius_mm(spacing: [f64; 3]) -> f64 {
    SEED_RADIUS_MM.max(0.6 * spacing[2])
}

/// The face-connected component of `mask` holding `start` (empty when `start` is unset).
fn component(mask: &[bool], dims: [usize; 3], start: usize) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    if !mask[start] {
        return out;
    }
    out[start] = true;
    let mut stack = vec![start];
    while let Some(at) = stack.pop() {
        for_each_neighbour(at, dims, |n| {
            if mask[n] && !out[n] {
                out[n] = true;
                stack.push(n);
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodulens_core::preprocess::synthetic_volume;

    /// Lung at −850 HU with a ball of `radius` mm at `hu` centred at the origin, and a vessel
    /// (1 mm radius, +40 HU) running through it along x.
    fn ball(radius: f64, hu: i16, spacing: [f64; 3]) -> Volume {
        let dims = [80, 80, (40.0 / spacing[2]) as usize];
        let origin = [-40.0 * spacing[0], -40.0 * spacing[1], -20.0];
        synthetic_volume(dims, spacing, origin, |i, j, k| {
            let p = [
                origin[0] + i as f64 * spacing[0],
                origin[1] + j as f64 * spacing[1],
                origin[2] + k as f64 * spacing[2],
            ];
            let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            if r <= radius {
                hu
            } else if (p[1] * p[1] + p[2] * p[2]).sqrt() <= 1.0 {
                40
            } else {
                -850
            }
        })
    }

    #[test]
    fn a_solid_ball_is_cut_from_its_vessel() {
        let vol = ball(5.0, 30, [0.7, 0.7, 1.0]);
        let seg = segment(&vol, [0.0, 0.0, 0.0]).unwrap();
        let expected = 4.0 / 3.0 * std::f64::consts::PI * 125.0;
        let ratio = seg.volume_mm3() / expected;
        assert!((0.8..1.2).contains(&ratio), "volume ratio {ratio}");
        assert!(seg.threshold_hu > -500.1 && seg.threshold_hu < -499.9);
        // The vessel 10 mm away along x is not part of it.
        assert!(seg.voxels().all(|v| (v[0] as f64 - 40.0).abs() * 0.7 < 7.0));
    }

    #[test]
    fn ground_glass_is_cut_at_its_own_edge() {
        let vol = ball(6.0, -550, [0.7, 0.7, 1.25]);
        let seg = segment(&vol, [0.0, 0.0, 0.0]).unwrap();
        assert!(seg.threshold_hu < -700.0, "threshold {}", seg.threshold_hu);
        let expected = 4.0 / 3.0 * std::f64::consts::PI * 216.0;
        let ratio = seg.volume_mm3() / expected;
        assert!((0.8..1.2).contains(&ratio), "volume ratio {ratio}");
    }

    #[test]
    fn a_cavity_is_part_of_the_finding() {
        // A 7 mm solid ball with a 4 mm air cavity off its centre: measured whole, as readers
        // draw it, and its inscribed radius is the ball's, not the wall's.
        let spacing = [0.7, 0.7, 1.0];
        let origin = [-28.0, -28.0, -20.0];
        let vol = synthetic_volume([80, 80, 40], spacing, origin, |i, j, k| {
            let p = [
                origin[0] + i as f64 * spacing[0],
                origin[1] + j as f64 * spacing[1],
                origin[2] + k as f64 * spacing[2],
            ];
            let r = |dx: f64| ((p[0] - dx).powi(2) + p[1] * p[1] + p[2] * p[2]).sqrt();
            if r(1.5) <= 4.0 {
                -1000
            } else if r(0.0) <= 7.0 {
                30
            } else {
                -850
            }
        });
        let seg = segment(&vol, [1.5, 0.0, 0.0]).unwrap();
        let expected = 4.0 / 3.0 * std::f64::consts::PI * 343.0;
        let ratio = seg.volume_mm3() / expected;
        assert!((0.8..1.2).contains(&ratio), "volume ratio {ratio}");
        assert!(
            seg.inscribed_radius_mm > 2.5,
            "radius {}",
            seg.inscribed_radius_mm
        );
    }

    #[test]
    fn holes_are_filled_slice_by_slice() {
        // One 5×5 slice: a ring with a one-pixel hole, and an open bay that reaches the border.
        #[rustfmt::skip]
        let mut mask = [
            0, 0, 0, 0, 0,
            0, 1, 1, 1, 0,
            0, 1, 0, 1, 0,
            0, 1, 1, 1, 0,
            0, 1, 0, 1, 0,
        ].map(|v| v == 1);
        fill_holes_per_slice(&mut mask, [5, 5, 1]);
        assert!(mask[2 + 5 * 2], "the enclosed pixel is filled");
        assert!(!mask[2 + 5 * 4], "the bay open to the border is not");
        assert_eq!(mask.iter().filter(|&&m| m).count(), 11);
    }

    #[test]
    fn nothing_dense_near_the_seed_is_no_finding() {
        let vol = ball(3.0, 30, [1.0, 1.0, 1.0]);
        assert!(segment(&vol, [0.0, 15.0, 10.0]).is_none());
        assert!(segment(&vol, [1e5, 0.0, 0.0]).is_none());
    }
}
