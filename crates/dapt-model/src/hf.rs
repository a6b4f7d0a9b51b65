//! Hugging Face names, layouts and configs of both families, as transformers'
//! `modeling_gpt2.py` (`GPT2LMHeadModel`) and `modeling_llama.py` (`LlamaForCausalLM`) hold
//! them.
//!
//! | dapt parameter (`[d_in, d_out]`)   | GPT-2                                 | Llama (`[out, in]`, transposed)          |
//! |------------------------------------|---------------------------------------|------------------------------------------|
//! | `token_embedding.weight`           | `transformer.wte.weight`              | `model.embed_tokens.weight`              |
//! | `position_embedding.weight`        | `transformer.wpe.weight`              | —                                        |
//! | `blocks.i.attention_norm.gamma/beta` | `transformer.h.i.ln_1.weight/bias`  | `model.layers.i.input_layernorm.weight`  |
//! | `blocks.i.attention.qkv`           | `…attn.c_attn` (Conv1D, `[in, out]`)  | `self_attn.{q,k,v}_proj`, rows stacked   |
//! | `blocks.i.attention.output`        | `…attn.c_proj`                        | `self_attn.o_proj`                       |
//! | `blocks.i.mlp_norm`                | `…ln_2`                               | `post_attention_layernorm`               |
//! | `blocks.i.mlp.expand`              | `…mlp.c_fc`                           | `mlp.{gate,up}_proj`, rows stacked       |
//! | `blocks.i.mlp.contract`            | `…mlp.c_proj`                         | `mlp.down_proj`                          |
//! | `final_norm`                       | `transformer.ln_f`                    | `model.norm`                             |
//! | `lm_head.weight` (untied only)     | `lm_head.weight` (`[V, d]`)           | `lm_head.weight` (`[V, d]`)              |
//!
//! GPT-2's Conv1D weights are already `[in, out]`; Llama's `nn.Linear` weights are
//! `[out, in]`, so they are transposed, and the q|k|v and gate|up parts are stacked along
//! `out` before that. No permutation is needed: dapt's rotary layout is transformers'.
//!
//! The encoder, as `modeling_bert.py` (`BertForMaskedLM`) and `modeling_roberta.py`
//! (`RobertaForMaskedLM`) name it, `P` being `bert` or `roberta` (`nn.Linear`, transposed):
//!
//! | dapt parameter                      | BERT / RoBERTa                                               |
//! |-------------------------------------|--------------------------------------------------------------|
//! | `token_embedding`, `position_embedding`, `token_type_embedding` | `P.embeddings.{word,position,token_type}_embeddings` |
//! | `embedding_norm`                    | `P.embeddings.LayerNorm`                                     |
//! | `blocks.i.attention.qkv` (+ bias)   | `P.encoder.layer.i.attention.self.{query,key,value}`, stacked |
//! | `blocks.i.attention.output`         | `…attention.output.dense`                                    |
//! | `blocks.i.attention_norm`           | `…attention.output.LayerNorm` (post-norm: after attention)   |
//! | `blocks.i.mlp.expand` / `contract`  | `…intermediate.dense` / `…output.dense`                      |
//! | `blocks.i.mlp_norm`                 | `…output.LayerNorm`                                          |
//! | `head_transform.dense` / `.norm`    | `cls.predictions.transform.{dense,LayerNorm}` / `lm_head.{dense,layer_norm}` |
//! | `head_bias`                         | `cls.predictions.bias` / `lm_head.bias` (untied: also `….decoder.bias`) |
//! | `lm_head.weight` (untied only)      | `cls.predictions.decoder.weight` / `lm_head.decoder.weight`  |
//!
//! T5 (`modeling_t5.py`, `T5ForConditionalGeneration`; `S` is `encoder` or `decoder`, whose
//! blocks are dapt's `blocks` and `decoder_blocks`; no biases):
//!
//! | dapt parameter                        | T5                                                       |
//! |---------------------------------------|----------------------------------------------------------|
//! | `token_embedding`                     | `shared`                                                 |
//! | `…attention_norm.gamma`               | `S.block.i.layer.0.layer_norm.weight`                    |
//! | `…attention.qkv` / `.output`          | `…layer.0.SelfAttention.{q,k,v}` stacked / `.o`          |
//! | `encoder_position_bias`, `decoder_position_bias` | `S.block.0.layer.0.SelfAttention.relative_attention_bias` |
//! | `decoder_blocks.i.cross_norm`         | `decoder.block.i.layer.1.layer_norm`                     |
//! | `…cross_attention.query` / `.key_value` / `.output` | `…layer.1.EncDecAttention.q` / `{k,v}` stacked / `.o` |
//! | `…mlp_norm`, `…mlp.expand`, `…mlp.contract` | the last layer's `layer_norm`, `DenseReluDense.wi` (or `wi_0`, `wi_1` stacked), `.wo` |
//! | `final_norm`, `decoder_final_norm`    | `S.final_layer_norm`                                     |
//! | `lm_head.weight` (untied only)        | `lm_head.weight`                                         |

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::config::{
    Activation, BertConfig, EncoderFlavour, GptConfig, LlamaConfig, ModelConfig, RopeScaling,
    T5Config,
};

