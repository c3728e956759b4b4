//! Real training steps on the committed fixture (eight LIDC crops): the loss must fall.
#![cfg(feature = "train")]

use std::path::PathBuf;

use burn::prelude::*;
use nodulens_core::preprocess::{PatchTransform, PreprocessConfig, extract_views_into};
use nodulens_core::{DiskFiles, OpenOptions};
use nodulens_model::NetConfig;
use nodulens_model::train::{TrainConfig, Trainer};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/model")
}

/// Patches and labels (malignancy ≥ 4) of the fixture crops, centred on their nodules.
fn fixture_batch(pre: &PreprocessConfig) -> (Vec<f32>, Vec<f32>) {
    let text = std::fs::read_to_string(fixture().join("nodules.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (ci, cx, cy, cz, cm) = (
        col("image"),
        col("coordX"),
        col("coordY"),
        col("coordZ"),
        col("malignancy"),
    );
    let (mut patches, mut labels) = (Vec::new(), Vec::new());
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let source = DiskFiles::from_paths(&[fixture().join(f[ci])]).unwrap();
        let volume = nodulens_core::open(&source, &OpenOptions::default(), &mut |_| true).unwrap();
        let centre = [
            f[cx].parse().unwrap(),
            f[cy].parse().unwrap(),
            f[cz].parse().unwrap(),
        ];
        extract_views_into(
            &volume,
            centre,
            pre,
            &PatchTransform::default(),
            &mut patches,
        );
        labels.push(if f[cm].parse::<u8>().unwrap() >= 4 {
            1.0
        } else {
            0.0
        });
    }
    (patches, labels)
}

#[test]
fn loss_falls_on_the_fixture() {
    let pre = PreprocessConfig::default();
    let (patches, labels) = fixture_batch(&pre);
    assert_eq!(labels.len(), 8);
    assert_eq!(labels.iter().filter(|l| **l > 0.5).count(), 4);
    // The nodule is brighter than air at the centre of every axial patch.
    let n = pre.patch_size;
    for p in patches.chunks(pre.patch_len()) {
        let centre_axial = p[pre.channels() / 2 * n * n + (n / 2) * n + n / 2];
        assert!(centre_axial > 0.3, "{centre_axial}");
    }

    let config = NetConfig::for_preprocess(&pre);
    let train = TrainConfig::new().with_seed(3);
    let mut trainer = Trainer::new(&config, &train, &Device::flex()).unwrap();
    let weights = vec![1.0; labels.len()];
    let first = trainer.step(&patches, &labels, &weights, 2e-3).unwrap();
    let mut last = first;
    for _ in 0..7 {
        last = trainer.step(&patches, &labels, &weights, 2e-3).unwrap();
    }
    assert!(first.is_finite() && last.is_finite());
    assert!(last < 0.8 * first, "loss {first} → {last}");

    // Checkpoint round trip: the restored trainer predicts the same.
    let before = trainer.predict(&patches).unwrap();
    let mut other = Trainer::new(&config, &train.with_seed(9), &Device::flex()).unwrap();
    other
        .restore(
            trainer.weights().unwrap(),
            trainer.optimizer_state().unwrap(),
        )
        .unwrap();
    let after = other.predict(&patches).unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
