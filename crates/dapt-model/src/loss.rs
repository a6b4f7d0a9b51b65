//! Next-token cross-entropy, per token or reduced.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Negative log-likelihood in nats of each target under `logits`: `[B, T, V]`, `[B, T]` -> `[B, T]`.
pub fn per_token_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let log_probs = log_softmax(logits, 2);
    log_probs
        .gather(2, targets.unsqueeze_dim(2))
        .squeeze_dim::<2>(2)
        .neg()
}

/// Mean token NLL (the training loss), shape `[1]`.
pub fn mean_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    per_token_nll(logits, targets).mean()
}

/// Summed token NLL (for bits per byte), shape `[1]`.
pub fn sum_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    per_token_nll(logits, targets).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids_tensor;

    #[test]
    fn nll_of_known_distribution() {
        let device = Device::flex();
        // One position, vocab 2: logits (0, ln 3) -> p = (1/4, 3/4).
        let logits =
            Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 3f32.ln()], [1, 1, 2]), &device);
        let targets = ids_tensor(&[0], 1, 1, &device);
        let nll: f32 = sum_nll(logits.clone(), targets.clone()).into_scalar();
        assert!((nll - 4f32.ln()).abs() < 1e-6, "{nll}");
        let mean: f32 = mean_nll(logits, targets).into_scalar();
        assert!((mean - 4f32.ln()).abs() < 1e-6, "{mean}");
    }
}
