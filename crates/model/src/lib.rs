//! The Nodulens models: burn modules and their configs, backend-agnostic, shared by the native
//! trainer and the browser.
//!
//! Both classifiers share one 2.5D architecture, [`Net`]: the three orthogonal views that
//! [`nodulens_core::preprocess::extract_views`] samples around a point (axial, coronal, sagittal,
//! each a few parallel slices) go through one shared 2D CNN; the three feature vectors are
//! concatenated and a small head gives one logit.
//!
//! - the nodule classifier: p(nodule) for a candidate point (false-positive reduction);
//! - the malignancy classifier: p(malignant) for a nodule (LIDC ratings 4–5 vs 1–2).
//!
//! Weights are burnpack bytes ([`burn::store::ModuleRecord`]); `models/manifest.json`
//! ([`Manifest`]) records the architecture, the preprocessing and the metrics of each.
//! Training support (autodiff, optimiser, loss) is behind the `train` feature, off in the browser.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use burn::tensor::activation::{relu, sigmoid};
use nodulens_core::preprocess::{PreprocessConfig, VIEWS};
use serde::{Deserialize, Serialize};

pub mod cpu;
pub mod manifest;
pub mod reference;
#[cfg(feature = "train")]
pub mod train;

/// The runtime device type, for callers that pick one (the browser app, the CLI).
pub use burn::tensor::Device;
pub use manifest::{Manifest, ManifestModel, Provenance};

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("weights do not fit the architecture: {0}")]
    Weights(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("input has {got} values, expected a multiple of {per_patch} (one patch)")]
    InputSize { got: usize, per_patch: usize },
    #[error("reading the result failed: {0}")]
    Readback(String),
    #[error("manifest: {0}")]
    Manifest(String),
}

/// Which of the two classifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// p(nodule) for a candidate point.
    Nodule,
    /// p(malignant) for a nodule.
    Malignancy,
}

impl ModelKind {
    pub const ALL: [ModelKind; 2] = [ModelKind::Nodule, ModelKind::Malignancy];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Nodule => "nodule",
            ModelKind::Malignancy => "malignancy",
        }
    }

    /// File name of the shipped weights in `models/`.
    pub fn weights_file(self) -> &'static str {
        match self {
            ModelKind::Nodule => "nodule.bpk",
            ModelKind::Malignancy => "malignancy.bpk",
        }
    }
}

/// Architecture of [`Net`].
#[derive(Config, Debug, PartialEq)]
pub struct NetConfig {
    /// Input views (axial, coronal, sagittal).
    #[config(default = 3)]
    pub views: usize,
    /// Slices per view (input channels of the shared CNN).
    #[config(default = 3)]
    pub channels: usize,
    /// Side of each view, pixels.
    #[config(default = 32)]
    pub patch_size: usize,
    /// Channels of the three conv stages (two 3×3 convs + 2×2 max-pool each).
    #[config(default = "[16, 32, 64]")]
    pub widths: [usize; 3],
    /// Width of the hidden layer of the head.
    #[config(default = 64)]
    pub hidden: usize,
    /// Dropout before each layer of the head, training only.
    #[config(default = 0.3)]
    pub dropout: f64,
}

impl NetConfig {
    /// The architecture for patches made with `preprocess`.
    pub fn for_preprocess(preprocess: &PreprocessConfig) -> Self {
        NetConfig::new()
            .with_views(VIEWS)
            .with_channels(preprocess.channels())
            .with_patch_size(preprocess.patch_size)
    }

