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
    /// DICOM TM, as the file gives it (a report copies it).
    #[serde(default)]
    pub study_time: Option<String>,
    /// Other series found among the inputs and not shown (DICOM), one line each.
    pub other_series: Vec<String>,
    // What a report (JSON, DICOM SR) must refer back to; DICOM only.
    #[serde(default)]
    pub study_uid: Option<String>,
    #[serde(default)]
    pub frame_of_reference_uid: Option<String>,
    #[serde(default)]
    pub study_id: Option<String>,
    #[serde(default)]
    pub accession_number: Option<String>,
    #[serde(default)]
    pub patient: Patient,
    /// The DICOM instance (and frame) behind each slice, in the volume's slice order.
    #[serde(default)]
    pub slices: Vec<SliceSource>,
}

/// The patient module as the file gives it (DICOM only); shown and reported, never sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub id: Option<String>,
    pub name: Option<String>,
    /// DICOM DA, `YYYYMMDD`.
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// Which DICOM instance a slice came from: a report's references point at it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceSource {
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    /// The frame within a multi-frame instance (0 for single-frame files).
    pub frame: u32,
}

/// Something a reader or the pipeline had to assume or work around: the kind for code to
/// act on (the pipeline skips or qualifies its results, the UI picks a badge), the message
/// for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
}

