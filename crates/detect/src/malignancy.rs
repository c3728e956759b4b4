//! `p_malignant` as shipped: a logistic combination of the malignancy CNN's output with what
//! our own segmentation measures (size, density, shape, margin; [`Measurement`] and its
//! [`Descriptors`](crate::Descriptors)). The CNN alone ranks nodules no better than a ruler;
//! the combination adds what readers weigh beyond size. Its weights are fitted out of fold
//! (`nodulens fit-malignancy`) and ship in `models/manifest.json`; the CLI, the evaluator and
//! the browser worker all call [`MalignancyCombination::p_malignant`].

use serde::{Deserialize, Serialize};

use crate::measure::Measurement;

/// The combination's inputs, in order (the manifest names them, and a manifest whose names
/// differ is refused).
pub const INPUTS: [&str; 12] = [
    "cnn_logit",
    "log_diameter_mm",
    "log_volume_mm3",
    "mean_hu",
    "solid_share",
    "calcium_share",
    "hu_std",
    "compactness",
    "solidity",
    "margin_contrast",
    "strand_share",
    "elongation",
];

/// Number of inputs.
pub const N_INPUTS: usize = INPUTS.len();

/// The CNN's probability is clamped this far from 0 and 1 before its logit is taken.
const P_EPSILON: f64 = 1e-6;
/// Diameters and volumes below these (a segmentation of a few voxels) are taken as these,
/// so their logarithms stay finite.
const MIN_DIAMETER_MM: f64 = 2.0;
const MIN_VOLUME_MM3: f64 = 4.0;
/// The L2 penalty the shipped combination is fitted with: of 1, 3, 10, 30 and 100, the one
/// with the best out-of-fold calibration at an equal AUC on the 501 rated LIDC nodules
/// (nested, `nodulens eval-malignancy --out-of-fold`).
pub const DEFAULT_L2: f64 = 3.0;
/// Newton steps of the fit (it converges in well under this on hundreds of rows).
const FIT_STEPS: usize = 50;

/// The combination's inputs for one finding: the CNN's logit and its measurement.
pub fn inputs(p_cnn: f32, m: &Measurement) -> [f64; N_INPUTS] {
    // A CNN output that is not a number carries no information: even odds.
    let p = if p_cnn.is_finite() {
        f64::from(p_cnn).clamp(P_EPSILON, 1.0 - P_EPSILON)
    } else {
        0.5
    };
    let d = &m.descriptors;
    [
        (p / (1.0 - p)).ln(),
        m.diameter_mm.max(MIN_DIAMETER_MM).ln(),
        m.volume_mm3.max(MIN_VOLUME_MM3).ln(),
        m.mean_hu / 1000.0,
        m.solid_share,
        d.calcium_share,
        d.hu_std / 1000.0,
        d.compactness,
        d.solidity,
        d.margin_contrast / 1000.0,
        d.strand_share,
        if m.long_axis_mm > 0.0 {
            m.short_axis_mm / m.long_axis_mm
        } else {
            0.0
        },
    ]
}

/// Why a manifest's combination cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CombinationError {
    #[error("the malignancy combination's inputs are {found:?}, this build computes {expected:?}")]
    Inputs {
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("the malignancy combination has {0} values where {N_INPUTS} are needed")]
    Length(usize),
    #[error("the malignancy combination holds a value that is not finite")]
    NotFinite,
    #[error("the malignancy combination holds a scale or temperature that is not positive")]
    NonPositiveScale,
    #[error("the malignancy combination cannot be read: {0}")]
    Unreadable(String),
}

/// Logistic regression on standardised [`inputs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MalignancyCombination {
    /// [`INPUTS`], as fitted.
    pub inputs: Vec<String>,
    /// Each input's mean and standard deviation on the fitting rows.
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// The L2 penalty it was fitted with (on the standardised weights).
    pub l2: f64,
    /// The logit is divided by this. It is fitted on the out-of-fold outputs of the fold
    /// CNNs but applied to the shipped CNN, whose logits spread differently: a temperature
    /// fitted on the shipped model's validation nodules carries it over (1: none).
    #[serde(default = "unit_temperature")]
    pub temperature: f64,
}

fn unit_temperature() -> f64 {
    1.0
}

