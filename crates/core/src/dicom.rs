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

use crate::detect::{ProgressFn, Stage, report};
use crate::volume::{clamp_i16, clamp_warning, cross, direction_from_axes, dot, norm};
use crate::{
    FileSource, Format, IntensityUnits, Metadata, OpenOptions, ReadError, Volume, VolumeHeader,
};

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

/// A parsed object: with a file meta group (the normal case) or a bare data set.
enum Object {
    File(Box<dicom_object::DefaultDicomObject>),
    Bare(InMemDicomObject),
}

/// A parsed file.
struct Parsed<'a> {
    object: Object,
    /// The uncompressed pixel data, in the file's bytes, when they were left there (dicom-rs
    /// then read the attributes only; see [`native_pixel_data`]).
    native_pixels: Option<&'a [u8]>,
}

impl Parsed<'_> {
    fn dataset(&self) -> &InMemDicomObject {
        match &self.object {
            Object::File(file) => file,
            Object::Bare(bare) => bare,
        }
    }
    fn transfer_syntax(&self) -> &str {
        match &self.object {
            Object::File(file) => file.meta().transfer_syntax().trim_end_matches(['\0', ' ']),
            Object::Bare(_) => IMPLICIT_VR_LITTLE_ENDIAN.uid(),
        }
    }
}

enum Sniff {
    Preamble,
    MetaOnly,
    Bare,
    NotDicom,
}

fn sniff(bytes: &[u8]) -> Sniff {
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

fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let b: [u8; 2] = bytes.get(at..)?.get(..2)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

/// The (group, element) tag of the element at `at`.
fn tag_at(bytes: &[u8], at: usize, big_endian: bool) -> Option<(u16, u16)> {
    Some((
        read_u16(bytes, at, big_endian)?,
        read_u16(bytes, at.checked_add(2)?, big_endian)?,
    ))
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..)?.get(..4)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// VRs whose explicit encoding has a 2-byte length. Every other VR, including an unknown one
/// (which dicom-rs reads as UN), has 2 reserved bytes and a 4-byte length.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// Walks the top-level element headers and refuses a file whose declared lengths run past
/// its end, before dicom-rs allocates them: a truncated file or one whose transfer syntax is
/// mislabelled would otherwise cost gigabytes of zero-filled buffers. Sequences and items are
/// walked into; deflated data sets are inflated (capped) and walked.
///
/// Returns where the top-level Pixel Data's bytes lie when the transfer syntax stores them
/// as they are (see [`native_pixel_data`]).
fn check_lengths(bytes: &[u8], start: usize) -> Result<Option<Range<usize>>, String> {
    // The meta group: always explicit VR little endian. dicom-rs reads it as its group length
    // (0002,0000) says: whole elements, of any group, until that many bytes are consumed; the
    // data set starts where that ends, so the walk must end there too.
    let mut at = start;
    let mut syntax = String::new();
    let cut_short = "the file meta group is cut short";
    let group_length = match explicit_length(bytes, at, false) {
        Some((4, header)) if tag_at(bytes, at, false) == Some((0x0002, 0x0000)) => {
            let value = at.checked_add(header).ok_or(cut_short)?;
            let length = read_u32(bytes, value, false).ok_or(cut_short)?;
            at = value.checked_add(4).ok_or(cut_short)?;
            length as usize
        }
        // dicom-rs refuses a meta group that does not start with its length.
        _ => return Ok(None),
    };
    let mut consumed = 0usize;
    while consumed < group_length {
        let (group, element) = tag_at(bytes, at, false).unwrap_or((0, 0));
        let (length, header) = explicit_length(bytes, at, false).ok_or(cut_short)?;
        // The end in u64: `at + header + length` wraps a 32-bit usize back to `at`, and the
        // walk would never move on.
        let value = at.saturating_add(header);
        let end = value
            .checked_add(length)
            .filter(|&end| length != u32::MAX as usize && end <= bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "meta element ({group:04X},{element:04X}) claims {length} bytes but the file ends first (truncated)"
            ));
        };
        if (group, element) == (0x0002, 0x0010) {
            syntax = String::from_utf8_lossy(&bytes[value..end])
                .trim_end_matches(['\0', ' '])
                .to_owned();
        }
        consumed = consumed.saturating_add(end.saturating_sub(at));
        at = end;
    }
    let (explicit, big_endian) = match syntax.as_str() {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        "1.2.840.10008.1.2.1.99" => {
            // Deflated: walk the inflated data set (capped, so a deflate bomb stops here too).
            let mut inflated = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(
                    flate2::read::DeflateDecoder::new(&bytes[at.min(bytes.len())..]),
                    1 << 30,
                ),
                &mut inflated,
            )
            .map_err(|e| format!("the deflated data set is corrupt ({e})"))?;
            return walk_data_set(&inflated, 0, true, false).map(|()| None);
        }
        _ => (true, false),
    };
    walk_data_set(bytes, at, explicit, big_endian)?;
    Ok(if NATIVE_SYNTAXES.contains(&syntax.as_str()) {
        native_pixel_data(bytes, at, explicit, big_endian)
    } else {
        None
    })
}

/// Transfer syntaxes that store pixel data as they are (implicit and explicit VR little
/// endian, explicit VR big endian).
const NATIVE_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// Sequences nested deeper than this are left to dicom-rs.
const NATIVE_WALK_DEPTH: usize = 16;

/// Where the value of the top-level Pixel Data element (7FE0,0010) lies, when it has a
/// defined length: found by stepping over the top-level elements of the data set at `at`
/// (over nested sequences whole, so an icon image's Pixel Data inside a sequence is not
/// taken for the slice's). Decoding then reads the pixels in place, instead of dicom-rs
/// copying them into a new buffer first (for a CT slice, most of the time spent parsing).
/// `None` for anything unusual; the caller then lets dicom-rs read the whole file.
fn native_pixel_data(
    bytes: &[u8],
    mut at: usize,
    explicit: bool,
    big_endian: bool,
) -> Option<Range<usize>> {
    loop {
        let (tag, length, header) = element_header(bytes, at, explicit, big_endian)?;
        let value = at.checked_add(header)?;
        if tag == (0x7FE0, 0x0010) {
            let end = value.checked_add(length?)?;
            return (end <= bytes.len()).then_some(value..end);
        }
        at = match length {
            Some(length) => value.checked_add(length)?,
            None if is_sequence(bytes, at, explicit) => {
                skip_undefined_sequence(bytes, value, explicit, big_endian, 0)?
            }
            None => return None,
        };
    }
}

/// Tag, value length (`None` when undefined) and header size of the element at `at`.
fn element_header(
    bytes: &[u8],
    at: usize,
    explicit: bool,
    big_endian: bool,
) -> Option<((u16, u16), Option<usize>, usize)> {
    let tag = tag_at(bytes, at, big_endian)?;
    let (length, header) = if explicit && tag.0 != 0xFFFE {
        explicit_length(bytes, at, big_endian)?
    } else {
        (read_u32(bytes, at.checked_add(4)?, big_endian)? as usize, 8)
    };
    let length = (length != u32::MAX as usize).then_some(length);
    Some((tag, length, header))
}

/// The two VR bytes of an explicit-VR element at `at`.
fn vr_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    bytes.get(at.checked_add(4)?..)?.get(..2)
}

/// Whether an element of undefined length at `at` is a sequence (in implicit VR, the only
/// other such element, encapsulated Pixel Data, is handled before this is asked).
fn is_sequence(bytes: &[u8], at: usize, explicit: bool) -> bool {
    !explicit || vr_at(bytes, at) == Some(b"SQ")
}

/// The offset just past the delimiter of a sequence of undefined length whose items start
/// at `at`.
fn skip_undefined_sequence(
    bytes: &[u8],
    mut at: usize,
    explicit: bool,
    big_endian: bool,
    depth: usize,
) -> Option<usize> {
    if depth >= NATIVE_WALK_DEPTH {
        return None;
    }
    loop {
        let (tag, length, _) = element_header(bytes, at, explicit, big_endian)?;
        let value = at.checked_add(8)?;
        at = match (tag, length) {
            ((0xFFFE, 0xE0DD), _) => return Some(value),
            ((0xFFFE, 0xE000), Some(length)) => value.checked_add(length)?,
            ((0xFFFE, 0xE000), None) => {
                skip_undefined_item(bytes, value, explicit, big_endian, depth.checked_add(1)?)?
            }
            _ => return None,
        };
    }
}

/// The offset just past the delimiter of an item of undefined length whose elements start
/// at `at`.
fn skip_undefined_item(
    bytes: &[u8],
    mut at: usize,
    explicit: bool,
    big_endian: bool,
    depth: usize,
) -> Option<usize> {
    loop {
        let (tag, length, header) = element_header(bytes, at, explicit, big_endian)?;
        let value = at.checked_add(header)?;
        if tag == (0xFFFE, 0xE00D) {
            return at.checked_add(8);
        }
        at = match length {
            Some(length) => value.checked_add(length)?,
            None if is_sequence(bytes, at, explicit) => {
                skip_undefined_sequence(bytes, value, explicit, big_endian, depth)?
            }
            None => return None,
        };
    }
}

