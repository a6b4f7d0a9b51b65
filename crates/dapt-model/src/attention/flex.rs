//! The fused attention's f32 kernels on flex: rayon over (batch, head) pairs, single-thread
//! gemm within a pair.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor};
use crate::gemm::{Parallelism, View, gemm_into};
use crate::model::Heads;
use crate::vmath::{exp_nonpositive, vectorized};

/// Where one (batch, head) pair's rows lie in the `[B, T, width]` projections and the
/// `[B, T, n_head·head_dim]` context: both row-major, so a head is a column block. Query
/// head `h` reads key/value head `h / group` (grouped-query attention).
#[derive(Clone, Copy)]
struct Geometry {
    heads: Heads,
    seq_len: usize,
}

impl Geometry {
    fn of(qkv: &FlexTensor, heads: Heads) -> (Self, usize) {
        let dims = qkv.layout().shape().to_vec();
        let [batch, seq_len, width] = dims[..] else {
            panic!("attention expects [B, T, width], got {dims:?}");
        };
        assert!(
            width == heads.width() && heads.n_head.is_multiple_of(heads.n_kv_head),
            "width {width} does not hold {heads:?}"
        );
        (Self { heads, seq_len }, batch)
    }

    fn width(&self) -> usize {
        self.heads.width()
    }

    fn context_width(&self) -> usize {
        self.heads.q_width()
    }

    fn group(&self) -> usize {
        self.heads.n_head / self.heads.n_kv_head
    }

    /// Offsets of pair `pair`'s first query, key and value elements in the projections.
    fn qkv_offsets(&self, pair: usize) -> [usize; 3] {
        let Heads {
            n_head,
            n_kv_head,
            head_dim,
        } = self.heads;
        let (batch, head) = (pair / n_head, pair % n_head);
        let row = batch * self.seq_len * self.width();
        let kv_head = head / self.group();
        [
            row + head * head_dim,
            row + (n_head + kv_head) * head_dim,
            row + (n_head + n_kv_head + kv_head) * head_dim,
        ]
    }

    /// Offset of pair `pair`'s first element in the context.
    fn context_offset(&self, pair: usize) -> usize {
        let (batch, head) = (pair / self.heads.n_head, pair % self.heads.n_head);
        batch * self.seq_len * self.context_width() + head * self.heads.head_dim
    }

    /// Query, key and value rows of a pair in a `[B, T, width]` buffer.
    fn parts(&self, qkv: &[f32], pair: usize) -> [View; 3] {
        self.qkv_offsets(pair).map(|offset| {
            let rows = qkv[offset..].as_ptr();
            View::rows(rows, self.seq_len, self.heads.head_dim, self.width())
        })
    }

