//! A report as files a clinic can keep: the JSON document (`nodulens detect --json` and the
//! page's download write the same one) and a CSV table of the findings. The DICOM SR is
//! [`sr`](crate::sr).

use std::fmt::Write as _;

use nodulens_core::Volume;
use serde::Serialize;

use crate::findings::Report;

/// Where a report's scan came from, as the JSON document's `source` gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSource {
    pub format: &'static str,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub series_uid: Option<String>,
    pub study_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
}

impl ReportSource {
    pub fn of(volume: &Volume) -> ReportSource {
        let m = volume.metadata();
        ReportSource {
            format: volume.format().label(),
            dims: volume.dims(),
            spacing_mm: volume.spacing(),
            series_uid: m.series_uid.clone(),
            study_uid: m.study_uid.clone(),
            frame_of_reference_uid: m.frame_of_reference_uid.clone(),
        }
    }
}

/// The JSON document: the report's fields, then `timings_ms` (milliseconds per stage),
/// `model` (the models' files, hashes and operating point) and `source`.
#[derive(Debug, Clone, Serialize)]
pub struct ReportDocument<'a, T: Serialize, M: Serialize> {
    #[serde(flatten)]
    pub report: &'a Report,
    pub timings_ms: T,
    pub model: M,
    pub source: ReportSource,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 17] = [
    "finding",
    "center_x_mm",
    "center_y_mm",
    "center_z_mm",
    "center_i",
    "center_j",
    "center_k",
    "diameter_mm",
    "long_axis_mm",
    "short_axis_mm",
    "volume_mm3",
    "mean_hu",
    "type",
    "p_nodule",
    "p_malignant",
    "lung_rads",
    "lung_rads_rule",
];

/// The findings as CSV (RFC 4180: comma-separated, CRLF, fields quoted where they must be),
/// one row per finding in the report's order, numbered from 1; coordinates in LPS mm.
pub fn findings_csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for (i, f) in report.findings.iter().enumerate() {
        let [x, y, z] = f.center_mm;
        let [ci, cj, ck] = f.center_voxel;
        let _ = write!(
            out,
            "{},{x:.2},{y:.2},{z:.2},{ci},{cj},{ck},{:.1},{:.1},{:.1},{:.0},{:.0},{},{:.4},{:.4},{},{}\r\n",
            i + 1,
            f.diameter_mm,
            f.long_axis_mm,
            f.short_axis_mm,
            f.volume_mm3,
            f.mean_hu,
            f.nodule_type.name(),
            f.p_nodule,
            f.p_malignant,
            f.lung_rads.code(),
            csv_field(&f.lung_rads_rule),
        );
    }
    out
}

/// A field quoted (quotes doubled) when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Finding, ScanSummary};
    use crate::lung_rads::Category;
    use crate::measure::NoduleType;

    fn finding(p_nodule: f32, rule: &str) -> Finding {
        Finding {
            center_mm: [-101.25, 20.5, -300.0],
            center_voxel: [10, 20, 30],
            diameter_mm: 7.04,
            long_axis_mm: 8.0,
            short_axis_mm: 6.1,
            volume_mm3: 180.4,
            mean_hu: 12.6,
            nodule_type: NoduleType::Solid,
            solid_component_mm: None,
            calcified: false,
            on_pleura: false,
            p_nodule,
            p_malignant: 0.25,
            lung_rads: Category::ProbablyBenign,
            lung_rads_rule: rule.to_owned(),
            scale_mm: 6.0,
        }
    }

    fn report() -> Report {
        Report::of_findings(
            vec![finding(0.99, "solid, 6 to <8 mm"), finding(0.9, "plain")],
            0.5,
            ScanSummary {
                candidates: 12,
                scored: 10,
                lung_volume_ml: 4200.0,
                lungs_covered: true,
                warnings: Vec::new(),
            },
        )
    }

    #[test]
    fn csv_has_a_header_and_one_quoted_row_per_finding() {
        let csv = findings_csv(&report());
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "header, two rows, and the last CRLF");
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "1,-101.25,20.50,-300.00,10,20,30,7.0,8.0,6.1,180,13,solid,0.9900,0.2500,3,\"solid, 6 to <8 mm\""
        );
        assert!(lines[2].ends_with(",3,plain"));
        assert_eq!(lines[3], "");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn the_scan_category_is_the_highest_of_the_findings() {
        let r = report();
        assert_eq!(r.lung_rads, Category::ProbablyBenign);
        let none = Report::of_findings(
            Vec::new(),
            0.5,
            ScanSummary {
                candidates: 0,
                scored: 0,
                lung_volume_ml: 0.0,
                lungs_covered: false,
                warnings: Vec::new(),
            },
        );
        assert_eq!(none.lung_rads, Category::Incomplete);
    }

    #[test]
    fn the_document_flattens_the_report() {
        let r = report();
        let volume = crate::phantom::chest();
        let doc = ReportDocument {
            report: &r,
            timings_ms: [("lungs", 1.5)]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
            model: "m",
            source: ReportSource::of(&volume),
        };
        let json = serde_json::to_value(&doc).expect("serialises");
        for key in [
            "findings",
            "lung_rads",
            "threshold",
            "candidates",
            "warnings",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["timings_ms"]["lungs"], 1.5);
        assert_eq!(json["source"]["dims"], serde_json::json!(volume.dims()));
        assert_eq!(json["findings"][0]["type"], "solid");
    }
}
