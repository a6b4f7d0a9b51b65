//! Llama-architecture GGUFs as Hugging Face `LlamaForCausalLM` checkpoints: the config, the tensor
//! names and shapes, and the undoing of llama.cpp's rotary row permutation.
//!
//! llama.cpp's `convert_hf_to_gguf.py` (`LlamaModel`) writes the metadata keys `llama.*` read by
//! [`LlamaConfig::from_gguf`], renames the tensors as in [`tensor_mappings`] (gguf-py
//! `tensor_mapping.py`), and permutes the rows of `q_proj` and `k_proj` so that each head's rotary
//! pairs, which Hugging Face keeps in two halves (`rotate_half`), are interleaved as llama.cpp's
//! rope kernel wants them:
//!
//! ```python
//! w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
//! ```
//!
//! with `n_head` the number of query heads for `q_proj` and of key/value heads for `k_proj`.
//! [`unpermute_qk`] is its inverse (transformers' GGUF loader does the same, in
//! `LlamaTensorProcessor._reverse_permute_weights`). Llama 3's rope scaling is not a metadata key
//! but a `rope_freqs.weight` tensor of per-frequency factors, from which the `llama3`
//! `rope_scaling` parameters are recovered.

use serde_json::{Value as Json, json};

use crate::error::{GgufError, Result};
use crate::reader::Gguf;

/// The architecture name this module converts (`general.architecture`).
pub const ARCHITECTURE: &str = "llama";

/// Rope scaling of a Hugging Face Llama config.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Position interpolation: positions divided by `factor`.
    Linear { factor: f64 },
    /// YaRN.
    Yarn {
        factor: f64,
        original_max_position_embeddings: Option<u64>,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: u64,
    },
}

