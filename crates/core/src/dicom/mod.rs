//! DICOM reader (dicom-rs): single files with or without preamble and meta group,
//! folders, several series at once, multi-frame (enhanced CT) files, and every transfer
//! syntax whose dicom-rs codec is pure Rust (so it also runs in wasm).
//!
//! One pass ([`DicomStream`]): each file is read once and, if its series leads so far, its
//! slices are decoded at once, in arrival order; once every file is in, the chosen series
//! is sorted along the slice normal and [`arrange_slices`] puts the slices in place, in
//! the same buffer. The peak memory is the volume plus one file (plus the slices of a
//! series that led for a while and lost, in a folder of several).

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::ops::Range;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use crate::open::{ProgressFn, Stage, report};
use crate::slices::{ArrivalSink, SliceBuffer, arrange_slices};
use crate::volume::{clamp_i16, clamp_warning, cross, direction_from_axes, dot, norm};
use crate::{
    FileSource, Format, IntensityUnits, Metadata, OpenOptions, Patient, ReadError, SliceSource,
    Volume, VolumeHeader,
};
use crate::{Warning, WarningKind};

/// Transfer syntaxes whose codec needs C code and so is not built in (natively or in wasm).
const UNSUPPORTED_SYNTAXES: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2.4.80", "JPEG-LS lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS near-lossless"),
    ("1.2.840.10008.1.2.4.100", "MPEG2"),
    ("1.2.840.10008.1.2.4.102", "MPEG-4"),
    ("1.2.840.10008.1.2.4.110", "JPEG XL lossless"),
    ("1.2.840.10008.1.2.4.112", "JPEG XL"),
];

/// Decoded natively but not in the browser: the pure-Rust OpenJPEG port (openjp2) that
/// dicom-rs uses for HTJ2K corrupts wasm32 memory ("memory access out of bounds"), so the
/// browser refuses these clearly. (Plain JPEG 2000 is decoded by hayro-jpeg2000 everywhere.)
#[cfg(target_arch = "wasm32")]
const NATIVE_ONLY_SYNTAXES: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2.4.201", "HTJ2K lossless"),
    ("1.2.840.10008.1.2.4.202", "HTJ2K lossless RPCL"),
    ("1.2.840.10008.1.2.4.203", "HTJ2K"),
];

mod frames;
mod geometry;
mod header;
mod parse;
mod rescale;
mod stream;
mod walk;

use frames::*;
use geometry::*;
use header::*;
use parse::*;
use rescale::*;
use walk::*;

pub(crate) use stream::read;
use stream::*;
pub use stream::{Added, DicomStream};

#[cfg(test)]
// Tests build small inputs of known size; the reader's rules are for untrusted bytes.
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests;
