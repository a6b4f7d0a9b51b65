//! Shared helpers of the integration tests: fixture paths and reference tensors.
//!
//! The fixtures are written by `scripts/make_gguf_fixture.py` with llama.cpp's `gguf` Python
//! package; the `*_reference.safetensors` files hold what gguf-py dequantises (or, for the Llama
//! fixtures, the Hugging Face tensors each GGUF tensor was made from).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A reference tensor: numpy shape and values.
pub struct Reference {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Every F32 tensor of a safetensors file.
pub fn read_safetensors(path: &std::path::Path) -> BTreeMap<String, Reference> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (
                name,
                Reference {
                    shape: view.shape().to_vec(),
                    values,
                },
            )
        })
        .collect()
}

/// Assert two float slices equal bit for bit, naming the first difference.
pub fn assert_bits_eq(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{name}: element {i} is {} ({:#010x}), reference {} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}
