//! The weights shipped in `models/` decode into the current architecture, match their SHA-256,
//! and were trained with the preprocessing this code produces.

use std::path::PathBuf;

use burn::prelude::*;
use nodulens_core::preprocess::PreprocessConfig;
use nodulens_model::{Classifier, Manifest, ModelKind, NetConfig};
use sha2::{Digest, Sha256};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[test]
fn every_shipped_weight_file_loads_into_the_current_architecture() {
    let dir = models();
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("models/manifest.json");
    let manifest = Manifest::from_json(&text).unwrap();
    assert_eq!(
        manifest.intended_use,
        "research use only, not a medical device"
    );
    let device = Device::flex();
    let mut total = 0u64;
    for kind in ModelKind::ALL {
        let entry = manifest
            .model(kind)
            .unwrap_or_else(|| panic!("no {} model", kind.name()));
        assert_eq!(entry.file, kind.weights_file());
        // The code's preprocessing is what the model was trained with.
        assert_eq!(
            entry.preprocess,
            PreprocessConfig::default(),
            "{}",
            kind.name()
        );
        assert_eq!(
            entry.architecture,
            NetConfig::for_preprocess(&entry.preprocess)
                .with_widths(entry.architecture.widths)
                .with_hidden(entry.architecture.hidden)
                .with_dropout(entry.architecture.dropout)
        );
        let bytes = std::fs::read(dir.join(&entry.file)).unwrap();
        assert_eq!(bytes.len() as u64, entry.bytes);
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, entry.sha256, "{}", entry.file);
        total += entry.bytes;
        let classifier = Classifier::from_manifest(entry, bytes, &device).unwrap();
        assert_eq!(classifier.net.num_params() as u64, entry.params);
        // Two patches (air, and a bright centre) give probabilities.
        let pre = &entry.preprocess;
        let mut patches = vec![0.0f32; 2 * pre.patch_len()];
        for v in &mut patches[pre.patch_len()..] {
            *v = 0.7;
        }
        let p = classifier.predict(&patches).unwrap();
        assert_eq!(p.len(), 2);
        assert!(
            p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
            "{p:?}"
        );
        assert!((0.0..=1.0).contains(&entry.threshold));
        for split in ["val", "test"] {
            let auc = entry.metrics[split]["auc"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&auc));
        }
    }
    assert!(total <= 20 * 1024 * 1024, "{total} bytes of weights");
    // No stray weight file that the manifest does not describe.
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".bpk") {
            assert!(
                manifest.models.iter().any(|m| m.file == name),
                "{name} not in the manifest"
            );
        }
    }
}
