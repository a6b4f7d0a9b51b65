//! Writing a Llama GGUF out as a Hugging Face model folder.
//!
//! Everything is checked (config keys, every tensor's presence, shape, type and bounds, the
//! tokenizer) before the first file is written. Tensors are then dequantised one at a time while
//! `model.safetensors` is written, so memory holds the mapped GGUF and one `f32` tensor, not the
//! whole `f32` model. Each file goes to `<name>.tmp` first and is renamed into place.

use dapt_dag::fsutil::{atomic_write, sync_dir, tmp_path};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, View};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::dequant::Kernel;
use crate::error::{GgufError, Result};
use crate::llama::{self, LlamaConfig, TensorMapping};
use crate::reader::Gguf;
use crate::tokenizer;

/// What [`write_hf_folder`] converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionSummary {
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, if the file has one.
    pub name: Option<String>,
    /// Parameters written (elements of all exported tensors).
    pub n_params: u64,
    /// Tensors written to `model.safetensors`.
    pub n_tensors: usize,
    /// How many of the GGUF's tensors have each ggml type.
    pub tensor_types: BTreeMap<String, usize>,
    pub tie_word_embeddings: bool,
    /// The files written, in the order written.
    pub files: Vec<PathBuf>,
}

/// A tensor that dequantises (and un-permutes) itself when `safetensors` asks for its bytes.
struct LazyTensor<'a> {
    kernel: Kernel,
    raw: &'a [u8],
    shape: Vec<usize>,
    unpermute_heads: Option<usize>,
}

impl LazyTensor<'_> {
    fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    fn values(&self) -> Vec<f32> {
        let mut values = vec![0.0; self.n_elements()];
        (self.kernel)(self.raw, &mut values);
        match (self.unpermute_heads, self.shape.as_slice()) {
            (Some(heads), &[rows, cols]) => llama::unpermute_qk(&values, rows, cols, heads),
            _ => values,
        }
    }
}

impl View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let values = self.values();
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Cow::Owned(bytes)
    }

    fn data_len(&self) -> usize {
        self.n_elements() * 4
    }
}

fn io_error(path: &Path, action: impl Into<String>) -> impl FnOnce(std::io::Error) -> GgufError {
    let (path, action) = (path.to_path_buf(), action.into());
    move |source| GgufError::Io {
        path,
        action,
        source,
    }
}

/// Write `bytes` to `path` atomically (the workspace's one writer: temporary sibling,
/// fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, bytes).map_err(io_error(path, "writing"))
}

fn write_json(path: &Path, value: &Json) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).expect("serde_json::Value always serialises");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// The `generation_config.json` of a model with these special ids.
pub fn generation_config_json(config: &LlamaConfig) -> Json {
    let mut generation = json!({});
    for (name, id) in [
        ("bos_token_id", config.bos_token_id),
        ("eos_token_id", config.eos_token_id),
        ("pad_token_id", config.pad_token_id),
    ] {
        if let Some(id) = id {
            generation[name] = json!(id);
        }
    }
    generation
}

/// Convert the Llama GGUF at `gguf_path` into a Hugging Face model folder `out_dir` (created if
/// needed): `config.json`, `model.safetensors` (every tensor `F32`, under Hugging Face names,
/// sorted by name, no metadata), `tokenizer.json`, `tokenizer_config.json` and
/// `generation_config.json`.
pub fn write_hf_folder(
    gguf_path: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
) -> Result<ConversionSummary> {
    let gguf = Gguf::open(gguf_path)?;
    write_hf_folder_from(&gguf, out_dir)
}

/// [`write_hf_folder`] for an already open GGUF.
pub fn write_hf_folder_from(gguf: &Gguf, out_dir: impl AsRef<Path>) -> Result<ConversionSummary> {
    let out_dir = out_dir.as_ref();
    let config = LlamaConfig::from_gguf(gguf)?;
    let mappings = llama::checked_tensor_mappings(gguf, &config)?;
    let tokenizer_json = tokenizer::tokenizer_json(gguf)?;
    let tokenizer_config =
        tokenizer::tokenizer_config_json(gguf, Some(config.max_position_embeddings))?;

    let mut tensors = Vec::with_capacity(mappings.len());
    for TensorMapping {
        gguf_name,
        hf_name,
        shape,
        unpermute_heads,
    } in mappings
    {
        let (kernel, raw) = gguf.tensor_source(gguf.require_tensor(&gguf_name)?)?;
        let tensor = LazyTensor {
            kernel,
            raw,
            shape,
            unpermute_heads,
        };
        tensors.push((hf_name, tensor));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let n_params = tensors.iter().map(|(_, t)| t.n_elements() as u64).sum();
    let n_tensors = tensors.len();

    std::fs::create_dir_all(out_dir).map_err(io_error(out_dir, "creating the output folder"))?;
    let mut files = Vec::new();
    let config_path = out_dir.join("config.json");
    write_json(&config_path, &config.to_hf_json())?;
    files.push(config_path.clone());

    let weights = out_dir.join("model.safetensors");
    let tmp = tmp_path(&weights);
    safetensors::serialize_to_file(tensors, None, &tmp).map_err(|source| {
        GgufError::Safetensors {
            path: tmp.clone(),
            source,
        }
    })?;
    // safetensors writes through a private (0600) temporary file; give the weights the same
    // permissions as the config just written, which follow the umask.
    let permissions = std::fs::metadata(&config_path)
        .map_err(io_error(&config_path, "reading the permissions of"))?
        .permissions();
    std::fs::set_permissions(&tmp, permissions)
        .map_err(io_error(&tmp, "setting the permissions of"))?;
    std::fs::rename(&tmp, &weights)
        .map_err(io_error(&weights, format!("renaming {} to", tmp.display())))?;
    sync_dir(out_dir).map_err(io_error(out_dir, "syncing"))?;
    files.push(weights);

    for (name, value) in [
        ("tokenizer.json", &tokenizer_json),
        ("tokenizer_config.json", &tokenizer_config),
        ("generation_config.json", &generation_config_json(&config)),
    ] {
        let path = out_dir.join(name);
        write_json(&path, value)?;
        files.push(path);
    }

    let mut tensor_types = BTreeMap::new();
    for info in gguf.tensors() {
        *tensor_types.entry(info.ggml_type.to_string()).or_insert(0) += 1;
    }
    Ok(ConversionSummary {
        architecture: gguf.architecture()?.to_string(),
        name: gguf.get_str("general.name")?.map(str::to_string),
        n_params,
        n_tensors,
        tensor_types,
        tie_word_embeddings: config.tie_word_embeddings,
        files,
    })
}
