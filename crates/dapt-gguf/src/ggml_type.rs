//! ggml tensor types: their codes and block layouts.
//!
//! A tensor's data is a sequence of blocks; each block holds `block_size` elements in
//! `type_size` bytes. Codes and sizes are those of llama.cpp `ggml.h` / `ggml.c` (`type_traits`)
//! and gguf-py `GGMLQuantizationType` / `GGML_QUANT_SIZES`; codes 4, 5 and 31-33, 36-38 belong to
//! removed types.

use std::fmt;

/// Elements per super-block of the k-quants (`QK_K`).
pub const QK_K: usize = 256;

/// A ggml tensor type, by its code in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GgmlType(pub u32);

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q5_0: Self = Self(6);
    pub const Q5_1: Self = Self(7);
    pub const Q8_0: Self = Self(8);
    pub const Q8_1: Self = Self(9);
    pub const Q2_K: Self = Self(10);
    pub const Q3_K: Self = Self(11);
    pub const Q4_K: Self = Self(12);
    pub const Q5_K: Self = Self(13);
    pub const Q6_K: Self = Self(14);
    pub const Q8_K: Self = Self(15);
    pub const I8: Self = Self(24);
    pub const I16: Self = Self(25);
    pub const I32: Self = Self(26);
    pub const I64: Self = Self(27);
    pub const F64: Self = Self(28);
    pub const BF16: Self = Self(30);

    /// Name, `(block_size, type_size)` for every type llama.cpp currently knows.
    fn traits(self) -> Option<(&'static str, usize, usize)> {
        let k = QK_K;
        Some(match self.0 {
            0 => ("F32", 1, 4),
            1 => ("F16", 1, 2),
            2 => ("Q4_0", 32, 2 + 16),
            3 => ("Q4_1", 32, 2 + 2 + 16),
            6 => ("Q5_0", 32, 2 + 4 + 16),
            7 => ("Q5_1", 32, 2 + 2 + 4 + 16),
            8 => ("Q8_0", 32, 2 + 32),
            9 => ("Q8_1", 32, 4 + 4 + 32),
            10 => ("Q2_K", k, 2 + 2 + k / 16 + k / 4),
            11 => ("Q3_K", k, 2 + k / 4 + k / 8 + 12),
            12 => ("Q4_K", k, 2 + 2 + k / 2 + 12),
            13 => ("Q5_K", k, 2 + 2 + k / 2 + k / 8 + 12),
            14 => ("Q6_K", k, 2 + k / 2 + k / 4 + k / 16),
            15 => ("Q8_K", k, 4 + k + k / 8),
            16 => ("IQ2_XXS", k, 2 + k / 4),
            17 => ("IQ2_XS", k, 2 + k / 4 + k / 32),
            18 => ("IQ3_XXS", k, 2 + k / 4 + k / 8),
            19 => ("IQ1_S", k, 2 + k / 8 + k / 16),
            20 => ("IQ4_NL", 32, 2 + 16),
            21 => ("IQ3_S", k, 2 + k / 4 + k / 8 + k / 32 + 4),
            22 => ("IQ2_S", k, 2 + k / 4 + k / 16),
            23 => ("IQ4_XS", k, 2 + 2 + k / 2 + k / 64),
            24 => ("I8", 1, 1),
            25 => ("I16", 1, 2),
            26 => ("I32", 1, 4),
            27 => ("I64", 1, 8),
            28 => ("F64", 1, 8),
            29 => ("IQ1_M", k, k / 8 + k / 16 + k / 32),
            30 => ("BF16", 1, 2),
            34 => ("TQ1_0", k, 2 + 4 * 13),
            35 => ("TQ2_0", k, 2 + 64),
            39 => ("MXFP4", 32, 1 + 16),
            _ => return None,
        })
    }

    /// The type's name (`Q4_K`), if the code is a known type.
    pub fn name(self) -> Option<&'static str> {
        self.traits().map(|(name, _, _)| name)
    }

    /// Elements per block, if known.
    pub fn block_size(self) -> Option<usize> {
        self.traits().map(|(_, block, _)| block)
    }

    /// Bytes per block, if known.
    pub fn type_size(self) -> Option<usize> {
        self.traits().map(|(_, _, size)| size)
    }

    /// Whether [`crate::dequant`] can turn this type into `f32`.
    pub fn can_dequantize(self) -> bool {
        crate::dequant::SUPPORTED.contains(&self)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown type {}", self.0),
        }
    }
}
