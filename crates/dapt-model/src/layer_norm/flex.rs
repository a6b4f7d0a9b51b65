//! The fused layer norm's f32 kernels on flex: rows in fixed chunks across rayon tasks.

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use crate::flexbuf::{compact, f32_tensor, last_dim};
use crate::vmath::vectorized;

/// Rows per rayon task; also the granularity of the partial sums of `dγ` and `dβ`.
const ROWS_PER_TASK: usize = 32;

/// Each row's mean and `1 / sqrt(var + epsilon)`, from the forward pass.
#[derive(Debug, Clone)]
pub(super) struct RowStats {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// The normalised `x` (its shape) and the row statistics.
pub(super) fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, RowStats) {
    let x = compact(x.clone());
    let (gamma, beta) = (compact(gamma.clone()), compact(beta.clone()));
    let (gamma, beta): (&[f32], &[f32]) = (gamma.storage(), beta.storage());
    let width = last_dim(&x);
    let input: &[f32] = x.storage();
    let rows = input.len() / width;
    let mut out = vec![0f32; input.len()];
    let mut stats = RowStats {
        mean: vec![0f32; rows],
        inv_std: vec![0f32; rows],
    };
    out.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(input.par_chunks(width * ROWS_PER_TASK))
        .zip(stats.mean.par_chunks_mut(ROWS_PER_TASK))
        .zip(stats.inv_std.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|(((out, input), mean), inv_std)| {
            vectorized(
                #[inline(always)]
                || {
                    let rows = out.chunks_exact_mut(width).zip(input.chunks_exact(width));
                    for ((y, x), (mean, inv_std)) in rows.zip(mean.iter_mut().zip(inv_std)) {
                        *mean = x.iter().sum::<f32>() / width as f32;
                        let var =
                            x.iter().map(|v| (v - *mean) * (v - *mean)).sum::<f32>() / width as f32;
                        *inv_std = 1.0 / (var + epsilon as f32).sqrt();
                        for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                            *y = (x - *mean) * *inv_std * g + b;
                        }
                    }
                },
            )
        });
    let y = f32_tensor(out, x.layout().shape().clone());
    (y, stats)
}

/// `[dx, dγ, dβ]` from the output gradient.
pub(super) fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    stats: &RowStats,
    dy: FlexTensor,
) -> [FlexTensor; 3] {
    let x = compact(x.clone());
    let gamma = compact(gamma.clone());
    let gamma: &[f32] = gamma.storage();
    let width = gamma.len();
    let mut dx = compact(dy);
    // Each task turns its rows of dy into dx in place, returning its partial (dγ, dβ).
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .storage_mut::<f32>()
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(x.storage::<f32>().par_chunks(width * ROWS_PER_TASK))
        .zip(stats.mean.par_chunks(ROWS_PER_TASK))
        .zip(stats.inv_std.par_chunks(ROWS_PER_TASK))
        .map(|(((grad, input), mean), inv_std)| {
            vectorized(
                #[inline(always)]
                || {
                    let (mut d_gamma, mut d_beta) = (vec![0f32; width], vec![0f32; width]);
                    let rows = grad.chunks_exact_mut(width).zip(input.chunks_exact(width));
                    for ((g, x), (&mean, &inv_std)) in rows.zip(mean.iter().zip(inv_std)) {
                        let (mut sum_dxhat, mut sum_dxhat_xhat) = (0f32, 0f32);
                        for i in 0..width {
                            let x_hat = (x[i] - mean) * inv_std;
                            d_gamma[i] += g[i] * x_hat;
                            d_beta[i] += g[i];
                            let d_xhat = g[i] * gamma[i];
                            sum_dxhat += d_xhat;
                            sum_dxhat_xhat += d_xhat * x_hat;
                        }
                        let (mean_dxhat, mean_dxhat_xhat) =
                            (sum_dxhat / width as f32, sum_dxhat_xhat / width as f32);
                        for i in 0..width {
                            let x_hat = (x[i] - mean) * inv_std;
                            let d_xhat = g[i] * gamma[i];
                            g[i] = inv_std * (d_xhat - mean_dxhat - x_hat * mean_dxhat_xhat);
                        }
                    }
                    (d_gamma, d_beta)
                },
            )
        })
        .collect();
    let (mut d_gamma, mut d_beta) = (vec![0f32; width], vec![0f32; width]);
    for (partial_gamma, partial_beta) in &partials {
        d_gamma
            .iter_mut()
            .zip(partial_gamma)
            .for_each(|(s, v)| *s += v);
        d_beta
            .iter_mut()
            .zip(partial_beta)
            .for_each(|(s, v)| *s += v);
    }
    let vector = |values: Vec<f32>| f32_tensor(values, [width]);
    [dx, vector(d_gamma), vector(d_beta)]
}
