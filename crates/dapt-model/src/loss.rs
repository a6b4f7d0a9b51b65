//! Next-token cross-entropy, per token or reduced, as one fused operation.
//!
//! burn's `log_softmax` is six element-wise operations over the `[tokens, vocab]` logits,
//! each with its own autodiff node; at vocabulary 8192 they were, after the matmuls, the
//! largest cost of a training step on the flex backend (a single-threaded scalar `exp` pass
//! alone was a fifth of it). Here the loss is one autodiff node on the concrete backend:
//!
//! - forward: `p = softmax(x)` and per row `nll = logsumexp(x) - x_target`;
//! - backward: `d nll / d x = p - onehot(target)`, scaled by the incoming gradient.
//!
//! flex gets its own kernel ([`flex`]); LibTorch (the `tch` feature) composes its native
//! softmax, argmax and gathers. A tensor on any other backend takes the composed
//! `log_softmax` path, which computes the same values.

mod flex;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{
    Autodiff, Backend, DispatchKindConversion, DispatchTensor, Flex, TensorMetadata,
};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::log_softmax;

/// Negative log-likelihood in nats of each target under `logits`: `[B, T, V]`, `[B, T]` -> `[B, T]`.
pub fn per_token_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [batch, time, vocab] = logits.dims();
    let rows = logits.reshape([batch * time, vocab]);
    let targets = targets.reshape([batch * time, 1]);
    nll_rows(rows, targets).reshape([batch, time])
}

/// Mean token NLL (the training loss), shape `[1]`.
pub fn mean_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    per_token_nll(logits, targets).mean()
}

/// Summed token NLL (for bits per byte), shape `[1]`.
pub fn sum_nll(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    per_token_nll(logits, targets).sum()
}

