//! NIfTI-1 (`.nii`, `.nii.gz`): the sform, else the qform, mapped from RAS to LPS.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::io::Read;

use crate::samples::{SampleType, convert, inflate_buffer};
use crate::source::lower_name;
use crate::volume::{direction_from_axes, norm, voxel_count};
use crate::{
    FileSource, Format, IntensityUnits, Metadata, OpenOptions, ReadError, Volume, VolumeHeader,
};
use crate::{Warning, WarningKind};

const HEADER_SIZE: usize = 348;

struct Header {
    big_endian: bool,
    dims: [usize; 3],
    extra_volumes: u64,
    kind: SampleType,
    pixdim: [f32; 8],
    vox_offset: usize,
    slope: f64,
    intercept: f64,
    qform_code: i16,
    sform_code: i16,
    quatern: [f32; 6],
    srow: [[f32; 4]; 3],
}

struct Fields<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    /// `N` bytes at `at` of the header (whose length is checked first; zeros past its end).
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.bytes
            .get(at..)
            .and_then(|b| b.get(..N))
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; N])
    }
    fn i16(&self, at: usize) -> i16 {
        let b = self.array(at);
        if self.big_endian {
            i16::from_be_bytes(b)
        } else {
            i16::from_le_bytes(b)
        }
    }
    fn f32(&self, at: usize) -> f32 {
        let b = self.array(at);
        if self.big_endian {
            f32::from_be_bytes(b)
        } else {
            f32::from_le_bytes(b)
        }
    }
}

// Field offsets are constants plus indices below 8, all inside the 348-byte header.
#[allow(clippy::arithmetic_side_effects)]
fn parse_header(bytes: &[u8], name: &str) -> Result<Header, ReadError> {
    if bytes.len() < HEADER_SIZE {
        return Err(ReadError::malformed(
            name,
            format!("only {} bytes: too short for a NIfTI header", bytes.len()),
        ));
    }
    let size_le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let size_be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let big_endian = match (size_le, size_be) {
        (348, _) => false,
        (_, 348) => true,
        (540, _) | (_, 540) => {
            return Err(ReadError::unsupported(
                name,
                "NIfTI-2; save the scan as NIfTI-1",
            ));
        }
        _ => {
            return Err(ReadError::malformed(
                name,
                "not a NIfTI-1 file (header size is not 348)",
            ));
        }
    };
    match &bytes[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(ReadError::unsupported(
                name,
                "a two-file NIfTI (.hdr/.img); save it as a single .nii",
            ));
        }
        _ => {
            return Err(ReadError::malformed(
                name,
                "NIfTI magic is neither `n+1` nor `ni1`",
            ));
        }
    }
    let f = Fields { bytes, big_endian };
    let ndim = f.i16(40);
    if !(1..=7).contains(&ndim) {
        return Err(ReadError::malformed(
            name,
            format!("dim[0] = {ndim} is outside 1..7"),
        ));
    }
    let dim: Vec<i16> = (1..=7)
        .map(|i| {
            if i <= ndim as usize {
                f.i16(40 + 2 * i)
            } else {
                1
            }
        })
        .collect();
    if dim.iter().any(|&d| d < 1) {
        return Err(ReadError::malformed(
            name,
            format!("non-positive size in dim {dim:?}"),
        ));
    }
    // Each size is 1..=32767 (checked above), so it fits any usize; their product may not
    // (four of them pass 2^32), hence u64, saturating.
    let [nx, ny, nz] = [dim[0], dim[1], dim[2]].map(|d| usize::from(d.unsigned_abs()));
    let dims = [nx, ny, nz];
    let extra_volumes = dim[3..]
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(u64::from(d.unsigned_abs())))
        .saturating_sub(1);
    let kind = match f.i16(70) {
        2 => SampleType::U8,
        4 => SampleType::I16,
        8 => SampleType::I32,
        16 => SampleType::F32,
        64 => SampleType::F64,
        256 => SampleType::I8,
        512 => SampleType::U16,
        768 => SampleType::U32,
        other => {
            return Err(ReadError::unsupported(
                name,
                format!("NIfTI datatype {other} (only scalar integer and float types)"),
            ));
        }
    };
    let pixdim: [f32; 8] = std::array::from_fn(|i| f.f32(76 + 4 * i));
    let vox_offset = f.f32(108);
    if !(vox_offset.is_finite() && (0.0..1e9).contains(&vox_offset)) {
        return Err(ReadError::malformed(
            name,
            format!("vox_offset {vox_offset} is not a valid offset"),
        ));
    }
    let (slope, intercept) = (f64::from(f.f32(112)), f64::from(f.f32(116)));
    let (slope, intercept) = if slope != 0.0 && slope.is_finite() && intercept.is_finite() {
        (slope, intercept)
    } else {
        (1.0, 0.0)
    };
    Ok(Header {
        big_endian,
        dims,
        extra_volumes,
        kind,
        pixdim,
        // Finite and below 1e9 (checked above): it fits a u32, so any usize.
        #[allow(clippy::cast_possible_truncation)]
        vox_offset: (vox_offset as u32 as usize).max(HEADER_SIZE),
        slope,
        intercept,
        qform_code: f.i16(252),
        sform_code: f.i16(254),
        quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
        srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
    })
}

