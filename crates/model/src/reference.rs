//! The cross-backend check: the same inputs through the shipped models must give the same
//! probabilities natively, in the browser on the CPU and in the browser on WebGPU.
//!
//! `tests/fixtures/model/outputs.json` records, for each committed nodule crop, the point the
//! patch is taken around and both models' probabilities computed natively on the CPU. The native
//! test (`crates/model/tests/parity.rs`) and the browser test (`tests/web.rs`) recompute them from
//! the crop with the one preprocessing function and compare within [`TOLERANCE`].

use nodulens_core::Volume;
use nodulens_core::preprocess::{PatchTransform, PreprocessConfig, extract_views_into};
use serde::{Deserialize, Serialize};

/// Largest allowed difference between two backends' probabilities.
pub const TOLERANCE: f32 = 1e-4;

/// The recorded outputs (`outputs.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceOutputs {
    /// How the file was made.
    pub note: String,
    pub cases: Vec<ReferenceCase>,
}

/// One input patch and what the shipped models say about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCase {
    /// Crop file, relative to `tests/fixtures/model/`.
    pub image: String,
    /// Centre of the patch, LPS mm (the crop's central voxel).
    pub center_lps: [f64; 3],
    pub p_nodule: f32,
    pub p_malignant: f32,
}

/// The point a reference patch is taken around: the central voxel of the crop.
pub fn center_of(volume: &Volume) -> [f64; 3] {
    let [x, y, z] = volume.dims();
    volume.voxel_to_world([(x / 2) as f64, (y / 2) as f64, (z / 2) as f64])
}

/// Patches for `cases`, one per case in order, each from its volume.
pub fn patches(volumes: &[(&Volume, [f64; 3])], config: &PreprocessConfig) -> Vec<f32> {
    let mut out = Vec::with_capacity(volumes.len() * config.patch_len());
    for (volume, center) in volumes {
        extract_views_into(
            volume,
            *center,
            config,
            &PatchTransform::default(),
            &mut out,
        );
    }
    out
}

/// Deterministic pseudo-random values in [0, 1) (xorshift64 13/7/17, top 24 bits, fixed seed):
/// the benchmarks' input, which `scripts/bench_models_pytorch.py` generates identically.
pub fn uniform_values(n: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// The largest absolute difference between `expected` and `got`, or an error naming the first
/// length mismatch or non-finite value.
pub fn max_difference(expected: &[f32], got: &[f32]) -> Result<f32, String> {
    if expected.len() != got.len() {
        return Err(format!(
            "{} outputs, expected {}",
            got.len(),
            expected.len()
        ));
    }
    let mut max = 0.0f32;
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        if !g.is_finite() {
            return Err(format!("output {i} is {g}"));
        }
        max = max.max((e - g).abs());
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_measured_and_bad_outputs_refused() {
        assert_eq!(max_difference(&[0.5, 0.25], &[0.5, 0.5]), Ok(0.25));
        assert!(max_difference(&[0.5], &[0.5, 0.5]).is_err());
        assert!(max_difference(&[0.5], &[f32::NAN]).is_err());
    }
}
