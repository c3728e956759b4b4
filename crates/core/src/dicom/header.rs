//! The attributes of one file that take part in grouping, geometry and decoding.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

pub(super) fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_owned())
}

pub(super) fn floats(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    obj.get(tag)?
        .to_multi_float64()
        .ok()
        .filter(|v| v.iter().all(|x| x.is_finite()))
}

pub(super) fn float(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    floats(obj, tag)?.first().copied()
}

pub(super) fn int(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

/// The first item of a sequence attribute.
pub(super) fn first_item(
    obj: &InMemDicomObject,
    tag: dicom_core::Tag,
) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

/// Looks `tag` up inside functional group `group` of a per-frame or shared item.
pub(super) fn in_group(
    item: Option<&InMemDicomObject>,
    group: dicom_core::Tag,
    tag: dicom_core::Tag,
) -> Option<Vec<f64>> {
    floats(first_item(item?, group)?, tag)
}

/// One image plane: a single-frame file, or one frame of a multi-frame file.
#[derive(Debug, Clone)]
pub(super) struct Plane {
    pub(super) file: usize,
    pub(super) frame: u32,
    pub(super) position: Option<[f64; 3]>,
    pub(super) instance: Option<i64>,
    pub(super) slope: f64,
    pub(super) intercept: f64,
    /// The instance (SOP class and instance UID) the plane belongs to.
    pub(super) source: SliceSource,
}

/// What the pixel decoder needs to know of a file.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PixelLayout {
    pub(super) rows: usize,
    pub(super) columns: usize,
    pub(super) bits_allocated: u16,
    pub(super) bits_stored: u16,
    pub(super) signed: bool,
}

/// Header facts of one file that take part in grouping.
#[derive(Debug, Clone)]
pub(super) struct FileHeader {
    pub(super) series_uid: String,
    pub(super) modality: Option<String>,
    pub(super) layout: PixelLayout,
    pub(super) orientation: Option<[f64; 6]>,
    pub(super) pixel_spacing: Option<[f64; 2]>,
    pub(super) metadata: Metadata,
    pub(super) spacing_between_slices: Option<f64>,
    pub(super) planes: Vec<Plane>,
}

pub(super) fn to3(v: &[f64]) -> Option<[f64; 3]> {
    (v.len() >= 3).then(|| [v[0], v[1], v[2]])
}

pub(super) fn header(
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
    let (sop_class_uid, sop_instance_uid) = (
        text(obj, tags::SOP_CLASS_UID),
        text(obj, tags::SOP_INSTANCE_UID),
    );
    let sop = |frame: u32| SliceSource {
        sop_class_uid: sop_class_uid.clone(),
        sop_instance_uid: sop_instance_uid.clone(),
        frame,
    };
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
            source: sop(0),
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
                    source: sop(frame),
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
            study_time: text(obj, tags::STUDY_TIME),
            other_series: Vec::new(),
            study_uid: text(obj, tags::STUDY_INSTANCE_UID),
            frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
            study_id: text(obj, tags::STUDY_ID),
            accession_number: text(obj, tags::ACCESSION_NUMBER),
            patient: Patient {
                id: text(obj, tags::PATIENT_ID),
                name: text(obj, tags::PATIENT_NAME),
                birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
                sex: text(obj, tags::PATIENT_SEX),
            },
            slices: Vec::new(),
        },
        planes,
    }))
}
