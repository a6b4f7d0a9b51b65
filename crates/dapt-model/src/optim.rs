//! AdamW with decoupled weight decay, global-norm gradient clipping and the warm-up + cosine
//! learning-rate schedule. Written here (not burn-optim) so that the optimizer state is plain
//! tensors by parameter path, saved bit-exactly in checkpoints, and clipping is by the global
//! norm over all parameters (burn's clipping is per parameter tensor).

use anyhow::{Result, ensure};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::params::{ParamTensors, map_params};

mod flex;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay, applied to matrices and embeddings only (not biases or norm gains).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then cosine decay to `min_lr` at
/// `total_steps`, constant after. Steps count from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub peak_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl LrSchedule {
    pub fn lr_at(&self, step: u64) -> f64 {
        if step <= self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.min_lr + (self.peak_lr - self.min_lr) * cosine
    }
}

/// Euclidean norm of all gradients together: one read per flex gradient, composed
/// tensor operations (and one read-back) for the others.
pub(crate) fn global_grad_norm(grads: &ParamTensors) -> f64 {
    let mut total = 0f64;
    let mut elsewhere = Vec::new();
    for grad in grads.values() {
        match flex::sum_of_squares(grad) {
            Some(sum) => total += sum,
            None => elsewhere.push(grad.clone().powf_scalar(2.0).sum()),
        }
    }
    if !elsewhere.is_empty() {
        let sum: f32 = Tensor::cat(elsewhere, 0).sum().into_scalar();
        total += f64::from(sum);
    }
    total.sqrt()
}

/// Factor that brings `norm` down to `max_norm` (1 when already within it or clipping is off).
pub(crate) fn clip_scale(norm: f64, max_norm: Option<f64>) -> f64 {
    match max_norm {
        Some(max_norm) if norm > max_norm => max_norm / norm,
        _ => 1.0,
    }
}

/// Adam moments by parameter path, and the number of updates taken (for bias correction).
#[derive(Debug, Default)]
pub(crate) struct AdamWState {
    pub steps: u64,
    pub first_moment: ParamTensors,
    pub second_moment: ParamTensors,
}

impl AdamWState {
    /// One AdamW update of every parameter that has a gradient; `grad_scale` applies clipping.
    pub(crate) fn step<M: burn::module::Module>(
        &mut self,
        config: &AdamWConfig,
        model: M,
        mut grads: ParamTensors,
        lr: f64,
        grad_scale: f64,
    ) -> Result<M> {
        self.steps += 1;
        let steps = self.steps as i32;
        let mut missing = Vec::new();
        let model = map_params(model, &mut |path, value, rank| {
            let Some(grad) = grads.remove(path) else {
                missing.push(path.to_owned());
                return value;
            };
            let update = Update {
                beta1: config.beta1,
                beta2: config.beta2,
                bias1: 1.0 - config.beta1.powi(steps),
                bias2: 1.0 - config.beta2.powi(steps),
                eps: config.eps,
                lr,
                decay: if rank >= 2 {
                    1.0 - lr * config.weight_decay
                } else {
                    1.0
                },
                grad_scale,
            };
            let first = self.first_moment.remove(path);
            let second = self.second_moment.remove(path);
            let [value, first, second] = update.apply((value, grad, first, second));
            self.first_moment.insert(path.to_owned(), first);
            self.second_moment.insert(path.to_owned(), second);
            value
        });
        ensure!(
            missing.is_empty(),
            "no gradient reached parameters {missing:?}; is the model on an autodiff device?"
        );
        Ok(model)
    }
}

/// A parameter's value and gradient, and its moments (absent before the first step).
type Operands = (Tensor<1>, Tensor<1>, Option<Tensor<1>>, Option<Tensor<1>>);

/// One parameter's AdamW step: the scalars of this step, applied to value, gradient and
/// moments (absent moments are zero).
struct Update {
    beta1: f64,
    beta2: f64,
    /// `1 - beta^t`, the bias corrections.
    bias1: f64,
    bias2: f64,
    eps: f64,
    lr: f64,
    /// The decoupled weight-decay factor `1 - lr * weight_decay` (1 when not decayed).
    decay: f64,
    /// The clipping factor on the gradient.
    grad_scale: f64,
}

impl Update {
    /// `[value, first moment, second moment]` after the step: one pass on flex
    /// ([`flex::apply`]), composed tensor operations elsewhere.
    fn apply(&self, operands: Operands) -> [Tensor<1>; 3] {
        flex::apply(self, operands).unwrap_or_else(|operands| self.composed(*operands))
    }