/// The 3×4 voxel→RAS affine, and which transform it came from.
fn affine(h: &Header, warnings: &mut Vec<Warning>) -> [[f64; 4]; 3] {
    let srow_ok = h.srow.iter().flatten().all(|v| v.is_finite());
    if h.sform_code > 0 && srow_ok {
        return h.srow.map(|row| row.map(f64::from));
    }
    let spacing = [1, 2, 3]
        .map(|i| f64::from(h.pixdim[i]).abs())
        .map(|s| if s > 0.0 && s.is_finite() { s } else { 1.0 });
    if h.qform_code > 0 && h.quatern.iter().all(|v| v.is_finite()) {
        let [b, c, d] = [h.quatern[0], h.quatern[1], h.quatern[2]].map(f64::from);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let offset = [h.quatern[3], h.quatern[4], h.quatern[5]].map(f64::from);
        return std::array::from_fn(|row| {
            [
                r[row][0] * spacing[0],
                r[row][1] * spacing[1],
                r[row][2] * spacing[2] * qfac,
                offset[row],
            ]
        });
    }
    warnings.push(Warning::new(
        WarningKind::AssumedGeometry,
        "no sform or qform: orientation unknown, axes taken as RAS from pixdim".to_owned(),
    ));
    [
        [spacing[0], 0.0, 0.0, 0.0],
        [0.0, spacing[1], 0.0, 0.0],
        [0.0, 0.0, spacing[2], 0.0],
    ]
}

/// The bytes a single-file NIfTI of `voxels` needs: the header and offset, then the data.
fn header_and_data_bytes(header: &Header, voxels: u64) -> u64 {
    (header.vox_offset as u64).saturating_add(voxels.saturating_mul(header.kind.size() as u64))
}

pub(crate) fn read(
    source: &dyn FileSource,
    index: usize,
    options: &OpenOptions,
) -> Result<Volume, ReadError> {
    let name = source.name(index);
    let file = source.read(index)?;
    let gzipped = file.starts_with(&[0x1f, 0x8b]);
    // A web server may have inflated the file in transit (Content-Encoding: gzip): accept it.
    let inflated_in_transit = !gzipped && lower_name(name).ends_with(".gz");
    // Inflate only as much as the header says exists: a gzip bomb stops at the limit.
    let mut inflated;
    let bytes: &[u8] = if gzipped {
        let mut decoder = flate2::read::MultiGzDecoder::new(file.as_ref());
        let mut head = vec![0u8; HEADER_SIZE];
        decoder.read_exact(&mut head).map_err(|e| {
            ReadError::malformed(name, format!("gzip data is corrupt or too short ({e})"))
        })?;
        let header = parse_header(&head, name)?;
        let voxels = voxel_count(header.dims);
        ReadError::check_voxels(name, voxels, options.max_voxels)?;
        let wanted = header_and_data_bytes(&header, voxels);
        inflated = inflate_buffer(name, file.len(), wanted)?;
        inflated.extend_from_slice(&head);
        decoder
            .take(wanted.saturating_sub(HEADER_SIZE as u64))
            .read_to_end(&mut inflated)
            .map_err(|e| ReadError::malformed(name, format!("gzip data is corrupt ({e})")))?;
        &inflated
    } else {
        &file
    };
    let header = parse_header(bytes, name)?;
    let voxels = voxel_count(header.dims);
    ReadError::check_voxels(name, voxels, options.max_voxels)?;
    // In u64: up to 2^29 voxels of 8 bytes pass 2^32, which a 32-bit usize would wrap.
    let needed = voxels.saturating_mul(header.kind.size() as u64);
    let data = bytes.get(header.vox_offset..).unwrap_or(&[]);
    if (data.len() as u64) < needed {
        return Err(ReadError::malformed(
            name,
            format!(
                "truncated: {} bytes of voxel data, the header's {:?} {:?} needs {needed}",
                data.len(),
                header.dims,
                header.kind
            ),
        ));
    }
    let mut warnings = Vec::new();
    if inflated_in_transit {
        warnings.push(Warning::new(
            WarningKind::Other,
            "named .gz but not compressed (inflated in transit?); read as plain NIfTI".to_owned(),
        ));
    }
    if header.extra_volumes > 0 {
        warnings.push(Warning::new(
            WarningKind::Other,
            format!(
                "{} further volume(s) (time or channels) ignored; showing the first",
                header.extra_volumes
            ),
        ));
    }
    let ras = affine(&header, &mut warnings);
    // RAS → LPS: negate the first two world axes.
    let lps: [[f64; 4]; 3] = [ras[0].map(|v| -v), ras[1].map(|v| -v), ras[2]];
    let axis = |c: usize| [lps[0][c], lps[1][c], lps[2][c]];
    let mut spacing = [1.0; 3];
    let mut axes = [[0.0; 3]; 3];
    for c in 0..3 {
        let a = axis(c);
        let length = norm(a);
        if !(length > 1e-9 && length.is_finite()) {
            return Err(ReadError::malformed(
                name,
                "the voxel-to-world transform is degenerate (a zero-length axis)",
            ));
        }
        spacing[c] = length;
        axes[c] = a.map(|v| v / length);
    }
    let (voxels, clip) = convert(
        data,
        header.kind,
        header.big_endian,
        // At most `data.len()` / sample size (checked above), so it fits.
        usize::try_from(voxels).unwrap_or(usize::MAX),
        header.slope,
        header.intercept,
    );
    warnings.extend(clip);
    Volume::new(
        VolumeHeader {
            format: Format::Nifti,
            dims: header.dims,
            spacing,
            origin: [lps[0][3], lps[1][3], lps[2][3]],
            direction: direction_from_axes(axes[0], axes[1], axes[2]),
            units: IntensityUnits::Hounsfield,
            metadata: Metadata::default(),
            warnings,
        },
        voxels,
    )
    .map_err(|e| ReadError::invalid_volume(name, &e))
}
