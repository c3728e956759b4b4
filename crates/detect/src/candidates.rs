//! Candidate nodules: deterministic, multi-scale blob detection inside the lung mask.
//!
//! At each scale `D` (3.5 to 56 mm) the response at a voxel is the mean HU of a core well inside
//! a ball of diameter `D`, minus the brightest of 13 lines through it (the axes, the face and the
//! space diagonals), a line being as bright as the darker of two small boxes 0.75 `D` out on
//! either side. Means are over the lung mask only, so the chest wall and the mediastinum neither
//! add an edge nor hide a nodule against them. A ball is darker than its core along every line; a
//! vessel is as bright as itself along the line it runs on; a nodule with one vessel attached
//! keeps a dark side on every line. Local maxima of every scale are scored by the response
//! weighted by how isolated the blob stands (at ≤ 14 mm, where vessels are the confusion),
//! suppressed within half the diameter of a better-scored one, the best few of each scale
//! above 10 mm kept for masses, and at most [`MAX_CANDIDATES`] returned, each centre refined
//! to the centre of density of the source voxels. No marks, no randomness: the same volume
//! gives the same candidates on every platform.

use nodulens_core::Volume;
use serde::{Deserialize, Serialize};

use crate::integral::SummedVolume;
use crate::lung::LungMask;

/// Blob diameters looked for, mm: from the smallest nodule Lung-RADS counts to masses.
pub const SCALES_MM: [f64; 9] = [3.5, 5.0, 7.0, 10.0, 14.0, 20.0, 28.0, 40.0, 56.0];
/// Weakest response kept, HU (a faint ground-glass nodule gives 150–250).
pub const MIN_RESPONSE_HU: i16 = 50;
/// A blob's centre box must average at least this (HU): denser than aerated lung.
const MIN_CENTRE_HU: i16 = -800;
/// Below this (HU) a voxel adds nothing to a candidate's centre of density.
const REFINE_FLOOR_HU: i16 = -700;
/// How much a structure running through a blob lowers its rank.
const ISOLATION_POWER: f64 = 2.0;
/// Only at scales up to this (mm), where vessels are what a blob is confused with (at 14 mm,
/// hilar branchings still outnumber nodules); a mass has structures running through it and
/// keeps its full response.
const ISOLATION_UP_TO_MM: f64 = 14.0;
/// Scales above this (mm) each keep at least [`LARGE_SCALE_SHARE`] of their best.
const LARGE_SCALE_ABOVE_MM: f64 = 10.0;
/// Scales above [`LARGE_SCALE_ABOVE_MM`] each keep at least this many of their best, so the
/// few large lesions of a scan are never crowded out by the many small blobs.
const LARGE_SCALE_SHARE: usize = 10;
/// Most candidates per scan.
pub const MAX_CANDIDATES: usize = 300;
/// A kept candidate suppresses weaker ones closer than this fraction of its own diameter.
const SUPPRESSION: f64 = 0.5;

/// A place worth scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// LPS mm.
    pub center_mm: [f64; 3],
    /// The nearest voxel of the volume, `[column, row, slice]`.
    pub center_voxel: [usize; 3],
    /// Diameter of the scale that found it, mm.
    pub scale_mm: f64,
    /// How much denser the blob is than its surroundings (HU), weighted down at small scales
    /// by how much a structure runs through it (a vessel): what candidates are ranked by.
    pub score: i16,
}

/// Euclidean distance of two points, mm.
pub fn distance_mm(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt()
}

impl Candidate {
    /// Distance from the candidate's centre to `p` (LPS mm).
    pub fn distance_mm(&self, p: [f64; 3]) -> f64 {
        distance_mm(self.center_mm, p)
    }

    /// Whether `other` is the same candidate: same voxel, scale and score, the centre within
    /// `tolerance_mm` along each axis (one build held to another's output).
    pub fn same_as(&self, other: &Candidate, tolerance_mm: f64) -> bool {
        (0..3).all(|a| (self.center_mm[a] - other.center_mm[a]).abs() < tolerance_mm)
            && self.center_voxel == other.center_voxel
            && self.scale_mm == other.scale_mm
            && self.score == other.score
    }
}

