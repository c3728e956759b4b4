//! Typed raw sample arrays (MetaImage, NIfTI) converted to int16 with a linear rescale.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use crate::volume::{clamp_i16, clamp_warning};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

impl SampleType {
    pub(crate) fn size(self) -> usize {
        match self {
            SampleType::U8 | SampleType::I8 => 1,
            SampleType::U16 | SampleType::I16 => 2,
            SampleType::U32 | SampleType::I32 | SampleType::F32 => 4,
            SampleType::F64 => 8,
        }
    }
}

/// An empty buffer for inflating `compressed_len` bytes that a header says hold `claimed`
/// bytes: reserved for no more than they could inflate to (deflate stays under 1032:1), so a
/// header that claims gigabytes does not make a browser grow its memory that far.
pub(crate) fn inflate_buffer(
    name: &str,
    compressed_len: usize,
    claimed: u64,
) -> Result<Vec<u8>, crate::ReadError> {
    let plausible = (compressed_len as u64).saturating_mul(1032);
    let mut buffer = Vec::new();
    buffer
        .try_reserve(usize::try_from(claimed.min(plausible)).unwrap_or(usize::MAX))
        .map_err(|_| {
            crate::ReadError::unsupported(
                name,
                format!("{claimed} bytes do not fit in memory here"),
            )
        })?;
    Ok(buffer)
}

/// Converts `count` samples to int16 as `value * slope + intercept`, returning the
/// voxels and a warning when some had to be clipped.
pub(crate) fn convert(
    bytes: &[u8],
    kind: SampleType,
    big_endian: bool,
    count: usize,
    slope: f64,
    intercept: f64,
) -> (Vec<i16>, Option<crate::Warning>) {
    let mut out = Vec::with_capacity(count);
    let mut clamped = 0u64;
    let identity = slope == 1.0 && intercept == 0.0;
    macro_rules! each {
        ($n:literal, $from:expr) => {{
            for chunk in bytes.chunks_exact($n).take(count) {
                let mut a = [0u8; $n];
                a.copy_from_slice(chunk);
                if big_endian {
                    a.reverse();
                }
                let v: f64 = $from(a);
                out.push(clamp_i16(v * slope + intercept, &mut clamped));
            }
        }};
    }
    match kind {
        SampleType::I16 if identity => {
            out.extend(bytes.chunks_exact(2).take(count).map(|c| {
                if big_endian {
                    i16::from_be_bytes([c[0], c[1]])
                } else {
                    i16::from_le_bytes([c[0], c[1]])
                }
            }));
        }
        SampleType::U8 => each!(1, |a: [u8; 1]| f64::from(a[0])),
        SampleType::I8 => each!(1, |a: [u8; 1]| f64::from(a[0] as i8)),
        SampleType::U16 => each!(2, |a| f64::from(u16::from_le_bytes(a))),
        SampleType::I16 => each!(2, |a| f64::from(i16::from_le_bytes(a))),
        SampleType::U32 => each!(4, |a| f64::from(u32::from_le_bytes(a))),
        SampleType::I32 => each!(4, |a| f64::from(i32::from_le_bytes(a))),
        SampleType::F32 => each!(4, |a| f64::from(f32::from_le_bytes(a))),
        SampleType::F64 => each!(8, f64::from_le_bytes),
    }
    (out, clamp_warning(clamped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_and_little_endian_agree() {
        let le: Vec<u8> = [-1000i16, 0, 3000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let be: Vec<u8> = [-1000i16, 0, 3000]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            convert(&le, SampleType::I16, false, 3, 1.0, 0.0).0,
            vec![-1000, 0, 3000]
        );
        assert_eq!(
            convert(&be, SampleType::I16, true, 3, 1.0, 0.0).0,
            vec![-1000, 0, 3000]
        );
        assert_eq!(
            convert(&be, SampleType::I16, true, 3, 2.0, -1.0).0,
            vec![-2001, -1, 5999]
        );
    }

    #[test]
    fn floats_round_and_clip() {
        let bytes: Vec<u8> = [1.6f32, -40000.0, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (v, warning) = convert(&bytes, SampleType::F32, false, 3, 1.0, 0.0);
        assert_eq!(v, vec![2, i16::MIN, 0]);
        assert!(warning.unwrap().message.starts_with("2 voxel values"));
    }
}
