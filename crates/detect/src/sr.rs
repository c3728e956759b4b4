//! The DICOM Structured Report of a scan's findings: a Comprehensive 3D SR holding a TID 1500
//! Measurement Report, filed in the source study as a new series. One Measurement Group
//! (TID 1410) per finding, located by a SCOORD3D point in the source's Frame of Reference,
//! with its axes, diameter, volume, mean HU, both probabilities, type and Lung-RADS category;
//! the scan's category as the report's qualitative evaluation.
//!
//! Pure: the caller reads the clock and supplies the randomness for new UIDs (wasm32 has
//! neither in `std`), so the CLI and the browser write the same document.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use nodulens_core::{Format, Volume};

use crate::findings::{Finding, Report};
use crate::measure::NoduleType;

/// The coding scheme of what DICOM has no code for (the model's outputs, Lung-RADS); declared
/// in the document's Coding Scheme Identification Sequence, as PS3.16 8.2 asks of "99" schemes.
pub const LOCAL_SCHEME: &str = "99NODULENS";
/// Above this mean diameter (mm) a finding is a mass, not a nodule (Fleischner glossary).
pub const MASS_MM: f64 = 30.0;
/// The new series' number: high, so that viewers list it after the source's series.
pub const SERIES_NUMBER: i32 = 9901;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrError {
    #[error(
        "a DICOM SR refers back to the DICOM images it reports on; this scan was read from {0} \
         (use --json, or open the DICOM series)"
    )]
    NotDicom(&'static str),
    #[error("the DICOM series has no {0}, which a DICOM SR must refer to")]
    Missing(&'static str),
    #[error("could not encode the DICOM SR: {0}")]
    Encode(String),
}

/// What the document needs beyond the report and the scan.
#[derive(Debug, Clone)]
pub struct SrContext<'a> {
    /// The creation date (`YYYYMMDD`) and time (`HHMMSS`), from the caller's clock.
    pub date: &'a str,
    pub time: &'a str,
    /// Randomness behind the new UIDs (instance, series, device, findings).
    pub uid_seed: u128,
    /// The software version, e.g. the crate's.
    pub software_version: &'a str,
    /// The models, e.g. "nodule 1a2b3c4d, malignancy 5e6f7a8b" (their sha256 prefixes).
    pub models: &'a str,
}

/// The SR of `report` on `volume` (read from DICOM), as a Part 10 file's bytes.
pub fn structured_report(
    report: &Report,
    volume: &Volume,
    context: &SrContext,
) -> Result<Vec<u8>, SrError> {
    let object = document(report, volume, context)?;
    let file = object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| SrError::Encode(e.to_string()))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| SrError::Encode(e.to_string()))?;
    Ok(bytes)
}

