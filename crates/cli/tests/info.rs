//! `nodulens info` as a user runs it.

mod run;

use run::nodulens;

#[test]
fn json_has_the_documented_keys() {
    let out = nodulens(&["info", "tests/fixtures/dicom/explicit_le", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "format",
        "modality",
        "dims",
        "spacing_mm",
        "origin_mm",
        "direction",
        "hu_min",
        "hu_max",
        "hu_mean",
        "series_uid",
        "warnings",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["format"], "DICOM");
    assert_eq!(json["dims"], serde_json::json!([96, 96, 5]));
    assert_eq!(json["direction"].as_array().map(Vec::len), Some(9));
}

#[test]
fn single_image_dims_are_columns_rows_frames() {
    let out = nodulens(&["info", "tests/fixtures/dicom/single.dcm", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["dims"], serde_json::json!([96, 96, 1]));
}

#[test]
fn human_output_and_several_paths() {
    let out = nodulens(&["info", "tests/fixtures/metaimage/scan.mhd"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MetaImage") && text.contains("96 × 96 × 5"),
        "{text}"
    );
    // Files given one by one behave like their folder.
    let dir = run::root().join("tests/fixtures/dicom/rle");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["info", "--json"];
    args.extend(files.iter().map(String::as_str));
    let json: serde_json::Value = serde_json::from_slice(&nodulens(&args).stdout).expect("json");
    assert_eq!(json["dims"][2], 5);
}

#[test]
fn failure_is_one_clear_line_and_nonzero() {
    let out = nodulens(&["info", "tests/malformed/nifti_truncated.nii", "--json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("nifti_truncated.nii") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // A corrupt JPEG 2000 stream (once a panic in a codec adapter): still one line.
    let corrupt = nodulens(&["info", "tests/malformed/fuzz_jpeg2000_panic.dcm"]);
    assert!(!corrupt.status.success());
    let stderr = String::from_utf8_lossy(&corrupt.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("JPEG 2000"), "{stderr}");
    let missing = nodulens(&["info", "no/such/file.dcm"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.dcm"));
}
