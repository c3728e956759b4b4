//! `nodulens detect` as a user runs it: on the committed sample scan (LIDC-IDRI-0006) the
//! report has the documented keys, findings sorted by p(nodule), the reference nodule among the
//! scored candidates, and a Lung-RADS category; a grey-level PNG stack is analysed without
//! nonsense findings and exits 0; a bad threshold is refused.

mod run;

use run::{nodulens, root};

fn report(args: &[&str], name: &str) -> serde_json::Value {
    let out_dir = root().join("target/test-detect");
    std::fs::create_dir_all(&out_dir).expect("output folder");
    let json = out_dir.join(name);
    let mut all: Vec<&str> = args.to_vec();
    let path = json.to_string_lossy().into_owned();
    all.extend(["--json", &path]);
    let out = nodulens(&all);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON")
}

#[test]
fn the_sample_scan_gives_findings_with_the_documented_keys() {
    let all = report(
        &[
            "detect",
            "static/sample/LIDC-IDRI-0006.nii.gz",
            "--threshold",
            "0",
        ],
        "sample-all.json",
    );
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
        assert!(all.get(key).is_some(), "missing {key}");
    }
    let findings = all["findings"].as_array().expect("findings");
    assert!(
        findings.len() > 50 && findings.len() <= 300,
        "{}",
        findings.len()
    );
    let p: Vec<f64> = findings
        .iter()
        .map(|f| f["p_nodule"].as_f64().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "sorted by p_nodule");
    for key in [
        "center_mm",
        "center_voxel",
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
    ] {
        assert!(findings[0].get(key).is_some(), "finding without {key}");
    }
    // The scan's one reference nodule (6.7 mm; LIDC readers' centre) is scored and measured.
    let reference = [74.28, 57.09, -122.28];
    let on_it = findings.iter().find(|f| {
        let c: Vec<f64> = f["center_mm"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        (0..3)
            .map(|a| (c[a] - reference[a]).powi(2))
            .sum::<f64>()
            .sqrt()
            <= 3.35
    });
    let on_it = on_it.expect("a scored finding on the reference nodule");
    let d = on_it["diameter_mm"].as_f64().unwrap();
    assert!(
        (4.5..9.0).contains(&d),
        "measured {d} mm for a 6.7 mm nodule"
    );

    // At the operating point: fewer findings, merged, the same keys.
    let shown = report(
        &["detect", "static/sample/LIDC-IDRI-0006.nii.gz"],
        "sample.json",
    );
    let n = shown["findings"].as_array().unwrap().len();
    assert!(n < findings.len());
    let t = shown["threshold"].as_f64().unwrap();
    assert!(
        t > 0.0
            && shown["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["p_nodule"].as_f64().unwrap() >= t)
    );
    let category = shown["lung_rads"].as_str().unwrap();
    assert!(
        ["1", "2", "3", "4A", "4B"].contains(&category),
        "{category}"
    );
    held_to_the_browser_reference(&all, t, n);
}

/// What the browser test (`tests/web.rs`) holds the wasm32 build to: every scored candidate of
/// the sample (centre, diameter, both probabilities) and the count at the operating point.
/// `NODULENS_WRITE_REFERENCE=1` rewrites it after a deliberate change (e.g. new models).
fn held_to_the_browser_reference(all: &serde_json::Value, threshold: f64, shown: usize) {
    let scored: Vec<serde_json::Value> = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            serde_json::json!({
                "center_mm": f["center_mm"],
                "diameter_mm": f["diameter_mm"],
                "p_nodule": f["p_nodule"],
                "p_malignant": f["p_malignant"],
            })
        })
        .collect();
    let got = serde_json::json!({
        "operating_point": threshold,
        "findings_at_operating_point": shown,
        "scored": scored,
    });
    let path = root().join("tests/fixtures/detect/sample_findings.json");
    if std::env::var("NODULENS_WRITE_REFERENCE").as_deref() == Ok("1") {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("reference")).unwrap();
    assert_eq!(
        got,
        expected,
        "the sample's findings changed: if deliberate, rewrite {} (NODULENS_WRITE_REFERENCE=1)",
        path.display()
    );
}

#[test]
fn a_grey_level_stack_is_analysed_without_findings() {
    let json = report(&["detect", "tests/fixtures/png/grey8"], "png.json");
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(0));
    let kinds: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"not_hounsfield") || kinds.contains(&"no_lungs"),
        "{kinds:?}"
    );
    assert_eq!(json["lung_rads"], "0");
}

#[test]
fn a_threshold_outside_zero_to_one_is_refused() {
    let out = nodulens(&["detect", "tests/fixtures/png/grey8", "--threshold", "1.5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a probability"));
}
