//! A linear probe: multinomial logistic regression on frozen features.
//!
//! Features are standardised with the training set's mean and standard deviation; the loss is
//! the mean cross-entropy plus `l2/2 · ‖W‖²` (the bias is not penalised). It is minimised by
//! FISTA (Nesterov-accelerated full-batch gradient descent) with step `1/L`, where `L` bounds the
//! gradient's Lipschitz constant: `½ · λmax(X̃ᵀX̃/n) + l2` (Böhning's bound on the softmax
//! Hessian; `λmax` by power iteration on the bias-augmented design `X̃`). Every operation runs in
//! a fixed order in f64, so a fit is a pure function of its inputs.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// L2 penalty on the weights (of standardised features).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Gradient steps.
    #[serde(default = "default_iterations")]
    pub iterations: usize,
}

fn default_l2() -> f64 {
    1e-3
}

fn default_iterations() -> usize {
    500
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            l2: default_l2(),
            iterations: default_iterations(),
        }
    }
}

/// A fitted probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearProbe {
    pub classes: usize,
    pub mean: Vec<f64>,
    /// 1 / standard deviation (1 for a constant feature).
    pub inv_std: Vec<f64>,
    /// `classes` rows of `features + 1` values, the last one the bias.
    pub weights: Vec<Vec<f64>>,
    /// Training loss (mean cross-entropy + penalty) after the last step.
    pub final_loss: f64,
}

impl LinearProbe {
    /// Fits on `features` (rows of equal length) with `labels` in `0..classes`.
    pub fn fit(
        features: &[Vec<f32>],
        labels: &[usize],
        classes: usize,
        config: &ProbeConfig,
    ) -> Result<Self> {
        ensure!(
            !features.is_empty(),
            "probe: no training examples to fit on"
        );
        ensure!(
            features.len() == labels.len(),
            "probe: {} feature rows for {} labels",
            features.len(),
            labels.len()
        );
        ensure!(classes >= 2, "probe: needs at least two classes");
        ensure!(
            labels.iter().all(|&l| l < classes),
            "probe: a label is outside 0..{classes}"
        );
        ensure!(config.l2 >= 0.0, "probe: l2 must not be negative");
        let d = features[0].len();
        ensure!(
            features.iter().all(|f| f.len() == d),
            "probe: feature rows differ in length"
        );
        let n = features.len();
        let mut mean = vec![0.0; d];
        for row in features {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0; d];
        for row in features {
            for ((v, &x), m) in var.iter_mut().zip(row).zip(&mean) {
                let diff = f64::from(x) - m;
                *v += diff * diff;
            }
        }
        let inv_std: Vec<f64> = var
            .iter()
            .map(|v| {
                let std = (v / n as f64).sqrt();
                if std > 1e-12 { 1.0 / std } else { 1.0 }
            })
            .collect();
        let mut probe = LinearProbe {
            classes,
            mean,
            inv_std,
            weights: vec![vec![0.0; d + 1]; classes],
            final_loss: f64::NAN,
        };
        // Design matrix with a trailing 1 for the bias.
        let x: Vec<Vec<f64>> = features.iter().map(|f| probe.augmented(f)).collect();
        let lipschitz = 0.5 * largest_eigenvalue(&x) + config.l2;
        let step = 1.0 / (lipschitz * 1.05);

        let mut w = probe.weights.clone();
        let mut y = w.clone();
        let mut t = 1.0f64;
        for _ in 0..config.iterations {
            let (_, grad) = loss_and_gradient(&x, labels, &y, config.l2);
            let w_next: Vec<Vec<f64>> = y
                .iter()
                .zip(&grad)
                .map(|(yr, gr)| yr.iter().zip(gr).map(|(a, g)| a - step * g).collect())
                .collect();
            let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            let momentum = (t - 1.0) / t_next;
            y = w_next
                .iter()
                .zip(&w)
                .map(|(new, old)| {
                    new.iter()
                        .zip(old)
                        .map(|(a, b)| a + momentum * (a - b))
                        .collect()
                })
                .collect();
            w = w_next;
            t = t_next;
        }
        probe.final_loss = loss_and_gradient(&x, labels, &w, config.l2).0;
        probe.weights = w;
        Ok(probe)
    }

    fn augmented(&self, features: &[f32]) -> Vec<f64> {
        let mut row: Vec<f64> = features
            .iter()
            .zip(&self.mean)
            .zip(&self.inv_std)
            .map(|((&x, m), s)| (f64::from(x) - m) * s)
            .collect();
        row.push(1.0);
        row
    }

    /// Class scores (logits) of one feature row.
    pub fn scores(&self, features: &[f32]) -> Vec<f64> {
        let x = self.augmented(features);
        self.weights.iter().map(|w| dot(w, &x)).collect()
    }

