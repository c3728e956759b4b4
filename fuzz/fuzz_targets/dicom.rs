//! Any bytes, named `scan.dcm`, through the reader that name selects: it may fail, never panic,
//! hang or allocate past the (lowered) voxel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodulens_core::{MemoryFiles, OpenOptions};

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on every panic, even one that is caught. A panic inside a
        // dicom-rs codec adapter (its JPEG 2000 adapter, over openjp2, slices past its
        // buffers on corrupt streams) is caught by nodulens_core::dicom and becomes a clear error, which
        // tests/malformed checks; every other panic still aborts and counts as a crash.
        let aborting = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let contained = info
                .location()
                .is_some_and(|l| {
                    ["dicom-transfer-syntax-registry", "openjp2"]
                        .iter()
                        .any(|codec| l.file().contains(codec))
                });
            if !contained {
                aborting(info);
            }
        }));
    },
    |data: &[u8]| {
        let files = MemoryFiles::new(vec![("scan.dcm".to_owned(), data.to_vec())]);
        let options = OpenOptions { max_voxels: 1 << 22, ..OpenOptions::default() };
        let _ = nodulens_core::open(&files, &options, &mut |_| true);
    }
);