/// One dapt parameter and the Hugging Face tensors it is made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slot {
    /// dapt's parameter path.
    pub ours: String,
    /// Hugging Face tensor names, stacked along their first axis, with their row counts.
    pub parts: Vec<(String, usize)>,
    /// Whether dapt's `[d_in, d_out]` is the transpose of the stacked Hugging Face tensor.
    pub transpose: bool,
    /// Further names under which transformers holds the stacked tensor as a parameter of its
    /// own: written with the same values on export; on import the first present is read in
    /// place of `parts` (which must be present too), being the one transformers' forward uses.
    pub copies: Vec<String>,
}

impl Slot {
    fn same(ours: impl Into<String>, hf: impl Into<String>) -> Self {
        Self {
            ours: ours.into(),
            parts: vec![(hf.into(), 0)],
            transpose: false,
            copies: Vec::new(),
        }
    }

    fn transposed(ours: impl Into<String>, parts: Vec<(String, usize)>) -> Self {
        Self {
            ours: ours.into(),
            parts,
            transpose: true,
            copies: Vec::new(),
        }
    }

    /// dapt's `lm_head.weight` of a head not tied to the embedding: Hugging Face's `hf`,
    /// `[vocab, d]`.
    fn own_head(hf: impl Into<String>, vocab_size: usize) -> Self {
        Self::transposed("lm_head.weight", vec![(hf.into(), vocab_size)])
    }
}

/// Every parameter of a model of `config`, in a fixed order.
pub(crate) fn slots(config: &ModelConfig) -> Vec<Slot> {
    let mut slots = Vec::new();
    match config {
        ModelConfig::Gpt(c) => {
            slots.push(Slot::same(
                "token_embedding.weight",
                "transformer.wte.weight",
            ));
            slots.push(Slot::same(
                "position_embedding.weight",
                "transformer.wpe.weight",
            ));
            for i in 0..c.n_layer {
                let ours = |name: &str| format!("blocks.{i}.{name}");
                let hf = |name: &str| format!("transformer.h.{i}.{name}");
                for (our, their) in [
                    ("attention_norm.gamma", "ln_1.weight"),
                    ("attention_norm.beta", "ln_1.bias"),
                    ("attention.qkv.weight", "attn.c_attn.weight"),
                    ("attention.qkv.bias", "attn.c_attn.bias"),
                    ("attention.output.weight", "attn.c_proj.weight"),
                    ("attention.output.bias", "attn.c_proj.bias"),
                    ("mlp_norm.gamma", "ln_2.weight"),
                    ("mlp_norm.beta", "ln_2.bias"),
                    ("mlp.expand.weight", "mlp.c_fc.weight"),
                    ("mlp.expand.bias", "mlp.c_fc.bias"),
                    ("mlp.contract.weight", "mlp.c_proj.weight"),
                    ("mlp.contract.bias", "mlp.c_proj.bias"),
                ] {
                    slots.push(Slot::same(ours(our), hf(their)));
                }
            }
            slots.push(Slot::same("final_norm.gamma", "transformer.ln_f.weight"));
            slots.push(Slot::same("final_norm.beta", "transformer.ln_f.bias"));
            if !c.tie_embeddings {
                slots.push(Slot::own_head("lm_head.weight", c.vocab_size));
            }
        }
        ModelConfig::Llama(c) => {
            slots.push(Slot::same(
                "token_embedding.weight",
                "model.embed_tokens.weight",
            ));
            let (q_rows, kv_rows) = (c.n_head * c.head_dim, c.n_kv_head * c.head_dim);
            for i in 0..c.n_layer {
                let ours = |name: &str| format!("blocks.{i}.{name}");
                let hf = |name: &str| format!("model.layers.{i}.{name}");
                slots.push(Slot::same(
                    ours("attention_norm.gamma"),
                    hf("input_layernorm.weight"),
                ));
                slots.push(Slot::transposed(
                    ours("attention.qkv.weight"),
                    vec![
                        (hf("self_attn.q_proj.weight"), q_rows),
                        (hf("self_attn.k_proj.weight"), kv_rows),
                        (hf("self_attn.v_proj.weight"), kv_rows),
                    ],
                ));
                slots.push(Slot::transposed(
                    ours("attention.output.weight"),
                    vec![(hf("self_attn.o_proj.weight"), c.d_model)],
                ));
                slots.push(Slot::same(
                    ours("mlp_norm.gamma"),
                    hf("post_attention_layernorm.weight"),
                ));
                slots.push(Slot::transposed(
                    ours("mlp.expand.weight"),
                    vec![
                        (hf("mlp.gate_proj.weight"), c.d_ff),
                        (hf("mlp.up_proj.weight"), c.d_ff),
                    ],
                ));
                slots.push(Slot::transposed(
                    ours("mlp.contract.weight"),
                    vec![(hf("mlp.down_proj.weight"), c.d_model)],
                ));
            }
            slots.push(Slot::same("final_norm.gamma", "model.norm.weight"));
            if !c.tie_embeddings {
                slots.push(Slot::own_head("lm_head.weight", c.vocab_size));
            }
        }
        ModelConfig::Bert(c) => bert_slots(c, &mut slots),
        ModelConfig::T5(c) => t5_slots(c, &mut slots),
    }
    slots
}

