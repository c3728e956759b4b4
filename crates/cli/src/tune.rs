//! `nodulens tune malignancy|nodule`: a small seeded random search over the learning rate, the
//! weight decay and the augmentation strength. Each trial is a short run of the ordinary
//! trainer (`train::train`) on the training patients, scored by its best validation AUC only;
//! the test patients are never looked at. Results: `<out>/tune.json` and `<out>/tune.md`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use nodulens_model::ModelKind;
use nodulens_model::train::TrainConfig;
use serde::Serialize;

use crate::rng::Rng;
use crate::train::{self, TrainArgs};

/// The search space: log-uniform rates, a uniform augmentation strength.
pub const LR_RANGE: [f64; 2] = [3e-4, 6e-3];
pub const WEIGHT_DECAY_RANGE: [f64; 2] = [1e-5, 1e-3];
pub const AUGMENTATION_RANGE: [f64; 2] = [0.0, 1.5];

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trial {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub augmentation: f64,
}

fn log_uniform(rng: &mut Rng, [lo, hi]: [f64; 2]) -> f64 {
    rng.uniform(lo.ln(), hi.ln()).exp()
}

/// `n` trials for `seed`: the first is the default configuration (the baseline), the others
/// are drawn at random; trial `i` depends on the seed and `i` alone.
pub fn sample(seed: u64, n: usize) -> Vec<Trial> {
    let defaults = TrainConfig::new();
    (0..n)
        .map(|i| {
            if i == 0 {
                return Trial {
                    learning_rate: defaults.learning_rate,
                    weight_decay: defaults.weight_decay,
                    augmentation: defaults.augmentation,
                };
            }
            let mut rng = Rng::derive(seed, &format!("tune trial {i}"));
            Trial {
                learning_rate: log_uniform(&mut rng, LR_RANGE),
                weight_decay: log_uniform(&mut rng, WEIGHT_DECAY_RANGE),
                augmentation: rng.uniform(AUGMENTATION_RANGE[0], AUGMENTATION_RANGE[1]),
            }
        })
        .collect()
}

pub struct TuneArgs {
    pub kind: ModelKind,
    pub data: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
    pub trials: usize,
    pub epochs: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub widths: [usize; 3],
    pub negatives_per_scan: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    pub trial: usize,
    #[serde(flatten)]
    pub params: Trial,
    pub val_auc: f64,
    pub best_epoch: usize,
    pub seconds: f64,
}

/// Runs the search; returns the results, best validation AUC first.
pub fn tune(args: &TuneArgs) -> anyhow::Result<Vec<TrialResult>> {
    if args.trials == 0 {
        bail!("--trials must be > 0");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut results = Vec::new();
    for (i, params) in sample(args.seed, args.trials).into_iter().enumerate() {
        eprintln!(
            "trial {i} ({} of {}): lr {:.2e}, weight decay {:.2e}, augmentation {:.2}",
            i + 1,
            args.trials,
            params.learning_rate,
            params.weight_decay,
            params.augmentation
        );
        let config = TrainConfig::new()
            .with_epochs(args.epochs)
            .with_seed(args.seed)
            .with_batch_size(args.batch_size)
            .with_learning_rate(params.learning_rate)
            .with_weight_decay(params.weight_decay)
            .with_augmentation(params.augmentation);
        let state = train::train(&TrainArgs {
            kind: args.kind,
            data: args.data.clone(),
            out: args.out.join(format!("trial-{i}")),
            cache: args.cache.clone(),
            config,
            widths: args.widths,
            resume: false,
            negatives_per_scan: args.negatives_per_scan,
            quiet: true,
            fold: None,
            aux_weight: 0.0,
            preprocess: Default::default(),
            indeterminate_target: None,
        })?;
        eprintln!(
            "trial {i}: validation AUC {:.4} (epoch {}), {:.0} s",
            state.best_val_auc,
            state.best_epoch.unwrap_or(0),
            state.seconds
        );
        results.push(TrialResult {
            trial: i,
            params,
            val_auc: state.best_val_auc,
            best_epoch: state.best_epoch.unwrap_or(0),
            seconds: state.seconds,
        });
    }
    results.sort_by(|a, b| b.val_auc.total_cmp(&a.val_auc).then(a.trial.cmp(&b.trial)));
    let report = serde_json::json!({
        "kind": args.kind,
        "scored_on": "validation patients only (best epoch's AUC)",
        "seed": args.seed,
        "epochs_per_trial": args.epochs,
        "batch_size": args.batch_size,
        "widths": args.widths,
        "space": {
            "learning_rate": {"log_uniform": LR_RANGE},
            "weight_decay": {"log_uniform": WEIGHT_DECAY_RANGE},
            "augmentation": {"uniform": AUGMENTATION_RANGE},
            "trial_0": "the default configuration",
        },
        "chosen": results.first(),
        "trials": results,
    });
    std::fs::write(
        args.out.join("tune.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(args.out.join("tune.md"), markdown(args, &results))?;
    Ok(results)
}

/// The results table for the model card.
pub fn markdown(args: &TuneArgs, results: &[TrialResult]) -> String {
    let mut s = format!(
        "### Tuning: {} model\n\nRandom search, seed {}, {} trials of {} epochs (batch {}, widths {:?}), \
         scored on the validation patients only (best epoch's AUC); trial 0 is the default \
         configuration.\n\n| trial | learning rate | weight decay | augmentation | val AUC | best epoch | seconds |\n|---|---|---|---|---|---|---|\n",
        args.kind.name(),
        args.seed,
        args.trials,
        args.epochs,
        args.batch_size,
        args.widths
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {:.2e} | {:.2e} | {:.2} | {:.4} | {} | {:.0} |\n",
            r.trial,
            r.params.learning_rate,
            r.params.weight_decay,
            r.params.augmentation,
            r.val_auc,
            r.best_epoch,
            r.seconds
        ));
    }
    if let Some(best) = results.first() {
        s.push_str(&format!(
            "\nChosen: trial {} (lr {:.2e}, weight decay {:.2e}, augmentation {:.2}).\n",
            best.trial,
            best.params.learning_rate,
            best.params.weight_decay,
            best.params.augmentation
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_seeded_in_range_and_starts_with_the_defaults() {
        let a = sample(7, 40);
        assert_eq!(a, sample(7, 40));
        // Trial i does not depend on how many are asked for.
        assert_eq!(a[..5], sample(7, 5)[..]);
        assert_ne!(a[1..], sample(8, 40)[1..]);
        let d = TrainConfig::new();
        assert_eq!(
            (a[0].learning_rate, a[0].weight_decay, a[0].augmentation),
            (d.learning_rate, d.weight_decay, d.augmentation)
        );
        let within = |v: f64, [lo, hi]: [f64; 2]| (lo..=hi).contains(&v);
        for t in &a[1..] {
            assert!(within(t.learning_rate, LR_RANGE), "{t:?}");
            assert!(within(t.weight_decay, WEIGHT_DECAY_RANGE), "{t:?}");
            assert!(within(t.augmentation, AUGMENTATION_RANGE), "{t:?}");
        }
        // Log-uniform: the learning rates spread over both halves of the log range.
        let mid = (LR_RANGE[0] * LR_RANGE[1]).sqrt();
        let low = a[1..].iter().filter(|t| t.learning_rate < mid).count();
        assert!(
            (8..=31).contains(&low),
            "{low} of 39 below the geometric middle"
        );
    }
}
