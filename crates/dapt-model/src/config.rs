//! Architecture hyper-parameters of the model families dapt builds from one set of layers:
//! the GPT-2-style (`GptConfig`) and Llama-style (`LlamaConfig`) decoders, the
//! BERT/RoBERTa-style encoder (`BertConfig`), and `ModelConfig`, which names the family
//! (the `family` key in checkpoints).
//!
//! The Hugging Face `config.json` of each family (`hf_config.rs`) converts to and from these.

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// Shape of a dapt GPT. Serialised into checkpoints.
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
    #[serde(default = "default_true")]
    pub tie_embeddings: bool,
    /// The MLP's activation: exact (erf) GELU for dapt's own models, tanh GELU for GPT-2's.
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
}

impl Default for GptConfig {
    /// Not a valid model on its own (no vocabulary, no layers): a base for struct updates.
    fn default() -> Self {
        Self {
            vocab_size: 0,
            n_layer: 0,
            n_head: 0,
            d_model: 0,
            context: 0,
            dropout: 0.0,
            tie_embeddings: true,
            activation: Activation::Gelu,
            layer_norm_epsilon: default_layer_norm_epsilon(),
        }
    }
}

/// The element-wise non-linearity of a block's MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x Φ(x)`, exact (transformers' `gelu`).
    #[default]
    Gelu,
    /// GELU's tanh approximation (transformers' `gelu_new`, GPT-2's).
    GeluTanh,
    /// `silu(gate) · up` over the two halves of the expanded width (Llama's SwiGLU).
    SwiGlu,
    /// `max(x, 0)` (T5 v1.0's feed-forward).
    Relu,
    /// `gelu_tanh(gate) · up` over the two halves (T5 v1.1's and Flan-T5's "gated-gelu").
    GatedGeluTanh,
}

impl Activation {
    /// Whether the expanded width holds two halves, gate and up.
    pub fn is_gated(self) -> bool {
        matches!(self, Self::SwiGlu | Self::GatedGeluTanh)
    }
}

/// Shape of a Llama-family model (Llama 2/3, TinyLlama, SmolLM2): RMSNorm, rotary
/// positions, grouped-query attention, SwiGLU, no biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads; `n_head / n_kv_head` query heads share each (GQA).
    pub n_kv_head: usize,
    pub d_model: usize,
    /// Width of the SwiGLU MLP (`intermediate_size`).
    pub d_ff: usize,
    /// Maximum sequence length (`max_position_embeddings`).
    pub context: usize,
    /// Per-head width; `d_model / n_head` unless the checkpoint says otherwise.
    pub head_dim: usize,
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    pub rms_norm_eps: f64,
    #[serde(default = "default_true")]
    pub tie_embeddings: bool,
    #[serde(default)]
    pub dropout: f64,
}

impl Default for LlamaConfig {
    /// Not a valid model on its own: a base for struct updates.
    fn default() -> Self {
        Self {
            vocab_size: 0,
            n_layer: 0,
            n_head: 0,
            n_kv_head: 0,
            d_model: 0,
            d_ff: 0,
            context: 0,
            head_dim: 0,
            rope_theta: 10_000.0,
            rope_scaling: None,
            rms_norm_eps: 1e-5,
            tie_embeddings: true,
            dropout: 0.0,
        }
    }
}

impl LlamaConfig {
    /// SmolLM2-135M's shape (its model card's `config.json`): 30 layers, d 576, 9 query
    /// and 3 key/value heads, SwiGLU 1536, vocabulary 49,152, tied head, rope theta 1e5.
    pub fn smollm2_135m() -> Self {
        Self {
            vocab_size: 49_152,
            n_layer: 30,
            n_head: 9,
            n_kv_head: 3,
            d_model: 576,
            d_ff: 1536,
            context: 2048,
            head_dim: 64,
            rope_theta: 100_000.0,
            ..Self::default()
        }
    }
}

/// Shape of a BERT/RoBERTa-style encoder, trained by masked language modelling: learned
/// positions and a segment (token type) embedding summed and layer-normed, post-norm
/// blocks of bidirectional attention and a GELU MLP (biases everywhere), and the
/// masked-LM head (dense, GELU, LayerNorm, then the tied embedding plus a bias).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    /// Width of the MLP (`intermediate_size`).
    pub d_ff: usize,
    /// Maximum sequence length: learned positions past `position_offset`.
    pub context: usize,
    /// Positions count from here: 0 for BERT; RoBERTa numbers them from its padding
    /// id plus one (2), and its `max_position_embeddings` is `context + 2`.
    #[serde(default)]
    pub position_offset: usize,
    /// Rows of the segment embedding (`type_vocab_size`); dapt feeds segment 0 only.
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_bert_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    /// The MLP's and the head's activation (BERT's is exact GELU).
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub tie_embeddings: bool,
    #[serde(default)]
    pub dropout: f64,
    /// Whose Hugging Face names and config the model takes on export.
    #[serde(default)]
    pub flavour: EncoderFlavour,
}