fn t5_slots(c: &T5Config, slots: &mut Vec<Slot>) {
    let inner = c.n_head * c.d_kv;
    slots.push(Slot::same("token_embedding.weight", "shared.weight"));
    let linear = |ours: String, theirs: Vec<String>, rows: usize| {
        Slot::transposed(
            format!("{ours}.weight"),
            theirs
                .into_iter()
                .map(|t| (format!("{t}.weight"), rows))
                .collect(),
        )
    };
    let mlp = |slots: &mut Vec<Slot>, ours: &dyn Fn(&str) -> String, layer: String| {
        let wi = if c.activation.is_gated() {
            vec![
                format!("{layer}.DenseReluDense.wi_0"),
                format!("{layer}.DenseReluDense.wi_1"),
            ]
        } else {
            vec![format!("{layer}.DenseReluDense.wi")]
        };
        slots.push(Slot::same(
            ours("mlp_norm.gamma"),
            format!("{layer}.layer_norm.weight"),
        ));
        slots.push(linear(ours("mlp.expand"), wi, c.d_ff));
        slots.push(linear(
            ours("mlp.contract"),
            vec![format!("{layer}.DenseReluDense.wo")],
            c.d_model,
        ));
    };
    for (stack, ours_stack, layers) in [
        ("encoder", "blocks", c.n_layer),
        ("decoder", "decoder_blocks", c.n_decoder_layer),
    ] {
        for i in 0..layers {
            let ours = |name: &str| format!("{ours_stack}.{i}.{name}");
            let hf = |name: &str| format!("{stack}.block.{i}.{name}");
            slots.push(Slot::same(
                ours("attention_norm.gamma"),
                hf("layer.0.layer_norm.weight"),
            ));
            let qkv = ["q", "k", "v"].map(|p| hf(&format!("layer.0.SelfAttention.{p}")));
            slots.push(linear(ours("attention.qkv"), qkv.to_vec(), inner));
            slots.push(linear(
                ours("attention.output"),
                vec![hf("layer.0.SelfAttention.o")],
                c.d_model,
            ));
            if i == 0 {
                // `encoder_position_bias`, `decoder_position_bias`.
                slots.push(Slot::same(
                    format!("{stack}_position_bias.embedding.weight"),
                    hf("layer.0.SelfAttention.relative_attention_bias.weight"),
                ));
            }
            let ff_layer = if stack == "decoder" {
                slots.push(Slot::same(
                    ours("cross_norm.gamma"),
                    hf("layer.1.layer_norm.weight"),
                ));
                let cross = |p: &str| hf(&format!("layer.1.EncDecAttention.{p}"));
                slots.push(linear(
                    ours("cross_attention.query"),
                    vec![cross("q")],
                    inner,
                ));
                slots.push(linear(
                    ours("cross_attention.key_value"),
                    vec![cross("k"), cross("v")],
                    inner,
                ));
                slots.push(linear(
                    ours("cross_attention.output"),
                    vec![cross("o")],
                    c.d_model,
                ));
                hf("layer.2")
            } else {
                hf("layer.1")
            };
            mlp(slots, &ours, ff_layer);
        }
    }
    slots.push(Slot::same(
        "final_norm.gamma",
        "encoder.final_layer_norm.weight",
    ));
    slots.push(Slot::same(
        "decoder_final_norm.gamma",
        "decoder.final_layer_norm.weight",
    ));
    if !c.tie_embeddings {
        slots.push(Slot::own_head("lm_head.weight", c.vocab_size));
    }
}

