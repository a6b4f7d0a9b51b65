//! Next-token cross-entropy, per token or reduced, as one fused operation.
//!
//! burn's `log_softmax` is six element-wise operations over the `[tokens, vocab]` logits,
//! each with its own autodiff node; at vocabulary 8192 they were, after the matmuls, the
//! largest cost of a training step on the flex backend (a single-threaded scalar `exp` pass
//! alone was a fifth of it). Here the loss is one autodiff node on the concrete backend:
//!
//! - forward: per row `nll = logsumexp(x) - x_target`;
//! - backward: `d nll / d x = softmax(x) - onehot(target)`, scaled by the incoming gradient.
//!
//! flex gets its own kernel ([`flex`]): the forward pass only reads the logits, the
//! backward pass recomputes the probabilities from the kept logits and row `logsumexp`
//! and writes the gradient into the logits' buffer. LibTorch (the `tch` feature) composes
//! its native softmax, argmax and gathers and keeps the probabilities. A tensor on any
//! other backend, or one the kernel does not take, follows the composed `log_softmax`
//! path, which computes the same values.

mod flex;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor, Flex};
use burn::prelude::*;
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
    if let Some(nll) = fused_on::<Flex>(&logits, &targets) {
        return nll;
    }
    #[cfg(feature = "tch")]
    if let Some(nll) = fused_on::<burn::backend::LibTorch>(&logits, &targets) {
        return nll;
    }
    log_softmax(logits, 1).gather(1, targets).neg()
}

/// A backend's fused softmax cross-entropy over `[N, V]` logits and `[N, 1]` targets.
trait FusedCrossEntropy: Backend {
    /// What the backward pass needs from the forward pass.
    type Saved: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// The `[N, 1]` NLL and what backward needs, or `None` when the kernel does not take
    /// these logits and targets.
    fn forward(
        logits: &FloatTensor<Self>,
        targets: &IntTensor<Self>,
    ) -> Option<(FloatTensor<Self>, Self::Saved)>;

    /// The gradient of the logits from the `[N, 1]` gradient of the NLL.
    fn backward(saved: Self::Saved, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FusedCrossEntropy for Flex {
    type Saved = flex::Saved;

    fn forward(
        logits: &FloatTensor<Self>,
        targets: &IntTensor<Self>,
    ) -> Option<(FloatTensor<Self>, Self::Saved)> {
        flex::forward(logits, targets)
    }

    fn backward(saved: Self::Saved, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        flex::backward(saved, &grad)
    }
}

#[cfg(feature = "tch")]
impl FusedCrossEntropy for burn::backend::LibTorch {
    /// The probabilities and the targets.
    type Saved = (FloatTensor<Self>, IntTensor<Self>);

    fn forward(
        logits: &FloatTensor<Self>,
        targets: &IntTensor<Self>,
    ) -> Option<(FloatTensor<Self>, Self::Saved)> {
        Some(composed::forward::<Self>(logits, targets))
    }

    fn backward((probs, targets): Self::Saved, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::backward::<Self>(probs, targets, grad)
    }
}

/// The fused loss from a backend's own primitives (LibTorch's native kernels).
#[cfg(feature = "tch")]
mod composed {
    use burn::backend::tensor::{FloatTensor, IntTensor};
    use burn::backend::{Backend, TensorMetadata};
    use burn::tensor::IndexingUpdateOp;

    /// `nll = x_max - x_target - ln p_max`, where `p_max = 1 / sum_j exp(x_j - x_max)` is
    /// never below `1/V`, so its logarithm is exact where `ln p_target` could underflow.
    /// Keeps the probabilities and targets for backward.
    pub(super) fn forward<B: Backend>(
        logits: &FloatTensor<B>,
        targets: &IntTensor<B>,
    ) -> (FloatTensor<B>, (FloatTensor<B>, IntTensor<B>)) {
        let probs = B::softmax(logits.clone(), 1);
        let argmax = B::float_argmax(logits.clone(), 1, targets.dtype().into());
        let logit_max = B::float_gather(1, logits.clone(), argmax.clone());
        let prob_max = B::float_gather(1, probs.clone(), argmax);
        let logit_target = B::float_gather(1, logits.clone(), targets.clone());
        let nll = B::float_sub(
            B::float_sub(logit_max, logit_target),
            B::float_log(prob_max),
        );
        (nll, (probs, targets.clone()))
    }

    /// `probs * grad - onehot(targets) * grad`.
    pub(super) fn backward<B: Backend>(
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
}

/// The fused loss when `logits` live on backend `B` (tracked by autodiff or not) and its
/// kernel takes them. The forward kernels only read the logits; flex's backward writes
/// into the buffer it kept, which is unshared by then (the caller's handles are gone).
fn fused_on<B: FusedCrossEntropy>(logits: &Tensor<2>, targets: &Tensor<2, Int>) -> Option<Tensor<2>>
where
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B>>,
{
    // Integer tensors are not tracked: they may carry the autodiff context or not.
    let targets = targets
        .clone()
        .try_into_primitive::<Autodiff<B>>()
        .or_else(|_| targets.clone().try_into_primitive::<B>())
        .ok()?;
    if let Ok(tracked) = logits.clone().try_into_primitive::<Autodiff<B>>() {
        let (nll, saved) = B::forward(tracked.primitive(), &targets)?;
        let node = FusedNll.prepare::<NoCheckpointing>([tracked.node()]);
        let nll = match node.compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(saved, nll),
            OpsKind::UnTracked(prep) => prep.finish(nll),
        };
        return Some(Tensor::from_primitive::<Autodiff<B>>(nll));
    }
    let plain = logits.clone().try_into_primitive::<B>().ok()?;
    let (nll, _) = B::forward(&plain, &targets)?;
    Some(Tensor::from_primitive::<B>(nll))
}

#[derive(Debug)]
struct FusedNll;

impl<B: FusedCrossEntropy> Backward<B, 1> for FusedNll {
    type State = B::Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let saved = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::backward(saved, grad)
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
        assert!(fused_on::<Flex>(&rows, &targets.clone().reshape([15, 1])).is_some());

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
        assert!(fused_on::<Flex>(&rows, &targets.clone().reshape([15, 1])).is_some());
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
