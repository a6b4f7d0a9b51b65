//! The transformer every family shares: token embeddings (plus learned positions for GPT
//! and BERT), blocks of self-attention and an MLP, and an output head tied to the
//! embedding unless configured otherwise.
//!
//! The families differ only in the layers' options, chosen from the config:
//!
//! | layer      | GPT (`GptConfig`)                 | Llama (`LlamaConfig`)                        | BERT (`BertConfig`)                       |
//! |------------|-----------------------------------|----------------------------------------------|-------------------------------------------|
//! | positions  | learned embedding                 | rotary, inside attention (`rope.rs`)         | learned, plus segment 0, then a LayerNorm |
//! | norm       | LayerNorm (gain, bias), pre-norm  | RMSNorm (gain), pre-norm                     | LayerNorm, post-norm, no final norm       |
//! | attention  | causal q\|k\|v, biases            | causal, `n_kv_head` k/v heads (GQA), no bias | bidirectional q\|k\|v, biases             |
//! | MLP        | `4d`, GELU (erf or tanh), biases  | gate\|up `2·d_ff`, SwiGLU, no bias           | `d_ff`, GELU, biases                      |
//! | head       | tied (or own) embedding           | tied (or own) embedding                      | dense, GELU, LayerNorm, tied + bias (MLM) |
//!
//! T5 (`T5Config`) is the encoder-decoder made of the same layers: `blocks` are its
//! encoder (bidirectional) and `decoder_blocks` its decoder (causal, each block with a
//! cross-attention over the encoder's output); RMS norms, no biases, unscaled attention
//! with a relative position bias, ReLU or gated-GELU MLP (`seq2seq.rs`).
//!
//! Weights are stored `[d_in, d_out]` (burn's `Linear`); `hf.rs` converts to and from the
//! Hugging Face names and layouts. Generation reuses the same layers with a key/value cache
//! (`generate.rs`).

use anyhow::{Result, ensure};
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, Linear};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, softmax};

use crate::attention::self_attention;
use crate::config::{Activation, BertConfig, GptConfig, LlamaConfig, ModelConfig, T5Config};
use crate::gelu::gelu;
use crate::linear::linear;
use crate::norm::Norm;
use crate::rng::SplitMix64;
use crate::rope::Rope;
use crate::seq2seq::{CrossAttention, RelativeBias};
use crate::swiglu::swiglu;

/// GPT-2 initialisation scale for weights and embeddings.
const INIT_STD: f64 = 0.02;

/// A model of any family: a decoder (GPT, Llama) or an encoder (BERT); the name is the
/// decoders', which came first.
#[derive(Module, Debug)]
pub struct Decoder {
    pub token_embedding: Embedding,
    /// Learned positions (GPT, BERT); `None` when attention rotates positions in (Llama).
    pub position_embedding: Option<Embedding>,
    /// The segment embedding (BERT); its row 0 is added to every position.
    pub token_type_embedding: Option<Embedding>,
    /// The norm of the summed embeddings (BERT).
    pub embedding_norm: Option<Norm>,
    pub blocks: Vec<Block>,
    /// After the last block (pre-norm decoders); post-norm encoders have none.
    pub final_norm: Option<Norm>,
    /// The masked-LM head's dense layer and norm before the output (BERT).
    pub head_transform: Option<HeadTransform>,
    /// Present only when the head is not tied to `token_embedding`.
    pub lm_head: Option<Linear>,
    /// The output's bias (BERT's masked-LM head).
    pub head_bias: Option<Param<Tensor<1>>>,
    /// T5: the encoder's relative position bias (`blocks` are the encoder).
    pub encoder_position_bias: Option<RelativeBias>,
    /// T5: the decoder's blocks, their relative position bias and final norm.
    pub decoder_blocks: Vec<Block>,
    pub decoder_position_bias: Option<RelativeBias>,
    pub decoder_final_norm: Option<Norm>,
    pub dropout: Dropout,
    #[module(skip)]
    pub context: usize,
    /// Learned position `p` is row `p + position_offset` (RoBERTa: 2).
    #[module(skip)]
    pub position_offset: usize,
    /// T5: decoder states are multiplied by this before the output (`d_model^-0.5` when
    /// tied, else 1).
    #[module(skip)]
    pub logit_scale: f64,
}

