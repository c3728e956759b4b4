//! Training support (feature `train`): the loss, one optimiser step, checkpoints.
//!
//! The data loop (sampling, augmentation, splits) lives in the CLI; this module only needs
//! patches and labels, so a test can run a real step on a small fixture.

use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ModelError, Net, NetConfig, load_weights, weights_to_bytes};

/// Optimisation and augmentation settings (recorded in the manifest).
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    #[config(default = 30)]
    pub epochs: usize,
    #[config(default = 32)]
    pub batch_size: usize,
    #[config(default = 2e-3)]
    pub learning_rate: f64,
    #[config(default = 1e-4)]
    pub weight_decay: f64,
    /// 0 = no augmentation, 1 = the default ranges (see the CLI's sampler).
    #[config(default = 1.0)]
    pub augmentation: f64,
    #[config(default = 42)]
    pub seed: u64,
}

/// Per-epoch record kept in checkpoints and the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// Weighted binary cross-entropy on logits, averaged: `w·(max(x,0) − x·y + log(1 + e^−|x|))`.
pub fn bce_with_logits(logits: Tensor<1>, targets: Tensor<1>, weights: Tensor<1>) -> Tensor<1> {
    let softplus_neg_abs = logits.clone().abs().neg().exp().log1p();
    let loss = logits.clone().clamp_min(0.0) - logits * targets + softplus_neg_abs;
    (loss * weights).mean()
}

/// What training optimises: the network, and optionally a linear head on its hidden layer
/// that predicts auxiliary targets (multi-task learning; e.g. the readers' ratings beside
/// malignancy). Only `net` is saved and shipped.
#[derive(Module, Debug)]
pub struct TrainNet {
    pub net: Net,
    pub aux: Option<Linear>,
}

/// A network on an autodiff device with its AdamW optimiser.
pub struct Trainer {
    pub model: TrainNet,
    pub config: NetConfig,
    optim: ModuleOptimizer,
    device: Device,
}

/// The auxiliary targets of one batch: `values` (`batch × outputs`, each in [0, 1], row by
/// row), `mask` (1 where a value is known, 0 where not) and the weight of their loss beside
/// the main one.
pub struct AuxTargets<'a> {
    pub values: &'a [f32],
    pub mask: &'a [f32],
    pub weight: f32,
}

impl Trainer {
    /// A fresh network (seeded) on `device` (autodiff is added if missing).
    pub fn new(
        config: &NetConfig,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::with_aux(config, train, 0, device)
    }

