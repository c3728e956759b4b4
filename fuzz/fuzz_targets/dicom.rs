//! Any bytes, named `scan.dcm`, through the reader that name selects: it may fail, never panic,
//! hang or allocate past the (lowered) voxel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodulens_core::{MemoryFiles, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let files = MemoryFiles::new(vec![("scan.dcm".to_owned(), data.to_vec())]);
    let options = OpenOptions { max_voxels: 1 << 22, ..OpenOptions::default() };
    let _ = nodulens_core::open(&files, &options, &mut |_| true);
});