/// The element walk of [`check_lengths`] over a data set starting at `at`.
fn walk_data_set(
    bytes: &[u8],
    mut at: usize,
    explicit: bool,
    big_endian: bool,
) -> Result<(), String> {
    // A linear walk through nested data sets too: sequences and items are entered (only
    // their headers skipped), so a bogus length deep inside a sequence is caught as well.
    // Encapsulated pixel data holds fragments, not elements: those are skipped whole.
    // Every step moves `at` forward by at least 8 bytes, checked: a sum that wrapped a
    // 32-bit usize would send the walk back and round forever.
    let mut in_fragments = false;
    let past_the_end = "an element header is cut short";
    while bytes.len().saturating_sub(at) >= 8 {
        let (group, element) = tag_at(bytes, at, big_endian).unwrap_or((0, 0));
        let after_header = at.checked_add(8).ok_or(past_the_end)?;
        // Only items and delimiters are structural; any other (FFFE,xxxx) tag is an element
        // to dicom-rs, with a length it will allocate (cargo fuzz: (FFFE,FFFF) of 4 GB).
        if group == 0xFFFE && matches!(element, 0xE000 | 0xE00D | 0xE0DD) {
            let length = read_u32(bytes, at.saturating_add(4), big_endian).unwrap_or(0) as usize;
            match element {
                0xE000 if in_fragments && length != u32::MAX as usize => {
                    at = after_header
                        .checked_add(length)
                        .filter(|&end| end <= bytes.len())
                        .ok_or_else(|| {
                            format!(
                                "a pixel data fragment claims {length} bytes but the file ends first (truncated)"
                            )
                        })?;
                }
                0xE0DD => {
                    in_fragments = false;
                    at = after_header;
                }
                _ => at = after_header,
            }
            continue;
        }
        // dicom-rs reads every (FFFE,xxxx) header as tag and 4-byte length, with no VR, in
        // explicit VR too (cargo fuzz: a (FFFE,0000) whose "VR" bytes hid a 4 GB length).
        let vr_less = !explicit || group == 0xFFFE;
        let (length, header) = if vr_less {
            (
                read_u32(bytes, at.saturating_add(4), big_endian).unwrap_or(0) as usize,
                8,
            )
        } else {
            explicit_length(bytes, at, big_endian).ok_or(past_the_end)?
        };
        let value = at.checked_add(header).ok_or(past_the_end)?;
        if length == u32::MAX as usize {
            in_fragments = (group, element) == (0x7FE0, 0x0010);
            at = value;
            continue;
        }
        let item_start = if big_endian {
            [0xFF, 0xFE, 0xE0, 0x00]
        } else {
            [0xFE, 0xFF, 0x00, 0xE0]
        };
        let is_sequence = if !vr_less {
            vr_at(bytes, at) == Some(b"SQ")
        } else {
            bytes.get(value..).and_then(|b| b.get(..4)) == Some(&item_start[..])
        };
        if is_sequence {
            at = value;
            continue;
        }
        // dicom-rs reads whole numeric values only (a UL of length 5 consumes 4 bytes), so such
        // a length would desynchronise its reading from this walk (cargo fuzz: 2 GB).
        let vr = if !explicit {
            Some(implicit_vr(group, element))
        } else if vr_less {
            None
        } else {
            vr_at(bytes, at).and_then(|v| <[u8; 2]>::try_from(v).ok())
        };
        if let Some(size) = vr.and_then(|vr| numeric_value_size(&vr))
            && !length.is_multiple_of(size)
        {
            return Err(format!(
                "element ({group:04X},{element:04X}) claims {length} bytes, not a whole number of {size}-byte values (corrupt)"
            ));
        }
        match value.checked_add(length).filter(|&end| end <= bytes.len()) {
            Some(end) => at = end,
            None => {
                let what = if (group, element) == (0x7FE0, 0x0010) {
                    "Pixel Data".to_owned()
                } else {
                    format!("element ({group:04X},{element:04X})")
                };
                return Err(format!(
                    "{what} claims {length} bytes but only {} remain (truncated, or the transfer syntax is mislabelled)",
                    bytes.len().saturating_sub(value)
                ));
            }
        }
    }
    Ok(())
}

/// The VR dicom-rs gives a tag in an implicit-VR data set (its dictionary, else UN).
fn implicit_vr(group: u16, element: u16) -> [u8; 2] {
    use dicom_core::Tag;
    use dicom_core::dictionary::DataDictionary;
    if (group, element) == (0x7FE0, 0x0010) || (group >> 8 == 0x60 && element == 0x3000) {
        return *b"OW";
    }
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(Tag(group, element))
        .map(|entry| entry.vr.relaxed().to_bytes())
        .unwrap_or(*b"UN")
}

/// Size of one value of a numeric VR, which dicom-rs reads as whole values.
fn numeric_value_size(vr: &[u8; 2]) -> Option<usize> {
    match vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"UL" | b"SL" | b"FL" | b"AT" | b"OL" | b"OF" => Some(4),
        b"FD" | b"SV" | b"UV" | b"OD" | b"OV" => Some(8),
        _ => None,
    }
}

/// Length and header size of an explicit-VR element at `at`.
fn explicit_length(bytes: &[u8], at: usize, big_endian: bool) -> Option<(usize, usize)> {
    let vr: &[u8; 2] = vr_at(bytes, at)?.try_into().ok()?;
    if SHORT_VRS.contains(&vr) {
        Some((
            usize::from(read_u16(bytes, at.checked_add(6)?, big_endian)?),
            8,
        ))
    } else {
        Some((
            read_u32(bytes, at.checked_add(8)?, big_endian)? as usize,
            12,
        ))
    }
}

fn parse<'a>(
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

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_owned())
}

fn floats(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    obj.get(tag)?
        .to_multi_float64()
        .ok()
        .filter(|v| v.iter().all(|x| x.is_finite()))
}

fn float(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    floats(obj, tag)?.first().copied()
}

