//! Language-modelling scores of a set of documents: mean token loss, perplexity and bits per
//! byte.
//!
//! Each document is scored as `<|endoftext|>` followed by its text tokens, so the first text
//! token is predicted from the document boundary (as in training) and the trailing separator
//! stored in token shards is *not* scored: bits per byte then measures the text alone, as
//! lm-evaluation-harness does (`bits_per_byte = Σ NLL / ln 2 / Σ UTF-8 bytes`). Documents that
//! fit in one window (`tokens ≤ context`) are batched together, padded on the right (the model
//! is causal, so padding never changes a scored position); longer ones go through
//! [`dapt_model::token_nll`]'s rolling windows (each token predicted once, with at least
//! `context - stride` tokens of history).

use anyhow::{Result, ensure};
use dapt_model::{Decoder, TokenNll, padded_token_nll_rows, token_nll};
use serde::{Deserialize, Serialize};

/// How documents are scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmEvalConfig {
    /// Input tokens per window (at most the model context).
    pub context: usize,
    /// New tokens scored per rolling window after the first.
    pub stride: usize,
    /// Windows per forward pass; short documents are packed up to `batch_size · context`
    /// tokens per pass.
    pub batch_size: usize,
}

/// Scores of a set of documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmScore {
    pub documents: u64,
    /// Scored tokens (the text tokens; separators excluded).
    pub tokens: u64,
    /// UTF-8 bytes of the documents' text.
    pub bytes: u64,
    pub sum_nats: f64,
    /// Mean NLL per token, nats.
    pub token_loss: f64,
    /// `exp(token_loss)`: per token, so only comparable between models sharing a tokenizer.
    pub perplexity: f64,
    /// Tokenizer-independent: `sum_nats / ln 2 / bytes`.
    pub bits_per_byte: f64,
}

impl LmScore {
    pub fn new(nll: TokenNll, documents: u64, bytes: u64) -> Self {
        let token_loss = if nll.tokens == 0 {
            0.0
        } else {
            nll.mean_nats()
        };
        Self {
            documents,
            tokens: nll.tokens,
            bytes,
            sum_nats: nll.sum_nats,
            token_loss,
            perplexity: token_loss.exp(),
            bits_per_byte: if bytes == 0 {
                0.0
            } else {
                nll.bits_per_byte(bytes)
            },
        }
    }
}

/// One document to score: its tokens as stored in a token shard (a trailing `end_of_text`, if
/// present, is dropped) and the UTF-8 bytes of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredDocument<'a> {
    pub tokens: &'a [u32],
    pub bytes: u64,
}

/// The ids a document is scored on: separator, then its text tokens.
fn scoring_ids(tokens: &[u32], end_of_text: u32) -> Vec<u32> {
    let text = match tokens.split_last() {
        Some((&last, rest)) if last == end_of_text => rest,
        _ => tokens,
    };
    let mut ids = Vec::with_capacity(text.len() + 1);
    ids.push(end_of_text);
    ids.extend_from_slice(text);
    ids
}

