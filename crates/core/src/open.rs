//! Format detection: which reader a set of files goes to.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use crate::source::lower_name;
use crate::{FileSource, MAX_VOXELS, ReadError, Volume};

/// Settings a user may change when opening a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenOptions {
    /// Refuse volumes larger than this many voxels (checked before allocating).
    pub max_voxels: u64,
    /// Voxel size given to PNG/JPEG stacks, which carry none: `[x, y, z]` mm.
    pub stack_spacing_mm: [f64; 3],
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_voxels: MAX_VOXELS,
            stack_spacing_mm: [1.0, 1.0, 1.0],
        }
    }
}

/// How far a decode has got. `done` of `total` steps of the named stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Reading headers to find and sort the series.
    Scanning,
    /// Decoding pixel data into the volume.
    Decoding,
}

/// A progress callback; returning `false` cancels the decode.
pub type ProgressFn<'a> = dyn FnMut(Progress) -> bool + 'a;

pub(crate) fn report(
    progress: &mut ProgressFn<'_>,
    stage: Stage,
    done: usize,
    total: usize,
) -> Result<(), ReadError> {
    if progress(Progress { stage, done, total }) {
        Ok(())
    } else {
        Err(ReadError::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    MetaHeader,
    MetaData,
    Nifti,
    Picture,
    Other,
}

fn kind_of(name: &str) -> Kind {
    let lower = lower_name(name);
    let ext = |e: &str| lower.ends_with(e);
    if ext(".zip") {
        Kind::Zip
    } else if ext(".mhd") || ext(".mha") {
        Kind::MetaHeader
    } else if ext(".raw") || ext(".zraw") {
        Kind::MetaData
    } else if ext(".nii") || ext(".nii.gz") {
        Kind::Nifti
    } else if ext(".png") || ext(".jpg") || ext(".jpeg") {
        Kind::Picture
    } else {
        Kind::Other
    }
}

/// Opens a scan from any set of files, detecting the format.
///
/// * a `.zip` (or several) is unpacked and its contents opened as if given directly;
/// * one `.mhd`/`.mha` or `.nii`/`.nii.gz` file is read as that volume;
/// * PNG/JPEG files alone form a slice stack;
/// * anything else is taken as DICOM: the CT series with the most slices is chosen and
///   the others are listed in the metadata.
pub fn open(
    source: &dyn FileSource,
    options: &OpenOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Volume, ReadError> {
    match begin_open(source, options, progress)? {
        Opening::Decoded(volume) => Ok(volume),
        Opening::Dicom(_) => crate::dicom::read(source, options, progress),
    }
}

/// A scan opened as far as [`begin_open`] takes it.
#[derive(Debug)]
// Made once per opened scan and moved once: boxing the volume would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Opening {
    /// Decoded at once: one-file formats, image stacks, and whatever came in a zip.
    Decoded(Volume),
    /// DICOM files, none read yet: give them, whole, one by one, to this stream (the
    /// browser worker does, as the files arrive).
    Dicom(crate::dicom::DicomStream),
}

/// [`open`], except that DICOM files are left to the caller to feed to a
/// [`DicomStream`](crate::dicom::DicomStream) as it reads them (the browser worker decodes
/// each while the next ones are still being read). Every other format is decoded here.
pub fn begin_open(
    source: &dyn FileSource,
    options: &OpenOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Opening, ReadError> {
    if source.count() == 0 {
        return Err(ReadError::NoFiles);
    }
    let kinds: Vec<Kind> = (0..source.count())
        .map(|i| kind_of(source.name(i)))
        .collect();
    let zips: Vec<usize> = (0..kinds.len())
        .filter(|&i| kinds[i] == Kind::Zip)
        .collect();
    if !zips.is_empty() {
        if zips.len() != kinds.len() {
            return Err(ReadError::unsupported(
                source.name(zips[0]),
                "a zip was given together with other files; open the zip alone",
            ));
        }
        let unpacked = crate::zipped::unpack(source, &zips, options)?;
        if unpacked.count() == 0 {
            return Err(ReadError::NoImage(format!(
                "{}: the zip holds no files",
                source.name(zips[0])
            )));
        }
        let inner_zip = (0..unpacked.count()).find(|&i| kind_of(unpacked.name(i)) == Kind::Zip);
        if let Some(i) = inner_zip {
            return Err(ReadError::unsupported(
                unpacked.name(i),
                "a zip inside a zip; unpack the outer one first",
            ));
        }
        return open(&unpacked, options, progress).map(Opening::Decoded);
    }

    let volumes: Vec<usize> = (0..kinds.len())
        .filter(|&i| matches!(kinds[i], Kind::MetaHeader | Kind::Nifti))
        .collect();
    match volumes.as_slice() {
        [] => {}
        [only] => {
            return if kinds[*only] == Kind::Nifti {
                crate::nifti::read(source, *only, options)
            } else {
                crate::metaimage::read(source, *only, options)
            }
            .map(Opening::Decoded);
        }
        [first, second, ..] => {
            return Err(ReadError::unsupported(
                source.name(*first),
                format!(
                    "several volumes given at once (also {}); open one at a time",
                    source.name(*second)
                ),
            ));
        }
    }
    if let Some(raw) = (0..kinds.len()).find(|&i| kinds[i] == Kind::MetaData) {
        return Err(ReadError::malformed(
            source.name(raw),
            "a MetaImage data file needs its .mhd header: give both files",
        ));
    }

    let pictures: Vec<usize> = (0..kinds.len())
        .filter(|&i| kinds[i] == Kind::Picture)
        .collect();
    if !pictures.is_empty() && pictures.len() == kinds.len() {
        return crate::stack::read(source, &pictures, options, progress).map(Opening::Decoded);
    }
    // Mixed pictures and other files: the others are DICOM candidates, pictures are ignored
    // by the DICOM reader with a warning.
    Ok(Opening::Dicom(crate::dicom::DicomStream::new(
        source.count(),
        options,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryFiles;

    fn no_progress() -> impl FnMut(Progress) -> bool {
        |_| true
    }

    #[test]
    fn nothing_given_is_an_error() {
        let err = open(
            &MemoryFiles::default(),
            &OpenOptions::default(),
            &mut no_progress(),
        )
        .unwrap_err();
        assert!(matches!(err, ReadError::NoFiles));
    }

    #[test]
    fn raw_without_header_says_so() {
        let files = MemoryFiles::new(vec![("scan.raw".into(), vec![0; 16])]);
        let err = open(&files, &OpenOptions::default(), &mut no_progress()).unwrap_err();
        assert!(err.to_string().contains("needs its .mhd header"), "{err}");
    }

    #[test]
    fn two_volumes_are_refused() {
        let files = MemoryFiles::new(vec![("a.nii".into(), vec![]), ("b.mha".into(), vec![])]);
        let err = open(&files, &OpenOptions::default(), &mut no_progress()).unwrap_err();
        assert!(err.to_string().contains("several volumes"), "{err}");
    }
}
