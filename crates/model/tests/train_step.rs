//! Real training steps on the committed fixture (eight LIDC crops): the loss must fall.
#![cfg(feature = "train")]

use std::path::PathBuf;

use burn::prelude::*;
use nodulens_core::preprocess::{PatchTransform, PreprocessConfig, extract_views_into};
use nodulens_core::{DiskFiles, OpenOptions};
use nodulens_model::NetConfig;
use nodulens_model::train::{AuxTargets, TrainConfig, Trainer};

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

/// The multi-task head learns its targets beside the label, and is not part of what is saved:
/// the weights load into a plain network of the same architecture.
#[test]
fn an_auxiliary_head_trains_and_is_not_saved() {
    let pre = PreprocessConfig::default();
    let (patches, labels) = fixture_batch(&pre);
    let config = NetConfig::for_preprocess(&pre);
    let train = TrainConfig::new().with_seed(5);
    let outputs = 2;
    let mut trainer = Trainer::with_aux(&config, &train, outputs, &Device::flex()).unwrap();
    let weights = vec![1.0; labels.len()];
    // Targets: the label itself and its opposite; the second sample's second target unknown.
    let values: Vec<f32> = labels.iter().flat_map(|&l| [l, 1.0 - l]).collect();
    let mut mask = vec![1.0; values.len()];
    mask[3] = 0.0;
    let aux = || AuxTargets {
        values: &values,
        mask: &mask,
        weight: 1.0,
    };
    let first = trainer
        .step_with_aux(&patches, &labels, &weights, Some(aux()), 2e-3)
        .unwrap();
    let mut last = first;
    for _ in 0..7 {
        last = trainer
            .step_with_aux(&patches, &labels, &weights, Some(aux()), 2e-3)
            .unwrap();
    }
    assert!(last < 0.8 * first, "loss {first} → {last}");
    // Wrong-sized targets are refused, not misread.
    let short = AuxTargets {
        values: &values[1..],
        mask: &mask[1..],
        weight: 1.0,
    };
    assert!(
        trainer
            .step_with_aux(&patches, &labels, &weights, Some(short), 2e-3)
            .is_err()
    );
    let saved = trainer.weights().unwrap();
    let plain = nodulens_model::weights_to_bytes(config.init(&Device::flex())).unwrap();
    assert_eq!(saved.len(), plain.len(), "only the plain network is saved");
    nodulens_model::load_weights(config.init(&Device::flex()), saved)
        .expect("the saved weights are the plain network's");
}
