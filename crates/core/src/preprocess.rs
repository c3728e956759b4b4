//! The one preprocessing step between a CT [`Volume`] and the models, shared by training,
//! evaluation, the command line and the browser.
//!
//! A candidate is a world point (LPS mm). Around it [`extract_views`] samples three orthogonal
//! planes — axial, coronal, sagittal — each as a few parallel slices, on a square grid at a fixed
//! spacing, with trilinear interpolation. Samples outside the volume take [`PreprocessConfig::pad_hu`]
//! (air). Hounsfield units are clipped to `[hu_min, hu_max]` and scaled to `[0, 1]`.
//!
//! The models learn from LIDC crops that cover only about 44×44 native voxels in-plane and the
//! nodule's own z-extent (see the data README). [`nodule_context`] cuts a finding's context
//! from any volume the same deterministic way — a fixed number of voxels in-plane, the
//! finding's own slices along z — so that a candidate of a whole scan and the same nodule's
//! crop give the model the same patch, in training and in the pipeline.
//!
//! Pure Rust, no burn: it builds for wasm32 with the rest of the core.

use serde::{Deserialize, Serialize};

use crate::{Format, IntensityUnits, Metadata, Volume, VolumeHeader};

/// Everything that decides what the model sees. Written into the model manifest; a model must
/// only be fed patches made with the configuration it was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    /// Side of each square plane, in samples.
    pub patch_size: usize,
    /// Distance between samples within a plane, mm.
    pub spacing_mm: f64,
    /// Offsets of the parallel slices of each view along that view's normal, mm.
    pub slice_offsets_mm: Vec<f64>,
    /// Lower HU clip, mapped to 0.
    pub hu_min: f32,
    /// Upper HU clip, mapped to 1.
    pub hu_max: f32,
    /// Value of samples outside the volume, HU (air).
    pub pad_hu: f32,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            patch_size: 32,
            spacing_mm: 1.0,
            slice_offsets_mm: vec![-2.0, 0.0, 2.0],
            hu_min: -1000.0,
            hu_max: 400.0,
            pad_hu: -1000.0,
        }
    }
}

/// Number of views: axial, coronal, sagittal.
pub const VIEWS: usize = 3;

impl PreprocessConfig {
    /// Channels per view (parallel slices).
    pub fn channels(&self) -> usize {
        self.slice_offsets_mm.len()
    }

    /// Length of one extracted patch: `VIEWS × channels × patch_size²`.
    pub fn patch_len(&self) -> usize {
        VIEWS * self.channels() * self.patch_size * self.patch_size
    }

    /// Shape of one patch, `[views, channels, rows, columns]`.
    pub fn patch_shape(&self) -> [usize; 4] {
        [VIEWS, self.channels(), self.patch_size, self.patch_size]
    }

    /// Checks the configuration is usable (finite, positive, ordered).
    pub fn validate(&self) -> Result<(), String> {
        if self.patch_size == 0 || self.patch_size > 512 {
            return Err(format!("patch_size {} not in 1..=512", self.patch_size));
        }
        if !(self.spacing_mm.is_finite() && self.spacing_mm > 0.0) {
            return Err(format!("spacing_mm {} is not positive", self.spacing_mm));
        }
        if self.slice_offsets_mm.is_empty() || self.slice_offsets_mm.iter().any(|o| !o.is_finite())
        {
            return Err("slice_offsets_mm must be finite and not empty".into());
        }
        if !(self.hu_min.is_finite() && self.hu_max.is_finite() && self.hu_min < self.hu_max) {
            return Err(format!(
                "HU window {}..{} is not increasing",
                self.hu_min, self.hu_max
            ));
        }
        if !self.pad_hu.is_finite() {
            return Err("pad_hu is not finite".into());
        }
        Ok(())
    }

    /// HU → model input.
    pub fn normalize(&self, hu: f32) -> f32 {
        (hu.clamp(self.hu_min, self.hu_max) - self.hu_min) / (self.hu_max - self.hu_min)
    }
}

/// A geometric and intensity change applied while sampling: identity for inference, random for
/// augmentation during training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchTransform {
    /// Row-major 3×3 matrix whose columns are the patch axes (x, y, z) in LPS. Orthonormal,
    /// possibly with reflections.
    pub rotation: [f64; 9],
    /// Isotropic zoom: a value above 1 samples a larger region (the content looks smaller).
    pub scale: f64,
    /// Added to the centre, LPS mm.
    pub shift_mm: [f64; 3],
    /// HU → `hu * intensity_gain + intensity_offset` before clipping.
    pub intensity_gain: f32,
    pub intensity_offset: f32,
}