    fn composed(&self, (value, grad, first, second): Operands) -> [Tensor<1>; 3] {
        let grad = if self.grad_scale == 1.0 {
            grad
        } else {
            grad * self.grad_scale
        };
        let first = match first {
            Some(m) => m * self.beta1 + grad.clone() * (1.0 - self.beta1),
            None => grad.clone() * (1.0 - self.beta1),
        };
        let squared = grad.powf_scalar(2.0);
        let second = match second {
            Some(v) => v * self.beta2 + squared * (1.0 - self.beta2),
            None => squared * (1.0 - self.beta2),
        };
        let denominator = (second.clone() / self.bias2).sqrt() + self.eps;
        let step = (first.clone() / self.bias1) / denominator * self.lr;
        let decayed = if self.decay == 1.0 {
            value
        } else {
            value * self.decay
        };
        [decayed - step, first, second]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> LrSchedule {
        LrSchedule {
            peak_lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            total_steps: 110,
        }
    }

    #[test]
    fn warmup_is_linear_and_cosine_ends_at_min() {
        let s = schedule();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s.lr_at(1), 1e-4));
        assert!(close(s.lr_at(5), 5e-4));
        assert!(close(s.lr_at(10), 1e-3));
        // Halfway through the decay the cosine term is 1/2.
        assert!(close(s.lr_at(60), 1e-4 + 0.5 * 9e-4));
        assert!(close(s.lr_at(110), 1e-4));
        assert!(close(s.lr_at(500), 1e-4));
        assert!(s.lr_at(30) > s.lr_at(31));
    }

    #[test]
    fn one_pass_update_equals_the_composed_one() {
        let device = Device::flex();
        let random = || Tensor::<1>::random([5000], burn::tensor::Distribution::Default, &device);
        let update = Update {
            beta1: 0.9,
            beta2: 0.95,
            bias1: 1.0 - 0.9f64.powi(3),
            bias2: 1.0 - 0.95f64.powi(3),
            eps: 1e-8,
            lr: 1e-3,
            decay: 1.0 - 1e-3 * 0.1,
            grad_scale: 0.5,
        };
        let (value, grad, first, second) = (random(), random() - 0.5, random() - 0.5, random());
        for moments in [Some((first, second)), None] {
            let (first, second) = moments.unzip();
            let operands = (value.clone(), grad.clone(), first.clone(), second.clone());
            let Ok(fused) = flex::apply(&update, operands) else {
                panic!("flex tensors take the one-pass update");
            };
            let composed = update.composed((value.clone(), grad.clone(), first, second));
            for (fused, composed) in fused.into_iter().zip(composed) {
                fused.into_data().assert_approx_eq::<f32>(
                    &composed.into_data(),
                    // Relative, but absolute near zero, where the moments cancel.
                    burn::tensor::Tolerance::rel_abs(1e-5, 1e-7),
                );
            }
        }
    }

    #[test]
    fn gradient_norm_in_one_pass_equals_the_composed_sum() {
        let device = Device::flex();
        // Longer than one task's chunk and not a multiple of the lanes.
        let grad = Tensor::<1>::random([40_003], burn::tensor::Distribution::Default, &device);
        let one_pass = flex::sum_of_squares(&grad).expect("flex gradients take one pass");
        let composed: f32 = grad.powf_scalar(2.0).sum().into_scalar();
        assert!(
            (one_pass - f64::from(composed)).abs() < 1e-5 * one_pass,
            "{one_pass} vs {composed}"
        );
    }

    #[test]
    fn clipping_brings_the_global_norm_to_the_bound() {
        let device = Device::flex();
        let mut grads = ParamTensors::new();
        grads.insert("a".into(), Tensor::from_floats([3.0, 0.0], &device));
        grads.insert("b".into(), Tensor::from_floats([4.0], &device));
        let norm = global_grad_norm(&grads);
        assert!((norm - 5.0).abs() < 1e-6);
        let scale = clip_scale(norm, Some(1.0));
        let clipped: ParamTensors = grads
            .into_iter()
            .map(|(path, grad)| (path, grad * scale))
            .collect();
        assert!((global_grad_norm(&clipped) - 1.0).abs() < 1e-6);
        assert_eq!(clip_scale(0.5, Some(1.0)), 1.0);
        assert_eq!(clip_scale(50.0, None), 1.0);
    }
}
