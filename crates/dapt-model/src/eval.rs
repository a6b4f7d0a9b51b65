//! Evaluation: summed token NLL over long documents with rolling windows (for perplexity and
//! bits per byte), and mean-pooled features for probes.

use std::ops::AddAssign;

use anyhow::{Result, ensure};

use crate::loss::per_token_nll;
use crate::model::{Decoder, ids_tensor};

/// Summed negative log-likelihood (nats) over `tokens` scored tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TokenNll {
    pub sum_nats: f64,
    pub tokens: u64,
}

impl TokenNll {
    pub fn mean_nats(&self) -> f64 {
        self.sum_nats / self.tokens as f64
    }

    /// Bits per byte of the text these tokens encode (`bytes` UTF-8 bytes).
    pub fn bits_per_byte(&self, bytes: u64) -> f64 {
        self.sum_nats / std::f64::consts::LN_2 / bytes as f64
    }
}

impl AddAssign for TokenNll {
    fn add_assign(&mut self, other: Self) {
        self.sum_nats += other.sum_nats;
        self.tokens += other.tokens;
    }
}

/// One model call: inputs `ids[start..end]`, of whose predictions the last `scored` count.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    start: usize,
    end: usize,
    scored: usize,
}

/// Rolling windows (lm-evaluation-harness style) over `len` tokens: every token after the first
/// is predicted exactly once, from at most `context` tokens of left context. The first window
/// scores up to `context` targets; each later one slides by `stride` and scores the `stride`
/// newest targets with `context` tokens of input (so at least `context - stride` of history).
fn rolling_windows(len: usize, context: usize, stride: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    if len < 2 {
        return windows;
    }
    // Targets are positions 1..len; `next` is the first target not scored yet.
    let first_end = context.min(len - 1);
    windows.push(Window {
        start: 0,
        end: first_end,
        scored: first_end,
    });
    let mut next = first_end + 1;
    while next < len {
        let last_target = (next + stride).min(len) - 1;
        windows.push(Window {
            start: last_target - context,
            end: last_target,
            scored: last_target + 1 - next,
        });
        next = last_target + 1;
    }
    windows
}

/// Summed NLL of every token of `ids` after the first, each predicted with as much left context
/// as fits in `context` (≤ the model's), sliding by `stride` tokens; full windows are scored
/// `batch_size` at a time. Prepend a document separator to `ids` to score its first token too.
/// `model` should be on a device without autodiff (`model.valid()`).
pub fn token_nll(
    model: &Decoder,
    ids: &[u32],
    context: usize,
    stride: usize,
    batch_size: usize,
) -> Result<TokenNll> {
    ensure!(
        (1..=model.context()).contains(&context),
        "token_nll: context {context} must be in 1..={} (the model context)",
        model.context()
    );
    ensure!(
        (1..=context).contains(&stride),
        "token_nll: stride {stride} must be in 1..={context}"
    );
    ensure!(batch_size > 0, "token_nll: batch_size must be at least 1");
    let windows = rolling_windows(ids.len(), context, stride);
    let mut total = TokenNll::default();
    // The first window may be shorter than `context`; all later ones have exactly `context`
    // inputs, so they batch together.
    let (first, rest) = match windows.split_first() {
        Some(split) => split,
        None => return Ok(total),
    };
    for group in std::iter::once(std::slice::from_ref(first)).chain(rest.chunks(batch_size)) {
        let width = group[0].end - group[0].start;
        let mut inputs = Vec::with_capacity(group.len() * width);
        let mut targets = Vec::with_capacity(group.len() * width);
        for window in group {
            inputs.extend_from_slice(&ids[window.start..window.end]);
            targets.extend_from_slice(&ids[window.start + 1..window.end + 1]);
        }
        let values = token_nll_rows(model, &inputs, &targets, group.len(), width)?;
        for (row, window) in values.chunks(width).zip(group) {
            total += TokenNll {
                sum_nats: row[width - window.scored..]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum(),
                tokens: window.scored as u64,
            };
        }
    }
    Ok(total)
}