impl MalignancyCombination {
    /// The combination a manifest entry may carry (`ManifestModel::combination`), checked:
    /// `None` where it has none (`p_malignant` is then the CNN's own output).
    pub fn shipped(value: Option<&serde_json::Value>) -> Result<Option<Self>, CombinationError> {
        value.map(Self::from_manifest).transpose()
    }

    /// The combination a manifest carries (`ManifestModel::combination`), checked.
    pub fn from_manifest(value: &serde_json::Value) -> Result<Self, CombinationError> {
        let c: Self = serde_json::from_value(value.clone())
            .map_err(|e| CombinationError::Unreadable(e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// Checks that this combination fits this build's [`INPUTS`].
    pub fn check(&self) -> Result<(), CombinationError> {
        if self.inputs.iter().map(String::as_str).ne(INPUTS) {
            return Err(CombinationError::Inputs {
                found: self.inputs.clone(),
                expected: INPUTS.iter().map(|s| s.to_string()).collect(),
            });
        }
        for v in [&self.mean, &self.scale, &self.weights] {
            if v.len() != N_INPUTS {
                return Err(CombinationError::Length(v.len()));
            }
        }
        let mut values = self.mean.iter().chain(&self.scale).chain(&self.weights);
        if !self.bias.is_finite() || !self.temperature.is_finite() || values.any(|v| !v.is_finite())
        {
            return Err(CombinationError::NotFinite);
        }
        if self.scale.iter().any(|&s| s <= 0.0) || self.temperature <= 0.0 {
            return Err(CombinationError::NonPositiveScale);
        }
        Ok(())
    }

    /// The shipped `p_malignant` of a finding the CNN gave `p_cnn`.
    pub fn p_malignant(&self, p_cnn: f32, m: &Measurement) -> f32 {
        self.probability(&inputs(p_cnn, m)) as f32
    }

    /// The probability of one row of [`inputs`].
    pub fn probability(&self, x: &[f64; N_INPUTS]) -> f64 {
        let z = self.bias
            + (0..N_INPUTS)
                .map(|i| self.weights[i] * (x[i] - self.mean[i]) / self.scale[i])
                .sum::<f64>();
        sigmoid(z / self.temperature)
    }

    /// Fits the combination to `rows` and `labels` (Newton's method, L2 `l2` on the
    /// standardised weights, none on the bias); `None` without both labels among the rows.
    pub fn fit(rows: &[[f64; N_INPUTS]], labels: &[bool], l2: f64) -> Option<Self> {
        let n = rows.len();
        if n != labels.len() || !labels.iter().any(|&l| l) || labels.iter().all(|&l| l) {
            return None;
        }
        let mean: Vec<f64> = (0..N_INPUTS)
            .map(|i| rows.iter().map(|r| r[i]).sum::<f64>() / n as f64)
            .collect();
        let scale: Vec<f64> = (0..N_INPUTS)
            .map(|i| {
                let var = rows.iter().map(|r| (r[i] - mean[i]).powi(2)).sum::<f64>() / n as f64;
                // A constant input gets weight 0 anyway; keep its scale finite.
                var.sqrt().max(1e-9)
            })
            .collect();
        // Standardised design with a leading 1 for the bias.
        let x: Vec<[f64; N_INPUTS + 1]> = rows
            .iter()
            .map(|r| {
                let mut v = [1.0; N_INPUTS + 1];
                for i in 0..N_INPUTS {
                    v[i + 1] = (r[i] - mean[i]) / scale[i];
                }
                v
            })
            .collect();
        let mut w = [0.0; N_INPUTS + 1];
        for _ in 0..FIT_STEPS {
            let mut grad = [0.0; N_INPUTS + 1];
            let mut hess = [[0.0; N_INPUTS + 1]; N_INPUTS + 1];
            for (xi, &yi) in x.iter().zip(labels) {
                let p = sigmoid(xi.iter().zip(&w).map(|(a, b)| a * b).sum());
                let r = p * (1.0 - p);
                for a in 0..=N_INPUTS {
                    grad[a] += (p - f64::from(u8::from(yi))) * xi[a];
                    for b in 0..=N_INPUTS {
                        hess[a][b] += r * xi[a] * xi[b];
                    }
                }
            }
            for a in 1..=N_INPUTS {
                grad[a] += l2 * w[a];
                hess[a][a] += l2;
            }
            let step = solve(hess, grad)?;
            let mut largest = 0.0f64;
            for a in 0..=N_INPUTS {
                w[a] -= step[a];
                largest = largest.max(step[a].abs());
            }
            if largest < 1e-10 {
                break;
            }
        }
        let combination = MalignancyCombination {
            inputs: INPUTS.iter().map(|s| s.to_string()).collect(),
            mean,
            scale,
            weights: w[1..].to_vec(),
            bias: w[0],
            l2,
            temperature: 1.0,
        };
        combination.check().ok().map(|()| combination)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` when singular.
fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (below, row) in lower.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[col + 1 + below] -= f * b[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let s: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// `p_malignant` as shipped: the combination's where there is one, else the CNN's own.
pub fn shipped_p_malignant(
    combination: Option<&MalignancyCombination>,
    p_cnn: f32,
    m: &Measurement,
) -> f32 {
    combination.map_or(p_cnn, |c| c.p_malignant(p_cnn, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows whose label follows the second input (the diameter) and nothing else.
    fn rows() -> (Vec<[f64; N_INPUTS]>, Vec<bool>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for n in 0..200u32 {
            let mut r = [0.0; N_INPUTS];
            for (i, v) in r.iter_mut().enumerate() {
                // Deterministic scatter.
                *v = f64::from((n * 37 + i as u32 * 101) % 97) / 97.0;
            }
            r[1] = f64::from(n) / 200.0 * 3.0;
            labels.push(r[1] + 0.4 * (f64::from(n % 7) / 7.0 - 0.5) > 1.5);
            rows.push(r);
        }
        (rows, labels)
    }

    #[test]
    fn the_fit_finds_the_input_that_decides() {
        let (rows, labels) = rows();
        let c = MalignancyCombination::fit(&rows, &labels, 1.0).expect("fits");
        c.check().expect("valid");
        let largest = (0..N_INPUTS)
            .max_by(|&a, &b| c.weights[a].abs().total_cmp(&c.weights[b].abs()))
            .unwrap_or(0);
        assert_eq!(largest, 1, "{:?}", c.weights);
        let correct = rows
            .iter()
            .zip(&labels)
            .filter(|(r, l)| (c.probability(r) > 0.5) == **l)
            .count();
        assert!(correct >= 190, "{correct} of 200");
    }

    #[test]
    fn the_temperature_divides_the_logit() {
        let (rows, labels) = rows();
        let mut c = MalignancyCombination::fit(&rows, &labels, 1.0).expect("fits");
        assert_eq!(c.temperature, 1.0);
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let before = logit(c.probability(&rows[150]));
        c.temperature = 0.5;
        let after = logit(c.probability(&rows[150]));
        assert!((after - 2.0 * before).abs() < 1e-9, "{before} {after}");
        // A manifest written before the temperature reads as none.
        let mut json = serde_json::to_value(&c).expect("serialises");
        json.as_object_mut().map(|o| o.remove("temperature"));
        let read = MalignancyCombination::from_manifest(&json).expect("reads");
        assert_eq!(read.temperature, 1.0);
        for bad in [0.0, -1.0, f64::NAN] {
            c.temperature = bad;
            assert!(c.check().is_err(), "temperature {bad}");
        }
    }

    #[test]
    fn one_label_only_cannot_be_fitted() {
        let (rows, _) = rows();
        assert!(MalignancyCombination::fit(&rows, &vec![true; rows.len()], 1.0).is_none());
    }

    #[test]
    fn a_combination_for_other_inputs_is_refused() {
        let (rows, labels) = rows();
        let mut c = MalignancyCombination::fit(&rows, &labels, 1.0).expect("fits");
        c.inputs[3] = "something else".into();
        assert!(matches!(c.check(), Err(CombinationError::Inputs { .. })));
        c.inputs = INPUTS.iter().map(|s| s.to_string()).collect();
        let json = serde_json::to_value(&c).expect("serialises");
        assert_eq!(MalignancyCombination::from_manifest(&json), Ok(c.clone()));
        c.weights.pop();
        assert_eq!(c.check(), Err(CombinationError::Length(N_INPUTS - 1)));
        let json = serde_json::to_value(&c).expect("serialises");
        assert!(MalignancyCombination::from_manifest(&json).is_err());
        assert!(matches!(
            MalignancyCombination::from_manifest(&serde_json::json!({"bias": 1})),
            Err(CombinationError::Unreadable(_))
        ));
    }
}
