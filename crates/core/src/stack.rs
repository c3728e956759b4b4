//! PNG/JPEG slice stacks: 8- or 16-bit greyscale, one file a slice, in natural name order.
//! They carry neither spacing nor HU: the spacing comes from the user, and the volume is
//! marked as grey levels so nothing downstream mistakes it for HU.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::cmp::Ordering;
use std::io::Cursor;

use crate::open::{ProgressFn, Stage, report};
use crate::volume::IDENTITY;
use crate::{
    FileSource, Format, IntensityUnits, Metadata, OpenOptions, ReadError, Volume, VolumeHeader,
};
use crate::{Warning, WarningKind};

/// "slice2.png" before "slice10.png": digit runs compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na
                    .len()
                    .cmp(&nb.len())
                    .then_with(|| na.cmp(nb))
                    .then(da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                let ord = x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase());
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

fn reader<'a>(
    bytes: &'a [u8],
    name: &str,
    max_bytes: u64,
) -> Result<image::ImageReader<Cursor<&'a [u8]>>, ReadError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ReadError::malformed(name, format!("unreadable image ({e})")))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16384);
    limits.max_image_height = Some(16384);
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    Ok(reader)
}

pub(crate) fn read(
    source: &dyn FileSource,
    files: &[usize],
    options: &OpenOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<Volume, ReadError> {
    let mut order = files.to_vec();
    order.sort_by(|&a, &b| natural_cmp(source.name(a), source.name(b)));
    let mut warnings = vec![
        Warning::new(
            WarningKind::NotHounsfield,
            "PNG/JPEG slices: values are grey levels, not Hounsfield units",
        ),
        Warning::new(
            WarningKind::AssumedGeometry,
            format!(
                "PNG/JPEG slices carry no spacing: {} × {} × {} mm assumed (set it in the options)",
                options.stack_spacing_mm[0],
                options.stack_spacing_mm[1],
                options.stack_spacing_mm[2]
            ),
        ),
    ];
    let first_name = order.first().map_or("", |&f| source.name(f));
    let mut dims = [0usize; 3];
    let mut voxels: Vec<i16> = Vec::new();
    let mut colour = 0usize;
    let mut clipped = 0usize;
    for (slot, &file) in order.iter().enumerate() {
        report(progress, Stage::Decoding, slot, order.len())?;
        let name = source.name(file);
        let bytes = source.read(file)?;
        let (w, h) = reader(&bytes, name, u64::MAX)?
            .into_dimensions()
            .map_err(|e| ReadError::malformed(name, format!("unreadable image header ({e})")))?;
        // In u64: a header may claim 65536 × 65536, whose product wraps a 32-bit usize.
        let pixels = u64::from(w).saturating_mul(u64::from(h));
        let (w, h) = (w as usize, h as usize);
        if slot == 0 {
            dims = [w, h, order.len()];
            let total = pixels.saturating_mul(order.len() as u64);
            ReadError::check_voxels(name, total, options.max_voxels)?;
            // Within the voxel limit (checked), so it fits.
            voxels.reserve_exact(usize::try_from(total).unwrap_or(0));
        } else if (w, h) != (dims[0], dims[1]) {
            return Err(ReadError::malformed(
                name,
                format!("is {w}×{h} but the first slice is {}×{}", dims[0], dims[1]),
            ));
        }
        // 16-bit RGBA is the largest layout a decoder may allocate for this size.
        let image = reader(&bytes, name, pixels.saturating_mul(8).saturating_add(4096))?
            .decode()
            .map_err(|e| ReadError::malformed(name, format!("image data is corrupt ({e})")))?;
        if image.color().has_color() {
            colour = colour.saturating_add(1);
        }
        match image {
            image::DynamicImage::ImageLuma16(_)
            | image::DynamicImage::ImageLumaA16(_)
            | image::DynamicImage::ImageRgb16(_)
            | image::DynamicImage::ImageRgba16(_) => {
                for v in image.into_luma16().into_raw() {
                    if v > i16::MAX as u16 {
                        clipped = clipped.saturating_add(1);
                    }
                    voxels.push(v.min(i16::MAX as u16) as i16);
                }
            }
            other => voxels.extend(other.into_luma8().into_raw().into_iter().map(i16::from)),
        }
    }
    report(progress, Stage::Decoding, order.len(), order.len())?;
    if colour > 0 {
        warnings.push(Warning::new(
            WarningKind::ValuesAltered,
            format!("{colour} colour slice(s) converted to grey"),
        ));
    }
    if clipped > 0 {
        warnings.push(Warning::new(
            WarningKind::ValuesAltered,
            format!("{clipped} 16-bit values above 32767 were clipped"),
        ));
    }
    Volume::new(
        VolumeHeader {
            format: Format::ImageStack,
            dims,
            spacing: options.stack_spacing_mm,
            origin: [0.0; 3],
            direction: IDENTITY,
            units: IntensityUnits::GreyLevels,
            metadata: Metadata::default(),
            warnings,
        },
        voxels,
    )
    .map_err(|e| ReadError::invalid_volume(first_name, &e))
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;

    #[test]
    fn natural_order() {
        let mut names = vec!["s10.png", "s2.png", "s1.png", "S3.png", "s02.png"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec!["s1.png", "s2.png", "s02.png", "S3.png", "s10.png"]
        );
    }
}
