//! The fused attention's f32 kernels on flex: rayon over (batch, head) pairs, single-thread
//! gemm within a pair.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor};
use crate::gemm::{Parallelism, View, gemm_into};
use crate::vmath::{exp_nonpositive, vectorized};

/// Where one (batch, head) pair's rows lie in the `[B, T, 3d]` projections and the
/// `[B, T, d]` context: both row-major, so a head is a column block.
#[derive(Clone, Copy)]
struct Geometry {
    heads: usize,
    seq_len: usize,
    head_dim: usize,
    d_model: usize,
}

impl Geometry {
    fn of(qkv: &FlexTensor, heads: usize) -> (Self, usize) {
        let dims = qkv.layout().shape().to_vec();
        let [batch, seq_len, width] = dims[..] else {
            panic!("attention expects [B, T, 3d], got {dims:?}");
        };
        let d_model = width / 3;
        assert!(
            width == 3 * d_model && d_model.is_multiple_of(heads),
            "width {width} is not 3 x heads {heads} x head_dim"
        );
        let geometry = Self {
            heads,
            seq_len,
            head_dim: d_model / heads,
            d_model,
        };
        (geometry, batch)
    }

    /// Offset of pair `pair`'s first query element in the projections; keys follow `d`
    /// further, values `2d`.
    fn qkv_offset(&self, pair: usize) -> usize {
        let (batch, head) = (pair / self.heads, pair % self.heads);
        batch * self.seq_len * 3 * self.d_model + head * self.head_dim
    }

    /// Offset of pair `pair`'s first element in the `[B, T, d]` context.
    fn context_offset(&self, pair: usize) -> usize {
        let (batch, head) = (pair / self.heads, pair % self.heads);
        batch * self.seq_len * self.d_model + head * self.head_dim
    }

    /// Query, key and value rows of a pair in a `[B, T, 3d]` buffer.
    fn parts(&self, qkv: &[f32], pair: usize) -> [View; 3] {
        [0, 1, 2].map(|part| {
            let offset = self.qkv_offset(pair) + part * self.d_model;
            let rows = qkv[offset..].as_ptr();
            View::rows(rows, self.seq_len, self.head_dim, 3 * self.d_model)
        })
    }

    /// The softmax temperature `1 / sqrt(head_dim)`.
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// A pointer the pairs write through, each to its own column block.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint elements (one head's column block of one batch row range).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` must lie inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: forwarded.
        unsafe { self.0.add(offset) }
    }
}

/// `dst = scale · lhs · rhs` on this thread (the pairs are the parallelism), `dst` rows
/// `dst_row_stride` apart.
///
/// # Safety
/// As [`gemm_into`].
unsafe fn product_into(dst: *mut f32, dst_row_stride: usize, scale: f32, lhs: &View, rhs: &View) {
    // SAFETY: forwarded.
    unsafe {
        gemm_into(
            dst,
            dst_row_stride,
            false,
            scale,
            lhs,
            rhs,
            Parallelism::None,
        )
    }
}

/// `[B, T, d]` context and the `[B·H, T, T]` attention probabilities.
pub(super) fn forward(qkv: &FlexTensor, heads: usize) -> (FlexTensor, Vec<f32>) {
    let qkv = compact(qkv.clone());
    let (geometry, batch) = Geometry::of(&qkv, heads);
    let (t, d_model, scale) = (geometry.seq_len, geometry.d_model, geometry.scale());
    let base: &[f32] = qkv.storage();
    let mut probs = vec![0f32; batch * heads * t * t];
    let mut context = vec![0f32; batch * t * d_model];
    let out = SharedOut(context.as_mut_ptr());
    probs
        .par_chunks_mut(t * t)
        .enumerate()
        .for_each(|(pair, probs)| {
            let [query, key, value] = geometry.parts(base, pair);
            // SAFETY: `probs` is this pair's t x t block; `out` at the pair's offset has
            // t rows of head_dim columns, d_model apart, written by this task only.
            unsafe {
                product_into(probs.as_mut_ptr(), t, scale, &query, &key.transposed());
                vectorized(
                    #[inline(always)]
                    || {
                        let rows = probs.chunks_exact_mut(t).enumerate();
                        rows.for_each(|(row, scores)| causal_softmax(scores, row));
                    },
                );
                let probs = View::rows(probs.as_ptr(), t, t, t);
                let dst = out.at(geometry.context_offset(pair));
                product_into(dst, d_model, 1.0, &probs, &value);
            }
        });
    let context = f32_tensor(context, [batch, t, d_model]);
    (context, probs)
}