fn bert_slots(c: &BertConfig, slots: &mut Vec<Slot>) {
    let (prefix, head) = match c.flavour {
        EncoderFlavour::Bert => (
            "bert",
            ["cls.predictions", "transform.dense", "transform.LayerNorm"],
        ),
        EncoderFlavour::Roberta => ("roberta", ["lm_head", "dense", "layer_norm"]),
    };
    let [head, dense, norm] = head;
    let norm_slots = |slots: &mut Vec<Slot>, ours: &str, theirs: &str| {
        slots.push(Slot::same(
            format!("{ours}.gamma"),
            format!("{theirs}.weight"),
        ));
        slots.push(Slot::same(format!("{ours}.beta"), format!("{theirs}.bias")));
    };
    let linear_slots = |slots: &mut Vec<Slot>, ours: &str, theirs: &[String], rows: usize| {
        let parts = |suffix: &str| {
            theirs
                .iter()
                .map(|t| (format!("{t}.{suffix}"), rows))
                .collect()
        };
        slots.push(Slot::transposed(format!("{ours}.weight"), parts("weight")));
        slots.push(Slot {
            ours: format!("{ours}.bias"),
            parts: parts("bias"),
            transpose: false,
            copies: Vec::new(),
        });
    };
    let embeddings = format!("{prefix}.embeddings");
    for (ours, theirs) in [
        ("token_embedding", "word_embeddings"),
        ("position_embedding", "position_embeddings"),
        ("token_type_embedding", "token_type_embeddings"),
    ] {
        slots.push(Slot::same(
            format!("{ours}.weight"),
            format!("{embeddings}.{theirs}.weight"),
        ));
    }
    norm_slots(slots, "embedding_norm", &format!("{embeddings}.LayerNorm"));
    let d = c.d_model;
    for i in 0..c.n_layer {
        let ours = |name: &str| format!("blocks.{i}.{name}");
        let hf = |name: &str| format!("{prefix}.encoder.layer.{i}.{name}");
        let qkv = ["query", "key", "value"].map(|p| hf(&format!("attention.self.{p}")));
        linear_slots(slots, &ours("attention.qkv"), &qkv, d);
        linear_slots(
            slots,
            &ours("attention.output"),
            &[hf("attention.output.dense")],
            d,
        );
        norm_slots(
            slots,
            &ours("attention_norm"),
            &hf("attention.output.LayerNorm"),
        );
        linear_slots(
            slots,
            &ours("mlp.expand"),
            &[hf("intermediate.dense")],
            c.d_ff,
        );
        linear_slots(slots, &ours("mlp.contract"), &[hf("output.dense")], d);
        norm_slots(slots, &ours("mlp_norm"), &hf("output.LayerNorm"));
    }
    linear_slots(
        slots,
        "head_transform.dense",
        &[format!("{head}.{dense}")],
        d,
    );
    norm_slots(slots, "head_transform.norm", &format!("{head}.{norm}"));
    let mut head_bias = Slot::same("head_bias", format!("{head}.bias"));
    if !c.tie_embeddings {
        // transformers (5.x) ties `{head}.decoder.bias` to `{head}.bias` only together with
        // the embedding: an untied head's decoder has its own bias, the one its forward adds.
        head_bias.copies.push(format!("{head}.decoder.bias"));
    }
    slots.push(head_bias);
    if !c.tie_embeddings {
        slots.push(Slot::own_head(
            format!("{head}.decoder.weight"),
            c.vocab_size,
        ));
    }
}

/// A row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Dense {
    fn transpose(&self) -> Dense {
        let [rows, cols] = self.shape[..] else {
            return self.clone();
        };
        let mut values = vec![0f32; self.values.len()];
        for r in 0..rows {
            for c in 0..cols {
                values[c * rows + r] = self.values[r * cols + c];
            }
        }
        Dense {
            shape: vec![cols, rows],
            values,
        }
    }
}

/// dapt's parameter `slot.ours` from Hugging Face tensors fetched through `get`.
pub(crate) fn gather(slot: &Slot, get: &mut dyn FnMut(&str) -> Result<Dense>) -> Result<Dense> {
    let mut stacked: Option<Dense> = None;
    for (name, rows) in &slot.parts {
        let part = get(name)?;
        if *rows > 0 {
            ensure!(
                !part.shape.is_empty() && part.shape[0] == *rows,
                "tensor {name} has shape {:?}, expected {rows} rows",
                part.shape
            );
        }
        stacked = Some(match stacked {
            None => part,
            Some(mut acc) => {
                ensure!(
                    acc.shape[1..] == part.shape[1..],
                    "tensor {name} has shape {:?}, which does not stack onto {:?}",
                    part.shape,
                    acc.shape
                );
                acc.shape[0] += part.shape[0];
                acc.values.extend_from_slice(&part.values);
                acc
            }
        });
    }
    let mut stacked = stacked.context("a slot without tensors")?;
    for name in &slot.copies {
        if let Ok(copy) = get(name) {
            ensure!(
                copy.shape == stacked.shape,
                "tensor {name} has shape {:?}, expected {:?} as {}",
                copy.shape,
                stacked.shape,
                slot.parts[0].0
            );
            stacked = copy;
            break;
        }
    }
    Ok(if slot.transpose {
        stacked.transpose()
    } else {
        stacked
    })
}

/// The Hugging Face tensors of dapt's parameter `value` for `slot`.
pub(crate) fn scatter(slot: &Slot, value: &Dense) -> Vec<(String, Dense)> {
    let stacked = if slot.transpose {
        value.transpose()
    } else {
        value.clone()
    };
    let copies: Vec<(String, Dense)> = slot
        .copies
        .iter()
        .map(|name| (name.clone(), stacked.clone()))
        .collect();
    if slot.parts.len() == 1 {
        let mut tensors = vec![(slot.parts[0].0.clone(), stacked)];
        tensors.extend(copies);
        return tensors;
    }
    // Elements per row: a matrix's columns, 1 for stacked biases.
    let cols: usize = stacked.shape[1..].iter().product();
    let mut start = 0;
    slot.parts
        .iter()
        .map(|(name, rows)| {
            let values = stacked.values[start * cols..(start + rows) * cols].to_vec();
            start += rows;
            let mut shape = stacked.shape.clone();
            shape[0] = *rows;
            (name.clone(), Dense { shape, values })
        })
        .chain(copies)
        .collect()
}

