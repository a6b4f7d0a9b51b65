//! The fused RMSNorm's f32 kernels on flex: rows in fixed chunks across rayon tasks.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor, last_dim};
use crate::vmath::vectorized;

/// Rows per rayon task; also the granularity of the partial sums of `dγ`.
const ROWS_PER_TASK: usize = 32;

/// The normalised `x` (its shape) and each row's `1 / sqrt(mean(x²) + ε)`.
pub(super) fn forward(x: &FlexTensor, gamma: &FlexTensor, epsilon: f64) -> (FlexTensor, Vec<f32>) {
    let x = compact(x.clone());
    let gamma = compact(gamma.clone());
    let gamma: &[f32] = gamma.storage();
    let width = last_dim(&x);
    let input: &[f32] = x.storage();
    let rows = input.len() / width;
    let mut out = vec![0f32; input.len()];
    let mut inv_rms = vec![0f32; rows];
    out.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(input.par_chunks(width * ROWS_PER_TASK))
        .zip(inv_rms.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|((out, input), inv_rms)| {
            vectorized(
                #[inline(always)]
                || {
                    let rows = out.chunks_exact_mut(width).zip(input.chunks_exact(width));
                    for ((y, x), inv_rms) in rows.zip(inv_rms.iter_mut()) {
                        let mean_square = x.iter().map(|v| v * v).sum::<f32>() / width as f32;
                        *inv_rms = 1.0 / (mean_square + epsilon as f32).sqrt();
                        for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma) {
                            *y = x * *inv_rms * g;
                        }
                    }
                },
            )
        });
    (f32_tensor(out, x.layout().shape().clone()), inv_rms)
}

/// `[dx, dγ]` from the output gradient: with `r = 1/rms` and `x̂ = x r`,
/// `dx = r (dy γ − x̂ · mean(dy γ x̂))`, `dγ = Σ_rows dy x̂`.
pub(super) fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    inv_rms: &[f32],
    dy: FlexTensor,
) -> [FlexTensor; 2] {
    let x = compact(x.clone());
    let gamma = compact(gamma.clone());
    let gamma: &[f32] = gamma.storage();
    let width = gamma.len();
    let mut dx = compact(dy);
    let partials: Vec<Vec<f32>> = dx
        .storage_mut::<f32>()
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(x.storage::<f32>().par_chunks(width * ROWS_PER_TASK))
        .zip(inv_rms.par_chunks(ROWS_PER_TASK))
        .map(|((grad, input), inv_rms)| {
            vectorized(
                #[inline(always)]
                || {
                    let mut d_gamma = vec![0f32; width];
                    let rows = grad.chunks_exact_mut(width).zip(input.chunks_exact(width));
                    for ((g, x), &r) in rows.zip(inv_rms) {
                        let mut dot = 0f32;
                        for i in 0..width {
                            let x_hat = x[i] * r;
                            d_gamma[i] += g[i] * x_hat;
                            dot += g[i] * gamma[i] * x_hat;
                        }
                        let mean_dot = dot / width as f32;
                        for i in 0..width {
                            g[i] = r * (g[i] * gamma[i] - x[i] * r * mean_dot);
                        }
                    }
                    d_gamma
                },
            )
        })
        .collect();
    let mut d_gamma = vec![0f32; width];
    for partial in &partials {
        d_gamma.iter_mut().zip(partial).for_each(|(s, v)| *s += v);
    }
    [dx, f32_tensor(d_gamma, [width])]
}
