//! The core's readers compiled to wasm32 and run in headless Chromium
//! (`cargo test --target wasm32-unknown-unknown --test web`): the same decode as natively,
//! on committed fixtures, must give the same volume.
#![cfg(target_arch = "wasm32")]

use nodulens_core::{FileSource, MemoryFiles, OpenOptions, ReadError, open};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

macro_rules! fixture {
    ($path:literal) => {
        (
            $path.to_string(),
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $path
            ))
            .to_vec(),
        )
    };
}

fn series(files: Vec<(String, Vec<u8>)>) -> Result<nodulens_core::Volume, ReadError> {
    open(
        &MemoryFiles::new(files),
        &OpenOptions::default(),
        &mut |_| true,
    )
}

/// The app's bundled sample scan (LIDC-IDRI-0006), opened as the page opens it.
fn sample() -> nodulens_core::Volume {
    series(vec![(
        "LIDC-IDRI-0006.nii.gz".to_string(),
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/static/sample/LIDC-IDRI-0006.nii.gz"
        ))
        .to_vec(),
    )])
    .expect("the sample opens")
}

#[wasm_bindgen_test]
fn dicom_series_decodes_in_the_browser() {
    let volume = series(vec![
        fixture!("dicom/explicit_le/IM0000.dcm"),
        fixture!("dicom/explicit_le/IM0001.dcm"),
        fixture!("dicom/explicit_le/IM0002.dcm"),
        fixture!("dicom/explicit_le/IM0003.dcm"),
        fixture!("dicom/explicit_le/IM0004.dcm"),
    ])
    .expect("decodes");
    assert_eq!(volume.dims(), [96, 96, 5]);
    let stats = volume.statistics();
    assert_eq!((stats.min, stats.max), (-1003, 1016));
}

#[wasm_bindgen_test]
fn compressed_syntaxes_decode_in_the_browser() {
    let reference = series(vec![fixture!("dicom/explicit_le/IM0002.dcm")]).expect("reference");
    for file in [
        fixture!("dicom/rle/IM0002.dcm"),
        fixture!("dicom/jpeg_lossless/IM0002.dcm"),
        fixture!("dicom/deflated/IM0002.dcm"),
        fixture!("dicom/explicit_be/IM0002.dcm"),
        fixture!("dicom/jpeg2000_lossless/IM0002.dcm"),
    ] {
        let name = file.0.clone();
        wasm_bindgen_test::console_log!("decoding {name}");
        let volume = series(vec![file]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(volume.voxels() == reference.voxels(), "{name} differs");
    }
    // Lossy JPEG 2000 (8:1): the same slice within a few HU on average (OpenJPEG: 4.7 HU).
    let lossy = series(vec![fixture!("dicom/jpeg2000_lossy/IM0002.dcm")]).expect("JPEG 2000 lossy");
    let mean_error = lossy
        .voxels()
        .iter()
        .zip(reference.voxels())
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() as f64)
        .sum::<f64>()
        / reference.voxels().len() as f64;
    assert!(
        mean_error < 8.0,
        "lossy JPEG 2000 off by {mean_error} HU on average"
    );
    let err =
        series(vec![fixture!("dicom/jpegls_lossless/IM0002.dcm")]).expect_err("JPEG-LS is refused");
    assert!(err.to_string().contains("JPEG-LS"), "{err}");
}

#[wasm_bindgen_test]
fn nifti_metaimage_and_zip_decode_in_the_browser() {
    let nifti = series(vec![fixture!("nifti/scan.nii.gz")]).expect("nifti");
    let mhd = series(vec![
        fixture!("metaimage/scan.mhd"),
        fixture!("metaimage/scan.raw"),
    ])
    .expect("mhd");
    let zip = series(vec![fixture!("dicom/series.zip")]).expect("zip");
    assert!(nifti.voxels() == mhd.voxels() && mhd.voxels() == zip.voxels());
}

/// One case of `tests/malformed`: its name and its files (a folder's, in name order).
type Case = (&'static str, Vec<(String, Vec<u8>)>);

macro_rules! case {
    ($name:literal) => {
        (
            $name,
            vec![(
                $name.to_string(),
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed/", $name)).to_vec(),
            )],
        )
    };
    ($name:literal, [$($file:literal),+]) => {
        (
            $name,
            vec![$((
                concat!($name, "/", $file).to_string(),
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/malformed/",
                    $name,
                    "/",
                    $file
                ))
                .to_vec(),
            )),+],
        )
    };
}

