//! What a model is trained to predict, and the inputs, targets and loss weights each
//! objective makes of a batch of token rows.
//!
//! - `clm` (decoders): every position predicts the next token; a row of `seq_len + 1` ids
//!   gives `seq_len` inputs and the same ids shifted by one as targets.
//! - `mlm` (encoders, BERT's objective): the row's first `seq_len` ids are masked
//!   ([`crate::mlm`]: 15% of the non-special tokens, 80% of those replaced by the mask
//!   token, 10% by a random token, 10% kept), and only the chosen positions predict
//!   their original token.
//! - `span` (encoder-decoders, T5's objective): spans of the row's first `seq_len` ids
//!   (15% of them, mean length 3) are dropped from the encoder's input, each replaced by a
//!   sentinel, and the decoder predicts the sentinels followed by the spans
//!   ([`crate::span`]); every example has the same input and target lengths, so a batch
//!   needs no padding.
//!
//! The masks are a pure function of a seed: training draws one per micro-batch from
//! `(run seed, micro-batch counter)`, the counter the checkpoint already stores, so a
//! resumed run masks exactly as an uninterrupted one. Validation and evaluation use
//! [`Objective::validation_seed`], the same for every model and every step, so models are
//! compared on the same masks.

use anyhow::{Result, bail, ensure};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::loss::per_token_nll;
use crate::mlm::{MlmConfig, MlmVocab, mask_tokens};
use crate::model::{Decoder, ids_tensor};
use crate::rng::derive_seed;
use crate::span::{SpanConfig, corrupt, input_and_target_lengths, noise_mask};

/// Salts the mask streams apart from the dropout streams drawn from the same counter.
const MASK_STREAM: u64 = 0x6d61_736b_5f6c_6d00;

/// The pre-training objective of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Objective {
    /// Causal language modelling (next token).
    #[default]
    Clm,
    /// Masked language modelling.
    Mlm {
        #[serde(default)]
        masking: MlmConfig,
        /// The tokenizer's mask token.
        mask_id: u32,
        /// Ids never masked nor drawn as replacements (end of text, padding, ...).
        special: Vec<u32>,
        /// With whole-word masking: the sorted ids of the tokens that begin a word (a
        /// byte-level BPE token with a leading space); the others continue one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        word_starts: Vec<u32>,
    },
    /// Span corruption.
    Span {
        #[serde(default)]
        noise: SpanConfig,
        /// `<extra_id_0>`, `<extra_id_1>`, ...: the tokenizer's sentinel ids, in order.
        sentinels: Vec<u32>,
        /// Closes the input and the targets.
        eos: u32,
        /// The decoder's first input.
        decoder_start: u32,
    },
}

/// One batch as the model and the loss take it.
pub struct ObjectiveBatch {
    /// `[B, T]` model inputs (the encoder's, for span corruption).
    pub inputs: Tensor<2, Int>,
    /// `[B, Td]` the decoder's inputs: the targets shifted right after the start token.
    pub decoder_inputs: Option<Tensor<2, Int>>,
    /// `[B, T]` ids each position predicts (any valid id where it predicts nothing).
    pub targets: Tensor<2, Int>,
    /// `[B, T]`, 1 where a position counts in the loss; `None`: every position counts.
    pub weights: Option<Tensor<2>>,
    /// Positions that count.
    pub predicted: usize,
}

