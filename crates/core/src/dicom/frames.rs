//! Frames and codecs: native pixels read in place, RLE, JPEG, JPEG 2000.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

/// Decodes frames of one parsed file into HU.
pub(super) struct FrameDecoder<'a> {
    pub(super) parsed: &'a Parsed<'a>,
    pub(super) name: &'a str,
    pub(super) layout: PixelLayout,
    pub(super) encapsulated: bool,
}

impl<'a> FrameDecoder<'a> {
    pub(super) fn new(
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
    pub(super) fn compressed_frame(
        &self,
        frame: u32,
    ) -> Result<std::borrow::Cow<'a, [u8]>, String> {
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

    pub(super) fn decode(
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

pub(super) const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// JPEG 2000 lossless and lossy (Part 1), decoded by hayro-jpeg2000.
pub(super) const JPEG_2000_SYNTAXES: [&str; 2] =
    ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// The bytes of one frame of encapsulated pixel data: all fragments for a single frame, one
/// fragment per frame when the counts match, else the fragments the Basic Offset Table
/// assigns to it (PS3.5 A.4).
pub(super) fn frame_bytes_of<'s, F: AsRef<[u8]>>(
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
pub(super) fn decode_jpeg2000(
    codestream: &[u8],
    columns: usize,
    rows: usize,
) -> Result<Vec<u16>, String> {
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
pub(super) const HTJ2K_PREFIX: &str = "1.2.840.10008.1.2.4.20";

/// Refuses a raw codestream whose SIZ marker claims another image size than the header.
pub(super) fn check_codestream_size(
    codestream: &[u8],
    columns: usize,
    rows: usize,
) -> Result<(), String> {
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
pub(super) fn codestream_component_signed(codestream: &[u8]) -> bool {
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
pub(super) fn decode_rle(
    fragment: &[u8],
    pixels: usize,
    bytes_per_sample: usize,
) -> Result<Vec<u8>, String> {
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
