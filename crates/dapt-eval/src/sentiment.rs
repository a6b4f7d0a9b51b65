//! A labelled sentiment task scored three ways, for one model:
//!
//! - **probe**: a [`LinearProbe`] on mean-pooled final hidden states of `<|endoftext|>` + the
//!   text (truncated to the model context), fitted on the train examples, scored on the test
//!   ones;
//! - **zero-shot**: the class whose label word (e.g. ` positive`) is most likely after
//!   `<|endoftext|>` + text + a prompt suffix (e.g. `\nSentiment:`), summed over the word's
//!   tokens (lm-evaluation-harness's `acc`);
//! - **majority**: the most frequent train label, predicted for every test example.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use dapt_model::burn::prelude::*;
use dapt_model::burn::tensor::activation::log_softmax;
use dapt_model::{Decoder, ids_tensor, padded_token_nll_rows, pooled_features};
use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, classification_metrics, majority_class};
use crate::probe::{LinearProbe, ProbeConfig, argmax};

/// One labelled text: its tokens without any separator, and its class index.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentExample {
    pub id: String,
    pub tokens: Vec<u32>,
    pub label: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SentimentTask {
    pub name: String,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// The tokens of each class's label word, as it follows the prompt (e.g. ` positive`).
    pub label_words: Vec<Vec<u32>>,
    /// Tokens after the text in a zero-shot prompt (e.g. `\nSentiment:`).
    pub prompt_suffix: Vec<u32>,
    pub train: Vec<SentimentExample>,
    pub test: Vec<SentimentExample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentConfig {
    pub probe: ProbeConfig,
    /// Sequences per forward pass.
    pub batch_size: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentScores {
    pub train_examples: u64,
    pub test_examples: u64,
    pub probe: Metrics,
    /// Label-word likelihood after a prompt: decoders only (an encoder does not continue
    /// text), absent for encoders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_shot: Option<Metrics>,
    pub majority: Metrics,
    /// The class the majority baseline predicts.
    pub majority_class: String,
    /// Test examples per gold class.
    pub test_labels: BTreeMap<String, u64>,
    /// Test examples per zero-shot prediction (a model that always answers one word shows here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zero_shot_predictions: BTreeMap<String, u64>,
    /// The probe's final training loss (mean cross-entropy + penalty).
    pub probe_train_loss: f64,
}

/// A zero-shot prompt: `end_of_text`, then as much of the start of `text` as fits so that the
/// prompt plus a label word of `max_word_tokens` tokens stays within `context`, then `suffix`.
pub fn zero_shot_prompt(
    text: &[u32],
    suffix: &[u32],
    end_of_text: u32,
    context: usize,
    max_word_tokens: usize,
) -> Vec<u32> {
    // The scored row is prompt ++ word, and the model sees all but its last token.
    let room = (context + 1).saturating_sub(1 + suffix.len() + max_word_tokens);
    let kept = text.len().min(room);
    let mut prompt = Vec::with_capacity(1 + kept + suffix.len());
    prompt.push(end_of_text);
    prompt.extend_from_slice(&text[..kept]);
    prompt.extend_from_slice(suffix);
    prompt
}

/// Log-likelihood (nats) of each candidate continuation after each prompt:
/// `result[prompt][candidate]`. Every `prompt ++ candidate` must fit in the model context plus
/// one token.
pub fn zero_shot_scores(
    model: &Decoder,
    prompts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    batch_size: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<f64>>> {
    ensure!(batch_size > 0, "batch_size must be at least 1");
    ensure!(
        !candidates.is_empty() && candidates.iter().all(|c| !c.is_empty()),
        "zero-shot: every candidate needs at least one token"
    );
    ensure!(
        prompts.iter().all(|p| !p.is_empty()),
        "zero-shot: every prompt needs at least one token"
    );
    let longest = candidates.iter().map(Vec::len).max().unwrap_or(0);
    ensure!(
        prompts
            .iter()
            .all(|p| p.len() + longest - 1 <= model.context()),
        "zero-shot: a prompt and label word exceed the model context of {}",
        model.context()
    );
    let device = model.token_embedding.weight.device();
    // Rows are padded to the longest in a pass: score prompts in length order, then restore.
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| prompts[i].len());
    let sorted: Vec<Vec<u32>> = order.iter().map(|&i| prompts[i].clone()).collect();
    let scored = if longest == 1 {
        single_token_scores(model, &sorted, candidates, batch_size, &device, progress)?
    } else {
        sequence_scores(model, &sorted, candidates, batch_size, progress)?
    };
    let mut scores = vec![Vec::new(); prompts.len()];
    for (i, s) in order.into_iter().zip(scored) {
        scores[i] = s;
    }
    Ok(scores)
}

/// Single-token candidates: one row per prompt, the log-softmax at its last position.
fn single_token_scores(
    model: &Decoder,
    prompts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    batch_size: usize,
    device: &Device,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<f64>>> {
    let mut scores = Vec::with_capacity(prompts.len());
    for group in prompts.chunks(batch_size) {
        let width = group.iter().map(Vec::len).max().expect("non-empty group");
        let mut ids = vec![group[0][0]; group.len() * width];
        let mut last = Vec::with_capacity(group.len());
        for (row, prompt) in group.iter().enumerate() {
            ids[row * width..row * width + prompt.len()].copy_from_slice(prompt);
            last.push((row * width + prompt.len() - 1) as i64);
        }
        let vocab = model.vocab_size();
        let logits = model
            .forward(ids_tensor(&ids, group.len(), width, device))
            .reshape([group.len() * width, vocab]);
        let index = Tensor::<1, Int>::from_data(TensorData::new(last, [group.len()]), device);
        let log_probs = log_softmax(logits.select(0, index), 1)
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading log-probabilities: {e:?}"))?;
        for row in log_probs.chunks(vocab) {
            scores.push(
                candidates
                    .iter()
                    .map(|c| f64::from(row[c[0] as usize]))
                    .collect(),
            );
        }
        progress(group.len() as u64);
    }
    Ok(scores)
}

/// Any candidates: one row per (prompt, candidate), NLL summed over the candidate's tokens.
fn sequence_scores(
    model: &Decoder,
    prompts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    batch_size: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Vec<f64>>> {
    let mut scores = Vec::with_capacity(prompts.len());
    let examples_per_pass = batch_size.div_ceil(candidates.len()).max(1);
    for group in prompts.chunks(examples_per_pass) {
        let rows: Vec<Vec<u32>> = group
            .iter()
            .flat_map(|prompt| {
                candidates.iter().map(move |candidate| {
                    let mut row = prompt.clone();
                    row.extend_from_slice(candidate);
                    row
                })
            })
            .collect();
        let (values, width) = padded_token_nll_rows(model, &rows, rows[0][0])?;
        for (e, prompt) in group.iter().enumerate() {
            let per_candidate = candidates
                .iter()
                .enumerate()
                .map(|(c, candidate)| {
                    let row = &values[(e * candidates.len() + c) * width..][..width];
                    // Target positions of the candidate's tokens.
                    let first = prompt.len() - 1;
                    -row[first..first + candidate.len()]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum::<f64>()
                })
                .collect();
            scores.push(per_candidate);
        }
        progress(group.len() as u64);
    }
    Ok(scores)
}

fn counts_by_class(labels: &[usize], classes: &[String]) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = classes.iter().map(|c| (c.clone(), 0)).collect();
    for &l in labels {
        *counts.get_mut(&classes[l]).expect("known class") += 1;
    }
    counts
}

/// How many examples [`evaluate_sentiment`] reports to its `progress` for `task`: each
/// train example once (its features), each test example twice (features, zero-shot).
pub fn sentiment_progress_total(task: &SentimentTask) -> u64 {
    (task.train.len() + 2 * task.test.len()) as u64
}

/// Scores `task` with `model` (on a device without autodiff). `progress` receives the
/// number of examples finished after each forward pass ([`sentiment_progress_total`]).
pub fn evaluate_sentiment(
    model: &Decoder,
    task: &SentimentTask,
    end_of_text: u32,
    config: &SentimentConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<SentimentScores> {
    let classes = task.classes.len();
    ensure!(
        task.label_words.len() == classes,
        "task {}: {} label words for {classes} classes",
        task.name,
        task.label_words.len()
    );
    ensure!(
        !task.train.is_empty() && !task.test.is_empty(),
        "task {}: needs train and test examples ({} train, {} test)",
        task.name,
        task.train.len(),
        task.test.len()
    );
    let with_separator = |examples: &[SentimentExample]| -> Vec<Vec<u32>> {
        examples
            .iter()
            .map(|e| {
                let mut ids = Vec::with_capacity(e.tokens.len() + 1);
                ids.push(end_of_text);
                ids.extend_from_slice(&e.tokens[..e.tokens.len().min(model.context() - 1)]);
                ids
            })
            .collect()
    };
    let mut features = |examples: &[SentimentExample]| -> Result<Vec<Vec<f32>>> {
        let docs = with_separator(examples);
        // Batches pad to their longest document: compute in length order, then restore.
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.sort_by_key(|&i| docs[i].len());
        let refs: Vec<&[u32]> = order.iter().map(|&i| docs[i].as_slice()).collect();
        // A pass per batch, as `pooled_features` batches, so that progress is per batch.
        let mut sorted = Vec::with_capacity(refs.len());
        for batch in refs.chunks(config.batch_size) {
            sorted.extend(pooled_features(model, batch, config.batch_size)?);
            progress(batch.len() as u64);
        }
        let mut features = vec![Vec::new(); docs.len()];
        for (i, f) in order.into_iter().zip(sorted) {
            features[i] = f;
        }
        Ok(features)
    };
    let train_labels: Vec<usize> = task.train.iter().map(|e| e.label).collect();
    let test_labels: Vec<usize> = task.test.iter().map(|e| e.label).collect();

    let probe = LinearProbe::fit(
        &features(&task.train)?,
        &train_labels,
        classes,
        &config.probe,
    )?;
    let probe_predictions = probe.predict(&features(&task.test)?);

    let majority = majority_class(&train_labels, classes);
    let mut scores = SentimentScores {
        train_examples: task.train.len() as u64,
        test_examples: task.test.len() as u64,
        probe: classification_metrics(&test_labels, &probe_predictions, classes),
        zero_shot: None,
        majority: classification_metrics(&test_labels, &vec![majority; test_labels.len()], classes),
        majority_class: task.classes[majority].clone(),
        test_labels: counts_by_class(&test_labels, &task.classes),
        zero_shot_predictions: BTreeMap::new(),
        probe_train_loss: probe.final_loss,
    };
    if !model.is_causal() {
        // No zero-shot pass for an encoder: its share of the progress is done.
        progress(task.test.len() as u64);
        return Ok(scores);
    }
    let longest_word = task.label_words.iter().map(Vec::len).max().unwrap_or(1);
    let prompts: Vec<Vec<u32>> = task
        .test
        .iter()
        .map(|e| {
            zero_shot_prompt(
                &e.tokens,
                &task.prompt_suffix,
                end_of_text,
                model.context(),
                longest_word,
            )
        })
        .collect();
    let zero_shot_predictions: Vec<usize> = zero_shot_scores(
        model,
        &prompts,
        &task.label_words,
        config.batch_size,
        progress,
    )?
    .iter()
    .map(|s| argmax(s))
    .collect();
    scores.zero_shot = Some(classification_metrics(
        &test_labels,
        &zero_shot_predictions,
        classes,
    ));
    scores.zero_shot_predictions = counts_by_class(&zero_shot_predictions, &task.classes);
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dapt_model::{GptConfig, ModelConfig};

    fn model() -> Decoder {
        ModelConfig::Gpt(GptConfig {
            vocab_size: 40,
            n_layer: 1,
            n_head: 2,
            d_model: 16,
            context: 12,
            ..GptConfig::default()
        })
        .init(5, &Device::flex())
        .unwrap()
    }

    #[test]
    fn prompt_truncates_text_to_fit() {
        let text: Vec<u32> = (1..=20).collect();
        let prompt = zero_shot_prompt(&text, &[30, 31], 39, 12, 2);
        // prompt + word of 2 must be ≤ context + 1 = 13 tokens.
        assert_eq!(prompt.len() + 2, 13);
        assert_eq!(prompt[0], 39);
        assert_eq!(&prompt[1..9], &text[..8]);
        assert_eq!(&prompt[9..], &[30, 31]);
        let short = zero_shot_prompt(&[5], &[30], 39, 12, 1);
        assert_eq!(short, vec![39, 5, 30]);
    }

    #[test]
    fn zero_shot_scores_are_candidate_log_likelihoods() {
        let model = model();
        let prompts = vec![vec![39, 1, 2, 3], vec![39, 4]];
        let candidates = vec![vec![7], vec![8, 9]];
        let scores = zero_shot_scores(&model, &prompts, &candidates, 1, &mut |_| {}).unwrap();
        let again = zero_shot_scores(&model, &prompts, &candidates, 16, &mut |_| {}).unwrap();
        // Same numbers however the rows are batched (padding never reaches a scored position).
        for (a, b) in scores.iter().flatten().zip(again.iter().flatten()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // Check one by hand: log p(8 | 39 4) + log p(9 | 39 4 8), via token_nll.
        let direct = dapt_model::token_nll(&model, &[39, 4, 8, 9], 12, 12, 1).unwrap();
        let prefix = dapt_model::token_nll(&model, &[39, 4], 12, 12, 1).unwrap();
        let expected = -(direct.sum_nats - prefix.sum_nats);
        assert!((scores[1][1] - expected).abs() < 1e-4);
        assert!(scores.iter().flatten().all(|s| *s < 0.0));
        // Single-token candidates take the one-row path; it agrees with the general one.
        let single = vec![vec![7], vec![8]];
        let fast = zero_shot_scores(&model, &prompts, &single, 3, &mut |_| {}).unwrap();
        let slow = sequence_scores(&model, &prompts, &single, 3, &mut |_| {}).unwrap();
        for (a, b) in fast.iter().flatten().zip(slow.iter().flatten()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn evaluates_a_task_end_to_end() {
        let model = model();
        // Class is carried by the first token (10 + label): a probe on pooled features of a
        // random model can pick it up.
        let example = |i: usize| {
            let label = i % 3;
            SentimentExample {
                id: format!("t/{i}"),
                tokens: vec![10 + label as u32, (i % 7) as u32 + 20, 3],
                label,
            }
        };
        let task = SentimentTask {
            name: "toy".into(),
            classes: vec!["negative".into(), "neutral".into(), "positive".into()],
            label_words: vec![vec![30], vec![31], vec![32]],
            prompt_suffix: vec![33, 34],
            train: (0..60).map(example).collect(),
            test: (60..90).map(example).collect(),
        };
        let mut seen = 0;
        let scores = evaluate_sentiment(
            &model,
            &task,
            39,
            &SentimentConfig {
                probe: ProbeConfig::default(),
                batch_size: 8,
            },
            &mut |n| seen += n,
        )
        .unwrap();
        assert_eq!(
            seen,
            sentiment_progress_total(&task),
            "progress counts train features, test features and zero-shot test prompts"
        );
        assert_eq!(scores.train_examples, 60);
        assert_eq!(scores.test_examples, 30);
        assert!(scores.probe.accuracy > 0.9, "{:?}", scores.probe);
        assert!((scores.majority.accuracy - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(scores.majority_class, "negative");
        assert_eq!(scores.test_labels["neutral"], 10);
        assert_eq!(scores.zero_shot_predictions.values().sum::<u64>(), 30);
    }
}