impl Default for PatchTransform {
    fn default() -> Self {
        Self {
            rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            scale: 1.0,
            shift_mm: [0.0; 3],
            intensity_gain: 1.0,
            intensity_offset: 0.0,
        }
    }
}

/// The patch axes of each view: (column direction, row direction, normal), in patch
/// coordinates. Axial: x right-to-left, y anterior-to-posterior. Coronal: x, and −z (head up).
/// Sagittal: y, and −z.
const VIEW_AXES: [[[f64; 3]; 3]; VIEWS] = [
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
    [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]],
];

/// Samples the three views around `center_lps` (LPS mm): a `Vec<f32>` of
/// [`PreprocessConfig::patch_len`] values laid out `[view][slice][row][column]`, each in `[0, 1]`.
///
/// This is the single preprocessing function of the project.
pub fn extract_views(
    volume: &Volume,
    center_lps: [f64; 3],
    config: &PreprocessConfig,
    transform: &PatchTransform,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(config.patch_len());
    extract_views_into(volume, center_lps, config, transform, &mut out);
    out
}

/// [`extract_views`] appending to `out` (for filling a batch without copies).
pub fn extract_views_into(
    volume: &Volume,
    center_lps: [f64; 3],
    config: &PreprocessConfig,
    transform: &PatchTransform,
    out: &mut Vec<f32>,
) {
    let n = config.patch_size;
    let half = (n as f64 - 1.0) / 2.0;
    let step = config.spacing_mm * transform.scale;
    let r = &transform.rotation;
    // Patch axis a (0..3) in LPS: column a of the rotation.
    let to_lps = |v: [f64; 3]| -> [f64; 3] {
        std::array::from_fn(|row| r[3 * row] * v[0] + r[3 * row + 1] * v[1] + r[3 * row + 2] * v[2])
    };
    let center = [
        center_lps[0] + transform.shift_mm[0],
        center_lps[1] + transform.shift_mm[1],
        center_lps[2] + transform.shift_mm[2],
    ];
    // Work in continuous voxel coordinates: the map world → voxel is affine.
    let c_vox = volume.world_to_voxel(center);
    let dir_vox = |v: [f64; 3]| -> [f64; 3] {
        let w = to_lps(v);
        let p = volume.world_to_voxel([center[0] + w[0], center[1] + w[1], center[2] + w[2]]);
        [p[0] - c_vox[0], p[1] - c_vox[1], p[2] - c_vox[2]]
    };
    let sampler = Sampler::new(volume, config.pad_hu);
    for axes in &VIEW_AXES {
        let du = dir_vox(axes[0]);
        let dv = dir_vox(axes[1]);
        let dn = dir_vox(axes[2]);
        for &offset in &config.slice_offsets_mm {
            let o = offset * transform.scale;
            let base = [
                c_vox[0] + dn[0] * o,
                c_vox[1] + dn[1] * o,
                c_vox[2] + dn[2] * o,
            ];
            for row in 0..n {
                let v = (row as f64 - half) * step;
                for col in 0..n {
                    let u = (col as f64 - half) * step;
                    let p = [
                        base[0] + du[0] * u + dv[0] * v,
                        base[1] + du[1] * u + dv[1] * v,
                        base[2] + du[2] * u + dv[2] * v,
                    ];
                    let hu = sampler.trilinear(p);
                    let hu = hu * transform.intensity_gain + transform.intensity_offset;
                    out.push(config.normalize(hu));
                }
            }
        }
    }
}

struct Sampler<'a> {
    volume: &'a Volume,
    pad: f32,
}

impl<'a> Sampler<'a> {
    fn new(volume: &'a Volume, pad: f32) -> Self {
        Self { volume, pad }
    }

    fn at(&self, i: i64, j: i64, k: i64) -> f32 {
        let [nx, ny, nz] = self.volume.dims();
        if i < 0 || j < 0 || k < 0 || i >= nx as i64 || j >= ny as i64 || k >= nz as i64 {
            return self.pad;
        }
        let (i, j, k) = (i as usize, j as usize, k as usize);
        f32::from(self.volume.voxels()[i + nx * (j + ny * k)])
    }

