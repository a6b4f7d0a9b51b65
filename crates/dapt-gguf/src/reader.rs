//! Reading GGUF files (versions 2 and 3, little-endian).
//!
//! The layout (llama.cpp `ggml/include/gguf.h` and `docs/gguf.md`; gguf-py `gguf_reader.py`):
//!
//! ```text
//! magic "GGUF" | version: u32 | tensor_count: u64 | kv_count: u64
//! kv_count x   (key: string, value_type: u32, value)        -- see `value.rs`
//! tensor_count x (name: string, n_dims: u32, ne: [u64; n_dims], ggml_type: u32, offset: u64)
//! padding to `general.alignment` (default 32)
//! tensor data: each tensor at data_start + offset, offsets aligned too
//! ```
//!
//! Strings are a `u64` byte length and UTF-8 bytes. `ne[0]` is the fastest-varying dimension, so
//! the numpy / PyTorch shape is `ne` reversed: a linear layer's `[in, out]` is `[out, in]`
//! row-major, as `nn.Linear.weight`. Version 1 (32-bit counts) is long gone and not read;
//! version 3 only added big-endian files, which are refused.
//!
//! Every count and length is checked against what is left of the file before anything is
//! allocated for it, so arbitrary bytes give an error, never a panic or a huge allocation.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::dequant;
use crate::error::{GgufError, Result};
use crate::ggml_type::GgmlType;
use crate::value::{Array, Value, ValueType};

/// The magic number at the start of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// How deep arrays of arrays may nest (llama.cpp itself reads no nested arrays at all).
const MAX_ARRAY_DEPTH: usize = 8;
/// Files smaller than this are read into memory instead of mapped.
const MMAP_THRESHOLD: u64 = 1 << 20;

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml's `ne`: dimensions fastest-varying first.
    pub ne: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The shape in numpy / PyTorch (row-major) order: `ne` reversed.
    pub fn shape(&self) -> Vec<usize> {
        // `Gguf` only holds infos whose element count fits in `usize`, so each dimension does.
        self.ne.iter().rev().map(|&n| n as usize).collect()
    }

    /// The number of elements (saturating; infos read from a file always fit).
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().fold(1u64, |acc, &n| acc.saturating_mul(n))
    }

    /// The size of the data in bytes, if the type is known.
    pub fn n_bytes(&self) -> Option<u64> {
        let block = self.ggml_type.block_size()? as u64;
        let size = self.ggml_type.type_size()? as u64;
        (self.n_elements() / block).checked_mul(size)
    }
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