    /// The highest-scoring class of each row (ties: the lowest class).
    pub fn predict(&self, features: &[Vec<f32>]) -> Vec<usize> {
        features.iter().map(|f| argmax(&self.scores(f))).collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Index of the first maximum.
pub(crate) fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Mean cross-entropy + `l2/2·‖W‖²` (bias excluded) and its gradient.
fn loss_and_gradient(
    x: &[Vec<f64>],
    labels: &[usize],
    w: &[Vec<f64>],
    l2: f64,
) -> (f64, Vec<Vec<f64>>) {
    let n = x.len() as f64;
    let d1 = x[0].len();
    let mut grad = vec![vec![0.0; d1]; w.len()];
    let mut loss = 0.0;
    let mut probs = vec![0.0; w.len()];
    for (row, &label) in x.iter().zip(labels) {
        let mut max = f64::NEG_INFINITY;
        for (p, wc) in probs.iter_mut().zip(w) {
            *p = dot(wc, row);
            max = max.max(*p);
        }
        let mut sum = 0.0;
        for p in probs.iter_mut() {
            *p = (*p - max).exp();
            sum += *p;
        }
        loss += sum.ln() + max - (dot(&w[label], row));
        for (c, (p, g)) in probs.iter().zip(grad.iter_mut()).enumerate() {
            let coefficient = p / sum - if c == label { 1.0 } else { 0.0 };
            for (gj, xj) in g.iter_mut().zip(row) {
                *gj += coefficient * xj;
            }
        }
    }
    loss /= n;
    for (g, wc) in grad.iter_mut().zip(w) {
        for (j, (gj, wj)) in g.iter_mut().zip(wc).enumerate() {
            *gj /= n;
            if j + 1 < d1 {
                *gj += l2 * wj;
            }
        }
        loss += 0.5 * l2 * wc[..d1 - 1].iter().map(|v| v * v).sum::<f64>();
    }
    (loss, grad)
}

/// Largest eigenvalue of `XᵀX / n` by power iteration from the all-ones vector.
fn largest_eigenvalue(x: &[Vec<f64>]) -> f64 {
    let n = x.len() as f64;
    let d = x[0].len();
    let mut v = vec![1.0 / (d as f64).sqrt(); d];
    let mut eigenvalue = 0.0;
    for _ in 0..100 {
        let mut next = vec![0.0; d];
        for row in x {
            let projection = dot(row, &v);
            for (nj, xj) in next.iter_mut().zip(row) {
                *nj += projection * xj;
            }
        }
        next.iter_mut().for_each(|value| *value /= n);
        let norm = dot(&next, &next).sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let converged = (norm - eigenvalue).abs() <= 1e-9 * norm;
        eigenvalue = norm;
        v = next.into_iter().map(|value| value / norm).collect();
        if converged {
            break;
        }
    }
    eigenvalue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{classification_metrics, majority_class};

    /// Small deterministic generator for test data.
    fn lcg(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 11) as f64 / (1u64 << 53) as f64) as f32
    }

    /// Three Gaussian-ish blobs in 8 dimensions (only the first 2 informative), unbalanced so
    /// the majority baseline is not trivially beaten at chance.
    fn blobs(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut state = seed;
        let centres = [[0.0f32, 0.0], [3.0, 0.0], [0.0, 3.0]];
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let label = match i % 10 {
                0..=5 => 0,
                6..=7 => 1,
                _ => 2,
            };
            let mut row: Vec<f32> = (0..8).map(|_| (lcg(&mut state) - 0.5) * 2.0).collect();
            row[0] += centres[label][0] * 2.0 + 100.0; // large offset: standardisation matters
            row[1] = row[1] * 0.01 + centres[label][1] * 0.01; // tiny scale
            features.push(row);
            labels.push(label);
        }
        (features, labels)
    }

    #[test]
    fn probe_beats_the_majority_baseline_on_separable_data() {
        let (train_x, train_y) = blobs(300, 1);
        let (test_x, test_y) = blobs(200, 2);
        let probe = LinearProbe::fit(&train_x, &train_y, 3, &ProbeConfig::default()).unwrap();
        let predicted = probe.predict(&test_x);
        let probe_metrics = classification_metrics(&test_y, &predicted, 3);
        let majority = majority_class(&train_y, 3);
        let baseline = classification_metrics(&test_y, &vec![majority; test_y.len()], 3);
        assert!(
            probe_metrics.accuracy > 0.97,
            "probe accuracy {}",
            probe_metrics.accuracy
        );
        assert!(probe_metrics.macro_f1 > 0.95);
        assert!((baseline.accuracy - 0.6).abs() < 1e-9);
        assert!(probe_metrics.accuracy > baseline.accuracy + 0.3);
        assert!(probe_metrics.macro_f1 > baseline.macro_f1 + 0.5);
    }

    #[test]
    fn fit_is_deterministic_and_descends() {
        let (x, y) = blobs(100, 3);
        let short = LinearProbe::fit(
            &x,
            &y,
            3,
            &ProbeConfig {
                l2: 1e-2,
                iterations: 5,
            },
        )
        .unwrap();
        let a = LinearProbe::fit(&x, &y, 3, &ProbeConfig::default()).unwrap();
        let b = LinearProbe::fit(&x, &y, 3, &ProbeConfig::default()).unwrap();
        assert_eq!(a, b);
        assert!(a.final_loss < (3f64).ln(), "below the uniform loss");
        let long_l2 = LinearProbe::fit(
            &x,
            &y,
            3,
            &ProbeConfig {
                l2: 1e-2,
                iterations: 500,
            },
        )
        .unwrap();
        assert!(long_l2.final_loss < short.final_loss);
    }

    #[test]
    fn constant_features_and_bad_inputs() {
        let x = vec![
            vec![1.0f32, 0.0],
            vec![1.0, 1.0],
            vec![1.0, 0.0],
            vec![1.0, 1.0],
        ];
        let y = vec![0, 1, 0, 1];
        let probe = LinearProbe::fit(&x, &y, 2, &ProbeConfig::default()).unwrap();
        assert_eq!(probe.predict(&x), y);
        assert!(LinearProbe::fit(&x, &[0, 1, 0], 2, &ProbeConfig::default()).is_err());
        assert!(LinearProbe::fit(&x, &[0, 1, 0, 5], 2, &ProbeConfig::default()).is_err());
        assert!(LinearProbe::fit(&[], &[], 2, &ProbeConfig::default()).is_err());
    }
}
