//! `y = x W (+ b)` as one autodiff node on flex whose forward and backward call gemm
//! directly.
//!
//! flex allocates every matmul output with `FlexTensor::empty`, which zero-fills a byte
//! vector and then copies it into an aligned one (a `Vec<u8>` records alignment 1): two
//! wasted passes over each activation and gradient, the 32 MiB logits included, before the
//! bias is added in a third. Here the output starts as the broadcast bias and gemm
//! accumulates onto it; the backward pass lets gemm write `dx` and `dW` into fresh buffers
//! and sums `db` in one pass over `dy`. Tensors on other backends use burn's `linear`.

mod flex;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;

use crate::flexbuf::is_f32;

/// `x [N, d_in] · weight [d_in, d_out] + bias [d_out]` -> `[N, d_out]`; `weight` may be a
/// transposed view (the tied output head).
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    if let Some(y) = fused(&x, &weight, bias.as_ref()) {
        return y;
    }
    burn::tensor::module::linear(x, weight, bias)
}

/// The fused product when every operand is an f32 flex tensor, tracked by autodiff or not.
fn fused(x: &Tensor<2>, weight: &Tensor<2>, bias: Option<&Tensor<1>>) -> Option<Tensor<2>> {
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        let weight = weight.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let bias = match bias {
            Some(bias) => Some(bias.clone().try_into_primitive::<Autodiff<Flex>>().ok()?),
            None => None,
        };
        let operands = [Some(&x), Some(&weight), bias.as_ref()];
        if !operands
            .into_iter()
            .flatten()
            .all(|t| is_f32(t.primitive()))
        {
            return None;
        }
        let y = flex::forward(
            x.primitive(),
            weight.primitive(),
            bias.as_ref().map(|bias| bias.primitive()),
        );
        let state = (x.primitive().clone(), weight.primitive().clone());
        let y = match bias {
            Some(bias) => match LinearNode
                .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            },
            None => match MatmulNode
                .prepare::<NoCheckpointing>([x.node(), weight.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            },
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let weight = weight.clone().try_into_primitive::<Flex>().ok()?;
    let bias = match bias {
        Some(bias) => Some(bias.clone().try_into_primitive::<Flex>().ok()?),
        None => None,
    };
    if !is_f32(&x) || !is_f32(&weight) || !bias.as_ref().is_none_or(is_f32) {
        return None;
    }
    let y = flex::forward(&x, &weight, bias.as_ref());
    Some(Tensor::from_primitive::<Flex>(y))
}

/// `x W + b`; the state is `(x, W)`.
#[derive(Debug)]
struct LinearNode;

/// `x W`; the state is `(x, W)`.
#[derive(Debug)]
struct MatmulNode;

impl Backward<Flex, 3> for LinearNode {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, flex::bias_grad(&dy));
        }
        let parents = [x_node.map(|n| n.id), weight_node.map(|n| n.id)];
        register_product_grads(grads, parents, ops.state, dy);
    }
}

impl Backward<Flex, 2> for MatmulNode {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|node| node.map(|n| n.id));
        register_product_grads(grads, parents, ops.state, dy);
    }
}

/// `dx = dy Wᵀ` and `dW = xᵀ dy`, for the parents that need them.
fn register_product_grads(
    grads: &mut Gradients,
    [x_node, weight_node]: [Option<NodeId>; 2],
    (x, weight): (FlexTensor, FlexTensor),
    dy: FlexTensor,
) {
    if let Some(id) = x_node {
        grads.register::<Flex>(id, flex::input_grad(&dy, &weight));
    }
    if let Some(id) = weight_node {
        grads.register::<Flex>(id, flex::weight_grad(&x, &dy, &weight));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    /// `x [37, 24]`, `weight [24, 19]` (a transposed view, as the tied head's, when asked)
    /// and `bias [19]`.
    fn operands(device: &Device, transposed: bool) -> (Tensor<2>, Tensor<2>, Tensor<1>) {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<2>::random([37, 24], normal, device);
        let weight = match transposed {
            true => Tensor::<2>::random([19, 24], normal, device).transpose(),
            false => Tensor::<2>::random([24, 19], normal, device),
        };
        (x, weight, Tensor::<1>::random([19], normal, device))
    }

    #[test]
    fn values_and_gradients_equal_burns_linear() {
        let device = Device::flex().autodiff();
        for (with_bias, transposed) in [(true, false), (false, true), (false, false)] {
            let (x, weight, bias) = operands(&device, transposed);
            let leaves = |t: &Tensor<2>| t.clone().detach().require_grad();
            let (x_fused, w_fused, x_ref, w_ref) =
                (leaves(&x), leaves(&weight), leaves(&x), leaves(&weight));
            let (b_fused, b_ref) = (
                bias.clone().detach().require_grad(),
                bias.clone().detach().require_grad(),
            );
            let fused_bias = with_bias.then(|| b_fused.clone());
            assert!(fused(&x_fused, &w_fused, fused_bias.as_ref()).is_some());

            // A non-uniform upstream gradient, so each output element's weight matters.
            let upstream = Tensor::<2>::random([37, 19], Distribution::Normal(0.0, 1.0), &device);
            let y = linear(x_fused.clone(), w_fused.clone(), fused_bias);
            let reference = burn::tensor::module::linear(
                x_ref.clone(),
                w_ref.clone(),
                with_bias.then(|| b_ref.clone()),
            );
            y.clone()
                .into_data()
                .assert_approx_eq::<f32>(&reference.clone().into_data(), Tolerance::absolute(1e-5));

            let grads = (y * upstream.clone()).sum().backward();
            let reference_grads = (reference * upstream).sum().backward();
            let close = |a: Tensor<2>, b: Tensor<2>| {
                a.into_data()
                    .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-4))
            };
            close(
                x_fused.grad(&grads).unwrap(),
                x_ref.grad(&reference_grads).unwrap(),
            );
            close(
                w_fused.grad(&grads).unwrap(),
                w_ref.grad(&reference_grads).unwrap(),
            );
            if with_bias {
                b_fused
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .assert_approx_eq::<f32>(
                        &b_ref.grad(&reference_grads).unwrap().into_data(),
                        Tolerance::absolute(1e-4),
                    );
            }
        }
    }

    #[test]
    fn untracked_tensors_take_the_fused_path() {
        let device = Device::flex();
        let (x, weight, bias) = operands(&device, false);
        let y = fused(&x, &weight, Some(&bias)).expect("fused path");
        let reference = burn::tensor::module::linear(x, weight, Some(bias));
        y.into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-5));
    }
}
