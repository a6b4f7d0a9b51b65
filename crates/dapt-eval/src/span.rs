//! Per-domain span-corruption loss of an encoder-decoder (T5).
//!
//! Each document is cut into windows of `raw_length` tokens; each window is corrupted as
//! in training (15% of its tokens in spans of mean length 3, each span replaced by a
//! sentinel) with the seed [`Objective::validation_seed`] of its index, the same masks for
//! every model; the decoder's mean NLL over the targets (the sentinels and the dropped
//! spans, then the end of text) is the score. One pass per window, so a window's score
//! never depends on the others'.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use dapt_model::{Decoder, Objective};
use serde::{Deserialize, Serialize};

/// How an encoder-decoder is scored.
#[derive(Debug, Clone)]
pub struct SpanEvalConfig {
    /// Tokens per window before corruption.
    pub raw_length: usize,
    pub batch_size: usize,
    /// The corruption (its `sentinels`, `eos` and `decoder_start` from the tokenizer).
    pub objective: Objective,
}

/// One domain's span-corruption scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanScore {
    pub documents: u64,
    pub windows: u64,
    /// Target tokens predicted (sentinels, span tokens, end of text).
    pub target_tokens: u64,
    /// Mean NLL of the targets, nats.
    pub span_loss: f64,
    /// `exp(span_loss)`.
    pub span_perplexity: f64,
}

/// Scores `documents` (token ids) with the encoder-decoder `model` (on a device without
/// autodiff). `progress` receives the windows finished.
pub fn score_span(
    model: &Decoder,
    documents: &[&[u32]],
    config: &SpanEvalConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<SpanScore> {
    ensure!(
        model.is_seq2seq(),
        "span-corruption scores need an encoder-decoder"
    );
    ensure!(
        matches!(config.objective, Objective::Span { .. }),
        "span-corruption scores need the span objective"
    );
    ensure!(
        config.raw_length >= 2 && config.batch_size > 0,
        "raw_length must be at least 2 and batch_size at least 1"
    );
    let device = model.token_embedding.weight.device();
    let windows: Vec<&[u32]> = documents
        .iter()
        .flat_map(|d| d.chunks(config.raw_length))
        .filter(|w| w.len() >= 2)
        .collect();
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, w) in windows.iter().enumerate() {
        by_length.entry(w.len()).or_default().push(i);
    }
    let vocab = model.vocab_size();
    let (mut nats, mut target_tokens) = (0f64, 0u64);
    for (&len, indices) in &by_length {
        for batch in indices.chunks(config.batch_size) {
            // One row per window (the objective reads rows of len + 1; the last id is
            // unused), corrupted with its own window's seed.
            for &i in batch {
                let mut row = windows[i].to_vec();
                row.push(windows[i][0]);
                let scored = config.objective.batch(
                    &row,
                    1,
                    len,
                    vocab,
                    Objective::validation_seed(i as u64),
                    &device,
                )?;
                nats += f64::from(scored.sum_nll(scored.logits(model)).into_scalar::<f32>());
                target_tokens += scored.predicted as u64;
            }
            progress(batch.len() as u64);
        }
    }
    let span_loss = nats / target_tokens.max(1) as f64;
    Ok(SpanScore {
        documents: documents.len() as u64,
        windows: windows.len() as u64,
        target_tokens,
        span_loss,
        span_perplexity: span_loss.exp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dapt_model::burn::prelude::*;
    use dapt_model::{ModelConfig, T5Config};

    #[test]
    fn a_fresh_t5_scores_near_uniform_and_the_same_twice() {
        let model = ModelConfig::T5(T5Config {
            vocab_size: 40,
            n_layer: 1,
            n_decoder_layer: 1,
            n_head: 2,
            d_model: 8,
            d_kv: 4,
            d_ff: 16,
            context: 32,
            relative_buckets: 8,
            ..T5Config::default()
        })
        .init(2, &Device::flex())
        .unwrap();
        let config = SpanEvalConfig {
            raw_length: 16,
            batch_size: 2,
            objective: Objective::Span {
                noise: Default::default(),
                sentinels: (32..40).collect(),
                eos: 1,
                decoder_start: 0,
            },
        };
        let docs: Vec<Vec<u32>> = (0..3)
            .map(|d| {
                (0..(20 + 7 * d))
                    .map(|t| 2 + ((t * 3 + d) % 29) as u32)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = docs.iter().map(Vec::as_slice).collect();
        let mut windows = 0;
        let a = score_span(&model, &refs, &config, &mut |n| windows += n).unwrap();
        let b = score_span(&model, &refs, &config, &mut |_| {}).unwrap();
        assert_eq!(a, b);
        assert_eq!(windows, a.windows);
        assert!(a.target_tokens > a.windows, "{a:?}");
        assert!((a.span_perplexity - 40.0).abs() < 20.0, "{a:?}");
    }
}
