//! The fused softmax cross-entropy on flex, row-parallel, f32.
//!
//! flex's own softmax calls the scalar libm `expf` for every element (macerator has no
//! vector exp), which at vocabulary 8192 cost more than the output-head matmul. Here `exp`
//! is a branch-free Cephes polynomial the compiler vectorises, and each row is read once
//! for its maximum, once for `exp` and the sum, and written once normalised.

use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use rayon::prelude::*;

use crate::flexbuf::{compact, is_f32, last_dim};
use crate::vmath::exp_nonpositive;

/// Rows per rayon task: enough work per task to amortise scheduling.
const ROWS_PER_TASK: usize = 16;
/// Independent accumulators per reduction, so the loops vectorise without reassociation.
const LANES: usize = 16;

/// The `[N, 1]` target ids as column offsets into `[N, V]` f32 `values`; `None` (use the
/// composed path) for another dtype or an id outside `0..V`.
pub(super) fn row_offsets(targets: &FlexTensor, values: &FlexTensor) -> Option<Vec<usize>> {
    let vocab = *values.layout().shape().to_vec().last()?;
    if !is_f32(values) {
        return None;
    }
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

/// `[N, 1]` NLL and `[N, V]` probabilities of f32 logits; `targets` from [`row_offsets`].
/// The probabilities overwrite the logits' buffer when nothing else holds it (the head's
/// output usually: its matmul's backward keeps the inputs, not the output).
pub(super) fn forward(logits: FlexTensor, targets: &[usize]) -> [FlexTensor; 2] {
    let mut probs = compact(logits);
    let vocab = last_dim(&probs);
    let mut nll = vec![0f32; targets.len()];
    probs
        .storage_mut::<f32>()
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .zip(nll.par_chunks_mut(ROWS_PER_TASK))
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .for_each(|((rows, nll), targets)| {
            for ((row, nll), &target) in rows.chunks_mut(vocab).zip(nll).zip(targets) {
                let max = row_max(row);
                let target_logit = row[target];
                let sum = exp_shifted_in_place(row, max);
                let inverse = 1.0 / sum;
                row.iter_mut().for_each(|p| *p *= inverse);
                *nll = max + sum.ln() - target_logit;
            }
        });
    let rows = targets.len();
    [
        FlexTensor::from_data(TensorData::new(nll, [rows, 1])),
        probs,
    ]
}

/// `probs * grad - onehot(targets) * grad`, in the probabilities' buffer (the autodiff
/// state holds the only reference, so nothing is copied).
pub(super) fn backward(probs: FlexTensor, targets: &[usize], grad: &FlexTensor) -> FlexTensor {
    let grad = grad.to_contiguous();
    let grad: &[f32] = grad.storage();
    let mut out = compact(probs);
    let vocab = last_dim(&out);
    out.storage_mut::<f32>()
        .par_chunks_mut(vocab * ROWS_PER_TASK)
        .zip(grad.par_chunks(ROWS_PER_TASK))
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .for_each(|((out, grad), targets)| {
            for ((row, &g), &target) in out.chunks_mut(vocab).zip(grad).zip(targets) {
                row.iter_mut().for_each(|p| *p *= g);
                row[target] -= g;
            }
        });
    out
}

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

/// Replaces each `x` by `exp(x - max)` and returns their sum.
fn exp_shifted_in_place(row: &mut [f32], max: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *x = exp_nonpositive(*x - max);
            *lane += *x;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - max);
        sum += *x;
    }
    sum
}
