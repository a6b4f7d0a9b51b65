//! Layer normalisation over the last dimension as one autodiff node on flex.
//!
//! Under autodiff burn composes layer norm from eight element-wise and reduction
//! operations, each a node with its own buffer. Here the forward pass reads each row once
//! for its mean and variance and writes it once normalised, keeping the per-row mean and
//! inverse deviation; backward computes, per row, `dx = rstd · (dx̂ − mean(dx̂) −
//! x̂ · mean(dx̂ · x̂))` with `dx̂ = dy · γ`, and `dγ`, `dβ` from per-chunk partial sums
//! added in a fixed order (so results do not depend on thread timing). Other backends use
//! burn's `layer_norm`.

mod flex;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;

use crate::flexbuf::is_f32;
use flex::RowStats;

/// `(x − mean) / sqrt(var + epsilon) · gamma + beta` over the last dimension of `x`.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    fused(&x, &gamma, &beta, epsilon)
        .unwrap_or_else(|| burn::tensor::module::layer_norm(x, gamma, Some(beta), epsilon))
}

fn fused<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    epsilon: f64,
) -> Option<Tensor<D>> {
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        let gamma = gamma.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let beta = beta.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        if ![&x, &gamma, &beta].iter().all(|t| is_f32(t.primitive())) {
            return None;
        }
        let (y, stats) = flex::forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
        let y = match LayerNormNode
            .prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x.into_primitive(), gamma.into_primitive(), stats), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let gamma = gamma.clone().try_into_primitive::<Flex>().ok()?;
    let beta = beta.clone().try_into_primitive::<Flex>().ok()?;
    if ![&x, &gamma, &beta].iter().all(|t| is_f32(t)) {
        return None;
    }
    let (y, _) = flex::forward(&x, &gamma, &beta, epsilon);
    Some(Tensor::from_primitive::<Flex>(y))
}

/// The state: the input, gamma, and each row's mean and inverse deviation.
#[derive(Debug)]
struct LayerNormNode;

impl Backward<Flex, 3> for LayerNormNode {
    type State = (FlexTensor, FlexTensor, RowStats);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let [dx, d_gamma, d_beta] = flex::backward(&x, &gamma, &stats, dy);
        for (node, grad) in [(x_node, dx), (gamma_node, d_gamma), (beta_node, d_beta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn values_and_gradients_equal_burns_layer_norm() {
        let device = Device::flex().autodiff();
        // Rows with an offset and spread far from 0 and 1; more rows than one task's chunk.
        let x = Tensor::<3>::random([3, 50, 24], Distribution::Normal(3.0, 5.0), &device);
        let gamma = Tensor::<1>::random([24], Distribution::Normal(1.0, 0.5), &device);
        let beta = Tensor::<1>::random([24], Distribution::Normal(0.0, 0.5), &device);
        let leaf = |t: &Tensor<3>| t.clone().require_grad();
        let leaf1 = |t: &Tensor<1>| t.clone().require_grad();
        let (x_f, g_f, b_f) = (leaf(&x), leaf1(&gamma), leaf1(&beta));
        let (x_r, g_r, b_r) = (leaf(&x), leaf1(&gamma), leaf1(&beta));
        assert!(fused(&x_f, &g_f, &b_f, 1e-5).is_some());
        let upstream = Tensor::<3>::random([3, 50, 24], Distribution::Normal(0.0, 1.0), &device);

        let y = layer_norm(x_f.clone(), g_f.clone(), b_f.clone(), 1e-5);
        let reference =
            burn::tensor::module::layer_norm(x_r.clone(), g_r.clone(), Some(b_r.clone()), 1e-5);
        y.clone()
            .into_data()
            .assert_approx_eq::<f32>(&reference.clone().into_data(), Tolerance::absolute(1e-5));
        let grads = (y * upstream.clone()).sum().backward();
        let reference_grads = (reference * upstream).sum().backward();
        let tolerance = Tolerance::rel_abs(1e-4, 1e-5);
        x_f.grad(&grads)
            .unwrap()
            .into_data()
            .assert_approx_eq::<f32>(&x_r.grad(&reference_grads).unwrap().into_data(), tolerance);
        for (fused, reference) in [(g_f, g_r), (b_f, b_r)] {
            fused
                .grad(&grads)
                .unwrap()
                .into_data()
                .assert_approx_eq::<f32>(
                    &reference.grad(&reference_grads).unwrap().into_data(),
                    tolerance,
                );
        }
    }
}