fn int(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

/// The first item of a sequence attribute.
fn first_item(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// Looks `tag` up inside functional group `group` of a per-frame or shared item.
fn in_group(
    item: Option<&InMemDicomObject>,
    group: dicom_core::Tag,
    tag: dicom_core::Tag,
) -> Option<Vec<f64>> {
    floats(first_item(item?, group)?, tag)
}

/// One image plane: a single-frame file, or one frame of a multi-frame file.
#[derive(Debug, Clone)]
struct Plane {
    file: usize,
    frame: u32,
    position: Option<[f64; 3]>,
    instance: Option<i64>,
    slope: f64,
    intercept: f64,
}

/// What the pixel decoder needs to know of a file.
#[derive(Debug, Clone, PartialEq)]
struct PixelLayout {
    rows: usize,
    columns: usize,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
}

/// Header facts of one file that take part in grouping.
#[derive(Debug, Clone)]
struct FileHeader {
    series_uid: String,
    modality: Option<String>,
    layout: PixelLayout,
    orientation: Option<[f64; 6]>,
    pixel_spacing: Option<[f64; 2]>,
    metadata: Metadata,
    spacing_between_slices: Option<f64>,
    planes: Vec<Plane>,
}

fn to3(v: &[f64]) -> Option<[f64; 3]> {
    (v.len() >= 3).then(|| [v[0], v[1], v[2]])
}

fn header(
    obj: &InMemDicomObject,
    file: usize,
    name: &str,
) -> Result<Option<FileHeader>, ReadError> {
    let Some(rows) = int(obj, tags::ROWS) else {
        return Ok(None); // not an image (a report, a DICOMDIR, a presentation state)
    };
    let columns = int(obj, tags::COLUMNS)
        .ok_or_else(|| ReadError::malformed(name, "Rows present but Columns missing"))?;
    if rows <= 0 || columns <= 0 || rows > 65535 || columns > 65535 {
        return Err(ReadError::malformed(
            name,
            format!("impossible image size {columns}×{rows}"),
        ));
    }
    let samples = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if samples != 1 {
        return Err(ReadError::unsupported(
            name,
            format!("{samples} samples per pixel (a colour image, not a CT slice)"),
        ));
    }
    let bits_allocated = int(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    let Ok(bits_allocated @ (8 | 16 | 32)) = u16::try_from(bits_allocated) else {
        return Err(ReadError::unsupported(
            name,
            format!("{bits_allocated} bits allocated per pixel"),
        ));
    };
    let bits_stored = int(obj, tags::BITS_STORED)
        .unwrap_or(i64::from(bits_allocated))
        .clamp(1, i64::from(bits_allocated));
    let bits_stored = u16::try_from(bits_stored).unwrap_or(bits_allocated);
    // Both in 1..=65535 (checked above).
    let layout = PixelLayout {
        rows: usize::try_from(rows).unwrap_or(0),
        columns: usize::try_from(columns).unwrap_or(0),
        bits_allocated,
        bits_stored,
        signed: int(obj, tags::PIXEL_REPRESENTATION) == Some(1),
    };
    let frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    if !(1..=100_000).contains(&frames) {
        return Err(ReadError::malformed(
            name,
            format!("impossible number of frames {frames}"),
        ));
    }
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame: Vec<&InMemDicomObject> = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .map(|items| items.iter().collect())
        .unwrap_or_default();
    let orientation = floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
        .or_else(|| {
            in_group(
                shared,
                tags::PLANE_ORIENTATION_SEQUENCE,
                tags::IMAGE_ORIENTATION_PATIENT,
            )
        })
        .or_else(|| {
            in_group(
                per_frame.first().copied(),
                tags::PLANE_ORIENTATION_SEQUENCE,
                tags::IMAGE_ORIENTATION_PATIENT,
            )
        })
        .filter(|v| v.len() >= 6)
        .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
    let pixel_spacing = floats(obj, tags::PIXEL_SPACING)
        .or_else(|| in_group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING))
        .or_else(|| {
            in_group(
                per_frame.first().copied(),
                tags::PIXEL_MEASURES_SEQUENCE,
                tags::PIXEL_SPACING,
            )
        })
        .or_else(|| floats(obj, tags::IMAGER_PIXEL_SPACING))
        .filter(|v| v.len() >= 2 && v[0] > 0.0 && v[1] > 0.0)
        .map(|v| [v[0], v[1]]);
    let slice_thickness = float(obj, tags::SLICE_THICKNESS).or_else(|| {
        in_group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied())
    });
    let rescale = |item: Option<&InMemDicomObject>| {
        let slope = in_group(
            item,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_SLOPE,
        )?;
        let intercept = in_group(
            item,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_INTERCEPT,
        )?;
        Some((*slope.first()?, *intercept.first()?))
    };
    let top_rescale = (
        float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    );
    let instance = int(obj, tags::INSTANCE_NUMBER);
    let planes = if frames == 1 && per_frame.is_empty() {
        vec![Plane {
            file,
            frame: 0,
            position: floats(obj, tags::IMAGE_POSITION_PATIENT)
                .as_deref()
                .and_then(to3),
            instance,
            slope: top_rescale.0,
            intercept: top_rescale.1,
        }]
    } else {
        let shared_rescale = rescale(shared);
        // 1..=100,000 frames (checked above).
        (0..u32::try_from(frames).unwrap_or(0))
            .map(|frame| {
                let f = frame as usize;
                let item = per_frame.get(f).copied();
                let (slope, intercept) = rescale(item).or(shared_rescale).unwrap_or(top_rescale);
                Plane {
                    file,
                    frame,
                    position: in_group(
                        item,
                        tags::PLANE_POSITION_SEQUENCE,
                        tags::IMAGE_POSITION_PATIENT,
                    )
                    .as_deref()
                    .and_then(to3),
                    instance: Some(i64::from(frame)),
                    slope,
                    intercept,
                }
            })
            .collect()
    };
    let modality = text(obj, tags::MODALITY);
    Ok(Some(FileHeader {
        series_uid: text(obj, tags::SERIES_INSTANCE_UID)
            .unwrap_or_else(|| "(no series UID)".to_owned()),
        modality: modality.clone(),
        layout,
        orientation,
        pixel_spacing,
        spacing_between_slices: float(obj, tags::SPACING_BETWEEN_SLICES).filter(|s| *s > 0.0),
        metadata: Metadata {
            modality,
            series_uid: text(obj, tags::SERIES_INSTANCE_UID),
            series_description: text(obj, tags::SERIES_DESCRIPTION),
            kernel: text(obj, tags::CONVOLUTION_KERNEL),
            slice_thickness_mm: slice_thickness,
            manufacturer: text(obj, tags::MANUFACTURER),
            study_date: text(obj, tags::STUDY_DATE),
            other_series: Vec::new(),
        },
        planes,
    }))
}

/// A set of planes that can form one volume: same series, size and orientation.
#[derive(Debug)]
struct Group {
    key: String,
    first: FileHeader,
    planes: Vec<Plane>,
    files: usize,
}

fn group_key(h: &FileHeader) -> String {
    let orientation = h
        .orientation
        .map(|o| {
            o.iter()
                .map(|v| format!("{:.3}", v))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    format!(
        "{}|{}x{}|{}",
        h.series_uid, h.layout.columns, h.layout.rows, orientation
    )
}

fn describe(group: &Group) -> String {
    format!(
        "series {} ({}, {} image{}, {}×{}{})",
        group.first.series_uid,
        group.first.modality.as_deref().unwrap_or("no modality"),
        group.planes.len(),
        if group.planes.len() == 1 { "" } else { "s" },
        group.first.layout.columns,
        group.first.layout.rows,
        group
            .first
            .metadata
            .series_description
            .as_deref()
            .map(|d| format!(", \"{d}\""))
            .unwrap_or_default()
    )
}

/// Reads the DICOM images among `source`'s files into one volume: each file is read once,
/// in order, and decoded as it comes (see [`DicomStream`]).
pub(crate) fn read(
    source: &dyn FileSource,
    options: &OpenOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Volume, ReadError> {
    let total = source.count();
    let mut stream = DicomStream::new(total, options);
    let mut slices = SliceBuffer::default();
    for file in 0..total {
        report(progress, Stage::Decoding, file, total)?;
        let bytes = source.read(file)?;
        stream.add_file(file, source.name(file), &bytes, &mut slices)?;
    }
    for file in stream.files_to_decode_late()? {
        let bytes = source.read(file)?;
        stream.decode_late(file, source.name(file), &bytes, &mut slices)?;
    }
    report(progress, Stage::Decoding, total, total)?;
    let (header, order) = stream.finish()?;
    let slice_len = header.dims[0].saturating_mul(header.dims[1]);
    let mut voxels = slices.voxels;
    arrange_slices(&mut voxels, &slices.lengths, &order, slice_len)
        .map_err(|reason| ReadError::NoImage(format!("internal: {reason}")))?;
    // The header's geometry was checked by `finish`; only the arrangement could fail here.
    Volume::new(header, voxels).map_err(|e| ReadError::NoImage(format!("internal: {e}")))
}

/// Where [`DicomStream`] puts decoded slices, in the order it decodes them (the arrival
/// order): [`arrange_slices`] later puts the chosen ones in place.
pub trait ArrivalSink {
    /// About this many voxels are on their way (a hint for reserving memory).
    fn expect(&mut self, voxels: usize);
    /// A buffer for the next slice: `columns × rows` voxels, row by row.
    fn slice(&mut self, columns: usize, rows: usize) -> Result<&mut [i16], ReadError>;
    /// The slice of the last [`slice`](Self::slice) call is decoded.
    fn done(&mut self) -> Result<(), ReadError>;
}

/// Slices laid end to end in memory, in arrival order.
#[derive(Debug, Default)]
pub struct SliceBuffer {
    pub voxels: Vec<i16>,
    /// Length of each slice, in arrival order.
    pub lengths: Vec<usize>,
}

impl ArrivalSink for SliceBuffer {
    fn expect(&mut self, voxels: usize) {
        self.voxels
            .reserve(voxels.saturating_sub(self.voxels.len()));
    }
    fn slice(&mut self, columns: usize, rows: usize) -> Result<&mut [i16], ReadError> {
        let len = columns
            .checked_mul(rows)
            .and_then(|len| len.checked_add(self.voxels.len()).map(|_| len))
            .ok_or_else(|| {
                ReadError::NoImage(format!("{columns}×{rows} slices overflow memory"))
            })?;
        let start = self.voxels.len();
        self.voxels.resize(start.saturating_add(len), 0);
        self.lengths.push(len);
        Ok(&mut self.voxels[start..])
    }
    fn done(&mut self) -> Result<(), ReadError> {
        Ok(())
    }
}

/// Rearranges, in place, slices laid end to end in arrival order (`lengths[i]` voxels each)
/// so that `voxels` holds slice `order[0]`, then `order[1]`, … (each `slice_len` long); the
/// slices not named are dropped. No second copy of the volume is ever made.
// Every offset lies inside `voxels`, whose slice lengths add up to its length (checked
// first, without overflow), so none of these sums or products can wrap.
#[allow(clippy::arithmetic_side_effects)]
pub fn arrange_slices(
    voxels: &mut Vec<i16>,
    lengths: &[usize],
    order: &[usize],
    slice_len: usize,
) -> Result<(), String> {
    let total = lengths
        .iter()
        .try_fold(0usize, |sum, &len| sum.checked_add(len));
    if total != Some(voxels.len()) {
        return Err("slice lengths do not add up to the voxels".into());
    }
    let mut chosen = vec![usize::MAX; lengths.len()];
    for (slot, &arrival) in order.iter().enumerate() {
        match chosen.get_mut(arrival) {
            Some(c) if *c == usize::MAX && lengths[arrival] == slice_len => *c = slot,
            Some(c) if *c != usize::MAX => return Err(format!("slice {arrival} placed twice")),
            Some(_) => return Err(format!("slice {arrival} is not {slice_len} voxels")),
            None => return Err(format!("slice {arrival} never arrived")),
        }
    }
    // Compact the chosen slices to the front, keeping their arrival order. Each moves
    // towards the start (only other slices lie before it), so copy_within is safe.
    let mut compacted_slot = Vec::with_capacity(order.len());
    let mut start = 0;
    for (arrival, &len) in lengths.iter().enumerate() {
        if chosen[arrival] != usize::MAX {
            let to = compacted_slot.len() * slice_len;
            voxels.copy_within(start..start + len, to);
            compacted_slot.push(chosen[arrival]);
        }
        start += len;
    }
    voxels.truncate(order.len() * slice_len);
    // Compacted slice i belongs in slot compacted_slot[i]: follow each cycle of that
    // permutation, carrying one displaced slice in scratch.
    let mut scratch = vec![0i16; slice_len];
    let mut placed = vec![false; order.len()];
    for start in 0..order.len() {
        if placed[start] {
            continue;
        }
        scratch.copy_from_slice(&voxels[start * slice_len..(start + 1) * slice_len]);
        let mut from = start;
        loop {
            placed[from] = true;
            let to = compacted_slot[from];
            voxels[to * slice_len..(to + 1) * slice_len].swap_with_slice(&mut scratch);
            if to == start {
                break;
            }
            from = to;
        }
    }
    Ok(())
}

/// What [`DicomStream::add_file`] did with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Its slices went to the sink.
    Decoded,
    /// An image of another series than the leading one: keep its bytes at hand, in case
    /// [`DicomStream::files_to_decode_late`] names it.
    Deferred,
    /// Not an image, unreadable, or not decodable (noted for the warnings or the error).
    SetAside,
}

/// What became of one file given to [`DicomStream`].
#[derive(Debug)]
enum FileState {
    /// Its frames are arrivals `first..first + count` (by frame number).
    Decoded { first: usize, clamped: u64 },
    /// An image of a series that was not the leading one when it came: decoded once the
    /// series is chosen, if it is this file's.
    Later,
    /// An image whose pixels could not be decoded: an error if its series is chosen.
    Failed(ReadError),
}

/// DICOM files decoded one at a time, in the order they come, without first reading every
/// header: the browser reads a file once and decodes it while later files are still being
/// read, and native reads each file once too. A file is decoded on arrival when its series
/// leads so far (CT first, then most slices: the rule that finally picks the series shown);
/// files of other series wait, and are decoded only if their series wins in the end. Once
/// every file is in, [`finish`](Self::finish) sorts the chosen series and says which
/// arrival goes in which slot ([`arrange_slices`]).
#[derive(Debug)]
pub struct DicomStream {
    total_files: usize,
    max_voxels: u64,
    groups: BTreeMap<String, Group>,
    names: BTreeMap<usize, String>,
    states: BTreeMap<usize, FileState>,
    skipped_not_dicom: Vec<String>,
    skipped_no_image: Vec<String>,
    first_error: Option<ReadError>,
    errors: usize,
    arrivals: usize,
    decoded_voxels: u64,
}

/// Which group leads: CT before anything else, then most planes.
fn leading_key(groups: &BTreeMap<String, Group>) -> Option<String> {
    groups
        .values()
        .max_by_key(|g| (g.first.modality.as_deref() == Some("CT"), g.planes.len()))
        .map(|g| g.key.clone())
}

impl DicomStream {
    /// A stream for `total_files` files (a hint for reserving memory).
    pub fn new(total_files: usize, options: &OpenOptions) -> Self {
        Self {
            total_files,
            max_voxels: options.max_voxels,
            groups: BTreeMap::new(),
            names: BTreeMap::new(),
            states: BTreeMap::new(),
            skipped_not_dicom: Vec::new(),
            skipped_no_image: Vec::new(),
            first_error: None,
            errors: 0,
            arrivals: 0,
            decoded_voxels: 0,
        }
    }

    /// Reads file `file` (all its `bytes`); decodes its slices into `sink` now if its series
    /// leads. Files that are not DICOM images are set aside with a warning, as in a folder;
    /// the error returned is only what stops the whole open (cancelling, the voxel limit).
    pub fn add_file(
        &mut self,
        file: usize,
        name: &str,
        bytes: &[u8],
        sink: &mut dyn ArrivalSink,
    ) -> Result<Added, ReadError> {
        let parsed = match parse(bytes, name, false) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                self.skipped_not_dicom.push(name.to_owned());
                return Ok(Added::SetAside);
            }
            Err(e) => {
                // A readable header with unreadable pixel data belongs to its series, and
                // is an error only if that series is shown.
                match parse(bytes, name, true) {
                    Ok(Some(header_only)) => {
                        if self.add_header(&header_only, file, name).is_some() {
                            self.states.insert(file, FileState::Failed(e));
                        }
                    }
                    _ => {
                        self.errors = self.errors.saturating_add(1);
                        self.first_error.get_or_insert(e);
                    }
                }
                return Ok(Added::SetAside);
            }
        };
        let Some(h) = self.add_header(&parsed, file, name) else {
            return Ok(Added::SetAside);
        };
        if leading_key(&self.groups).as_deref() == Some(group_key(&h).as_str()) {
            self.decode(file, name, &parsed, &h, sink)?;
            Ok(match self.states.get(&file) {
                Some(FileState::Decoded { .. }) => Added::Decoded,
                _ => Added::SetAside,
            })
        } else {
            self.states.insert(file, FileState::Later);
            Ok(Added::Deferred)
        }
    }

    /// Files whose series is the one shown but which were not decoded on arrival: read
    /// each again and give it to [`decode_late`](Self::decode_late).
    pub fn files_to_decode_late(&self) -> Result<Vec<usize>, ReadError> {
        let group = self.chosen()?;
        let mut files: Vec<usize> = group.planes.iter().map(|p| p.file).collect();
        files.dedup();
        Ok(files
            .into_iter()
            .filter(|f| matches!(self.states.get(f), Some(FileState::Later)))
            .collect())
    }

    /// Decodes a file [`files_to_decode_late`](Self::files_to_decode_late) named.
    pub fn decode_late(
        &mut self,
        file: usize,
        name: &str,
        bytes: &[u8],
        sink: &mut dyn ArrivalSink,
    ) -> Result<(), ReadError> {
        let parsed = parse(bytes, name, false)?
            .ok_or_else(|| ReadError::malformed(name, "no longer a DICOM file"))?;
        let h = header(parsed.dataset(), file, name)?
            .ok_or_else(|| ReadError::malformed(name, "no longer a DICOM image"))?;
        self.decode(file, name, &parsed, &h, sink)
    }

    /// The chosen series, sorted: its header (every warning included) and, for each slot
    /// along the slice normal, the arrival that fills it.
    pub fn finish(mut self) -> Result<(VolumeHeader, Vec<usize>), ReadError> {
        let group_key = self.chosen()?.key.clone();
        let group = self
            .groups
            .remove(&group_key)
            .ok_or_else(|| ReadError::NoImage("internal: chosen series vanished".into()))?;
        let mut warnings = Vec::new();
        let mut other_series: Vec<String> = self.groups.values().map(describe).collect();
        other_series.sort();
        if !other_series.is_empty() {
            warnings.push(format!(
                "{} other series found and not shown; showing the {} (most slices)",
                other_series.len(),
                if group.first.modality.as_deref() == Some("CT") {
                    "CT series"
                } else {
                    "image series"
                }
            ));
        }
        if group.first.modality.as_deref() != Some("CT") {
            warnings.push(format!(
                "modality is {}, not CT: values may not be Hounsfield units",
                group.first.modality.as_deref().unwrap_or("missing")
            ));
        }
        if self.errors > 0 {
            warnings.push(format!(
                "{} file(s) could not be read and were skipped; first: {}",
                self.errors,
                self.first_error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ));
        }
        if !self.skipped_not_dicom.is_empty() {
            warnings.push(format!(
                "{} file(s) are not DICOM and were ignored (e.g. {})",
                self.skipped_not_dicom.len(),
                self.skipped_not_dicom[0]
            ));
        }
        if !self.skipped_no_image.is_empty() {
            warnings.push(format!(
                "{} DICOM object(s) without images were ignored (e.g. {})",
                self.skipped_no_image.len(),
                self.skipped_no_image[0]
            ));
        }

        let geometry = arrange(&group, &mut warnings);
        let layout = &group.first.layout;
        let first_name = self
            .names
            .get(&group.planes[0].file)
            .cloned()
            .unwrap_or_default();
        ReadError::check_voxels(
            &first_name,
            (layout.rows as u64)
                .saturating_mul(layout.columns as u64)
                .saturating_mul(geometry.planes.len() as u64),
            self.max_voxels,
        )?;
        let mut order = Vec::with_capacity(geometry.planes.len());
        let mut clamped = 0u64;
        let mut counted = std::collections::BTreeSet::new();
        for plane in &geometry.planes {
            match self.states.get(&plane.file) {
                Some(FileState::Decoded { first, clamped: c }) => {
                    // A multi-frame file's clamp count is counted once.
                    if counted.insert(plane.file) {
                        clamped = clamped.saturating_add(*c);
                    }
                    order.push(first.saturating_add(plane.frame as usize));
                }
                Some(FileState::Failed(e)) => return Err(e.clone()),
                Some(FileState::Later) | None => {
                    return Err(ReadError::NoImage(format!(
                        "internal: {} was not decoded",
                        self.names.get(&plane.file).cloned().unwrap_or_default()
                    )));
                }
            }
        }
        warnings.extend(clamp_warning(clamped));
        warnings.extend(decoded_warnings(&group));
        let mut metadata = group.first.metadata.clone();
        metadata.other_series = other_series;
        let header = VolumeHeader {
            format: Format::Dicom,
            dims: [layout.columns, layout.rows, geometry.planes.len()],
            spacing: geometry.spacing,
            origin: geometry.origin,
            direction: geometry.direction,
            units: IntensityUnits::Hounsfield,
            metadata,
            warnings,
        };
        header
            .validate()
            .map_err(|e| ReadError::invalid_volume(&first_name, &e))?;
        Ok((header, order))
    }

    /// The series to show: CT first, then most slices.
    fn chosen(&self) -> Result<&Group, ReadError> {
        if let Some(group) = leading_key(&self.groups).and_then(|k| self.groups.get(&k)) {
            return Ok(group);
        }
        if let Some(e) = &self.first_error {
            return Err(e.clone());
        }
        let first = self
            .skipped_no_image
            .first()
            .or(self.skipped_not_dicom.first())
            .cloned()
            .unwrap_or_default();
        Err(ReadError::NoImage(if !self.skipped_no_image.is_empty() {
            format!(
                "{first}: a DICOM object without pixel data (a report or index, not a CT image)"
            )
        } else {
            format!("{first}: not a DICOM file, nor any other supported scan format")
        }))
    }

    /// Adds a parsed file's header to its group; `None` (with the reason noted) if the file
    /// is not an image or its header is unusable.
    fn add_header(&mut self, parsed: &Parsed, file: usize, name: &str) -> Option<FileHeader> {
        match header(parsed.dataset(), file, name) {
            Ok(Some(h)) => {
                let key = group_key(&h);
                let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    key,
                    first: h.clone(),
                    planes: Vec::new(),
                    files: 0,
                });
                group.planes.extend(h.planes.iter().cloned());
                group.files = group.files.saturating_add(1);
                self.names.insert(file, name.to_owned());
                Some(h)
            }
            Ok(None) => {
                self.skipped_no_image.push(name.to_owned());
                None
            }
            Err(e) => {
                self.errors = self.errors.saturating_add(1);
                self.first_error.get_or_insert(e);
                None
            }
        }
    }

    /// Decodes every frame of a file into `sink`, in frame order.
    fn decode(
        &mut self,
        file: usize,
        name: &str,
        parsed: &Parsed,
        h: &FileHeader,
        sink: &mut dyn ArrivalSink,
    ) -> Result<(), ReadError> {
        let slice_len = (h.layout.rows as u64).saturating_mul(h.layout.columns as u64);
        let voxels = slice_len.saturating_mul(h.planes.len() as u64);
        ReadError::check_voxels(
            name,
            self.decoded_voxels.saturating_add(voxels),
            self.max_voxels,
        )?;
        if self.decoded_voxels == 0 {
            // Most folders are one series of one frame per file.
            let files = self.total_files.max(1) as u64;
            let expected = voxels.saturating_mul(files).min(self.max_voxels);
            sink.expect(usize::try_from(expected).unwrap_or(usize::MAX));
        }
        self.decoded_voxels = self.decoded_voxels.saturating_add(voxels);
        let mut decoder = match FrameDecoder::new(parsed, name, &h.layout) {
            Ok(decoder) => decoder,
            Err(e) => {
                self.states.insert(file, FileState::Failed(e));
                return Ok(());
            }
        };
        let first = self.arrivals;
        let mut clamped = 0u64;
        for plane in &h.planes {
            let out = sink.slice(h.layout.columns, h.layout.rows)?;
            let decoded = decoder.decode(plane, out, &mut clamped);
            sink.done()?;
            self.arrivals = self.arrivals.saturating_add(1);
            if let Err(e) = decoded {
                self.states.insert(file, FileState::Failed(e));
                return Ok(());
            }
        }
        self.states
            .insert(file, FileState::Decoded { first, clamped });
        Ok(())
    }
}

