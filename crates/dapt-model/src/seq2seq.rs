//! The encoder-decoder (T5) wiring of the shared layers: a relative position bias,
//! attention with it and without the `1/sqrt(d)` scale, cross-attention over the encoder's
//! output, and the two stacks, as transformers' `modeling_t5.py` computes them.
//!
//! - Relative position bias (`T5Attention._relative_position_bucket`): the key-minus-query
//!   distance goes to one of `buckets` buckets, exact for small distances and logarithmic
//!   up to `max_distance`; the encoder's are bidirectional (half the buckets for keys to
//!   the right), the decoder's unidirectional. A learned `[buckets, heads]` table gives a
//!   `[1, H, Tq, Tk]` bias, computed once per stack and added to every layer's scores.
//! - Blocks are pre-norm: `x += self_attention(norm(x))`, in the decoder
//!   `x += cross_attention(norm(x), encoder_output)`, then `x += mlp(norm(x))`; each stack
//!   ends with its final norm. Cross-attention has no position bias.
//!
//! Attention is composed from burn's operations (the fused kernel has neither the bias nor
//! the unscaled scores); the layers, norms and MLPs are the ones every family uses.

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::model::{Block, Decoder, Heads, apply};

/// A learned relative position bias (T5).
#[derive(Module, Debug)]
pub struct RelativeBias {
    /// `[buckets, heads]`.
    pub embedding: Embedding,
    #[module(skip)]
    pub bidirectional: bool,
    #[module(skip)]
    pub max_distance: usize,
}

impl RelativeBias {
    pub(crate) fn new(embedding: Embedding, bidirectional: bool, max_distance: usize) -> Self {
        Self {
            embedding,
            bidirectional,
            max_distance,
        }
    }

    fn buckets(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    /// `[1, H, queries, keys]`: the bias of key `j` for query `i`.
    fn bias(&self, queries: usize, keys: usize) -> Tensor<4> {
        let device = self.embedding.weight.device();
        let heads = self.embedding.weight.dims()[1];
        let ids: Vec<i64> = (0..queries)
            .flat_map(|i| {
                (0..keys).map(move |j| {
                    bucket(
                        j as i64 - i as i64,
                        self.bidirectional,
                        self.buckets(),
                        self.max_distance,
                    ) as i64
                })
            })
            .collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [queries, keys]), &device);
        // [Tq, Tk, H] -> [1, H, Tq, Tk]
        self.embedding
            .forward(ids)
            .reshape([queries, keys, heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }
}

/// T5's bucket of relative position `relative` (key minus query).
pub(crate) fn bucket(
    relative: i64,
    bidirectional: bool,
    buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = buckets;
    let mut offset = 0;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            offset = buckets;
        }
        relative.unsigned_abs() as usize
    } else {
        (-relative).max(0) as usize
    };
    let exact = buckets / 2;
    if distance < exact {
        return offset + distance;
    }
    // As transformers: the log in float32, truncated.
    let scaled = ((distance as f32 / exact as f32).ln() / (max_distance as f32 / exact as f32).ln()
        * (buckets - exact) as f32) as usize;
    offset + (exact + scaled).min(buckets - 1)
}

/// Attention of a decoder block over the encoder's output.
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub query: Linear,
    /// Keys then values, `[d, 2·n_head·head_dim]`.
    pub key_value: Linear,
    pub output: Linear,
    #[module(skip)]
    pub heads: Heads,
}

/// `[B, T, H·hd]` -> `[B, H, T, hd]`.
fn split_heads(x: Tensor<3>, heads: Heads) -> Tensor<4> {
    let [batch, len, _] = x.dims();
    x.reshape([batch, len, heads.n_head, heads.head_dim])
        .swap_dims(1, 2)
}

/// `softmax(q kᵀ + bias, masked causally when asked) v`, unscaled (T5), heads merged back.
fn attend(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    bias: Option<&Tensor<4>>,
    causal: bool,
) -> Tensor<3> {
    let [batch, heads, queries, head_dim] = query.dims();
    let keys = key.dims()[2];
    let mut scores = query.matmul(key.swap_dims(2, 3));
    if let Some(bias) = bias {
        scores = scores + bias.clone();
    }
    if causal {
        let device = scores.device();
        let masked: Vec<bool> = (0..queries)
            .flat_map(|i| (0..keys).map(move |j| j > i))
            .collect();
        let mask =
            Tensor::<4, Bool>::from_data(TensorData::new(masked, [1, 1, queries, keys]), &device)
                .expand([batch, heads, queries, keys]);
        scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    }
    softmax(scores, 3)
        .matmul(value)
        .swap_dims(1, 2)
        .reshape([batch, queries, heads * head_dim])
}

