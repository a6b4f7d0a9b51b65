//! AdamW on flex in one pass: each element of value, gradient and both moments is read
//! once and written once, instead of a dozen element-wise tensor operations (each a pass
//! over the parameter, most with a fresh buffer). The gradient norm likewise reads each
//! gradient once.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use rayon::prelude::*;

use super::{Operands, Update};
use crate::flexbuf::{compact, f32_tensor, is_f32};
use crate::vmath::vectorized;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

/// The updated `[value, first, second]`, or the operands back when they are not all f32
/// flex tensors.
pub(super) fn apply(update: &Update, operands: Operands) -> Result<[Tensor<1>; 3], Box<Operands>> {
    let Some((value, grad, first, second)) = primitives(&operands) else {
        return Err(Box::new(operands));
    };
    // The originals go, so each buffer below is held once and updated in place.
    drop(operands);
    let (mut value, grad) = (compact(value), compact(grad));
    let len = grad.layout().shape().num_elements();
    let moment = |m: Option<FlexTensor>| match m {
        Some(m) => compact(m),
        None => f32_tensor(vec![0f32; len], [len]),
    };
    let (mut first, mut second) = (moment(first), moment(second));

    let (beta1, beta2) = (update.beta1 as f32, update.beta2 as f32);
    let (inv_bias1, inv_bias2) = ((1.0 / update.bias1) as f32, (1.0 / update.bias2) as f32);
    let (eps, lr, decay) = (update.eps as f32, update.lr as f32, update.decay as f32);
    let grad_scale = update.grad_scale as f32;
    value
        .storage_mut::<f32>()
        .par_chunks_mut(CHUNK)
        .zip(grad.storage::<f32>().par_chunks(CHUNK))
        .zip(first.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(second.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .for_each(|(((value, grad), first), second)| {
            vectorized(
                #[inline(always)]
                || {
                    let elements = value.iter_mut().zip(grad).zip(first).zip(second);
                    for (((p, &g), m), v) in elements {
                        let g = g * grad_scale;
                        *m = *m * beta1 + g * (1.0 - beta1);
                        *v = *v * beta2 + g * g * (1.0 - beta2);
                        let denominator = (*v * inv_bias2).sqrt() + eps;
                        *p = *p * decay - (*m * inv_bias1) / denominator * lr;
                    }
                },
            )
        });
    Ok([value, first, second].map(Tensor::from_primitive::<Flex>))
}

/// `Σ g²` of an f32 flex gradient in f64, chunk sums added in order (deterministic);
/// `None` for another backend or dtype.
pub(super) fn sum_of_squares(grad: &Tensor<1>) -> Option<f64> {
    let grad = grad.clone().try_into_primitive::<Flex>().ok()?;
    if !is_f32(&grad) {
        return None;
    }
    let grad = compact(grad);
    let chunk_sums: Vec<f64> = grad
        .storage::<f32>()
        .par_chunks(CHUNK)
        .map(|chunk| {
            vectorized(
                #[inline(always)]
                || {
                    let mut lanes = [0f64; 8];
                    let pieces = chunk.chunks_exact(lanes.len());
                    let tail: f64 = pieces
                        .remainder()
                        .iter()
                        .map(|&g| f64::from(g).powi(2))
                        .sum();
                    for piece in pieces {
                        for (lane, &g) in lanes.iter_mut().zip(piece) {
                            *lane += f64::from(g) * f64::from(g);
                        }
                    }
                    lanes.iter().sum::<f64>() + tail
                },
            )
        })
        .collect();
    Some(chunk_sums.iter().sum())
}

type Primitives = (
    FlexTensor,
    FlexTensor,
    Option<FlexTensor>,
    Option<FlexTensor>,
);

/// Flex primitives of all present operands, if every one is an f32 flex tensor.
fn primitives((value, grad, first, second): &Operands) -> Option<Primitives> {
    let flex = |t: &Tensor<1>| {
        let primitive = t.clone().try_into_primitive::<Flex>().ok()?;
        is_f32(&primitive).then_some(primitive)
    };
    let optional = |t: &Option<Tensor<1>>| match t {
        Some(t) => flex(t).map(Some),
        None => Some(None),
    };
    Some((
        flex(value)?,
        flex(grad)?,
        optional(first)?,
        optional(second)?,
    ))
}
