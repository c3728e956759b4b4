//! The 3-D lung mask: air inside the body, kept where it forms a lung-sized, lung-dense
//! region, the trachea and main bronchi taken out, then closed and filled slice by slice so
//! that vessels, nodules and masses against the pleura lie inside it.
//!
//! On the [working grid](crate::Grid). Per-slice steps (outside air, airways, closing, holes)
//! work whatever the slice thickness (0.6–10 mm) and however much of the chest is covered;
//! only the choice of which air is lung looks at the whole volume.

use nodulens_core::{IntensityUnits, Volume, Warning, WarningKind};
use serde::Serialize;

use crate::grid::Grid;
use crate::morphology;

/// Air, for the mask: lung parenchyma is −950…−700 HU, soft tissue −100…+100.
const AIR_HU: i16 = -400;
/// An air region smaller than this is not a lung (bowel gas, a sinus, foam in the table).
const MIN_REGION_ML: f64 = 15.0;
/// Nor is one whose mean is this close to pure air: parenchyma holds vessels and tissue;
/// stomach and bowel gas, sinuses and airways outside the lungs do not.
const MAX_REGION_MEAN_HU: f64 = -970.0;
/// Nor is one smaller than this fraction of the largest (a lung on its own is ≥ 1 l).
const MIN_REGION_FRACTION: f64 = 0.05;
/// Less lung than this in the whole scan: not a chest CT (or no lungs in the field).
pub const MIN_LUNG_ML: f64 = 50.0;
/// A slice's air region that is this small, this dark and this central is an airway
/// (trachea, main bronchus) standing apart from the lungs.
const AIRWAY_MAX_AREA_MM2: f64 = 1200.0;
const AIRWAY_MAX_MEAN_HU: f64 = -900.0;
const AIRWAY_MAX_OFFSET: f64 = 0.15;
/// Closing radius: bays in the lung outline up to twice this wide (a nodule or mass on the
/// pleura, the hilum's vessels) are filled.
pub const CLOSING_MM: f64 = 12.0;
/// Slices farther apart than this (mm) are too thick for small nodules to be measured well.
pub const THICK_SLICES_MM: f64 = 2.5;
/// The lungs run off the first or last slice when that slice holds more than this fraction
/// of the largest slice's lung.
const PARTIAL_COVERAGE_FRACTION: f64 = 0.15;

/// Which working voxels are lung, and how much lung there is.
#[derive(Debug, Clone)]
pub struct LungMask {
    grid: Grid,
    inside: Vec<bool>,
    volume_ml: f64,
    warnings: Vec<Warning>,
}

/// What a mask says of the scan, for people and for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LungSummary {
    pub volume_ml: f64,
    pub found: bool,
    /// Lung voxels' share of each end slice's largest, as `[first, last]`.
    pub end_fractions: [f64; 2],
}

impl LungMask {
    /// The mask of a crop cut around a nodule (too small to find lungs in, with lung up to
    /// its border): the air of each slice, closed and filled as the lungs of a whole scan are,
    /// so that a nodule against the chest wall is inside and the wall is not.
    pub fn for_crop(volume: &Volume) -> LungMask {
        let grid = Grid::for_volume(volume.dims(), volume.spacing());
        let hu = grid.resample(volume);
        let [nx, ny, nz] = grid.dims();
        let mut inside: Vec<bool> = hu.iter().map(|&v| v < AIR_HU).collect();
        for k in 0..nz {
            close_each_region(
                &mut inside[nx * ny * k..nx * ny * (k + 1)],
                nx,
                ny,
                [grid.spacing()[0], grid.spacing()[1]],
            );
        }
        let volume_ml = inside.iter().filter(|&&m| m).count() as f64 * grid.voxel_ml();
        LungMask {
            grid,
            inside,
            volume_ml,
            warnings: Vec::new(),
        }
    }

    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// One flag per working voxel, in the grid's order.
    pub fn voxels(&self) -> &[bool] {
        &self.inside
    }

    pub fn volume_ml(&self) -> f64 {
        self.volume_ml
    }

    /// Whether there is enough lung to analyse.
    pub fn found(&self) -> bool {
        self.volume_ml >= MIN_LUNG_ML
    }

    /// No lungs, partial coverage.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Whether world point `p` (LPS mm) of `volume` lies in the lungs.
    pub fn contains(&self, volume: &Volume, p: [f64; 3]) -> bool {
        self.contains_voxel(volume.world_to_voxel(p))
    }

    /// Whether the point at voxel coordinates `v` of the volume lies in the lungs.
    pub fn contains_voxel(&self, v: [f64; 3]) -> bool {
        self.grid
            .voxel_of_source(v)
            .is_some_and(|[i, j, k]| self.inside[self.grid.index(i, j, k)])
    }

