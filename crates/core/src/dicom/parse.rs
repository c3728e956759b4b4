//! Telling DICOM from other files and parsing one with dicom-rs, the lengths checked first.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

/// A parsed object: with a file meta group (the normal case) or a bare data set.
pub(super) enum Object {
    File(Box<dicom_object::DefaultDicomObject>),
    Bare(InMemDicomObject),
}

/// A parsed file.
pub(super) struct Parsed<'a> {
    pub(super) object: Object,
    /// The uncompressed pixel data, in the file's bytes, when they were left there (dicom-rs
    /// then read the attributes only; see [`native_pixel_data`]).
    pub(super) native_pixels: Option<&'a [u8]>,
}

impl Parsed<'_> {
    pub(super) fn dataset(&self) -> &InMemDicomObject {
        match &self.object {
            Object::File(file) => file,
            Object::Bare(bare) => bare,
        }
    }
    pub(super) fn transfer_syntax(&self) -> &str {
        match &self.object {
            Object::File(file) => file.meta().transfer_syntax().trim_end_matches(['\0', ' ']),
            Object::Bare(_) => IMPLICIT_VR_LITTLE_ENDIAN.uid(),
        }
    }
}

pub(super) enum Sniff {
    Preamble,
    MetaOnly,
    Bare,
    NotDicom,
}

pub(super) fn sniff(bytes: &[u8]) -> Sniff {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Sniff::Preamble
    } else if bytes.starts_with(b"DICM") {
        Sniff::MetaOnly
    } else if bytes.len() >= 8 {
        // A bare data set in implicit VR little endian starts with a small group number
        // (0008 identifying, sometimes 0002 or 0018) and a plausible 32-bit length.
        let group = u16::from_le_bytes([bytes[0], bytes[1]]);
        let length = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if matches!(group, 0x0002 | 0x0008 | 0x0010 | 0x0018 | 0x0020 | 0x0028)
            && (length as usize) < bytes.len()
        {
            Sniff::Bare
        } else {
            Sniff::NotDicom
        }
    } else {
        Sniff::NotDicom
    }
}

pub(super) fn parse<'a>(
    bytes: &'a [u8],
    name: &str,
    headers_only: bool,
) -> Result<Option<Parsed<'a>>, ReadError> {
    let bad = |e: &dyn std::fmt::Display| {
        ReadError::malformed(name, format!("not a readable DICOM file ({e})"))
    };
    let sniffed = sniff(bytes);
    let native_pixels = match sniffed {
        Sniff::Preamble => check_lengths(bytes, 132),
        Sniff::MetaOnly => check_lengths(bytes, 4),
        // A bare data set: implicit VR little endian from the first byte.
        Sniff::Bare => walk_data_set(bytes, 0, false, false)
            .map(|()| native_pixel_data(bytes, 0, false, false)),
        Sniff::NotDicom => Ok(None),
    }
    .map_err(|reason| ReadError::malformed(name, reason))?;
    // Uncompressed pixels are read in place later, so dicom-rs stops before them.
    let native_pixels = native_pixels.filter(|_| !headers_only);
    let options = || {
        let options = OpenFileOptions::new();
        if headers_only || native_pixels.is_some() {
            options.read_until(tags::PIXEL_DATA)
        } else {
            options
        }
    };
    let object = match sniffed {
        Sniff::Preamble => options()
            .read_preamble(ReadPreamble::Always)
            .from_reader(bytes)
            .map(|f| Object::File(Box::new(f)))
            .map_err(|e| bad(&e))?,
        Sniff::MetaOnly => options()
            .read_preamble(ReadPreamble::Never)
            .from_reader(bytes)
            .map(|f| Object::File(Box::new(f)))
            .map_err(|e| bad(&e))?,
        Sniff::Bare => {
            // Without the Pixel Data element (its 8-byte header and value) when the pixels
            // are read in place.
            let end = native_pixels
                .as_ref()
                .map_or(bytes.len(), |pixels| pixels.start.saturating_sub(8));
            let object = InMemDicomObject::read_dataset_with_ts(
                &bytes[..end],
                &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
            );
            Object::Bare(object.map_err(|e| bad(&e))?)
        }
        Sniff::NotDicom => return Ok(None),
    };
    Ok(Some(Parsed {
        object,
        native_pixels: native_pixels.map(|range| &bytes[range]),
    }))
}
