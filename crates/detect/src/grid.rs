//! The pipeline's working grid: the volume averaged down to about [`WORK_SPACING_MM`] in-plane
//! (and along z where slices are thinner), so that a 512² scan costs a quarter of the memory and
//! time and every scan, whatever its resolution, looks alike to the stages that follow.

use nodulens_core::Volume;

/// Target voxel size of the working grid, mm: fine enough for a 3 mm nodule (two to three
/// voxels across), coarse enough that a whole chest fits in a few tens of megabytes.
pub const WORK_SPACING_MM: f64 = 1.25;

/// How a volume's voxels map onto the working grid: along each axis, source voxel `i` falls into
/// working voxel `floor(i / factor)`; each working voxel is the mean of the source voxels in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    dims: [usize; 3],
    /// Source voxels per working voxel along each axis (≥ 1; not necessarily whole).
    factor: [f64; 3],
    spacing: [f64; 3],
}

impl Grid {
    /// The working grid of a volume of `dims` voxels of `spacing` mm.
    pub fn for_volume(dims: [usize; 3], spacing: [f64; 3]) -> Grid {
        let factor: [f64; 3] = std::array::from_fn(|a| {
            let f = WORK_SPACING_MM / spacing[a];
            // Voxels already near the target (or coarser) are kept as they are.
            if f < 1.25 { 1.0 } else { f }
        });
        let dims = std::array::from_fn(|a| ((dims[a] as f64 / factor[a]).ceil() as usize).max(1));
        let spacing = std::array::from_fn(|a| spacing[a] * factor[a]);
        Grid {
            dims,
            factor,
            spacing,
        }
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Working voxel size, mm.
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }

    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Volume of one working voxel, ml.
    pub fn voxel_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }

    /// The working voxel that source index `i` falls into along `axis`.
    fn cell(&self, axis: usize, i: usize) -> usize {
        ((i as f64 / self.factor[axis]) as usize).min(self.dims[axis] - 1)
    }

    /// Where working voxel coordinate `w` lies in the source volume's voxel coordinates.
    pub fn to_source(&self, w: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|a| (w[a] + 0.5) * self.factor[a] - 0.5)
    }

    /// The working voxel coordinate of a source voxel coordinate.
    pub fn from_source(&self, v: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|a| (v[a] + 0.5) / self.factor[a] - 0.5)
    }

    /// The working voxel holding world point `p` (LPS mm), if it is inside.
    pub fn voxel_of(&self, volume: &Volume, p: [f64; 3]) -> Option<[usize; 3]> {
        self.voxel_of_source(volume.world_to_voxel(p))
    }

    /// The working voxel nearest source voxel coordinates `v`, if inside the grid.
    pub fn voxel_of_source(&self, v: [f64; 3]) -> Option<[usize; 3]> {
        let w = self.from_source(v);
        let mut out = [0usize; 3];
        for a in 0..3 {
            let r = w[a].round();
            if !(r >= 0.0 && r < self.dims[a] as f64) {
                return None;
            }
            out[a] = r as usize;
        }
        Some(out)
    }

    /// Averages `volume` onto this grid (HU, rounded). One pass over the volume, one slice of
    /// sums at a time.
    pub fn resample(&self, volume: &Volume) -> Vec<i16> {
        let [sx, sy, sz] = volume.dims();
        let [nx, ny, nz] = self.dims;
        let map_x: Vec<usize> = (0..sx).map(|i| self.cell(0, i)).collect();
        let map_y: Vec<usize> = (0..sy).map(|j| self.cell(1, j)).collect();
        let mut count_x = vec![0u32; nx];
        map_x.iter().for_each(|&w| count_x[w] += 1);
        let mut count_y = vec![0u32; ny];
        map_y.iter().for_each(|&w| count_y[w] += 1);
        let mut out = vec![0i16; self.len()];
        let mut sums = vec![0i64; nx * ny];
        let mut k = 0usize;
        for wk in 0..nz {
            sums.iter_mut().for_each(|s| *s = 0);
            let mut slices = 0u32;
            while k < sz && self.cell(2, k) == wk {
                let slice = &volume.voxels()[sx * sy * k..sx * sy * (k + 1)];
                for (j, row) in slice.chunks_exact(sx).enumerate() {
                    let base = nx * map_y[j];
                    for (i, &v) in row.iter().enumerate() {
                        sums[base + map_x[i]] += i64::from(v);
                    }
                }
                slices += 1;
                k += 1;
            }
            let slices = slices.max(1);
            let target = &mut out[nx * ny * wk..nx * ny * (wk + 1)];
            for wj in 0..ny {
                for wi in 0..nx {
                    let n = i64::from(count_x[wi] * count_y[wj] * slices).max(1);
                    let s = sums[wi + nx * wj];
                    // Rounded to nearest; the mean of int16 values is an int16.
                    target[wi + nx * wj] = ((2 * s + n).div_euclid(2 * n)) as i16;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodulens_core::preprocess::synthetic_volume;

    #[test]
    fn fine_voxels_are_averaged_and_coarse_ones_kept() {
        let grid = Grid::for_volume([512, 512, 133], [0.625, 0.625, 2.5]);
        assert_eq!(grid.dims(), [256, 256, 133]);
        assert_eq!(grid.spacing(), [1.25, 1.25, 2.5]);
        let grid = Grid::for_volume([512, 512, 300], [0.7, 0.7, 0.6]);
        assert_eq!(grid.dims()[0], (512.0f64 * 0.7 / 1.25).ceil() as usize);
        assert!((grid.spacing()[2] - 1.25).abs() < 1e-9);
    }

    #[test]
    fn resampling_keeps_means_and_world_positions() {
        let vol = synthetic_volume(
            [8, 6, 4],
            [0.625, 0.625, 2.0],
            [10.0, 20.0, 30.0],
            |i, j, k| (i + 10 * j + 100 * k) as i16,
        );
        let grid = Grid::for_volume(vol.dims(), vol.spacing());
        assert_eq!(grid.dims(), [4, 3, 4]);
        let w = grid.resample(&vol);
        // Working voxel (1, 2, 3) is source voxels i 2..4, j 4..6, k 3: mean 2.5 + 45 + 300.
        assert_eq!(w[grid.index(1, 2, 3)], 348);
        // Its centre is the centre of those source voxels.
        let centre = vol.voxel_to_world(grid.to_source([1.0, 2.0, 3.0]));
        assert_eq!(centre, [10.0 + 2.5 * 0.625, 20.0 + 4.5 * 0.625, 36.0]);
        assert_eq!(grid.voxel_of(&vol, centre), Some([1, 2, 3]));
    }
}
