use serde::{Deserialize, Serialize};

/// The largest volume any reader will allocate: 2^29 voxels, 1 GiB as int16 — four
/// times a 1000-slice 512×512 CT, and still within a browser's 4 GiB wasm memory with
/// room to render. Checked before allocation; [`crate::OpenOptions::max_voxels`] lowers it.
pub const MAX_VOXELS: u64 = 1 << 29;

/// Which reader produced a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Dicom,
    MetaImage,
    Nifti,
    ImageStack,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Dicom => "DICOM",
            Format::MetaImage => "MetaImage",
            Format::Nifti => "NIfTI-1",
            Format::ImageStack => "image stack",
        }
    }
}

/// What the stored integers mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntensityUnits {
    /// Hounsfield units (after the modality rescale).
    Hounsfield,
    /// Plain grey levels (PNG/JPEG stacks): not HU, so HU-based tools must not trust them.
    GreyLevels,
}

/// Descriptive metadata; every field is optional because most formats carry little.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub modality: Option<String>,
    pub series_uid: Option<String>,
    pub series_description: Option<String>,
    pub kernel: Option<String>,
    pub slice_thickness_mm: Option<f64>,
    pub manufacturer: Option<String>,
    pub study_date: Option<String>,
    /// Other series found among the inputs and not shown (DICOM), one line each.
    pub other_series: Vec<String>,
}

/// A scalar CT volume.
///
/// Voxel `(i, j, k)` (column, row, slice) is stored at `i + dims[0] * (j + dims[1] * k)`
/// and sits at `origin + direction · (spacing ⊙ (i, j, k))` in DICOM patient
/// coordinates (LPS, millimetres): x to the patient's left, y posterior, z head-ward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub format: Format,
    /// `[columns, rows, slices]`.
    pub dims: [usize; 3],
    /// Voxel size along the three grid axes, mm.
    pub spacing: [f64; 3],
    /// Centre of voxel (0, 0, 0), LPS mm.
    pub origin: [f64; 3],
    /// Row-major 3×3 matrix whose *columns* are the unit directions of the grid axes in LPS.
    pub direction: [f64; 9],
    pub units: IntensityUnits,
    pub voxels: Vec<i16>,
    pub metadata: Metadata,
    /// Things a reader had to assume or work around, in plain words.
    pub warnings: Vec<String>,
}

/// Everything about a [`Volume`] but its voxels: what a viewer needs before the first
/// slice arrives (the browser worker sends it first, then the slices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeHeader {
    pub format: Format,
    /// `[columns, rows, slices]`.
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    pub direction: [f64; 9],
    pub units: IntensityUnits,
    pub metadata: Metadata,
    pub warnings: Vec<String>,
}

impl VolumeHeader {
    /// Voxels the dimensions call for; `None` if the product overflows.
    pub fn voxel_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The volume with these voxels; `None` if their count does not match the dimensions
    /// (a broken message must not turn into an out-of-bounds slice later).
    pub fn into_volume(self, voxels: Vec<i16>) -> Option<Volume> {
        (self.voxel_count() == Some(voxels.len())).then(|| self.with_voxels(voxels))
    }

    /// For readers, whose voxel count matches by construction.
    pub(crate) fn with_voxels(self, voxels: Vec<i16>) -> Volume {
        Volume {
            format: self.format,
            dims: self.dims,
            spacing: self.spacing,
            origin: self.origin,
            direction: self.direction,
            units: self.units,
            voxels,
            metadata: self.metadata,
            warnings: self.warnings,
        }
    }
}

/// Intensity summary over every voxel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    pub min: i16,
    pub max: i16,
    pub mean: f64,
}

pub(crate) const IDENTITY: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