impl RopeScaling {
    /// The `rope_scaling` object of `config.json` (with both `rope_type` and the older `type`).
    pub fn to_json(&self) -> Json {
        match *self {
            RopeScaling::Linear { factor } => {
                json!({"type": "linear", "rope_type": "linear", "factor": factor})
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
            } => {
                let mut v = json!({"type": "yarn", "rope_type": "yarn", "factor": factor});
                if let Some(n) = original_max_position_embeddings {
                    v["original_max_position_embeddings"] = json!(n);
                }
                v
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        }
    }
}

/// The hyper-parameters of a Llama GGUF, as a Hugging Face `LlamaConfig` has them.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: u64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    /// True when the file has no `output.weight`: the LM head is the embedding matrix.
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

/// The f32 a file stores, as the decimal it was written from (`1e-5`, not `9.99999974e-6`).
fn f32_as_written(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn key(name: &str) -> String {
    format!("{ARCHITECTURE}.{name}")
}

fn unsupported(gguf: &Gguf, what: impl Into<String>) -> GgufError {
    GgufError::Unsupported {
        path: gguf.path().to_path_buf(),
        what: what.into(),
    }
}

fn required_usize(gguf: &Gguf, name: &str) -> Result<usize> {
    let k = key(name);
    let v = gguf.get_u32(&k)?.ok_or_else(|| gguf.missing_key(&k))?;
    if v == 0 {
        return Err(GgufError::Malformed {
            path: gguf.path().to_path_buf(),
            what: format!("{k} is 0"),
        });
    }
    Ok(v as usize)
}

impl LlamaConfig {
    /// Read the config of a `general.architecture = "llama"` GGUF. Tensor shapes are checked
    /// separately, by [`tensor_mappings`]' callers.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let architecture = gguf.architecture()?;
        if architecture != ARCHITECTURE {
            return Err(GgufError::UnsupportedArchitecture {
                path: gguf.path().to_path_buf(),
                architecture: architecture.to_string(),
            });
        }
        if gguf.get_u32(&key("expert_count"))?.unwrap_or(0) > 0 {
            return Err(unsupported(
                gguf,
                "mixture-of-experts Llama (llama.expert_count > 0)",
            ));
        }
        let hidden_size = required_usize(gguf, "embedding_length")?;
        let num_attention_heads = required_usize(gguf, "attention.head_count")?;
        let num_key_value_heads = match gguf.get_u32(&key("attention.head_count_kv"))? {
            Some(0) | None => num_attention_heads,
            Some(n) => n as usize,
        };
        if !num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(GgufError::Malformed {
                path: gguf.path().to_path_buf(),
                what: format!(
                    "{num_attention_heads} attention heads are not a multiple of {num_key_value_heads} key/value heads"
                ),
            });
        }
        let head_dim = match gguf.get_u32(&key("attention.key_length"))? {
            Some(n) if n > 0 => n as usize,
            _ if hidden_size.is_multiple_of(num_attention_heads) => {
                hidden_size / num_attention_heads
            }
            _ => {
                return Err(GgufError::Malformed {
                    path: gguf.path().to_path_buf(),
                    what: format!(
                        "embedding length {hidden_size} is not a multiple of {num_attention_heads} heads"
                    ),
                });
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(unsupported(gguf, format!("odd head dimension {head_dim}")));
        }
        if let Some(v) = gguf.get_u32(&key("attention.value_length"))?
            && v as usize != head_dim
        {
            return Err(unsupported(
                gguf,
                format!("value head length {v} differs from key head length {head_dim}"),
            ));
        }
        if let Some(n) = gguf.get_u32(&key("rope.dimension_count"))?
            && n as usize != head_dim
        {
            return Err(unsupported(
                gguf,
                format!(
                    "partial rotary embedding (llama.rope.dimension_count {n}, head dimension {head_dim})"
                ),
            ));
        }
        let rope_theta = gguf
            .get_f32(&key("rope.freq_base"))?
            .map_or(10000.0, f32_as_written);
        let rope_scaling = rope_scaling(gguf, head_dim, rope_theta)?;

        let tokens = gguf
            .get_str_array("tokenizer.ggml.tokens")?
            .map(<[String]>::len);
        let vocab_size = match (tokens, gguf.get_u32(&key("vocab_size"))?) {
            (Some(n), _) => n,
            (None, Some(n)) => n as usize,
            (None, None) => gguf
                .require_tensor("token_embd.weight")?
                .shape()
                .first()
                .copied()
                .unwrap_or(0),
        };
        let token_id = |name: &str| gguf.get_u32(&format!("tokenizer.ggml.{name}"));

        Ok(LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size: required_usize(gguf, "feed_forward_length")?,
            num_hidden_layers: required_usize(gguf, "block_count")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: required_usize(gguf, "context_length")? as u64,
            rms_norm_eps: f32_as_written(
                gguf.get_f32(&key("attention.layer_norm_rms_epsilon"))?
                    .ok_or_else(|| gguf.missing_key(&key("attention.layer_norm_rms_epsilon")))?,
            ),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: gguf.tensor_info("output.weight").is_none(),
            bos_token_id: token_id("bos_token_id")?,
            eos_token_id: token_id("eos_token_id")?,
            pad_token_id: token_id("padding_token_id")?,
        })
    }

    /// The Hugging Face `config.json` of a `LlamaForCausalLM` with these parameters.
    pub fn to_hf_json(&self) -> Json {
        let mut config = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling.as_ref().map(RopeScaling::to_json),
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "hidden_act": "silu",
            "attention_bias": false,
            "attention_dropout": 0.0,
            "mlp_bias": false,
            "initializer_range": 0.02,
            "pretraining_tp": 1,
            "use_cache": true,
            "torch_dtype": "float32",
        });
        if let Some(pad) = self.pad_token_id {
            config["pad_token_id"] = json!(pad);
        }
        config
    }
}