fn decoded_warnings(group: &Group) -> Vec<String> {
    let mut warnings = Vec::new();
    if group.first.pixel_spacing.is_none() {
        warnings.push("no Pixel Spacing: 1 mm assumed in-plane".to_owned());
    }
    warnings
}

struct Geometry {
    planes: Vec<Plane>,
    spacing: [f64; 3],
    origin: [f64; 3],
    direction: [f64; 9],
}

/// Sorts planes along the slice normal and derives spacing, reporting every
/// irregularity instead of silently averaging it away.
fn arrange(group: &Group, warnings: &mut Vec<String>) -> Geometry {
    let header = &group.first;
    let (row_dir, col_dir) = match header.orientation {
        Some(o) if norm([o[0], o[1], o[2]]) > 0.5 && norm([o[3], o[4], o[5]]) > 0.5 => {
            let r = [o[0], o[1], o[2]];
            let c = [o[3], o[4], o[5]];
            let (nr, nc) = (norm(r), norm(c));
            (
                [r[0] / nr, r[1] / nr, r[2] / nr],
                [c[0] / nc, c[1] / nc, c[2] / nc],
            )
        }
        _ => {
            warnings.push("no Image Orientation (Patient): axial orientation assumed".to_owned());
            ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        }
    };
    let normal = cross(row_dir, col_dir);
    let n = norm(normal).max(1e-9);
    let normal = [normal[0] / n, normal[1] / n, normal[2] / n];
    let [dy, dx] = header.pixel_spacing.unwrap_or([1.0, 1.0]);
    let fallback_z = header
        .spacing_between_slices
        .or(header.metadata.slice_thickness_mm)
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0);

    let mut planes = group.planes.clone();
    let all_positioned = planes.iter().all(|p| p.position.is_some());
    if !all_positioned {
        if planes.len() > 1 {
            warnings.push(format!(
                "slice positions missing: slices ordered by instance number, {fallback_z} mm apart"
            ));
        }
        planes.sort_by_key(|p| (p.instance.unwrap_or(i64::MAX), p.file, p.frame));
        let origin = planes.first().and_then(|p| p.position).unwrap_or([0.0; 3]);
        return Geometry {
            planes,
            spacing: [dx, dy, fallback_z],
            origin,
            direction: direction_from_axes(row_dir, col_dir, normal),
        };
    }
    let along = |p: &Plane| dot(p.position.unwrap_or([0.0; 3]), normal);
    planes.sort_by(|a, b| {
        along(a)
            .total_cmp(&along(b))
            .then(a.file.cmp(&b.file))
            .then(a.frame.cmp(&b.frame))
    });

    // Duplicate positions: keep the first plane at each position.
    let before = planes.len();
    planes.dedup_by(|b, a| (along(a) - along(b)).abs() < 1e-3);
    if planes.len() < before {
        warnings.push(format!(
            "{} slice(s) share a position with another and were dropped (duplicate positions)",
            before.saturating_sub(planes.len())
        ));
    }

    let gaps: Vec<f64> = planes
        .windows(2)
        .map(|w| along(&w[1]) - along(&w[0]))
        .collect();
    let spacing_z = if gaps.is_empty() {
        fallback_z
    } else {
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    if let (Some(min), Some(max)) = (
        gaps.iter().copied().min_by(f64::total_cmp),
        gaps.iter().copied().max_by(f64::total_cmp),
    ) {
        let missing: Vec<usize> = (0..gaps.len())
            .filter(|&i| gaps[i] > 1.5 * spacing_z)
            .collect();
        if let Some(&first) = missing.first() {
            let lost: f64 = missing
                .iter()
                .map(|&i| (gaps[i] / spacing_z).round() - 1.0)
                .sum();
            warnings.push(format!(
                "missing slices: {} gap(s) wider than the usual {:.3} mm (first after slice {}, {:.3} mm; about {} slice(s) missing); the volume spacing is not uniform there",
                missing.len(),
                spacing_z,
                first,
                gaps[first],
                lost
            ));
        } else if max - min > 0.01 * spacing_z.max(0.01) && max - min > 1e-3 {
            warnings.push(format!(
                "uneven slice spacing: gaps from {min:.3} to {max:.3} mm; the volume uses the median {spacing_z:.3} mm"
            ));
        }
    }

    let first = planes[0].position.unwrap_or([0.0; 3]);
    if planes.len() > 1 {
        let last = planes.last().and_then(|p| p.position).unwrap_or([0.0; 3]);
        let step = [last[0] - first[0], last[1] - first[1], last[2] - first[2]];
        let length = norm(step);
        if length > 1e-6 {
            let cos = (dot(step, normal) / length).clamp(-1.0, 1.0);
            let tilt = cos.acos().to_degrees();
            if tilt > 0.5 {
                warnings.push(format!(
                    "gantry tilt of {tilt:.1}°: slices are offset, not stacked straight; the volume is shown unsheared"
                ));
            }
        }
    }
    Geometry {
        planes,
        spacing: [dx, dy, spacing_z],
        origin: first,
        direction: direction_from_axes(row_dir, col_dir, normal),
    }
}

