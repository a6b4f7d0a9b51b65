//! The crate's error type. Every variant names the file it is about, and where it applies the
//! tensor or metadata key, so a message read on its own says what to look at.

use std::path::PathBuf;

/// `Result` with [`GgufError`].
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// Everything that can go wrong reading a GGUF file or converting it.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {action}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        /// What was being done, e.g. "opening" or "writing config.json".
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: bad magic: not a GGUF file (the first bytes are {found}, expected \"GGUF\")", path = path.display())]
    BadMagic {
        path: PathBuf,
        /// The first (up to four) bytes, as hex and escaped text.
        found: String,
    },

    #[error("{path}: unsupported GGUF version {version} (this reader supports 2 and 3){hint}", path = path.display())]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        /// Extra explanation, e.g. that the file looks big-endian.
        hint: String,
    },

    #[error("{path}: truncated {what}: needs bytes {start}..{end} but the file has {file_len} bytes", path = path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("{path}: malformed GGUF: {what}", path = path.display())]
    Malformed { path: PathBuf, what: String },

    #[error("{path}: no tensor named `{tensor}`", path = path.display())]
    MissingTensor { path: PathBuf, tensor: String },

    #[error(
        "{path}: tensor `{tensor}` is truncated: its data lies at bytes {start}..{end} \
         but the file has {file_len} bytes",
        path = path.display()
    )]
    TensorDataTruncated {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("{path}: tensor `{tensor}` has ggml type {ggml_type}, which cannot be dequantised (supported: {supported})", path = path.display())]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        ggml_type: String,
        supported: String,
    },

    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}", path = path.display())]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("{path}: metadata key `{key}` is missing", path = path.display())]
    MissingKey { path: PathBuf, key: String },

    #[error("{path}: metadata key `{key}` is {found}, expected {expected}", path = path.display())]
    WrongKeyType {
        path: PathBuf,
        key: String,
        expected: String,
        found: String,
    },

    #[error("{path}: unsupported architecture `{architecture}` (general.architecture); only `llama` converts", path = path.display())]
    UnsupportedArchitecture { path: PathBuf, architecture: String },

    #[error("{path}: unsupported: {what}", path = path.display())]
    Unsupported { path: PathBuf, what: String },

    #[error("{path}: writing safetensors: {source}", path = path.display())]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
}
