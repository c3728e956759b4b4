//! Every reader against committed fixtures whose expected geometry and HU statistics were
//! computed independently (pydicom/nibabel/numpy, `scripts/make_fixtures.py`), and whose
//! files were written by other encoders (dcmtk, GDCM, nibabel, Pillow).

mod common;

use serde_json::Value;

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
fn fixtures_match_independent_reference() {
    let dir = common::repo().join("tests/fixtures");
    let reference: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference.json")).expect("reference.json"),
    )
    .expect("valid json");
    assert!(reference.len() >= 30, "fixtures missing");
    let mut failures = Vec::new();
    for (name, want) in &reference {
        let result = common::open_paths(&[dir.join(name)]);
        if let Some(error) = want.get("error").and_then(Value::as_str) {
            match result {
                Err(e) if e.to_string().contains(error) => {}
                other => failures.push(format!(
                    "{name}: expected error containing {error:?}, got {other:?}"
                )),
            }
            continue;
        }
        let volume = match result {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if let Some(warning) = want.get("warning").and_then(Value::as_str) {
            if !volume
                .warnings()
                .iter()
                .any(|w| w.message.contains(warning))
            {
                failures.push(format!(
                    "{name}: no warning containing {warning:?} in {:?}",
                    volume.warnings()
                ));
            }
            if let Some(n) = want.get("slices").and_then(Value::as_u64)
                && volume.dims()[2] as u64 != n
            {
                failures.push(format!("{name}: {} slices, expected {n}", volume.dims()[2]));
            }
            continue;
        }
        let numbers = |key: &str| -> Vec<f64> {
            want[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        let dims: Vec<f64> = volume.dims().iter().map(|&d| d as f64).collect();
        let checks: [(&str, Vec<f64>, f64); 4] = [
            ("dims", dims, 0.0),
            ("spacing_mm", volume.spacing().to_vec(), 1e-4),
            ("origin_mm", volume.origin().to_vec(), 1e-3),
            ("direction", volume.direction().to_vec(), 1e-5),
        ];
        for (key, got, tolerance) in checks {
            let expected = numbers(key);
            if expected.len() != got.len()
                || expected
                    .iter()
                    .zip(&got)
                    .any(|(e, g)| !close(*e, *g, tolerance))
            {
                failures.push(format!("{name}: {key} {got:?}, expected {expected:?}"));
            }
        }
        let stats = volume.statistics();
        let mean_tolerance = want
            .get("mean_tolerance")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6);
        let range_tolerance = want
            .get("range_tolerance")
            .and_then(Value::as_f64)
            .unwrap_or(if mean_tolerance > 1e-6 { 100.0 } else { 0.0 });
        let expect = |k: &str| want[k].as_f64().unwrap_or(f64::NAN);
        if !close(stats.mean, expect("hu_mean"), mean_tolerance)
            || !close(f64::from(stats.min), expect("hu_min"), range_tolerance)
            || !close(f64::from(stats.max), expect("hu_max"), range_tolerance)
        {
            failures.push(format!(
                "{name}: values {}..{} mean {:.4}, expected {}..{} mean {:.4}",
                stats.min,
                stats.max,
                stats.mean,
                expect("hu_min"),
                expect("hu_max"),
                expect("hu_mean")
            ));
        }
        if let Some(uid) = want.get("series_uid").and_then(Value::as_str)
            && volume.metadata().series_uid.as_deref() != Some(uid)
        {
            failures.push(format!("{name}: series {:?}", volume.metadata().series_uid));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same voxel, read through every lossless path, holds the same HU: checks ordering
/// and placement, not just statistics.
#[test]
fn lossless_encodings_agree_voxel_for_voxel() {
    let dir = common::repo().join("tests/fixtures");
    let baseline = common::open_paths(&[dir.join("dicom/explicit_le")]).expect("baseline");
    for name in [
        "dicom/implicit_le",
        "dicom/explicit_be",
        "dicom/deflated",
        "dicom/rle",
        "dicom/jpeg_lossless",
        "dicom/jpeg_lossless_p14",
        "dicom/jpeg2000_lossless",
        "dicom/no_preamble",
        "dicom/bare_dataset",
        "dicom/multiframe.dcm",
        "dicom/series.zip",
        "metaimage/scan.mhd",
        "metaimage/packed.mhd",
        "metaimage/single.mha",
        "nifti/scan.nii.gz",
        "nifti/qform_only.nii",
        "nifti/scaled_uint16.nii",
    ] {
        let other = common::open_paths(&[dir.join(name)]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            other.voxels() == baseline.voxels(),
            "{name}: voxels differ from the explicit-LE series"
        );
    }
    // Flipped rows: the same anatomy, stored upside down.
    let flipped = common::open_paths(&[dir.join("nifti/flipped_rows.nii.gz")]).expect("flipped");
    let world = baseline.voxel_to_world([10.0, 20.0, 3.0]);
    let ijk = flipped.world_to_voxel(world);
    assert!(
        (ijk[0] - 10.0).abs() < 1e-6 && (ijk[2] - 3.0).abs() < 1e-6,
        "{ijk:?}"
    );
}

/// Lossy JPEG 2000 (irreversible 9/7 at 8:1, written by OpenJPEG): close to the original
/// voxel for voxel. OpenJPEG itself reads it back 4.5–4.8 HU off on average per slice.
#[test]
fn lossy_jpeg2000_stays_close_to_the_original() {
    let dir = common::repo().join("tests/fixtures");
    let original = common::open_paths(&[dir.join("dicom/explicit_le")]).expect("original");
    let lossy = common::open_paths(&[dir.join("dicom/jpeg2000_lossy")]).expect("lossy");
    assert_eq!(lossy.dims(), original.dims());
    let mean_error = lossy
        .voxels()
        .iter()
        .zip(original.voxels())
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() as f64)
        .sum::<f64>()
        / original.voxels().len() as f64;
    assert!(mean_error < 8.0, "off by {mean_error} HU on average");
}

#[test]
fn png_stack_spacing_comes_from_the_options() {
    let dir = common::repo().join("tests/fixtures/png/grey16");
    let source = nodulens_core::DiskFiles::from_paths(&[dir]).expect("files");
    let options = nodulens_core::OpenOptions {
        stack_spacing_mm: [0.7, 0.7, 2.5],
        ..Default::default()
    };
    let volume = nodulens_core::open(&source, &options, &mut |_| true).expect("stack");
    assert_eq!(volume.spacing(), [0.7, 0.7, 2.5]);
    assert_eq!(volume.units(), nodulens_core::IntensityUnits::GreyLevels);
    // Natural order: slice10 comes after slice3, so slice index 3 holds slice10.png.
    let ten = image::open(common::repo().join("tests/fixtures/png/grey16/slice10.png"))
        .expect("png")
        .into_luma16();
    assert_eq!(volume.get(5, 7, 3), Some(ten.get_pixel(5, 7).0[0] as i16));
}

#[test]
fn cancelling_stops_the_decode() {
    let dir = common::repo().join("tests/fixtures/dicom/explicit_le");
    let source = nodulens_core::DiskFiles::from_paths(&[dir]).expect("files");
    // Say stop at the third report, partway through the five files.
    let mut calls = 0;
    let result = nodulens_core::open(&source, &Default::default(), &mut |_| {
        calls += 1;
        calls < 3
    });
    assert!(
        matches!(result, Err(nodulens_core::ReadError::Cancelled)),
        "{result:?}"
    );
    assert_eq!(calls, 3, "no report after the one that cancelled");
}

#[test]
fn voxel_limit_is_checked_before_allocating() {
    let dir = common::repo().join("tests/fixtures/dicom/explicit_le");
    let source = nodulens_core::DiskFiles::from_paths(&[dir]).expect("files");
    let options = nodulens_core::OpenOptions {
        max_voxels: 1000,
        ..Default::default()
    };
    let err = nodulens_core::open(&source, &options, &mut |_| true).unwrap_err();
    assert!(
        err.to_string().contains("more than the limit of 1000"),
        "{err}"
    );
}

#[test]
fn bundled_sample_is_small_and_opens() {
    let path = common::repo().join("static/sample/LIDC-IDRI-0006.nii.gz");
    let bytes = std::fs::metadata(&path).expect("sample present").len();
    assert!(
        bytes <= 25 * 1024 * 1024,
        "sample is {bytes} bytes, budget 25 MB"
    );
    let volume = common::open_paths(&[path]).expect("sample opens");
    assert_eq!(
        volume.spacing().map(|s| (s * 1000.0).round()),
        [625.0, 625.0, 2500.0]
    );
    assert!(
        volume.dims()[2] > 80,
        "the sample must keep the lungs whole"
    );
    assert!(volume.warnings().is_empty(), "{:?}", volume.warnings());
}

#[test]
fn a_series_that_takes_the_lead_late_is_still_decoded_whole() {
    // Two copies of the one-slice series come first, so the five-slice series trails for
    // its first files (decoded later, once it wins) and leads after.
    let dir = common::repo().join("tests/fixtures/dicom/mixed_series");
    let other = dir.join("IM0005.dcm");
    let series: Vec<_> = (0..5).map(|i| dir.join(format!("IM000{i}.dcm"))).collect();
    let mut paths = vec![other.clone(), other];
    paths.extend(series.iter().cloned());
    let mixed = common::open_paths(&paths).expect("opens");
    let alone = common::open_paths(&series).expect("opens");
    assert_eq!(mixed.dims(), alone.dims());
    assert_eq!(mixed.origin(), alone.origin());
    assert!(
        mixed.voxels() == alone.voxels(),
        "the same voxels in the same slots"
    );
    assert!(
        mixed
            .warnings()
            .iter()
            .any(|w| w.kind == nodulens_core::WarningKind::OtherSeries),
        "{:?}",
        mixed.warnings()
    );
}

#[test]
fn dicom_keeps_what_a_report_refers_to() {
    let volume = common::open_paths(&[common::repo().join("tests/fixtures/dicom/explicit_le")])
        .expect("fixture opens");
    let m = volume.metadata();
    assert!(
        m.study_uid.as_deref().is_some_and(|u| u.starts_with("1.")),
        "{m:?}"
    );
    assert!(m.frame_of_reference_uid.is_some(), "{m:?}");
    assert_eq!(m.patient.id.as_deref(), Some("LIDC-IDRI-0006"), "{m:?}");
    // One instance per slice, in slice order (ascending z), each a CT Image Storage instance.
    assert_eq!(m.slices.len(), volume.dims()[2]);
    let uids: std::collections::BTreeSet<_> = m
        .slices
        .iter()
        .map(|s| s.sop_instance_uid.clone())
        .collect();
    assert_eq!(uids.len(), m.slices.len(), "distinct instances");
    for s in &m.slices {
        assert_eq!(
            s.sop_class_uid.as_deref(),
            Some("1.2.840.10008.5.1.4.1.1.2")
        );
        assert_eq!(s.frame, 0);
    }
    // Other formats carry none of it.
    let nifti = common::open_paths(&[common::repo().join("static/sample/LIDC-IDRI-0006.nii.gz")])
        .expect("sample opens");
    assert!(nifti.metadata().slices.is_empty() && nifti.metadata().study_uid.is_none());
}
