//! The one patch function is deterministic: each of the nine reference nodules of the shared
//! LIDC scans gives the same patch (every value within 1e-3) cut from its whole scan and from
//! its LIDC crop — what lets the nodule model learn from crops and score whole-scan candidates.
//! Skipped where the data is absent, a failure under `CI=true`.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use nodulens_core::preprocess::PreprocessConfig;
use nodulens_detect::Site;

const SCANS: [&str; 3] = ["LIDC-IDRI-0006", "LIDC-IDRI-0008", "LIDC-IDRI-0476"];

fn patch(volume: &nodulens_core::Volume, centre: [f64; 3], radius: f64) -> Option<Vec<f32>> {
    let site = Site::at(volume, None, centre, radius)?;
    let mut out = Vec::new();
    site.cut_patch(volume, &PreprocessConfig::default(), &mut out);
    Some(out)
}

#[test]
fn every_reference_nodule_gives_the_same_patch_from_its_scan_and_its_crop() {
    let Some(data) = common::shared_data() else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    let crops = data.join("lidc-crops");
    let table = std::fs::read_to_string(crops.join("nodules.csv")).expect("nodules.csv");
    let rows: Vec<Vec<String>> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let mut compared = 0;
    let mut failures = Vec::new();
    for scan in SCANS {
        let dicom = common::unpacked_scan(scan).expect("unpacked");
        let volume = common::open_paths(&[dicom]).expect("readable");
        let text = std::fs::read_to_string(data.join("scans").join(scan).join("annotations.json"))
            .expect("annotations");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        for n in json["nodules"].as_array().into_iter().flatten() {
            if n["reference"].as_bool() != Some(true) {
                continue;
            }
            let c: Vec<f64> = n["center_mm"]
                .as_array()
                .expect("centre")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect();
            let centre = [c[0], c[1], c[2]];
            let radius = n["diameter_mm"].as_f64().expect("diameter") / 2.0 + 2.5;
            // The crop of the same nodule: same patient, centre within 1 mm.
            let row = rows
                .iter()
                .find(|r| {
                    r[0] == scan
                        && (0..3)
                            .all(|a| (r[5 + a].parse::<f64>().unwrap() - centre[a]).abs() < 1.0)
                })
                .unwrap_or_else(|| panic!("{scan}: no crop at {centre:?}"));
            let crop = common::open_paths(&[crops.join(&row[3])]).expect("crop");
            let (Some(from_scan), Some(from_crop)) =
                (patch(&volume, centre, radius), patch(&crop, centre, radius))
            else {
                failures.push(format!("{}: not segmented", row[3]));
                continue;
            };
            let worst = from_scan
                .iter()
                .zip(&from_crop)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{}: largest difference {worst:.2e}", row[3]);
            if worst > 1e-3 {
                failures.push(format!("{}: patches differ by {worst}", row[3]));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(compared, 9, "nine reference nodules");
}
