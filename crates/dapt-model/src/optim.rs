//! AdamW with decoupled weight decay, global-norm gradient clipping and the warm-up + cosine
//! learning-rate schedule. Written here (not burn-optim) so that the optimizer state is plain
//! tensors by parameter path, saved bit-exactly in checkpoints, and clipping is by the global
//! norm over all parameters (burn's clipping is per parameter tensor).

use anyhow::{Result, ensure};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::params::{ParamTensors, map_params};

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

/// Euclidean norm of all gradients together.
pub(crate) fn global_grad_norm(grads: &ParamTensors) -> f64 {
    let squares: Vec<Tensor<1>> = grads
        .values()
        .map(|grad| grad.clone().powf_scalar(2.0).sum())
        .collect();
    let total: f32 = Tensor::cat(squares, 0).sum().into_scalar();
    f64::from(total).sqrt()
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
        let bias1 = 1.0 - config.beta1.powi(self.steps as i32);
        let bias2 = 1.0 - config.beta2.powi(self.steps as i32);
        let mut missing = Vec::new();
        let model = map_params(model, &mut |path, value, rank| {
            let Some(grad) = grads.remove(path) else {
                missing.push(path.to_owned());
                return value;
            };
            let grad = if grad_scale == 1.0 {
                grad
            } else {
                grad * grad_scale
            };
            let first = match self.first_moment.remove(path) {
                Some(m) => m * config.beta1 + grad.clone() * (1.0 - config.beta1),
                None => grad.clone() * (1.0 - config.beta1),
            };
            let squared = grad.powf_scalar(2.0);
            let second = match self.second_moment.remove(path) {
                Some(v) => v * config.beta2 + squared * (1.0 - config.beta2),
                None => squared * (1.0 - config.beta2),
            };
            let denominator = (second.clone() / bias2).sqrt() + config.eps;
            let update = (first.clone() / bias1) / denominator * lr;
            self.first_moment.insert(path.to_owned(), first);
            self.second_moment.insert(path.to_owned(), second);
            let decayed = if rank >= 2 && config.weight_decay != 0.0 {
                value * (1.0 - lr * config.weight_decay)
            } else {
                value
            };
            decayed - update
        });
        ensure!(
            missing.is_empty(),
            "no gradient reached parameters {missing:?}; is the model on an autodiff device?"
        );
        Ok(model)
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