    pub fn summary(&self) -> LungSummary {
        let [nx, ny, nz] = self.grid.dims();
        let area = |k: usize| {
            self.inside[nx * ny * k..nx * ny * (k + 1)]
                .iter()
                .filter(|&&m| m)
                .count()
        };
        let largest = (0..nz).map(area).max().unwrap_or(0).max(1) as f64;
        LungSummary {
            volume_ml: self.volume_ml,
            found: self.found(),
            end_fractions: [area(0) as f64 / largest, area(nz - 1) as f64 / largest],
        }
    }
}

/// The lungs of `volume` (see the module's description). Never fails: a volume without lungs
/// gives an empty mask with a [`WarningKind::NoLungs`] warning.
pub fn lung_mask(volume: &Volume) -> LungMask {
    let grid = Grid::for_volume(volume.dims(), volume.spacing());
    if volume.units() != IntensityUnits::Hounsfield {
        return no_lungs(
            grid,
            "the values are not Hounsfield units, so lungs cannot be found",
        );
    }
    let hu = grid.resample(volume);
    let [nx, ny, nz] = grid.dims();
    let area = nx * ny;
    let pixel_mm2 = grid.spacing()[0] * grid.spacing()[1];

    // Air inside the body, slice by slice (air reached from the image border is outside).
    let mut inner = vec![false; grid.len()];
    let mut body_x = vec![(0.0f64, 0.0f64); nz]; // each slice's body centre and width, voxels
    for k in 0..nz {
        let slice = &hu[area * k..area * (k + 1)];
        let air: Vec<bool> = slice.iter().map(|&v| v < AIR_HU).collect();
        let body = body_outline(&air, nx, ny);
        let (mut lo, mut hi, mut sum, mut n) = (nx, 0, 0.0, 0.0);
        for (at, (&a, &b)) in air.iter().zip(&body).enumerate() {
            inner[area * k + at] = a && b;
            if b {
                let i = at % nx;
                lo = lo.min(i);
                hi = hi.max(i);
                sum += i as f64;
                n += 1.0;
            }
        }
        body_x[k] = if n > 0.0 {
            (sum / n, (hi.saturating_sub(lo) + 1) as f64)
        } else {
            (0.0, 0.0)
        };
    }

    let mut lung = lung_regions(&grid, &hu, &inner);
    drop(inner);

    // Airways that stand apart from the lungs in a slice, then closing and holes.
    for k in 0..nz {
        let slice = &mut lung[area * k..area * (k + 1)];
        let (centre, width) = body_x[k];
        for pixels in morphology::components(slice, nx, ny) {
            let mm2 = pixels.len() as f64 * pixel_mm2;
            let mean = pixels
                .iter()
                .map(|&p| f64::from(hu[area * k + p]))
                .sum::<f64>()
                / pixels.len() as f64;
            let cx = pixels.iter().map(|&p| (p % nx) as f64).sum::<f64>() / pixels.len() as f64;
            let central = (cx - centre).abs() <= AIRWAY_MAX_OFFSET * width;
            if mm2 < AIRWAY_MAX_AREA_MM2 && mean < AIRWAY_MAX_MEAN_HU && central {
                pixels.iter().for_each(|&p| slice[p] = false);
            }
        }
        close_each_region(slice, nx, ny, [grid.spacing()[0], grid.spacing()[1]]);
    }

    let count = lung.iter().filter(|&&m| m).count();
    let volume_ml = count as f64 * grid.voxel_ml();
    let mut mask = LungMask {
        grid,
        inside: lung,
        volume_ml,
        warnings: Vec::new(),
    };
    if !mask.found() {
        return no_lungs(
            mask.grid,
            format!("no lungs found ({volume_ml:.0} ml of lung-like air): is this a chest CT?"),
        );
    }
    let thickness = volume.spacing()[2];
    if thickness > THICK_SLICES_MM {
        mask.warnings.push(Warning::new(
            WarningKind::ThickSlices,
            format!(
                "slices are {thickness:.1} mm apart: nodules smaller than that may be missed, \
                 and sizes are less reliable (Lung-RADS assumes ≤ {THICK_SLICES_MM} mm)"
            ),
        ));
    }
    let summary = mask.summary();
    if summary
        .end_fractions
        .iter()
        .any(|&f| f > PARTIAL_COVERAGE_FRACTION)
    {
        let ends: Vec<&str> = [("first", 0), ("last", 1)]
            .iter()
            .filter(|(_, e)| summary.end_fractions[*e] > PARTIAL_COVERAGE_FRACTION)
            .map(|(name, _)| *name)
            .collect();
        mask.warnings.push(Warning::new(
            WarningKind::PartialCoverage,
            format!(
                "the lungs run off the {} slice: the chest is only partly covered",
                ends.join(" and the ")
            ),
        ));
    }
    mask
}

