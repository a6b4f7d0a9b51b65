//! `just test-hf`'s Rust half: trains tiny models of every family for a few steps, each with
//! its own objective — a GPT, Llamas (GQA; tied and untied), a BERT (tied masked-LM head), a
//! RoBERTa (positions offset by 2, untied head) and two T5s (ReLU with a tied, scaled head;
//! gated GELU with an untied, unscaled one) — then moves every weight by a deterministic
//! amount of up to ±0.1, so that norm gains are no longer 1 and biases no longer 0 (a wrong
//! norm or bias mapping shows in the logits). Each is exported as dapt's training stages do
//! (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`), with
//! `dapt_reference.safetensors` beside it:
//!
//! - `input_ids` (i64 `[B, T]`) and dapt's `logits` (f32 `[B, T, V]`): next-token logits of
//!   the decoders, masked-LM logits of the encoders (`Decoder::forward`);
//! - T5: the encoder's `input_ids` (i64 `[B, Te]`), `decoder_input_ids` (i64 `[B, Td]`, the
//!   first the decoder start id 0) and the decoder's `logits` (f32 `[B, Td, V]`,
//!   `Decoder::forward_seq2seq`);
//! - metadata `expected_class`: the transformers class the folder must load as.
//!
//! `scripts/check_hf_export.py` then loads each folder in transformers and compares.
//!
//!     cargo run --release -p dapt-model --example hf_export_check -- OUT_DIR

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result};
use dapt_model::burn::module::{Module, ModuleMapper, Param};
use dapt_model::burn::prelude::*;
use dapt_model::{
    Activation, BertConfig, Decoder, EncoderFlavour, GptConfig, LlamaConfig, ModelConfig, T5Config,
    export_model, ids_tensor, measure_training,
};
use safetensors::tensor::{Dtype, TensorView};

const TEXT: &str = "The Federal Reserve raised its benchmark rate by 25 basis points on Wednesday. \
    Shares of banks rose while bond yields fell; analysts expect two more increases this year. \
    Revenue grew 12% to $4.2 billion, and the company raised its full-year guidance.";

/// Adds `0.1 · u`, `u` uniform in [-1, 1) from a 64-bit LCG, to every element of every float
/// parameter: norm gains move off 1 and biases off 0, and the matrices grow to where the
/// logits spread over about ±1, so that a wrong mapping moves them well past the tolerance.
struct Perturb {
    state: u64,
}

impl Perturb {
    fn next(&mut self) -> f32 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        let require_grad = value.is_require_grad();
        let shape = value.shape();
        let noise: Vec<f32> = (0..shape.num_elements())
            .map(|_| 0.1 * self.next())
            .collect();
        let noise = Tensor::<D>::from_data(TensorData::new(noise, shape), &value.device());
        let updated = value.inner() + noise;
        let updated = if require_grad {
            Tensor::from_inner(updated).require_grad()
        } else {
            updated
        };
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// `bytes` (little-endian) as a safetensors tensor of `dtype` and `shape`.
fn view<'a>(dtype: Dtype, shape: Vec<usize>, bytes: &'a [u8]) -> Result<TensorView<'a>> {
    Ok(TensorView::new(dtype, shape, bytes)?)
}

fn id_bytes(ids: &[u32]) -> Vec<u8> {
    ids.iter()
        .flat_map(|&i| i64::from(i).to_le_bytes())
        .collect()
}