/// Decodes frames of one parsed file into HU.
struct FrameDecoder<'a> {
    parsed: &'a Parsed<'a>,
    name: &'a str,
    layout: PixelLayout,
    encapsulated: bool,
}

impl<'a> FrameDecoder<'a> {
    fn new(
        parsed: &'a Parsed<'a>,
        name: &'a str,
        expected: &PixelLayout,
    ) -> Result<Self, ReadError> {
        let obj = parsed.dataset();
        let ts = parsed.transfer_syntax();
        #[cfg(target_arch = "wasm32")]
        if let Some((_, label)) = NATIVE_ONLY_SYNTAXES.iter().find(|(uid, _)| *uid == ts) {
            return Err(ReadError::unsupported(
                name,
                format!(
                    "transfer syntax {label} ({ts}) cannot be decoded in the browser yet; open it with the `nodulens` command-line tool, or convert the series to explicit VR little endian (e.g. `gdcmconv --raw`)"
                ),
            ));
        }
        if let Some((_, label)) = UNSUPPORTED_SYNTAXES.iter().find(|(uid, _)| *uid == ts) {
            return Err(ReadError::unsupported(
                name,
                format!(
                    "transfer syntax {label} ({ts}) has no pure-Rust decoder; convert the series to explicit VR little endian (e.g. `gdcmconv --raw`)"
                ),
            ));
        }
        let encapsulated = match parsed.native_pixels {
            Some(_) => false,
            None => {
                let element = obj.get(tags::PIXEL_DATA).ok_or_else(|| {
                    ReadError::malformed(name, "image attributes present but no Pixel Data")
                })?;
                matches!(element.value(), Value::PixelSequence(_))
            }
        };
        if encapsulated && !matches!(parsed.object, Object::File(_)) {
            return Err(ReadError::malformed(
                name,
                "compressed pixel data without a file meta group",
            ));
        }
        let size = |tag| usize::try_from(int(obj, tag).unwrap_or(0)).unwrap_or(0);
        let (columns, rows) = (size(tags::COLUMNS), size(tags::ROWS));
        if (columns, rows) != (expected.columns, expected.rows) {
            return Err(ReadError::malformed(
                name,
                "image size changed between reads",
            ));
        }
        Ok(Self {
            parsed,
            name,
            layout: expected.clone(),
            encapsulated,
        })
    }