/// `[N, V]` logits and `[N, 1]` targets -> `[N, 1]` NLL.
fn nll_rows(logits: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<2> {
    let logits = match fused_on::<Flex>(logits, &targets) {
        Ok(nll) => return nll,
        Err(logits) => *logits,
    };
    #[cfg(feature = "tch")]
    let logits = match fused_on::<burn::backend::LibTorch>(logits, &targets) {
        Ok(nll) => return nll,
        Err(logits) => *logits,
    };
    log_softmax(logits, 1).gather(1, targets).neg()
}

/// A backend's fused softmax cross-entropy over `[N, V]` logits and `[N, 1]` targets.
trait FusedCrossEntropy: Backend {
    /// The `[N, 1]` NLL and the `[N, V]` probabilities the backward pass needs.
    fn forward(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> [FloatTensor<Self>; 2];

    /// The gradient of the logits from the probabilities and the `[N, 1]` gradient of the NLL.
    fn backward(
        probs: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl FusedCrossEntropy for Flex {
    fn forward(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> [FloatTensor<Self>; 2] {
        match flex::row_offsets(&targets, &logits) {
            Some(offsets) => flex::forward(logits, &offsets),
            None => composed_forward::<Self>(logits, targets),
        }
    }

    fn backward(
        probs: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match flex::row_offsets(&targets, &probs) {
            Some(offsets) if crate::flexbuf::is_f32(&grad) => {
                flex::backward(probs, &offsets, &grad)
            }
            _ => composed_backward::<Self>(probs, targets, grad),
        }
    }
}

#[cfg(feature = "tch")]
impl FusedCrossEntropy for burn::backend::LibTorch {
    fn forward(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> [FloatTensor<Self>; 2] {
        composed_forward::<Self>(logits, targets)
    }

    fn backward(
        probs: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_backward::<Self>(probs, targets, grad)
    }
}

/// The forward from the backend's own softmax, argmax and gathers:
/// `nll = x_max - x_target - ln p_max`, where `p_max = 1 / sum_j exp(x_j - x_max)` is never
/// below `1/V`, so its logarithm is exact where `ln p_target` could underflow.
fn composed_forward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> [FloatTensor<B>; 2] {
    let probs = B::softmax(logits.clone(), 1);
    let argmax = B::float_argmax(logits.clone(), 1, targets.dtype().into());
    let logit_max = B::float_gather(1, logits.clone(), argmax.clone());
    let prob_max = B::float_gather(1, probs.clone(), argmax);
    let logit_target = B::float_gather(1, logits, targets);
    let nll = B::float_sub(
        B::float_sub(logit_max, logit_target),
        B::float_log(prob_max),
    );
    [nll, probs]
}

fn composed_backward<B: Backend>(
    probs: FloatTensor<B>,
    targets: IntTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let shape = probs.shape();
    let scaled = B::float_mul(probs, B::float_expand(grad.clone(), shape));
    B::float_scatter(
        1,
        scaled,
        targets,
        B::float_neg(grad),
        IndexingUpdateOp::Add,
    )
}

/// The fused loss when `logits` live on backend `B`, tracked by autodiff or not; the logits
/// back otherwise. They are taken by value, so the kernel can write the probabilities into
/// their buffer when nothing else holds it (the backends copy on write when something does).
fn fused_on<B: FusedCrossEntropy>(
    logits: Tensor<2>,
    targets: &Tensor<2, Int>,
) -> Result<Tensor<2>, Box<Tensor<2>>>
where
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B>>,
{
    // Decided on clones dropped at once, so that `logits` is consumed only on success.
    let tracked = logits.clone().try_into_primitive::<Autodiff<B>>().is_ok();
    if !tracked && logits.clone().try_into_primitive::<B>().is_err() {
        return Err(Box::new(logits));
    }
    // Integer tensors are not tracked: they may carry the autodiff context or not.
    let targets = match targets.clone().try_into_primitive::<Autodiff<B>>() {
        Ok(targets) => targets,
        Err(_) => match targets.clone().try_into_primitive::<B>() {
            Ok(targets) => targets,
            Err(_) => return Err(Box::new(logits)),
        },
    };
    if !tracked {
        let logits = logits.try_into_primitive::<B>().expect("checked above");
        let [nll, _] = B::forward(logits, targets);
        return Ok(Tensor::from_primitive::<B>(nll));
    }
    let logits = logits
        .try_into_primitive::<Autodiff<B>>()
        .expect("checked above");
    let nll = match FusedNll
        .prepare::<NoCheckpointing>([logits.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let [nll, probs] = B::forward(logits.into_primitive(), targets.clone());
            prep.finish((probs, targets), nll)
        }
        OpsKind::UnTracked(prep) => {
            let [nll, _] = B::forward(logits.into_primitive(), targets);
            prep.finish(nll)
        }
    };
    Ok(Tensor::from_primitive::<Autodiff<B>>(nll))
}

#[derive(Debug)]
struct FusedNll;

impl<B: FusedCrossEntropy> Backward<B, 1> for FusedNll {
    /// The softmax probabilities `[N, V]` and the targets `[N, 1]`.
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (probs, targets) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::backward(probs, targets, grad)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids_tensor;
    use burn::tensor::Tolerance;

    #[test]
    fn nll_of_known_distribution() {
        let device = Device::flex();
        // One position, vocab 2: logits (0, ln 3) -> p = (1/4, 3/4).
        let logits =
            Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 3f32.ln()], [1, 1, 2]), &device);
        let targets = ids_tensor(&[0], 1, 1, &device);
        let nll: f32 = sum_nll(logits.clone(), targets.clone()).into_scalar();
        assert!((nll - 4f32.ln()).abs() < 1e-6, "{nll}");
        let mean: f32 = mean_nll(logits, targets).into_scalar();
        assert!((mean - 4f32.ln()).abs() < 1e-6, "{mean}");
    }

    /// Random logits with a wide range, so some target probabilities are tiny.
    fn logits_and_targets(device: &Device) -> (Tensor<3>, Tensor<2, Int>) {
        let logits = Tensor::<3>::random(
            [3, 5, 37],
            burn::tensor::Distribution::Normal(0.0, 8.0),
            device,
        );
        let ids: Vec<u32> = (0..15).map(|i| (i * 11 % 37) as u32).collect();
        (logits, ids_tensor(&ids, 3, 5, device))
    }

    fn composed(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
        log_softmax(logits, 2)
            .gather(2, targets.unsqueeze_dim(2))
            .neg()
            .mean()
    }

    #[test]
    fn fused_loss_and_gradient_equal_the_composed_log_softmax() {
        let device = Device::flex().autodiff();
        let (logits, targets) = logits_and_targets(&device);
        let (fused_input, composed_input) = (logits.clone().require_grad(), logits.require_grad());
        let rows = fused_input.clone().reshape([15, 37]);
        assert!(fused_on::<Flex>(rows, &targets.clone().reshape([15, 1])).is_ok());

        let fused = mean_nll(fused_input.clone(), targets.clone());
        let reference = composed(composed_input.clone(), targets);
        fused
            .clone()
            .into_data()
            .assert_approx_eq::<f32>(&reference.clone().into_data(), Tolerance::absolute(1e-5));

        let fused_grad = fused_input.grad(&fused.backward()).unwrap();
        let reference_grad = composed_input.grad(&reference.backward()).unwrap();
        fused_grad
            .into_data()
            .assert_approx_eq::<f32>(&reference_grad.into_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn untracked_logits_take_the_fused_path_with_the_same_values() {
        let device = Device::flex();
        let (logits, targets) = logits_and_targets(&device);
        let rows = logits.clone().reshape([15, 37]);
        assert!(fused_on::<Flex>(rows, &targets.clone().reshape([15, 1])).is_ok());
        let fused = per_token_nll(logits.clone(), targets.clone());
        let reference = log_softmax(logits, 2)
            .gather(2, targets.unsqueeze_dim(2))
            .squeeze_dim::<2>(2)
            .neg();
        fused
            .into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-5));
    }
}
