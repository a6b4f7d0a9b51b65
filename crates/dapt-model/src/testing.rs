//! Test helpers shared by the fused operations' tests.

use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};

/// Asserts that `fused` and `reference` give the same output for `input`, and the same
/// gradient of `input` under a random (so non-uniform) upstream gradient.
pub(crate) fn assert_same_values_and_gradients(
    input: Tensor<3>,
    fused: impl Fn(Tensor<3>) -> Tensor<3>,
    reference: impl Fn(Tensor<3>) -> Tensor<3>,
    tolerance: Tolerance<f32>,
) {
    let (fused_input, reference_input) = (input.clone().require_grad(), input.require_grad());
    let output = fused(fused_input.clone());
    let expected = reference(reference_input.clone());
    let upstream = Tensor::<3>::random(
        output.dims(),
        Distribution::Normal(0.0, 1.0),
        &output.device(),
    );
    output
        .clone()
        .into_data()
        .assert_approx_eq::<f32>(&expected.clone().into_data(), tolerance);
    let grad = fused_input.grad(&(output * upstream.clone()).sum().backward());
    let expected_grad = reference_input.grad(&(expected * upstream).sum().backward());
    grad.expect("a gradient through the fused operation")
        .into_data()
        .assert_approx_eq::<f32>(
            &expected_grad.expect("a reference gradient").into_data(),
            tolerance,
        );
}
