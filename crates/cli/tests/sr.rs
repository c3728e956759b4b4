//! `nodulens detect --sr`: a DICOM SR of a shared DICOM scan (LIDC-IDRI-0006) reads back with
//! pydicom and highdicom (a TID 1500 Measurement Report, one group per finding, in the source's
//! study) and `dciodvfy` finds no error (`tests/sr/check_sr.py`); other inputs are refused
//! before any analysis. The shared scan is skipped where ../shared/data is absent, a failure
//! under `CI=true`; so are the Python packages and dicom3tools, which `scripts/setup.sh` installs.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../core/tests/common/mod.rs"]
#[allow(unused)]
mod common;

mod run;

use run::{nodulens, root};

fn out_dir() -> PathBuf {
    let dir = root().join("target/test-sr");
    std::fs::create_dir_all(&dir).expect("output folder");
    dir
}

#[test]
fn an_sr_of_a_non_dicom_scan_is_refused_before_the_analysis() {
    let sr = out_dir().join("refused.dcm");
    let _ = std::fs::remove_file(&sr);
    let out = nodulens(&[
        "detect",
        "static/sample/LIDC-IDRI-0006.nii.gz",
        "--sr",
        &sr.to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse: {stderr}");
    assert!(
        stderr.contains("DICOM SR") && stderr.contains("NIfTI"),
        "{stderr}"
    );
    assert!(!sr.exists(), "nothing written");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "no analysis ran"
    );
}

/// Whether the checker's tools are here; under CI their absence is a failure.
fn tools_present() -> bool {
    let python = Command::new("python3")
        .args(["-c", "import highdicom, pydicom"])
        .status()
        .is_ok_and(|s| s.success());
    let dciodvfy = Command::new("sh")
        .args(["-c", "command -v dciodvfy >/dev/null"])
        .status()
        .is_ok_and(|s| s.success());
    let present = python && dciodvfy;
    assert!(
        present || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but highdicom/pydicom or dciodvfy is missing (scripts/setup.sh installs them)"
    );
    present
}

#[test]
fn the_sr_of_a_dicom_scan_reads_back_and_validates() {
    let Some(dicom) = common::unpacked_scan("LIDC-IDRI-0006") else {
        eprintln!("skipped: ../shared/data is absent");
        return;
    };
    if !tools_present() {
        eprintln!("skipped: highdicom/pydicom or dciodvfy is missing");
        return;
    }
    let dir = out_dir();
    let (sr, json) = (dir.join("0006.dcm"), dir.join("0006.json"));
    let out = nodulens(&[
        "detect",
        &dicom.to_string_lossy(),
        "--sr",
        &sr.to_string_lossy(),
        "--json",
        &json.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    assert!(
        !report["findings"].as_array().expect("findings").is_empty(),
        "the scan's reference nodule makes at least one group"
    );
    let source = first_file(&dicom);
    let check = Command::new("python3")
        .arg(root().join("tests/sr/check_sr.py"))
        .args([&sr, &json, &source])
        .output()
        .expect("run check_sr.py");
    let text = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    eprintln!("{text}");
    assert!(check.status.success(), "{text}");
}

/// The first file of a DICOM folder tree (every file of a shared scan is one slice).
fn first_file(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let first = entries.into_iter().next().expect("a file");
    if first.is_dir() {
        first_file(&first)
    } else {
        first
    }
}