/// Shape of a T5-style encoder-decoder, trained by span corruption: one embedding shared by
/// both stacks and (tied) by the output, pre-norm blocks with RMS norms and no biases,
/// attention without the `1/sqrt(d_kv)` scale and with a learned relative position bias
/// (bucketed, computed in each stack's first layer and shared by its others), decoder
/// blocks with cross-attention over the encoder's output, and a ReLU or gated-GELU MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T5Config {
    pub vocab_size: usize,
    /// Encoder layers (`num_layers`).
    pub n_layer: usize,
    /// Decoder layers (`num_decoder_layers`).
    pub n_decoder_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    /// Per-head width (`d_kv`); `n_head · d_kv` need not be `d_model`.
    pub d_kv: usize,
    pub d_ff: usize,
    /// `relu` (T5) or `gated_gelu_tanh` (T5 v1.1, Flan-T5).
    pub activation: Activation,
    /// Longest encoder input dapt feeds it (T5's positions are relative: no table limits it).
    pub context: usize,
    #[serde(default = "default_relative_buckets")]
    pub relative_buckets: usize,
    #[serde(default = "default_relative_max_distance")]
    pub relative_max_distance: usize,
    #[serde(default = "default_t5_epsilon")]
    pub layer_norm_epsilon: f64,
    /// The output shares the embedding (T5); otherwise it has its own (T5 v1.1).
    #[serde(default = "default_true")]
    pub tie_embeddings: bool,
    /// Decoder states are scaled by `d_model^-0.5` before the output (T5's tied head).
    #[serde(default = "default_true")]
    pub scale_logits: bool,
    /// The decoder's first input (`decoder_start_token_id`, the padding id in T5).
    #[serde(default)]
    pub decoder_start_id: u32,
    #[serde(default)]
    pub dropout: f64,
}

fn default_relative_buckets() -> usize {
    32
}

fn default_relative_max_distance() -> usize {
    128
}

fn default_t5_epsilon() -> f64 {
    1e-6
}

impl Default for T5Config {
    /// Not a valid model on its own: a base for struct updates.
    fn default() -> Self {
        Self {
            vocab_size: 0,
            n_layer: 0,
            n_decoder_layer: 0,
            n_head: 0,
            d_model: 0,
            d_kv: 0,
            d_ff: 0,
            activation: Activation::Relu,
            context: 0,
            relative_buckets: default_relative_buckets(),
            relative_max_distance: default_relative_max_distance(),
            layer_norm_epsilon: default_t5_epsilon(),
            tie_embeddings: true,
            scale_logits: true,
            decoder_start_id: 0,
            dropout: 0.0,
        }
    }
}

/// The Hugging Face architecture an encoder maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderFlavour {
    /// `BertForMaskedLM`: `bert.*` and `cls.predictions.*`.
    #[default]
    Bert,
    /// `RobertaForMaskedLM`: `roberta.*` and `lm_head.*`.
    Roberta,
}

impl Default for BertConfig {
    /// Not a valid model on its own: a base for struct updates.
    fn default() -> Self {
        Self {
            vocab_size: 0,
            n_layer: 0,
            n_head: 0,
            d_model: 0,
            d_ff: 0,
            context: 0,
            position_offset: 0,
            type_vocab_size: default_type_vocab_size(),
            layer_norm_epsilon: default_bert_layer_norm_epsilon(),
            activation: Activation::Gelu,
            tie_embeddings: true,
            dropout: 0.0,
            flavour: EncoderFlavour::Bert,
        }
    }
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_bert_layer_norm_epsilon() -> f64 {
    1e-12
}

/// How rotary frequencies are stretched for contexts longer than pre-training's, as
/// transformers' `rope_scaling` (`modeling_rope_utils.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RopeScaling {
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1: long wavelengths divided by `factor`, short ones kept, smooth between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

fn default_true() -> bool {
    true
}

fn default_layer_norm_epsilon() -> f64 {
    1e-5
}

/// A model of any family; `family` names it in JSON (`"gpt"`, `"llama"`, `"bert"` or
/// `"t5"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum ModelConfig {
    Gpt(GptConfig),
    Llama(LlamaConfig),
    Bert(BertConfig),
    T5(T5Config),
}

