//! `nodulens train nodule|malignancy`: the training loop (CPU by default), with per-epoch
//! checkpoints, resume, and the best epoch by validation AUC kept as `best.bpk`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use nodulens_core::preprocess::PreprocessConfig;
use nodulens_model::train::{AuxTargets, EpochLog, TrainConfig, Trainer, param_count};
use nodulens_model::{ModelKind, NetConfig};
use serde::{Deserialize, Serialize};

use crate::data::{self, BuildOptions, Dataset, Split};
use crate::metrics;
use crate::rng::Rng;

/// What a finished (or interrupted) run leaves in `<out>/<kind>/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub kind: ModelKind,
    pub architecture: NetConfig,
    pub preprocess: PreprocessConfig,
    pub train: TrainConfig,
    pub epochs_done: usize,
    pub history: Vec<EpochLog>,
    pub best_epoch: Option<usize>,
    pub best_val_auc: f64,
    /// Youden threshold on validation at the best epoch.
    pub threshold: f32,
    pub params: usize,
    pub samples: serde_json::Value,
    pub seconds: f64,
    /// The k-fold split the run was trained on (`None`: the seeded split).
    #[serde(default)]
    pub fold: Option<data::Fold>,
    /// Weight of the auxiliary targets' loss (0: none), and which targets.
    #[serde(default)]
    pub aux_weight: f64,
    #[serde(default)]
    pub aux_targets: Vec<String>,
}

pub struct TrainArgs {
    pub kind: ModelKind,
    pub data: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
    pub config: TrainConfig,
    pub widths: [usize; 3],
    pub resume: bool,
    pub negatives_per_scan: usize,
    pub quiet: bool,
    /// A k-fold split instead of the seeded train / validation / test one.
    pub fold: Option<data::Fold>,
    /// Weight of the auxiliary targets' loss (malignancy: the readers' other ratings,
    /// [`data::AUX_TARGETS`]); 0 trains on the label alone.
    pub aux_weight: f64,
    /// What the model sees: the patch's side and sample spacing (the rest as the default).
    pub preprocess: PreprocessConfig,
    /// Malignancy: the target of the training nodules rated 3 (`None`: left out).
    pub indeterminate_target: Option<f32>,
}

pub fn run_dir(out: &Path, kind: ModelKind) -> PathBuf {
    out.join(kind.name())
}

/// Validation patches are made once (no augmentation).
struct Fixed {
    patches: Vec<f32>,
    labels: Vec<f32>,
}