impl Warning {
    pub fn new(kind: WarningKind, message: impl Into<String>) -> Self {
        Warning {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a [`Warning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The values may not be Hounsfield units (not CT, grey levels, a header that is silent).
    NotHounsfield,
    /// Slices too thick for small nodules to be measured reliably.
    ThickSlices,
    /// Slices missing along the normal: the spacing is not uniform there.
    SliceGaps,
    /// Slice gaps differ a little; the median is used.
    UnevenSpacing,
    /// Slices at the same position were dropped.
    DuplicateSlices,
    /// Gantry tilt: slices are offset, shown unsheared.
    GantryTilt,
    /// Spacing, orientation or slice positions were missing and assumed.
    AssumedGeometry,
    /// Other series were among the inputs and are not shown.
    OtherSeries,
    /// Files were unreadable, not DICOM or without images, and were skipped.
    SkippedFiles,
    /// Values were clipped or colour converted to grey.
    ValuesAltered,
    /// The lungs run off the first or last slice: the chest is only partly covered.
    PartialCoverage,
    /// No lungs were found: nothing to analyse.
    NoLungs,
    /// Anything else worth knowing (ignored extra data, a mislabelled file).
    Other,
}

impl WarningKind {
    pub const ALL: [WarningKind; 13] = [
        WarningKind::NotHounsfield,
        WarningKind::ThickSlices,
        WarningKind::SliceGaps,
        WarningKind::UnevenSpacing,
        WarningKind::DuplicateSlices,
        WarningKind::GantryTilt,
        WarningKind::AssumedGeometry,
        WarningKind::OtherSeries,
        WarningKind::SkippedFiles,
        WarningKind::ValuesAltered,
        WarningKind::PartialCoverage,
        WarningKind::NoLungs,
        WarningKind::Other,
    ];

    /// The kind's name as JSON writes it (`not_hounsfield`, …): for the page's `data-kind`.
    pub fn name(self) -> &'static str {
        match self {
            WarningKind::NotHounsfield => "not_hounsfield",
            WarningKind::ThickSlices => "thick_slices",
            WarningKind::SliceGaps => "slice_gaps",
            WarningKind::UnevenSpacing => "uneven_spacing",
            WarningKind::DuplicateSlices => "duplicate_slices",
            WarningKind::GantryTilt => "gantry_tilt",
            WarningKind::AssumedGeometry => "assumed_geometry",
            WarningKind::OtherSeries => "other_series",
            WarningKind::SkippedFiles => "skipped_files",
            WarningKind::ValuesAltered => "values_altered",
            WarningKind::PartialCoverage => "partial_coverage",
            WarningKind::NoLungs => "no_lungs",
            WarningKind::Other => "other",
        }
    }
}

/// A scalar CT volume.
///
/// Voxel `(i, j, k)` (column, row, slice) is stored at `i + dims[0] * (j + dims[1] * k)`
/// and sits at `origin + direction · (spacing ⊙ (i, j, k))` in DICOM patient
/// coordinates (LPS, millimetres): x to the patient's left, y posterior, z head-ward.
///
/// The fields are private and every way in ([`Volume::new`], deserialising) checks them:
/// a volume whose dimensions disagree with its voxels, or whose geometry is not finite,
/// cannot exist, so indexing by `dims` never goes out of bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedVolume")]
pub struct Volume {
    #[serde(flatten)]
    header: VolumeHeader,
    voxels: Vec<i16>,
}

/// A volume as it comes off the wire, before [`Volume::new`] has checked it.
#[derive(Deserialize)]
struct UncheckedVolume {
    #[serde(flatten)]
    header: VolumeHeader,
    voxels: Vec<i16>,
}

impl TryFrom<UncheckedVolume> for Volume {
    type Error = VolumeError;
    fn try_from(unchecked: UncheckedVolume) -> Result<Self, VolumeError> {
        Volume::new(unchecked.header, unchecked.voxels)
    }
}

/// Why a header and voxels do not make a [`Volume`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VolumeError {
    #[error("dimensions {dims:?} have a zero or overflowing size")]
    BadDimensions { dims: [usize; 3] },
    #[error("dimensions {dims:?} call for {expected} voxels, but {actual} were given")]
    VoxelCount {
        dims: [usize; 3],
        expected: usize,
        actual: usize,
    },
    #[error("voxel spacing {0:?} mm is not positive and finite")]
    BadSpacing([f64; 3]),
    #[error("the origin {0:?} is not finite")]
    BadOrigin([f64; 3]),
    #[error("the direction matrix {0:?} is not finite")]
    BadDirection([f64; 9]),
}

/// Everything about a [`Volume`] but its voxels: what a viewer needs before the first
/// slice arrives (the browser worker sends it first, then the slices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeHeader {
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
    pub metadata: Metadata,
    /// Things a reader had to assume or work around.
    pub warnings: Vec<Warning>,
}

impl VolumeHeader {
    /// Voxels the dimensions call for; `None` if the product overflows.
    pub fn voxel_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The volume with these voxels, checked as [`Volume::new`] checks it (a broken
    /// message must not turn into an out-of-bounds slice later).
    pub fn into_volume(self, voxels: Vec<i16>) -> Result<Volume, VolumeError> {
        Volume::new(self, voxels)
    }

    /// Whether the geometry is usable (positive finite spacing, finite origin and
    /// direction, no empty or overflowing dimension); the voxel count if so.
    pub fn validate(&self) -> Result<usize, VolumeError> {
        let count = self
            .voxel_count()
            .filter(|_| self.dims.iter().all(|&d| d > 0))
            .ok_or(VolumeError::BadDimensions { dims: self.dims })?;
        if !self.spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(VolumeError::BadSpacing(self.spacing));
        }
        if !self.origin.iter().all(|o| o.is_finite()) {
            return Err(VolumeError::BadOrigin(self.origin));
        }
        if !self.direction.iter().all(|d| d.is_finite()) {
            return Err(VolumeError::BadDirection(self.direction));
        }
        Ok(count)
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
    /// A volume from its header and voxels, refused if they disagree or the geometry is
    /// unusable (see [`VolumeError`]).
    pub fn new(header: VolumeHeader, voxels: Vec<i16>) -> Result<Self, VolumeError> {
        let expected = header.validate()?;
        if expected != voxels.len() {
            return Err(VolumeError::VoxelCount {
                dims: header.dims,
                expected,
                actual: voxels.len(),
            });
        }
        Ok(Self { header, voxels })
    }

    pub fn format(&self) -> Format {
        self.header.format
    }

    /// `[columns, rows, slices]`.
    pub fn dims(&self) -> [usize; 3] {
        self.header.dims
    }

    /// Voxel size along the three grid axes, mm.
    pub fn spacing(&self) -> [f64; 3] {
        self.header.spacing
    }

    /// Centre of voxel (0, 0, 0), LPS mm.
    pub fn origin(&self) -> [f64; 3] {
        self.header.origin
    }

    /// Row-major 3×3 matrix whose *columns* are the unit directions of the grid axes in LPS.
    pub fn direction(&self) -> [f64; 9] {
        self.header.direction
    }

    pub fn units(&self) -> IntensityUnits {
        self.header.units
    }

    /// Every voxel, `dims[0] * dims[1] * dims[2]` of them (see the type's layout).
    pub fn voxels(&self) -> &[i16] {
        &self.voxels
    }

    /// The voxels to change in place; their count (and so the layout) stays.
    pub fn voxels_mut(&mut self) -> &mut [i16] {
        &mut self.voxels
    }

    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.header.metadata
    }

    /// Things a reader had to assume or work around.
    pub fn warnings(&self) -> &[Warning] {
        &self.header.warnings
    }

    pub fn push_warning(&mut self, warning: Warning) {
        self.header.warnings.push(warning);
    }

    /// Whether any warning is of this kind.
    pub fn has_warning(&self, kind: WarningKind) -> bool {
        self.header.warnings.iter().any(|w| w.kind == kind)
    }

    /// Everything but the voxels.
    pub fn header(&self) -> &VolumeHeader {
        &self.header
    }

    /// The header and the voxels, taken apart.
    pub fn into_parts(self) -> (VolumeHeader, Vec<i16>) {
        (self.header, self.voxels)
    }

    pub fn voxel_count(&self) -> usize {
        self.voxels.len()
    }

    /// Where voxel `(i, j, k)` is stored. For coordinates inside the grid (the caller's
    /// check); the product cannot overflow there, since the voxels exist.
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        let [nx, ny, _] = self.header.dims;
        i + nx * (j + ny * k)
    }

    /// Value at a voxel, `None` outside the grid.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<i16> {
        let [nx, ny, nz] = self.header.dims;
        (i < nx && j < ny && k < nz).then(|| self.voxels[self.index(i, j, k)])
    }

    /// Continuous voxel coordinates → LPS mm.
    pub fn voxel_to_world(&self, ijk: [f64; 3]) -> [f64; 3] {
        let spacing = self.header.spacing;
        let scaled = [
            ijk[0] * spacing[0],
            ijk[1] * spacing[1],
            ijk[2] * spacing[2],
        ];
        let d = &self.header.direction;
        let origin = self.header.origin;
        std::array::from_fn(|r| {
            origin[r] + d[3 * r] * scaled[0] + d[3 * r + 1] * scaled[1] + d[3 * r + 2] * scaled[2]
        })
    }

    /// LPS mm → continuous voxel coordinates. Uses the transpose of the direction
    /// matrix, exact for the orthonormal directions the readers produce.
    pub fn world_to_voxel(&self, lps: [f64; 3]) -> [f64; 3] {
        let origin = self.header.origin;
        let rel = [lps[0] - origin[0], lps[1] - origin[1], lps[2] - origin[2]];
        let d = &self.header.direction;
        let spacing = self.header.spacing;
        std::array::from_fn(|c| {
            (d[c] * rel[0] + d[3 + c] * rel[1] + d[6 + c] * rel[2]) / spacing[c]
        })
    }

    pub fn statistics(&self) -> Statistics {
        let mut running = RunningStatistics::default();
        running.add(&self.voxels);
        running.finish()
    }

    /// Volume size in bytes as stored.
    pub fn byte_size(&self) -> usize {
        std::mem::size_of_val(self.voxels.as_slice())
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

pub(crate) fn clamp_warning(clamped: u64) -> Option<Warning> {
    (clamped > 0).then(|| {
        Warning::new(
            WarningKind::ValuesAltered,
            format!("{clamped} voxel values fell outside the int16 range and were clipped"),
        )
    })
}

/// Voxels of `dims` in u64, saturating: compared with the limit before anything is
/// allocated, so it must not wrap where `usize` has 32 bits.
pub(crate) fn voxel_count(dims: [usize; 3]) -> u64 {
    dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64))
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

    #[test]
    fn warning_kind_names_are_their_json_names() {
        for kind in WarningKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }

    fn tiny_header() -> VolumeHeader {
        VolumeHeader {
            format: Format::Nifti,
            dims: [2, 3, 4],
            spacing: [0.5, 0.7, 2.5],
            origin: [10.0, -20.0, 30.0],
            // x axis along -y, y axis along +x: a rotation.
            direction: direction_from_axes([0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
            units: IntensityUnits::Hounsfield,
            metadata: Metadata::default(),
            warnings: vec![],
        }
    }

    fn tiny() -> Volume {
        Volume::new(tiny_header(), (0..24).map(|v| v as i16 - 10).collect()).expect("valid")
    }

    #[test]
    fn dims_that_disagree_with_the_voxels_are_refused() {
        let err = Volume::new(tiny_header(), vec![0; 23]).unwrap_err();
        assert!(
            matches!(
                err,
                VolumeError::VoxelCount {
                    expected: 24,
                    actual: 23,
                    ..
                }
            ),
            "{err}"
        );
        let overflowing = VolumeHeader {
            dims: [usize::MAX, 2, 1],
            ..tiny_header()
        };
        assert!(matches!(
            Volume::new(overflowing, vec![0; 2]),
            Err(VolumeError::BadDimensions { .. })
        ));
        let empty = VolumeHeader {
            dims: [0, 3, 4],
            ..tiny_header()
        };
        assert!(matches!(
            Volume::new(empty, vec![]),
            Err(VolumeError::BadDimensions { .. })
        ));
        for spacing in [[0.0, 1.0, 1.0], [1.0, f64::NAN, 1.0], [1.0, 1.0, -2.0]] {
            let header = VolumeHeader {
                spacing,
                ..tiny_header()
            };
            assert!(matches!(
                Volume::new(header, vec![0; 24]),
                Err(VolumeError::BadSpacing(_))
            ));
        }
        let header = VolumeHeader {
            origin: [f64::INFINITY, 0.0, 0.0],
            ..tiny_header()
        };
        assert!(matches!(
            Volume::new(header, vec![0; 24]),
            Err(VolumeError::BadOrigin(_))
        ));
    }

    #[test]
    fn deserialising_checks_the_volume_too() {
        let json = serde_json::to_value(tiny()).expect("serialises");
        let back: Volume = serde_json::from_value(json.clone()).expect("round trip");
        assert_eq!(back, tiny());
        let mut short = json;
        short["voxels"].as_array_mut().expect("voxels").pop();
        let err = serde_json::from_value::<Volume>(short).unwrap_err();
        assert!(err.to_string().contains("call for 24 voxels"), "{err}");
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