    /// Trilinear interpolation at continuous voxel coordinates; neighbours outside the grid
    /// count as `pad`, so the volume fades into padding over half a voxel.
    fn trilinear(&self, p: [f64; 3]) -> f32 {
        if !(p[0].is_finite() && p[1].is_finite() && p[2].is_finite()) {
            return self.pad;
        }
        let [nx, ny, nz] = self.volume.dims();
        if p[0] < -1.0
            || p[1] < -1.0
            || p[2] < -1.0
            || p[0] > nx as f64
            || p[1] > ny as f64
            || p[2] > nz as f64
        {
            return self.pad;
        }
        let f = [p[0].floor(), p[1].floor(), p[2].floor()];
        let t = [
            (p[0] - f[0]) as f32,
            (p[1] - f[1]) as f32,
            (p[2] - f[2]) as f32,
        ];
        let (i, j, k) = (f[0] as i64, f[1] as i64, f[2] as i64);
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let c00 = lerp(self.at(i, j, k), self.at(i + 1, j, k), t[0]);
        let c10 = lerp(self.at(i, j + 1, k), self.at(i + 1, j + 1, k), t[0]);
        let c01 = lerp(self.at(i, j, k + 1), self.at(i + 1, j, k + 1), t[0]);
        let c11 = lerp(self.at(i, j + 1, k + 1), self.at(i + 1, j + 1, k + 1), t[0]);
        lerp(lerp(c00, c10, t[1]), lerp(c01, c11, t[1]), t[2])
    }
}

/// In-plane half-width of a finding's context, voxels: every LIDC crop holds at least this
/// many voxels on each side of its nodule's centre (the 1st percentile is 18.3).
pub const CONTEXT_HALF_WIDTH: usize = 18;

/// The part of `volume` the models see around a finding at `center_lps` (LPS mm): the voxel
/// columns and rows within [`CONTEXT_HALF_WIDTH`] of the centre's voxel, and the slices
/// `slices[0]..=slices[1]` (the finding's own extent). Geometry is kept, so world coordinates
/// stay valid. `None` when the centre or the slices are outside the volume.
pub fn nodule_context(volume: &Volume, center_lps: [f64; 3], slices: [usize; 2]) -> Option<Volume> {
    let c = volume.world_to_voxel(center_lps);
    let dims = volume.dims();
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    for a in 0..2 {
        let ci = c[a].round();
        if !ci.is_finite() || ci < 0.0 || ci >= dims[a] as f64 {
            return None;
        }
        let ci = ci as usize;
        lo[a] = ci.saturating_sub(CONTEXT_HALF_WIDTH);
        hi[a] = (ci + CONTEXT_HALF_WIDTH + 1).min(dims[a]);
    }
    if slices[0] > slices[1] || slices[1] >= dims[2] {
        return None;
    }
    lo[2] = slices[0];
    hi[2] = slices[1] + 1;
    crop_box(volume, lo, hi)
}

/// The sub-volume of voxels `lo..hi` (per axis, exclusive end), with its geometry.
pub fn crop_box(volume: &Volume, lo: [usize; 3], hi: [usize; 3]) -> Option<Volume> {
    if (0..3).any(|a| lo[a] >= hi[a] || hi[a] > volume.dims()[a]) {
        return None;
    }
    let dims = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
    let mut voxels = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    for k in lo[2]..hi[2] {
        for j in lo[1]..hi[1] {
            let start = volume.index(lo[0], j, k);
            voxels.extend_from_slice(&volume.voxels()[start..start + dims[0]]);
        }
    }
    Volume::new(
        VolumeHeader {
            format: volume.format(),
            dims,
            spacing: volume.spacing(),
            origin: volume.voxel_to_world([lo[0] as f64, lo[1] as f64, lo[2] as f64]),
            direction: volume.direction(),
            units: volume.units(),
            metadata: Metadata::default(),
            warnings: Vec::new(),
        },
        voxels,
    )
    .ok()
}