pub fn train(args: &TrainArgs) -> anyhow::Result<RunState> {
    let preprocess = args.preprocess.clone();
    preprocess.validate().map_err(|why| anyhow::anyhow!(why))?;
    let architecture = NetConfig::for_preprocess(&preprocess).with_widths(args.widths);
    architecture.validate()?;
    let dir = run_dir(&args.out, args.kind);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if args.config.batch_size == 0 || args.config.epochs == 0 {
        bail!("batch size and epochs must be > 0");
    }

    if !args.quiet {
        eprintln!(
            "loading {} data from {}",
            args.kind.name(),
            args.data.display()
        );
    }
    let ds = data::build(&BuildOptions {
        kind: args.kind,
        data: &args.data,
        seed: args.config.seed,
        cache: &args.cache,
        negatives_per_scan: args.negatives_per_scan,
        only: None,
        fold: args.fold,
        verbose: !args.quiet,
        indeterminate_target: args.indeterminate_target,
    })?;
    let train_idx = ds.indices(Some(Split::Train));
    let val_idx = ds.indices(Some(Split::Val));
    let samples = summary(&ds);
    if !args.quiet {
        eprintln!("samples: {samples}");
    }
    if train_idx.is_empty() || val_idx.is_empty() {
        bail!("empty training or validation split");
    }
    // Balanced class weights (mean weight 1 over the training set's two classes; samples
    // with a soft target belong to neither and weigh 1).
    let n_pos = ds.count(Some(Split::Train), true);
    let n_neg = ds.count(Some(Split::Train), false);
    let n = (n_pos + n_neg) as f32;
    let (w_pos, w_neg) = (
        n / (2.0 * n_pos.max(1) as f32),
        n / (2.0 * n_neg.max(1) as f32),
    );

    let (vp, vl) = data::batch(&ds, &val_idx, &preprocess, None);
    let val = Fixed {
        patches: vp,
        labels: vl,
    };

    let device = Device::flex().autodiff();
    let multi_task = args.aux_weight > 0.0 && args.kind == ModelKind::Malignancy;
    let aux_outputs = if multi_task {
        data::AUX_TARGETS.len()
    } else {
        0
    };
    let mut trainer = Trainer::with_aux(&architecture, &args.config, aux_outputs, &device)?;
    let params = param_count(&trainer.model.net);
    let mut state = RunState {
        kind: args.kind,
        architecture: architecture.clone(),
        preprocess: preprocess.clone(),
        train: args.config.clone(),
        epochs_done: 0,
        history: Vec::new(),
        best_epoch: None,
        best_val_auc: f64::NEG_INFINITY,
        threshold: 0.5,
        params,
        samples,
        seconds: 0.0,
        fold: args.fold,
        aux_weight: if multi_task { args.aux_weight } else { 0.0 },
        aux_targets: if multi_task {
            data::AUX_TARGETS.iter().map(|s| s.to_string()).collect()
        } else {
            vec![]
        },
    };
    let checkpoint = dir.join("checkpoint.json");
    if args.resume && checkpoint.is_file() && multi_task {
        // Checkpoints hold the shipped network only, not the auxiliary head.
        bail!(
            "--resume is not supported with --aux-weight: the auxiliary head is not checkpointed"
        );
    }
    if args.resume && checkpoint.is_file() {
        let saved: RunState = serde_json::from_str(&std::fs::read_to_string(&checkpoint)?)
            .context("reading checkpoint.json")?;
        if saved.architecture != architecture || saved.preprocess != preprocess {
            bail!(
                "checkpoint in {} has another architecture or preprocessing",
                dir.display()
            );
        }
        trainer.restore(
            std::fs::read(dir.join("checkpoint.bpk"))?,
            std::fs::read(dir.join("checkpoint.optim"))?,
        )?;
        state = RunState {
            train: args.config.clone(),
            ..saved
        };
        if !args.quiet {
            eprintln!("resuming after epoch {}", state.epochs_done);
        }
    }
    if !args.quiet {
        eprintln!(
            "{params} parameters; {} train, {} val samples",
            train_idx.len(),
            val_idx.len()
        );
    }

    let cfg = &args.config;
    let steps_per_epoch = train_idx.len().div_ceil(cfg.batch_size);
    for epoch in state.epochs_done..cfg.epochs {
        let t0 = Instant::now();
        // Cosine decay to 5 % of the initial rate.
        let progress = epoch as f64 / cfg.epochs.max(1) as f64;
        let lr = cfg.learning_rate
            * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        let mut rng = Rng::derive(cfg.seed, &format!("epoch {epoch}"));
        let mut order = train_idx.clone();
        rng.shuffle(&mut order);
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps_per_epoch as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
            )
            .context("progress template")?,
        );
        bar.set_prefix(format!("{}", epoch + 1));
        let mut loss_sum = 0.0f64;
        for (step, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let (patches, labels) = data::batch(
                &ds,
                chunk,
                &preprocess,
                Some((&mut rng, args.kind, cfg.augmentation)),
            );
            let weights: Vec<f32> = chunk
                .iter()
                .zip(&labels)
                .map(|(&i, &l)| match ds.samples[i].soft_target {
                    Some(_) => 1.0,
                    None if l > 0.5 => w_pos,
                    None => w_neg,
                })
                .collect();
            let (aux_values, aux_mask) = data::aux_batch(&ds, chunk);
            let aux = multi_task.then_some(AuxTargets {
                values: &aux_values,
                mask: &aux_mask,
                weight: args.aux_weight as f32,
            });
            let loss = trainer.step_with_aux(&patches, &labels, &weights, aux, lr)?;
            if !loss.is_finite() {
                bail!("loss became {loss} at epoch {} step {step}", epoch + 1);
            }
            loss_sum += f64::from(loss);
            bar.set_message(format!("loss {:.4}", loss_sum / (step + 1) as f64));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_loss = loss_sum / steps_per_epoch as f64;
        let probs = predict_batched(
            &trainer,
            &val.patches,
            val.labels.len(),
            preprocess.patch_len(),
        )?;
        let labels: Vec<bool> = val.labels.iter().map(|&l| l > 0.5).collect();
        let val_auc = metrics::auc(&probs, &labels).unwrap_or(0.5);
        let val_loss = val_bce(&probs, &val.labels);
        let seconds = t0.elapsed().as_secs_f64();
        state.history.push(EpochLog {
            epoch: epoch + 1,
            train_loss,
            val_loss,
            val_auc,
            learning_rate: lr,
            seconds,
        });
        state.epochs_done = epoch + 1;
        state.seconds += seconds;
        let improved = val_auc > state.best_val_auc;
        if improved {
            state.best_val_auc = val_auc;
            state.best_epoch = Some(epoch + 1);
            state.threshold = metrics::youden_threshold(&probs, &labels);
            std::fs::write(dir.join("best.bpk"), trainer.weights()?)?;
        }
        std::fs::write(dir.join("checkpoint.bpk"), trainer.weights()?)?;
        std::fs::write(dir.join("checkpoint.optim"), trainer.optimizer_state()?)?;
        std::fs::write(&checkpoint, serde_json::to_string_pretty(&state)?)?;
        std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&state)?)?;
        if !args.quiet {
            eprintln!(
                "epoch {:>3}/{}: train loss {train_loss:.4}  val loss {val_loss:.4}  val AUC {val_auc:.4}{}  lr {lr:.2e}  {seconds:.0}s",
                epoch + 1,
                cfg.epochs,
                if improved { " *" } else { "" }
            );
        }
    }
    Ok(state)
}

fn predict_batched(
    trainer: &Trainer,
    patches: &[f32],
    n: usize,
    per: usize,
) -> anyhow::Result<Vec<f32>> {
    let mut out = Vec::with_capacity(n);
    for chunk in patches.chunks(64 * per) {
        out.extend(trainer.predict(chunk)?);
    }
    Ok(out)
}

fn val_bce(probs: &[f32], labels: &[f32]) -> f64 {
    let n = probs.len().max(1) as f64;
    probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(1e-7, 1.0 - 1e-7);
            let y = f64::from(y);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / n
}

/// Sample counts per split and class.
pub fn summary(ds: &Dataset) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, split) in [
        ("train", Split::Train),
        ("val", Split::Val),
        ("test", Split::Test),
    ] {
        let patients: std::collections::BTreeSet<&str> = ds
            .samples
            .iter()
            .filter(|s| s.split == split)
            .map(|s| s.patient.as_str())
            .collect();
        let indeterminate = ds
            .samples
            .iter()
            .filter(|s| s.split == split && s.soft_target.is_some())
            .count();
        let mut counts = serde_json::json!({
            "positive": ds.count(Some(split), true),
            "negative": ds.count(Some(split), false),
            "patients": patients.len(),
        });
        if indeterminate > 0 {
            counts["indeterminate"] = indeterminate.into();
        }
        out.insert(name.into(), counts);
    }
    serde_json::Value::Object(out)
}