impl Block {
    /// A T5 block: self-attention with `bias`, cross-attention over `encoded` where the
    /// block has it, then the MLP; each sublayer pre-normed and added back.
    fn forward_t5(&self, x: Tensor<3>, bias: &Tensor<4>, encoded: Option<&Tensor<3>>) -> Tensor<3> {
        let attention = &self.attention;
        let heads = attention.heads;
        let qkv = apply(&attention.qkv, self.attention_norm.forward(x.clone()));
        let (q_width, kv_width) = (heads.q_width(), heads.kv_width());
        let query = split_heads(qkv.clone().narrow(2, 0, q_width), heads);
        let key = split_heads(qkv.clone().narrow(2, q_width, kv_width), heads);
        let value = split_heads(qkv.narrow(2, q_width + kv_width, kv_width), heads);
        let context = attend(query, key, value, Some(bias), attention.causal);
        let mut x = x + self.dropout.forward(apply(&attention.output, context));
        if let (Some(norm), Some(cross), Some(encoded)) =
            (&self.cross_norm, &self.cross_attention, encoded)
        {
            let query = split_heads(apply(&cross.query, norm.forward(x.clone())), cross.heads);
            let kv = apply(&cross.key_value, encoded.clone());
            let width = cross.heads.q_width();
            let key = split_heads(kv.clone().narrow(2, 0, width), cross.heads);
            let value = split_heads(kv.narrow(2, width, width), cross.heads);
            let context = attend(query, key, value, None, false);
            x = x + self.dropout.forward(apply(&cross.output, context));
        }
        x.clone()
            + self
                .dropout
                .forward(self.mlp.forward(self.mlp_norm.forward(x)))
    }
}

impl Decoder {
    /// The encoder's output `[B, T, d]` (after its final norm) for `ids [B, T]` (T5).
    pub fn encode(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, len] = ids.dims();
        let bias = self
            .encoder_position_bias
            .as_ref()
            .expect("an encoder-decoder has an encoder position bias")
            .bias(len, len);
        let mut x = self.dropout.forward(self.token_embedding.forward(ids));
        for block in &self.blocks {
            x = block.forward_t5(x, &bias, None);
        }
        let x = match &self.final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        self.dropout.forward(x)
    }

    /// Logits `[B, Td, vocab]` of the decoder reading `decoder_ids [B, Td]` (its first id the
    /// start token) over the encoding of `encoder_ids [B, Te]` (T5's forward pass).
    pub fn forward_seq2seq(
        &self,
        encoder_ids: Tensor<2, Int>,
        decoder_ids: Tensor<2, Int>,
    ) -> Tensor<3> {
        let encoded = self.encode(encoder_ids);
        let [_, len] = decoder_ids.dims();
        let bias = self
            .decoder_position_bias
            .as_ref()
            .expect("an encoder-decoder has a decoder position bias")
            .bias(len, len);
        let mut x = self
            .dropout
            .forward(self.token_embedding.forward(decoder_ids));
        for block in &self.decoder_blocks {
            x = block.forward_t5(x, &bias, Some(&encoded));
        }
        let x = match &self.decoder_final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        self.logits(self.dropout.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, T5Config};
    use crate::model::ids_tensor;

    /// transformers' own buckets (8 buckets, max distance 20) for relative positions
    /// -24..=24, from `T5Attention._relative_position_bucket`.
    #[test]
    fn buckets_equal_transformers_including_the_clamp() {
        let bidirectional = [
            3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 1, 0, 5, 6, 6, 6,
            6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        ];
        let unidirectional = [
            7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 5, 5, 5, 4, 4, 3, 2, 1, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        for (k, relative) in (-24i64..=24).enumerate() {
            assert_eq!(
                bucket(relative, true, 8, 20),
                bidirectional[k],
                "{relative}"
            );
            assert_eq!(
                bucket(relative, false, 8, 20),
                unidirectional[k],
                "{relative}"
            );
        }
    }

    #[test]
    fn the_decoder_is_causal_and_the_encoder_sees_everything() {
        let device = Device::flex();
        let model = ModelConfig::T5(T5Config {
            vocab_size: 30,
            n_layer: 1,
            n_decoder_layer: 1,
            n_head: 2,
            d_model: 8,
            d_kv: 4,
            d_ff: 12,
            context: 16,
            relative_buckets: 8,
            relative_max_distance: 20,
            ..T5Config::default()
        })
        .init(3, &device)
        .unwrap();
        let encoder = ids_tensor(&[3, 4, 5, 6], 1, 4, &device);
        let logits = |enc: Tensor<2, Int>, dec: &[u32]| {
            model
                .forward_seq2seq(enc, ids_tensor(dec, 1, dec.len(), &device))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let a = logits(encoder.clone(), &[0, 7, 8]);
        let b = logits(encoder.clone(), &[0, 7, 9]);
        assert_eq!(a.len(), 3 * 30);
        assert_eq!(
            a[..60],
            b[..60],
            "a later decoder token changed earlier logits"
        );
        assert_ne!(a[60..], b[60..]);
        // Every decoder position reads the whole input: changing its last token moves all.
        let c = logits(ids_tensor(&[3, 4, 5, 9], 1, 4, &device), &[0, 7, 8]);
        assert!(a[..30].iter().zip(&c[..30]).all(|(x, y)| x != y));
    }
}