    /// A fresh network with an auxiliary head of `aux_outputs` outputs (none for 0).
    pub fn with_aux(
        config: &NetConfig,
        train: &TrainConfig,
        aux_outputs: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let device = if device.is_autodiff() {
            device.clone()
        } else {
            device.clone().autodiff()
        };
        device.seed(train.seed);
        let net = config.init(&device);
        let aux =
            (aux_outputs > 0).then(|| LinearConfig::new(config.hidden, aux_outputs).init(&device));
        let optim = AdamWConfig::new()
            .with_weight_decay(train.weight_decay as f32)
            .init();
        Ok(Self {
            model: TrainNet { net, aux },
            config: config.clone(),
            optim,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One optimiser step on a batch; returns the batch loss before the step.
    pub fn step(
        &mut self,
        patches: &[f32],
        labels: &[f32],
        weights: &[f32],
        learning_rate: f64,
    ) -> Result<f32, ModelError> {
        self.step_with_aux(patches, labels, weights, None, learning_rate)
    }

    /// [`Trainer::step`] with auxiliary targets for the auxiliary head (ignored without one).
    pub fn step_with_aux(
        &mut self,
        patches: &[f32],
        labels: &[f32],
        weights: &[f32],
        aux: Option<AuxTargets>,
        learning_rate: f64,
    ) -> Result<f32, ModelError> {
        let input = self.model.net.input_tensor(patches, &self.device)?;
        let [n, _, _, _] = input.dims();
        if labels.len() != n || weights.len() != n {
            return Err(ModelError::InputSize {
                got: labels.len(),
                per_patch: n,
            });
        }
        let targets = Tensor::<1>::from_data(TensorData::new(labels.to_vec(), [n]), &self.device);
        let w = Tensor::<1>::from_data(TensorData::new(weights.to_vec(), [n]), &self.device);
        let (hidden, logits) = self.model.net.forward_with_hidden(input);
        let mut loss = bce_with_logits(logits.reshape([n]), targets, w);
        if let (Some(head), Some(aux)) = (&self.model.aux, aux) {
            let outputs = head.weight.dims()[1];
            if aux.values.len() != n * outputs || aux.mask.len() != n * outputs {
                return Err(ModelError::InputSize {
                    got: aux.values.len(),
                    per_patch: n * outputs,
                });
            }
            let values = Tensor::<1>::from_data(
                TensorData::new(aux.values.to_vec(), [n * outputs]),
                &self.device,
            );
            let mask = Tensor::<1>::from_data(
                TensorData::new(aux.mask.to_vec(), [n * outputs]),
                &self.device,
            );
            let aux_logits = head.forward(hidden).reshape([n * outputs]);
            // Soft-target cross-entropy over the known values only.
            let known = aux.mask.iter().sum::<f32>().max(1.0);
            let aux_loss = bce_with_logits(aux_logits, values, mask) * (n * outputs) as f32 / known;
            loss = loss + aux_loss * aux.weight;
        }
        let value = loss
            .clone()
            .try_into_data()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))?
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(learning_rate, self.model.clone(), grads);
        Ok(value.first().copied().unwrap_or(f32::NAN))
    }

    /// Probabilities with the network in evaluation mode (no dropout, running batch-norm stats).
    pub fn predict(&self, patches: &[f32]) -> Result<Vec<f32>, ModelError> {
        let net = self.model.net.valid();
        let device = self.device.clone().inner();
        let input = net.input_tensor(patches, &device)?;
        net.probabilities(input)
            .try_into_data()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))?
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))
    }

    /// The weights as burnpack bytes.
    pub fn weights(&self) -> Result<Vec<u8>, ModelError> {
        weights_to_bytes(self.model.net.valid())
    }

    /// Optimiser state as bytes (for resuming).
    pub fn optimizer_state(&self) -> Result<Vec<u8>, ModelError> {
        self.optim
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| ModelError::Weights(e.to_string()))
    }

    /// Restores weights and optimiser state saved by [`Trainer::weights`] and
    /// [`Trainer::optimizer_state`].
    pub fn restore(&mut self, weights: Vec<u8>, optimizer: Vec<u8>) -> Result<(), ModelError> {
        self.model.net = load_weights(self.model.net.clone(), weights)?.train();
        let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init());
        self.optim = optim
            .from_bytes(Bytes::from_bytes_vec(optimizer))
            .map_err(|e| ModelError::Weights(e.to_string()))?;
        Ok(())
    }
}

/// Number of trainable parameters.
pub fn param_count(net: &Net) -> usize {
    net.num_params()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_matches_the_formula() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([2.0, -1.0, 0.0], &device);
        let y = Tensor::<1>::from_floats([1.0, 0.0, 1.0], &device);
        let w = Tensor::<1>::from_floats([1.0, 2.0, 1.0], &device);
        let got = bce_with_logits(x, y, w)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0];
        let bce = |x: f64, y: f64| {
            -(y * (1.0 / (1.0 + (-x).exp())).ln()
                + (1.0 - y) * (1.0 - 1.0 / (1.0 + (-x).exp())).ln())
        };
        let expected = (bce(2.0, 1.0) + 2.0 * bce(-1.0, 0.0) + bce(0.0, 1.0)) / 3.0;
        assert!(
            (f64::from(got) - expected).abs() < 1e-5,
            "{got} vs {expected}"
        );
    }
}
