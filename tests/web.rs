//! The core's readers compiled to wasm32 and run in headless Chromium
//! (`cargo test --target wasm32-unknown-unknown --test web`): the same decode as natively,
//! on committed fixtures, must give the same volume.
#![cfg(target_arch = "wasm32")]

use nodulens_core::{MemoryFiles, OpenOptions, ReadError, open};
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
    assert_eq!(volume.dims, [96, 96, 5]);
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
    ] {
        let name = file.0.clone();
        wasm_bindgen_test::console_log!("decoding {name}");
        let volume = series(vec![file]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(volume.voxels == reference.voxels, "{name} differs");
    }
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
    assert!(nifti.voxels == mhd.voxels && mhd.voxels == zip.voxels);
}
