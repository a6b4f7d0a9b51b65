//! `just test-hf`'s Rust half: trains a tiny GPT and a tiny Llama (GQA; tied and untied) for
//! a few steps, exports each as dapt's training stages do (`config.json`,
//! `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`), and writes beside them
//! `dapt_reference.safetensors`: the `input_ids` (i64 `[B, T]`) and dapt's `logits` (f32
//! `[B, T, V]`). `scripts/check_hf_export.py` then loads each folder in transformers and
//! compares.
//!
//!     cargo run --release -p dapt-model --example hf_export_check -- OUT_DIR

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use dapt_model::burn::prelude::*;
use dapt_model::{GptConfig, LlamaConfig, ModelConfig, export_model, ids_tensor, measure_training};
use safetensors::tensor::{Dtype, TensorView};

const TEXT: &str = "The Federal Reserve raised its benchmark rate by 25 basis points on Wednesday. \
    Shares of banks rose while bond yields fell; analysts expect two more increases this year. \
    Revenue grew 12% to $4.2 billion, and the company raised its full-year guidance.";

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
    let models = [
        (
            "gpt2_tied",
            ModelConfig::Gpt(GptConfig {
                vocab_size,
                n_layer: 2,
                n_head: 4,
                d_model: 32,
                context: 32,
                ..GptConfig::default()
            }),
        ),
        ("llama_gqa_tied", llama(2, true)),
        ("llama_mqa_untied", llama(1, false)),
    ];
    let device = Device::flex();
    for (name, config) in models {
        // A few real steps, so the weights are no longer the initialisation's.
        let trained = measure_training(&config, 4, 32, 5, &device, &mut |_| {})?.model;
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
        let (rows, cols) = (2, 12);
        let ids: Vec<u32> = (0..rows * cols)
            .map(|i| (i * 37 % vocab_size) as u32)
            .collect();
        let logits = trained
            .forward(ids_tensor(&ids, rows, cols, &device))
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let id_bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| i64::from(i).to_le_bytes())
            .collect();
        let logit_bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![
            (
                "input_ids".to_string(),
                TensorView::new(Dtype::I64, vec![rows, cols], &id_bytes)?,
            ),
            (
                "logits".to_string(),
                TensorView::new(Dtype::F32, vec![rows, cols, vocab_size], &logit_bytes)?,
            ),
        ];
        std::fs::write(
            dir.join("dapt_reference.safetensors"),
            safetensors::serialize(views, None)?,
        )?;
        println!("{name}: exported to {}", dir.display());
    }
    Ok(())
}
