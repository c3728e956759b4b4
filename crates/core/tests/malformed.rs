//! The hostile-input corpus in `tests/malformed`: every case gives its expected clear
//! error (or, for recoverable ones, a warning) and nothing panics.

mod common;

#[test]
fn every_malformed_input_gives_its_expected_message() {
    let dir = common::repo().join("tests/malformed");
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    assert!(
        expected.len() >= 20,
        "the corpus must hold at least 20 cases"
    );
    let mut failures = Vec::new();
    for (name, want) in &expected {
        let outcome = std::panic::catch_unwind(|| common::open_paths(&[dir.join(name)]));
        let Ok(result) = outcome else {
            failures.push(format!("{name}: PANICKED"));
            continue;
        };
        match (
            want.get("error").and_then(|v| v.as_str()),
            want.get("warning").and_then(|v| v.as_str()),
            result,
        ) {
            (Some(error), _, Err(e)) => {
                let message = e.to_string();
                if !message.contains(error) {
                    failures.push(format!("{name}: error {message:?} lacks {error:?}"));
                }
                // A clear message names the file at fault.
                let stem = name.split('.').next().unwrap_or(name);
                if !message.contains(stem) && !matches!(e, nodulens_core::ReadError::NoFiles) {
                    failures.push(format!("{name}: error {message:?} does not name the file"));
                }
            }
            (Some(error), _, Ok(_)) => failures.push(format!(
                "{name}: opened, expected an error containing {error:?}"
            )),
            (None, Some(warning), Ok(v)) => {
                if !v.warnings().iter().any(|w| w.message.contains(warning)) {
                    failures.push(format!(
                        "{name}: warnings {:?} lack {warning:?}",
                        v.warnings()
                    ));
                }
            }
            (_, _, other) => failures.push(format!("{name}: unexpected {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The browser runs the same corpus (`tests/web.rs`, which embeds each file): a case added
/// here must be added there too, or the browser would never see it.
#[test]
fn the_browser_test_embeds_every_case() {
    let root = common::repo();
    let web = std::fs::read_to_string(root.join("tests/web.rs")).expect("tests/web.rs");
    // rustfmt may break a long `case!(…)` over lines.
    let web: String = web.split_whitespace().collect();
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/malformed/expected.json")).expect("json"),
    )
    .expect("json");
    let missing: Vec<&String> = expected
        .keys()
        .filter(|name| !web.contains(&format!("case!(\"{name}\"")))
        .collect();
    assert!(missing.is_empty(), "not in tests/web.rs: {missing:?}");
}
