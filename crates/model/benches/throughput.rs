//! `cargo bench -p nodulens-model`: inference throughput (patches per second) of each shipped
//! model at the batch size the pipeline uses (64, as `nodulens eval-*` predicts), natively on
//! the CPU — the fused CPU pass the product runs there (`nodulens_model::cpu`, rayon threads)
//! and burn's own forward pass on its flex backend (SIMD kernels, rayon threads) — and on
//! wgpu when the bench is built with `--features bench-wgpu` and an adapter (e.g. Mesa
//! lavapipe) is present.
//!
//! Timed: the whole `Classifier::predict` call, i.e. upload of the flat patches, the forward
//! pass, the sigmoid and the read-back, exactly what the CLI and the browser do per batch.
//! Input: fixed pseudo-random patches in [0, 1] (the preprocessing's range); inference cost
//! does not depend on the values. `scripts/bench_models.sh` compares it with PyTorch.
//!
//! Environment: NODULENS_BENCH_BATCH (default 64), NODULENS_BENCH_SECONDS (per model and
//! backend, default 5).

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use nodulens_model::{Classifier, Manifest, ModelKind};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fixed input, the same for every run and in `scripts/bench_models_pytorch.py`.
fn patches(n: usize) -> Vec<f32> {
    nodulens_model::reference::uniform_values(n)
}

/// Times `classifier.predict` on one batch: warm-up, then batches until `seconds` have passed
/// (at least 10). Returns (patches/s over the whole run, patches/s of the median batch).
fn measure(classifier: &Classifier, batch: usize, seconds: f64) -> (f64, f64, usize) {
    let input = patches(batch * classifier.config.patch_len());
    // Warm-up: allocator, thread pool, kernel compilation and autotuning on GPU backends.
    let warm = Instant::now();
    let mut n = 0;
    while n < 3 || (warm.elapsed().as_secs_f64() < 1.0 && n < 50) {
        let p = classifier.predict(&input).expect("predict");
        assert_eq!(p.len(), batch);
        n += 1;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 10 || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        let p = classifier.predict(&input).expect("predict");
        times.push(t.elapsed().as_secs_f64());
        assert!(p.iter().all(|v| v.is_finite()));
    }
    let total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let batches = times.len();
    (
        (batches * batch) as f64 / total,
        batch as f64 / median,
        batches,
    )
}

/// (label, device, whether to run burn's own forward pass on a CPU device). "fused" is what the
/// CLI and the browser run on the CPU (`nodulens_model::cpu`); "flex" is burn's CPU backend
/// running the burn module layer by layer.
fn devices() -> Vec<(&'static str, Device, bool)> {
    #[allow(unused_mut)]
    let mut out = vec![
        ("fused", Device::flex(), false),
        ("flex", Device::flex(), true),
    ];
    #[cfg(feature = "bench-wgpu")]
    match Device::wgpu_options().init() {
        Ok(device) => out.push(("wgpu", device, false)),
        Err(e) => println!("wgpu: no adapter ({e}), skipped"),
    }
    out
}

fn main() {
    let batch: usize = env_or("NODULENS_BENCH_BATCH", 64);
    let seconds: f64 = env_or("NODULENS_BENCH_SECONDS", 5.0);
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let manifest = Manifest::from_json(
        &std::fs::read_to_string(models.join("manifest.json")).expect("models/manifest.json"),
    )
    .expect("manifest");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("batch {batch}, {threads} hardware threads, {seconds} s per measurement");
    let mut reference: Vec<Vec<f32>> = Vec::new();
    for (backend, device, burn_forward) in devices() {
        for (k, kind) in ModelKind::ALL.into_iter().enumerate() {
            let entry = manifest.model(kind).expect("model in manifest");
            let bytes = std::fs::read(models.join(&entry.file)).expect("weights");
            let mut classifier = Classifier::from_manifest(entry, bytes, &device).expect("load");
            if burn_forward {
                classifier = classifier.with_burn_forward();
            }
            // The first probabilities on the fixed input: PyTorch checks it computes the same
            // function (scripts/bench_models_pytorch.py), and every other path is checked
            // against the fused CPU pass here.
            let p = classifier
                .predict(&patches(batch * classifier.config.patch_len()))
                .expect("predict");
            let head: Vec<f32> = p.iter().take(8).copied().collect();
            if backend == "fused" {
                let text: Vec<String> = head.iter().map(|v| format!("{v:.6}")).collect();
                println!(
                    "NODULENS_BENCH_PROBS model={} p={}",
                    kind.name(),
                    text.join(",")
                );
                reference.push(head);
            } else if let Some(fused) = reference.get(k) {
                let diff = fused
                    .iter()
                    .zip(&head)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                println!(
                    "{:<10} {backend}: max |p - p_fused| {diff:.2e}",
                    kind.name()
                );
            }
            let (mean, median, batches) = measure(&classifier, batch, seconds);
            println!(
                "{:<10} {backend:<5} {mean:>8.0} patches/s (median batch {median:.0} patches/s, {:.2} ms; {batches} batches)",
                kind.name(),
                1000.0 * batch as f64 / median
            );
            // One machine-readable line per figure for scripts/bench_models.sh.
            println!(
                "NODULENS_BENCH model={} backend={backend} batch={batch} patches_per_s={mean:.1} median_patches_per_s={median:.1}",
                kind.name()
            );
        }
    }
}
