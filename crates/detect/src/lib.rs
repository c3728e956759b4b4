//! Nodulens' detection pipeline: a whole CT [`Volume`](nodulens_core::Volume) in, places worth
//! scoring out — natively and, unchanged, in the browser (pure Rust, no threads, no I/O).
//!
//! The data's path: files → `Volume` (nodulens-core) → [`lung_mask`] → [`candidates`] →
//! patches → probabilities (the models, driven by the caller: [`Scoring`] hands out batches
//! and takes probabilities back) → findings → reports. This crate has the first two stages and
//! the scoring protocol; patches, findings and reports are "Detection, part 2".
//!
//! Everything runs on a [working grid](Grid) of about 1.25 mm voxels, whatever the scan's
//! resolution, so that a chest fits in a few tens of megabytes next to the volume.

mod candidates;
mod grid;
mod integral;
mod lung;
pub mod morphology;
pub mod phantom;
mod scoring;

pub use candidates::{
    Candidate, MAX_CANDIDATES, MIN_RESPONSE_HU, SCALES_MM, candidates, candidates_up_to,
};
pub use grid::{Grid, WORK_SPACING_MM};
pub use lung::{CLOSING_MM, LungMask, LungSummary, MIN_LUNG_ML, THICK_SLICES_MM, lung_mask};
pub use scoring::{PatchBatch, Scoring, ScoringError};
