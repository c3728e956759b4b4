//! The page's downloads, built from what is shown (the findings at the reader's threshold):
//! the JSON document `nodulens detect --json` writes, a CSV table, and a DICOM SR for DICOM
//! input. Pure; the UI (`src/components/reports.rs`) turns them into files.

use nodulens_core::Volume;
use nodulens_detect::{Report, ReportDocument, ReportSource, SrContext, sr};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::analysis::AnalysisResult;

/// What the meaning of `p_malignant` is, shown beside every place the page gives it.
pub const P_MALIGNANT_MEANING: &str = "p(malignant) is the chance that LIDC radiologists would \
    rate the nodule's malignancy 4–5 (suspicious) rather than 1–2 (benign); it is a rating of \
    suspicion learnt from images, not a cancer risk and not pathology.";

/// Stage timings as a JSON object, in the order the stages ran.
struct Timings<'a>(&'a [(String, f64)]);

impl Serialize for Timings<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (stage, ms) in self.0 {
            map.serialize_entry(stage, ms)?;
        }
        map.end()
    }
}

/// The JSON document of `report` (the CLI's schema), pretty-printed.
pub fn json_document(report: &Report, result: &AnalysisResult, volume: &Volume) -> String {
    let document = ReportDocument {
        report,
        timings_ms: Timings(&result.timings_ms),
        model: &result.model,
        source: ReportSource::of(volume),
    };
    // Plain data (strings, numbers, maps): serialising it cannot fail.
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

/// Why no SR can be written for `volume` (not DICOM, or a UID it must refer to is missing).
pub fn sr_refusal(volume: &Volume) -> Option<String> {
    sr::check_source(volume).err().map(|e| match e {
        // The CLI's wording names its flags; the page names its buttons.
        sr::SrError::NotDicom(format) => format!(
            "a DICOM SR refers back to the DICOM images it reports on, and this scan was read \
             from {format}: download the JSON or CSV, or open the DICOM series"
        ),
        other => other.to_string(),
    })
}

/// The DICOM SR of `report` (Part 10 bytes). `now` is the local clock as `YYYYMMDD` and
/// `HHMMSS`; `uid_seed` fresh randomness.
pub fn structured_report(
    report: &Report,
    result: &AnalysisResult,
    volume: &Volume,
    (date, time): (&str, &str),
    uid_seed: u128,
) -> Result<Vec<u8>, String> {
    let context = SrContext {
        date,
        time,
        uid_seed,
        software_version: env!("CARGO_PKG_VERSION"),
        models: &result.models_id,
    };
    nodulens_detect::structured_report(report, volume, &context).map_err(|e| e.to_string())
}

/// The name a download gets: the patient ID and study date where the scan gives them (a DICOM
/// folder is otherwise only "133 files"), else what was opened without its extensions; then
/// `-nodulens.<extension>`, with nothing a file system could refuse.
pub fn download_name(volume: &Volume, source: &str, extension: &str) -> String {
    let m = volume.metadata();
    match m.patient.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => {
            let stem = match m.study_date.as_deref().map(str::trim) {
                Some(date) if !date.is_empty() => format!("{id}-{date}"),
                _ => id.to_owned(),
            };
            named(&stem, extension)
        }
        _ => file_name(source, extension),
    }
}

/// The name of a download of `source` (a file or folder name) by itself.
pub fn file_name(source: &str, extension: &str) -> String {
    let base = source.rsplit(['/', '\\']).next().unwrap_or(source);
    let stem = base
        .strip_suffix(".gz")
        .unwrap_or(base)
        .rsplit_once('.')
        .filter(|(stem, ext)| !stem.is_empty() && ext.len() <= 4)
        .map_or(base, |(stem, _)| stem);
    named(stem, extension)
}

