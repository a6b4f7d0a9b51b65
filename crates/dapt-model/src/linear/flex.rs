//! The fused linear's f32 kernels on flex: gemm on strided views, outputs in buffers
//! allocated once.

use burn::backend::flex::FlexTensor;

use crate::flexbuf::{compact, f32_tensor, last_dim};
use crate::gemm::{View, gemm_into, parallelism_for};
use crate::vmath::vectorized;

/// `x W + b` (or `x W`), `[rows, d_out]`.
pub(super) fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    let (x, weight) = (View::of(x), View::of(weight));
    let Some(bias) = bias else {
        return product(&x, &weight);
    };
    let bias = compact(bias.clone());
    let mut out = Vec::with_capacity(x.rows * weight.cols);
    for _ in 0..x.rows {
        out.extend_from_slice(bias.storage::<f32>());
    }
    // SAFETY: `out` holds `x.rows x weight.cols` initialised elements, row-major.
    unsafe {
        let parallelism = parallelism_for(&x, &weight);
        gemm_into(
            out.as_mut_ptr(),
            weight.cols,
            true,
            1.0,
            &x,
            &weight,
            parallelism,
        );
    }
    f32_tensor(out, [x.rows, weight.cols])
}

/// `dy Wᵀ`, `[rows, d_in]`.
pub(super) fn input_grad(dy: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    product(&View::of(dy), &View::of(weight).transposed())
}

/// `xᵀ dy`, `[d_in, d_out]`, laid out as `weight` is: for a transposed view (the tied
/// head's `Eᵀ`) it is computed as `(dyᵀ x)ᵀ`, so that once transposed back it adds to the
/// embedding's own gradient as a contiguous tensor instead of a strided one.
pub(super) fn weight_grad(x: &FlexTensor, dy: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let (x, dy) = (View::of(x), View::of(dy));
    let weight = View::of(weight);
    if weight.row_stride == 1 && weight.col_stride != 1 {
        product(&dy.transposed(), &x).transpose(0, 1)
    } else {
        product(&x.transposed(), &dy)
    }
}

/// Column sums of `dy`, `[d_out]`.
pub(super) fn bias_grad(dy: &FlexTensor) -> FlexTensor {
    let dy = compact(dy.clone());
    let cols = last_dim(&dy);
    let mut sums = vec![0f32; cols];
    vectorized(
        #[inline(always)]
        || {
            for row in dy.storage::<f32>().chunks_exact(cols) {
                sums.iter_mut().zip(row).for_each(|(sum, v)| *sum += v);
            }
        },
    );
    f32_tensor(sums, [cols])
}

/// `lhs · rhs` in a fresh row-major buffer.
fn product(lhs: &View, rhs: &View) -> FlexTensor {
    let len = lhs.rows * rhs.cols;
    let mut out = Vec::with_capacity(len);
    if lhs.cols == 0 {
        out.resize(len, 0.0);
    } else {
        // SAFETY: without `accumulate`, gemm writes every element of the `lhs.rows x
        // rhs.cols` destination (the inner dimension is not empty) and reads none.
        unsafe {
            gemm_into(
                out.as_mut_ptr(),
                rhs.cols,
                false,
                1.0,
                lhs,
                rhs,
                parallelism_for(lhs, rhs),
            );
            out.set_len(len);
        }
    }
    f32_tensor(out, [lhs.rows, rhs.cols])
}
