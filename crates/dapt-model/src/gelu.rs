//! GELU (the exact erf form, as PyTorch's default) as one autodiff node on flex with
//! vectorised kernels over rayon chunks.
//!
//! flex computes GELU and its derivative element by element with libm's scalar `erff` and
//! `expf` (6% of a training step on the 4-layer model); here both passes use the
//! polynomial `erf` and `exp` of [`crate::vmath`] over rayon chunks, and the backward pass
//! writes into the incoming gradient's buffer. Other backends use burn's `gelu`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor, is_f32};
use crate::vmath::{erf, exp_nonpositive, vectorized};

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

/// `x Φ(x)`, element-wise.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused(&x).unwrap_or_else(|| burn::tensor::activation::gelu(x))
}

fn fused<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        if !is_f32(x.primitive()) {
            return None;
        }
        let y = forward(x.primitive());
        let y = match GeluNode
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
struct GeluNode;

impl Backward<Flex, 1> for GeluNode {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| backward(&x, dy));
    }
}

fn forward(x: &FlexTensor) -> FlexTensor {
    let x = compact(x.clone());
    let input: &[f32] = x.storage();
    let mut out = vec![0f32; input.len()];
    out.par_chunks_mut(CHUNK)
        .zip(input.par_chunks(CHUNK))
        .for_each(|(out, input)| {
            vectorized(
                #[inline(always)]
                || {
                    for (y, &x) in out.iter_mut().zip(input) {
                        *y = x * cdf(x);
                    }
                },
            )
        });
    f32_tensor(out, x.layout().shape().clone())
}

/// `dy · (Φ(x) + x φ(x))`, in `dy`'s buffer.
fn backward(x: &FlexTensor, dy: FlexTensor) -> FlexTensor {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let x = compact(x.clone());
    let mut dx = compact(dy);
    dx.storage_mut::<f32>()
        .par_chunks_mut(CHUNK)
        .zip(x.storage::<f32>().par_chunks(CHUNK))
        .for_each(|(grad, input)| {
            vectorized(
                #[inline(always)]
                || {
                    for (g, &x) in grad.iter_mut().zip(input) {
                        *g *= cdf(x) + x * INV_SQRT_2PI * exp_nonpositive(-0.5 * x * x);
                    }
                },
            )
        });
    dx
}

/// The standard normal CDF `Φ(x)`.
#[inline(always)]
fn cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_same_values_and_gradients;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn values_and_gradients_equal_burns_gelu() {
        let device = Device::flex().autodiff();
        // Wide enough to reach both tails, where erf saturates and φ underflows.
        let x = Tensor::<3>::random([3, 7, 41], Distribution::Normal(0.0, 4.0), &device);
        assert!(fused(&x).is_some());
        let reference = burn::tensor::activation::gelu;
        assert_same_values_and_gradients(x, gelu, reference, Tolerance::absolute(1e-5));
    }
}