    /// The compressed bytes of one frame of encapsulated pixel data.
    fn compressed_frame(&self, frame: u32) -> Result<std::borrow::Cow<'a, [u8]>, String> {
        let Some(Value::PixelSequence(sequence)) = self
            .parsed
            .dataset()
            .get(tags::PIXEL_DATA)
            .map(|e| e.value())
        else {
            return Err("the pixel data is not encapsulated".to_owned());
        };
        let frames = int(self.parsed.dataset(), tags::NUMBER_OF_FRAMES).unwrap_or(1);
        frame_bytes_of(
            sequence.fragments(),
            sequence.offset_table(),
            frame as usize,
            usize::try_from(frames.max(1)).unwrap_or(1),
        )
    }

    fn decode(
        &mut self,
        plane: &Plane,
        destination: &mut [i16],
        clamped: &mut u64,
    ) -> Result<(), ReadError> {
        let per_frame = destination.len();
        let bytes_per_sample = usize::from(self.layout.bits_allocated / 8);
        let frame_bytes = per_frame.saturating_mul(bytes_per_sample);
        let rescale = Rescale::new(plane.slope, plane.intercept);
        if self.encapsulated && self.parsed.transfer_syntax() == RLE_LOSSLESS {
            // Our own RLE decoder: dicom-rs's panics on truncated segments (found by fuzzing),
            // and a panic in the browser kills the worker.
            let Some(Value::PixelSequence(sequence)) = self
                .parsed
                .dataset()
                .get(tags::PIXEL_DATA)
                .map(|e| e.value())
            else {
                return Err(ReadError::malformed(
                    self.name,
                    "RLE pixel data is not encapsulated",
                ));
            };
            let fragment = sequence
                .fragments()
                .get(plane.frame as usize)
                .ok_or_else(|| {
                    ReadError::malformed(
                        self.name,
                        format!("no RLE fragment for frame {}", plane.frame),
                    )
                })?;
            let bytes = decode_rle(fragment, per_frame, bytes_per_sample).map_err(|reason| {
                ReadError::malformed(self.name, format!("frame {}: {reason}", plane.frame))
            })?;
            store(&bytes, false, &self.layout, rescale, destination, clamped);
            return Ok(());
        }
        if self.encapsulated && JPEG_2000_SYNTAXES.contains(&self.parsed.transfer_syntax()) {
            let words = self
                .compressed_frame(plane.frame)
                .and_then(|c| decode_jpeg2000(&c, self.layout.columns, self.layout.rows))
                .map_err(|reason| {
                    ReadError::malformed(self.name, format!("frame {}: {reason}", plane.frame))
                })?;
            store_words(&words, &self.layout, rescale, destination, clamped);
            return Ok(());
        }
        if self.encapsulated {
            let Object::File(file) = &self.parsed.object else {
                return Err(ReadError::malformed(
                    self.name,
                    "compressed pixel data without a file meta group",
                ));
            };
            if self.parsed.transfer_syntax().starts_with(HTJ2K_PREFIX) {
                // openjp2 allocates what the codestream's SIZ marker claims before decoding
                // (cargo fuzz: gigabytes), so the claim is checked against the header first.
                self.compressed_frame(plane.frame)
                    .and_then(|c| check_codestream_size(&c, self.layout.columns, self.layout.rows))
                    .map_err(|reason| {
                        ReadError::malformed(self.name, format!("frame {}: {reason}", plane.frame))
                    })?;
            }
            // dicom-rs's codec adapters can panic on corrupt data (cargo fuzz found one in
            // JPEG 2000); natively that becomes an error here. (In wasm a panic aborts, which
            // the app reports as a decoder failure.)
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                file.decode_pixel_data_frame(plane.frame)
            }))
            .map_err(|_| {
                ReadError::malformed(
                    self.name,
                    format!(
                        "frame {}: the decoder failed on corrupt compressed data [transfer syntax {}]",
                        plane.frame,
                        self.parsed.transfer_syntax()
                    ),
                )
            })?;
            let decoded = attempt.map_err(|e| {
                ReadError::malformed(
                    self.name,
                    format!(
                        "frame {} could not be decoded ({e}) [transfer syntax {}]",
                        plane.frame,
                        self.parsed.transfer_syntax()
                    ),
                )
            })?;
            let data = decoded.data();
            let bits = decoded.bits_allocated();
            let bytes = usize::from(bits / 8);
            let wanted = per_frame.saturating_mul(bytes);
            if data.len() < wanted || bytes == 0 {
                return Err(ReadError::malformed(
                    self.name,
                    format!(
                        "frame {} decoded to {} bytes, expected {}",
                        plane.frame,
                        data.len(),
                        wanted
                    ),
                ));
            }
            let layout = PixelLayout {
                bits_allocated: bits,
                ..self.layout.clone()
            };
            store(
                &data[..wanted],
                false,
                &layout,
                rescale,
                destination,
                clamped,
            );
            return Ok(());
        }
        // Saturating: an offset past memory is past the data, and `get` then refuses it.
        let start = (plane.frame as usize).saturating_mul(frame_bytes);
        let too_short = |have: usize| {
            ReadError::malformed(
                self.name,
                format!(
                    "Pixel Data holds {have} bytes, too few for frame {} of {}×{} at {} bits (truncated file?)",
                    plane.frame, self.layout.columns, self.layout.rows, self.layout.bits_allocated
                ),
            )
        };
        let big_endian = self.parsed.transfer_syntax() == "1.2.840.10008.1.2.2";
        // One frame of pixel bytes as stored (in place, or as dicom-rs read them).
        let store_frame = |bytes: &[u8], big_endian, destination: &mut [i16], clamped: &mut u64| {
            let frame = bytes
                .get(start..start.saturating_add(frame_bytes))
                .ok_or_else(|| too_short(bytes.len()))?;
            store(
                frame,
                big_endian,
                &self.layout,
                rescale,
                destination,
                clamped,
            );
            Ok(())
        };
        if let Some(pixels) = self.parsed.native_pixels {
            return store_frame(pixels, big_endian, destination, clamped);
        }
        let element = self
            .parsed
            .dataset()
            .get(tags::PIXEL_DATA)
            .ok_or_else(|| ReadError::malformed(self.name, "no Pixel Data"))?;
        match element.value() {
            Value::Primitive(PrimitiveValue::U16(words)) if bytes_per_sample == 2 => {
                let words = words
                    .get(start / 2..(start / 2).saturating_add(per_frame))
                    .ok_or_else(|| too_short(words.len().saturating_mul(2)))?;
                store_words(words, &self.layout, rescale, destination, clamped);
            }
            Value::Primitive(PrimitiveValue::I16(words)) if bytes_per_sample == 2 => {
                let words = words
                    .get(start / 2..(start / 2).saturating_add(per_frame))
                    .ok_or_else(|| too_short(words.len().saturating_mul(2)))?;
                let as_u16: Vec<u16> = words.iter().map(|&w| w as u16).collect();
                store_words(&as_u16, &self.layout, rescale, destination, clamped);
            }
            Value::Primitive(PrimitiveValue::U8(bytes)) => {
                store_frame(bytes, big_endian, destination, clamped)?;
            }
            Value::Primitive(other) => {
                store_frame(&other.to_bytes(), false, destination, clamped)?;
            }
            _ => {
                return Err(ReadError::malformed(
                    self.name,
                    "Pixel Data has an unexpected form",
                ));
            }
        }
        Ok(())
    }
}

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// JPEG 2000 lossless and lossy (Part 1), decoded by hayro-jpeg2000.
const JPEG_2000_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// The bytes of one frame of encapsulated pixel data: all fragments for a single frame, one
/// fragment per frame when the counts match, else the fragments the Basic Offset Table
/// assigns to it (PS3.5 A.4).
fn frame_bytes_of<'s, F: AsRef<[u8]>>(
    fragments: &'s [F],
    offset_table: &[u32],
    frame: usize,
    frames: usize,
) -> Result<std::borrow::Cow<'s, [u8]>, String> {
    use std::borrow::Cow;
    let concat = |parts: &[F]| -> Cow<'s, [u8]> {
        Cow::Owned(
            parts
                .iter()
                .flat_map(|f| f.as_ref().iter().copied())
                .collect(),
        )
    };
    if frames == 1 {
        return match fragments {
            [only] => Ok(Cow::Borrowed(only.as_ref())),
            [] => Err("no compressed fragment".to_owned()),
            many => Ok(concat(many)),
        };
    }
    if fragments.len() == frames {
        return Ok(Cow::Borrowed(fragments[frame].as_ref()));
    }
    if offset_table.len() != frames {
        return Err(format!(
            "{} fragments for {frames} frames and no usable offset table",
            fragments.len()
        ));
    }
    // Each fragment occupies an 8-byte item header plus its bytes after the first one.
    let (start, end) = (
        offset_table[frame] as u64,
        offset_table
            .get(frame.saturating_add(1))
            .map_or(u64::MAX, |&e| u64::from(e)),
    );
    let mut at = 0u64;
    let mut first = None;
    let mut last = 0;
    for (i, fragment) in fragments.iter().enumerate() {
        if at >= start && at < end {
            first.get_or_insert(i);
            last = i.saturating_add(1);
        }
        at = at
            .saturating_add(8)
            .saturating_add(fragment.as_ref().len() as u64);
    }
    match first {
        Some(first) => Ok(concat(&fragments[first..last])),
        None => Err(format!(
            "the offset table points past the fragments for frame {frame}"
        )),
    }
}

/// Decodes one JPEG 2000 codestream of a single grey component into stored-value words (the
/// two's-complement bit pattern of each sample, as an uncompressed frame would hold it).
fn decode_jpeg2000(codestream: &[u8], columns: usize, rows: usize) -> Result<Vec<u16>, String> {
    use hayro_jpeg2000::{DecodeSettings, DecoderContext, Image};
    let settings = DecodeSettings::default();
    let image = Image::new(codestream, &settings)
        .map_err(|e| format!("not a readable JPEG 2000 codestream ({e})"))?;
    if (image.width() as usize, image.height() as usize) != (columns, rows) {
        return Err(format!(
            "the JPEG 2000 image is {}×{}, the header says {columns}×{rows}",
            image.width(),
            image.height()
        ));
    }
    let mut context = DecoderContext::default();
    let decoded = image
        .decode(&mut context)
        .map_err(|e| format!("the JPEG 2000 decoder failed ({e})"))?;
    let [component] = decoded.components() else {
        return Err(format!(
            "{} JPEG 2000 components, expected one grey channel",
            decoded.components().len()
        ));
    };
    let samples = component.samples();
    let pixels = columns.saturating_mul(rows);
    if samples.len() < pixels {
        return Err(format!(
            "the JPEG 2000 image decoded to {} samples, expected {}",
            samples.len(),
            pixels
        ));
    }
    // hayro adds the unsigned DC level shift 2^(precision − 1) to every component; a component
    // the codestream marks signed (Ssiz bit 7) was encoded without it, so it comes back off.
    let precision = u32::from(component.bit_depth()).clamp(1, 16);
    // precision is 1..=16, so the shifts and the subtraction stay far inside i32; the float
    // to int cast saturates, and the final cast keeps the two's-complement bits on purpose.
    #[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
    let shift = if codestream_component_signed(codestream) {
        1i32 << (precision - 1)
    } else {
        0
    };
    // Lossy streams overshoot the sample range a little; clamp as OpenJPEG does, or a value
    // just below zero would wrap to the top of the range.
    #[allow(clippy::arithmetic_side_effects)]
    let max = (1i32 << precision) - 1;
    #[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
    Ok(samples[..pixels]
        .iter()
        .map(|&v| ((v.round() as i32).clamp(0, max) - shift) as u16)
        .collect())
}

/// HTJ2K (1.2.840.10008.1.2.4.201–203), decoded natively by dicom-rs's openjp2 adapter.
const HTJ2K_PREFIX: &str = "1.2.840.10008.1.2.4.20";

/// Refuses a raw codestream whose SIZ marker claims another image size than the header.
fn check_codestream_size(codestream: &[u8], columns: usize, rows: usize) -> Result<(), String> {
    let word = |at: usize| -> Option<u64> {
        let b: [u8; 4] = codestream.get(at..)?.get(..4)?.try_into().ok()?;
        Some(u64::from(u32::from_be_bytes(b)))
    };
    // SOC, SIZ marker, Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz, YOsiz.
    if !codestream.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Err("not a JPEG 2000 codestream (no SOC and SIZ markers)".to_owned());
    }
    let (Some(x), Some(y), Some(x0), Some(y0)) = (word(8), word(12), word(16), word(20)) else {
        return Err("the JPEG 2000 SIZ marker is cut short".to_owned());
    };
    let (width, height) = (x.saturating_sub(x0), y.saturating_sub(y0));
    if (width, height) != (columns as u64, rows as u64) {
        return Err(format!(
            "the JPEG 2000 image is {width}×{height}, the header says {columns}×{rows}"
        ));
    }
    Ok(())
}

/// Whether the first component of a raw codestream (SOC, SIZ) is signed; JP2-wrapped
/// streams (unusual in DICOM) are taken as unsigned.
fn codestream_component_signed(codestream: &[u8]) -> bool {
    // SOC (2) SIZ marker (2) Lsiz (2) Rsiz (2) 8 × 4-byte sizes, Csiz (2), then Ssiz.
    codestream.starts_with(&[0xFF, 0x4F, 0xFF, 0x51])
        && codestream.get(42).is_some_and(|ssiz| ssiz & 0x80 != 0)
}