/// The Hugging Face `config.json` of a model of `config`.
pub fn to_hf_config(config: &ModelConfig) -> Value {
    match config {
        ModelConfig::Gpt(c) => json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": c.vocab_size,
            "n_positions": c.context,
            "n_ctx": c.context,
            "n_embd": c.d_model,
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "n_inner": null,
            "activation_function": match c.activation {
                Activation::GeluTanh => "gelu_new",
                _ => "gelu",
            },
            "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout,
            "attn_pdrop": 0.0,
            "layer_norm_epsilon": c.layer_norm_epsilon,
            "initializer_range": 0.02,
            "scale_attn_weights": true,
            "use_cache": true,
            "tie_word_embeddings": c.tie_embeddings,
            "torch_dtype": "float32",
        }),
        ModelConfig::Llama(c) => {
            let mut value = json!({
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "vocab_size": c.vocab_size,
                "hidden_size": c.d_model,
                "intermediate_size": c.d_ff,
                "num_hidden_layers": c.n_layer,
                "num_attention_heads": c.n_head,
                "num_key_value_heads": c.n_kv_head,
                "head_dim": c.head_dim,
                "max_position_embeddings": c.context,
                "rope_theta": c.rope_theta,
                "rope_scaling": c.rope_scaling.as_ref().map(|s| serde_json::to_value(s).expect("plain data")),
                "rms_norm_eps": c.rms_norm_eps,
                "hidden_act": "silu",
                "attention_bias": false,
                "attention_dropout": 0.0,
                "mlp_bias": false,
                "initializer_range": 0.02,
                "use_cache": true,
                "tie_word_embeddings": c.tie_embeddings,
                "torch_dtype": "float32",
            });
            if c.dropout > 0.0 {
                // Not a transformers option: dapt's residual dropout, kept for resuming.
                value["dapt_residual_dropout"] = json!(c.dropout);
            }
            value
        }
        ModelConfig::T5(c) => json!({
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5",
            "vocab_size": c.vocab_size,
            "d_model": c.d_model,
            "d_kv": c.d_kv,
            "d_ff": c.d_ff,
            "num_layers": c.n_layer,
            "num_decoder_layers": c.n_decoder_layer,
            "num_heads": c.n_head,
            "relative_attention_num_buckets": c.relative_buckets,
            "relative_attention_max_distance": c.relative_max_distance,
            "feed_forward_proj": match c.activation {
                Activation::GatedGeluTanh => "gated-gelu",
                _ => "relu",
            },
            "layer_norm_epsilon": c.layer_norm_epsilon,
            "dropout_rate": c.dropout,
            "initializer_factor": 1.0,
            "is_encoder_decoder": true,
            "tie_word_embeddings": c.tie_embeddings,
            "scale_decoder_outputs": c.scale_logits,
            "decoder_start_token_id": c.decoder_start_id,
            "pad_token_id": c.decoder_start_id,
            "n_positions": c.context,
            "use_cache": true,
            "torch_dtype": "float32",
        }),
        ModelConfig::Bert(c) => {
            let (architecture, model_type, pad) = match c.flavour {
                EncoderFlavour::Bert => ("BertForMaskedLM", "bert", 0),
                EncoderFlavour::Roberta => ("RobertaForMaskedLM", "roberta", 1),
            };
            json!({
                "architectures": [architecture],
                "model_type": model_type,
                "vocab_size": c.vocab_size,
                "hidden_size": c.d_model,
                "num_hidden_layers": c.n_layer,
                "num_attention_heads": c.n_head,
                "intermediate_size": c.d_ff,
                "hidden_act": match c.activation {
                    Activation::GeluTanh => "gelu_new",
                    _ => "gelu",
                },
                "hidden_dropout_prob": c.dropout,
                "attention_probs_dropout_prob": 0.0,
                "max_position_embeddings": c.context + c.position_offset,
                "type_vocab_size": c.type_vocab_size,
                "layer_norm_eps": c.layer_norm_epsilon,
                "initializer_range": 0.02,
                "pad_token_id": pad,
                "position_embedding_type": "absolute",
                "is_decoder": false,
                "tie_word_embeddings": c.tie_embeddings,
                "torch_dtype": "float32",
            })
        }
    }
}