/// A local maximum of one scale, on the working grid.
#[derive(Debug, Clone, Copy)]
struct Peak {
    at: [usize; 3],
    scale: usize,
    /// Core minus brightest line, HU: what local maxima go by.
    response: i16,
    /// The response weighted by isolation: what suppression and the final ranking go by.
    score: i16,
}

/// The candidates of `volume` inside `mask` (see the module's description), strongest first:
/// at most [`MAX_CANDIDATES`].
pub fn candidates(volume: &Volume, mask: &LungMask) -> Vec<Candidate> {
    candidates_up_to(volume, mask, MAX_CANDIDATES)
}

/// [`candidates`] with another bound (for measuring what a larger budget would find).
pub fn candidates_up_to(volume: &Volume, mask: &LungMask, max: usize) -> Vec<Candidate> {
    let grid = mask.grid();
    let inside = mask.voxels();
    let Some((lo, hi)) = bounds(grid.dims(), inside) else {
        return Vec::new();
    };
    let (table, centres) = {
        // Averaged again rather than kept from the lung mask: holding the working grid between
        // the stages would cost its bytes again at the peak (the memory goal is 2× the volume).
        let hu = grid.resample(volume);
        (
            SummedVolume::new(&hu, inside, grid.dims(), lo, hi),
            Centres::new(&hu, inside, grid.dims()),
        )
    };
    let spacing = grid.spacing();
    let mut peaks = Vec::new();
    let mut probes: Vec<Probe> = Vec::new();
    for (scale, &d) in SCALES_MM.iter().enumerate() {
        let probe = Probe::new(d / 2.0, spacing);
        // Scales that come out the same on this grid are looked at once; slabs beyond the
        // exact range of the table's 32-bit sums are left out rather than summed wrongly.
        if probes.contains(&probe) || probe.largest_box() > SummedVolume::MAX_BOX_VOXELS {
            continue;
        }
        local_maxima(
            &table,
            grid.dims(),
            &centres,
            lo,
            hi,
            &probe,
            scale,
            &mut peaks,
        );
        probes.push(probe);
    }
    let survivors = suppress(&mut peaks, spacing);
    let kept = share_among_scales(&survivors, max);
    kept.iter()
        .map(|peak| {
            let source = refine(
                volume,
                mask,
                grid.to_source(peak.at.map(|v| v as f64)),
                SCALES_MM[peak.scale] / 2.0,
            );
            let center_voxel = std::array::from_fn(|a| {
                (source[a].round().max(0.0) as usize).min(volume.dims()[a] - 1)
            });
            Candidate {
                center_mm: volume.voxel_to_world(source),
                center_voxel,
                scale_mm: SCALES_MM[peak.scale],
                score: peak.score,
            }
        })
        .collect()
}

/// The centre of density near `centre` (source voxel coordinates): the mean position of the
/// voxels within `radius_mm` and inside the mask, each weighted by how far above aerated lung it
/// is (so the chest wall does not pull it out of the lungs). A peak of the
/// box filters can sit off a blob's centre by a working voxel or two (more where a vessel
/// joins it); the source voxels put it back.
fn refine(volume: &Volume, mask: &LungMask, centre: [f64; 3], radius_mm: f64) -> [f64; 3] {
    let grid = mask.grid();
    let spacing = volume.spacing();
    let dims = volume.dims();
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    for a in 0..3 {
        let reach = radius_mm / spacing[a];
        lo[a] = (centre[a] - reach).ceil().max(0.0) as usize;
        hi[a] = ((centre[a] + reach).floor().max(-1.0) + 1.0).min(dims[a] as f64) as usize;
        if lo[a] >= hi[a] {
            return centre;
        }
    }
    let (mut total, mut moment) = (0.0, [0.0; 3]);
    for k in lo[2]..hi[2] {
        for j in lo[1]..hi[1] {
            for i in lo[0]..hi[0] {
                let d2: f64 = [i, j, k]
                    .iter()
                    .enumerate()
                    .map(|(a, &v)| ((v as f64 - centre[a]) * spacing[a]).powi(2))
                    .sum();
                if d2 > radius_mm * radius_mm {
                    continue;
                }
                let w = grid.from_source([i as f64, j as f64, k as f64]);
                let cell: [usize; 3] = std::array::from_fn(|a| {
                    (w[a].round().max(0.0) as usize).min(grid.dims()[a] - 1)
                });
                if !mask.voxels()[grid.index(cell[0], cell[1], cell[2])] {
                    continue;
                }
                let hu = volume.voxels()[volume.index(i, j, k)];
                let weight = f64::from(hu.clamp(REFINE_FLOOR_HU, 100) - REFINE_FLOOR_HU);
                total += weight;
                moment[0] += weight * i as f64;
                moment[1] += weight * j as f64;
                moment[2] += weight * k as f64;
            }
        }
    }
    if total <= 0.0 {
        return centre;
    }
    moment.map(|m| m / total)
}

