//! dapt-model: decoder-only language models on burn (GPT-2 and Llama families, one set of
//! layers), a resumable step-level training loop with atomic checkpoints, Hugging Face
//! import/export, sampling with a key/value cache, and evaluation helpers (token NLL for
//! perplexity and bits per byte, pooled features for probes).
//!
//! - [`ModelConfig::init`] builds a [`Decoder`] ([`GptConfig`] or [`LlamaConfig`]);
//!   [`Decoder::forward`] gives logits, [`Decoder::hidden_states`] and
//!   [`Decoder::mean_pooled`] give features; [`mean_nll`] / [`sum_nll`] / [`per_token_nll`]
//!   are the losses.
//! - [`train`] runs (or resumes) a [`TrainRun`], drawing batches from a [`BatchSource`] and
//!   reporting through a [`TrainObserver`]; see [`checkpoint`] for the on-disk layout.
//! - [`export_model`] / [`load_exported`] write and read a Hugging Face model folder
//!   (`config.json` + `model.safetensors`, transformers' names), see `hf.rs`.
//! - [`generate`] samples tokens (greedy, temperature, top-p) with a [`KvCache`].
//! - [`token_nll`] scores long documents with rolling windows.
//! - [`ComputeBudget`]: 6ND FLOPs, the Chinchilla-optimal token count and fitted loss.
//! - [`mlm`]: BERT-style masked-LM masking (80/10/10, whole words), the data side of an
//!   encoder objective.
//! - [`span`]: T5 span corruption (noise masks, sentinel inputs and targets, example lengths).
//! - [`Objective`]: what a run predicts (`clm`, `mlm`) and the batches, masks and loss
//!   weights it makes of token rows; part of [`TrainConfig`].
//!
//! Determinism: on the CPU (flex) backend a run is a pure function of its configs and data; a
//! killed run resumed from its newest checkpoint ends bit-identical to an uninterrupted one
//! (tested with dropout on). Weight init uses our own seeded RNG; dropout uses the backend RNG,
//! reseeded per micro-batch from `(seed, counter)`. That RNG is process-global, so two trainers
//! with dropout running concurrently in one process perturb each other.

mod attention;
pub mod checkpoint;
mod config;
mod device;
mod eval;
mod export;
mod flexbuf;
mod gelu;
mod gemm;
mod generate;
mod hf;
mod layer_norm;
mod linear;
mod loss;
pub mod mlm;
mod model;
mod norm;
mod objective;
mod optim;
mod params;
mod rng;
mod rope;
mod scaling;
mod seq2seq;
pub mod span;
mod swiglu;
#[cfg(test)]
mod testing;
mod throughput;
mod train;
mod vmath;

pub use config::{
    Activation, BertConfig, EncoderFlavour, GptConfig, LlamaConfig, ModelConfig, RopeScaling,
    T5Config,
};
pub use device::device_from_name;
pub use eval::{TokenNll, padded_token_nll_rows, pooled_features, token_nll, token_nll_rows};
pub use export::{
    CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, export_model, load_exported,
    load_safetensors_weights, read_exported_config, weights_to_hf_safetensors,
    weights_to_safetensors,
};
pub use generate::{Sampling, generate};
pub use hf::{from_hf_config, to_hf_config};
pub use loss::{mean_nll, per_token_nll, sum_nll};
pub use model::{Block, Decoder, Heads, KvCache, Mlp, SelfAttention, ids_tensor};
pub use norm::Norm;
pub use objective::{Objective, ObjectiveBatch};
pub use optim::{AdamWConfig, LrSchedule};
pub use scaling::{CHINCHILLA_TOKENS_PER_PARAM, ComputeBudget, predicted_loss};
pub use seq2seq::{CrossAttention, RelativeBias};
pub use throughput::{RandomTokens, Throughput, measure_training};
pub use train::{
    BatchSource, Diverged, Initialization, LOG_FILE, Silent, StepRecord, THROUGHPUT_FILE,
    TrainConfig, TrainObserver, TrainOutcome, TrainRun, ValidationSet, train,
};

/// Re-exported so callers name the same burn types (`Device`, `Tensor`) without a version skew.
pub use burn;
