//! The fused linear's f32 kernels on flex: gemm on strided views, outputs in buffers
//! allocated once.

use burn::backend::flex::FlexTensor;
use burn::prelude::*;

use crate::flexbuf::{compact, last_dim};

/// Products with at least this many multiply-adds run on all rayon threads (flex's own
/// threshold for its matmuls).
const PARALLEL_WORK: usize = 192 * 192 * 192;

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
    unsafe { gemm_into(out.as_mut_ptr(), true, &x, &weight) };
    matrix(out, x.rows, weight.cols)
}

/// `dy Wᵀ`, `[rows, d_in]`.
pub(super) fn input_grad(dy: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    product(&View::of(dy), &View::of(weight).transposed())
}

/// `xᵀ dy`, `[d_in, d_out]`.
pub(super) fn weight_grad(x: &FlexTensor, dy: &FlexTensor) -> FlexTensor {
    product(&View::of(x).transposed(), &View::of(dy))
}

/// Column sums of `dy`, `[d_out]`.
pub(super) fn bias_grad(dy: &FlexTensor) -> FlexTensor {
    let dy = compact(dy.clone());
    let cols = last_dim(&dy);
    let mut sums = vec![0f32; cols];
    for row in dy.storage::<f32>().chunks_exact(cols) {
        sums.iter_mut().zip(row).for_each(|(sum, v)| *sum += v);
    }
    FlexTensor::from_data(TensorData::new(sums, [cols]))
}

/// A 2-D f32 tensor as gemm sees it: first element, shape and element strides.
struct View {
    data: *const f32,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl View {
    /// Borrows `tensor`'s buffer: the view must not outlive it.
    fn of(tensor: &FlexTensor) -> Self {
        let layout = tensor.layout();
        let (dims, strides) = (layout.shape().to_vec(), layout.strides());
        assert_eq!(dims.len(), 2, "fused linear expects matrices, got {dims:?}");
        let storage: &[f32] = tensor.storage();
        Self {
            data: storage[layout.start_offset()..].as_ptr(),
            rows: dims[0],
            cols: dims[1],
            row_stride: strides[0],
            col_stride: strides[1],
        }
    }

    fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
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
            gemm_into(out.as_mut_ptr(), false, lhs, rhs);
            out.set_len(len);
        }
    }
    matrix(out, lhs.rows, rhs.cols)
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `dst` row-major.
///
/// # Safety
/// `dst` must be valid for `lhs.rows x rhs.cols` writes (and reads when `accumulate`), and
/// both views' buffers must be alive.
unsafe fn gemm_into(dst: *mut f32, accumulate: bool, lhs: &View, rhs: &View) {
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions differ");
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let parallelism = if m * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: forwarded from the caller; the strides describe the views' own buffers.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.data,
            lhs.col_stride,
            lhs.row_stride,
            rhs.data,
            rhs.col_stride,
            rhs.row_stride,
            if accumulate { 1.0f32 } else { 0.0 },
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn matrix(values: Vec<f32>, rows: usize, cols: usize) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, [rows, cols]))
}