/// Scores `documents` with `model` (on a device without autodiff). `progress` receives the
/// number of documents finished after each forward pass (in all, `documents.len()`).
pub fn score_documents(
    model: &Decoder,
    documents: &[ScoredDocument<'_>],
    end_of_text: u32,
    config: &LmEvalConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<LmScore> {
    ensure!(
        (1..=model.context()).contains(&config.context),
        "context {} must be in 1..={} (the model context)",
        config.context,
        model.context()
    );
    ensure!(config.batch_size > 0, "batch_size must be at least 1");
    let mut total = TokenNll::default();
    let bytes: u64 = documents.iter().map(|d| d.bytes).sum();
    let all_ids: Vec<Vec<u32>> = documents
        .iter()
        .map(|d| scoring_ids(d.tokens, end_of_text))
        .collect();
    // Short documents: one window each, packed by length (shortest first, deterministic).
    let mut short: Vec<&[u32]> = all_ids
        .iter()
        .filter(|ids| ids.len() >= 2 && ids.len() <= config.context + 1)
        .map(Vec::as_slice)
        .collect();
    short.sort_by_key(|ids| ids.len());
    // Documents without a token to score are finished before any pass.
    progress(all_ids.iter().filter(|ids| ids.len() < 2).count() as u64);
    let budget = config.batch_size * config.context;
    let mut start = 0;
    while start < short.len() {
        let mut end = start + 1;
        while end < short.len() && (end + 1 - start) * (short[end].len() - 1) <= budget {
            end += 1;
        }
        let group = &short[start..end];
        let (values, width) = padded_token_nll_rows(model, group, end_of_text)?;
        for (row, ids) in values.chunks(width).zip(group) {
            let len = ids.len() - 1;
            total += TokenNll {
                sum_nats: row[..len].iter().map(|&v| f64::from(v)).sum(),
                tokens: len as u64,
            };
        }
        progress((end - start) as u64);
        start = end;
    }
    // Long documents: rolling windows, in input order.
    for ids in all_ids.iter().filter(|ids| ids.len() > config.context + 1) {
        let nll = token_nll(model, ids, config.context, config.stride, config.batch_size)?;
        total += nll;
        progress(1);
    }
    Ok(LmScore::new(total, documents.len() as u64, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dapt_model::burn::module::Param;
    use dapt_model::burn::prelude::*;
    use dapt_model::{GptConfig, ModelConfig};

    fn config(vocab_size: usize) -> ModelConfig {
        ModelConfig::Gpt(GptConfig {
            vocab_size,
            n_layer: 1,
            n_head: 2,
            d_model: 8,
            context: 16,
            ..GptConfig::default()
        })
    }

    /// A tied model whose token embedding is zero: every logit is 0, every next token has
    /// probability 1/vocab.
    fn uniform_model(vocab_size: usize) -> Decoder {
        let device = Device::flex();
        let mut model = config(vocab_size).init(3, &device).unwrap();
        model.token_embedding.weight =
            Param::from_tensor(Tensor::<2>::zeros([vocab_size, 8], &device));
        model
    }

    fn scored(docs: &[(Vec<u32>, u64)]) -> Vec<ScoredDocument<'_>> {
        docs.iter()
            .map(|(tokens, bytes)| ScoredDocument {
                tokens,
                bytes: *bytes,
            })
            .collect()
    }

    fn documents(vocab: u32, end_of_text: u32) -> Vec<(Vec<u32>, u64)> {
        // Lengths around the context (16): single-window, exactly-fitting and rolling ones.
        [1usize, 3, 15, 16, 17, 40, 100]
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let mut tokens: Vec<u32> = (0..len as u32)
                    .map(|t| (t * 7 + i as u32) % vocab)
                    .collect();
                tokens.push(end_of_text);
                (tokens, (len as u64) * 3 + i as u64)
            })
            .collect()
    }

    #[test]
    fn uniform_model_scores_log2_vocab_per_token() {
        let vocab = 50;
        let model = uniform_model(vocab);
        let end_of_text = 49;
        let docs = documents(vocab as u32 - 1, end_of_text);
        let scored = scored(&docs);
        let mut seen = 0;
        let score = score_documents(
            &model,
            &scored,
            end_of_text,
            &LmEvalConfig {
                context: 16,
                stride: 5,
                batch_size: 2,
            },
            &mut |n| seen += n,
        )
        .unwrap();
        let text_tokens: u64 = docs.iter().map(|(t, _)| t.len() as u64 - 1).sum();
        let bytes: u64 = docs.iter().map(|(_, b)| b).sum();
        assert_eq!(score.tokens, text_tokens, "each text token scored once");
        assert_eq!(
            seen,
            docs.len() as u64,
            "progress counts every document once"
        );
        assert_eq!(score.bytes, bytes);
        assert_eq!(score.documents, docs.len() as u64);
        let ln_v = (vocab as f64).ln();
        assert!(
            (score.token_loss - ln_v).abs() < 1e-4,
            "{}",
            score.token_loss
        );
        assert!((score.perplexity - vocab as f64).abs() < 1e-2);
        // bits per byte = log2(V) / (bytes per token)
        let expected = (vocab as f64).log2() / (bytes as f64 / text_tokens as f64);
        assert!(
            (score.bits_per_byte - expected).abs() < 1e-5,
            "{} vs {expected}",
            score.bits_per_byte
        );
    }

    #[test]
    fn batched_short_documents_match_one_at_a_time() {
        let device = Device::flex();
        let model = config(30).init(11, &device).unwrap();
        let docs = documents(29, 29);
        let scored = scored(&docs);
        let run = |batch_size| {
            score_documents(
                &model,
                &scored,
                29,
                &LmEvalConfig {
                    context: 16,
                    stride: 8,
                    batch_size,
                },
                &mut |_| {},
            )
            .unwrap()
        };
        let batched = run(8);
        let mut one_by_one = TokenNll::default();
        for (tokens, _) in &docs {
            let ids = scoring_ids(tokens, 29);
            one_by_one += token_nll(&model, &ids, 16, 8, 1).unwrap();
        }
        assert_eq!(batched.tokens, one_by_one.tokens);
        assert!(
            (batched.sum_nats - one_by_one.sum_nats).abs() < 1e-3,
            "{} vs {}",
            batched.sum_nats,
            one_by_one.sum_nats
        );
        assert_eq!(run(8), batched, "deterministic");
    }
}