impl Objective {
    /// Checks the objective fits the model: causal LM needs a decoder, masked LM an
    /// encoder whose vocabulary holds the mask token, span corruption an encoder-decoder.
    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        match self {
            Self::Span {
                noise,
                sentinels,
                eos,
                decoder_start,
            } => {
                ensure!(
                    model.is_seq2seq(),
                    "objective span trains an encoder-decoder (t5), not the {} family",
                    model.family()
                );
                noise.validate()?;
                ensure!(
                    !sentinels.is_empty(),
                    "objective span needs sentinel tokens <extra_id_0>, ... in the tokenizer"
                );
                let vocab = model.vocab_size() as u32;
                if let Some(bad) = sentinels
                    .iter()
                    .chain([eos, decoder_start])
                    .find(|&&id| id >= vocab)
                {
                    bail!("objective span: id {bad} is outside the vocabulary of {vocab}");
                }
            }
            Self::Clm => ensure!(
                model.causal(),
                "objective clm trains a decoder (gpt, llama), not the {} family",
                model.family()
            ),
            Self::Mlm {
                masking,
                mask_id,
                special,
                word_starts,
            } => {
                ensure!(
                    !model.causal() && !model.is_seq2seq(),
                    "objective mlm trains an encoder (bert), not the {} family",
                    model.family()
                );
                masking.validate()?;
                ensure!(
                    !masking.whole_word || !word_starts.is_empty(),
                    "objective mlm: whole-word masking needs the ids of the tokens that begin a word"
                );
                self::vocab(*mask_id, special, model.vocab_size())?.validate()?;
            }
        }
        Ok(())
    }

    /// The seed of validation batch `index`: the same for every model and run.
    pub fn validation_seed(index: u64) -> u64 {
        derive_seed(MASK_STREAM ^ 0x7661_6c69_6461_7465, index)
    }

    /// The seed of the masks of training micro-batch `counter` of a run seeded `seed`.
    pub(crate) fn training_seed(seed: u64, counter: u64) -> u64 {
        derive_seed(seed ^ MASK_STREAM, counter)
    }

    /// Inputs, targets and weights from `batch` rows of `seq_len + 1` ids, masked (for
    /// `mlm`) from `seed`.
    pub fn batch(
        &self,
        ids: &[u32],
        batch: usize,
        seq_len: usize,
        vocab_size: usize,
        seed: u64,
        device: &Device,
    ) -> Result<ObjectiveBatch> {
        let width = seq_len + 1;
        ensure!(
            ids.len() == batch * width,
            "the batch source returned {} ids; a batch needs {batch} rows of seq_len + 1 = {width} ids ({})",
            ids.len(),
            batch * width
        );
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            bail!(
                "token id {bad} is outside the model vocabulary ({vocab_size}); the tokenizer and the model's vocab_size disagree"
            );
        }
        match self {
            Self::Clm => {
                let rows = ids_tensor(ids, batch, width, device);
                Ok(ObjectiveBatch {
                    inputs: rows.clone().narrow(1, 0, seq_len),
                    decoder_inputs: None,
                    targets: rows.narrow(1, 1, seq_len),
                    weights: None,
                    predicted: batch * seq_len,
                })
            }
            Self::Span {
                noise,
                sentinels,
                eos,
                decoder_start,
            } => {
                let (input_len, target_len) = input_and_target_lengths(seq_len, noise);
                let mut inputs = Vec::with_capacity(batch * input_len);
                let mut targets = Vec::with_capacity(batch * target_len);
                let mut decoder = Vec::with_capacity(batch * target_len);
                for (row, tokens) in ids.chunks_exact(width).enumerate() {
                    let tokens = &tokens[..seq_len];
                    let mask = noise_mask(seq_len, noise, derive_seed(seed, row as u64));
                    let (input, target) = corrupt(tokens, &mask, sentinels, Some(*eos))?;
                    ensure!(
                        (input.len(), target.len()) == (input_len, target_len),
                        "span corruption gave {} inputs and {} targets, not {input_len} and {target_len}",
                        input.len(),
                        target.len()
                    );
                    decoder.push(*decoder_start);
                    decoder.extend_from_slice(&target[..target_len - 1]);
                    inputs.extend(input);
                    targets.extend(target);
                }
                Ok(ObjectiveBatch {
                    inputs: ids_tensor(&inputs, batch, input_len, device),
                    decoder_inputs: Some(ids_tensor(&decoder, batch, target_len, device)),
                    targets: ids_tensor(&targets, batch, target_len, device),
                    weights: None,
                    predicted: batch * target_len,
                })
            }
            Self::Mlm {
                masking,
                mask_id,
                special,
                word_starts,
            } => {
                let vocab = vocab(*mask_id, special, vocab_size)?;
                let mut starts = Vec::new();
                let mut inputs = Vec::with_capacity(batch * seq_len);
                let mut targets = Vec::with_capacity(batch * seq_len);
                let mut weights = Vec::with_capacity(batch * seq_len);
                for (row, tokens) in ids.chunks_exact(width).enumerate() {
                    let tokens = &tokens[..seq_len];
                    let word_start = masking.whole_word.then(|| {
                        starts.clear();
                        starts.extend(tokens.iter().map(|t| word_starts.binary_search(t).is_ok()));
                        starts.as_slice()
                    });
                    let masked = mask_tokens(
                        tokens,
                        word_start,
                        masking,
                        &vocab,
                        derive_seed(seed, row as u64),
                    );
                    inputs.extend_from_slice(&masked.inputs);
                    targets.extend_from_slice(tokens);
                    weights.extend(masked.weights());
                }
                let predicted = weights.iter().filter(|&&w| w > 0.0).count();
                Ok(ObjectiveBatch {
                    inputs: ids_tensor(&inputs, batch, seq_len, device),
                    decoder_inputs: None,
                    targets: ids_tensor(&targets, batch, seq_len, device),
                    weights: Some(Tensor::from_data(
                        TensorData::new(weights, [batch, seq_len]),
                        device,
                    )),
                    predicted,
                })
            }
        }
    }
}