    /// The softmax temperature `1 / sqrt(head_dim)`.
    fn scale(&self) -> f32 {
        1.0 / (self.heads.head_dim as f32).sqrt()
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
    unsafe { accumulate_product_into(dst, dst_row_stride, false, scale, lhs, rhs) }
}

/// As [`product_into`], adding to `dst` when `accumulate`.
///
/// # Safety
/// As [`gemm_into`].
unsafe fn accumulate_product_into(
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    scale: f32,
    lhs: &View,
    rhs: &View,
) {
    // SAFETY: forwarded.
    unsafe {
        gemm_into(
            dst,
            dst_row_stride,
            accumulate,
            scale,
            lhs,
            rhs,
            Parallelism::None,
        )
    }
}

/// Keys `0..visible(row)` that query `row` attends to: itself and those before it when
/// `causal`, all `t` otherwise (encoders).
#[inline(always)]
fn visible(causal: bool, row: usize, t: usize) -> usize {
    if causal { row + 1 } else { t }
}

/// `[B, T, n_head·head_dim]` context and the `[B·H, T, T]` attention probabilities.
pub(super) fn forward(qkv: &FlexTensor, heads: Heads, causal: bool) -> (FlexTensor, Vec<f32>) {
    let qkv = compact(qkv.clone());
    let (geometry, batch) = Geometry::of(&qkv, heads);
    let (t, context_width, scale) = (geometry.seq_len, geometry.context_width(), geometry.scale());
    let base: &[f32] = qkv.storage();
    let mut probs = vec![0f32; batch * heads.n_head * t * t];
    let mut context = vec![0f32; batch * t * context_width];
    let out = SharedOut(context.as_mut_ptr());
    probs
        .par_chunks_mut(t * t)
        .enumerate()
        .for_each(|(pair, probs)| {
            let [query, key, value] = geometry.parts(base, pair);
            // SAFETY: `probs` is this pair's t x t block; `out` at the pair's offset has
            // t rows of head_dim columns, context_width apart, written by this task only.
            unsafe {
                product_into(probs.as_mut_ptr(), t, scale, &query, &key.transposed());
                vectorized(
                    #[inline(always)]
                    || {
                        let rows = probs.chunks_exact_mut(t).enumerate();
                        rows.for_each(|(row, scores)| {
                            masked_softmax(scores, visible(causal, row, t))
                        });
                    },
                );
                let probs = View::rows(probs.as_ptr(), t, t, t);
                let dst = out.at(geometry.context_offset(pair));
                product_into(dst, context_width, 1.0, &probs, &value);
            }
        });
    let context = f32_tensor(context, [batch, t, context_width]);
    (context, probs)
}

/// The `[B, T, width]` gradient of the projections from the context's. One task per
/// (batch, key/value head) runs that head's query heads in turn, so the key and value
/// gradients they share are summed in a fixed order by one thread.
pub(super) fn backward(
    qkv: &FlexTensor,
    probs: &[f32],
    heads: Heads,
    causal: bool,
    d_context: FlexTensor,
) -> FlexTensor {
    let qkv = compact(qkv.clone());
    let d_context = compact(d_context);
    let (geometry, batch) = Geometry::of(&qkv, heads);
    let (t, context_width, scale) = (geometry.seq_len, geometry.context_width(), geometry.scale());
    let width = geometry.width();
    let group = geometry.group();
    let base: &[f32] = qkv.storage();
    let d_base: &[f32] = d_context.storage();
    let mut grad = vec![0f32; batch * t * width];
    let out = SharedOut(grad.as_mut_ptr());
    probs
        .par_chunks(group * t * t)
        .enumerate()
        .for_each(|(kv_pair, group_probs)| {
            let mut d_scores = vec![0f32; t * t];
            for (member, probs) in group_probs.chunks_exact(t * t).enumerate() {
                let pair = kv_pair * group + member;
                let [query, key, value] = geometry.parts(base, pair);
                let offsets = geometry.qkv_offsets(pair);
                let first = member == 0;
                // SAFETY: `d_out` is the pair's block of the context gradient; the
                // destinations are the pair's q column block and its key/value head's k and
                // v blocks of `grad`, written by this task only (the task owns every query
                // head of that key/value head); `d_scores` is the task's own t x t buffer.
                unsafe {
                    let d_out = d_base[geometry.context_offset(pair)..].as_ptr();
                    let d_out = View::rows(d_out, t, heads.head_dim, context_width);
                    let probs_view = View::rows(probs.as_ptr(), t, t, t);
                    let dst = |part: usize| out.at(offsets[part]);
                    accumulate_product_into(
                        dst(2),
                        width,
                        !first,
                        1.0,
                        &probs_view.transposed(),
                        &d_out,
                    );
                    product_into(d_scores.as_mut_ptr(), t, 1.0, &d_out, &value.transposed());
                    vectorized(
                        #[inline(always)]
                        || {
                            let rows = d_scores.chunks_exact_mut(t).zip(probs.chunks_exact(t));
                            let rows = rows.enumerate();
                            rows.for_each(|(row, (d_row, p_row))| {
                                softmax_backward(d_row, p_row, visible(causal, row, t))
                            });
                        },
                    );
                    let d_scores = View::rows(d_scores.as_ptr(), t, t, t);
                    product_into(dst(0), width, scale, &d_scores, &key);
                    accumulate_product_into(
                        dst(1),
                        width,
                        !first,
                        scale,
                        &d_scores.transposed(),
                        &query,
                    );
                }
            }
        });
    f32_tensor(grad, [batch, t, width])
}

/// Softmax of a row's scores over its first `visible` keys, zero beyond (the causal mask
/// when `visible` is the row's position plus one).
#[inline(always)]
fn masked_softmax(scores: &mut [f32], visible: usize) {
    let (visible, masked) = scores.split_at_mut(visible);
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

/// `dP -> P ∘ (dP − Σ P ∘ dP)` over a row's first `visible` keys; masked ones get 0.
#[inline(always)]
fn softmax_backward(d_probs: &mut [f32], probs: &[f32], visible: usize) {
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
