//! MetaImage (ITK): `.mhd` header with a `.raw` (or zlib `.zraw`) data file, or `.mha`
//! with the data after the header. LUNA16 ships this format.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::io::Read;

use crate::samples::{SampleType, convert, inflate_buffer};
use crate::volume::{IDENTITY, norm, voxel_count};
use crate::{
    FileSource, Format, IntensityUnits, Metadata, OpenOptions, ReadError, Volume, VolumeHeader,
};
use crate::{Warning, WarningKind};

/// The header as key/value pairs in file order, and where the header ends.
fn parse_header(bytes: &[u8], name: &str) -> Result<(Vec<(String, String)>, usize), ReadError> {
    let mut fields = Vec::new();
    let mut offset = 0;
    // Headers are short; anything past 64 KiB without ElementDataFile is not a MetaImage.
    while offset < bytes.len() && offset < 65536 {
        let end = bytes[offset..]
            .iter()
            .position(|&b| b == b'\n')
            // Both below `bytes.len()`, so the sum cannot overflow.
            .map(|p| offset.saturating_add(p).saturating_add(1))
            .unwrap_or(bytes.len());
        let line = std::str::from_utf8(&bytes[offset..end])
            .map_err(|_| ReadError::malformed(name, "MetaImage header is not text"))?
            .trim();
        offset = end;
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            ReadError::malformed(
                name,
                format!("MetaImage header line without `=`: {line:.60}"),
            )
        })?;
        let key = key.trim().to_owned();
        let done = key.eq_ignore_ascii_case("ElementDataFile");
        fields.push((key, value.trim().to_owned()));
        if done {
            return Ok((fields, offset));
        }
    }
    Err(ReadError::malformed(
        name,
        "MetaImage header has no ElementDataFile line",
    ))
}

fn field<'a>(fields: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| keys.iter().any(|key| k.eq_ignore_ascii_case(key)))
        .map(|(_, v)| v.as_str())
}

fn numbers(name: &str, key: &str, value: &str) -> Result<Vec<f64>, ReadError> {
    value
        .split_whitespace()
        .map(|t| t.parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            ReadError::malformed(name, format!("{key} is not a list of numbers: {value:.60}"))
        })
}

fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