impl From<T5Config> for ModelConfig {
    fn from(config: T5Config) -> Self {
        Self::T5(config)
    }
}

impl From<BertConfig> for ModelConfig {
    fn from(config: BertConfig) -> Self {
        Self::Bert(config)
    }
}

impl From<GptConfig> for ModelConfig {
    fn from(config: GptConfig) -> Self {
        Self::Gpt(config)
    }
}

impl From<LlamaConfig> for ModelConfig {
    fn from(config: LlamaConfig) -> Self {
        Self::Llama(config)
    }
}

/// The shape every layer of the shared decoder is built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    pub vocab_size: usize,
    pub n_layer: usize,
    pub d_model: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Expanded MLP width (each half of it for SwiGLU).
    pub d_ff: usize,
    pub context: usize,
    pub tie_embeddings: bool,
    pub dropout: f64,
}

impl ModelConfig {
    pub fn family(&self) -> &'static str {
        match self {
            Self::Gpt(_) => "gpt",
            Self::Llama(_) => "llama",
            Self::Bert(_) => "bert",
            Self::T5(_) => "t5",
        }
    }

    /// Whether the model is a decoder alone, whose positions see only those before them
    /// (GPT, Llama), rather than an encoder (BERT) or an encoder-decoder (T5).
    pub fn causal(&self) -> bool {
        matches!(self, Self::Gpt(_) | Self::Llama(_))
    }

    /// Whether the model is an encoder-decoder (T5).
    pub fn is_seq2seq(&self) -> bool {
        matches!(self, Self::T5(_))
    }

    pub(crate) fn shape(&self) -> Shape {
        match self {
            Self::Gpt(c) => Shape {
                vocab_size: c.vocab_size,
                n_layer: c.n_layer,
                d_model: c.d_model,
                n_head: c.n_head,
                n_kv_head: c.n_head,
                head_dim: c.d_model / c.n_head.max(1),
                d_ff: 4 * c.d_model,
                context: c.context,
                tie_embeddings: c.tie_embeddings,
                dropout: c.dropout,
            },
            Self::Llama(c) => Shape {
                vocab_size: c.vocab_size,
                n_layer: c.n_layer,
                d_model: c.d_model,
                n_head: c.n_head,
                n_kv_head: c.n_kv_head,
                head_dim: c.head_dim,
                d_ff: c.d_ff,
                context: c.context,
                tie_embeddings: c.tie_embeddings,
                dropout: c.dropout,
            },
            Self::Bert(c) => Shape {
                vocab_size: c.vocab_size,
                n_layer: c.n_layer,
                d_model: c.d_model,
                n_head: c.n_head,
                n_kv_head: c.n_head,
                head_dim: c.d_model / c.n_head.max(1),
                d_ff: c.d_ff,
                context: c.context,
                tie_embeddings: c.tie_embeddings,
                dropout: c.dropout,
            },
            Self::T5(c) => Shape {
                vocab_size: c.vocab_size,
                n_layer: c.n_layer,
                d_model: c.d_model,
                n_head: c.n_head,
                n_kv_head: c.n_head,
                head_dim: c.d_kv,
                d_ff: c.d_ff,
                context: c.context,
                tie_embeddings: c.tie_embeddings,
                dropout: c.dropout,
            },
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.shape().vocab_size
    }

    /// Maximum sequence length.
    pub fn context(&self) -> usize {
        self.shape().context
    }

    pub fn d_model(&self) -> usize {
        self.shape().d_model
    }

    pub fn n_layer(&self) -> usize {
        self.shape().n_layer
    }

    pub fn dropout(&self) -> f64 {
        self.shape().dropout
    }

    pub fn tie_embeddings(&self) -> bool {
        self.shape().tie_embeddings
    }

    /// The same model with another vocabulary size.
    pub fn with_vocab_size(&self, vocab_size: usize) -> Self {
        let mut config = self.clone();
        match &mut config {
            Self::Gpt(c) => c.vocab_size = vocab_size,
            Self::Llama(c) => c.vocab_size = vocab_size,
            Self::Bert(c) => c.vocab_size = vocab_size,
            Self::T5(c) => c.vocab_size = vocab_size,
        }
        config
    }

    /// Checks the invariants the model relies on, with a message naming the fix.
    pub fn validate(&self) -> Result<()> {
        let shape = self.shape();
        for (name, value) in [
            ("vocab_size", shape.vocab_size),
            ("n_layer", shape.n_layer),
            ("n_head", shape.n_head),
            ("d_model", shape.d_model),
            ("context", shape.context),
            ("n_kv_head", shape.n_kv_head),
            ("head_dim", shape.head_dim),
            ("d_ff", shape.d_ff),
        ] {
            if value == 0 {
                bail!("model config: {name} must be at least 1");
            }
        }
        if !(0.0..1.0).contains(&shape.dropout) {
            bail!(
                "model config: dropout must be in [0, 1), got {}",
                shape.dropout
            );
        }
        match self {
            Self::T5(c) => {
                ensure!(
                    c.n_decoder_layer >= 1 && c.relative_buckets >= 2,
                    "model config: n_decoder_layer must be at least 1 and relative_buckets at least 2"
                );
                ensure!(
                    matches!(c.activation, Activation::Relu | Activation::GatedGeluTanh),
                    "model config: the T5 family's MLP is relu or gated_gelu_tanh"
                );
                ensure!(
                    c.layer_norm_epsilon > 0.0,
                    "model config: layer_norm_epsilon must be positive"
                );
            }
            Self::Bert(c) => {
                ensure!(
                    c.d_model.is_multiple_of(c.n_head),
                    "model config: d_model ({}) must be a multiple of n_head ({})",
                    c.d_model,
                    c.n_head
                );
                ensure!(
                    matches!(c.activation, Activation::Gelu | Activation::GeluTanh),
                    "model config: the BERT family's MLP is gelu or gelu_tanh"
                );
                ensure!(
                    c.type_vocab_size >= 1 && c.layer_norm_epsilon > 0.0,
                    "model config: type_vocab_size must be at least 1 and layer_norm_epsilon positive"
                );
            }
            Self::Gpt(c) => {
                if !c.d_model.is_multiple_of(c.n_head) {
                    bail!(
                        "model config: d_model ({}) must be a multiple of n_head ({}); pick d_model = n_head * head_dim",
                        c.d_model,
                        c.n_head
                    );
                }
                ensure!(
                    matches!(c.activation, Activation::Gelu | Activation::GeluTanh),
                    "model config: the GPT family's MLP is gelu or gelu_tanh, not swi_glu"
                );
            }
            Self::Llama(c) => {
                ensure!(
                    c.n_head.is_multiple_of(c.n_kv_head),
                    "model config: n_head ({}) must be a multiple of n_kv_head ({})",
                    c.n_head,
                    c.n_kv_head
                );
                ensure!(
                    c.head_dim.is_multiple_of(2),
                    "model config: head_dim ({}) must be even for rotary embeddings",
                    c.head_dim
                );
                ensure!(
                    c.rope_theta > 0.0 && c.rms_norm_eps > 0.0,
                    "model config: rope_theta and rms_norm_eps must be positive"
                );
            }
        }
        Ok(())
    }

    /// Number of trainable scalars, counting a tied embedding once.
    pub fn param_count(&self) -> usize {
        if let Self::T5(c) = self {
            let (d, inner) = (c.d_model, c.n_head * c.d_kv);
            let attention = 4 * d * inner;
            let mlp = if c.activation.is_gated() { 3 } else { 2 } * d * c.d_ff;
            let encoder = c.n_layer * (attention + mlp + 2 * d);
            let decoder = c.n_decoder_layer * (2 * attention + mlp + 3 * d);
            let biases = 2 * c.relative_buckets * c.n_head;
            let head = if c.tie_embeddings {
                0
            } else {
                c.vocab_size * d
            };
            return c.vocab_size * d + encoder + decoder + biases + 2 * d + head;
        }
        let s = self.shape();
        let d = s.d_model;
        let (attention, mlp, norm, positions) = match self {
            Self::Gpt(_) => {
                let attention = (d * 3 * d + 3 * d) + (d * d + d);
                let mlp = (d * s.d_ff + s.d_ff) + (s.d_ff * d + d);
                (attention, mlp, 2 * d, s.context * d)
            }
            Self::T5(_) => unreachable!("counted above"),
            Self::Llama(_) => {
                let q_width = s.n_head * s.head_dim;
                let kv_width = s.n_kv_head * s.head_dim;
                let attention = d * (q_width + 2 * kv_width) + q_width * d;
                let mlp = 3 * d * s.d_ff;
                (attention, mlp, d, 0)
            }
            Self::Bert(c) => {
                let attention = (d * 3 * d + 3 * d) + (d * d + d);
                let mlp = (d * s.d_ff + s.d_ff) + (s.d_ff * d + d);
                let positions = (c.context + c.position_offset + c.type_vocab_size) * d;
                (attention, mlp, 2 * d, positions)
            }
        };
        let block = 2 * norm + attention + mlp;
        let untied_head = if s.tie_embeddings {
            0
        } else {
            d * s.vocab_size
        };
        // The final norm of decoders; an encoder's norm sits after its embeddings, and
        // its masked-LM head adds a dense layer, a norm and an output bias.
        let extra = match self {
            Self::Bert(_) => d * d + d + norm + s.vocab_size,
            _ => 0,
        };
        s.vocab_size * d + positions + s.n_layer * block + norm + untied_head + extra
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
            ..GptConfig::default()
        }
    }

    #[test]
    fn serde_defaults_dropout_and_tying() {
        let config: ModelConfig = serde_json::from_str(
            r#"{"family":"gpt","vocab_size":100,"n_layer":2,"n_head":2,"d_model":8,"context":16}"#,
        )
        .unwrap();
        assert_eq!(config, ModelConfig::Gpt(small()));
    }

    #[test]
    fn unknown_keys_and_families_are_rejected() {
        let error = serde_json::from_str::<ModelConfig>(
            r#"{"family":"gpt","vocab_size":100,"n_layer":2,"n_head":2,"d_model":8,"context":16,"heads":3}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("heads"), "{error}");
        assert!(serde_json::from_str::<ModelConfig>(r#"{"family":"bert"}"#).is_err());
        assert!(serde_json::from_str::<ModelConfig>(r#"{"family":"t9","vocab_size":1}"#).is_err());
    }

    #[test]
    fn validate_rejects_heads_that_do_not_divide_width() {
        let config = ModelConfig::Gpt(GptConfig {
            n_head: 3,
            ..small()
        });
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("multiple of n_head"), "{message}");
        let llama = ModelConfig::Llama(LlamaConfig {
            vocab_size: 10,
            n_layer: 1,
            n_head: 4,
            n_kv_head: 3,
            d_model: 8,
            d_ff: 16,
            context: 8,
            head_dim: 2,
            ..LlamaConfig::default()
        });
        let message = llama.validate().unwrap_err().to_string();
        assert!(message.contains("n_kv_head"), "{message}");
    }

    #[test]
    fn untying_adds_one_output_matrix() {
        let tied = small();
        let untied = GptConfig {
            tie_embeddings: false,
            ..small()
        };
        assert_eq!(
            ModelConfig::Gpt(untied).param_count() - ModelConfig::Gpt(tied.clone()).param_count(),
            tied.vocab_size * tied.d_model
        );
    }

    #[test]
    fn bert_base_has_the_parameters_of_bert_for_masked_lm() {
        let bert = ModelConfig::Bert(BertConfig {
            vocab_size: 30_522,
            n_layer: 12,
            n_head: 12,
            d_model: 768,
            d_ff: 3072,
            context: 512,
            ..BertConfig::default()
        });
        bert.validate().unwrap();
        // transformers' BertForMaskedLM (bert-base-uncased, no pooler): 109,514,298.
        assert_eq!(bert.param_count(), 109_514_298);
        assert!(!bert.causal());
    }

    #[test]
    fn t5_small_has_the_parameters_of_t5_for_conditional_generation() {
        let t5 = ModelConfig::T5(T5Config {
            vocab_size: 32_128,
            n_layer: 6,
            n_decoder_layer: 6,
            n_head: 8,
            d_model: 512,
            d_kv: 64,
            d_ff: 2048,
            context: 512,
            ..T5Config::default()
        });
        t5.validate().unwrap();
        // transformers' T5ForConditionalGeneration (t5-small): 60,506,624.
        assert_eq!(t5.param_count(), 60_506_624);
        assert!(t5.is_seq2seq() && !t5.causal());
    }

    #[test]
    fn smollm2_135m_has_134_5m_parameters() {
        let smollm2 = ModelConfig::Llama(LlamaConfig::smollm2_135m());
        // The model card's count: 134,515,008 (tied head).
        assert_eq!(smollm2.param_count(), 134_515_008);
    }
}
