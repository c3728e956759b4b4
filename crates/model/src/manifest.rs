//! `models/manifest.json`: what each shipped weight file is, how its input must be made, and how
//! well it did.

use nodulens_core::preprocess::PreprocessConfig;
use serde::{Deserialize, Serialize};

use crate::{ModelError, ModelKind, NetConfig};

/// The manifest format version this code reads and writes.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub models: Vec<ManifestModel>,
    pub provenance: Provenance,
    /// Always "research use only, not a medical device".
    pub intended_use: String,
}

/// One shipped model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestModel {
    pub kind: ModelKind,
    /// File name relative to the manifest.
    pub file: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    pub bytes: u64,
    pub params: u64,
    pub architecture: NetConfig,
    pub preprocess: PreprocessConfig,
    /// Operating point (on p) chosen on validation patients.
    pub threshold: f32,
    /// The detection pipeline's default operating point on p(nodule) (about one false
    /// positive per development scan, `nodulens eval-detection`); nodule model only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_threshold: Option<f32>,
    /// Training configuration and history (free-form, from the trainer).
    pub training: serde_json::Value,
    /// Malignancy model only: how `p_malignant` combines this model's output with the
    /// finding's measurement (`nodulens_detect::MalignancyCombination`, written by
    /// `nodulens fit-malignancy`; kept as JSON here, since the measurement is the pipeline's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combination: Option<serde_json::Value>,
    /// Validation and test metrics (free-form, from the evaluator).
    pub metrics: serde_json::Value,
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub datasets: Vec<String>,
    pub licence: String,
    pub split: String,
    pub code_version: String,
}

impl ManifestModel {
    /// Checks that `weights` are the file this entry describes (its SHA-256).
    pub fn verify(&self, weights: &[u8]) -> Result<(), ModelError> {
        use sha2::{Digest, Sha256};
        let digest: String = Sha256::digest(weights)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest == self.sha256 {
            Ok(())
        } else {
            Err(ModelError::Manifest(format!(
                "{}: SHA-256 {digest} does not match the manifest's {}",
                self.file, self.sha256
            )))
        }
    }
}

impl Manifest {
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let manifest: Manifest =
            serde_json::from_str(text).map_err(|e| ModelError::Manifest(e.to_string()))?;
        if manifest.format_version != MANIFEST_VERSION {
            return Err(ModelError::Manifest(format!(
                "format_version {} (this build reads {MANIFEST_VERSION})",
                manifest.format_version
            )));
        }
        Ok(manifest)
    }

    pub fn model(&self, kind: ModelKind) -> Option<&ManifestModel> {
        self.models.iter().find(|m| m.kind == kind)
    }

    /// The detection pipeline's default operating point on p(nodule): the nodule model's
    /// `detection_threshold`, else its own threshold; `None` without a nodule model.
    pub fn operating_point(&self) -> Option<f32> {
        self.model(ModelKind::Nodule)
            .map(|m| m.detection_threshold.unwrap_or(m.threshold))
    }

    /// Both models by their SHA-256 prefixes, e.g. "nodule 1a2b3c4d, malignancy 5e6f7a8b"
    /// (the SR's equipment, the printed report).
    pub fn short_id(&self) -> String {
        let short = |kind: ModelKind| {
            self.model(kind)
                .map_or("?".to_owned(), |m| m.sha256.chars().take(8).collect())
        };
        format!(
            "nodule {}, malignancy {}",
            short(ModelKind::Nodule),
            short(ModelKind::Malignancy)
        )
    }

    /// A report's `model` object: each model's file, hash and size, the operating point,
    /// where the models ran and the intended use (the CLI and the page write the same).
    pub fn describe(&self, operating_point: f32, backend: &str) -> serde_json::Value {
        let entry = |kind: ModelKind| {
            self.model(kind).map(
                |m| serde_json::json!({ "file": m.file, "sha256": m.sha256, "params": m.params }),
            )
        };
        serde_json::json!({
            "nodule": entry(ModelKind::Nodule),
            "malignancy": entry(ModelKind::Malignancy),
            "operating_point": operating_point,
            "backend": backend,
            "intended_use": self.intended_use,
        })
    }
}