/// Every case of `tests/malformed/expected.json` (`crates/core/tests/malformed.rs` checks
/// natively that this list names them all).
fn malformed_corpus() -> Vec<Case> {
    vec![
        case!("colour_photo.dcm"),
        case!("fuzz_bare_delimiter_length.dcm"),
        case!("fuzz_bare_huge_length.dcm"),
        case!("fuzz_bare_partial_value.dcm"),
        case!("fuzz_deflated_huge_length.dcm"),
        case!("fuzz_deflated_meta_off_group.dcm"),
        case!("fuzz_explicit_item_tag_length.dcm"),
        case!("fuzz_jpeg2000_fragment.dcm"),
        case!("fuzz_jpeg2000_panic.dcm"),
        case!("fuzz_jpeg2000_size_claim.dcm"),
        case!("fuzz_nested_huge_length.dcm"),
        case!("fuzz_rle_truncated_segment.dcm"),
        case!("fuzz_unknown_vr_length.dcm"),
        case!("huge_dims.dcm"),
        case!("jpegls.dcm"),
        case!("mha_truncated.mha"),
        case!("mhd_bad_type.mhd"),
        case!("mhd_huge_dims.mhd"),
        case!("mhd_missing_raw", ["scan.mhd"]),
        case!("mhd_no_datafile.mhd"),
        case!("mhd_short_raw", ["scan.mhd", "short.raw"]),
        case!("mhd_zraw_corrupt", ["scan.mhd", "scan.zraw"]),
        case!(
            "mixed_series",
            [
                "IM0.dcm", "IM1.dcm", "IM2.dcm", "IM3.dcm", "IM4.dcm", "IM5.dcm"
            ]
        ),
        case!("nifti2.nii"),
        case!("nifti_bad_magic.nii"),
        case!("nifti_bomb.nii.gz"),
        case!("nifti_header_only.nii"),
        case!("nifti_not_gzip.nii.gz"),
        case!("nifti_truncated.nii"),
        case!("no_pixel_data.dcm"),
        case!("png_bomb.png"),
        case!("png_mismatched", ["a1.png", "a2.png"]),
        case!("png_truncated.png"),
        case!("raw_without_header.raw"),
        case!("text_named_dcm.dcm"),
        case!("truncated_header.dcm"),
        case!("truncated_pixels.dcm"),
        case!("unknown_transfer_syntax.dcm"),
        case!("wrap32_element_length.dcm"),
        case!("wrap32_meta_length.dcm"),
        case!("wrap32_mha_4gib.mha"),
        case!("wrap32_nifti_4gib.nii"),
        case!("wrap32_png_65536.png"),
        case!("wrong_transfer_syntax.dcm"),
        case!("zero_length.dcm"),
        case!("zip_truncated.zip"),
        case!("zip_without_images.zip"),
    ]
}

/// What the decode worker ends with for `files`, through its own entry points: `begin_open`,
/// then, for DICOM, every file given to a `DicomStream` in order, the late ones, `finish`.
/// The warnings of the header it would send, or the error message it would show.
fn open_as_the_worker_does(files: Vec<(String, Vec<u8>)>) -> Result<Vec<String>, String> {
    use nodulens_core::slices::SliceBuffer;
    let source = MemoryFiles::new(files);
    let opening = nodulens_core::begin_open(&source, &OpenOptions::default(), &mut |_| true)
        .map_err(|e| e.to_string())?;
    match opening {
        nodulens_core::Opening::Decoded(volume) => Ok(volume
            .warnings()
            .iter()
            .map(|w| w.message.clone())
            .collect()),
        nodulens_core::Opening::Dicom(mut stream) => {
            let mut sink = SliceBuffer::default();
            for file in 0..source.count() {
                let bytes = source.read(file).map_err(|e| e.to_string())?;
                stream
                    .add_file(file, source.name(file), &bytes, &mut sink)
                    .map_err(|e| e.to_string())?;
            }
            for file in stream.files_to_decode_late().map_err(|e| e.to_string())? {
                let bytes = source.read(file).map_err(|e| e.to_string())?;
                stream
                    .decode_late(file, source.name(file), &bytes, &mut sink)
                    .map_err(|e| e.to_string())?;
            }
            let (header, _order) = stream.finish().map_err(|e| e.to_string())?;
            Ok(header.warnings.into_iter().map(|w| w.message).collect())
        }
    }
}

