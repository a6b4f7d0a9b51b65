//! The fused softmax cross-entropy on flex, row-parallel, f32.
//!
//! flex's own softmax calls the scalar libm `expf` for every element (macerator has no
//! vector exp), which at vocabulary 8192 cost more than the output-head matmul. Here `exp`
//! is a branch-free Cephes polynomial the compiler vectorises. The forward pass reads each
//! row twice (maximum, then the sum of `exp`) and writes nothing but the NLL and the row's
//! `logsumexp`; the backward pass recomputes `softmax = exp(x - logsumexp)` as it writes
//! the gradient over the logits: two passes over the `[N, V]` buffer fewer than keeping
//! normalised probabilities.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor, is_f32, last_dim};
use crate::vmath::{exp_nonpositive, vectorized};

/// Rows per rayon task: enough work per task to amortise scheduling.
const ROWS_PER_TASK: usize = 16;
/// Independent accumulators per reduction, so the loops vectorise without reassociation.
const LANES: usize = 16;

/// What backward needs: the logits, each row's `logsumexp`, and the targets as offsets.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    logits: FlexTensor,
    logsumexp: Vec<f32>,
    targets: Vec<usize>,
}

/// The `[N, 1]` NLL of f32 logits, read only; `None` for another dtype or a target outside
/// `0..V`.
pub(super) fn forward(logits: &FlexTensor, targets: &FlexTensor) -> Option<(FlexTensor, Saved)> {
    if !is_f32(logits) {
        return None;
    }
    let logits = compact(logits.clone());
    let vocab = last_dim(&logits);
    let targets = row_offsets(targets, vocab)?;
    let mut nll = vec![0f32; targets.len()];
    let mut logsumexp = vec![0f32; targets.len()];
    logits
        .storage::<f32>()
        .par_chunks(vocab * ROWS_PER_TASK)
        .zip(nll.par_chunks_mut(ROWS_PER_TASK))
        .zip(logsumexp.par_chunks_mut(ROWS_PER_TASK))
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .for_each(|(((rows, nll), logsumexp), targets)| {
            vectorized(
                #[inline(always)]
                || {
                    let rows = rows.chunks_exact(vocab).zip(targets);
                    for ((row, &target), (nll, logsumexp)) in
                        rows.zip(nll.iter_mut().zip(logsumexp))
                    {
                        let max = row_max(row);
                        *logsumexp = max + sum_exp_shifted(row, max).ln();
                        *nll = *logsumexp - row[target];
                    }
                },
            )
        });
    let rows = targets.len();
    let nll = f32_tensor(nll, [rows, 1]);
    let saved = Saved {
        logits,
        logsumexp,
        targets,
    };
    Some((nll, saved))
}

/// `(softmax(x) - onehot(target)) * grad` per row, written into the logits' buffer (the
/// autodiff state held the only reference, so nothing is copied).
pub(super) fn backward(saved: Saved, grad: &FlexTensor) -> FlexTensor {
    let grad = grad.to_contiguous();
    let grad: &[f32] = grad.storage();
    let Saved {
        logits,
        logsumexp,
        targets,
    } = saved;
    let mut out = compact(logits);
    let vocab = last_dim(&out);
    out.storage_mut::<f32>()
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .zip(grad.par_chunks(ROWS_PER_TASK))
        .zip(logsumexp.par_chunks(ROWS_PER_TASK))
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .for_each(|(((rows, grad), logsumexp), targets)| {
            vectorized(
                #[inline(always)]
                || {
                    let rows = rows.chunks_exact_mut(vocab).zip(targets);
                    for ((row, &target), (&g, &lse)) in rows.zip(grad.iter().zip(logsumexp)) {
                        row.iter_mut()
                            .for_each(|x| *x = exp_nonpositive((*x - lse).min(0.0)) * g);
                        row[target] -= g;
                    }
                },
            )
        });
    out
}

/// The `[N, 1]` target ids as column offsets into rows of `vocab`; `None` for an id
/// outside `0..vocab`.
fn row_offsets(targets: &FlexTensor, vocab: usize) -> Option<Vec<usize>> {
    let ids = targets
        .clone()
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .ok()?;
    ids.into_iter()
        .map(|id| usize::try_from(id).ok().filter(|&id| id < vocab))
        .collect()
}

#[inline(always)]
fn row_max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = if v > *lane { v } else { *lane };
        }
    }
    lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// The sum of `exp(x - max)` over the row.
#[inline(always)]
fn sum_exp_shifted(row: &[f32], max: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += exp_nonpositive(x - max);
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().map(|&x| exp_nonpositive(x - max)).sum::<f32>()
}