/// Non-maximum suppression, best scored first (it sorts `peaks` so): a peak survives unless
/// a better survivor's ball (half its scale's diameter, [`SUPPRESSION`]) holds it. So a strong
/// vessel suppresses only its own small neighbourhood, never a weaker mass around it, while a
/// mass suppresses the texture inside it. Survivors are looked up by scale in a grid of cells
/// as large as the scale's reach.
fn suppress(peaks: &mut [Peak], spacing: [f64; 3]) -> Vec<Peak> {
    // By score, as the final ranking goes: were the raw response to decide, a vessel running
    // into a faint nodule (a strong response, a poor score) would suppress the nodule's own
    // peak at a larger scale and then rank too low to be kept itself. Ties by scale and
    // position, so the order never depends on anything else.
    peaks.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(a.scale.cmp(&b.scale))
            .then(a.at[2].cmp(&b.at[2]))
            .then(a.at[1].cmp(&b.at[1]))
            .then(a.at[0].cmp(&b.at[0]))
    });
    use std::collections::HashMap;
    use std::hash::BuildHasherDefault;
    type Cells = HashMap<[i64; 3], Vec<[f64; 3]>, BuildHasherDefault<CellHasher>>;
    let mm = |p: &Peak| -> [f64; 3] { std::array::from_fn(|a| p.at[a] as f64 * spacing[a]) };
    let reach: Vec<f64> = SCALES_MM.iter().map(|d| SUPPRESSION * d).collect();
    let mut cells: Vec<Cells> = vec![Cells::default(); SCALES_MM.len()];
    let mut out = Vec::new();
    for peak in peaks.iter() {
        let p = mm(peak);
        let clear = (0..SCALES_MM.len()).all(|s| {
            let cell: [i64; 3] = std::array::from_fn(|a| (p[a] / reach[s]).floor() as i64);
            let mut neighbours = (-1..=1)
                .flat_map(|dz| (-1..=1).flat_map(move |dy| (-1..=1).map(move |dx| [dx, dy, dz])));
            neighbours.all(|d| {
                let key = std::array::from_fn(|a| cell[a] + d[a]);
                cells[s].get(&key).is_none_or(|kept| {
                    kept.iter().all(|q| {
                        (0..3).map(|a| (p[a] - q[a]).powi(2)).sum::<f64>() >= reach[s] * reach[s]
                    })
                })
            })
        });
        if clear {
            let s = peak.scale;
            let cell = std::array::from_fn(|a| (p[a] / reach[s]).floor() as i64);
            cells[s].entry(cell).or_default().push(p);
            out.push(*peak);
        }
    }
    out
}

/// A multiplicative hash for grid cells: the keys are small integer triples made by this
/// crate, so SipHash's protection against chosen keys buys nothing and costs a twentieth of
/// the candidates' time.
#[derive(Default)]
struct CellHasher(u64);