/// One transformer layer. Pre-norm (decoders): `x + f(norm(x))` per sublayer; post-norm
/// (BERT): `norm(x + f(x))`, where each norm follows its sublayer.
#[derive(Module, Debug)]
pub struct Block {
    pub attention_norm: Norm,
    pub attention: SelfAttention,
    pub mlp_norm: Norm,
    pub mlp: Mlp,
    pub dropout: Dropout,
    #[module(skip)]
    pub post_norm: bool,
    /// T5's decoder blocks: the norm and attention over the encoder's output.
    pub cross_norm: Option<Norm>,
    pub cross_attention: Option<CrossAttention>,
}

/// BERT's head transform: `norm(act(dense(h)))` before the tied output.
#[derive(Module, Debug)]
pub struct HeadTransform {
    pub dense: Linear,
    pub norm: Norm,
    #[module(skip)]
    pub activation: Activation,
}

/// Where the heads lie in the fused projection's `(n_head + 2·n_kv_head)·head_dim` columns:
/// all query heads, then the key heads, then the value heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

impl Heads {
    pub fn q_width(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_width(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    pub fn width(&self) -> usize {
        self.q_width() + 2 * self.kv_width()
    }
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    /// Fused query/key/value projection, output columns ordered as [`Heads`] says.
    pub qkv: Linear,
    pub output: Linear,
    #[module(skip)]
    pub heads: Heads,
    /// Rotary embeddings (Llama); `None` for models with learned positions.
    #[module(skip)]
    pub rope: Option<Rope>,
    /// A position attends to those before it only (decoders), or to all (encoders).
    #[module(skip)]
    pub causal: bool,
}

#[derive(Module, Debug)]
pub struct Mlp {
    /// `d -> d_ff`, or `d -> 2·d_ff` as gate|up for SwiGLU.
    pub expand: Linear,
    pub contract: Linear,
    #[module(skip)]
    pub activation: Activation,
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

    fn linear(&mut self, d_input: usize, d_output: usize, std: f64, bias: bool) -> Linear {
        Linear {
            weight: self.normal([d_input, d_output], std),
            bias: bias.then(|| self.constant(d_output, 0.0)),
        }
    }

    fn embedding(&mut self, count: usize, d_model: usize) -> Embedding {
        Embedding {
            weight: self.normal([count, d_model], INIT_STD),
        }
    }

    /// Unit gain; a zero bias for LayerNorm, none for RMSNorm.
    fn norm(&mut self, d_model: usize, rms: bool, epsilon: f64) -> Norm {
        Norm {
            gamma: self.constant(d_model, 1.0),
            beta: (!rms).then(|| self.constant(d_model, 0.0)),
            epsilon,
        }
    }
}

impl ModelConfig {
    /// A freshly initialised model (GPT-2 scheme: N(0, 0.02), residual projections scaled by
    /// 1/sqrt(2·n_layer), zero biases, unit norm gains). Same seed, same weights.
    pub fn init(&self, seed: u64, device: &Device) -> Result<Decoder> {
        self.validate()?;
        if let Self::T5(c) = self {
            return Ok(init_t5(c, seed, device));
        }
        let shape = self.shape();
        let (rms, epsilon, biases, activation, rope) = match self {
            Self::Gpt(GptConfig {
                activation,
                layer_norm_epsilon,
                ..
            })
            | Self::Bert(BertConfig {
                activation,
                layer_norm_epsilon,
                ..
            }) => (false, *layer_norm_epsilon, true, *activation, None),
            Self::T5(_) => unreachable!("built by init_t5"),
            Self::Llama(LlamaConfig {
                head_dim,
                rope_theta,
                rope_scaling,
                rms_norm_eps,
                ..
            }) => (
                true,
                *rms_norm_eps,
                false,
                Activation::SwiGlu,
                Some(Rope::new(*head_dim, *rope_theta, rope_scaling.as_ref())),
            ),
        };
        let heads = Heads {
            n_head: shape.n_head,
            n_kv_head: shape.n_kv_head,
            head_dim: shape.head_dim,
        };
        let expanded = if activation.is_gated() {
            2 * shape.d_ff
        } else {
            shape.d_ff
        };
        let mut init = Initializer {
            rng: SplitMix64::new(seed),
            device,
        };
        let d = shape.d_model;
        let residual_std = INIT_STD / (2.0 * shape.n_layer as f64).sqrt();
        let (encoder, position_offset, type_vocab_size) = match self {
            Self::Bert(c) => (true, c.position_offset, c.type_vocab_size),
            _ => (false, 0, 0),
        };
        let token_embedding = init.embedding(shape.vocab_size, d);
        let position_embedding = rope
            .is_none()
            .then(|| init.embedding(shape.context + position_offset, d));
        let token_type_embedding = encoder.then(|| init.embedding(type_vocab_size, d));
        let embedding_norm = encoder.then(|| init.norm(d, rms, epsilon));
        let blocks = (0..shape.n_layer)
            .map(|_| Block {
                attention_norm: init.norm(d, rms, epsilon),
                attention: SelfAttention {
                    qkv: init.linear(d, heads.width(), INIT_STD, biases),
                    output: init.linear(heads.q_width(), d, residual_std, biases),
                    heads,
                    rope: rope.clone(),
                    causal: !encoder,
                },
                mlp_norm: init.norm(d, rms, epsilon),
                mlp: Mlp {
                    expand: init.linear(d, expanded, INIT_STD, biases),
                    contract: init.linear(shape.d_ff, d, residual_std, biases),
                    activation,
                },
                dropout: DropoutConfig::new(shape.dropout).init(),
                post_norm: encoder,
                cross_norm: None,
                cross_attention: None,
            })
            .collect();
        let final_norm = (!encoder).then(|| init.norm(d, rms, epsilon));
        let head_transform = encoder.then(|| HeadTransform {
            dense: init.linear(d, d, INIT_STD, true),
            norm: init.norm(d, rms, epsilon),
            activation,
        });
        let lm_head = (!shape.tie_embeddings).then(|| Linear {
            weight: init.normal([d, shape.vocab_size], INIT_STD),
            bias: None,
        });
        let head_bias = encoder.then(|| init.constant(shape.vocab_size, 0.0));
        Ok(Decoder {
            token_embedding,
            position_embedding,
            token_type_embedding,
            embedding_norm,
            blocks,
            final_norm,
            head_transform,
            lm_head,
            head_bias,
            encoder_position_bias: None,
            decoder_blocks: Vec::new(),
            decoder_position_bias: None,
            decoder_final_norm: None,
            dropout: DropoutConfig::new(shape.dropout).init(),
            context: shape.context,
            position_offset,
            logit_scale: 1.0,
        })
    }
}

/// A fresh T5: the encoder in `blocks`, the decoder in `decoder_blocks` (GPT-2's init
/// scheme, as the other families; T5's own scales q by `(d_model·d_kv)^-0.5`).
fn init_t5(c: &T5Config, seed: u64, device: &Device) -> Decoder {
    let mut init = Initializer {
        rng: SplitMix64::new(seed),
        device,
    };
    let d = c.d_model;
    let heads = Heads {
        n_head: c.n_head,
        n_kv_head: c.n_head,
        head_dim: c.d_kv,
    };
    let inner = heads.q_width();
    let expanded = if c.activation.is_gated() {
        2 * c.d_ff
    } else {
        c.d_ff
    };
    let residual_std = INIT_STD / (2.0 * (c.n_layer + c.n_decoder_layer) as f64).sqrt();
    let token_embedding = init.embedding(c.vocab_size, d);
    // A decoder block is causal and attends to the encoder's output too.
    let block = |init: &mut Initializer, decoder: bool| Block {
        attention_norm: init.norm(d, true, c.layer_norm_epsilon),
        attention: SelfAttention {
            qkv: init.linear(d, heads.width(), INIT_STD, false),
            output: init.linear(inner, d, residual_std, false),
            heads,
            rope: None,
            causal: decoder,
        },
        cross_norm: decoder.then(|| init.norm(d, true, c.layer_norm_epsilon)),
        cross_attention: decoder.then(|| CrossAttention {
            query: init.linear(d, inner, INIT_STD, false),
            key_value: init.linear(d, 2 * inner, INIT_STD, false),
            output: init.linear(inner, d, residual_std, false),
            heads,
        }),
        mlp_norm: init.norm(d, true, c.layer_norm_epsilon),
        mlp: Mlp {
            expand: init.linear(d, expanded, INIT_STD, false),
            contract: init.linear(c.d_ff, d, residual_std, false),
            activation: c.activation,
        },
        dropout: DropoutConfig::new(c.dropout).init(),
        post_norm: false,
    };
    let blocks = (0..c.n_layer).map(|_| block(&mut init, false)).collect();
    let encoder_position_bias = Some(RelativeBias::new(
        init.embedding(c.relative_buckets, c.n_head),
        true,
        c.relative_max_distance,
    ));
    let final_norm = Some(init.norm(d, true, c.layer_norm_epsilon));
    let decoder_blocks = (0..c.n_decoder_layer)
        .map(|_| block(&mut init, true))
        .collect();
    let decoder_position_bias = Some(RelativeBias::new(
        init.embedding(c.relative_buckets, c.n_head),
        false,
        c.relative_max_distance,
    ));
    let decoder_final_norm = Some(init.norm(d, true, c.layer_norm_epsilon));
    let lm_head = (!c.tie_embeddings).then(|| Linear {
        weight: init.normal([d, c.vocab_size], INIT_STD),
        bias: None,
    });
    Decoder {
        token_embedding,
        position_embedding: None,
        token_type_embedding: None,
        embedding_norm: None,
        blocks,
        final_norm,
        head_transform: None,
        lm_head,
        head_bias: None,
        encoder_position_bias,
        decoder_blocks,
        decoder_position_bias,
        decoder_final_norm,
        dropout: DropoutConfig::new(c.dropout).init(),
        context: c.context,
        position_offset: 0,
        logit_scale: if c.scale_logits {
            1.0 / (d as f64).sqrt()
        } else {
            1.0
        },
    }
}

/// The keys and values of the positions seen so far, per layer, for generation: each
/// `[B, n_kv_head, T, head_dim]` (keys after rotation).
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    layers: Vec<(Tensor<4>, Tensor<4>)>,
    len: usize,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Decoder {
    pub fn vocab_size(&self) -> usize {
        self.token_embedding.weight.dims()[0]
    }

    /// Maximum sequence length.
    pub fn context(&self) -> usize {
        self.context
    }

    pub fn d_model(&self) -> usize {
        self.token_embedding.weight.dims()[1]
    }

    /// Whether positions see only those before them (decoders) or all (encoders, and
    /// an encoder-decoder's encoder).
    pub fn is_causal(&self) -> bool {
        self.blocks.first().is_none_or(|b| b.attention.causal)
    }

    /// Whether the model is an encoder-decoder (T5).
    pub fn is_seq2seq(&self) -> bool {
        !self.decoder_blocks.is_empty()
    }

    /// The last layer's hidden states `[B, T, d_model]` for token ids `[B, T]` (after the
    /// final norm, where the family has one).
    pub fn hidden_states(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq_len] = ids.dims();
        assert!(
            seq_len <= self.context(),
            "sequence of {seq_len} tokens exceeds the model context of {}",
            self.context()
        );
        if self.is_seq2seq() {
            return self.encode(ids);
        }
        let mut x = self.dropout.forward(self.embed(ids, 0));
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.final_norm(x)
    }

    fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// Token embeddings, plus learned positions `start..` and segment 0 where the model
    /// has them, normed where it norms them.
    fn embed(&self, ids: Tensor<2, Int>, start: usize) -> Tensor<3> {
        let [_, seq_len] = ids.dims();
        let mut x = self.token_embedding.forward(ids);
        if let Some(positions) = &self.position_embedding {
            let rows = positions
                .weight
                .val()
                .narrow(0, start + self.position_offset, seq_len);
            x = x + rows.unsqueeze::<3>();
        }
        if let Some(types) = &self.token_type_embedding {
            x = x + types.weight.val().narrow(0, 0, 1).unsqueeze::<3>();
        }
        match &self.embedding_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// Logits `[B, T, vocab]` for token ids `[B, T]`: of the next token (decoders), of
    /// the token at each position (encoders' masked-LM head).
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.logits(self.hidden_states(ids))
    }

    /// The output head over hidden states `[B, T, d]`.
    pub(crate) fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, seq_len, d_model] = hidden.dims();
        let mut flat = hidden.reshape([batch * seq_len, d_model]);
        if self.logit_scale != 1.0 {
            flat = flat * self.logit_scale;
        }
        if let Some(transform) = &self.head_transform {
            flat = transform.forward(flat);
        }
        let bias = self.head_bias.as_ref().map(|bias| bias.val());
        let logits = match &self.lm_head {
            Some(head) => linear(flat, head.weight.val(), bias),
            None => linear(flat, self.token_embedding.weight.val().transpose(), bias),
        };
        logits.reshape([batch, seq_len, self.vocab_size()])
    }

    /// Logits `[B, T, vocab]` of `ids [B, T]` following the positions in `cache`, which
    /// then holds them too (generation; no dropout).
    pub fn forward_cached(&self, ids: Tensor<2, Int>, cache: &mut KvCache) -> Result<Tensor<3>> {
        let [_, seq_len] = ids.dims();
        let start = cache.len;
        ensure!(
            self.is_causal() && !self.is_seq2seq(),
            "generation needs a decoder; an encoder's positions see the ones after them"
        );
        ensure!(
            start + seq_len <= self.context(),
            "{} positions exceed the model context of {}",
            start + seq_len,
            self.context()
        );
        let mut x = self.embed(ids, start);
        for (i, block) in self.blocks.iter().enumerate() {
            let past = cache.layers.get(i).cloned();
            let (y, present) = block.forward_cached(x, start, past);
            if i < cache.layers.len() {
                cache.layers[i] = present;
            } else {
                cache.layers.push(present);
            }
            x = y;
        }
        cache.len = start + seq_len;
        Ok(self.logits(self.final_norm(x)))
    }

    /// Mean of the hidden states over the first `lengths[b]` positions of each row `[B, d_model]`
    /// (features for linear probes). Positions past a row's length are padding: a causal
    /// model never lets them influence the counted positions; an encoder's rows run one by
    /// one at their own lengths, so it never sees them either.
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
        if !self.is_causal() {
            let rows = (0..batch)
                .map(|b| {
                    let row = ids.clone().slice([b..b + 1, 0..lengths[b]]);
                    self.hidden_states(row).mean_dim(1).squeeze_dim::<2>(1)
                })
                .collect();
            return Ok(Tensor::cat(rows, 0));
        }
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
        if self.post_norm {
            let x = self
                .attention_norm
                .forward(x.clone() + self.dropout.forward(self.attention.forward(x)));
            return self
                .mlp_norm
                .forward(x.clone() + self.dropout.forward(self.mlp.forward(x)));
        }
        let x = x.clone()
            + self
                .dropout
                .forward(self.attention.forward(self.attention_norm.forward(x)));
        x.clone()
            + self
                .dropout
                .forward(self.mlp.forward(self.mlp_norm.forward(x)))
    }

    fn forward_cached(
        &self,
        x: Tensor<3>,
        start: usize,
        past: Option<(Tensor<4>, Tensor<4>)>,
    ) -> (Tensor<3>, (Tensor<4>, Tensor<4>)) {
        let (attended, present) =
            self.attention
                .forward_cached(self.attention_norm.forward(x.clone()), start, past);
        let x = x + attended;
        (
            x.clone() + self.mlp.forward(self.mlp_norm.forward(x)),
            present,
        )
    }
}