pub(crate) fn read(
    source: &dyn FileSource,
    index: usize,
    options: &OpenOptions,
) -> Result<Volume, ReadError> {
    let name = source.name(index);
    let bytes = source.read(index)?;
    let (fields, header_end) = parse_header(&bytes, name)?;
    let get = |keys: &[&str]| field(&fields, keys);
    let ndims = get(&["NDims"])
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(3);
    if !(2..=3).contains(&ndims) {
        return Err(ReadError::unsupported(
            name,
            format!("NDims = {ndims}; only 2-D and 3-D images are scans"),
        ));
    }
    let dim_values = numbers(
        name,
        "DimSize",
        get(&["DimSize"]).ok_or_else(|| ReadError::malformed(name, "no DimSize"))?,
    )?;
    if dim_values.len() != ndims
        || dim_values
            .iter()
            .any(|&d| d < 1.0 || d.fract() != 0.0 || d > 1e6)
    {
        return Err(ReadError::malformed(
            name,
            format!("DimSize {dim_values:?} does not give {ndims} positive sizes"),
        ));
    }
    let mut dims = [1usize; 3];
    for (d, v) in dims.iter_mut().zip(&dim_values) {
        // A whole number in 1..=1e6 (checked above): exact in any usize.
        #[allow(clippy::cast_possible_truncation)]
        let size = *v as u32;
        *d = size as usize;
    }
    let voxels = voxel_count(dims);
    ReadError::check_voxels(name, voxels, options.max_voxels)?;

    let channels = get(&["ElementNumberOfChannels"])
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    if channels != 1 {
        return Err(ReadError::unsupported(
            name,
            format!("{channels} channels per voxel; a CT has one"),
        ));
    }
    let kind = match get(&["ElementType"]).unwrap_or("") {
        "MET_UCHAR" => SampleType::U8,
        "MET_CHAR" => SampleType::I8,
        "MET_USHORT" => SampleType::U16,
        "MET_SHORT" => SampleType::I16,
        "MET_UINT" | "MET_ULONG" => SampleType::U32,
        "MET_INT" | "MET_LONG" => SampleType::I32,
        "MET_FLOAT" => SampleType::F32,
        "MET_DOUBLE" => SampleType::F64,
        other => {
            return Err(ReadError::unsupported(
                name,
                format!("ElementType `{other}`"),
            ));
        }
    };
    let big_endian = truthy(get(&["ElementByteOrderMSB", "BinaryDataByteOrderMSB"]));
    let spacing_values = get(&["ElementSpacing", "ElementSize"])
        .map(|v| numbers(name, "ElementSpacing", v))
        .transpose()?;
    let mut warnings = Vec::new();
    let mut spacing = [1.0; 3];
    match spacing_values {
        Some(v) if v.len() >= ndims && v.iter().take(ndims).all(|&s| s > 0.0) => {
            spacing[..ndims].copy_from_slice(&v[..ndims])
        }
        Some(v) => {
            return Err(ReadError::malformed(
                name,
                format!("ElementSpacing {v:?} is not {ndims} positive numbers"),
            ));
        }
        None => warnings.push(Warning::new(
            WarningKind::AssumedGeometry,
            "no ElementSpacing: 1 mm voxels assumed".to_owned(),
        )),
    }
    let mut origin = [0.0; 3];
    if let Some(v) = get(&["Offset", "Position", "Origin"]) {
        let v = numbers(name, "Offset", v)?;
        for (o, x) in origin.iter_mut().zip(&v) {
            *o = *x;
        }
    }
    let mut direction = IDENTITY;
    if let Some(v) = get(&["TransformMatrix", "Rotation", "Orientation"]) {
        let v = numbers(name, "TransformMatrix", v)?;
        // ndims is 2 or 3 (checked above), so these products and sums are tiny.
        #[allow(clippy::arithmetic_side_effects)]
        let squared = ndims * ndims;
        if v.len() != squared {
            return Err(ReadError::malformed(
                name,
                format!(
                    "TransformMatrix has {} numbers, expected {}",
                    v.len(),
                    squared
                ),
            ));
        }
        // MetaIO lists each axis' direction in turn; our matrix holds axes as columns.
        #[allow(clippy::arithmetic_side_effects)]
        for axis in 0..ndims {
            let col: Vec<f64> = (0..ndims).map(|r| v[axis * ndims + r]).collect();
            let length = norm([col[0], col[1], *col.get(2).unwrap_or(&0.0)]);
            if length < 1e-6 {
                return Err(ReadError::malformed(
                    name,
                    "TransformMatrix has a zero axis",
                ));
            }
            for (r, c) in col.iter().enumerate() {
                direction[3 * r + axis] = c / length;
            }
        }
    }

    let data_file = get(&["ElementDataFile"]).unwrap_or("");
    let compressed = truthy(get(&["CompressedData"]));
    let header_size = get(&["HeaderSize"])
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let data: std::borrow::Cow<'_, [u8]> = if data_file.eq_ignore_ascii_case("LOCAL") {
        std::borrow::Cow::Borrowed(&bytes[header_end..])
    } else if data_file.eq_ignore_ascii_case("LIST") || data_file.contains('%') {
        return Err(ReadError::unsupported(
            name,
            "image data split over several files (ElementDataFile LIST or pattern)",
        ));
    } else {
        source.read_sibling(index, data_file)?
    };
    // In u64: up to 2^29 voxels of 8 bytes pass 2^32, which a 32-bit usize would wrap.
    let expected = voxels.saturating_mul(kind.size() as u64);
    // Messages about the data file name it by the header's folder, as the user sees it.
    let data_name = if data_file.eq_ignore_ascii_case("LOCAL") {
        name.to_owned()
    } else {
        let folder = name
            .strip_suffix(crate::source::base_name(name))
            .unwrap_or_default();
        format!("{folder}{}", crate::source::base_name(data_file))
    };
    let raw: std::borrow::Cow<'_, [u8]> = if compressed {
        let mut inflated = inflate_buffer(name, data.len(), expected)?;
        flate2::read::ZlibDecoder::new(data.as_ref())
            .take(expected.saturating_add(1))
            .read_to_end(&mut inflated)
            .map_err(|e| ReadError::malformed(&data_name, format!("zlib data is corrupt ({e})")))?;
        std::borrow::Cow::Owned(inflated)
    } else {
        let skip = if header_size == -1 {
            data.len()
                .saturating_sub(usize::try_from(expected).unwrap_or(usize::MAX))
        } else {
            // Past the end of memory is past the end of the data: nothing is left.
            usize::try_from(header_size.max(0)).unwrap_or(usize::MAX)
        };
        match data {
            std::borrow::Cow::Borrowed(b) => {
                std::borrow::Cow::Borrowed(b.get(skip..).unwrap_or(&[]))
            }
            std::borrow::Cow::Owned(mut b) => {
                b.drain(..skip.min(b.len()));
                std::borrow::Cow::Owned(b)
            }
        }
    };
    let raw_bytes = raw.len() as u64;
    if raw_bytes < expected {
        return Err(ReadError::malformed(
            &data_name,
            format!(
                "holds {} bytes of image data, the header's {}×{}×{} {:?} needs {expected}",
                raw.len(),
                dims[0],
                dims[1],
                dims[2],
                kind
            ),
        ));
    }
    if raw_bytes > expected {
        warnings.push(Warning::new(
            WarningKind::Other,
            format!(
                "{data_name} has {} bytes more than the header describes; they were ignored",
                raw_bytes.saturating_sub(expected)
            ),
        ));
    }
    // At most `raw.len()` / sample size (checked above), so it fits.
    let count = usize::try_from(voxels).unwrap_or(usize::MAX);
    let (voxels, clip) = convert(&raw, kind, big_endian, count, 1.0, 0.0);
    warnings.extend(clip);
    let modality = get(&["Modality"]).map(|m| m.trim_start_matches("MET_MOD_").to_owned());
    if modality.is_none() {
        warnings.push(Warning::new(
            WarningKind::NotHounsfield,
            "intensities taken as Hounsfield units (the header does not say)".to_owned(),
        ));
    }
    Volume::new(
        VolumeHeader {
            format: Format::MetaImage,
            dims,
            spacing,
            origin,
            direction,
            units: IntensityUnits::Hounsfield,
            metadata: Metadata {
                modality,
                ..Metadata::default()
            },
            warnings,
        },
        voxels,
    )
    .map_err(|e| ReadError::invalid_volume(name, &e))
}