/// Decodes one RLE Lossless frame (DICOM PS3.5 annex G) of single-sample pixels into
/// little-endian samples: a 64-byte header of segment offsets, then one PackBits segment
/// per byte plane, most significant first.
// Offsets into the fragment are taken with `get` (a bad one fails the lookup); `at` stays
// below the segment's length, `written` below `pixels`, runs are at most 128, and the
// output's size is checked, so the arithmetic inside cannot wrap.
#[allow(clippy::arithmetic_side_effects)]
fn decode_rle(fragment: &[u8], pixels: usize, bytes_per_sample: usize) -> Result<Vec<u8>, String> {
    let word = |at: usize| {
        fragment
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let segments = word(0).ok_or("RLE fragment shorter than its 64-byte header")?;
    if segments != bytes_per_sample {
        return Err(format!(
            "RLE header lists {segments} segments, expected {bytes_per_sample}"
        ));
    }
    let mut offsets: Vec<usize> = (0..segments)
        .map(|i| word(4 + 4 * i).unwrap_or(usize::MAX))
        .collect();
    offsets.push(fragment.len());
    let size = pixels
        .checked_mul(bytes_per_sample)
        .ok_or("RLE frame larger than memory")?;
    let mut out = vec![0u8; size];
    for segment in 0..segments {
        let (start, end) = (offsets[segment], offsets[segment + 1]);
        let data = fragment
            .get(start..end)
            .ok_or("RLE segment offsets point outside the fragment")?;
        // Segment 0 holds the most significant bytes; output is little endian.
        let byte = bytes_per_sample - 1 - segment;
        let mut written = 0usize;
        let mut at = 0usize;
        while written < pixels && at < data.len() {
            let control = data[at] as i8;
            at += 1;
            if control >= 0 {
                let run = control as usize + 1;
                let literal = data
                    .get(at..at + run)
                    .ok_or("RLE literal run past the segment end (truncated)")?;
                for &value in literal.iter().take(pixels - written) {
                    out[written * bytes_per_sample + byte] = value;
                    written += 1;
                }
                at += run;
            } else if control != -128 {
                let run = 1 - control as isize;
                let value = *data
                    .get(at)
                    .ok_or("RLE repeat run past the segment end (truncated)")?;
                at += 1;
                for _ in 0..(run as usize).min(pixels - written) {
                    out[written * bytes_per_sample + byte] = value;
                    written += 1;
                }
            }
        }
        if written < pixels {
            return Err(format!(
                "RLE segment {segment} decodes to {written} of {pixels} pixels (truncated)"
            ));
        }
    }
    Ok(out)
}

/// Modality rescale; integer fast path for the usual slope 1, integral intercept.
#[derive(Debug, Clone, Copy)]
struct Rescale {
    slope: f64,
    intercept: f64,
    integer_offset: Option<i32>,
}

impl Rescale {
    fn new(slope: f64, intercept: f64) -> Self {
        let slope = if slope == 0.0 || !slope.is_finite() {
            1.0
        } else {
            slope
        };
        let intercept = if intercept.is_finite() {
            intercept
        } else {
            0.0
        };
        let integer_offset = (slope == 1.0 && intercept.fract() == 0.0 && intercept.abs() < 1e6)
            // |intercept| < 1e6 and integral: exact in i32.
            .then_some({
                #[allow(clippy::cast_possible_truncation)]
                let offset = intercept as i32;
                offset
            });
        Self {
            slope,
            intercept,
            integer_offset,
        }
    }
}

/// How a stored sample becomes a value, without a branch per sample: its `bits_stored` low
/// bits are shifted to the top and back, arithmetically when the pixels are signed (which
/// sign-extends) and logically otherwise (which masks).
#[derive(Debug, Clone, Copy)]
struct SampleBits {
    shift: u32,
    signed: bool,
}

impl SampleBits {
    fn new(layout: &PixelLayout) -> Self {
        Self {
            shift: 32u32.saturating_sub(u32::from(layout.bits_stored).clamp(1, 32)),
            signed: layout.signed,
        }
    }

    #[inline]
    fn value(self, raw: u32) -> i32 {
        if self.signed {
            ((raw << self.shift) as i32) >> self.shift
        } else {
            ((raw << self.shift) >> self.shift) as i32
        }
    }
}

/// Rescales samples of at most 16 bits (`raw`) into `out`. The loops hold no branch per
/// sample (the clamp counts through a comparison), so the compiler vectorises them: this
/// is the inner loop of every uncompressed CT. Inlined into its callers, which in wasm
/// enable SIMD (every browser since 2021 has it): the sample iterator must be built where
/// the loop is compiled, or its stride is not known there and nothing vectorises.
#[inline(always)]
fn store_samples(
    raw: impl Iterator<Item = u32>,
    layout: &PixelLayout,
    rescale: Rescale,
    out: &mut [i16],
    clamped: &mut u64,
) {
    let bits = SampleBits::new(layout);
    match rescale.integer_offset {
        // Two copies of the loop, each with the signedness fixed, so neither branches.
        Some(offset) if bits.signed => {
            *clamped = clamped.saturating_add(offset_samples(
                raw,
                SampleBits {
                    signed: true,
                    ..bits
                },
                offset,
                out,
            ));
        }
        Some(offset) => {
            *clamped = clamped.saturating_add(offset_samples(
                raw,
                SampleBits {
                    signed: false,
                    ..bits
                },
                offset,
                out,
            ));
        }
        None => {
            for (dst, r) in out.iter_mut().zip(raw) {
                *dst = clamp_i16(
                    f64::from(bits.value(r)) * rescale.slope + rescale.intercept,
                    clamped,
                );
            }
        }
    }
}

/// `value + offset`, clamped to i16, into `out`; returns how many were clamped.
#[inline(always)]
fn offset_samples(
    raw: impl Iterator<Item = u32>,
    bits: SampleBits,
    offset: i32,
    out: &mut [i16],
) -> u64 {
    let mut outside = 0u32;
    for (dst, r) in out.iter_mut().zip(raw) {
        // At most 16 bits plus an offset under 1e6: no overflow.
        let v = bits.value(r).wrapping_add(offset);
        let kept = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
        // A slice holds fewer than 2^32 samples (the voxel limit), so the count cannot wrap;
        // wrapping_add keeps the loop free of branches.
        outside = outside.wrapping_add(u32::from(kept != v));
        // Clamped into the i16 range just above.
        #[allow(clippy::cast_possible_truncation)]
        let kept = kept as i16;
        *dst = kept;
    }
    u64::from(outside)
}

#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn store_words(
    words: &[u16],
    layout: &PixelLayout,
    rescale: Rescale,
    out: &mut [i16],
    clamped: &mut u64,
) {
    store_samples(
        words.iter().map(|&w| u32::from(w)),
        layout,
        rescale,
        out,
        clamped,
    );
}

#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn store(
    bytes: &[u8],
    big_endian: bool,
    layout: &PixelLayout,
    rescale: Rescale,
    out: &mut [i16],
    clamped: &mut u64,
) {
    match layout.bits_allocated {
        8 => store_samples(
            bytes.iter().map(|&b| u32::from(b)),
            layout,
            rescale,
            out,
            clamped,
        ),
        16 if big_endian => store_samples(
            bytes
                .chunks_exact(2)
                .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]]))),
            layout,
            rescale,
            out,
            clamped,
        ),
        16 => store_samples(
            bytes
                .chunks_exact(2)
                .map(|p| u32::from(u16::from_le_bytes([p[0], p[1]]))),
            layout,
            rescale,
            out,
            clamped,
        ),
        _ => {
            let bits = SampleBits::new(layout);
            for (dst, quad) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                let q = [quad[0], quad[1], quad[2], quad[3]];
                let w = if big_endian {
                    u32::from_be_bytes(q)
                } else {
                    u32::from_le_bytes(q)
                };
                let v = bits.value(w);
                *dst = clamp_i16(f64::from(v) * rescale.slope + rescale.intercept, clamped);
            }
        }
    }
}