    /// Values of one input patch.
    pub fn patch_len(&self) -> usize {
        self.views * self.channels * self.patch_size * self.patch_size
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.views == 0 || self.channels == 0 || self.hidden == 0 {
            return Err(ModelError::Config(
                "views, channels and hidden must be > 0".into(),
            ));
        }
        if self.patch_size < 8 || !self.patch_size.is_multiple_of(8) {
            return Err(ModelError::Config(format!(
                "patch_size {} must be a multiple of 8 (three 2× poolings)",
                self.patch_size
            )));
        }
        if self.widths.contains(&0) {
            return Err(ModelError::Config("widths must be > 0".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config(format!(
                "dropout {} not in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }

    /// A freshly initialised network on `device`.
    pub fn init(&self, device: &Device) -> Net {
        let conv = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device)
        };
        let stage = |i: usize, o: usize| Stage {
            conv1: conv(i, o),
            bn1: BatchNormConfig::new(o).init(device),
            conv2: conv(o, o),
            bn2: BatchNormConfig::new(o).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        };
        let [w1, w2, w3] = self.widths;
        Net {
            stage1: stage(self.channels, w1),
            stage2: stage(w1, w2),
            stage3: stage(w2, w3),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc1: LinearConfig::new(self.views * w3, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, 1).init(device),
            views: self.views,
            channels: self.channels,
            patch_size: self.patch_size,
        }
    }
}

/// Two 3×3 conv + batch-norm + ReLU, then a 2×2 max-pool.
#[derive(Module, Debug)]
pub struct Stage {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    pool: MaxPool2d,
}

impl Stage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = relu(self.bn2.forward(self.conv2.forward(x)));
        self.pool.forward(x)
    }
}

/// The 2.5D classifier: a shared 2D CNN over each view, concatenated, then a 2-layer head.
#[derive(Module, Debug)]
pub struct Net {
    stage1: Stage,
    stage2: Stage,
    stage3: Stage,
    dropout: Dropout,
    fc1: Linear,
    fc2: Linear,
    views: usize,
    channels: usize,
    patch_size: usize,
}

impl Net {
    /// `input`: `[batch, views × channels, size, size]` (patches as laid out by
    /// `extract_views`). Returns logits `[batch, 1]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward_with_hidden(input).1
    }

    /// The hidden layer `[batch, hidden]` (after dropout, as the last layer sees it) and the
    /// logits: training's auxiliary heads read the hidden layer.
    pub fn forward_with_hidden(&self, input: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let [batch, _, _, _] = input.dims();
        let x = self.features(input);
        let [_, width] = x.dims();
        let x = x.reshape([batch, self.views * width]);
        let hidden = self
            .dropout
            .forward(relu(self.fc1.forward(self.dropout.forward(x))));
        (hidden.clone(), self.fc2.forward(hidden))
    }

    /// The convolution stages, averaged over the remaining grid: `[batch · views, width]`.
    fn features(&self, input: Tensor<4>) -> Tensor<2> {
        let [batch, _, h, w] = input.dims();
        let x = input.reshape([batch * self.views, self.channels, h, w]);
        let x = self
            .stage3
            .forward(self.stage2.forward(self.stage1.forward(x)));
        let [images, width, gh, gw] = x.dims();
        x.reshape([images, width, gh * gw])
            .mean_dim(2)
            .reshape([images, width])
    }

    /// Probabilities `[batch]` for patches given as one flat slice.
    pub fn probabilities(&self, patches: Tensor<4>) -> Tensor<1> {
        let [batch, _, _, _] = patches.dims();
        sigmoid(self.forward(patches)).reshape([batch])
    }

    /// Builds the input tensor from flat patches (`n × patch_len` values).
    pub fn input_tensor(&self, patches: &[f32], device: &Device) -> Result<Tensor<4>, ModelError> {
        let per_patch = self.views * self.channels * self.patch_size * self.patch_size;
        if per_patch == 0 || !patches.len().is_multiple_of(per_patch) {
            return Err(ModelError::InputSize {
                got: patches.len(),
                per_patch,
            });
        }
        let n = patches.len() / per_patch;
        let data = TensorData::new(
            patches.to_vec(),
            [
                n,
                self.views * self.channels,
                self.patch_size,
                self.patch_size,
            ],
        );
        Ok(Tensor::from_data(data, device))
    }
}

/// A trained classifier ready for inference: architecture, preprocessing and weights.
///
/// On the CPU device (flex) predictions run through [`cpu::CpuNet`], the fused CPU form of
/// the same network (about twice as fast as burn's layer-by-layer CPU pass); on every other
/// device through burn.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub net: Net,
    pub config: NetConfig,
    pub preprocess: PreprocessConfig,
    pub device: Device,
    fused: Option<std::sync::Arc<cpu::CpuNet>>,
}