/// An open GGUF file: its metadata, its tensor infos, and its bytes (memory-mapped for files
/// over 1 MiB, so the file must not change while this is alive).
pub struct Gguf {
    path: PathBuf,
    bytes: Storage,
    version: u32,
    metadata: Vec<(String, Value)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl Gguf {
    /// Open and parse the header of the GGUF file at `path`. Tensor data is only checked when a
    /// tensor is read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |action: &str| {
            let action = action.to_string();
            move |source| GgufError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        let mut file = File::open(path).map_err(io("opening"))?;
        let len = file.metadata().map_err(io("reading the size of"))?.len();
        let bytes = if len < MMAP_THRESHOLD {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).map_err(io("reading"))?;
            Storage::Owned(bytes)
        } else {
            // SAFETY: a read-only private map; its contents are only read as plain bytes (every
            // access bounds-checked). The documented condition of `Gguf` is that the file is not
            // truncated or rewritten while it is open, as for any memory-mapped model file.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("memory-mapping"))?;
            Storage::Mapped(map)
        };
        Self::parse(path.to_path_buf(), bytes)
    }

    /// Parse a GGUF held in memory. `path` only names it in messages.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(path.into(), Storage::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Storage) -> Result<Self> {
        let header = Header::parse(&path, &bytes)?;
        let mut gguf = Gguf {
            path,
            bytes,
            version: header.version,
            metadata_index: header
                .metadata
                .iter()
                .enumerate()
                .map(|(i, (key, _))| (key.clone(), i))
                .collect(),
            metadata: header.metadata,
            tensor_index: HashMap::new(),
            tensors: header.tensors,
            alignment: header.alignment,
            data_offset: header.data_offset,
        };
        gguf.tensor_index = gguf
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(gguf)
    }

    /// The file this was read from (or the name given to [`Gguf::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the tensor data section starts, in bytes from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The metadata value under `key`.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// All metadata, in file order.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>> {
        let Some(value) = self.metadata(key) else {
            return Ok(None);
        };
        convert(value)
            .map(Some)
            .ok_or_else(|| GgufError::WrongKeyType {
                path: self.path.clone(),
                key: key.to_string(),
                expected: expected.to_string(),
                found: format!("{} {value}", value.describe()),
            })
    }

    /// An integer key that fits `u32` (any integer type is accepted if the value fits).
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        self.typed(key, "an integer that fits u32", |v| {
            v.as_u64().and_then(|v| u32::try_from(v).ok())
        })
    }

    /// A non-negative integer key.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, "a non-negative integer", Value::as_u64)
    }

    /// An integer key that fits `i64`.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>> {
        self.typed(key, "an integer", Value::as_i64)
    }

    /// A float key: `f32`, or `f64` rounded to `f32`.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        self.typed(key, "a float", |v| match *v {
            Value::F32(x) => Some(x),
            Value::F64(x) => Some(x as f32),
            _ => None,
        })
    }

    /// A float key, `f32` widened exactly or `f64`.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        self.typed(key, "a float", Value::as_f64)
    }

    /// A boolean key.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, "a bool", Value::as_bool)
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, "a string", Value::as_str)
    }

    /// An array-of-strings key.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>> {
        self.typed(key, "an array of strings", |v| match v {
            Value::Array(Array::String(items)) => Some(items.as_slice()),
            _ => None,
        })
    }

    /// An array-of-integers key (any integer element type), as `i64`.
    pub fn get_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        self.typed(key, "an array of integers", |v| v.as_array()?.to_i64_vec())
    }

    /// An error saying that `key` is missing.
    pub fn missing_key(&self, key: &str) -> GgufError {
        GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        }
    }

    /// `general.architecture`, which every GGUF model must have.
    pub fn architecture(&self) -> Result<&str> {
        const KEY: &str = "general.architecture";
        self.get_str(KEY)?.ok_or_else(|| self.missing_key(KEY))
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of the tensor called `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Like [`Gguf::tensor_info`], but a missing tensor is an error naming it.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })
    }

    fn unsupported_type(&self, info: &TensorInfo) -> GgufError {
        GgufError::UnsupportedType {
            path: self.path.clone(),
            tensor: info.name.clone(),
            ggml_type: info.ggml_type.to_string(),
            supported: dequant::SUPPORTED.map(|t| t.to_string()).join(", "),
        }
    }

    /// The raw bytes of a tensor's data, checked to lie inside the file.
    pub fn tensor_data(&self, info: &TensorInfo) -> Result<&[u8]> {
        let n_bytes = info.n_bytes().ok_or_else(|| self.unsupported_type(info))?;
        let file_len = self.file_len();
        let start = self.data_offset.saturating_add(info.offset);
        let end = start.saturating_add(n_bytes);
        if end > file_len {
            return Err(GgufError::TensorDataTruncated {
                path: self.path.clone(),
                tensor: info.name.clone(),
                start,
                end,
                file_len,
            });
        }
        Ok(&self.bytes[start as usize..end as usize])
    }

    /// The dequantisation kernel and raw bytes of a tensor, checked for type and bounds.
    pub(crate) fn tensor_source(&self, info: &TensorInfo) -> Result<(dequant::Kernel, &[u8])> {
        let kernel = dequant::kernel(info.ggml_type).ok_or_else(|| self.unsupported_type(info))?;
        Ok((kernel, self.tensor_data(info)?))
    }

    /// A tensor dequantised to `f32`, with its numpy-order shape (`ne` reversed).
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.require_tensor(name)?;
        let (kernel, raw) = self.tensor_source(info)?;
        // The element count fits `usize`: the bytes holding them are in memory.
        let mut out = vec![0.0; info.n_elements() as usize];
        kernel(raw, &mut out);
        Ok((info.shape(), out))
    }
}

/// What the header says, before the bytes move into a `Gguf`.
struct Header {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
}

/// A read past the end of the file: the byte range it needed.
struct Short {
    start: u64,
    end: u64,
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Short> {
        if n > self.remaining() {
            return Err(Short {
                start: self.pos as u64,
                end: (self.pos as u64).saturating_add(n),
            });
        }
        let bytes = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, Short> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Short> {
        self.array().map(u64::from_le_bytes)
    }

    fn string(&mut self) -> Result<String, Short> {
        let len = self.u64()?;
        let bytes = self.take(len)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            // llama.cpp does not validate strings either; keep what can be kept.
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    fn truncated(&self, short: Short, what: impl Into<String>) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.into(),
            start: short.start,
            end: short.end,
            file_len: self.buf.len() as u64,
        }
    }

    fn malformed(&self, what: impl Into<String>) -> GgufError {
        GgufError::Malformed {
            path: self.path.to_path_buf(),
            what: what.into(),
        }
    }

    /// Fail unless `count` items of at least `min_len` bytes each fit in the rest of the file.
    fn check_count(&self, count: u64, min_len: u64, what: impl FnOnce() -> String) -> Result<()> {
        let remaining = self.remaining();
        if count
            .checked_mul(min_len)
            .is_none_or(|needed| needed > remaining)
        {
            return Err(self.malformed(format!(
                "{} claims {count} entries, more than the {remaining} bytes left in the file can hold \
                 (the file is truncated or corrupt)",
                what()
            )));
        }
        Ok(())
    }

    /// A value of type `value_type`; `key` names it in messages.
    fn value(&mut self, value_type: ValueType, key: &str, depth: usize) -> Result<Value> {
        let what = || format!("value of metadata `{key}` ({})", value_type.name());
        let short = |cursor: &Self, s: Short| cursor.truncated(s, what());
        macro_rules! scalar {
            ($variant:ident, $t:ty) => {
                Value::$variant(<$t>::from_le_bytes(
                    self.array().map_err(|s| short(self, s))?,
                ))
            };
        }
        Ok(match value_type {
            ValueType::U8 => scalar!(U8, u8),
            ValueType::I8 => scalar!(I8, i8),
            ValueType::U16 => scalar!(U16, u16),
            ValueType::I16 => scalar!(I16, i16),
            ValueType::U32 => scalar!(U32, u32),
            ValueType::I32 => scalar!(I32, i32),
            ValueType::F32 => scalar!(F32, f32),
            ValueType::U64 => scalar!(U64, u64),
            ValueType::I64 => scalar!(I64, i64),
            ValueType::F64 => scalar!(F64, f64),
            ValueType::Bool => {
                let [b] = self.array().map_err(|s| short(self, s))?;
                match b {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    other => {
                        return Err(self.malformed(format!(
                            "metadata `{key}`: bool byte is {other}, not 0 or 1"
                        )));
                    }
                }
            }
            ValueType::String => Value::String(self.string().map_err(|s| short(self, s))?),
            ValueType::Array => Value::Array(self.array_value(key, depth)?),
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<Array> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.malformed(format!(
                "metadata `{key}`: arrays nested more than {MAX_ARRAY_DEPTH} deep"
            )));
        }
        let header = |c: &Self, s| c.truncated(s, format!("array header of metadata `{key}`"));
        let code = self.u32().map_err(|s| header(self, s))?;
        let element_type = ValueType::from_code(code).ok_or_else(|| {
            self.malformed(format!(
                "metadata `{key}`: unknown array element type {code}"
            ))
        })?;
        let len = self.u64().map_err(|s| header(self, s))?;
        self.check_count(len, element_type.min_encoded_len(), || {
            format!("metadata `{key}` (array of {})", element_type.name())
        })?;
        // Grows as elements are actually read, so a lying length cannot allocate much.
        let capacity = (len as usize).min(1 << 16);
        macro_rules! collect {
            ($variant:ident, $pat:ident) => {{
                let mut items = Vec::with_capacity(capacity);
                for _ in 0..len {
                    match self.value(element_type, key, depth + 1)? {
                        Value::$pat(v) => items.push(v),
                        _ => unreachable!("value() returns the type it is asked for"),
                    }
                }
                Array::$variant(items)
            }};
        }
        Ok(match element_type {
            ValueType::U8 => collect!(U8, U8),
            ValueType::I8 => collect!(I8, I8),
            ValueType::U16 => collect!(U16, U16),
            ValueType::I16 => collect!(I16, I16),
            ValueType::U32 => collect!(U32, U32),
            ValueType::I32 => collect!(I32, I32),
            ValueType::F32 => collect!(F32, F32),
            ValueType::Bool => collect!(Bool, Bool),
            ValueType::String => collect!(String, String),
            ValueType::Array => collect!(Array, Array),
            ValueType::U64 => collect!(U64, U64),
            ValueType::I64 => collect!(I64, I64),
            ValueType::F64 => collect!(F64, F64),
        })
    }
}

/// `bytes` as hex and as escaped text, for the bad-magic message.
fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "none (the file is empty)".to_string();
    }
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{} ({:?})", hex.join(" "), bytes.escape_ascii().to_string())
}

impl Header {
    fn parse(path: &Path, buf: &[u8]) -> Result<Self> {
        let mut c = Cursor { buf, pos: 0, path };
        let magic = buf.get(..4).unwrap_or(buf);
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                path: path.to_path_buf(),
                found: describe_bytes(magic),
            });
        }
        c.pos = 4;
        let version = c.u32().map_err(|s| c.truncated(s, "header (version)"))?;
        if !(2..=3).contains(&version) {
            let swapped = version.swap_bytes();
            let hint = if (1..=3).contains(&swapped) {
                format!("; read big-endian it is {swapped}, and big-endian files are not supported")
            } else if version == 1 {
                "; version 1 (32-bit counts) predates August 2023 and is not read".to_string()
            } else {
                String::new()
            };
            return Err(GgufError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
                hint,
            });
        }
        let tensor_count = c
            .u64()
            .map_err(|s| c.truncated(s, "header (tensor count)"))?;
        let kv_count = c
            .u64()
            .map_err(|s| c.truncated(s, "header (metadata count)"))?;
        // A key-value pair takes at least 13 bytes (empty key, type, one byte), a tensor info 24.
        c.check_count(kv_count, 13, || "the header's metadata count".to_string())?;
        c.check_count(tensor_count, 24, || "the header's tensor count".to_string())?;

        // Capacity capped: the counts are checked against the file size, not yet against reality.
        let mut metadata: Vec<(String, Value)> = Vec::with_capacity((kv_count as usize).min(4096));
        let mut seen = std::collections::HashSet::new();
        for i in 0..kv_count {
            let key = c
                .string()
                .map_err(|s| c.truncated(s, format!("metadata key #{i}")))?;
            let code = c
                .u32()
                .map_err(|s| c.truncated(s, format!("type of metadata `{key}`")))?;
            let value_type = ValueType::from_code(code).ok_or_else(|| {
                c.malformed(format!("metadata `{key}` has unknown value type {code}"))
            })?;
            let value = c.value(value_type, &key, 0)?;
            if !seen.insert(key.clone()) {
                return Err(c.malformed(format!("metadata key `{key}` appears twice")));
            }
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, value)) => match value.as_u64() {
                Some(a) if a.is_power_of_two() && a <= u32::MAX as u64 => a,
                _ => {
                    return Err(c.malformed(format!(
                        "general.alignment is {} {value}, not a power of two",
                        value.describe()
                    )));
                }
            },
        };

        let mut tensors: Vec<TensorInfo> = Vec::with_capacity((tensor_count as usize).min(4096));
        let mut names = std::collections::HashSet::new();
        for i in 0..tensor_count {
            let name = c
                .string()
                .map_err(|s| c.truncated(s, format!("name of tensor info #{i}")))?;
            let short = |c: &Cursor, s| c.truncated(s, format!("tensor info of `{name}`"));
            let n_dims = c.u32().map_err(|s| short(&c, s))?;
            if n_dims > MAX_DIMS {
                return Err(c.malformed(format!(
                    "tensor `{name}` has {n_dims} dimensions (ggml allows at most {MAX_DIMS})"
                )));
            }
            let ne = (0..n_dims)
                .map(|_| c.u64())
                .collect::<Result<Vec<u64>, Short>>()
                .map_err(|s| short(&c, s))?;
            let ggml_type = GgmlType(c.u32().map_err(|s| short(&c, s))?);
            let offset = c.u64().map_err(|s| short(&c, s))?;
            let info = TensorInfo {
                name,
                ne,
                ggml_type,
                offset,
            };
            check_tensor_info(&c, &info, alignment)?;
            if !names.insert(info.name.clone()) {
                return Err(c.malformed(format!("tensor `{}` appears twice", info.name)));
            }
            tensors.push(info);
        }

        let data_offset = (c.pos as u64).next_multiple_of(alignment);
        Ok(Header {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }
}

/// Shape, type and offset checks that need no tensor data.
fn check_tensor_info(c: &Cursor, info: &TensorInfo, alignment: u64) -> Result<()> {
    let name = &info.name;
    let elements = info
        .ne
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n <= i64::MAX as u64 && usize::try_from(n).is_ok())
        .ok_or_else(|| {
            c.malformed(format!(
                "tensor `{name}` has impossible dimensions {:?}",
                info.ne
            ))
        })?;
    if let Some(block) = info.ggml_type.block_size() {
        let row = info.ne.first().copied().unwrap_or(1);
        if !row.is_multiple_of(block as u64) {
            return Err(c.malformed(format!(
                "tensor `{name}` of type {} has rows of {row} elements, not a multiple of its block size {block}",
                info.ggml_type
            )));
        }
        let bytes = info.n_bytes();
        if bytes.is_none_or(|b| info.offset.checked_add(b).is_none()) {
            return Err(c.malformed(format!(
                "tensor `{name}` ({elements} elements at offset {}) is too large",
                info.offset
            )));
        }
    }
    if !info.offset.is_multiple_of(alignment) {
        return Err(c.malformed(format!(
            "tensor `{name}` is at offset {}, not a multiple of the alignment {alignment}",
            info.offset
        )));
    }
    Ok(())
}