/// The hostile-input corpus in the browser, where `usize` has 32 bits: every case gives the
/// error (or warning) `expected.json` names, as natively. A case that hangs never returns,
/// so each is logged before it runs (the runner's timeout then names it), and each must
/// finish within 10 s (a hang guard, not a speed check).
#[wasm_bindgen_test]
fn malformed_corpus_gives_the_native_messages_in_the_browser() {
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(include_str!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed/expected.json")
    ))
    .expect("expected.json");
    let corpus = malformed_corpus();
    assert_eq!(corpus.len(), expected.len(), "every case is in the list");
    let now = || js_sys::Date::now();
    let mut failures = Vec::new();
    for (name, files) in corpus {
        wasm_bindgen_test::console_log!("malformed case {name}");
        let want = &expected[name];
        let started = now();
        let outcome = open_as_the_worker_does(files);
        let seconds = (now() - started) / 1000.0;
        if seconds > 10.0 {
            failures.push(format!("{name}: took {seconds:.1} s"));
        }
        match (
            want.get("error").and_then(|v| v.as_str()),
            want.get("warning").and_then(|v| v.as_str()),
            outcome,
        ) {
            (Some(error), _, Err(message)) if message.contains(error) => {}
            (None, Some(warning), Ok(warnings)) if warnings.iter().any(|w| w.contains(warning)) => {
            }
            (_, _, other) => failures.push(format!("{name}: expected {want}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shipped models in the browser, on the CPU and on WebGPU, against the probabilities
/// recorded natively (`tests/fixtures/model/outputs.json`, checked natively by
/// `crates/model/tests/parity.rs`). Needs `--features inference` (scripts/test.sh passes it).
#[cfg(feature = "inference")]
mod models {
    use super::series;
    use nodulens_app::inference::{cpu_device, webgpu_device};
    use nodulens_model::reference::{self, ReferenceOutputs, TOLERANCE};
    use nodulens_model::{Classifier, Device, Manifest, ModelKind};
    use wasm_bindgen_test::{console_log, wasm_bindgen_test};

    macro_rules! repo_file {
        ($path:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path))
        };
    }
    macro_rules! crop {
        ($name:literal) => {
            (
                concat!("images/", $name),
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/model/images/",
                    $name
                ))
                .as_slice(),
            )
        };
    }

    const CROPS: [(&str, &[u8]); 8] = [
        crop!("LIDC-IDRI-0031_R_3.nii.gz"),
        crop!("LIDC-IDRI-0096_R_1.nii.gz"),
        crop!("LIDC-IDRI-0113_R_1.nii.gz"),
        crop!("LIDC-IDRI-0185_R_4.nii.gz"),
        crop!("LIDC-IDRI-0193_R_1.nii.gz"),
        crop!("LIDC-IDRI-0309_R_2.nii.gz"),
        crop!("LIDC-IDRI-0678_R_1.nii.gz"),
        crop!("LIDC-IDRI-1003_R_3.nii.gz"),
    ];
    const OUTPUTS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/model/outputs.json"
    ));
    const MANIFEST: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/manifest.json"));

    fn weights(kind: ModelKind) -> &'static [u8] {
        match kind {
            ModelKind::Nodule => repo_file!("models/nodule.bpk"),
            ModelKind::Malignancy => repo_file!("models/malignancy.bpk"),
        }
    }

    fn load(kind: ModelKind, device: &Device) -> Classifier {
        let manifest = Manifest::from_json(MANIFEST).expect("manifest");
        let entry = manifest.model(kind).expect("model in manifest");
        Classifier::from_manifest(entry, weights(kind).to_vec(), device).expect("weights load")
    }

    /// The reference patches, made in the browser from the crops by the one preprocessing
    /// function, and the recorded outputs.
    fn reference_inputs() -> (Vec<f32>, ReferenceOutputs) {
        let recorded: ReferenceOutputs = serde_json::from_str(OUTPUTS).expect("outputs.json");
        let volumes: Vec<_> = recorded
            .cases
            .iter()
            .map(|case| {
                let (name, bytes) = CROPS
                    .iter()
                    .find(|(name, _)| *name == case.image)
                    .unwrap_or_else(|| panic!("{} not bundled in this test", case.image));
                series(vec![(name.to_string(), bytes.to_vec())]).expect("crop decodes")
            })
            .collect();
        let inputs: Vec<_> = volumes
            .iter()
            .zip(&recorded.cases)
            .map(|(v, case)| {
                let center = reference::center_of(v);
                let moved = (0..3).map(|a| (center[a] - case.center_lps[a]).abs());
                assert!(moved.fold(0.0, f64::max) < 1e-9, "{}", case.image);
                (v, center)
            })
            .collect();
        // Both models share one preprocessing (crates/model/tests/shipped.rs checks it).
        let manifest = Manifest::from_json(MANIFEST).expect("manifest");
        let preprocess = &manifest
            .model(ModelKind::Nodule)
            .expect("nodule model")
            .preprocess;
        let patches = reference::patches(&inputs, preprocess);
        (patches, recorded)
    }

    /// `burn_forward`: run burn's own forward pass even on the CPU (which otherwise runs the
    /// fused CPU pass of `nodulens_model::cpu`).
    async fn matches_native(device: Device, backend: &str, burn_forward: bool) {
        let (patches, recorded) = reference_inputs();
        for kind in ModelKind::ALL {
            let mut classifier = load(kind, &device);
            if burn_forward {
                classifier = classifier.with_burn_forward();
            }
            let got = classifier.predict_async(&patches).await.expect("inference");
            let expected: Vec<f32> = recorded
                .cases
                .iter()
                .map(|c| match kind {
                    ModelKind::Nodule => c.p_nodule,
                    ModelKind::Malignancy => c.p_malignant,
                })
                .collect();
            let diff = reference::max_difference(&expected, &got).expect("outputs");
            console_log!(
                "{} on {backend}: max |browser − native| = {diff:e}",
                kind.name()
            );
            assert!(
                diff <= TOLERANCE,
                "{} on {backend} differs from native by {diff}",
                kind.name()
            );
        }
    }

    /// The whole pipeline on the bundled sample in the browser (the fused CPU pass, as the
    /// app runs it without WebGPU): every scored candidate where native `nodulens detect`
    /// puts it (`tests/fixtures/detect/sample_findings.json`, checked natively by
    /// `crates/cli/tests/detect.rs`), centres within 0.5 mm, probabilities within 1e-3, and
    /// as many findings at the operating point.
    #[wasm_bindgen_test]
    async fn the_sample_gives_the_native_findings_in_the_browser() {
        use nodulens_detect::{
            Report, Scoring, candidates, distance_mm, findings, lung_mask, sites,
        };
        let expected: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/detect/sample_findings.json"
        )))
        .expect("reference json");
        let volume = super::sample();
        let start = js_sys::Date::now();
        let mask = lung_mask(&volume);
        let found = candidates(&volume, &mask);
        let measured = sites(&volume, &mask, &found);
        let device = cpu_device();
        let mut p = Vec::new();
        for kind in ModelKind::ALL {
            let classifier = load(kind, &device);
            let config = &classifier.preprocess;
            let mut scoring = Scoring::new((0..measured.len()).collect(), config.patch_len(), 64);
            while let Some(batch) =
                scoring.next_batch(|&i, out| measured[i].cut_patch(&volume, config, out))
            {
                let probabilities = classifier.predict_async(&batch.patches).await.expect("run");
                scoring.submit(batch.id, &probabilities).expect("submit");
            }
            let mut by_site = vec![0.0f32; measured.len()];
            for (i, probability) in scoring.finish().expect("every batch scored") {
                by_site[i] = probability;
            }
            p.push(by_site);
        }
        // p_malignant as shipped: the manifest's combination of the CNN and the measurement.
        let manifest = Manifest::from_json(MANIFEST).expect("manifest");
        let combination = nodulens_detect::MalignancyCombination::shipped(
            manifest
                .model(ModelKind::Malignancy)
                .and_then(|m| m.combination.as_ref()),
        )
        .expect("combination");
        let scored: Vec<_> = measured
            .iter()
            .enumerate()
            .map(|(i, site)| {
                let p_malignant = nodulens_detect::malignancy::shipped_p_malignant(
                    combination.as_ref(),
                    p[1][i],
                    &site.measurement,
                );
                (site.clone(), p[0][i], p_malignant)
            })
            .collect();
        let threshold = expected["operating_point"].as_f64().expect("threshold") as f32;
        let all = findings(&volume, scored.clone(), 0.0);
        let shown = findings(&volume, scored, threshold);
        let report = Report::new(&volume, &mask, shown, threshold, found.len(), all.len());
        console_log!(
            "sample analysed in the browser (CPU) in {:.0} ms: {} scored, {} findings",
            js_sys::Date::now() - start,
            all.len(),
            report.findings.len()
        );
        let want = expected["scored"].as_array().expect("scored");
        assert_eq!(all.len(), want.len(), "scored candidates");
        let triple = |v: &serde_json::Value| -> [f64; 3] {
            std::array::from_fn(|a| v[a].as_f64().expect("coordinate"))
        };
        for w in want {
            let centre = triple(&w["center_mm"]);
            // The nearest: two candidates on one blob can give sites a tenth of a mm apart.
            let distance = |f: &nodulens_detect::Finding| distance_mm(f.center_mm, centre);
            let got = all
                .iter()
                .filter(|f| (0..3).all(|a| (f.center_mm[a] - centre[a]).abs() <= 0.5))
                .min_by(|a, b| distance(a).total_cmp(&distance(b)))
                .unwrap_or_else(|| panic!("no finding at {centre:?}"));
            for (name, value) in [("p_nodule", got.p_nodule), ("p_malignant", got.p_malignant)] {
                let native = w[name].as_f64().expect("probability");
                assert!(
                    (f64::from(value) - native).abs() <= 1e-3,
                    "{name} at {centre:?}: {value} in the browser, {native} natively"
                );
            }
            assert!((got.diameter_mm - w["diameter_mm"].as_f64().expect("mm")).abs() <= 0.05);
        }
        assert_eq!(
            report.findings.len() as u64,
            expected["findings_at_operating_point"]
                .as_u64()
                .expect("count"),
            "findings at the operating point"
        );
    }

    #[wasm_bindgen_test]
    async fn shipped_models_match_native_on_the_browser_cpu() {
        let device = cpu_device();
        assert!(load(ModelKind::Nodule, &device).is_fused());
        matches_native(device.clone(), "CPU (fused pass)", false).await;
        matches_native(device, "CPU (burn flex)", true).await;
    }

    #[wasm_bindgen_test]
    async fn shipped_models_match_native_on_webgpu() {
        // webdriver.json starts Chromium with --enable-unsafe-webgpu (SwiftShader), so an
        // adapter must be there: a missing one is a failure, not a skip.
        let device = webgpu_device()
            .await
            .expect("a WebGPU adapter (Chromium with --enable-unsafe-webgpu)");
        matches_native(device, "WebGPU", false).await;
    }

    /// Patches per second of each model in batches of 64: on the CPU (the fused pass the app
    /// runs, and burn's flex backend) and on WebGPU.
    #[wasm_bindgen_test]
    #[ignore = "benchmark, not a test: run by scripts/bench_browser_models.sh"]
    async fn model_throughput_in_the_browser() {
        const BATCH: usize = 64;
        let (patches, _) = reference_inputs();
        let batch: Vec<f32> = patches
            .iter()
            .cycle()
            .take(patches.len() * BATCH / 8)
            .copied()
            .collect();
        let mut devices = vec![
            ("CPU-fused", cpu_device(), false),
            ("CPU-flex", cpu_device(), true),
        ];
        match webgpu_device().await {
            Ok(device) => devices.push(("WebGPU", device, false)),
            Err(e) => console_log!("WebGPU: no adapter ({e}), skipped"),
        }
        for (backend, device, burn_forward) in devices {
            for kind in ModelKind::ALL {
                let mut classifier = load(kind, &device);
                if burn_forward {
                    classifier = classifier.with_burn_forward();
                }
                // Warm-up: shader compilation, allocator.
                classifier.predict_async(&batch).await.expect("inference");
                let start = js_sys::Date::now();
                let mut runs = 0;
                while runs < 3 || js_sys::Date::now() - start < 3000.0 {
                    classifier.predict_async(&batch).await.expect("inference");
                    runs += 1;
                }
                let seconds = (js_sys::Date::now() - start) / 1000.0;
                console_log!(
                    "BENCH {} {backend} batch {BATCH}: {:.1} patches/s ({runs} batches in {seconds:.2} s)",
                    kind.name(),
                    (runs * BATCH) as f64 / seconds
                );
            }
        }
    }
}

