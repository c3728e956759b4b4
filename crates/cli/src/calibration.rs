//! How well probabilities match outcomes: equal-mass reliability bins, the expected
//! calibration error over them, the Brier score, and the calibration slope and intercept
//! (logistic regression of the outcome on the logit of the probability; slope 1 and
//! intercept 0 when calibrated, a slope below 1 when the model is over-confident).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    pub n: usize,
    pub mean_p: f64,
    pub observed: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub n: usize,
    /// Σ n_b / N · |mean p − observed rate| over equal-mass bins.
    pub ece: f64,
    pub brier: f64,
    pub slope: f64,
    pub intercept: f64,
    pub bins: Vec<Bin>,
}

/// Calibration of `p` against `labels` with `bins` equal-mass bins (cases sorted by p, split
/// into runs of as equal size as possible). `None` for no cases or one class only.
pub fn calibration(p: &[f32], labels: &[bool], bins: usize) -> Option<Calibration> {
    let n = p.len();
    if n == 0 || bins == 0 || labels.iter().all(|&l| l) || labels.iter().all(|&l| !l) {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let bins = bins.min(n);
    let mut out = Vec::with_capacity(bins);
    let mut ece = 0.0;
    for b in 0..bins {
        let (lo, hi) = (b * n / bins, (b + 1) * n / bins);
        let members = &order[lo..hi];
        let count = members.len() as f64;
        let mean_p = members.iter().map(|&i| f64::from(p[i])).sum::<f64>() / count;
        let observed = members.iter().filter(|&&i| labels[i]).count() as f64 / count;
        ece += count / n as f64 * (mean_p - observed).abs();
        out.push(Bin {
            n: members.len(),
            mean_p,
            observed,
        });
    }
    let brier = p
        .iter()
        .zip(labels)
        .map(|(&p, &l)| (f64::from(p) - f64::from(u8::from(l))).powi(2))
        .sum::<f64>()
        / n as f64;
    let (intercept, slope) = logistic_fit(p, labels);
    Some(Calibration {
        n,
        ece,
        brier,
        slope,
        intercept,
        bins: out,
    })
}

/// The temperature T > 0 that minimises the log loss of σ(logit(p) / T) on `p`, `labels`
/// (fitted on validation, applied to test: temperature scaling). Golden-section search over
/// log T in [1/20, 20].
pub fn fit_temperature(p: &[f32], labels: &[bool]) -> f64 {
    let logits: Vec<f64> = p.iter().map(|&p| logit(p)).collect();
    let loss = |log_t: f64| -> f64 {
        let t = log_t.exp();
        logits
            .iter()
            .zip(labels)
            .map(|(&z, &y)| {
                let z = z / t;
                // −log σ(z) for a positive, −log(1 − σ(z)) for a negative.
                let m = if y { -z } else { z };
                if m > 30.0 { m } else { m.exp().ln_1p() }
            })
            .sum()
    };
    let (mut lo, mut hi) = ((1.0f64 / 20.0).ln(), 20.0f64.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..80 {
        let a = hi - ratio * (hi - lo);
        let b = lo + ratio * (hi - lo);
        if loss(a) < loss(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    ((lo + hi) / 2.0).exp()
}

/// σ(logit(p) / t).
pub fn scale_temperature(p: f32, t: f64) -> f32 {
    (1.0 / (1.0 + (-logit(p) / t).exp())) as f32
}

fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Maximum-likelihood (intercept, slope) of `label ~ logit(p)`, by Newton's method with step
/// halving (a 2 × 2 system; probabilities clamped to [1e-6, 1 − 1e-6] so that the logit is
/// finite).
fn logistic_fit(p: &[f32], labels: &[bool]) -> (f64, f64) {
    let x: Vec<f64> = p.iter().map(|&p| logit(p)).collect();
    let y: Vec<f64> = labels.iter().map(|&l| f64::from(u8::from(l))).collect();
    // log(1 + e^z) without overflow.
    let softplus = |z: f64| if z > 30.0 { z } else { z.exp().ln_1p() };
    let log_likelihood = |a: f64, b: f64| -> f64 {
        x.iter()
            .zip(&y)
            .map(|(&x, &y)| {
                let z = a + b * x;
                y * z - softplus(z)
            })
            .sum()
    };
    let (mut a, mut b) = (0.0f64, 1.0f64);
    let mut current = log_likelihood(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in x.iter().zip(&y) {
            let q = 1.0 / (1.0 + (-(a + b * x)).exp());
            let r = y - q;
            let w = q * (1.0 - q);
            ga += r;
            gb += r * x;
            haa += w;
            hab += w * x;
            hbb += w * x * x;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // Halve the step until the likelihood does not fall.
        let mut step = 1.0;
        let mut next = log_likelihood(a + da, b + db);
        while next < current && step > 1e-6 {
            step /= 2.0;
            next = log_likelihood(a + step * da, b + step * db);
        }
        a += step * da;
        b += step * db;
        let moved = step * (da.abs() + db.abs());
        current = next;
        if moved < 1e-10 {
            break;
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outcomes drawn with exactly the stated probability give ECE ≈ 0 and slope ≈ 1;
    /// over-confident probabilities give a slope below 1.
    #[test]
    fn calibrated_and_overconfident_probabilities() {
        let mut p = Vec::new();
        let mut labels = Vec::new();
        // Ten levels, each with a fraction of positives equal to its probability.
        for level in 0..10 {
            let q = 0.05 + 0.1 * level as f32;
            for k in 0..100 {
                p.push(q);
                labels.push((k as f32) < q * 100.0);
            }
        }
        let c = calibration(&p, &labels, 10).expect("both classes");
        assert!(c.ece < 0.01, "ece {}", c.ece);
        assert!((c.slope - 1.0).abs() < 0.05, "slope {}", c.slope);
        assert!(c.intercept.abs() < 0.05, "intercept {}", c.intercept);
        assert_eq!(c.bins.iter().map(|b| b.n).sum::<usize>(), 1000);
        // Push every probability away from 0.5: over-confident.
        let sharp: Vec<f32> = p
            .iter()
            .map(|&q| {
                let logit = (q / (1.0 - q)).ln() * 3.0;
                1.0 / (1.0 + (-logit).exp())
            })
            .collect();
        let s = calibration(&sharp, &labels, 10).expect("both classes");
        assert!((s.slope - 1.0 / 3.0).abs() < 0.05, "slope {}", s.slope);
        assert!(s.ece > c.ece && s.brier > c.brier);
        assert!(calibration(&p, &vec![true; p.len()], 10).is_none());
        // Temperature scaling undoes the sharpening: T ≈ 3, and the scaled ECE is small again.
        let t = fit_temperature(&sharp, &labels);
        assert!((t - 3.0).abs() < 0.2, "temperature {t}");
        let scaled: Vec<f32> = sharp.iter().map(|&q| scale_temperature(q, t)).collect();
        let back = calibration(&scaled, &labels, 10).expect("both classes");
        assert!(back.ece < 0.02, "ece after scaling {}", back.ece);
    }
}