impl std::hash::Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = (self.0 ^ v as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// At most `max` of the survivors: first the strongest [`LARGE_SCALE_SHARE`] of each scale
/// above [`LARGE_SCALE_ABOVE_MM`] (the few large lesions of a scan must not be crowded out by
/// the many small blobs), then the strongest of the rest. Strongest first.
fn share_among_scales(survivors: &[Peak], max: usize) -> Vec<Peak> {
    let mut survivors = survivors.to_vec();
    survivors.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.response.cmp(&a.response))
            .then(a.scale.cmp(&b.scale))
            .then(a.at.cmp(&b.at))
    });
    let mut taken = vec![false; survivors.len()];
    let mut per_scale = vec![0usize; SCALES_MM.len()];
    let mut count = 0;
    for (n, p) in survivors.iter().enumerate() {
        if SCALES_MM[p.scale] > LARGE_SCALE_ABOVE_MM
            && per_scale[p.scale] < LARGE_SCALE_SHARE
            && count < max
        {
            per_scale[p.scale] += 1;
            taken[n] = true;
            count += 1;
        }
    }
    for t in taken.iter_mut() {
        if count >= max {
            break;
        }
        if !*t {
            *t = true;
            count += 1;
        }
    }
    survivors
        .iter()
        .zip(taken)
        .filter(|(_, t)| *t)
        .map(|(p, _)| *p)
        .collect()
}

/// The boxes one scale looks at, in voxels of the working grid: a core well inside a ball of
/// the scale's radius `r`, and 26 small boxes around it, 1.5 r out along each of the 13 lines
/// through the centre (the axes, the face and the space diagonals), both ways.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    radius_mm: f64,
    core: [i64; 3],
    cross: [i64; 3],
    /// One offset per line; the box on the other side is at minus it. The three axes first.
    lines: Vec<[i64; 3]>,
}

impl Probe {
    fn new(radius_mm: f64, spacing: [f64; 3]) -> Probe {
        // A cube of half-side 0.6 r lies within the ball: its mean is the blob's density.
        let core =
            std::array::from_fn(|a| (0.6 * radius_mm / spacing[a] - 0.5).round().max(0.0) as i64);
        let cross =
            std::array::from_fn(|a| (0.5 * radius_mm / spacing[a] - 0.5).round().max(0.0) as i64);
        let mut directions: Vec<[i64; 3]> = vec![[1, 0, 0], [0, 1, 0], [0, 0, 1]];
        for dz in -1..=1i64 {
            for dy in -1..=1i64 {
                for dx in -1..=1i64 {
                    let d = [dx, dy, dz];
                    let nonzero = d.iter().filter(|&&c| c != 0).count();
                    // One of each ± pair: the first non-zero component positive.
                    let first = d.iter().copied().find(|&c| c != 0);
                    if nonzero >= 2 && first == Some(1) {
                        directions.push(d);
                    }
                }
            }
        }
        let mut lines: Vec<[i64; 3]> = Vec::new();
        for d in directions {
            let norm = ((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) as f64).sqrt();
            let offset: [i64; 3] = std::array::from_fn(|a| {
                (d[a] as f64 / norm * 1.5 * radius_mm / spacing[a]).round() as i64
            });
            // Thick slices can fold a line onto another (or onto the centre): look once.
            let reaches_out = (0..3).any(|a| offset[a].abs() > core[a]);
            if reaches_out && !lines.contains(&offset) && !lines.contains(&offset.map(|c| -c)) {
                lines.push(offset);
            }
        }
        Probe {
            radius_mm,
            core,
            cross,
            lines,
        }
    }

    /// Voxels of the largest box summed.
    fn largest_box(&self) -> usize {
        (0..3)
            .map(|a| (2 * self.core[a].max(self.cross[a]) + 1) as usize)
            .product()
    }

    fn mean(&self, table: &SummedVolume, c: [i64; 3], half: [i64; 3]) -> Option<f64> {
        table.mean(
            std::array::from_fn(|a| c[a] - half[a]),
            std::array::from_fn(|a| c[a] + half[a] + 1),
        )
    }
}