impl ObjectiveBatch {
    /// The model's logits for this batch: over the decoder's inputs for an
    /// encoder-decoder, over the inputs otherwise.
    pub fn logits(&self, model: &Decoder) -> Tensor<3> {
        match &self.decoder_inputs {
            Some(decoder) => model.forward_seq2seq(self.inputs.clone(), decoder.clone()),
            None => model.forward(self.inputs.clone()),
        }
    }

    /// Summed NLL (nats) over the positions that count, shape `[1]`.
    pub fn sum_nll(&self, logits: Tensor<3>) -> Tensor<1> {
        let nll = per_token_nll(logits, self.targets.clone());
        match &self.weights {
            Some(weights) => (nll * weights.clone()).sum(),
            None => nll.sum(),
        }
    }

    /// Mean NLL over the positions that count (0 when none does), shape `[1]`.
    pub fn mean_nll(&self, logits: Tensor<3>) -> Tensor<1> {
        match &self.weights {
            Some(_) => self.sum_nll(logits) / self.predicted.max(1) as f64,
            None => per_token_nll(logits, self.targets.clone()).mean(),
        }
    }
}

fn vocab(mask_id: u32, special: &[u32], vocab_size: usize) -> Result<MlmVocab> {
    let vocab_size = u32::try_from(vocab_size)?;
    Ok(MlmVocab {
        mask_id,
        vocab_size,
        special: special.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BertConfig, GptConfig};

    fn tiny_bert() -> ModelConfig {
        ModelConfig::Bert(BertConfig {
            vocab_size: 50,
            n_layer: 1,
            n_head: 1,
            d_model: 4,
            d_ff: 8,
            context: 8,
            ..BertConfig::default()
        })
    }

    fn mlm() -> Objective {
        Objective::Mlm {
            masking: MlmConfig::default(),
            mask_id: 3,
            special: vec![0, 1, 2],
            word_starts: Vec::new(),
        }
    }

    #[test]
    fn whole_word_masking_masks_words_whole() {
        let device = Device::flex();
        // Even ids begin a word, odd ones continue it: words are (even, odd) pairs.
        let objective = Objective::Mlm {
            masking: MlmConfig {
                whole_word: true,
                ..MlmConfig::default()
            },
            mask_id: 3,
            special: vec![0, 1, 2],
            word_starts: (4..50).step_by(2).collect(),
        };
        // Position t of every row holds 4 + t % 40: even (a word start) at even t.
        let ids: Vec<u32> = (0..4 * 65).map(|i| 4 + (i % 65 % 40) as u32).collect();
        let batch = objective.batch(&ids, 4, 64, 50, 5, &device).unwrap();
        let weights = batch
            .weights
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for row in weights.chunks(64) {
            for pair in row.chunks(2) {
                assert_eq!(pair[0], pair[1], "a word masked in part: {row:?}");
            }
        }
        assert!(batch.predicted > 0);
        let missing = Objective::Mlm {
            masking: MlmConfig {
                whole_word: true,
                ..MlmConfig::default()
            },
            mask_id: 3,
            special: vec![],
            word_starts: vec![],
        };
        let bert = tiny_bert();
        assert!(
            missing
                .validate(&bert)
                .unwrap_err()
                .to_string()
                .contains("whole-word")
        );
    }

    #[test]
    fn objectives_fit_their_families_only() {
        let gpt = ModelConfig::Gpt(GptConfig {
            vocab_size: 50,
            n_layer: 1,
            n_head: 1,
            d_model: 4,
            context: 8,
            ..GptConfig::default()
        });
        let bert = tiny_bert();
        Objective::Clm.validate(&gpt).unwrap();
        mlm().validate(&bert).unwrap();
        assert!(Objective::Clm.validate(&bert).is_err());
        assert!(
            mlm()
                .validate(&gpt)
                .unwrap_err()
                .to_string()
                .contains("encoder")
        );
        let outside = Objective::Mlm {
            masking: MlmConfig::default(),
            mask_id: 50,
            special: vec![],
            word_starts: vec![],
        };
        assert!(
            outside
                .validate(&bert)
                .unwrap_err()
                .to_string()
                .contains("mask_id")
        );
    }

    #[test]
    fn clm_shifts_and_mlm_masks_the_same_row() {
        let device = Device::flex();
        let ids: Vec<u32> = (0..2 * 65).map(|i| 4 + (i * 7 % 40) as u32).collect();
        let clm = Objective::Clm.batch(&ids, 2, 64, 50, 0, &device).unwrap();
        assert_eq!(clm.predicted, 128);
        assert_eq!(
            clm.targets
                .clone()
                .narrow(1, 0, 1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap()[0],
            i64::from(ids[1])
        );
        let a = mlm().batch(&ids, 2, 64, 50, 9, &device).unwrap();
        let b = mlm().batch(&ids, 2, 64, 50, 9, &device).unwrap();
        let c = mlm().batch(&ids, 2, 64, 50, 10, &device).unwrap();
        assert_eq!(a.inputs.clone().into_data(), b.inputs.into_data());
        assert_ne!(a.inputs.clone().into_data(), c.inputs.into_data());
        // Targets are the unmasked ids; inputs differ from them only where weighted.
        let inputs = a
            .inputs
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let targets = a
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let weights = a.weights.unwrap().into_data().try_to_vec::<f32>().unwrap();
        let row: Vec<i64> = ids[..64]
            .iter()
            .chain(&ids[65..129])
            .map(|&i| i64::from(i))
            .collect();
        assert_eq!(targets, row);
        assert!(a.predicted > 0 && a.predicted < 128);
        for ((input, target), weight) in inputs.iter().zip(&targets).zip(&weights) {
            if *weight == 0.0 {
                assert_eq!(input, target);
            }
        }
        assert!(inputs.contains(&3), "some position carries the mask token");
    }

    #[test]
    fn the_masked_loss_counts_only_predicted_positions() {
        let device = Device::flex();
        let ids: Vec<u32> = (0..33).map(|i| 4 + i as u32).collect();
        let batch = mlm().batch(&ids, 1, 32, 50, 1, &device).unwrap();
        // Uniform logits: every position costs ln V, the mean is ln V whatever counts.
        let logits = Tensor::<3>::zeros([1, 32, 50], &device);
        let mean = batch.mean_nll(logits.clone()).into_scalar::<f32>();
        assert!((mean - 50f32.ln()).abs() < 1e-5, "{mean}");
        let sum = batch.sum_nll(logits).into_scalar::<f32>();
        assert!(
            (sum - batch.predicted as f32 * 50f32.ln()).abs() < 1e-3,
            "{sum}"
        );
    }
}
