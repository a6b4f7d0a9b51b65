//! f32 matrix products for the fused kernels: strided views of flex buffers handed to the
//! gemm crate flex itself uses.

use burn::backend::flex::FlexTensor;
pub(crate) use gemm::Parallelism;

/// Products with at least this many multiply-adds run on all rayon threads (flex's own
/// threshold for its matmuls).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// A 2-D f32 matrix as gemm sees it: first element, shape and element strides. It borrows
/// a buffer without a lifetime: it must not outlive the tensor or slice it was made from.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub data: *const f32,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl View {
    /// A 2-D tensor's elements as they lie in its buffer.
    pub(crate) fn of(tensor: &FlexTensor) -> Self {
        let layout = tensor.layout();
        let (dims, strides) = (layout.shape().to_vec(), layout.strides());
        assert_eq!(dims.len(), 2, "expected a matrix, got shape {dims:?}");
        let storage: &[f32] = tensor.storage();
        Self {
            data: storage[layout.start_offset()..].as_ptr(),
            rows: dims[0],
            cols: dims[1],
            row_stride: strides[0],
            col_stride: strides[1],
        }
    }

    /// `rows x cols` elements from `data`, rows `row_stride` apart, columns adjacent.
    pub(crate) fn rows(data: *const f32, rows: usize, cols: usize, row_stride: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: row_stride as isize,
            col_stride: 1,
        }
    }

    pub(crate) fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// All threads for a large product, one for a small one.
pub(crate) fn parallelism_for(lhs: &View, rhs: &View) -> Parallelism {
    if lhs.rows * lhs.cols * rhs.cols >= PARALLEL_WORK {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` when `accumulate`; `dst` has
/// `lhs.rows x rhs.cols` elements, rows `dst_row_stride` apart, columns adjacent.
///
/// # Safety
/// `dst` must be valid for those writes (and reads when `accumulate`), not overlap the
/// operands, and the views' buffers must be alive.
pub(crate) unsafe fn gemm_into(
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    scale: f32,
    lhs: &View,
    rhs: &View,
    parallelism: Parallelism,
) {
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions differ");
    // SAFETY: forwarded from the caller; the strides describe the views' own buffers.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst,
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.data,
            lhs.col_stride,
            lhs.row_stride,
            rhs.data,
            rhs.col_stride,
            rhs.row_stride,
            if accumulate { 1.0f32 } else { 0.0 },
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