/// `rope_scaling` from the `llama.rope.scaling.*` keys, or from a `rope_freqs.weight` tensor.
fn rope_scaling(gguf: &Gguf, head_dim: usize, rope_theta: f64) -> Result<Option<RopeScaling>> {
    let scaling_type = gguf.get_str(&key("rope.scaling.type"))?;
    let factor = gguf
        .get_f32(&key("rope.scaling.factor"))?
        .map(f32_as_written);
    let original = gguf.get_u64(&key("rope.scaling.original_context_length"))?;
    let from_keys = match (scaling_type, factor) {
        (None | Some("none"), _) => None,
        (Some(_), None) => return Err(gguf.missing_key(&key("rope.scaling.factor"))),
        (Some(_), Some(1.0)) => None,
        (Some("linear"), Some(factor)) => Some(RopeScaling::Linear { factor }),
        (Some("yarn"), Some(factor)) => Some(RopeScaling::Yarn {
            factor,
            original_max_position_embeddings: original,
        }),
        (Some(other), Some(_)) => {
            return Err(unsupported(gguf, format!("rope scaling type `{other}`")));
        }
    };
    let Some(info) = gguf.tensor_info("rope_freqs.weight") else {
        return Ok(from_keys);
    };
    if from_keys.is_some() {
        return Err(unsupported(
            gguf,
            "both llama.rope.scaling.* keys and a rope_freqs.weight tensor",
        ));
    }
    let (shape, factors) = gguf.tensor_f32(&info.name)?;
    if shape != [head_dim / 2] {
        return Err(GgufError::ShapeMismatch {
            path: gguf.path().to_path_buf(),
            tensor: info.name.clone(),
            expected: vec![head_dim / 2],
            found: shape,
        });
    }
    llama3_rope_scaling(&factors, head_dim, rope_theta).map_err(|why| {
        unsupported(
            gguf,
            format!("rope_freqs.weight is not Llama 3 rope scaling: {why}"),
        )
    })
}

/// Llama 3.1 / 3.2's parameters (`low_freq_factor`, `high_freq_factor`,
/// `original_max_position_embeddings`); `rope_freqs` does not determine them on its own, so they
/// are checked against it instead.
const LLAMA3_DEFAULTS: (f64, f64, u64) = (1.0, 4.0, 8192);