fn named(stem: &str, extension: &str) -> String {
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let safe = if safe.trim_matches(['_', '.']).is_empty() {
        "scan".to_owned()
    } else {
        safe
    };
    format!("{safe}-nodulens.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Analysis, AnalysisAction};

    fn analysed() -> (Analysis, Volume) {
        let mut a = Analysis::default();
        a.apply(AnalysisAction::Started { job: 1 });
        let mut result = (*crate::analysis::tests::result()).clone();
        result.timings_ms = vec![("lungs".into(), 420.0), ("candidates".into(), 730.5)];
        result.model = serde_json::json!({ "operating_point": 0.9 });
        a.apply(AnalysisAction::Done {
            job: 1,
            result: std::rc::Rc::new(result),
        });
        (a, nodulens_detect::phantom::chest())
    }

    #[test]
    fn the_json_document_has_the_clis_keys_and_what_is_shown() {
        let (a, volume) = analysed();
        let report = a.report().expect("a report");
        let result = a.result.as_ref().expect("a result");
        let json: serde_json::Value =
            serde_json::from_str(&json_document(&report, result, &volume)).expect("JSON");
        for key in [
            "findings",
            "lung_rads",
            "lung_rads_rule",
            "threshold",
            "candidates",
            "timings_ms",
            "warnings",
            "model",
            "source",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["findings"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["lung_rads"], "4A");
        let stages: Vec<&String> = json["timings_ms"]
            .as_object()
            .expect("an object")
            .keys()
            .collect();
        assert_eq!(stages.len(), 2);
        assert_eq!(json["timings_ms"]["candidates"], 730.5);
        assert_eq!(json["model"]["operating_point"], 0.9);
        assert_eq!(json["source"]["format"], volume.format().label());
    }

    #[test]
    fn the_csv_has_a_row_per_finding_shown() {
        let (a, _) = analysed();
        let csv = nodulens_detect::findings_csv(&a.report().expect("a report"));
        assert_eq!(csv.lines().count(), 3);
    }

    #[test]
    fn an_sr_is_refused_for_a_volume_not_read_from_dicom() {
        let (a, volume) = analysed();
        let refusal = sr_refusal(&volume).expect("the phantom is not DICOM");
        assert!(
            refusal.contains("DICOM") && refusal.contains("JSON or CSV"),
            "{refusal}"
        );
        let result = a.result.as_ref().expect("a result");
        let report = a.report().expect("a report");
        assert!(structured_report(&report, result, &volume, ("20261204", "120000"), 7).is_err());
    }

    #[test]
    fn file_names_keep_the_scans_name_and_nothing_unsafe() {
        assert_eq!(
            file_name("LIDC-IDRI-0006.nii.gz", "json"),
            "LIDC-IDRI-0006-nodulens.json"
        );
        assert_eq!(file_name("scan.mhd", "csv"), "scan-nodulens.csv");
        assert_eq!(
            file_name("1.3.6.1.4.1.14519 (261 files)", "dcm"),
            "1.3.6.1.4.1.14519__261_files_-nodulens.dcm"
        );
        assert_eq!(file_name("dir/a b.zip", "json"), "a_b-nodulens.json");
        assert_eq!(file_name("../..", "json"), "scan-nodulens.json");
        assert_eq!(file_name("", "csv"), "scan-nodulens.csv");
        // A DICOM series is named after its patient and study, as the file gives them.
        let (_, mut volume) = analysed();
        assert_eq!(
            download_name(&volume, "133 files", "json"),
            "133_files-nodulens.json"
        );
        let m = volume.metadata_mut();
        m.patient.id = Some("LIDC-IDRI-0006 ".into());
        m.study_date = Some("20000101".into());
        assert_eq!(
            download_name(&volume, "133 files", "dcm"),
            "LIDC-IDRI-0006-20000101-nodulens.dcm"
        );
        volume.metadata_mut().patient.id = Some("../..".into());
        assert_eq!(
            download_name(&volume, "x", "csv"),
            ".._..-20000101-nodulens.csv"
        );
    }
}