/// The `[B, T, 3d]` gradient of the projections from the context's.
pub(super) fn backward(
    qkv: &FlexTensor,
    probs: &[f32],
    heads: usize,
    d_context: FlexTensor,
) -> FlexTensor {
    let qkv = compact(qkv.clone());
    let d_context = compact(d_context);
    let (geometry, batch) = Geometry::of(&qkv, heads);
    let (t, d_model, scale) = (geometry.seq_len, geometry.d_model, geometry.scale());
    let base: &[f32] = qkv.storage();
    let d_base: &[f32] = d_context.storage();
    let mut grad = vec![0f32; batch * t * 3 * d_model];
    let out = SharedOut(grad.as_mut_ptr());
    probs
        .par_chunks(t * t)
        .enumerate()
        .for_each(|(pair, probs)| {
            let [query, key, value] = geometry.parts(base, pair);
            // SAFETY: `d_out` is the pair's block of the [B, T, d] gradient; the three
            // destinations are the pair's q, k, v column blocks of `grad`, written by this
            // task only; `d_scores` is the task's own t x t buffer.
            unsafe {
                let d_out = d_base[geometry.context_offset(pair)..].as_ptr();
                let d_out = View::rows(d_out, t, geometry.head_dim, d_model);
                let probs_view = View::rows(probs.as_ptr(), t, t, t);
                let dst = |part: usize| out.at(geometry.qkv_offset(pair) + part * d_model);
                product_into(dst(2), 3 * d_model, 1.0, &probs_view.transposed(), &d_out);
                let mut d_scores = vec![0f32; t * t];
                product_into(d_scores.as_mut_ptr(), t, 1.0, &d_out, &value.transposed());
                vectorized(
                    #[inline(always)]
                    || {
                        let rows = d_scores.chunks_exact_mut(t).zip(probs.chunks_exact(t));
                        let rows = rows.enumerate();
                        rows.for_each(|(row, (d_row, p_row))| softmax_backward(d_row, p_row, row));
                    },
                );
                let d_scores = View::rows(d_scores.as_ptr(), t, t, t);
                product_into(dst(0), 3 * d_model, scale, &d_scores, &key);
                product_into(dst(1), 3 * d_model, scale, &d_scores.transposed(), &query);
            }
        });
    f32_tensor(grad, [batch, t, 3 * d_model])
}

/// Softmax of row `row`'s scores over keys `0..=row`, zero beyond: the causal mask.
#[inline(always)]
fn causal_softmax(scores: &mut [f32], row: usize) {
    let (visible, masked) = scores.split_at_mut(row + 1);
    let max = visible.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0.0;
    for s in visible.iter_mut() {
        *s = exp_nonpositive(*s - max);
        sum += *s;
    }
    let inverse = 1.0 / sum;
    visible.iter_mut().for_each(|p| *p *= inverse);
    masked.fill(0.0);
}

/// `dP -> P ∘ (dP − Σ P ∘ dP)` over the visible keys of row `row`; masked ones get 0.
#[inline(always)]
fn softmax_backward(d_probs: &mut [f32], probs: &[f32], row: usize) {
    let visible = row + 1;
    let dot: f32 = d_probs[..visible]
        .iter()
        .zip(&probs[..visible])
        .map(|(d, p)| d * p)
        .sum();
    for (d, &p) in d_probs[..visible].iter_mut().zip(&probs[..visible]) {
        *d = p * (*d - dot);
    }
    d_probs[visible..].fill(0.0);
}
