//! Decoder-only GPT: learned token + position embeddings, pre-LayerNorm blocks with causal
//! multi-head self-attention and a 4x GELU MLP, final LayerNorm, output head tied to the token
//! embedding (unless configured otherwise).

use anyhow::{Result, ensure};
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

use crate::attention::causal_self_attention;
use crate::config::GptConfig;
use crate::gelu::gelu;
use crate::layer_norm::layer_norm;
use crate::linear::linear;
use crate::rng::SplitMix64;

/// GPT-2 initialisation scale for weights and embeddings.
const INIT_STD: f64 = 0.02;
/// PyTorch's and burn's default. `LayerNorm` keeps its epsilon private, so the fused layer
/// norm takes it from here, as does every norm built below.
const LAYER_NORM_EPSILON: f64 = 1e-5;

#[derive(Module, Debug)]
pub struct Gpt {
    pub token_embedding: Embedding,
    pub position_embedding: Embedding,
    pub blocks: Vec<Block>,
    pub final_norm: LayerNorm,
    /// Present only when the head is not tied to `token_embedding`.
    pub lm_head: Option<Linear>,
    pub dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Block {
    pub attention_norm: LayerNorm,
    pub attention: CausalSelfAttention,
    pub mlp_norm: LayerNorm,
    pub mlp: Mlp,
    pub dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Fused query/key/value projection, output columns ordered (q|k|v, head, head_dim).
    pub qkv: Linear,
    pub output: Linear,
    pub n_head: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub expand: Linear,
    pub contract: Linear,
}

/// Builds parameters from one host RNG stream in a fixed order, so a seed names one model.
struct Initializer<'a> {
    rng: SplitMix64,
    device: &'a Device,
}

impl Initializer<'_> {
    fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Param<Tensor<D>> {
        let values = self.rng.normal_vec(shape.iter().product(), std);
        Param::from_data(TensorData::new(values, shape), self.device)
    }

    fn constant(&mut self, len: usize, value: f32) -> Param<Tensor<1>> {
        Param::from_data(TensorData::new(vec![value; len], [len]), self.device)
    }

    fn linear(&mut self, d_input: usize, d_output: usize, std: f64) -> Linear {
        Linear {
            weight: self.normal([d_input, d_output], std),
            bias: Some(self.constant(d_output, 0.0)),
        }
    }

    fn embedding(&mut self, count: usize, d_model: usize) -> Embedding {
        Embedding {
            weight: self.normal([count, d_model], INIT_STD),
        }
    }

    fn layer_norm(&mut self, d_model: usize) -> LayerNorm {
        // The parameters are set explicitly (gamma 1, beta 0).
        let mut norm = LayerNormConfig::new(d_model)
            .with_epsilon(LAYER_NORM_EPSILON)
            .init(self.device);
        norm.gamma = self.constant(d_model, 1.0);
        norm.beta = Some(self.constant(d_model, 0.0));
        norm
    }
}

impl GptConfig {
    /// A freshly initialised model (GPT-2 scheme: N(0, 0.02), residual projections scaled by
    /// 1/sqrt(2·n_layer), zero biases, unit LayerNorm gains). Same seed, same weights.
    pub fn init(&self, seed: u64, device: &Device) -> Result<Gpt> {
        self.validate()?;
        let mut init = Initializer {
            rng: SplitMix64::new(seed),
            device,
        };
        let d = self.d_model;
        let residual_std = INIT_STD / (2.0 * self.n_layer as f64).sqrt();
        let token_embedding = init.embedding(self.vocab_size, d);
        let position_embedding = init.embedding(self.context, d);
        let blocks = (0..self.n_layer)
            .map(|_| Block {
                attention_norm: init.layer_norm(d),
                attention: CausalSelfAttention {
                    qkv: init.linear(d, 3 * d, INIT_STD),
                    output: init.linear(d, d, residual_std),
                    n_head: self.n_head,
                },
                mlp_norm: init.layer_norm(d),
                mlp: Mlp {
                    expand: init.linear(d, 4 * d, INIT_STD),
                    contract: init.linear(4 * d, d, residual_std),
                },
                dropout: DropoutConfig::new(self.dropout).init(),
            })
            .collect();
        let final_norm = init.layer_norm(d);
        let lm_head = (!self.tie_embeddings).then(|| Linear {
            weight: init.normal([d, self.vocab_size], INIT_STD),
            bias: None,
        });
        Ok(Gpt {
            token_embedding,
            position_embedding,
            blocks,
            final_norm,
            lm_head,
            dropout: DropoutConfig::new(self.dropout).init(),
        })
    }
}

impl Gpt {
    pub fn vocab_size(&self) -> usize {
        self.token_embedding.weight.dims()[0]
    }

    /// Maximum sequence length.
    pub fn context(&self) -> usize {
        self.position_embedding.weight.dims()[0]
    }

    pub fn d_model(&self) -> usize {
        self.token_embedding.weight.dims()[1]
    }