/// A synthetic volume for tests and examples: `dims` voxels of `spacing` at `origin`, identity
/// direction, values from `f(i, j, k)`.
pub fn synthetic_volume(
    dims: [usize; 3],
    spacing: [f64; 3],
    origin: [f64; 3],
    f: impl Fn(usize, usize, usize) -> i16,
) -> Volume {
    let mut voxels = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                voxels.push(f(i, j, k));
            }
        }
    }
    Volume::new(
        VolumeHeader {
            format: Format::Nifti,
            dims,
            spacing,
            origin,
            direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            units: IntensityUnits::Hounsfield,
            metadata: Metadata::default(),
            warnings: Vec::new(),
        },
        voxels,
    )
    .expect("synthetic volume: the voxels match the dims")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_config() -> PreprocessConfig {
        PreprocessConfig {
            patch_size: 9,
            spacing_mm: 1.0,
            slice_offsets_mm: vec![0.0],
            ..PreprocessConfig::default()
        }
    }

    fn view(patch: &[f32], config: &PreprocessConfig, v: usize, s: usize) -> Vec<f32> {
        let n = config.patch_size;
        let start = (v * config.channels() + s) * n * n;
        patch[start..start + n * n].to_vec()
    }

    #[test]
    fn default_config_is_valid_and_shapes_agree() {
        let c = PreprocessConfig::default();
        c.validate().unwrap();
        assert_eq!(c.patch_len(), c.patch_shape().iter().product::<usize>());
        let bad = PreprocessConfig {
            hu_min: 10.0,
            hu_max: -10.0,
            ..c.clone()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn normalisation_clips_and_scales() {
        let c = PreprocessConfig::default();
        assert_eq!(c.normalize(-3000.0), 0.0);
        assert_eq!(c.normalize(-1000.0), 0.0);
        assert_eq!(c.normalize(400.0), 1.0);
        assert_eq!(c.normalize(2000.0), 1.0);
        assert!((c.normalize(-300.0) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn linear_ramp_is_reproduced_at_any_spacing() {
        // Value = 10·x_mm along the grid's first axis, anisotropic voxels.
        let vol = synthetic_volume(
            [40, 40, 20],
            [0.5, 0.5, 2.0],
            [-10.0, -10.0, -20.0],
            |i, _, _| (10.0 * (i as f64 * 0.5 - 10.0)) as i16 - 300,
        );
        let c = small_config();
        let p = extract_views(&vol, [0.0, 0.0, 0.0], &c, &PatchTransform::default());
        assert_eq!(p.len(), c.patch_len());
        let axial = view(&p, &c, 0, 0);
        for row in 0..9 {
            for col in 0..9 {
                let x_mm = col as f64 - 4.0;
                let expected = c.normalize((10.0 * x_mm - 300.0) as f32);
                let got = axial[row * 9 + col];
                assert!(
                    (got - expected).abs() < 1e-4,
                    "({row},{col}): {got} vs {expected}"
                );
            }
        }
        // The sagittal view's columns run along y: constant there.
        let sagittal = view(&p, &c, 2, 0);
        let centre = c.normalize(-300.0);
        assert!(sagittal.iter().all(|v| (v - centre).abs() < 1e-4));
    }

    #[test]
    fn trilinear_interpolates_between_voxel_centres() {
        // Value = 100·k: along z, halfway between slices gives the mean.
        let vol = synthetic_volume([5, 5, 5], [1.0, 1.0, 1.0], [0.0; 3], |_, _, k| {
            100 * k as i16 - 500
        });
        let c = PreprocessConfig {
            patch_size: 1,
            ..small_config()
        };
        let p = extract_views(&vol, [2.0, 2.0, 1.5], &c, &PatchTransform::default());
        assert!((p[0] - c.normalize(-350.0)).abs() < 1e-5, "{}", p[0]);
    }

    #[test]
    fn outside_the_volume_is_padding() {
        let vol = synthetic_volume([4, 4, 4], [1.0; 3], [0.0; 3], |_, _, _| 300);
        let c = small_config();
        let p = extract_views(&vol, [100.0, 0.0, 0.0], &c, &PatchTransform::default());
        assert!(p.iter().all(|&v| v == c.normalize(c.pad_hu)));
        // Centred on the cube: the middle is tissue, the corners padding.
        let p = extract_views(&vol, [1.5, 1.5, 1.5], &c, &PatchTransform::default());
        let axial = view(&p, &c, 0, 0);
        assert_eq!(axial[4 * 9 + 4], c.normalize(300.0));
        assert_eq!(axial[0], c.normalize(c.pad_hu));
    }

    #[test]
    fn views_see_a_bright_line_along_their_own_axes() {
        // A bright rod along z through (10, 10): a dot in the axial view, a vertical line in the
        // coronal and sagittal views.
        let vol = synthetic_volume([21, 21, 21], [1.0; 3], [0.0; 3], |i, j, _| {
            if i == 10 && j == 10 { 400 } else { -1000 }
        });
        let c = small_config();
        let p = extract_views(&vol, [10.0, 10.0, 10.0], &c, &PatchTransform::default());
        let bright = |img: &[f32]| img.iter().filter(|&&v| v > 0.5).count();
        assert_eq!(bright(&view(&p, &c, 0, 0)), 1);
        let coronal = view(&p, &c, 1, 0);
        assert_eq!(bright(&coronal), 9);
        assert!((0..9).all(|row| coronal[row * 9 + 4] > 0.5));
        assert_eq!(bright(&view(&p, &c, 2, 0)), 9);
    }

    #[test]
    fn rotation_scale_and_intensity_are_applied() {
        let vol = synthetic_volume([40, 40, 40], [1.0; 3], [-20.0; 3], |i, _, _| {
            (i as i16 - 20) * 10
        });
        let c = small_config();
        // A 90° rotation about z maps the patch x axis onto LPS y: the ramp leaves the rows.
        let t = PatchTransform {
            rotation: [0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            ..PatchTransform::default()
        };
        let p = extract_views(&vol, [0.0; 3], &c, &t);
        let axial = view(&p, &c, 0, 0);
        assert!((axial[0] - axial[8]).abs() < 1e-6);
        assert!(axial[8 * 9] < axial[0]);
        // Zoom ×2: the ramp doubles its slope per sample.
        let t = PatchTransform {
            scale: 2.0,
            intensity_gain: 1.0,
            intensity_offset: 100.0,
            ..PatchTransform::default()
        };
        let p = extract_views(&vol, [0.0; 3], &c, &t);
        let axial = view(&p, &c, 0, 0);
        let expect = |x_mm: f64| c.normalize((x_mm * 10.0) as f32 + 100.0);
        assert!((axial[5] - expect(2.0)).abs() < 1e-5);
        assert!((axial[8] - expect(8.0)).abs() < 1e-5);
    }

    #[test]
    fn contexts_keep_world_coordinates() {
        let vol = synthetic_volume(
            [60, 60, 10],
            [0.7, 0.7, 2.5],
            [-5.0, 3.0, -50.0],
            |i, j, k| (i + 60 * j) as i16 + 900 * k as i16,
        );
        let centre = vol.voxel_to_world([25.2, 30.0, 5.0]);
        let context = nodule_context(&vol, centre, [4, 6]).unwrap();
        let w = 2 * CONTEXT_HALF_WIDTH + 1;
        assert_eq!(context.dims(), [w, w, 3]);
        let c = context.world_to_voxel(centre);
        assert!(
            (c[0] - 18.2).abs() < 1e-9 && (c[1] - 18.0).abs() < 1e-9 && (c[2] - 1.0).abs() < 1e-9
        );
        assert_eq!(context.get(18, 18, 1), vol.get(25, 30, 5));
        // Clamped at the border; a point or slices outside the volume give nothing.
        let edge = nodule_context(&vol, vol.voxel_to_world([0.0, 0.0, 0.0]), [0, 0]).unwrap();
        assert_eq!(
            edge.dims(),
            [CONTEXT_HALF_WIDTH + 1, CONTEXT_HALF_WIDTH + 1, 1]
        );
        assert!(nodule_context(&vol, [1e4, 0.0, 0.0], [0, 0]).is_none());
        assert!(nodule_context(&vol, centre, [5, 10]).is_none());
        assert!(nodule_context(&vol, centre, [6, 5]).is_none());
    }

    #[test]
    fn non_finite_input_gives_padding_not_a_panic() {
        let vol = synthetic_volume([4, 4, 4], [1.0; 3], [0.0; 3], |_, _, _| 0);
        let c = small_config();
        let p = extract_views(&vol, [f64::NAN, 0.0, 0.0], &c, &PatchTransform::default());
        assert!(p.iter().all(|&v| v == c.normalize(c.pad_hu)));
    }
}
