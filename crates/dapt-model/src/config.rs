//! Architecture hyper-parameters of the decoder-only GPT.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Shape of a dapt GPT. Serialised into checkpoints and into the exported `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    /// Maximum sequence length (number of learned positions).
    pub context: usize,
    /// Dropout on embeddings and residual branches; 0 disables it.
    #[serde(default)]
    pub dropout: f64,
    /// Output head shares the token-embedding matrix (GPT-2 style).
    #[serde(default = "default_tie_embeddings")]
    pub tie_embeddings: bool,
}

fn default_tie_embeddings() -> bool {
    true
}

impl GptConfig {
    /// Checks the invariants the model relies on, with a message naming the fix.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("d_model", self.d_model),
            ("context", self.context),
        ] {
            if value == 0 {
                bail!("model config: {name} must be at least 1");
            }
        }
        if !self.d_model.is_multiple_of(self.n_head) {
            bail!(
                "model config: d_model ({}) must be a multiple of n_head ({}); pick d_model = n_head * head_dim",
                self.d_model,
                self.n_head
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!(
                "model config: dropout must be in [0, 1), got {}",
                self.dropout
            );
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }

    /// Number of trainable scalars, counting a tied embedding once.
    pub fn param_count(&self) -> usize {
        let d = self.d_model;
        let layer_norm = 2 * d;
        let attention = (d * 3 * d + 3 * d) + (d * d + d);
        let mlp = (d * 4 * d + 4 * d) + (4 * d * d + d);
        let block = 2 * layer_norm + attention + mlp;
        let embeddings = self.vocab_size * d + self.context * d;
        let untied_head = if self.tie_embeddings {
            0
        } else {
            d * self.vocab_size
        };
        embeddings + self.n_layer * block + layer_norm + untied_head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> GptConfig {
        GptConfig {
            vocab_size: 100,
            n_layer: 2,
            n_head: 2,
            d_model: 8,
            context: 16,
            dropout: 0.0,
            tie_embeddings: true,
        }
    }

    #[test]
    fn serde_defaults_dropout_and_tying() {
        let config: GptConfig = serde_json::from_str(
            r#"{"vocab_size":100,"n_layer":2,"n_head":2,"d_model":8,"context":16}"#,
        )
        .unwrap();
        assert_eq!(config, small());
    }

    #[test]
    fn validate_rejects_heads_that_do_not_divide_width() {
        let config = GptConfig {
            n_head: 3,
            ..small()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("multiple of n_head"), "{message}");
    }

    #[test]
    fn untying_adds_one_output_matrix() {
        let tied = small();
        let untied = GptConfig {
            tie_embeddings: false,
            ..small()
        };
        assert_eq!(
            untied.param_count() - tied.param_count(),
            tied.vocab_size * tied.d_model
        );
    }
}