    /// Final-LayerNorm hidden states `[B, T, d_model]` for token ids `[B, T]`.
    pub fn hidden_states(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq_len] = ids.dims();
        assert!(
            seq_len <= self.context(),
            "sequence of {seq_len} tokens exceeds the model context of {}",
            self.context()
        );
        let positions = self
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, seq_len)
            .unsqueeze::<3>();
        let mut x = self
            .dropout
            .forward(self.token_embedding.forward(ids) + positions);
        for block in &self.blocks {
            x = block.forward(x);
        }
        normalize(&self.final_norm, x)
    }

    /// Next-token logits `[B, T, vocab]` for token ids `[B, T]`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let hidden = self.hidden_states(ids);
        let [batch, seq_len, d_model] = hidden.dims();
        let flat = hidden.reshape([batch * seq_len, d_model]);
        let logits = match &self.lm_head {
            Some(head) => linear(flat, head.weight.val(), None),
            None => linear(flat, self.token_embedding.weight.val().transpose(), None),
        };
        logits.reshape([batch, seq_len, self.vocab_size()])
    }

    /// Mean of the hidden states over the first `lengths[b]` positions of each row `[B, d_model]`
    /// (features for linear probes). Positions past a row's length are padding: the model is
    /// causal, so they never influence the counted positions.
    pub fn mean_pooled(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> Result<Tensor<2>> {
        let [batch, seq_len] = ids.dims();
        ensure!(
            lengths.len() == batch,
            "mean_pooled: {} lengths for a batch of {batch}",
            lengths.len()
        );
        ensure!(
            lengths.iter().all(|&len| (1..=seq_len).contains(&len)),
            "mean_pooled: every length must be in 1..={seq_len}, got {lengths:?}"
        );
        let device = ids.device();
        let weights: Vec<f32> = lengths
            .iter()
            .flat_map(|&len| {
                (0..seq_len).map(move |t| if t < len { 1.0 / len as f32 } else { 0.0 })
            })
            .collect();
        let weights =
            Tensor::<3>::from_data(TensorData::new(weights, [batch, seq_len, 1]), &device);
        Ok((self.hidden_states(ids) * weights)
            .sum_dim(1)
            .squeeze_dim(1))
    }
}

impl Block {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone()
            + self
                .dropout
                .forward(self.attention.forward(normalize(&self.attention_norm, x)));
        x.clone()
            + self
                .dropout
                .forward(self.mlp.forward(normalize(&self.mlp_norm, x)))
    }
}

impl CausalSelfAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let context = causal_self_attention(apply(&self.qkv, x), self.n_head);
        apply(&self.output, context)
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        apply(&self.contract, gelu(apply(&self.expand, x)))
    }
}

/// `norm` over the last dimension of `x` (fused where the backend allows).
fn normalize(norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    match &norm.beta {
        Some(beta) => layer_norm(x, norm.gamma.val(), beta.val(), LAYER_NORM_EPSILON),
        None => norm.forward(x),
    }
}

/// `layer` over the last dimension of `[B, T, d_in]`, as one `[B·T, d_in]` product.
fn apply(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq_len, d_input] = x.dims();
    let bias = layer.bias.as_ref().map(|bias| bias.val());
    let y = linear(
        x.reshape([batch * seq_len, d_input]),
        layer.weight.val(),
        bias,
    );
    let d_output = y.dims()[1];
    y.reshape([batch, seq_len, d_output])
}

/// Token ids as an `[rows, cols]` int tensor on `device`.
pub fn ids_tensor(ids: &[u32], rows: usize, cols: usize, device: &Device) -> Tensor<2, Int> {
    assert_eq!(ids.len(), rows * cols, "ids do not fill [{rows}, {cols}]");
    let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
    Tensor::from_data(TensorData::new(ids, [rows, cols]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(tie_embeddings: bool) -> GptConfig {
        GptConfig {
            vocab_size: 50,
            n_layer: 2,
            n_head: 2,
            d_model: 16,
            context: 8,
            dropout: 0.0,
            tie_embeddings,
        }
    }

    #[test]
    fn param_count_matches_the_built_model() {
        for tie in [true, false] {
            let config = tiny(tie);
            let model = config.init(0, &Device::flex()).unwrap();
            assert_eq!(model.num_params(), config.param_count(), "tied: {tie}");
        }
    }

    #[test]
    fn logits_have_batch_time_vocab_shape_and_are_causal() {
        let device = Device::flex();
        let model = tiny(true).init(1, &device).unwrap();
        let a = ids_tensor(&[1, 2, 3, 4, 5, 6], 2, 3, &device);
        let b = ids_tensor(&[1, 2, 9, 4, 5, 7], 2, 3, &device);
        let logits_a = model.forward(a);
        assert_eq!(logits_a.dims(), [2, 3, 50]);
        // Changing the last token must not change earlier positions' logits.
        let prefix_a = logits_a.narrow(1, 0, 2).into_data();
        let prefix_b = model.forward(b).narrow(1, 0, 2).into_data();
        prefix_a.assert_approx_eq::<f32>(&prefix_b, burn::tensor::Tolerance::absolute(1e-6));
    }

    #[test]
    fn same_seed_gives_same_weights() {
        let device = Device::flex();
        let ids = ids_tensor(&[3, 1, 4, 1], 1, 4, &device);
        let a = tiny(false).init(5, &device).unwrap().forward(ids.clone());
        let b = tiny(false).init(5, &device).unwrap().forward(ids);
        assert_eq!(a.into_data(), b.into_data());
    }

    #[test]
    fn mean_pooled_ignores_padding() {
        let device = Device::flex();
        let model = tiny(true).init(2, &device).unwrap();
        let padded = model
            .mean_pooled(ids_tensor(&[7, 8, 0, 0], 1, 4, &device), &[2])
            .unwrap();
        let exact = model
            .mean_pooled(ids_tensor(&[7, 8], 1, 2, &device), &[2])
            .unwrap();
        assert_eq!(padded.dims(), [1, 16]);
        padded
            .into_data()
            .assert_approx_eq::<f32>(&exact.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}