/// Per-token NLL (nats) of `targets` after `inputs`, both `[rows, width]` row-major: one
/// forward pass, the values flat in the same layout.
pub fn token_nll_rows(
    model: &Decoder,
    inputs: &[u32],
    targets: &[u32],
    rows: usize,
    width: usize,
) -> Result<Vec<f32>> {
    let device = model.token_embedding.weight.device();
    per_token_nll(
        model.forward(ids_tensor(inputs, rows, width, &device)),
        ids_tensor(targets, rows, width, &device),
    )
    .into_data()
    .try_into_vec::<f32>()
    .map_err(|e| anyhow::anyhow!("reading token NLL: {e:?}"))
}

/// Per-token NLL of sequences of different lengths in one forward pass: row `r` scores
/// `rows[r][1..]` after `rows[r][..len-1]`, padded with `pad` to the longest row. Returns the
/// values flat, `width` (the longest row's length minus one) per row; padding positions hold
/// junk to be ignored. Every row needs at least two ids.
pub fn padded_token_nll_rows<R: AsRef<[u32]>>(
    model: &Decoder,
    rows: &[R],
    pad: u32,
) -> Result<(Vec<f32>, usize)> {
    ensure!(
        rows.iter().all(|r| r.as_ref().len() >= 2),
        "padded_token_nll_rows: every row needs at least two ids"
    );
    let width = rows.iter().map(|r| r.as_ref().len() - 1).max().unwrap_or(0);
    let mut inputs = vec![pad; rows.len() * width];
    let mut targets = vec![pad; rows.len() * width];
    for (i, row) in rows.iter().enumerate() {
        let row = row.as_ref();
        let len = row.len() - 1;
        inputs[i * width..i * width + len].copy_from_slice(&row[..len]);
        targets[i * width..i * width + len].copy_from_slice(&row[1..]);
    }
    let values = token_nll_rows(model, &inputs, &targets, rows.len(), width)?;
    Ok((values, width))
}

/// Mean-pooled final hidden states of each document (truncated to the model context), computed
/// `batch_size` documents at a time; features for a linear probe.
pub fn pooled_features(
    model: &Decoder,
    docs: &[&[u32]],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    ensure!(
        batch_size > 0,
        "pooled_features: batch_size must be at least 1"
    );
    ensure!(
        docs.iter().all(|doc| !doc.is_empty()),
        "pooled_features: every document needs at least one token"
    );
    let device = model.token_embedding.weight.device();
    let d_model = model.d_model();
    let mut features = Vec::with_capacity(docs.len());
    for group in docs.chunks(batch_size) {
        let lengths: Vec<usize> = group.iter().map(|d| d.len().min(model.context())).collect();
        let width = *lengths.iter().max().expect("non-empty group");
        let mut ids = vec![0u32; group.len() * width];
        for (row, (doc, &len)) in group.iter().zip(&lengths).enumerate() {
            ids[row * width..row * width + len].copy_from_slice(&doc[..len]);
        }
        let pooled = model.mean_pooled(ids_tensor(&ids, group.len(), width, &device), &lengths)?;
        let values = pooled
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading pooled features: {e:?}"))?;
        features.extend(values.chunks(d_model).map(<[f32]>::to_vec));
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_score_each_target_once_with_bounded_context() {
        for (len, context, stride) in [
            (1, 4, 2),
            (2, 4, 2),
            (5, 4, 4),
            (10, 4, 1),
            (10, 4, 3),
            (23, 8, 5),
        ] {
            let windows = rolling_windows(len, context, stride);
            let mut scored = Vec::new();
            for w in &windows {
                assert!(w.end - w.start <= context);
                assert!(w.scored >= 1 && w.scored <= w.end - w.start);
                // Targets of a window are positions start+1..=end; the scored ones are the last.
                scored.extend(w.end + 1 - w.scored..=w.end);
            }
            let expected: Vec<usize> = (1..len).collect();
            assert_eq!(
                scored, expected,
                "len {len} context {context} stride {stride}"
            );
            for w in windows.iter().skip(1) {
                assert_eq!(w.end - w.start, context);
            }
        }
    }
}