/// The bounding box (`lo..hi`) of the mask, or `None` when it is empty.
fn bounds(dims: [usize; 3], inside: &[bool]) -> Option<([usize; 3], [usize; 3])> {
    let mut lo = dims;
    let mut hi = [0usize; 3];
    for (at, _) in inside.iter().enumerate().filter(|(_, m)| **m) {
        let v = [
            at % dims[0],
            (at / dims[0]) % dims[1],
            at / (dims[0] * dims[1]),
        ];
        for a in 0..3 {
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a] + 1);
        }
    }
    (hi[0] > 0).then_some((lo, hi))
}

/// Where a candidate's centre may be, one bit a working voxel: one voxel in from the mask's
/// edge (a rim voxel of tissue would look like a blob of its own) and denser than aerated lung
/// itself (most of the lungs, skipped at every scale before any box is summed).
struct Centres(Vec<u64>);

impl Centres {
    fn new(hu: &[i16], inside: &[bool], dims: [usize; 3]) -> Centres {
        let mut bits = vec![0u64; hu.len().div_ceil(64)];
        let [nx, ny, _] = dims;
        for (at, (&v, &m)) in hu.iter().zip(inside).enumerate() {
            let (i, j) = (at % nx, (at / nx) % ny);
            let interior = m
                && v >= MIN_CENTRE_HU
                && i > 0
                && j > 0
                && i + 1 < nx
                && j + 1 < ny
                && inside[at - 1]
                && inside[at + 1]
                && inside[at - nx]
                && inside[at + nx];
            if interior {
                bits[at / 64] |= 1 << (at % 64);
            }
        }
        Centres(bits)
    }

    fn allows(&self, at: usize) -> bool {
        self.0[at / 64] >> (at % 64) & 1 == 1
    }
}

/// The blob response at `v`: the core's mean HU minus, over the 13 lines through it, the
/// brightest line, a line being as bright as the darker of its two boxes. A ball is darker than
/// its core along every line; a vessel is as bright as itself both ways along the line it runs
/// on, which takes it out, while a nodule with one vessel attached keeps its response (the
/// other way is dark). `None` where the centre is too dark to be a blob, or the response is
/// below [`MIN_RESPONSE_HU`] already along the axes (lines only lower it).
fn blob_response(table: &SummedVolume, v: [usize; 3], probe: &Probe) -> Option<(i16, i16)> {
    let c = v.map(|x| x as i64);
    let core = probe.mean(table, c, probe.core)?;
    if core < f64::from(MIN_CENTRE_HU) {
        return None;
    }
    let mut brightest = f64::NEG_INFINITY;
    let mut darkest = f64::INFINITY;
    for line in &probe.lines {
        let ahead = probe.mean(table, std::array::from_fn(|a| c[a] + line[a]), probe.cross);
        let behind = probe.mean(table, std::array::from_fn(|a| c[a] - line[a]), probe.cross);
        let darker = match (ahead, behind) {
            (Some(a), Some(b)) => a.min(b),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => continue,
        };
        brightest = brightest.max(darker);
        darkest = darkest.min(darker);
        // The brightest line only gets brighter: stop as soon as the blob is out.
        if core - brightest < f64::from(MIN_RESPONSE_HU) {
            return None;
        }
    }
    if brightest == f64::NEG_INFINITY {
        return None;
    }
    // How alone the blob stands: 1 when its brightest line is as dark as its darkest (a ball
    // in plain lung), lower as structures run through it.
    let isolation = ((core - brightest) / (core - darkest).max(1.0)).clamp(0.0, 1.0);
    let response = core - brightest;
    if response < f64::from(MIN_RESPONSE_HU) {
        return None;
    }
    let power = if probe.radius_mm * 2.0 <= ISOLATION_UP_TO_MM {
        ISOLATION_POWER
    } else {
        0.0
    };
    let score = response * isolation.powf(power);
    let to_i16 = |v: f64| v.round().clamp(1.0, 32767.0) as i16;
    Some((to_i16(response), to_i16(score)))
}