fn logits_vec(logits: Tensor<3>) -> Result<Vec<f32>> {
    logits
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: hf_export_check OUT_DIR")?,
    );
    let samples = (0..40).map(|i| ("general", format!("{TEXT} ({i})")));
    let shares = BTreeMap::from([("general".to_string(), 1.0)]);
    let tokenizer = dapt_tokenize::train_tokenizer(
        samples,
        &shares,
        &dapt_tokenize::TokenizerTrainingConfig {
            vocab_size: 320,
            sample_bytes_budget: 1 << 20,
            seed: 1,
        },
    )?
    .tokenizer;
    let vocab_size = tokenizer.get_vocab_size(true);
    let llama = |n_kv_head, tie_embeddings| {
        ModelConfig::Llama(LlamaConfig {
            vocab_size,
            n_layer: 2,
            n_head: 4,
            n_kv_head,
            d_model: 32,
            d_ff: 64,
            context: 32,
            head_dim: 8,
            rope_theta: 100_000.0,
            tie_embeddings,
            ..LlamaConfig::default()
        })
    };
    let bert = |flavour, position_offset, tie_embeddings| {
        ModelConfig::Bert(BertConfig {
            vocab_size,
            n_layer: 2,
            n_head: 4,
            d_model: 32,
            d_ff: 64,
            context: 32,
            position_offset,
            tie_embeddings,
            flavour,
            ..BertConfig::default()
        })
    };
    let t5 = |n_decoder_layer, activation, tie_embeddings, scale_logits| {
        ModelConfig::T5(T5Config {
            vocab_size,
            n_layer: 2,
            n_decoder_layer,
            n_head: 4,
            d_model: 32,
            d_kv: 8,
            d_ff: 64,
            activation,
            context: 32,
            relative_buckets: 8,
            relative_max_distance: 20,
            tie_embeddings,
            scale_logits,
            ..T5Config::default()
        })
    };
    let models = [
        (
            "gpt2_tied",
            "GPT2LMHeadModel",
            ModelConfig::Gpt(GptConfig {
                vocab_size,
                n_layer: 2,
                n_head: 4,
                d_model: 32,
                context: 32,
                ..GptConfig::default()
            }),
        ),
        ("llama_gqa_tied", "LlamaForCausalLM", llama(2, true)),
        ("llama_mqa_untied", "LlamaForCausalLM", llama(1, false)),
        (
            "bert_tied",
            "BertForMaskedLM",
            bert(EncoderFlavour::Bert, 0, true),
        ),
        (
            "roberta_untied",
            "RobertaForMaskedLM",
            bert(EncoderFlavour::Roberta, 2, false),
        ),
        (
            "t5_relu_tied",
            "T5ForConditionalGeneration",
            t5(2, Activation::Relu, true, true),
        ),
        (
            "t5_gated_untied",
            "T5ForConditionalGeneration",
            // Fewer decoder layers than encoder ones: transformers 5.25's `generate` sizes
            // T5's cache by `num_layers`, so more decoder layers than that fail there.
            t5(1, Activation::GatedGeluTanh, false, false),
        ),
    ];
    let device = Device::flex();
    for (name, class, config) in models {
        // A few real steps of the family's own objective, then every parameter moved off
        // its initial value (norms 1, biases 0 would hide a wrong mapping of either).
        let trained: Decoder = measure_training(&config, 4, 32, 5, &device, &mut |_| {})?
            .model
            .map(&mut Perturb { state: 7 });
        let dir = out.join(name);
        export_model(&trained, &config, &dir)?;
        dapt_tokenize::save_tokenizer(&tokenizer, &dir.join("tokenizer.json"))?;
        std::fs::write(
            dir.join("tokenizer_config.json"),
            serde_json::to_vec_pretty(&dapt_tokenize::hf_tokenizer_config(
                &tokenizer,
                config.context(),
            ))?,
        )?;
        // Ids from 2 up: RoBERTa numbers positions past its padding id 1, which the input
        // must not hold.
        let ids_of = |rows: usize, cols: usize, stride: usize| -> Vec<u32> {
            (0..rows * cols)
                .map(|i| (2 + i * stride % (vocab_size - 2)) as u32)
                .collect()
        };
        let (rows, cols) = (2, 12);
        let ids = ids_of(rows, cols, 37);
        let input_bytes = id_bytes(&ids);
        let mut views = vec![(
            "input_ids".to_string(),
            view(Dtype::I64, vec![rows, cols], &input_bytes)?,
        )];
        // T5: a decoder input shorter than the encoder's, each row from the start id 0.
        let decoder_ids = config.is_seq2seq().then(|| {
            let cols = 7;
            let mut ids = ids_of(rows, cols, 53);
            for row in ids.chunks_mut(cols) {
                row[0] = 0;
            }
            (ids, cols)
        });
        let encoder_ids = ids_tensor(&ids, rows, cols, &device);
        let (logits, logit_cols) = match &decoder_ids {
            Some((dec, dec_cols)) => (
                trained.forward_seq2seq(encoder_ids, ids_tensor(dec, rows, *dec_cols, &device)),
                *dec_cols,
            ),
            None => (trained.forward(encoder_ids), cols),
        };
        let logits = logits_vec(logits)?;
        let decoder_bytes = decoder_ids.as_ref().map(|(dec, _)| id_bytes(dec));
        if let Some(bytes) = &decoder_bytes {
            views.push((
                "decoder_input_ids".to_string(),
                view(Dtype::I64, vec![rows, logit_cols], bytes)?,
            ));
        }
        let logit_bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        views.push((
            "logits".to_string(),
            view(Dtype::F32, vec![rows, logit_cols, vocab_size], &logit_bytes)?,
        ));
        let metadata = HashMap::from([("expected_class".to_string(), class.to_string())]);
        std::fs::write(
            dir.join("dapt_reference.safetensors"),
            safetensors::serialize(views, Some(metadata))?,
        )?;
        println!("{name}: exported to {}", dir.display());
    }
    Ok(())
}
