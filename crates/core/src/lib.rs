//! Nodulens core: everything that does not need a GPU, a browser or a terminal.
//!
//! One [`Volume`] type (int16 Hounsfield units on a grid placed in DICOM patient
//! coordinates, LPS millimetres) and one reader per format producing it. Pure Rust,
//! builds for native targets and `wasm32-unknown-unknown` alike.
//!
//! Entry point: [`open`], which takes any set of files (a [`FileSource`]) and detects
//! the format: DICOM (files, folders, zips, multi-frame), MetaImage (`.mhd`+`.raw`/`.zraw`,
//! `.mha`), NIfTI-1 (`.nii`, `.nii.gz`) or a PNG/JPEG slice stack.

pub mod dicom;
mod error;
pub mod metaimage;
pub mod nifti;
mod open;
pub mod preprocess;
mod samples;
pub mod slices;
mod source;
pub mod stack;
pub mod view;
mod volume;
mod zipped;

pub use error::ReadError;
pub use open::{OpenOptions, Opening, Progress, ProgressFn, Stage, begin_open, open};
#[cfg(not(target_arch = "wasm32"))]
pub use source::DiskFiles;
pub use source::{FileSource, MemoryFiles};
pub use volume::{
    Format, IntensityUnits, MAX_VOXELS, Metadata, Patient, RunningStatistics, SliceSource,
    Statistics, Volume, VolumeError, VolumeHeader, Warning, WarningKind,
};
