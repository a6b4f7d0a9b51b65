//! f32 buffers of flex tensors, shared by the fused kernels.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

pub(crate) fn is_f32(tensor: &FlexTensor) -> bool {
    tensor.dtype() == DType::F32
}

/// `tensor` itself when its buffer is exactly its elements in order, else a compact copy.
pub(crate) fn compact(tensor: FlexTensor) -> FlexTensor {
    let layout = tensor.layout();
    let exact = tensor.is_contiguous()
        && layout.start_offset() == 0
        && tensor.storage::<f32>().len() == layout.shape().num_elements();
    if exact {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

pub(crate) fn last_dim(tensor: &FlexTensor) -> usize {
    let dims = tensor.layout().shape().to_vec();
    dims[dims.len() - 1]
}

/// An f32 tensor of `shape` owning `values` (no copy).
pub(crate) fn f32_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