#[cfg(test)]
// Tests build small inputs of known size; the reader's rules are for untrusted bytes.
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    /// A stored sample's value: `bits_stored` bits kept, sign-extended when signed.
    fn sample(raw: u32, layout: &PixelLayout) -> i32 {
        SampleBits::new(layout).value(raw)
    }

    fn layout(bits_stored: u16, signed: bool) -> PixelLayout {
        PixelLayout {
            rows: 1,
            columns: 1,
            bits_allocated: 16,
            bits_stored,
            signed,
        }
    }

    #[test]
    fn samples_are_masked_and_sign_extended() {
        assert_eq!(sample(0x0FFF, &layout(12, true)), -1);
        assert_eq!(sample(0xF7FF, &layout(12, true)), 2047);
        assert_eq!(sample(0xFFFF, &layout(12, false)), 4095);
        assert_eq!(sample(0x8000, &layout(16, true)), -32768);
    }

    /// An element in implicit VR little endian (`None`: undefined length).
    fn implicit(group: u16, element: u16, length: Option<u32>, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(group.to_le_bytes());
        out.extend(element.to_le_bytes());
        out.extend(length.unwrap_or(u32::MAX).to_le_bytes());
        out.extend(value);
        out
    }

    #[test]
    fn native_pixel_data_is_the_top_level_one_not_an_icons() {
        // (0088,0200) Icon Image Sequence, undefined length, one undefined-length item
        // holding a 4-byte Pixel Data; then a defined-length sequence; then the slice's.
        let mut icon_item = implicit(0x0028, 0x0010, Some(2), &[2, 0]);
        icon_item.extend(implicit(0x7FE0, 0x0010, Some(4), &[9, 9, 9, 9]));
        icon_item.extend(implicit(0xFFFE, 0xE00D, Some(0), &[]));
        let mut data = implicit(0x0008, 0x0060, Some(2), b"CT");
        data.extend(implicit(0x0088, 0x0200, None, &[]));
        data.extend(implicit(0xFFFE, 0xE000, None, &icon_item));
        data.extend(implicit(0xFFFE, 0xE0DD, Some(0), &[]));
        let defined_item = implicit(0x7FE0, 0x0010, Some(2), &[7, 7]);
        let defined_sequence = implicit(
            0xFFFE,
            0xE000,
            Some(defined_item.len() as u32),
            &defined_item,
        );
        data.extend(implicit(
            0x0008,
            0x1140,
            Some(defined_sequence.len() as u32),
            &defined_sequence,
        ));
        let pixels_at = data.len() + 8;
        data.extend(implicit(0x7FE0, 0x0010, Some(6), &[1, 2, 3, 4, 5, 6]));
        assert_eq!(
            native_pixel_data(&data, 0, false, false),
            Some(pixels_at..pixels_at + 6)
        );
        // Cut short, or with the slice's pixel data of undefined length: left to dicom-rs.
        assert_eq!(
            native_pixel_data(&data[..data.len() - 1], 0, false, false),
            None
        );
        let mut encapsulated = data[..pixels_at - 8].to_vec();
        encapsulated.extend(implicit(0x7FE0, 0x0010, None, &[]));
        assert_eq!(native_pixel_data(&encapsulated, 0, false, false), None);
        // An icon item that never ends.
        assert_eq!(native_pixel_data(&data[..40], 0, false, false), None);
    }

    #[test]
    fn uncompressed_fixtures_are_decoded_in_place() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dicom");
        for folder in [
            "explicit_le",
            "explicit_be",
            "implicit_le",
            "bare_dataset",
            "no_preamble",
        ] {
            let file = std::fs::read_dir(root.join(folder))
                .expect("fixture folder")
                .map(|e| e.expect("entry").path())
                .min()
                .expect("a file");
            let bytes = std::fs::read(&file).expect("fixture");
            let parsed = parse(&bytes, "fixture", false)
                .expect("parses")
                .expect("DICOM");
            let pixels = parsed.native_pixels.expect("pixels found in place");
            let columns = int(parsed.dataset(), tags::COLUMNS).expect("columns") as usize;
            let rows = int(parsed.dataset(), tags::ROWS).expect("rows") as usize;
            assert!(pixels.len() >= columns * rows * 2, "{folder}");
            assert!(parsed.dataset().get(tags::PIXEL_DATA).is_none(), "{folder}");
        }
        let compressed = std::fs::read_dir(root.join("rle"))
            .expect("fixture folder")
            .map(|e| e.expect("entry").path())
            .min()
            .expect("a file");
        let bytes = std::fs::read(compressed).expect("fixture");
        let parsed = parse(&bytes, "fixture", false)
            .expect("parses")
            .expect("DICOM");
        assert!(parsed.native_pixels.is_none());
    }

    #[test]
    fn integer_and_float_rescales_agree_on_every_sample() {
        let words: Vec<u16> = (0..=u16::MAX).collect();
        let bytes_le: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let bytes_be: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let mut clamped_somewhere = false;
        for (bits_stored, signed) in [(16, false), (16, true), (12, false), (12, true), (1, true)] {
            let layout = layout(bits_stored, signed);
            for intercept in [-1024.0, 0.0, -40000.0, 40000.0] {
                let integer = Rescale::new(1.0, intercept);
                assert!(integer.integer_offset.is_some());
                let float = Rescale {
                    integer_offset: None,
                    ..integer
                };
                let run = |rescale, how: &dyn Fn(Rescale, &mut [i16], &mut u64)| {
                    let mut out = vec![0i16; words.len()];
                    let mut clamped = 0;
                    how(rescale, &mut out, &mut clamped);
                    (out, clamped)
                };
                let expected = run(float, &|r, out, c| store_words(&words, &layout, r, out, c));
                clamped_somewhere |= expected.1 > 0;
                assert_eq!(
                    run(integer, &|r, out, c| store_words(
                        &words, &layout, r, out, c
                    )),
                    expected
                );
                assert_eq!(
                    run(integer, &|r, out, c| store(
                        &bytes_le, false, &layout, r, out, c
                    )),
                    expected
                );
                assert_eq!(
                    run(integer, &|r, out, c| store(
                        &bytes_be, true, &layout, r, out, c
                    )),
                    expected
                );
                // Sample by sample, as the slow path of sample() defines it.
                for (&w, &v) in words.iter().zip(&expected.0).step_by(97) {
                    let want = (f64::from(sample(u32::from(w), &layout)) + intercept)
                        .clamp(-32768.0, 32767.0);
                    assert_eq!(f64::from(v), want);
                }
            }
        }
        assert!(clamped_somewhere);
        let mut clamped = 0;
        let mut out = [0i16; 1];
        store_words(
            &[0xFFFD],
            &layout(16, true),
            Rescale::new(0.5, 0.0),
            &mut out,
            &mut clamped,
        );
        assert_eq!(out, [-2]); // -3 × 0.5 rounds half away from zero
        assert_eq!(clamped, 0);
    }

    #[test]
    fn frames_are_cut_from_fragments_by_count_or_offset_table() {
        let fragments = [vec![1u8, 2], vec![3, 4, 5, 6], vec![7, 8]];
        // One frame: everything.
        assert_eq!(
            frame_bytes_of(&fragments, &[], 0, 1).unwrap().as_ref(),
            &[1, 2, 3, 4, 5, 6, 7, 8]
        );
        // As many fragments as frames: one each.
        assert_eq!(
            frame_bytes_of(&fragments, &[], 1, 3).unwrap().as_ref(),
            &[3, 4, 5, 6]
        );
        // Two frames over three fragments: the offset table (item header 8 + bytes) decides.
        assert_eq!(
            frame_bytes_of(&fragments, &[0, 10], 1, 2).unwrap().as_ref(),
            &[3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            frame_bytes_of(&fragments, &[0, 10], 0, 2).unwrap().as_ref(),
            &[1, 2]
        );
        assert!(frame_bytes_of(&fragments, &[], 0, 2).is_err());
        assert!(frame_bytes_of(&fragments, &[0, 500], 1, 2).is_err());
        assert!(frame_bytes_of::<Vec<u8>>(&[], &[], 0, 1).is_err());
    }

    #[test]
    fn jpeg2000_size_and_sign_come_from_the_siz_marker() {
        let mut siz = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        for v in [96u32, 64, 0, 0, 96, 64, 0, 0] {
            siz.extend_from_slice(&v.to_be_bytes());
        }
        siz.extend_from_slice(&[0, 1, 0x8F, 1, 1]); // one component, signed, 16 bits
        assert!(check_codestream_size(&siz, 96, 64).is_ok());
        assert!(check_codestream_size(&siz, 64, 96).is_err());
        assert!(check_codestream_size(&siz[..12], 96, 64).is_err());
        assert!(codestream_component_signed(&siz));
        siz[42] = 0x0F;
        assert!(!codestream_component_signed(&siz));
        assert!(
            decode_jpeg2000(&siz, 96, 64).is_err(),
            "no tiles: an error, not a panic"
        );
    }

    #[test]
    fn rle_decodes_runs_and_refuses_truncation() {
        // 2 pixels of 16 bits: MSB plane [0x01, 0x01] as a repeat run, LSB plane [0x02, 0x03] literal.
        let mut fragment = vec![0u8; 64];
        fragment[0] = 2;
        fragment[4] = 64;
        fragment[8] = 66;
        fragment.extend_from_slice(&[0xFF, 0x01]); // repeat 0x01 twice
        fragment.extend_from_slice(&[0x01, 0x02, 0x03]); // literal of two bytes
        assert_eq!(
            decode_rle(&fragment, 2, 2).unwrap(),
            vec![0x02, 0x01, 0x03, 0x01]
        );
        assert!(
            decode_rle(&fragment[..68], 2, 2)
                .unwrap_err()
                .contains("truncated")
        );
        assert!(decode_rle(&fragment[..10], 2, 2).is_err());
        assert!(
            decode_rle(&fragment, 2, 1)
                .unwrap_err()
                .contains("segments")
        );
    }

    #[test]
    fn arrivals_are_put_in_place_and_the_rest_dropped() {
        // Slices of 3 voxels whose first value names them, and a 2-voxel stranger (7).
        let lengths = [3, 3, 2, 3, 3, 3];
        let names = [10, 11, 7, 12, 13, 14];
        let mut voxels: Vec<i16> = lengths
            .iter()
            .zip(names)
            .flat_map(|(&len, name)| (0..len as i16).map(move |i| name * 10 + i))
            .collect();
        // Slot k takes arrival order[k]; arrivals 2 (the stranger) and 4 are dropped.
        let order = [5, 0, 3, 1];
        arrange_slices(&mut voxels, &lengths, &order, 3).expect("valid");
        let firsts: Vec<i16> = voxels.chunks(3).map(|c| c[0] / 10).collect();
        assert_eq!(firsts, vec![14, 10, 12, 11]);
        assert_eq!(voxels[1], 141, "whole slices move");

        for bad in [&[0, 0][..], &[2], &[9]] {
            let mut voxels = vec![0i16; 17];
            assert!(
                arrange_slices(&mut voxels, &lengths, bad, 3).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_permutation_of_four_slices_is_arranged() {
        let mut order = [0usize, 1, 2, 3];
        let mut count = 0;
        // Heap's algorithm, iteratively.
        let mut c = [0usize; 4];
        let mut check = |order: &[usize; 4]| {
            let mut voxels: Vec<i16> = (0..8).collect();
            arrange_slices(&mut voxels, &[2, 2, 2, 2], order, 2).expect("valid");
            let want: Vec<i16> = order
                .iter()
                .flat_map(|&a| [2 * a as i16, 2 * a as i16 + 1])
                .collect();
            assert_eq!(voxels, want, "{order:?}");
            count += 1;
        };
        check(&order);
        let mut i = 0;
        while i < 4 {
            if c[i] < i {
                if i % 2 == 0 {
                    order.swap(0, i);
                } else {
                    order.swap(c[i], i);
                }
                check(&order);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(count, 24);
    }

    #[test]
    fn sniffing() {
        let mut preamble = vec![0u8; 140];
        preamble[128..132].copy_from_slice(b"DICM");
        assert!(matches!(sniff(&preamble), Sniff::Preamble));
        assert!(matches!(sniff(b"DICM\x02\x00\x00\x00"), Sniff::MetaOnly));
        assert!(matches!(sniff(b"\x89PNG\r\n\x1a\n"), Sniff::NotDicom));
        assert!(matches!(sniff(b""), Sniff::NotDicom));
    }
}