/// Pushes every local maximum (over its 26 neighbours) of one scale's response that reaches
/// [`MIN_RESPONSE_HU`]. Responses are computed a slice at a time and kept for three slices.
#[allow(clippy::too_many_arguments)]
fn local_maxima(
    table: &SummedVolume,
    dims: [usize; 3],
    centres: &Centres,
    lo: [usize; 3],
    hi: [usize; 3],
    probe: &Probe,
    scale: usize,
    peaks: &mut Vec<Peak>,
) {
    let (wx, wy) = (hi[0] - lo[0], hi[1] - lo[1]);
    // Large scales are looked at every `step` voxels in-plane (a quarter of the core's width):
    // their blobs span many voxels, and the centre is refined afterwards.
    let step = (probe.core[0].min(probe.core[1]) / 2).max(1) as usize;
    let response_slice = |k: usize, out: &mut Vec<i16>| {
        out.clear();
        out.resize(wx * wy, i16::MIN);
        for j in (0..wy).step_by(step) {
            for i in (0..wx).step_by(step) {
                let v = [lo[0] + i, lo[1] + j, k];
                if !centres.allows(v[0] + dims[0] * (v[1] + dims[1] * k)) {
                    continue;
                }
                let Some((r, _)) = blob_response(table, v, probe) else {
                    continue;
                };
                out[i + wx * j] = r;
            }
        }
    };
    let mut window: [Vec<i16>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    response_slice(lo[2], &mut window[1]);
    window[0] = vec![i16::MIN; wx * wy];
    for k in lo[2]..hi[2] {
        if k + 1 < hi[2] {
            response_slice(k + 1, &mut window[2]);
        } else {
            window[2].clear();
            window[2].resize(wx * wy, i16::MIN);
        }
        for j in (0..wy).step_by(step) {
            for i in (0..wx).step_by(step) {
                let r = window[1][i + wx * j];
                if r == i16::MIN {
                    continue;
                }
                let mut is_max = true;
                'neighbours: for slice in &window {
                    for jj in (j.saturating_sub(step)..(j + step + 1).min(wy)).step_by(step) {
                        for ii in (i.saturating_sub(step)..(i + step + 1).min(wx)).step_by(step) {
                            if slice[ii + wx * jj] > r {
                                is_max = false;
                                break 'neighbours;
                            }
                        }
                    }
                }
                if is_max {
                    let at = [lo[0] + i, lo[1] + j, k];
                    let score = blob_response(table, at, probe).map_or(r, |(_, score)| score);
                    peaks.push(Peak {
                        at,
                        scale,
                        response: r,
                        score,
                    });
                }
            }
        }
        window.rotate_left(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(at: [usize; 3], diameter_mm: f64, response: i16, score: i16) -> Peak {
        let scale = SCALES_MM
            .iter()
            .position(|&d| d == diameter_mm)
            .expect("a scale");
        Peak {
            at,
            scale,
            response,
            score,
        }
    }

    /// LIDC-IDRI-0476's 11 mm ground-glass nodule, as the working grid saw it: a vessel running
    /// into it gave a 7 mm peak of strong response and poor score 3 mm from the nodule's own
    /// 14 mm peak.
    #[test]
    fn a_vessel_into_a_faint_nodule_does_not_suppress_the_nodules_better_scored_peak() {
        let spacing = [1.25; 3];
        let vessel = peak([119, 221, 105], 7.0, 287, 126);
        let nodule = peak([120, 220, 107], 14.0, 215, 215);
        let mut peaks = vec![vessel, nodule];
        let survivors = suppress(&mut peaks, spacing);
        assert_eq!(survivors.len(), 1, "{survivors:?}");
        assert_eq!(survivors[0].at, nodule.at);
        // Far apart, both stay, the better scored first.
        let mut peaks = vec![vessel, peak([160, 220, 107], 14.0, 215, 215)];
        let survivors = suppress(&mut peaks, spacing);
        assert_eq!(survivors.len(), 2);
        assert_eq!(survivors[0].scale, nodule.scale);
    }
}
