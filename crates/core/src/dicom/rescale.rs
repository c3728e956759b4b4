//! Stored samples to Hounsfield units: bit masking, sign extension, rescale.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

/// Modality rescale; integer fast path for the usual slope 1, integral intercept.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rescale {
    pub(super) slope: f64,
    pub(super) intercept: f64,
    pub(super) integer_offset: Option<i32>,
}

impl Rescale {
    pub(super) fn new(slope: f64, intercept: f64) -> Self {
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
pub(super) struct SampleBits {
    pub(super) shift: u32,
    pub(super) signed: bool,
}

impl SampleBits {
    pub(super) fn new(layout: &PixelLayout) -> Self {
        Self {
            shift: 32u32.saturating_sub(u32::from(layout.bits_stored).clamp(1, 32)),
            signed: layout.signed,
        }
    }

    #[inline]
    pub(super) fn value(self, raw: u32) -> i32 {
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
pub(super) fn store_samples(
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
pub(super) fn offset_samples(
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
pub(super) fn store_words(
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
pub(super) fn store(
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