/// The detection pipeline's first stages (lung mask, candidates) in the browser, where `usize`
/// has 32 bits: the synthetic chest and the bundled sample scan give exactly the candidates
/// `crates/detect/tests/reference.rs` holds the native build to.
#[wasm_bindgen_test]
fn lung_mask_and_candidates_match_native_in_the_browser() {
    use nodulens_detect::{Candidate, candidates, lung_mask, phantom};
    let expected: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/detect/reference.json"
    )))
    .expect("reference json");
    for (case, volume) in [("phantom", phantom::chest()), ("sample", sample())] {
        let mask = lung_mask(&volume);
        let found = candidates(&volume, &mask);
        let want = &expected[case];
        let volume_ml = want["lung_volume_ml"].as_f64().expect("volume");
        assert!(
            (mask.volume_ml() - volume_ml).abs() < 1e-6,
            "{case}: {} ml, expected {volume_ml}",
            mask.volume_ml()
        );
        let want: Vec<Candidate> =
            serde_json::from_value(want["candidates"].clone()).expect("candidates");
        assert_eq!(found.len(), want.len(), "{case}: candidate count");
        for (n, (g, e)) in found.iter().zip(&want).enumerate() {
            assert!(
                g.same_as(e, 1e-6),
                "{case}: candidate {n}: {g:?}, expected {e:?}"
            );
        }
    }
}
