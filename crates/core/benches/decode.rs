//! `cargo bench -p nodulens-core`: decode a whole DICOM series into the HU volume, the
//! figure compared with pydicom + numpy by `scripts/bench_decode.sh`. Needs
//! `../shared/data` (skips with a message otherwise). Set NODULENS_BENCH_SCAN to time
//! another scan folder of `../shared/data/scans`.

use std::path::Path;
use std::time::Instant;

fn main() {
    let scan = std::env::var("NODULENS_BENCH_SCAN").unwrap_or_else(|_| "LIDC-IDRI-0002".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let archive = root
        .join("../shared/data/scans")
        .join(&scan)
        .join("dicom.tar.xz");
    if !archive.exists() {
        println!(
            "skipped: {} not found (the benchmark needs ../shared/data)",
            archive.display()
        );
        return;
    }
    let dest = root.join("target/test-scans").join(&scan);
    if !dest.join(".complete").exists() {
        std::fs::create_dir_all(&dest).expect("target dir");
        let ok = std::process::Command::new("tar")
            .arg("-xJf")
            .arg(&archive)
            .arg("-C")
            .arg(&dest)
            .status()
            .expect("tar")
            .success();
        assert!(ok, "tar failed");
        std::fs::write(dest.join(".complete"), b"").expect("marker");
    }
    let source = nodulens_core::DiskFiles::from_paths(&[dest.join("dicom")]).expect("files");
    let options = nodulens_core::OpenOptions::default();
    let decode = || nodulens_core::open(&source, &options, &mut |_| true).expect("decode");
    let volume = decode(); // warm-up: page cache and allocator
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(decode());
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "decode {scan}: {} slices, {:.1} MB volume; median {:.1} ms (min {:.1}, max {:.1}) over {} runs",
        volume.dims()[2],
        volume.byte_size() as f64 / 1e6,
        times[times.len() / 2] * 1e3,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3,
        times.len()
    );
    println!("NODULENS_DECODE_MS={:.3}", times[times.len() / 2] * 1e3);
}