impl SelfAttention {
    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut qkv = apply(&self.qkv, x);
        if let Some(rope) = &self.rope {
            qkv = rope.rotate_qkv(qkv, self.heads, 0);
        }
        let context = self_attention(qkv, self.heads, self.causal);
        apply(&self.output, context)
    }

    /// Attention of new positions `start..` over the cached ones and themselves, composed
    /// from burn's operations (generation is not training: no fused node needed).
    fn forward_cached(
        &self,
        x: Tensor<3>,
        start: usize,
        past: Option<(Tensor<4>, Tensor<4>)>,
    ) -> (Tensor<3>, (Tensor<4>, Tensor<4>)) {
        let [batch, seq_len, _] = x.dims();
        let Heads {
            n_head,
            n_kv_head,
            head_dim,
        } = self.heads;
        let mut qkv = apply(&self.qkv, x);
        let device = qkv.device();
        if let Some(rope) = &self.rope {
            qkv = rope.rotate_qkv(qkv, self.heads, start);
        }
        let heads_of = |tensor: Tensor<3>, count: usize| {
            tensor
                .reshape([batch, seq_len, count, head_dim])
                .swap_dims(1, 2)
        };
        let q_width = self.heads.q_width();
        let kv_width = self.heads.kv_width();
        let query = heads_of(qkv.clone().narrow(2, 0, q_width), n_head);
        let mut key = heads_of(qkv.clone().narrow(2, q_width, kv_width), n_kv_head);
        let mut value = heads_of(qkv.narrow(2, q_width + kv_width, kv_width), n_kv_head);
        if let Some((past_key, past_value)) = past {
            key = Tensor::cat(vec![past_key, key], 2);
            value = Tensor::cat(vec![past_value, value], 2);
        }
        let total = start + seq_len;
        let group = n_head / n_kv_head;
        let expand = |t: Tensor<4>| {
            t.unsqueeze_dim::<5>(2)
                .expand([batch, n_kv_head, group, total, head_dim])
                .reshape([batch, n_head, total, head_dim])
        };
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = query.matmul(expand(key.clone()).swap_dims(2, 3)) * scale;
        // Query i (position start + i) sees keys 0..=start + i.
        let masked: Vec<bool> = (0..seq_len)
            .flat_map(|i| (0..total).map(move |j| j > start + i))
            .collect();
        let mask =
            Tensor::<4, Bool>::from_data(TensorData::new(masked, [1, 1, seq_len, total]), &device)
                .expand([batch, n_head, seq_len, total]);
        let probs = softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3);
        let context = probs
            .matmul(expand(value.clone()))
            .swap_dims(1, 2)
            .reshape([batch, seq_len, q_width]);
        (apply(&self.output, context), (key, value))
    }
}

