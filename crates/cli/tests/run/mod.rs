//! Running the `nodulens` binary from the repository root, as a user does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run with the crate folder as working directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `nodulens ARGS…`, run from the repository root.
pub fn nodulens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodulens"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run nodulens")
}
