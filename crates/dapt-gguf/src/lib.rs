//! Read llama.cpp GGUF files and turn Llama-architecture ones into Hugging Face model folders.
//!
//! GGUF (llama.cpp `docs/gguf.md`) is a single file holding a model's hyper-parameters and
//! tokenizer as typed key-value metadata, then its tensors, each in a ggml type that is either a
//! float (`F32`, `F16`, `BF16`) or a block quantisation (`Q8_0`, `Q4_K`, ...). This crate:
//!
//! * parses the header ([`Gguf`], [`reader`]): versions 2 and 3, every metadata type, tensor
//!   infos, alignment; every length is bounds-checked, so arbitrary bytes give an error naming
//!   the file, never a panic;
//! * dequantises tensors to `f32` ([`dequant`]) bit for bit as gguf-py's `gguf.quants.dequantize`;
//! * maps a Llama GGUF to `LlamaForCausalLM`: config, tensor names and shapes, and the undoing of
//!   llama.cpp's q/k row permutation ([`llama`]);
//! * rebuilds a byte-level BPE `tokenizer.json` from the tokenizer metadata ([`tokenizer`]);
//! * writes the Hugging Face folder ([`write_hf_folder`]).
//!
//! ```no_run
//! let gguf = dapt_gguf::Gguf::open("model.Q4_K_M.gguf")?;
//! let (shape, values) = gguf.tensor_f32("token_embd.weight")?;
//! let summary = dapt_gguf::write_hf_folder("model.Q4_K_M.gguf", "hf-model")?;
//! # Ok::<(), dapt_gguf::GgufError>(())
//! ```

pub mod dequant;
pub mod error;
pub mod export;
pub mod ggml_type;
pub mod llama;
pub mod reader;
pub mod tokenizer;
pub mod value;

pub use error::{GgufError, Result};
pub use export::{ConversionSummary, write_hf_folder, write_hf_folder_from};
pub use ggml_type::GgmlType;
pub use llama::LlamaConfig;
pub use reader::{Gguf, TensorInfo};
pub use value::{Array, Value, ValueType};
