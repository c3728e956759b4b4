//! Nodulens' detection pipeline: a whole CT [`Volume`](nodulens_core::Volume) in, places worth
//! scoring out — natively and, unchanged, in the browser (pure Rust, no threads, no I/O).
//!
//! The data's path: files → `Volume` (nodulens-core) → [`lung_mask`] → [`candidates`] →
//! patches → probabilities (the models, driven by the caller: [`Scoring`] hands out batches
//! and takes probabilities back) → findings → reports ([JSON](ReportDocument), [CSV](findings_csv) and a [DICOM SR](sr)). Each candidate is [segmented](segment)
//! and [measured](measure) on the scan's own voxels into a [`Site`], whose patch is cut from a
//! deterministic context ([`cut_patch`]); scored sites become [`Finding`]s with a
//! [Lung-RADS](lung_rads) category, and a scan's [`Report`].
//!
//! Everything runs on a [working grid](Grid) of about 1.25 mm voxels, whatever the scan's
//! resolution, so that a chest fits in a few tens of megabytes next to the volume.

mod candidates;
pub mod descriptors;
mod documents;
mod findings;
mod grid;
mod integral;
pub mod juxtapleural;
mod lung;
pub mod lung_rads;
pub mod malignancy;
pub mod measure;
pub mod morphology;
pub mod phantom;
mod scoring;
pub mod segment;
pub mod sr;

pub use candidates::{
    Candidate, MAX_CANDIDATES, MIN_RESPONSE_HU, SCALES_MM, candidates, candidates_up_to,
    distance_mm,
};
pub use descriptors::Descriptors;
pub use documents::{CSV_COLUMNS, ReportDocument, ReportSource, findings_csv};
pub use findings::{
    Finding, MERGE_MIN_MM, Report, ScanSummary, Site, all_findings, cut_patch, findings,
    lungs_covered, merge_duplicates, report_warnings, sites,
};
pub use grid::{Grid, WORK_SPACING_MM};
pub use lung::{CLOSING_MM, LungMask, LungSummary, MIN_LUNG_ML, THICK_SLICES_MM, lung_mask};
pub use lung_rads::{Assessment, Category};
pub use malignancy::{CombinationError, MalignancyCombination};
pub use measure::{Measurement, NoduleType, measure};
pub use scoring::{PatchBatch, Scoring, ScoringError};
pub use segment::{Segmentation, segment};
pub use sr::{SrContext, SrError, check_source, structured_report};