impl Classifier {
    /// Loads burnpack `weights` into the architecture `config` on `device` (no autodiff).
    pub fn from_bytes(
        config: NetConfig,
        preprocess: PreprocessConfig,
        weights: Vec<u8>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        preprocess.validate().map_err(ModelError::Config)?;
        if config.patch_len() != preprocess.patch_len() {
            return Err(ModelError::Config(format!(
                "architecture expects {} values per patch, preprocessing makes {}",
                config.patch_len(),
                preprocess.patch_len()
            )));
        }
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights))
            .map_err(|e| ModelError::Weights(e.to_string()))?;
        let net = config
            .init(device)
            .try_load_record(record)
            .map_err(|e| ModelError::Weights(e.to_string()))?
            .valid();
        let fused = if *device == Device::flex() {
            Some(std::sync::Arc::new(cpu::CpuNet::new(&net)?))
        } else {
            None
        };
        Ok(Self {
            net,
            config,
            preprocess,
            device: device.clone(),
            fused,
        })
    }

    /// The same classifier running burn's own forward pass on every device (to compare the
    /// two CPU paths).
    pub fn with_burn_forward(mut self) -> Self {
        self.fused = None;
        self
    }

    /// Whether predictions run through the fused CPU pass.
    pub fn is_fused(&self) -> bool {
        self.fused.is_some()
    }

    /// Loads the model `kind` described by a manifest entry from its weight bytes.
    pub fn from_manifest(
        entry: &ManifestModel,
        weights: Vec<u8>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::from_bytes(
            entry.architecture.clone(),
            entry.preprocess.clone(),
            weights,
            device,
        )
    }

    /// Probabilities for `patches` (`n × patch_len` values), synchronously (native only: the
    /// browser reads results back with [`Classifier::predict_async`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict(&self, patches: &[f32]) -> Result<Vec<f32>, ModelError> {
        if let Some(fused) = &self.fused {
            return fused.probabilities(patches);
        }
        let input = self.net.input_tensor(patches, &self.device)?;
        let data = self
            .net
            .probabilities(input)
            .try_into_data()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        data.try_to_vec::<f32>()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))
    }

    /// Probabilities for `patches`, read back asynchronously (works on every backend,
    /// WebGPU included).
    pub async fn predict_async(&self, patches: &[f32]) -> Result<Vec<f32>, ModelError> {
        if let Some(fused) = &self.fused {
            return fused.probabilities(patches);
        }
        let input = self.net.input_tensor(patches, &self.device)?;
        let data = self
            .net
            .probabilities(input)
            .into_data_async()
            .await
            .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        data.try_to_vec::<f32>()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))
    }
}

/// Serialises a network's weights (burnpack bytes).
pub fn weights_to_bytes(net: Net) -> Result<Vec<u8>, ModelError> {
    let bytes = net
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Weights(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// Loads burnpack bytes into `net` (keeps the module's training state).
pub fn load_weights(net: Net, weights: Vec<u8>) -> Result<Net, ModelError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights))
        .map_err(|e| ModelError::Weights(e.to_string()))?;
    net.try_load_record(record)
        .map_err(|e| ModelError::Weights(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_shape_and_probabilities() {
        let device = Device::flex();
        let pre = PreprocessConfig::default();
        let config = NetConfig::for_preprocess(&pre)
            .with_widths([4, 4, 8])
            .with_hidden(8);
        config.validate().unwrap();
        let net = config.init(&device).valid();
        let patches = vec![0.5f32; 2 * pre.patch_len()];
        let input = net.input_tensor(&patches, &device).unwrap();
        let p = net
            .probabilities(input)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(net.input_tensor(&patches[1..], &device).is_err());
    }

    #[test]
    fn weights_round_trip_and_mismatch_is_an_error() {
        let device = Device::flex();
        let pre = PreprocessConfig::default();
        let config = NetConfig::for_preprocess(&pre)
            .with_widths([4, 4, 8])
            .with_hidden(8);
        let net = config.init(&device);
        let patches: Vec<f32> = (0..pre.patch_len())
            .map(|i| (i % 17) as f32 / 17.0)
            .collect();
        let before = {
            let v = net.valid();
            let x = v.input_tensor(&patches, &device).unwrap();
            v.probabilities(x).into_data().try_to_vec::<f32>().unwrap()
        };
        let bytes = weights_to_bytes(net).unwrap();
        let loaded =
            Classifier::from_bytes(config.clone(), pre.clone(), bytes.clone(), &device).unwrap();
        let after = loaded.predict(&patches).unwrap();
        assert!((before[0] - after[0]).abs() < 1e-6);
        // A wider architecture does not accept these weights.
        let wider = config.with_widths([8, 4, 8]);
        assert!(Classifier::from_bytes(wider, pre.clone(), bytes, &device).is_err());
        // Garbage is refused, not a panic.
        assert!(
            Classifier::from_bytes(NetConfig::for_preprocess(&pre), pre, vec![1, 2, 3], &device)
                .is_err()
        );
    }
}
