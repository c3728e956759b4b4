//! Binary-classification metrics: ROC AUC (with a bootstrap interval), the confusion matrix at a
//! threshold, and the threshold that maximises Youden's J.

use serde::Serialize;

use crate::rng::Rng;

/// ROC AUC by the Mann–Whitney statistic (ties count one half). `None` without both classes.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    let n_pos = pairs.iter().filter(|p| p.1).count();
    let n_neg = pairs.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of (average) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * pairs[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// Percentile bootstrap 95 % interval of the AUC, resampling cases with replacement.
pub fn auc_ci95(scores: &[f32], labels: &[bool], resamples: usize, seed: u64) -> Option<[f64; 2]> {
    auc(scores, labels)?;
    let (mut s, mut l) = (Vec::new(), Vec::new());
    bootstrap_ci95(scores.len(), resamples, seed, |cases| {
        s.clear();
        l.clear();
        s.extend(cases.iter().map(|&k| scores[k]));
        l.extend(cases.iter().map(|&k| labels[k]));
        auc(&s, &l)
    })
}

/// The AUC gain of `scores` over `baseline` on the same cases, with a paired percentile
/// bootstrap 95 % interval (each resample draws cases once, for both scores).
pub fn paired_auc_gain(
    scores: &[f32],
    baseline: &[f32],
    labels: &[bool],
    resamples: usize,
    seed: u64,
) -> Option<(f64, [f64; 2])> {
    let gain = auc(scores, labels)? - auc(baseline, labels)?;
    let (mut s, mut b, mut l) = (Vec::new(), Vec::new(), Vec::new());
    let ci = bootstrap_ci95(scores.len(), resamples, seed, |cases| {
        s.clear();
        b.clear();
        l.clear();
        s.extend(cases.iter().map(|&k| scores[k]));
        b.extend(cases.iter().map(|&k| baseline[k]));
        l.extend(cases.iter().map(|&k| labels[k]));
        Some(auc(&s, &l)? - auc(&b, &l)?)
    })?;
    Some((gain, ci))
}

/// The 2.5th and 97.5th percentiles of `statistic` over `resamples` draws of `n` cases with
/// replacement (draws where it is undefined are left out).
fn bootstrap_ci95(
    n: usize,
    resamples: usize,
    seed: u64,
    mut statistic: impl FnMut(&[usize]) -> Option<f64>,
) -> Option<[f64; 2]> {
    let mut rng = Rng::new(seed);
    let mut values = Vec::with_capacity(resamples);
    let mut cases = Vec::with_capacity(n);
    for _ in 0..resamples {
        cases.clear();
        cases.extend((0..n).map(|_| rng.below(n)));
        if let Some(v) = statistic(&cases) {
            values.push(v);
        }
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Some([at(0.025), at(0.975)])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Confusion {
    /// Predicted positive when `score >= threshold`.
    pub fn at(scores: &[f32], labels: &[bool], threshold: f32) -> Self {
        let mut c = Confusion {
            tp: 0,
            fp: 0,
            tn: 0,
            fn_: 0,
        };
        for (&s, &l) in scores.iter().zip(labels) {
            match (s >= threshold, l) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    fn ratio(a: usize, b: usize) -> f64 {
        if b == 0 { 0.0 } else { a as f64 / b as f64 }
    }
    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }
    pub fn specificity(&self) -> f64 {
        Self::ratio(self.tn, self.tn + self.fp)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// The threshold maximising sensitivity + specificity − 1 (ties: the lower threshold).
pub fn youden_threshold(scores: &[f32], labels: &[bool]) -> f32 {
    let mut candidates: Vec<f32> = scores.to_vec();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best = (f64::NEG_INFINITY, 0.5f32);
    for &t in &candidates {
        let c = Confusion::at(scores, labels, t);
        let j = c.recall() + c.specificity() - 1.0;
        if j > best.0 {
            best = (j, t);
        }
    }
    best.1
}

/// The ROC curve as (false-positive rate, true-positive rate) points, from (0,0) to (1,1).
pub fn roc_points(scores: &[f32], labels: &[bool]) -> Vec<(f64, f64)> {
    let mut t: Vec<f32> = scores.to_vec();
    t.sort_by(|a, b| b.total_cmp(a));
    t.dedup();
    let mut points = vec![(0.0, 0.0)];
    for &threshold in &t {
        let c = Confusion::at(scores, labels, threshold);
        points.push((1.0 - c.specificity(), c.recall()));
    }
    points.push((1.0, 1.0));
    points
}

/// The standard JSON report of a binary classifier (the `eval-*` commands' keys).
pub fn report(scores: &[f32], labels: &[bool], threshold: f32, seed: u64) -> serde_json::Value {
    let c = Confusion::at(scores, labels, threshold);
    serde_json::json!({
        "n": scores.len(),
        "n_positive": labels.iter().filter(|l| **l).count(),
        "auc": auc(scores, labels),
        "auc_ci95": auc_ci95(scores, labels, 2000, seed),
        "accuracy": c.accuracy(),
        "precision": c.precision(),
        "recall": c.recall(),
        "specificity": c.specificity(),
        "f1": c.f1(),
        "confusion": c,
        "threshold": threshold,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_paired_gain_is_zero_against_itself_and_positive_over_noise() {
        let labels: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        let good: Vec<f32> = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| if l { 1.0 } else { 0.0 } + i as f32 * 1e-3)
            .collect();
        let noise: Vec<f32> = (0..40).map(|i| ((i * 7919) % 40) as f32).collect();
        let (same, ci) =
            super::paired_auc_gain(&good, &good, &labels, 200, 1).expect("both classes");
        assert_eq!(same, 0.0);
        assert_eq!(ci, [0.0, 0.0]);
        let (gain, ci) =
            super::paired_auc_gain(&good, &noise, &labels, 200, 1).expect("both classes");
        assert!(
            gain > 0.3 && ci[0] > 0.0 && ci[0] <= gain && gain <= ci[1],
            "{gain} {ci:?}"
        );
    }

    use super::*;

    #[test]
    fn auc_of_known_cases() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        // One inversion out of 2×2 pairs.
        assert_eq!(
            auc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn confusion_and_rates() {
        let s = [0.9, 0.8, 0.3, 0.6, 0.1];
        let l = [true, true, true, false, false];
        let c = Confusion::at(&s, &l, 0.5);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (2, 1, 1, 1));
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.specificity() - 0.5).abs() < 1e-12);
        assert_eq!(
            youden_threshold(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            0.8
        );
    }

    #[test]
    fn bootstrap_interval_brackets_the_auc() {
        let mut rng = Rng::new(3);
        let labels: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let scores: Vec<f32> = labels
            .iter()
            .map(|&l| (rng.unit() + if l { 0.5 } else { 0.0 }) as f32)
            .collect();
        let a = auc(&scores, &labels).unwrap();
        let [lo, hi] = auc_ci95(&scores, &labels, 500, 1).unwrap();
        assert!(lo < a && a < hi && hi - lo < 0.2, "{lo} {a} {hi}");
    }
}