impl Volume {
    pub fn voxel_count(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Value at a voxel, `None` outside the grid.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<i16> {
        (i < self.dims[0] && j < self.dims[1] && k < self.dims[2])
            .then(|| self.voxels[self.index(i, j, k)])
    }

    /// Continuous voxel coordinates → LPS mm.
    pub fn voxel_to_world(&self, ijk: [f64; 3]) -> [f64; 3] {
        let scaled = [
            ijk[0] * self.spacing[0],
            ijk[1] * self.spacing[1],
            ijk[2] * self.spacing[2],
        ];
        let d = &self.direction;
        std::array::from_fn(|r| {
            self.origin[r]
                + d[3 * r] * scaled[0]
                + d[3 * r + 1] * scaled[1]
                + d[3 * r + 2] * scaled[2]
        })
    }

    /// LPS mm → continuous voxel coordinates. Uses the transpose of the direction
    /// matrix, exact for the orthonormal directions the readers produce.
    pub fn world_to_voxel(&self, lps: [f64; 3]) -> [f64; 3] {
        let rel = [
            lps[0] - self.origin[0],
            lps[1] - self.origin[1],
            lps[2] - self.origin[2],
        ];
        let d = &self.direction;
        std::array::from_fn(|c| {
            (d[c] * rel[0] + d[3 + c] * rel[1] + d[6 + c] * rel[2]) / self.spacing[c]
        })
    }

    pub fn statistics(&self) -> Statistics {
        let mut running = RunningStatistics::default();
        running.add(&self.voxels);
        running.finish()
    }

    /// Everything but the voxels.
    pub fn header(&self) -> VolumeHeader {
        VolumeHeader {
            format: self.format,
            dims: self.dims,
            spacing: self.spacing,
            origin: self.origin,
            direction: self.direction,
            units: self.units,
            metadata: self.metadata.clone(),
            warnings: self.warnings.clone(),
        }
    }

    /// Volume size in bytes as stored.
    pub fn byte_size(&self) -> usize {
        self.voxels.len() * std::mem::size_of::<i16>()
    }
}

/// [`Statistics`] gathered slice by slice, for a volume that is never in one place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunningStatistics {
    min: i16,
    max: i16,
    sum: i64,
    count: u64,
}

impl Default for RunningStatistics {
    fn default() -> Self {
        Self {
            min: i16::MAX,
            max: i16::MIN,
            sum: 0,
            count: 0,
        }
    }
}

impl RunningStatistics {
    pub fn add(&mut self, voxels: &[i16]) {
        for &v in voxels {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += i64::from(v);
        }
        self.count += voxels.len() as u64;
    }

    /// Adds what `other` gathered.
    pub fn merge(&mut self, other: &RunningStatistics) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }

    /// All zero for no voxels.
    pub fn finish(&self) -> Statistics {
        if self.count == 0 {
            return Statistics {
                min: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Statistics {
            min: self.min,
            max: self.max,
            mean: self.sum as f64 / self.count as f64,
        }
    }
}

/// Clamps a rescaled value into int16, counting how many needed it.
#[inline]
pub(crate) fn clamp_i16(value: f64, clamped: &mut u64) -> i16 {
    let rounded = value.round();
    if rounded > f64::from(i16::MAX) {
        *clamped += 1;
        i16::MAX
    } else if rounded < f64::from(i16::MIN) {
        *clamped += 1;
        i16::MIN
    } else if rounded.is_nan() {
        *clamped += 1;
        0
    } else {
        rounded as i16
    }
}

pub(crate) fn clamp_warning(clamped: u64) -> Option<String> {
    (clamped > 0)
        .then(|| format!("{clamped} voxel values fell outside the int16 range and were clipped"))
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Direction matrix (row-major, columns = axes) from three axis vectors.
pub(crate) fn direction_from_axes(x: [f64; 3], y: [f64; 3], z: [f64; 3]) -> [f64; 9] {
    [x[0], y[0], z[0], x[1], y[1], z[1], x[2], y[2], z[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Volume {
        Volume {
            format: Format::Nifti,
            dims: [2, 3, 4],
            spacing: [0.5, 0.7, 2.5],
            origin: [10.0, -20.0, 30.0],
            // x axis along -y, y axis along +x: a rotation.
            direction: direction_from_axes([0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
            units: IntensityUnits::Hounsfield,
            voxels: (0..24).map(|v| v as i16 - 10).collect(),
            metadata: Metadata::default(),
            warnings: vec![],
        }
    }

    #[test]
    fn voxel_world_round_trip() {
        let v = tiny();
        let world = v.voxel_to_world([1.0, 2.0, 3.0]);
        assert_eq!(world, [10.0 + 1.4, -20.0 - 0.5, 30.0 + 7.5]);
        let back = v.world_to_voxel(world);
        for (a, b) in back.iter().zip([1.0, 2.0, 3.0]) {
            assert!((a - b).abs() < 1e-9, "{back:?}");
        }
    }

    #[test]
    fn statistics_cover_every_voxel() {
        let s = tiny().statistics();
        assert_eq!((s.min, s.max), (-10, 13));
        assert!((s.mean - 1.5).abs() < 1e-12);
    }

    #[test]
    fn clamping_counts() {
        let mut n = 0;
        assert_eq!(clamp_i16(40000.0, &mut n), i16::MAX);
        assert_eq!(clamp_i16(-1024.4, &mut n), -1024);
        assert_eq!(clamp_i16(f64::NAN, &mut n), 0);
        assert_eq!(n, 2);
    }
}
