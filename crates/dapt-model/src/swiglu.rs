//! SwiGLU, `silu(gate) · up` over the two halves of the MLP's expanded width (Llama's
//! `act_fn(gate_proj(x)) * up_proj(x)`, with both projections in one product), as one
//! autodiff node on flex.
//!
//! burn composes it from two strided views, a sigmoid, two products and their gradients
//! through the views (six nodes). Here one pass reads each row's gate and up halves and
//! writes `[.., d_ff]`; backward writes `[dgate | dup]` in one pass:
//! `dgate = dy · up · σ(g)(1 + g(1 − σ(g)))`, `dup = dy · silu(g)`. The sigmoid uses the
//! vector `exp` of [`crate::vmath`]. Other backends use burn's operations.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor, is_f32, last_dim};
use crate::vmath::{exp_nonpositive, vectorized};

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 16;

/// `[.., 2·f]` (gate | up) -> `[.., f]`.
pub fn swiglu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused(&x).unwrap_or_else(|| composed(x))
}

fn composed<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let half = x.dims()[D - 1] / 2;
    burn::tensor::activation::silu(x.clone().narrow(D - 1, 0, half)) * x.narrow(D - 1, half, half)
}

fn fused<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        if !is_f32(x.primitive()) {
            return None;
        }
        let y = forward(x.primitive());
        let y = match SwiGluNode
            .prepare::<NoCheckpointing>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(x.into_primitive(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    is_f32(&x).then(|| Tensor::from_primitive::<Flex>(forward(&x)))
}

/// The state is the input.
#[derive(Debug)]
struct SwiGluNode;

impl Backward<Flex, 1> for SwiGluNode {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| backward(&x, dy));
    }
}

/// `σ(x)`, from `exp(−|x|)` so it never overflows.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

fn forward(x: &FlexTensor) -> FlexTensor {
    let x = compact(x.clone());
    let width = last_dim(&x);
    let half = width / 2;
    let input: &[f32] = x.storage();
    let mut out = vec![0f32; input.len() / 2];
    out.par_chunks_mut(half * ROWS_PER_TASK)
        .zip(input.par_chunks(width * ROWS_PER_TASK))
        .for_each(|(out, input)| {
            vectorized(
                #[inline(always)]
                || {
                    for (y, row) in out.chunks_exact_mut(half).zip(input.chunks_exact(width)) {
                        let (gate, up) = row.split_at(half);
                        for ((y, &g), &u) in y.iter_mut().zip(gate).zip(up) {
                            *y = g * sigmoid(g) * u;
                        }
                    }
                },
            )
        });
    let mut shape = x.layout().shape().clone();
    let last = shape.len() - 1;
    shape[last] = half;
    f32_tensor(out, shape)
}

fn backward(x: &FlexTensor, dy: FlexTensor) -> FlexTensor {
    let x = compact(x.clone());
    let dy = compact(dy);
    let width = last_dim(&x);
    let half = width / 2;
    let input: &[f32] = x.storage();
    let d_out: &[f32] = dy.storage();
    let mut dx = vec![0f32; input.len()];
    dx.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(input.par_chunks(width * ROWS_PER_TASK))
        .zip(d_out.par_chunks(half * ROWS_PER_TASK))
        .for_each(|((dx, input), d_out)| {
            vectorized(
                #[inline(always)]
                || {
                    let rows = dx.chunks_exact_mut(width).zip(input.chunks_exact(width));
                    for ((d_row, row), dy) in rows.zip(d_out.chunks_exact(half)) {
                        let (gate, up) = row.split_at(half);
                        let (d_gate, d_up) = d_row.split_at_mut(half);
                        for i in 0..half {
                            let (g, u) = (gate[i], up[i]);
                            let s = sigmoid(g);
                            d_gate[i] = dy[i] * u * s * (1.0 + g * (1.0 - s));
                            d_up[i] = dy[i] * g * s;
                        }
                    }
                },
            )
        });
    f32_tensor(dx, x.layout().shape().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_same_values_and_gradients;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn values_and_gradients_equal_burns_composition() {
        let device = Device::flex().autodiff();
        // Wide enough for both tails of the sigmoid; more rows than one task's chunk.
        let x = Tensor::<3>::random([3, 13, 2 * 37], Distribution::Normal(0.0, 4.0), &device);
        assert!(fused(&x).is_some());
        assert_same_values_and_gradients(x, swiglu, composed, Tolerance::rel_abs(1e-5, 1e-5));
    }
}