/// The body in one slice: the largest region that is not air, with its holes (the lungs, the
/// airways) filled. The table and anything else apart from the patient are left out.
fn body_outline(air: &[bool], nx: usize, ny: usize) -> Vec<bool> {
    let tissue: Vec<bool> = air.iter().map(|&a| !a).collect();
    let mut body = vec![false; nx * ny];
    if let Some(largest) = morphology::components(&tissue, nx, ny)
        .into_iter()
        .max_by_key(|c| c.len())
    {
        largest.into_iter().for_each(|p| body[p] = true);
        morphology::fill_holes(&mut body, nx, ny);
    }
    body
}

/// Closes each lung region of a slice on its own and fills its holes: bays of one lung's
/// outline (a nodule on the pleura, the hilum) are filled, the mediastinum between the two
/// lungs is not.
fn close_each_region(slice: &mut [bool], nx: usize, ny: usize, spacing: [f64; 2]) {
    let margin: [usize; 2] = std::array::from_fn(|a| (CLOSING_MM / spacing[a]).ceil() as usize + 1);
    let mut out = vec![false; nx * ny];
    for pixels in morphology::components(slice, nx, ny) {
        let (mut x0, mut y0, mut x1, mut y1) = (nx, ny, 0, 0);
        for &p in &pixels {
            let (i, j) = (p % nx, p / nx);
            x0 = x0.min(i);
            y0 = y0.min(j);
            x1 = x1.max(i + 1);
            y1 = y1.max(j + 1);
        }
        // The region's box with room for the disc on every side (beyond the image border
        // too, so that closing does not stick to it).
        let (bx0, by0) = (x0 as i64 - margin[0] as i64, y0 as i64 - margin[1] as i64);
        let (bw, bh) = (x1 - x0 + 2 * margin[0], y1 - y0 + 2 * margin[1]);
        let mut local = vec![false; bw * bh];
        for &p in &pixels {
            let (i, j) = ((p % nx) as i64 - bx0, (p / nx) as i64 - by0);
            local[i as usize + bw * j as usize] = true;
        }
        let mut closed = morphology::close(&local, bw, bh, spacing, CLOSING_MM);
        morphology::fill_holes(&mut closed, bw, bh);

        for lj in 0..bh {
            for li in 0..bw {
                let (i, j) = (li as i64 + bx0, lj as i64 + by0);
                if closed[li + bw * lj]
                    && (0..nx as i64).contains(&i)
                    && (0..ny as i64).contains(&j)
                {
                    out[i as usize + nx * j as usize] = true;
                }
            }
        }
    }
    slice.copy_from_slice(&out);
}

fn no_lungs(grid: Grid, why: impl Into<String>) -> LungMask {
    let inside = vec![false; grid.len()];
    LungMask {
        grid,
        inside,
        volume_ml: 0.0,
        warnings: vec![Warning::new(WarningKind::NoLungs, why)],
    }
}

/// The 6-connected regions of `air` that are lung-sized and lung-dense.
fn lung_regions(grid: &Grid, hu: &[i16], air: &[bool]) -> Vec<bool> {
    let mut lung = vec![false; grid.len()];
    let mut seen = vec![false; grid.len()];
    let mut stack: Vec<u32> = Vec::new();
    let min_voxels = (MIN_REGION_ML / grid.voxel_ml()).ceil() as usize;
    let mut regions: Vec<Vec<u32>> = Vec::new();
    for start in 0..grid.len() {
        if !air[start] || seen[start] {
            continue;
        }
        let mut region: Vec<u32> = Vec::new();
        let mut sum = 0i64;
        seen[start] = true;
        stack.push(start as u32);
        while let Some(at) = stack.pop() {
            let at = at as usize;
            region.push(at as u32);
            sum += i64::from(hu[at]);
            morphology::for_each_neighbour(at, grid.dims(), |n| {
                if air[n] && !seen[n] {
                    seen[n] = true;
                    stack.push(n as u32);
                }
            });
        }
        let mean = sum as f64 / region.len() as f64;
        if region.len() >= min_voxels && mean > MAX_REGION_MEAN_HU {
            regions.push(region);
        }
    }
    // Air in the table, the bowel or a sinus beside a lung is a small fraction of it.
    let largest = regions.iter().map(Vec::len).max().unwrap_or(0);
    for region in regions
        .iter()
        .filter(|r| r.len() as f64 >= MIN_REGION_FRACTION * largest as f64)
    {
        region.iter().for_each(|&p| lung[p as usize] = true);
    }
    lung
}
