//! Per-domain scores of an encoder trained by masked language modelling.
//!
//! - **Masked-token loss**: each document is cut into windows of `context` tokens, each
//!   window masked as in training (15% of its tokens, 80/10/10) with the seed
//!   [`Objective::validation_seed`] of its index, so every model is scored on the same
//!   masks; the mean NLL of the chosen tokens, and its exponential.
//! - **Pseudo-perplexity** (Salazar et al. 2020, "Masked Language Model Scoring"): each
//!   token of the first windows, up to `pseudo_tokens`, is masked alone and scored given
//!   every other token; `PPPL = exp(-mean log P(w_t | w_\t))`. One forward pass per token,
//!   hence the cap.
//!
//! An encoder's positions see each other, so windows are batched only with windows of
//! the same length (no padding enters attention).

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use dapt_model::burn::prelude::*;
use dapt_model::mlm::{MlmConfig, MlmVocab, mask_tokens};
use dapt_model::{Decoder, Objective, ObjectiveBatch, ids_tensor};
use serde::{Deserialize, Serialize};

/// How an encoder is scored.
#[derive(Debug, Clone)]
pub struct MaskedLmConfig {
    /// Window length (at most the model context).
    pub context: usize,
    pub batch_size: usize,
    pub masking: MlmConfig,
    pub vocab: MlmVocab,
    /// Tokens scored for the pseudo-perplexity, at most.
    pub pseudo_tokens: usize,
}

/// One domain's masked-LM scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskedScore {
    pub documents: u64,
    pub windows: u64,
    /// Tokens chosen by the masks and predicted.
    pub masked_tokens: u64,
    /// Mean NLL of the masked tokens, nats.
    pub masked_loss: f64,
    /// `exp(masked_loss)`.
    pub masked_perplexity: f64,
    /// Tokens scored one at a time for the pseudo-perplexity.
    pub pseudo_tokens: u64,
    pub pseudo_perplexity: f64,
}

/// Progress units of [`score_masked`]: one per window, one per pseudo-scored token.
pub fn masked_progress_total(documents: &[&[u32]], config: &MaskedLmConfig) -> u64 {
    let windows = windows(documents, config.context);
    let pseudo: usize = windows.iter().map(|w| w.len()).sum();
    (windows.len() + pseudo.min(config.pseudo_tokens)) as u64
}

/// The windows of every document, in order: consecutive `context`-token pieces.
fn windows<'a>(documents: &[&'a [u32]], context: usize) -> Vec<&'a [u32]> {
    documents
        .iter()
        .flat_map(|d| d.chunks(context.max(1)))
        .collect()
}

/// Scores `documents` (token ids) with the encoder `model` (on a device without autodiff).
pub fn score_masked(
    model: &Decoder,
    documents: &[&[u32]],
    config: &MaskedLmConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<MaskedScore> {
    ensure!(
        !model.is_causal() && !model.is_seq2seq(),
        "masked-LM scores need an encoder; a decoder is scored by its next-token loss, an \
         encoder-decoder by its span-corruption loss"
    );
    ensure!(
        (1..=model.context()).contains(&config.context) && config.batch_size > 0,
        "context {} must be in 1..={} and batch_size at least 1",
        config.context,
        model.context()
    );
    config.masking.validate()?;
    config.vocab.validate()?;
    let device = model.token_embedding.weight.device();
    let windows = windows(documents, config.context);

    // Masked-token loss: windows grouped by length, each masked by its own index's seed.
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, w) in windows.iter().enumerate() {
        by_length.entry(w.len()).or_default().push(i);
    }
    let (mut nats, mut masked_tokens) = (0f64, 0u64);
    for (&len, indices) in &by_length {
        for batch in indices.chunks(config.batch_size) {
            let (mut inputs, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
            for &i in batch {
                let seed = Objective::validation_seed(i as u64);
                let masked = mask_tokens(windows[i], None, &config.masking, &config.vocab, seed);
                inputs.extend_from_slice(&masked.inputs);
                targets.extend_from_slice(windows[i]);
                weights.extend(masked.weights());
            }
            let scored = weighted(inputs, targets, weights, batch.len(), len, &device);
            masked_tokens += scored.predicted as u64;
            nats += f64::from(scored.sum_nll(scored.logits(model)).into_scalar::<f32>());
            progress(batch.len() as u64);
        }
    }
    let masked_loss = nats / masked_tokens.max(1) as f64;

    // Pseudo-perplexity: every token of the first windows masked alone, up to the cap.
    let special = {
        let mut ids = config.vocab.special.clone();
        ids.push(config.vocab.mask_id);
        ids
    };
    let (mut pseudo_nats, mut pseudo_tokens) = (0f64, 0u64);
    'windows: for window in &windows {
        let positions: Vec<usize> = (0..window.len())
            .filter(|&t| !special.contains(&window[t]))
            .collect();
        for chunk in positions.chunks(config.batch_size) {
            let left = config.pseudo_tokens.saturating_sub(pseudo_tokens as usize);
            if left == 0 {
                break 'windows;
            }
            let chunk = &chunk[..chunk.len().min(left)];
            let len = window.len();
            let mut inputs = Vec::with_capacity(chunk.len() * len);
            let mut weights = vec![0f32; chunk.len() * len];
            for (row, &t) in chunk.iter().enumerate() {
                inputs.extend_from_slice(window);
                inputs[row * len + t] = config.vocab.mask_id;
                weights[row * len + t] = 1.0;
            }
            let targets: Vec<u32> = chunk.iter().flat_map(|_| window.iter().copied()).collect();
            let scored = weighted(inputs, targets, weights, chunk.len(), len, &device);
            pseudo_nats += f64::from(scored.sum_nll(scored.logits(model)).into_scalar::<f32>());
            pseudo_tokens += scored.predicted as u64;
            progress(chunk.len() as u64);
        }
    }
    Ok(MaskedScore {
        documents: documents.len() as u64,
        windows: windows.len() as u64,
        masked_tokens,
        masked_loss,
        masked_perplexity: masked_loss.exp(),
        pseudo_tokens,
        pseudo_perplexity: (pseudo_nats / pseudo_tokens.max(1) as f64).exp(),
    })
}

