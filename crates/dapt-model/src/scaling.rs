//! Compute budgets by the Chinchilla rules (Hoffmann et al. 2022): training FLOPs ≈ 6·N·D,
//! compute-optimal data ≈ 20 tokens per parameter, and the fitted loss
//! L(N, D) = E + A/N^α + B/D^β with E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28.
//!
//! N counts every trainable parameter (embeddings included, as Chinchilla does). The fitted
//! loss is in nats per token of *their* tokenizer and data: compare it between configs, not
//! with our measured losses.

use serde::{Deserialize, Serialize};

/// Tokens per parameter at the compute-optimal point.
pub const CHINCHILLA_TOKENS_PER_PARAM: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComputeBudget {
    pub params: u64,
    pub tokens: u64,
    /// 6·N·D.
    pub flops: f64,
    /// 20·N.
    pub optimal_tokens: u64,
    /// `tokens / optimal_tokens`.
    pub fraction_of_optimal: f64,
    /// L(N, D), nats per token.
    pub predicted_loss: f64,
}

impl ComputeBudget {
    pub fn new(params: u64, tokens: u64) -> Self {
        let (n, d) = (params as f64, tokens as f64);
        let optimal_tokens = (CHINCHILLA_TOKENS_PER_PARAM * n).round() as u64;
        Self {
            params,
            tokens,
            flops: 6.0 * n * d,
            optimal_tokens,
            fraction_of_optimal: d / optimal_tokens.max(1) as f64,
            predicted_loss: predicted_loss(n, d),
        }
    }
}

/// Chinchilla's fitted L(N, D) (approach 3), nats per token.
pub fn predicted_loss(params: f64, tokens: f64) -> f64 {
    1.69 + 406.4 / params.powf(0.34) + 410.7 / tokens.powf(0.28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinchilla_70b_on_1_4t_tokens_matches_the_paper() {
        // Chinchilla itself: 70B parameters, 1.4T tokens, ~5.8e23 FLOPs, optimal at 20 tok/param.
        let budget = ComputeBudget::new(70_000_000_000, 1_400_000_000_000);
        assert!((budget.flops - 5.88e23).abs() / 5.88e23 < 0.01);
        assert_eq!(budget.optimal_tokens, 1_400_000_000_000);
        assert!((budget.fraction_of_optimal - 1.0).abs() < 1e-12);
        // L = 1.69 + 406.4/70e9^0.34 + 410.7/1.4e12^0.28 ≈ 1.94
        assert!((budget.predicted_loss - 1.937).abs() < 0.01, "{budget:?}");
    }

    #[test]
    fn more_data_or_parameters_lower_the_predicted_loss() {
        assert!(predicted_loss(1e6, 2e7) < predicted_loss(1e6, 1e7));
        assert!(predicted_loss(2e6, 1e7) < predicted_loss(1e6, 1e7));
    }
}
