//! The length guard: walks a file's elements before dicom-rs does, so that a length
//! pointing past the end is refused with its tag instead of read (or allocated).

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

pub(super) fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let b: [u8; 2] = bytes.get(at..)?.get(..2)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

/// The (group, element) tag of the element at `at`.
pub(super) fn tag_at(bytes: &[u8], at: usize, big_endian: bool) -> Option<(u16, u16)> {
    Some((
        read_u16(bytes, at, big_endian)?,
        read_u16(bytes, at.checked_add(2)?, big_endian)?,
    ))
}

pub(super) fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..)?.get(..4)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// VRs whose explicit encoding has a 2-byte length. Every other VR, including an unknown one
/// (which dicom-rs reads as UN), has 2 reserved bytes and a 4-byte length.
pub(super) const SHORT_VRS: [&[u8; 2]; 21] = [
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
pub(super) fn check_lengths(bytes: &[u8], start: usize) -> Result<Option<Range<usize>>, String> {
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
pub(super) const NATIVE_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// Sequences nested deeper than this are left to dicom-rs.
pub(super) const NATIVE_WALK_DEPTH: usize = 16;

/// Where the value of the top-level Pixel Data element (7FE0,0010) lies, when it has a
/// defined length: found by stepping over the top-level elements of the data set at `at`
/// (over nested sequences whole, so an icon image's Pixel Data inside a sequence is not
/// taken for the slice's). Decoding then reads the pixels in place, instead of dicom-rs
/// copying them into a new buffer first (for a CT slice, most of the time spent parsing).
/// `None` for anything unusual; the caller then lets dicom-rs read the whole file.
pub(super) fn native_pixel_data(
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
pub(super) fn element_header(
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
pub(super) fn vr_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    bytes.get(at.checked_add(4)?..)?.get(..2)
}

/// Whether an element of undefined length at `at` is a sequence (in implicit VR, the only
/// other such element, encapsulated Pixel Data, is handled before this is asked).
pub(super) fn is_sequence(bytes: &[u8], at: usize, explicit: bool) -> bool {
    !explicit || vr_at(bytes, at) == Some(b"SQ")
}

/// The offset just past the delimiter of a sequence of undefined length whose items start
/// at `at`.
pub(super) fn skip_undefined_sequence(
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
pub(super) fn skip_undefined_item(
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
pub(super) fn walk_data_set(
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
pub(super) fn implicit_vr(group: u16, element: u16) -> [u8; 2] {
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
pub(super) fn numeric_value_size(vr: &[u8; 2]) -> Option<usize> {
    match vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"UL" | b"SL" | b"FL" | b"AT" | b"OL" | b"OF" => Some(4),
        b"FD" | b"SV" | b"UV" | b"OD" | b"OV" => Some(8),
        _ => None,
    }
}

/// Length and header size of an explicit-VR element at `at`.
pub(super) fn explicit_length(bytes: &[u8], at: usize, big_endian: bool) -> Option<(usize, usize)> {
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