/// The per-frequency factors `convert_hf_to_gguf.py` writes as `rope_freqs.weight` for a Llama 3
/// rope scaling (`LlamaModel.generate_extra_tensors`): the wavelength `2 pi / f` of each rotary
/// frequency `f = theta^(-2i/d)` is kept below `old / high`, divided by `factor` above `old / low`,
/// and interpolated in between.
pub fn llama3_rope_factors(
    head_dim: usize,
    rope_theta: f64,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    original_max_position_embeddings: u64,
) -> Vec<f64> {
    let old = original_max_position_embeddings as f64;
    let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / rope_theta.powf((2 * i) as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth =
                    (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

/// Recover Llama 3 rope scaling from `rope_freqs.weight`: `factor` is its largest entry, the rest
/// must match [`llama3_rope_factors`] with Llama 3.1's other parameters (relative error 1e-4).
/// All ones means no scaling.
pub fn llama3_rope_scaling(
    factors: &[f32],
    head_dim: usize,
    rope_theta: f64,
) -> Result<Option<RopeScaling>, String> {
    let factor = factors.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !factor.is_finite() || factor < 1.0 {
        return Err(format!(
            "largest factor {factor} is not a finite number >= 1"
        ));
    }
    if factors.iter().all(|&f| f == 1.0) {
        return Ok(None);
    }
    let factor = f32_as_written(factor);
    let (low, high, original) = LLAMA3_DEFAULTS;
    let expected = llama3_rope_factors(head_dim, rope_theta, factor, low, high, original);
    let worst = factors
        .iter()
        .zip(&expected)
        .map(|(&got, &want)| ((f64::from(got) - want) / want).abs())
        .fold(0.0, f64::max);
    if worst > 1e-4 {
        return Err(format!(
            "it differs (relative {worst:.2e}) from factor {factor} with low_freq_factor {low}, \
             high_freq_factor {high}, original_max_position_embeddings {original}"
        ));
    }
    Ok(Some(RopeScaling::Llama3 {
        factor,
        low_freq_factor: low,
        high_freq_factor: high,
        original_max_position_embeddings: original,
    }))
}

/// One GGUF tensor and the Hugging Face tensor it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapping {
    pub gguf_name: String,
    pub hf_name: String,
    /// The shape both have, row-major (`ne` reversed).
    pub shape: Vec<usize>,
    /// For `q_proj` / `k_proj`: the head count to undo llama.cpp's row permutation with.
    pub unpermute_heads: Option<usize>,
}

/// Every tensor of a Llama model with this config: GGUF name, Hugging Face name, shape.
pub fn tensor_mappings(config: &LlamaConfig) -> Vec<TensorMapping> {
    let d = config.hidden_size;
    let q_rows = config.num_attention_heads * config.head_dim;
    let kv_rows = config.num_key_value_heads * config.head_dim;
    let ff = config.intermediate_size;
    let map = |gguf: &str, hf: &str, shape: &[usize], heads: Option<usize>| TensorMapping {
        gguf_name: gguf.to_string(),
        hf_name: hf.to_string(),
        shape: shape.to_vec(),
        unpermute_heads: heads,
    };
    let mut out = vec![map(
        "token_embd.weight",
        "model.embed_tokens.weight",
        &[config.vocab_size, d],
        None,
    )];
    for i in 0..config.num_hidden_layers {
        let (g, h) = (format!("blk.{i}."), format!("model.layers.{i}."));
        let layer: [(&str, &str, &[usize], Option<usize>); 9] = [
            ("attn_norm", "input_layernorm", &[d], None),
            (
                "attn_q",
                "self_attn.q_proj",
                &[q_rows, d],
                Some(config.num_attention_heads),
            ),
            (
                "attn_k",
                "self_attn.k_proj",
                &[kv_rows, d],
                Some(config.num_key_value_heads),
            ),
            ("attn_v", "self_attn.v_proj", &[kv_rows, d], None),
            ("attn_output", "self_attn.o_proj", &[d, q_rows], None),
            ("ffn_norm", "post_attention_layernorm", &[d], None),
            ("ffn_gate", "mlp.gate_proj", &[ff, d], None),
            ("ffn_up", "mlp.up_proj", &[ff, d], None),
            ("ffn_down", "mlp.down_proj", &[d, ff], None),
        ];
        for (gguf, hf, shape, heads) in layer {
            out.push(map(
                &format!("{g}{gguf}.weight"),
                &format!("{h}{hf}.weight"),
                shape,
                heads,
            ));
        }
    }
    out.push(map("output_norm.weight", "model.norm.weight", &[d], None));
    if !config.tie_word_embeddings {
        out.push(map(
            "output.weight",
            "lm_head.weight",
            &[config.vocab_size, d],
            None,
        ));
    }
    out
}

/// GGUF tensors that are consumed into the config rather than exported.
const CONFIG_TENSORS: [&str; 1] = ["rope_freqs.weight"];

/// [`tensor_mappings`], checked against the file: every tensor present, of the expected shape,
/// of a type that dequantises, with its data inside the file; and no tensor left over.
pub fn checked_tensor_mappings(gguf: &Gguf, config: &LlamaConfig) -> Result<Vec<TensorMapping>> {
    let mappings = tensor_mappings(config);
    for m in &mappings {
        let info = gguf.require_tensor(&m.gguf_name)?;
        let found = info.shape();
        if found != m.shape {
            return Err(GgufError::ShapeMismatch {
                path: gguf.path().to_path_buf(),
                tensor: m.gguf_name.clone(),
                expected: m.shape.clone(),
                found,
            });
        }
        gguf.tensor_source(info)?;
    }
    let known: std::collections::HashSet<&str> = mappings
        .iter()
        .map(|m| m.gguf_name.as_str())
        .chain(CONFIG_TENSORS)
        .collect();
    if let Some(extra) = gguf
        .tensors()
        .iter()
        .find(|t| !known.contains(t.name.as_str()))
    {
        return Err(unsupported(
            gguf,
            format!(
                "tensor `{}` has no Hugging Face LlamaForCausalLM counterpart",
                extra.name
            ),
        ));
    }
    Ok(mappings)
}

/// The Hugging Face tensor of `mapping`, dequantised to `f32` and un-permuted, row-major.
pub fn hf_tensor(gguf: &Gguf, mapping: &TensorMapping) -> Result<Vec<f32>> {
    let (_, data) = gguf.tensor_f32(&mapping.gguf_name)?;
    Ok(match mapping.unpermute_heads {
        Some(heads) => {
            let cols = mapping.shape.get(1).copied().unwrap_or(1);
            unpermute_qk(&data, mapping.shape[0], cols, heads)
        }
        None => data,
    })
}

/// The source row (in `w`'s order) of each output row, for [`permute_qk`] (`inverse = false`)
/// or [`unpermute_qk`] (`inverse = true`).
fn qk_row_order(rows: usize, n_head: usize, inverse: bool) -> Vec<usize> {
    assert!(
        n_head > 0 && rows.is_multiple_of(2 * n_head),
        "{rows} rows do not split into {n_head} heads of rotary pairs"
    );
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    // llama.cpp's layout: row `h*hd + 2*i + j` holds Hugging Face row `h*hd + j*half + i`.
    (0..rows)
        .map(|r| {
            let (h, rem) = (r / head_dim, r % head_dim);
            let base = h * head_dim;
            if inverse {
                let (j, i) = (rem / half, rem % half);
                base + 2 * i + j
            } else {
                let (i, j) = (rem / 2, rem % 2);
                base + j * half + i
            }
        })
        .collect()
}

fn reorder_rows(w: &[f32], rows: usize, cols: usize, order: &[usize]) -> Vec<f32> {
    assert_eq!(w.len(), rows * cols, "a {rows}x{cols} matrix");
    let mut out = Vec::with_capacity(w.len());
    for &src in order {
        out.extend_from_slice(&w[src * cols..(src + 1) * cols]);
    }
    out
}

/// llama.cpp's q/k permutation (Hugging Face -> GGUF) of a row-major `rows x cols` matrix.
///
/// # Panics
/// If `w.len() != rows * cols` or `rows` is not a multiple of `2 * n_head`.
pub fn permute_qk(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    reorder_rows(w, rows, cols, &qk_row_order(rows, n_head, false))
}

/// The inverse of [`permute_qk`] (GGUF -> Hugging Face): numpy's
/// `w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
///
/// # Panics
/// If `w.len() != rows * cols` or `rows` is not a multiple of `2 * n_head`.
pub fn unpermute_qk(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    reorder_rows(w, rows, cols, &qk_row_order(rows, n_head, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's permute on a small case, worked by hand: 1 head, head_dim 4 (half 2), 1 column.
    /// reshape(1, 2, 2) = [[a, b], [c, d]] -> swapaxes -> [[a, c], [b, d]] -> rows a, c, b, d.
    #[test]
    fn permute_interleaves_the_two_halves() {
        let w = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(permute_qk(&w, 4, 1, 1), [0.0, 2.0, 1.0, 3.0]);
        let w: Vec<f32> = (0..8).map(|x| x as f32).collect();
        // Two heads of 4 rows each, permuted independently.
        assert_eq!(
            permute_qk(&w, 8, 1, 2),
            [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
        );
        // Head dim 6: halves [0,1,2] and [3,4,5] interleave.
        let w: Vec<f32> = (0..6).map(|x| x as f32).collect();
        assert_eq!(permute_qk(&w, 6, 1, 1), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn unpermute_inverts_permute() {
        for (rows, cols, heads) in [(8, 3, 2), (12, 5, 3), (64, 7, 4), (576, 2, 9), (192, 1, 3)] {
            let w: Vec<f32> = (0..rows * cols).map(|x| x as f32 * 0.5 - 3.0).collect();
            let permuted = permute_qk(&w, rows, cols, heads);
            assert_ne!(permuted, w);
            assert_eq!(unpermute_qk(&permuted, rows, cols, heads), w);
            assert_eq!(
                permute_qk(&unpermute_qk(&w, rows, cols, heads), rows, cols, heads),
                w
            );
        }
    }

    #[test]
    fn llama3_factors_round_trip() {
        // Llama 3.2 1B: head_dim 64, theta 500000, factor 32.
        let factors: Vec<f32> = llama3_rope_factors(64, 500000.0, 32.0, 1.0, 4.0, 8192)
            .into_iter()
            .map(|f| f as f32)
            .collect();
        assert!(
            factors.iter().any(|&f| f > 1.0 && f < 32.0),
            "has a smooth band"
        );
        assert_eq!(
            llama3_rope_scaling(&factors, 64, 500000.0).unwrap(),
            Some(RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192
            })
        );
        assert_eq!(llama3_rope_scaling(&[1.0; 32], 64, 500000.0).unwrap(), None);
        let mut odd = factors.clone();
        odd[20] *= 1.5;
        assert!(llama3_rope_scaling(&odd, 64, 500000.0).is_err());
    }

    #[test]
    fn f32_keys_print_as_written() {
        assert_eq!(f32_as_written(1e-5), 1e-5);
        assert_eq!(f32_as_written(100000.0), 100000.0);
        assert_eq!(f32_as_written(1e-6), 1e-6);
    }
}