/// The model a Hugging Face `config.json` describes; `path` names it in errors.
pub fn from_hf_config(value: &Value, path: &str) -> Result<ModelConfig> {
    let object = value
        .as_object()
        .with_context(|| format!("{path}: not a JSON object"))?;
    let model_type = object.get("model_type").and_then(Value::as_str);
    let architectures: Vec<&str> = object
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let usize_key = |key: &str| -> Result<usize> {
        object
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .with_context(|| format!("{path}: `{key}` is missing or not a whole number"))
    };
    let float_key = |key: &str, default: Option<f64>| -> Result<f64> {
        match object.get(key) {
            Some(v) if !v.is_null() => v
                .as_f64()
                .with_context(|| format!("{path}: `{key}` is not a number")),
            _ => default.with_context(|| format!("{path}: `{key}` is missing")),
        }
    };
    let bool_key =
        |key: &str, default: bool| object.get(key).and_then(Value::as_bool).unwrap_or(default);
    match model_type {
        Some("gpt2") => {
            let d_model = usize_key("n_embd")?;
            if let Some(inner) = object.get("n_inner").filter(|v| !v.is_null()) {
                ensure!(
                    inner.as_u64() == Some(4 * d_model as u64),
                    "{path}: n_inner {inner} is not supported (dapt's GPT MLP is 4 x n_embd)"
                );
            }
            let activation = match object
                .get("activation_function")
                .and_then(Value::as_str)
                .unwrap_or("gelu_new")
            {
                "gelu" => Activation::Gelu,
                "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
                other => {
                    bail!("{path}: activation_function {other:?} is not supported (gelu, gelu_new)")
                }
            };
            for (key, expected) in [
                ("scale_attn_by_inverse_layer_idx", false),
                ("reorder_and_upcast_attn", false),
                ("add_cross_attention", false),
            ] {
                ensure!(
                    bool_key(key, expected) == expected,
                    "{path}: `{key}` = {} is not supported",
                    !expected
                );
            }
            Ok(ModelConfig::Gpt(GptConfig {
                vocab_size: usize_key("vocab_size")?,
                n_layer: usize_key("n_layer")?,
                n_head: usize_key("n_head")?,
                d_model,
                context: usize_key("n_positions")?,
                dropout: float_key("resid_pdrop", Some(0.0))?,
                tie_embeddings: bool_key("tie_word_embeddings", true),
                activation,
                layer_norm_epsilon: float_key("layer_norm_epsilon", Some(1e-5))?,
            }))
        }
        Some("llama") | Some("mistral") => {
            if let Some(act) = object.get("hidden_act").and_then(Value::as_str) {
                ensure!(
                    act == "silu",
                    "{path}: hidden_act {act:?} is not supported (silu)"
                );
            }
            for key in ["attention_bias", "mlp_bias"] {
                ensure!(
                    !bool_key(key, false),
                    "{path}: `{key}` = true is not supported (Llama has no biases)"
                );
            }
            let d_model = usize_key("hidden_size")?;
            let n_head = usize_key("num_attention_heads")?;
            let head_dim = match object.get("head_dim").filter(|v| !v.is_null()) {
                Some(_) => usize_key("head_dim")?,
                None => d_model / n_head.max(1),
            };
            // transformers 5 writes `rope_parameters` (theta and scaling in one object).
            let parameters = object.get("rope_parameters").filter(|v| v.is_object());
            let scaling = parameters
                .filter(|p| p.get("rope_type").and_then(Value::as_str) != Some("default"))
                .or_else(|| object.get("rope_scaling").filter(|v| !v.is_null()));
            let rope_scaling = match scaling {
                None => None,
                Some(scaling) => Some(rope_scaling(scaling, path)?),
            };
            let rope_theta = match parameters.and_then(|p| p.get("rope_theta")) {
                Some(theta) => theta.as_f64().with_context(|| {
                    format!("{path}: rope_parameters.rope_theta is not a number")
                })?,
                None => float_key("rope_theta", Some(10_000.0))?,
            };
            Ok(ModelConfig::Llama(LlamaConfig {
                vocab_size: usize_key("vocab_size")?,
                n_layer: usize_key("num_hidden_layers")?,
                n_head,
                n_kv_head: match object.get("num_key_value_heads").filter(|v| !v.is_null()) {
                    Some(_) => usize_key("num_key_value_heads")?,
                    None => n_head,
                },
                d_model,
                d_ff: usize_key("intermediate_size")?,
                context: usize_key("max_position_embeddings")?,
                head_dim,
                rope_theta,
                rope_scaling,
                rms_norm_eps: float_key("rms_norm_eps", Some(1e-6))?,
                tie_embeddings: bool_key("tie_word_embeddings", false),
                dropout: float_key("dapt_residual_dropout", Some(0.0))?,
            }))
        }
        Some(kind @ ("bert" | "roberta")) => {
            let flavour = if kind == "bert" {
                EncoderFlavour::Bert
            } else {
                EncoderFlavour::Roberta
            };
            let activation = match object.get("hidden_act").and_then(Value::as_str) {
                None | Some("gelu") => Activation::Gelu,
                Some("gelu_new" | "gelu_pytorch_tanh") => Activation::GeluTanh,
                Some(other) => bail!("{path}: hidden_act {other:?} is not supported (gelu)"),
            };
            if let Some(kind) = object
                .get("position_embedding_type")
                .and_then(Value::as_str)
            {
                ensure!(
                    kind == "absolute",
                    "{path}: position_embedding_type {kind:?} is not supported (absolute)"
                );
            }
            ensure!(
                !bool_key("is_decoder", false) && !bool_key("add_cross_attention", false),
                "{path}: an encoder used as a decoder is not supported"
            );
            // RoBERTa numbers positions from its padding id plus one.
            let position_offset = match flavour {
                EncoderFlavour::Bert => 0,
                EncoderFlavour::Roberta => usize_key("pad_token_id")? + 1,
            };
            let positions = usize_key("max_position_embeddings")?;
            ensure!(
                positions > position_offset,
                "{path}: max_position_embeddings {positions} leaves no position past the offset {position_offset}"
            );
            Ok(ModelConfig::Bert(BertConfig {
                vocab_size: usize_key("vocab_size")?,
                n_layer: usize_key("num_hidden_layers")?,
                n_head: usize_key("num_attention_heads")?,
                d_model: usize_key("hidden_size")?,
                d_ff: usize_key("intermediate_size")?,
                context: positions - position_offset,
                position_offset,
                type_vocab_size: usize_key("type_vocab_size").unwrap_or(2),
                layer_norm_epsilon: float_key("layer_norm_eps", Some(1e-12))?,
                activation,
                tie_embeddings: bool_key("tie_word_embeddings", true),
                dropout: float_key("hidden_dropout_prob", Some(0.0))?,
                flavour,
            }))
        }
        Some("t5") => {
            let activation = match object
                .get("feed_forward_proj")
                .and_then(Value::as_str)
                .unwrap_or("relu")
            {
                "relu" => Activation::Relu,
                "gated-gelu" | "gated-gelu_new" | "gated-gelu_pytorch_tanh" => {
                    Activation::GatedGeluTanh
                }
                other => {
                    bail!("{path}: feed_forward_proj {other:?} is not supported (relu, gated-gelu)")
                }
            };
            let n_layer = usize_key("num_layers")?;
            // transformers: the output is scaled unless the config says otherwise, and a
            // tied one is the embedding.
            let tie_embeddings = bool_key("tie_word_embeddings", true);
            let scale_logits = bool_key("scale_decoder_outputs", tie_embeddings);
            Ok(ModelConfig::T5(T5Config {
                vocab_size: usize_key("vocab_size")?,
                n_layer,
                n_decoder_layer: match object.get("num_decoder_layers").filter(|v| !v.is_null()) {
                    Some(_) => usize_key("num_decoder_layers")?,
                    None => n_layer,
                },
                n_head: usize_key("num_heads")?,
                d_model: usize_key("d_model")?,
                d_kv: usize_key("d_kv")?,
                d_ff: usize_key("d_ff")?,
                activation,
                context: usize_key("n_positions").unwrap_or(512),
                relative_buckets: usize_key("relative_attention_num_buckets").unwrap_or(32),
                relative_max_distance: usize_key("relative_attention_max_distance").unwrap_or(128),
                layer_norm_epsilon: float_key("layer_norm_epsilon", Some(1e-6))?,
                tie_embeddings,
                scale_logits,
                decoder_start_id: usize_key("decoder_start_token_id").unwrap_or(0) as u32,
                dropout: float_key("dropout_rate", Some(0.0))?,
            }))
        }
        other => bail!(
            "{path}: model_type {other:?} (architectures {architectures:?}) is not supported; \
             dapt reads gpt2 (GPT2LMHeadModel), llama (LlamaForCausalLM), bert \
             (BertForMaskedLM), roberta (RobertaForMaskedLM) and t5 \
             (T5ForConditionalGeneration)"
        ),
    }
}

