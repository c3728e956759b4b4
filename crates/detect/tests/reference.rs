//! The candidates of the synthetic chest and of the app's bundled sample scan
//! (`static/sample/LIDC-IDRI-0006.nii.gz`) against `tests/fixtures/detect/reference.json`,
//! which the browser test (`tests/web.rs`) holds the wasm32 build to as well: the same code
//! must give the same candidates on both. After a deliberate change, rewrite it with
//! `NODULENS_WRITE_REFERENCE=1 cargo test -p nodulens-detect --test reference`.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use nodulens_detect::{Candidate, candidates, lung_mask, phantom};
use serde_json::{Value, json};

fn run(volume: &nodulens_core::Volume) -> Value {
    let mask = lung_mask(volume);
    json!({ "lung_volume_ml": mask.volume_ml(), "candidates": candidates(volume, &mask) })
}

/// Whether `got` matches `expected` (same candidates in the same order, centres within 1e-6 mm).
fn same(got: &Value, expected: &Value) -> Result<(), String> {
    let volume = |v: &Value| v["lung_volume_ml"].as_f64().unwrap_or(f64::NAN);
    if (volume(got) - volume(expected)).abs() > 1e-6 {
        return Err(format!(
            "lung volume {} ml, expected {}",
            volume(got),
            volume(expected)
        ));
    }
    let list = |v: &Value| -> Vec<Candidate> {
        serde_json::from_value(v["candidates"].clone()).unwrap_or_default()
    };
    let (got, expected) = (list(got), list(expected));
    if got.len() != expected.len() {
        return Err(format!(
            "{} candidates, expected {}",
            got.len(),
            expected.len()
        ));
    }
    for (n, (g, e)) in got.iter().zip(&expected).enumerate() {
        if !g.same_as(e, 1e-6) {
            return Err(format!("candidate {n}: {g:?}, expected {e:?}"));
        }
    }
    Ok(())
}

#[test]
fn candidates_match_the_reference_the_browser_is_held_to() {
    let sample = common::repo().join("static/sample/LIDC-IDRI-0006.nii.gz");
    let got = json!({
        "phantom": run(&phantom::chest()),
        "sample": run(&common::open_paths(&[sample]).expect("the sample opens")),
    });
    let path = common::repo().join("tests/fixtures/detect/reference.json");
    if std::env::var("NODULENS_WRITE_REFERENCE").as_deref() == Ok("1") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&got).expect("json") + "\n",
        )
        .expect("written");
    }
    let text = std::fs::read_to_string(&path).expect("tests/fixtures/detect/reference.json");
    let expected: Value = serde_json::from_str(&text).expect("json");
    for case in ["phantom", "sample"] {
        if let Err(e) = same(&got[case], &expected[case]) {
            panic!("{case}: {e}");
        }
    }
    assert!(
        got["sample"]["candidates"]
            .as_array()
            .is_some_and(|c| c.len() > 10)
    );
}