/// The data set (without the file meta group).
pub fn document(
    report: &Report,
    volume: &Volume,
    context: &SrContext,
) -> Result<InMemDicomObject, SrError> {
    let Source {
        study_uid,
        series_uid,
        frame_of_reference,
    } = source(volume)?;
    let meta = volume.metadata();
    let mut uids = Uids::new(context.uid_seed);
    let sop_instance_uid = uids.next();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();

    let mut sr = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: &str| put_text(&mut sr, tag, vr, value);
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(tags::INSTANCE_CREATION_DATE, VR::DA, context.date);
    put(tags::INSTANCE_CREATION_TIME, VR::TM, context.time);
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::COMPREHENSIVE3_DSR_STORAGE,
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid);
    put(tags::STUDY_DATE, VR::DA, &text(&meta.study_date));
    put(tags::CONTENT_DATE, VR::DA, context.date);
    put(tags::STUDY_TIME, VR::TM, &text(&meta.study_time));
    put(tags::CONTENT_TIME, VR::TM, context.time);
    put(
        tags::ACCESSION_NUMBER,
        VR::SH,
        &text(&meta.accession_number),
    );
    put(tags::MODALITY, VR::CS, "SR");
    put(tags::MANUFACTURER, VR::LO, "Nodulens");
    put(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Nodulens lung nodule findings",
    );
    put(tags::MANUFACTURER_MODEL_NAME, VR::LO, "Nodulens");
    put(tags::PATIENT_NAME, VR::PN, &text(&meta.patient.name));
    put(tags::PATIENT_ID, VR::LO, &text(&meta.patient.id));
    put(
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &text(&meta.patient.birth_date),
    );
    put(tags::PATIENT_SEX, VR::CS, &text(&meta.patient.sex));
    put(tags::DEVICE_SERIAL_NUMBER, VR::LO, context.models);
    put(tags::SOFTWARE_VERSIONS, VR::LO, context.software_version);
    put(tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
    put(tags::SERIES_INSTANCE_UID, VR::UI, &uids.next());
    put(tags::STUDY_ID, VR::SH, &text(&meta.study_id));
    put(tags::SERIES_NUMBER, VR::IS, &SERIES_NUMBER.to_string());
    put(tags::INSTANCE_NUMBER, VR::IS, "1");
    put(tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put(tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    // A model's findings, which no one has verified yet.
    put(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    put(tags::PRELIMINARY_FLAG, VR::CS, "PRELIMINARY");
    sr.put(sequence(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    sr.put(sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    sr.put(sequence(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        vec![elements(&[
            (tags::CODING_SCHEME_DESIGNATOR, VR::SH, LOCAL_SCHEME),
            (tags::CODING_SCHEME_NAME, VR::ST, "Nodulens local codes"),
            (
                tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
                VR::ST,
                "Nodulens",
            ),
        ])],
    ));
    sr.put(sequence(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence(volume, study_uid, series_uid)?],
    ));
    sr.put(sequence(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code("126000", "DCM", "Imaging Measurement Report")],
    ));
    sr.put(template("1500"));

    let mut content = vec![
        code_item(
            "HAS CONCEPT MOD",
            code("121049", "DCM", "Language of Content Item and Descendants"),
            code("en-US", "RFC5646", "English (United States)"),
        ),
        code_item(
            "HAS OBS CONTEXT",
            code("121005", "DCM", "Observer Type"),
            code("121007", "DCM", "Device"),
        ),
        uid_item(
            "HAS OBS CONTEXT",
            code("121012", "DCM", "Device Observer UID"),
            &uids.next(),
        ),
        text_item(
            "HAS OBS CONTEXT",
            code("121013", "DCM", "Device Observer Name"),
            "Nodulens",
        ),
        text_item(
            "HAS OBS CONTEXT",
            code("121014", "DCM", "Device Observer Manufacturer"),
            "Nodulens",
        ),
        text_item(
            "HAS OBS CONTEXT",
            code("121015", "DCM", "Device Observer Model Name"),
            &format!("Nodulens {} ({})", context.software_version, context.models),
        ),
        code_item(
            "HAS CONCEPT MOD",
            code("121058", "DCM", "Procedure reported"),
            code("24627-2", "LN", "CT Chest"),
        ),
    ];
    if !report.findings.is_empty() {
        let groups = report
            .findings
            .iter()
            .enumerate()
            .map(|(index, finding)| {
                measurement_group(index + 1, finding, frame_of_reference, &uids.next())
            })
            .collect();
        content.push(container(
            code("126010", "DCM", "Imaging Measurements"),
            None,
            groups,
        ));
    }
    content.push(container(
        code("C0034375", "UMLS", "Qualitative Evaluations"),
        None,
        vec![
            lung_rads_item(report.lung_rads.code()),
            text_item(
                "CONTAINS",
                code(
                    "LUNG-RADS-RULE",
                    LOCAL_SCHEME,
                    "Lung-RADS rule and management",
                ),
                &format!(
                    "{}; {}",
                    report.lung_rads_rule,
                    report.lung_rads.management()
                ),
            ),
        ],
    ));
    sr.put(sequence(tags::CONTENT_SEQUENCE, content));
    Ok(sr)
}

/// What an SR refers back to in its source.
struct Source<'a> {
    study_uid: &'a str,
    series_uid: &'a str,
    frame_of_reference: &'a str,
}

fn source(volume: &Volume) -> Result<Source<'_>, SrError> {
    if volume.format() != Format::Dicom {
        return Err(SrError::NotDicom(volume.format().label()));
    }
    let meta = volume.metadata();
    Ok(Source {
        study_uid: required(&meta.study_uid, "Study Instance UID")?,
        series_uid: required(&meta.series_uid, "Series Instance UID")?,
        frame_of_reference: required(&meta.frame_of_reference_uid, "Frame of Reference UID")?,
    })
}

fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, SrError> {
    value.as_deref().ok_or(SrError::Missing(name))
}

/// Whether an SR can be written for `volume` (DICOM, with the UIDs it must refer to): asked
/// before the analysis, so that a refusal costs nothing.
pub fn check_source(volume: &Volume) -> Result<(), SrError> {
    source(volume).map(|_| ())
}

/// One finding as TID 1410 "Planar ROI Measurements and Qualitative Evaluations", its region
/// a SCOORD3D point at the segmentation's centroid.
fn measurement_group(
    number: usize,
    finding: &Finding,
    frame_of_reference: &str,
    tracking_uid: &str,
) -> Item {
    let mm = || code("mm", "UCUM", "millimeter");
    let unitless = || code("1", "UCUM", "no units");
    let kind = if finding.diameter_mm > MASS_MM {
        code("4147007", "SCT", "Mass")
    } else {
        code("27925004", "SCT", "Nodule")
    };
    let [x, y, z] = finding.center_mm.map(|v| v as f32);
    let mut region = content_item(
        "CONTAINS",
        "SCOORD3D",
        code("111030", "DCM", "Image Region"),
    );
    region.put(DataElement::new(
        tags::GRAPHIC_DATA,
        VR::FL,
        dicom_value!(F32, [x, y, z]),
    ));
    put_text(&mut region, tags::GRAPHIC_TYPE, VR::CS, "POINT");
    put_text(
        &mut region,
        tags::REFERENCED_FRAME_OF_REFERENCE_UID,
        VR::UI,
        frame_of_reference,
    );
    let mut mean_hu = num_item(
        code("112031", "DCM", "Attenuation Coefficient"),
        finding.mean_hu,
        code("[hnsf'U]", "UCUM", "Hounsfield unit"),
    );
    mean_hu.put(sequence(
        tags::CONTENT_SEQUENCE,
        vec![code_item(
            "HAS CONCEPT MOD",
            code("121401", "DCM", "Derivation"),
            code("373098007", "SCT", "Mean"),
        )],
    ));
    let (type_code, type_meaning) = match finding.nodule_type {
        NoduleType::Solid => ("SOLID", "Solid"),
        NoduleType::PartSolid => ("PART-SOLID", "Part-solid"),
        NoduleType::GroundGlass => ("GROUND-GLASS", "Ground glass"),
    };
    let mut items = vec![
        text_item(
            "HAS OBS CONTEXT",
            code("112039", "DCM", "Tracking Identifier"),
            &format!("Finding {number}"),
        ),
        uid_item(
            "HAS OBS CONTEXT",
            code("112040", "DCM", "Tracking Unique Identifier"),
            tracking_uid,
        ),
        code_item("CONTAINS", code("121071", "DCM", "Finding"), kind),
        region,
        num_item(
            code("103339001", "SCT", "Long axis"),
            finding.long_axis_mm,
            mm(),
        ),
        num_item(
            code("103340004", "SCT", "Short axis"),
            finding.short_axis_mm,
            mm(),
        ),
        num_item(
            code("81827009", "SCT", "Diameter"),
            finding.diameter_mm,
            mm(),
        ),
        num_item(
            code("118565006", "SCT", "Volume"),
            finding.volume_mm3,
            code("mm3", "UCUM", "cubic millimeter"),
        ),
        mean_hu,
        num_item(
            code("P-NODULE", LOCAL_SCHEME, "Probability of nodule (model)"),
            f64::from(finding.p_nodule),
            unitless(),
        ),
        // Not a cancer risk: the chance LIDC readers would rate it 4-5 rather than 1-2.
        num_item(
            code(
                "P-MALIGNANT",
                LOCAL_SCHEME,
                "Probability LIDC readers rate it malignant",
            ),
            f64::from(finding.p_malignant),
            unitless(),
        ),
        code_item(
            "CONTAINS",
            code("TYPE", LOCAL_SCHEME, "Nodule type by attenuation"),
            code(type_code, LOCAL_SCHEME, type_meaning),
        ),
    ];
    if let Some(solid) = finding.solid_component_mm {
        items.push(num_item(
            code("SOLID-MM", LOCAL_SCHEME, "Solid component diameter"),
            solid,
            mm(),
        ));
    }
    items.push(lung_rads_item(finding.lung_rads.code()));
    items.push(text_item(
        "CONTAINS",
        code(
            "LUNG-RADS-RULE",
            LOCAL_SCHEME,
            "Lung-RADS rule and management",
        ),
        &finding.lung_rads_rule,
    ));
    let mut group = container(
        code("125007", "DCM", "Measurement Group"),
        Some("1410"),
        items,
    );
    put_text(
        &mut group,
        tags::CONTINUITY_OF_CONTENT,
        VR::CS,
        "CONTINUOUS",
    );
    group
}

fn lung_rads_item(category: &str) -> Item {
    code_item(
        "CONTAINS",
        code("LUNG-RADS", LOCAL_SCHEME, "Lung-RADS v2022 category"),
        code(category, LOCAL_SCHEME, &format!("Lung-RADS {category}")),
    )
}

/// The source series' instances (Current Requested Procedure Evidence: Study → Series → SOP).
fn evidence(volume: &Volume, study_uid: &str, series_uid: &str) -> Result<Item, SrError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut instances = Vec::new();
    for slice in &volume.metadata().slices {
        let (Some(class), Some(instance)) = (&slice.sop_class_uid, &slice.sop_instance_uid) else {
            return Err(SrError::Missing("SOP Instance UID on every slice"));
        };
        if seen.insert(instance.as_str()) {
            instances.push(elements(&[
                (tags::REFERENCED_SOP_CLASS_UID, VR::UI, class),
                (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, instance),
            ]));
        }
    }
    if instances.is_empty() {
        return Err(SrError::Missing("SOP Instance UID on every slice"));
    }
    let mut series = elements(&[(tags::SERIES_INSTANCE_UID, VR::UI, series_uid)]);
    series.put(sequence(tags::REFERENCED_SOP_SEQUENCE, instances));
    let mut study = elements(&[(tags::STUDY_INSTANCE_UID, VR::UI, study_uid)]);
    study.put(sequence(tags::REFERENCED_SERIES_SEQUENCE, vec![series]));
    Ok(study)
}

type Item = InMemDicomObject;

fn put_text(object: &mut Item, tag: Tag, vr: VR, value: &str) {
    if value.is_empty() {
        object.put(DataElement::empty(tag, vr));
    } else {
        object.put(DataElement::new(tag, vr, value));
    }
}

fn elements(values: &[(Tag, VR, &str)]) -> Item {
    let mut item = Item::new_empty();
    for &(tag, vr, value) in values {
        put_text(&mut item, tag, vr, value);
    }
    item
}

fn sequence(tag: Tag, items: Vec<Item>) -> DataElement<Item> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// A code sequence item: value, scheme, meaning.
fn code(value: &str, scheme: &str, meaning: &str) -> Item {
    elements(&[
        (tags::CODE_VALUE, VR::SH, value),
        (tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        (tags::CODE_MEANING, VR::LO, meaning),
    ])
}

fn template(identifier: &str) -> DataElement<Item> {
    sequence(
        tags::CONTENT_TEMPLATE_SEQUENCE,
        vec![elements(&[
            (tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
            (tags::TEMPLATE_IDENTIFIER, VR::CS, identifier),
        ])],
    )
}

fn content_item(relationship: &str, value_type: &str, name: Item) -> Item {
    let mut item = elements(&[
        (tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        (tags::VALUE_TYPE, VR::CS, value_type),
    ]);
    item.put(sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![name]));
    item
}

fn code_item(relationship: &str, name: Item, value: Item) -> Item {
    let mut item = content_item(relationship, "CODE", name);
    item.put(sequence(tags::CONCEPT_CODE_SEQUENCE, vec![value]));
    item
}

fn text_item(relationship: &str, name: Item, value: &str) -> Item {
    let mut item = content_item(relationship, "TEXT", name);
    put_text(&mut item, tags::TEXT_VALUE, VR::UT, value);
    item
}

fn uid_item(relationship: &str, name: Item, uid: &str) -> Item {
    let mut item = content_item(relationship, "UIDREF", name);
    put_text(&mut item, tags::UID, VR::UI, uid);
    item
}

fn num_item(name: Item, value: f64, unit: Item) -> Item {
    let mut item = content_item("CONTAINS", "NUM", name);
    let mut measured = elements(&[(tags::NUMERIC_VALUE, VR::DS, &decimal_string(value))]);
    measured.put(DataElement::new(
        tags::FLOATING_POINT_VALUE,
        VR::FD,
        PrimitiveValue::from(value),
    ));
    measured.put(sequence(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![unit]));
    item.put(sequence(tags::MEASURED_VALUE_SEQUENCE, vec![measured]));
    item
}

fn container(name: Item, template_id: Option<&str>, children: Vec<Item>) -> Item {
    let mut item = content_item("CONTAINS", "CONTAINER", name);
    put_text(&mut item, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    if let Some(id) = template_id {
        item.put(template(id));
    }
    item.put(sequence(tags::CONTENT_SEQUENCE, children));
    item
}

/// A DS value: at most 16 characters (PS3.5 6.2), as many decimals as fit, up to six.
fn decimal_string(value: f64) -> String {
    if !value.is_finite() {
        return "0".to_owned();
    }
    for decimals in (0..=6).rev() {
        let text = format!("{value:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        };
        if text.len() <= 16 {
            return if text == "-0" { "0".to_owned() } else { text };
        }
    }
    format!("{value:.0}")
}

/// New UIDs under the UUID arc `2.25` (PS3.5 B.2): the seed's bits, mixed with a counter so
/// each UID of one document differs.
struct Uids {
    seed: u128,
    count: u64,
}

impl Uids {
    fn new(seed: u128) -> Uids {
        Uids { seed, count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        let high = splitmix((self.seed >> 64) as u64 ^ self.count);
        let low = splitmix(self.seed as u64 ^ self.count.rotate_left(32));
        let value = (u128::from(high) << 64 | u128::from(low)) >> 1;
        format!("2.25.{value}")
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(decimal_string(6.7), "6.7");
        assert_eq!(decimal_string(0.123456789), "0.123457");
        assert_eq!(decimal_string(-0.0000001), "0");
        assert_eq!(decimal_string(150.0), "150");
        assert!(decimal_string(123456789.123456).len() <= 16);
        assert_eq!(decimal_string(f64::NAN), "0");
    }

    #[test]
    fn uids_are_distinct_and_valid() {
        let mut uids = Uids::new(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        let a = uids.next();
        let b = uids.next();
        assert_ne!(a, b);
        for uid in [a, b] {
            assert!(uid.len() <= 64, "{uid}");
            assert!(uid.starts_with("2.25."));
            assert!(uid[5..].chars().all(|c| c.is_ascii_digit()));
            assert!(!uid[5..].starts_with('0') || uid.len() == 6);
        }
    }
}
