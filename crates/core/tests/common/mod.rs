//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use nodulens_core::{DiskFiles, OpenOptions, ReadError, Volume};

/// The repository root (tests run with the crate folder as working directory).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn open_paths(paths: &[PathBuf]) -> Result<Volume, ReadError> {
    let source = DiskFiles::from_paths(paths)?;
    nodulens_core::open(&source, &OpenOptions::default(), &mut |_| true)
}

/// `../shared/data`, where CI and developers have the real data; `None` in a user's clone.
/// Under CI (`CI=true`) its absence is a failure, never a silent pass.
pub fn shared_data() -> Option<PathBuf> {
    let dir = repo().join("../shared/data");
    let present = dir.join("README.md").exists();
    assert!(
        present || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing: the shared-data tests cannot run",
        dir.display()
    );
    present.then_some(dir)
}

/// Unpacks a shared scan's DICOM once into `target/test-scans/<scan>/dicom`.
pub fn unpacked_scan(scan: &str) -> Option<PathBuf> {
    let data = shared_data()?;
    let dest = repo().join("target/test-scans").join(scan);
    let dicom = dest.join("dicom");
    if !dest.join(".complete").exists() {
        std::fs::create_dir_all(&dest).ok()?;
        let status = std::process::Command::new("tar")
            .arg("-xJf")
            .arg(data.join("scans").join(scan).join("dicom.tar.xz"))
            .arg("-C")
            .arg(&dest)
            .status()
            .ok()?;
        assert!(status.success(), "tar failed for {scan}");
        std::fs::write(dest.join(".complete"), b"").ok()?;
    }
    Some(dicom)
}