/// transformers' `rope_scaling` object (`type` is the older spelling of `rope_type`).
fn rope_scaling(value: &Value, path: &str) -> Result<RopeScaling> {
    let mut object: BTreeMap<String, Value> = serde_json::from_value(value.clone())
        .with_context(|| format!("{path}: rope_scaling is not an object"))?;
    if let Some(kind) = object.remove("type") {
        object.entry("rope_type".into()).or_insert(kind);
    }
    let kind = object
        .get("rope_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if kind == "default" {
        bail!("{path}: rope_scaling of type \"default\" should be null");
    }
    // Keys other types carry that these do not use.
    object.remove("rope_theta");
    if kind == "linear" {
        object.remove("original_max_position_embeddings");
    }
    serde_json::from_value(serde_json::to_value(&object)?).with_context(|| {
        format!("{path}: rope_scaling {value} is not supported (linear and llama3 are)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_through_hugging_face_form() {
        let configs = [
            ModelConfig::Gpt(GptConfig {
                vocab_size: 100,
                n_layer: 2,
                n_head: 2,
                d_model: 8,
                context: 16,
                dropout: 0.1,
                tie_embeddings: false,
                activation: Activation::GeluTanh,
                layer_norm_epsilon: 1e-5,
            }),
            ModelConfig::Llama(LlamaConfig {
                vocab_size: 100,
                n_layer: 2,
                n_head: 4,
                n_kv_head: 2,
                d_model: 8,
                d_ff: 24,
                context: 32,
                head_dim: 2,
                rope_theta: 100_000.0,
                rope_scaling: Some(RopeScaling::Llama3 {
                    factor: 8.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: 16,
                }),
                rms_norm_eps: 1e-5,
                tie_embeddings: true,
                dropout: 0.0,
            }),
            ModelConfig::Bert(BertConfig {
                vocab_size: 100,
                n_layer: 2,
                n_head: 2,
                d_model: 8,
                d_ff: 16,
                context: 30,
                position_offset: 2,
                dropout: 0.1,
                flavour: EncoderFlavour::Roberta,
                ..BertConfig::default()
            }),
            ModelConfig::Bert(BertConfig {
                vocab_size: 100,
                n_layer: 1,
                n_head: 2,
                d_model: 8,
                d_ff: 16,
                context: 30,
                tie_embeddings: false,
                ..BertConfig::default()
            }),
            ModelConfig::T5(T5Config {
                vocab_size: 100,
                n_layer: 2,
                n_decoder_layer: 1,
                n_head: 2,
                d_model: 8,
                d_kv: 6,
                d_ff: 16,
                activation: Activation::GatedGeluTanh,
                context: 64,
                tie_embeddings: false,
                scale_logits: false,
                decoder_start_id: 0,
                dropout: 0.1,
                ..T5Config::default()
            }),
        ];
        for config in configs {
            let value = to_hf_config(&config);
            assert_eq!(from_hf_config(&value, "config.json").unwrap(), config);
        }
    }

    #[test]
    fn tinyllama_and_llama3_configs_parse() {
        let tinyllama = json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 32,
            "num_hidden_layers": 22, "num_key_value_heads": 4, "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
            "tie_word_embeddings": false, "vocab_size": 32000, "hidden_act": "silu"});
        let ModelConfig::Llama(c) = from_hf_config(&tinyllama, "tinyllama").unwrap() else {
            panic!("not llama")
        };
        assert_eq!((c.head_dim, c.n_kv_head, c.tie_embeddings), (64, 4, false));
        let llama3 = json!({"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
            "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "vocab_size": 128256, "tie_word_embeddings": false});
        let ModelConfig::Llama(c) = from_hf_config(&llama3, "llama3").unwrap() else {
            panic!("not llama")
        };
        assert!(matches!(c.rope_scaling, Some(RopeScaling::Llama3 { .. })));
        let bad = json!({"model_type": "gpt_neox"});
        let message = from_hf_config(&bad, "x/config.json")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("x/config.json") && message.contains("gpt_neox"),
            "{message}"
        );
    }

    #[test]
    fn scatter_undoes_gather() {
        let slot = Slot::transposed(
            "qkv",
            vec![("q".into(), 2), ("k".into(), 1), ("v".into(), 1)],
        );
        let tensors: BTreeMap<&str, Dense> = [("q", 2usize), ("k", 1), ("v", 1)]
            .into_iter()
            .enumerate()
            .map(|(i, (name, rows))| {
                let values = (0..rows * 3).map(|v| (10 * i + v) as f32).collect();
                (
                    name,
                    Dense {
                        shape: vec![rows, 3],
                        values,
                    },
                )
            })
            .collect();
        let ours = gather(&slot, &mut |name| Ok(tensors[name].clone())).unwrap();
        assert_eq!(ours.shape, vec![3, 4]);
        // Column 2 of ours is row 0 of k.
        assert_eq!(ours.values[2], tensors["k"].values[0]);
        for (name, dense) in scatter(&slot, &ours) {
            assert_eq!(dense, tensors[name.as_str()]);
        }
        // Biases stack end to end.
        let slot = Slot {
            ours: "qkv.bias".into(),
            parts: vec![("q".into(), 2), ("k".into(), 1)],
            transpose: false,
            copies: Vec::new(),
        };
        let biases: BTreeMap<&str, Dense> = [
            (
                "q",
                Dense {
                    shape: vec![2],
                    values: vec![1.0, 2.0],
                },
            ),
            (
                "k",
                Dense {
                    shape: vec![1],
                    values: vec![3.0],
                },
            ),
        ]
        .into_iter()
        .collect();
        let ours = gather(&slot, &mut |name| Ok(biases[name].clone())).unwrap();
        assert_eq!(ours.values, vec![1.0, 2.0, 3.0]);
        for (name, dense) in scatter(&slot, &ours) {
            assert_eq!(dense, biases[name.as_str()]);
        }
        // A copy is written beside its part, and read in its place when present.
        let slot = Slot {
            copies: vec!["copy".into()],
            ..Slot::same("head_bias", "part")
        };
        let dense = |v: f32| Dense {
            shape: vec![1],
            values: vec![v],
        };
        let written: Vec<String> = scatter(&slot, &dense(5.0))
            .into_iter()
            .map(|(name, value)| {
                assert_eq!(value, dense(5.0));
                name
            })
            .collect();
        assert_eq!(written, ["part", "copy"]);
        let read = gather(&slot, &mut |name| {
            Ok(dense(if name == "copy" { 7.0 } else { 5.0 }))
        });
        assert_eq!(read.unwrap(), dense(7.0));
        let read = gather(&slot, &mut |name| match name {
            "copy" => bail!("absent"),
            _ => Ok(dense(5.0)),
        });
        assert_eq!(read.unwrap(), dense(5.0));
    }
}