/// `rows` rows of `len` inputs and targets whose positions count by `weights` (1 or 0),
/// as the objectives' batches are scored.
fn weighted(
    inputs: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<f32>,
    rows: usize,
    len: usize,
    device: &Device,
) -> ObjectiveBatch {
    let predicted = weights.iter().filter(|&&w| w > 0.0).count();
    ObjectiveBatch {
        inputs: ids_tensor(&inputs, rows, len, device),
        decoder_inputs: None,
        targets: ids_tensor(&targets, rows, len, device),
        weights: Some(Tensor::from_data(
            TensorData::new(weights, [rows, len]),
            device,
        )),
        predicted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dapt_model::{BertConfig, ModelConfig};

    fn encoder() -> Decoder {
        ModelConfig::Bert(BertConfig {
            vocab_size: 30,
            n_layer: 1,
            n_head: 2,
            d_model: 8,
            d_ff: 16,
            context: 16,
            ..BertConfig::default()
        })
        .init(4, &Device::flex())
        .unwrap()
    }

    fn config(pseudo_tokens: usize) -> MaskedLmConfig {
        MaskedLmConfig {
            context: 16,
            batch_size: 3,
            masking: MlmConfig::default(),
            vocab: MlmVocab {
                mask_id: 1,
                vocab_size: 30,
                special: vec![0],
            },
            pseudo_tokens,
        }
    }

    #[test]
    fn scores_are_deterministic_and_batching_does_not_change_them() {
        let model = encoder();
        let docs: Vec<Vec<u32>> = (0..5)
            .map(|d| {
                (0..(7 + 9 * d))
                    .map(|t| 2 + ((t * 5 + d) % 27) as u32)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = docs.iter().map(Vec::as_slice).collect();
        let mut done = 0;
        let a = score_masked(&model, &refs, &config(40), &mut |n| done += n).unwrap();
        assert_eq!(done, masked_progress_total(&refs, &config(40)));
        let one_by_one = MaskedLmConfig {
            batch_size: 1,
            ..config(40)
        };
        let b = score_masked(&model, &refs, &one_by_one, &mut |_| {}).unwrap();
        assert_eq!(a.masked_tokens, b.masked_tokens);
        assert!((a.masked_loss - b.masked_loss).abs() < 1e-5);
        assert!((a.pseudo_perplexity - b.pseudo_perplexity).abs() < 1e-3);
        assert_eq!(a.pseudo_tokens, 40);
        assert!(a.masked_tokens > 0);
        // A fresh encoder is near uniform: both perplexities near the vocabulary size.
        for p in [a.masked_perplexity, a.pseudo_perplexity] {
            assert!((15.0..60.0).contains(&p), "{p}");
        }
    }

    #[test]
    fn a_decoder_is_refused() {
        let decoder = ModelConfig::Gpt(dapt_model::GptConfig {
            vocab_size: 30,
            n_layer: 1,
            n_head: 1,
            d_model: 4,
            context: 8,
            ..Default::default()
        })
        .init(0, &Device::flex())
        .unwrap();
        let error = score_masked(&decoder, &[&[2, 3]], &config(4), &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains("encoder"), "{error}");
    }
}
