//! The normalisation layer of both families: LayerNorm (GPT: gain and bias) or RMSNorm
//! (Llama: gain only, `x / sqrt(mean(x²) + ε) · γ`, as transformers' `LlamaRMSNorm`).

mod flex;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::prelude::*;

use crate::flexbuf::is_f32;
use crate::layer_norm::layer_norm;

#[derive(Module, Debug)]
pub struct Norm {
    pub gamma: Param<Tensor<1>>,
    /// Present for LayerNorm; RMSNorm has none.
    pub beta: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub epsilon: f64,
}

impl Norm {
    pub fn is_rms(&self) -> bool {
        self.beta.is_none()
    }

    /// Normalises over the last dimension (LayerNorm fused where the backend allows).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.beta {
            Some(beta) => layer_norm(x, self.gamma.val(), beta.val(), self.epsilon),
            None => rms_norm(x, self.gamma.val(), self.epsilon),
        }
    }
}

/// `x / sqrt(mean(x²) + epsilon) · gamma` over the last dimension: one autodiff node on
/// flex (one pass per row each way, instead of burn's seven nodes), burn's operations
/// elsewhere.
pub fn rms_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, epsilon: f64) -> Tensor<D> {
    fused(&x, &gamma, epsilon).unwrap_or_else(|| composed(x, gamma, epsilon))
}

fn composed<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, epsilon: f64) -> Tensor<D> {
    let mean_square = x.clone().powf_scalar(2.0).mean_dim(D - 1);
    let normalised = x * (mean_square + epsilon).sqrt().recip();
    normalised * gamma.unsqueeze::<D>()
}

fn fused<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, epsilon: f64) -> Option<Tensor<D>> {
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        let gamma = gamma.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        if ![&x, &gamma].iter().all(|t| is_f32(t.primitive())) {
            return None;
        }
        let (y, inv_rms) = flex::forward(x.primitive(), gamma.primitive(), epsilon);
        let y = match RmsNormNode
            .prepare::<NoCheckpointing>([x.node(), gamma.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((x.into_primitive(), gamma.into_primitive(), inv_rms), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let gamma = gamma.clone().try_into_primitive::<Flex>().ok()?;
    if ![&x, &gamma].iter().all(|t| is_f32(t)) {
        return None;
    }
    Some(Tensor::from_primitive::<Flex>(
        flex::forward(&x, &gamma, epsilon).0,
    ))
}

/// The state: the input, gamma, and each row's inverse RMS.
#[derive(Debug)]
struct RmsNormNode;

impl Backward<Flex, 2> for RmsNormNode {
    type State = (FlexTensor, FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, inv_rms) = ops.state;
        let [dx, d_gamma] = flex::backward(&x, &gamma, &inv_rms, dy);
        for (node, grad) in [(x_node, dx), (gamma_node, d_gamma)] {
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
    fn fused_values_and_gradients_equal_burns_composition() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([3, 50, 24], Distribution::Normal(1.0, 3.0), &device);
        let gamma = Tensor::<1>::random([24], Distribution::Normal(1.0, 0.5), &device);
        let (x_f, g_f) = (x.clone().require_grad(), gamma.clone().require_grad());
        let (x_r, g_r) = (x.require_grad(), gamma.require_grad());
        assert!(fused(&x_f, &g_f, 1e-5).is_some());
        let upstream = Tensor::<3>::random([3, 50, 24], Distribution::Normal(0.0, 1.0), &device);
        let y = rms_norm(x_f.clone(), g_f.clone(), 1e-5);
        let reference = composed(x_r.clone(), g_r.clone(), 1e-5);
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
        g_f.grad(&grads)
            .unwrap()
            .into_data()
            .assert_approx_eq::<f32>(&g_r.grad(&reference_grads).unwrap().into_data(), tolerance);
    }

    #[test]
    fn rms_norm_matches_the_formula() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, -4.0], [1, 4]),
            &device,
        );
        let gamma =
            Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 0.5, 2.0, 1.0], [4]), &device);
        let got = rms_norm(x, gamma, 1e-6)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let rms = ((1.0 + 4.0 + 9.0 + 16.0) / 4.0f32 + 1e-6).sqrt();
        let expected = [1.0 / rms, 1.0 / rms, 6.0 / rms, -4.0 / rms];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }
}
