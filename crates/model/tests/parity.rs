//! The shipped models give the recorded probabilities on the committed crops
//! (`tests/fixtures/model/outputs.json`, also checked in the browser on the CPU and on WebGPU by
//! `tests/web.rs`). `NODULENS_WRITE_REFERENCE=1` rewrites the file after the models change.

use std::path::{Path, PathBuf};

use nodulens_core::{DiskFiles, OpenOptions, Volume};
use nodulens_model::reference::{self, ReferenceCase, ReferenceOutputs, TOLERANCE};
use nodulens_model::{Classifier, Device, Manifest, ModelKind};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn open(path: &Path) -> Volume {
    let source = DiskFiles::from_paths(&[path.to_path_buf()]).expect("crop");
    nodulens_core::open(&source, &OpenOptions::default(), &mut |_| true).expect("crop decodes")
}

fn classifier(kind: ModelKind, manifest: &Manifest, device: &Device) -> Classifier {
    let entry = manifest.model(kind).expect("model in manifest");
    let bytes = std::fs::read(repo().join("models").join(&entry.file)).expect("weights");
    Classifier::from_manifest(entry, bytes, device).expect("weights load")
}

#[test]
fn shipped_models_reproduce_the_recorded_outputs_natively() {
    let fixtures = repo().join("tests/fixtures/model");
    let manifest =
        Manifest::from_json(&std::fs::read_to_string(repo().join("models/manifest.json")).unwrap())
            .unwrap();
    let device = Device::flex();
    let nodule = classifier(ModelKind::Nodule, &manifest, &device);
    let malignancy = classifier(ModelKind::Malignancy, &manifest, &device);

    let mut images: Vec<String> = std::fs::read_dir(fixtures.join("images"))
        .unwrap()
        .flatten()
        .map(|e| format!("images/{}", e.file_name().to_string_lossy()))
        .collect();
    images.sort();
    assert!(images.len() >= 8, "{images:?}");
    let volumes: Vec<Volume> = images.iter().map(|i| open(&fixtures.join(i))).collect();
    let inputs: Vec<(&Volume, [f64; 3])> = volumes
        .iter()
        .map(|v| (v, reference::center_of(v)))
        .collect();
    let patches = reference::patches(&inputs, &nodule.preprocess);
    // On the CPU the classifiers run the fused pass (nodulens_model::cpu); burn's own forward
    // pass of the same weights must agree with it.
    assert!(nodule.is_fused() && malignancy.is_fused());
    let p_nodule = nodule.predict(&patches).unwrap();
    let p_malignant = malignancy.predict(&patches).unwrap();
    for (fused, classifier) in [(&p_nodule, &nodule), (&p_malignant, &malignancy)] {
        let burn = classifier
            .clone()
            .with_burn_forward()
            .predict(&patches)
            .unwrap();
        let d = reference::max_difference(fused, &burn).unwrap();
        assert!(d <= 1e-5, "fused CPU pass differs from burn's by {d}");
    }
    let computed = ReferenceOutputs {
        note: "p of the shipped models on a patch around each crop's central voxel, computed \
               natively on the CPU by crates/model/tests/parity.rs (NODULENS_WRITE_REFERENCE=1)"
            .into(),
        cases: images
            .iter()
            .zip(&inputs)
            .enumerate()
            .map(|(i, (image, (_, center)))| ReferenceCase {
                image: image.clone(),
                center_lps: *center,
                p_nodule: p_nodule[i],
                p_malignant: p_malignant[i],
            })
            .collect(),
    };
    let path = fixtures.join("outputs.json");
    if std::env::var_os("NODULENS_WRITE_REFERENCE").is_some() {
        let text = serde_json::to_string_pretty(&computed).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
    }
    let recorded: ReferenceOutputs =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("outputs.json")).unwrap();
    assert_eq!(recorded.cases.len(), computed.cases.len());
    for (r, c) in recorded.cases.iter().zip(&computed.cases) {
        assert_eq!(r.image, c.image);
        // JSON keeps the centre to ~1e-14 mm (serde_json's float parsing).
        let moved = (0..3).map(|a| (r.center_lps[a] - c.center_lps[a]).abs());
        assert!(moved.fold(0.0, f64::max) < 1e-9, "{}", r.image);
    }
    // The inputs are not trivial: the models tell these crops apart.
    let spread = p_malignant.iter().cloned().fold(f32::MIN, f32::max)
        - p_malignant.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread > 0.1,
        "malignancy outputs barely vary: {p_malignant:?}"
    );
    let expect =
        |f: fn(&ReferenceCase) -> f32| -> Vec<f32> { recorded.cases.iter().map(f).collect() };
    let d_nodule = reference::max_difference(&expect(|c| c.p_nodule), &p_nodule).unwrap();
    let d_malignant = reference::max_difference(&expect(|c| c.p_malignant), &p_malignant).unwrap();
    assert!(
        d_nodule <= TOLERANCE && d_malignant <= TOLERANCE,
        "native CPU differs from outputs.json by {d_nodule} (nodule), {d_malignant} (malignancy)"
    );
}