impl Mlp {
    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let activated = activate(self.activation, apply(&self.expand, x));
        apply(&self.contract, activated)
    }
}

impl HeadTransform {
    /// `[N, d] -> [N, d]`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let bias = self.dense.bias.as_ref().map(|bias| bias.val());
        let dense = linear(x, self.dense.weight.val(), bias);
        let activated = activate(self.activation, dense.unsqueeze::<3>());
        self.norm.forward(activated).squeeze_dim::<2>(0)
    }
}

fn activate(activation: Activation, x: Tensor<3>) -> Tensor<3> {
    match activation {
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => gelu_approximate(x),
        Activation::SwiGlu => swiglu(x),
        Activation::Relu => burn::tensor::activation::relu(x),
        Activation::GatedGeluTanh => {
            let half = x.dims()[2] / 2;
            gelu_approximate(x.clone().narrow(2, 0, half)) * x.narrow(2, half, half)
        }
    }
}

/// `layer` over the last dimension of `[B, T, d_in]`, as one `[B·T, d_in]` product.
pub(crate) fn apply(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
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
    use crate::config::LlamaConfig;

    fn tiny(tie_embeddings: bool) -> ModelConfig {
        ModelConfig::Gpt(GptConfig {
            vocab_size: 50,
            n_layer: 2,
            n_head: 2,
            d_model: 16,
            context: 8,
            tie_embeddings,
            ..GptConfig::default()
        })
    }

    fn tiny_llama(tie_embeddings: bool) -> ModelConfig {
        ModelConfig::Llama(LlamaConfig {
            vocab_size: 50,
            n_layer: 2,
            n_head: 4,
            n_kv_head: 2,
            d_model: 16,
            d_ff: 24,
            context: 8,
            head_dim: 4,
            tie_embeddings,
            ..LlamaConfig::default()
        })
    }

    fn tiny_bert(tie_embeddings: bool) -> ModelConfig {
        ModelConfig::Bert(BertConfig {
            vocab_size: 50,
            n_layer: 2,
            n_head: 2,
            d_model: 16,
            d_ff: 24,
            context: 8,
            position_offset: 2,
            tie_embeddings,
            ..BertConfig::default()
        })
    }

    fn both(tie: bool) -> [ModelConfig; 2] {
        [tiny(tie), tiny_llama(tie)]
    }

    fn every_family(tie: bool) -> [ModelConfig; 3] {
        [tiny(tie), tiny_llama(tie), tiny_bert(tie)]
    }

    fn tiny_t5(tie_embeddings: bool) -> ModelConfig {
        ModelConfig::T5(T5Config {
            vocab_size: 50,
            n_layer: 2,
            n_decoder_layer: 1,
            n_head: 2,
            d_model: 16,
            d_kv: 6,
            d_ff: 24,
            activation: if tie_embeddings {
                Activation::Relu
            } else {
                Activation::GatedGeluTanh
            },
            context: 8,
            relative_buckets: 8,
            tie_embeddings,
            ..T5Config::default()
        })
    }

    #[test]
    fn param_count_matches_the_built_model() {
        for tie in [true, false] {
            let t5 = tiny_t5(tie);
            let model = t5.init(0, &Device::flex()).unwrap();
            assert_eq!(model.num_params(), t5.param_count(), "{t5:?}");
            for config in every_family(tie) {
                let model = config.init(0, &Device::flex()).unwrap();
                assert_eq!(model.num_params(), config.param_count(), "{config:?}");
            }
        }
    }

    #[test]
    fn logits_have_batch_time_vocab_shape_and_are_causal() {
        let device = Device::flex();
        for config in both(true) {
            let model = config.init(1, &device).unwrap();
            let a = ids_tensor(&[1, 2, 3, 4, 5, 6], 2, 3, &device);
            let b = ids_tensor(&[1, 2, 9, 4, 5, 7], 2, 3, &device);
            let logits_a = model.forward(a);
            assert_eq!(logits_a.dims(), [2, 3, 50]);
            // Changing the last token must not change earlier positions' logits.
            let prefix_a = logits_a.narrow(1, 0, 2).into_data();
            let prefix_b = model.forward(b).narrow(1, 0, 2).into_data();
            prefix_a.assert_approx_eq::<f32>(&prefix_b, burn::tensor::Tolerance::absolute(1e-6));
        }
    }

    #[test]
    fn an_encoders_positions_see_the_tokens_after_them() {
        let device = Device::flex();
        let model = tiny_bert(true).init(1, &device).unwrap();
        let a = model.forward(ids_tensor(&[1, 2, 3], 1, 3, &device));
        let b = model.forward(ids_tensor(&[1, 2, 9], 1, 3, &device));
        assert_eq!(a.dims(), [1, 3, 50]);
        let a = a.narrow(1, 0, 1).into_data().try_to_vec::<f32>().unwrap();
        let b = b.narrow(1, 0, 1).into_data().try_to_vec::<f32>().unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
        let mut cache = KvCache::default();
        let refused = model.forward_cached(ids_tensor(&[1], 1, 1, &device), &mut cache);
        assert!(refused.unwrap_err().to_string().contains("decoder"));
    }

    #[test]
    fn cached_forward_equals_the_full_forward() {
        let device = Device::flex();
        for config in both(false) {
            let model = config.init(3, &device).unwrap();
            let ids = [4u32, 9, 1, 30, 7, 22, 5];
            let full = model.forward(ids_tensor(&ids, 1, 7, &device));
            let mut cache = KvCache::default();
            let prompt = model
                .forward_cached(ids_tensor(&ids[..4], 1, 4, &device), &mut cache)
                .unwrap();
            let mut pieces = vec![prompt];
            for &id in &ids[4..] {
                pieces.push(
                    model
                        .forward_cached(ids_tensor(&[id], 1, 1, &device), &mut cache)
                        .unwrap(),
                );
            }
            assert_eq!(cache.len(), 7);
            Tensor::cat(pieces, 1).into_data().assert_approx_eq::<f32>(
                &full.into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );
        }
    }

    #[test]
    fn same_seed_gives_same_weights() {
        let device = Device::flex();
        let ids = ids_tensor(&[3, 1, 4, 1], 1, 4, &device);
        for config in every_family(false) {
            let a = config.init(5, &device).unwrap().forward(ids.clone());
            let b = config.init(5, &device).unwrap().forward(ids.clone());
            assert_eq!(a.into_data(), b.into_data());
        }
    }

    #[test]
    fn mean_pooled_ignores_padding() {
        let device = Device::flex();
        for config in every_family(true) {
            let model = config.init(2, &device).unwrap();
            let padded = model
                .mean_pooled(ids_tensor(&[7, 8, 0, 0], 1, 4, &device), &[2])
                .unwrap();
            let exact = model
                .mean_pooled(ids_tensor(&[7, 8], 1, 2, &device), &[2])
                .unwrap();
            assert_eq!(padded.dims(), [1, 16]);
            padded.into_data().assert_approx_eq::<f32>(
                &exact.into_data(),
                burn::tensor::Tolerance::absolute(1e-6),
            );
        }
    }
}
