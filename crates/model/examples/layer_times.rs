//! Where the CPU time of one forward pass goes: each layer of the shipped architecture
//! (`NetConfig::default()`, the 16/32/64-wide stages) alone, on the flex backend, at the batch
//! the benchmark uses (64 patches × 3 views = 192 images). `scripts/layer_times_pytorch.py`
//! times the same layers in PyTorch, for a side-by-side view of `scripts/bench_models.sh`.
//!
//! `cargo run --release -p nodulens-model --example layer_times`

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use nodulens_model::NetConfig;

/// Milliseconds per call of `f` (result read back), after a warm-up.
fn millis(mut f: impl FnMut() -> Tensor<4>) -> f64 {
    for _ in 0..3 {
        let _ = f().into_data();
    }
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        let _ = f().into_data();
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}

fn main() {
    let device = Device::flex();
    let config = NetConfig::new();
    let images = 64 * config.views;
    let [w1, w2, w3] = config.widths;
    let size = config.patch_size;
    let layers = [
        (config.channels, w1, size),
        (w1, w1, size),
        (w1, w2, size / 2),
        (w2, w2, size / 2),
        (w2, w3, size / 4),
        (w3, w3, size / 4),
    ];
    println!("{images} images per batch; milliseconds per layer (flex backend)");
    let mut total = 0.0;
    for (cin, cout, side) in layers {
        let x = Tensor::<4>::random([images, cin, side, side], Distribution::Default, &device);
        let w = Tensor::<4>::random([cout, cin, 3, 3], Distribution::Default, &device);
        let y = Tensor::<4>::random([images, cout, side, side], Distribution::Default, &device);
        let scale =
            Tensor::<1>::random([cout], Distribution::Default, &device).reshape([1, cout, 1, 1]);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let conv = millis(|| conv2d(x.clone(), w.clone(), None, options.clone()));
        // Inference batch norm is one scale and one shift per channel.
        let norm = millis(|| y.clone() * scale.clone() + scale.clone());
        let act = millis(|| relu(y.clone()));
        // Each stage's second convolution (same width in and out) is followed by the pool.
        let pool = if cin != cout {
            0.0
        } else {
            millis(|| {
                let options = MaxPoolOptions {
                    kernel_size: [2, 2],
                    stride: [2, 2],
                    padding: [(0, 0); 2],
                    dilation: [1, 1],
                    ceil_mode: false,
                };
                max_pool2d(y.clone(), options)
            })
        };
        total += conv + norm + act + pool;
        println!(
            "conv {cin:>2}->{cout:<2} @{side:<2}  conv {conv:7.2}  batch-norm {norm:6.2}  relu {act:6.2}  max-pool {pool:6.2}"
        );
    }
    println!("all layers: {total:.1} ms");
}
