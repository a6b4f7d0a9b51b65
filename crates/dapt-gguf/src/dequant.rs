//! Dequantisation of ggml tensor data to `f32`.
//!
//! Every kernel reproduces gguf-py's `gguf.quants.dequantize` (numpy) bit for bit: the same
//! `f16 -> f32` conversion of the scales (exact), and the same float operations in the same
//! order, one rounding each (numpy does not fuse a multiply and an add, and neither does Rust).
//! The block layouts are ggml's (`ggml-common.h`; reference code `dequantize_row_*` in
//! `ggml-quants.c`), all little-endian:
//!
//! | type | elements | bytes | layout | element |
//! |------|----------|-------|--------|---------|
//! | F32  | 1   | 4   | `f32` | `x` |
//! | F16  | 1   | 2   | `f16` | `x` |
//! | BF16 | 1   | 2   | upper half of an `f32` | `x` |
//! | Q8_0 | 32  | 34  | `d: f16, qs: [i8; 32]` | `d * q` |
//! | Q4_0 | 32  | 18  | `d: f16, qs: [u8; 16]` | `d * (q - 8)` |
//! | Q4_1 | 32  | 20  | `d: f16, m: f16, qs: [u8; 16]` | `d * q + m` |
//! | Q5_0 | 32  | 22  | `d: f16, qh: u32, qs: [u8; 16]` | `d * (q - 16)` |
//! | Q5_1 | 32  | 24  | `d: f16, m: f16, qh: u32, qs: [u8; 16]` | `d * q + m` |
//! | Q4_K | 256 | 144 | `d, dmin: f16, scales: [u8; 12], qs: [u8; 128]` | `(d * sc) * q - dmin * m` |
//! | Q5_K | 256 | 176 | `d, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]` | as Q4_K |
//! | Q6_K | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` | `(d * sc) * (q - 32)` |
//!
//! In the 32-element types, byte `j` of `qs` holds element `j` in its low nibble and element
//! `j + 16` in its high one; `qh` bit `j` is the fifth bit of element `j`. The k-quants are
//! super-blocks of 256 elements in sub-blocks of 32 (Q4_K, Q5_K: 6-bit scale and min per sub-block,
//! packed into 12 bytes) or 16 (Q6_K: one `i8` scale each).

use half::f16;

use crate::ggml_type::{GgmlType, QK_K};

/// The types this module dequantises.
pub const SUPPORTED: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Why some bytes could not be dequantised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("ggml type {0} cannot be dequantised")]
    Unsupported(GgmlType),
    #[error("{bytes} bytes of {ggml_type} do not hold {elements} elements")]
    Length {
        ggml_type: GgmlType,
        bytes: usize,
        elements: usize,
    },
}

/// A dequantisation kernel: whole blocks of `raw` into `out`. Never panics; the caller makes
/// `raw` exactly `out.len() / block_size` blocks long (any excess on either side is ignored).
pub(crate) type Kernel = fn(&[u8], &mut [f32]);

/// The kernel for `ggml_type`, if it is supported.
pub(crate) fn kernel(ggml_type: GgmlType) -> Option<Kernel> {
    Some(match ggml_type {
        GgmlType::F32 => f32_row,
        GgmlType::F16 => f16_row,
        GgmlType::BF16 => bf16_row,
        GgmlType::Q8_0 => q8_0_row,
        GgmlType::Q4_0 => q4_0_row,
        GgmlType::Q4_1 => q4_1_row,
        GgmlType::Q5_0 => q5_0_row,
        GgmlType::Q5_1 => q5_1_row,
        GgmlType::Q4_K => q4_k_row,
        GgmlType::Q5_K => q5_k_row,
        GgmlType::Q6_K => q6_k_row,
        _ => return None,
    })
}

/// The number of bytes `elements` elements of `ggml_type` take, if the type is known and
/// `elements` is a whole number of blocks.
pub fn byte_len(ggml_type: GgmlType, elements: usize) -> Option<usize> {
    let (block, size) = (ggml_type.block_size()?, ggml_type.type_size()?);
    if !elements.is_multiple_of(block) {
        return None;
    }
    (elements / block).checked_mul(size)
}

/// Dequantise `raw`, which must be exactly `elements` elements of `ggml_type`, into `out`.
pub fn dequantize_into(
    ggml_type: GgmlType,
    raw: &[u8],
    out: &mut [f32],
) -> Result<(), DequantError> {
    let run = kernel(ggml_type).ok_or(DequantError::Unsupported(ggml_type))?;
    if byte_len(ggml_type, out.len()) != Some(raw.len()) {
        return Err(DequantError::Length {
            ggml_type,
            bytes: raw.len(),
            elements: out.len(),
        });
    }
    run(raw, out);
    Ok(())
}

/// Dequantise `raw`, a whole number of blocks of `ggml_type`, into a new vector.
pub fn dequantize(ggml_type: GgmlType, raw: &[u8]) -> Result<Vec<f32>, DequantError> {
    let (Some(block), Some(size)) = (ggml_type.block_size(), ggml_type.type_size()) else {
        return Err(DequantError::Unsupported(ggml_type));
    };
    let elements = raw.len() / size * block;
    let mut out = vec![0.0; elements];
    dequantize_into(ggml_type, raw, &mut out)?;
    Ok(out)
}

#[inline]
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

fn f32_row(raw: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(raw.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

fn f16_row(raw: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
        *o = f16_at(b, 0);
    }
}

fn bf16_row(raw: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
}

fn q8_0_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(32).zip(raw.chunks_exact(34)) {
        let d = f16_at(block, 0);
        for (o, &q) in y.iter_mut().zip(&block[2..]) {
            *o = d * f32::from(q as i8);
        }
    }
}

fn q4_0_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(32).zip(raw.chunks_exact(18)) {
        let d = f16_at(block, 0);
        let (lo, hi) = y.split_at_mut(16);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&block[2..]) {
            *l = d * f32::from((q & 0x0F) as i8 - 8);
            *h = d * f32::from((q >> 4) as i8 - 8);
        }
    }
}

fn q4_1_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(32).zip(raw.chunks_exact(20)) {
        let (d, m) = (f16_at(block, 0), f16_at(block, 2));
        let (lo, hi) = y.split_at_mut(16);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&block[4..]) {
            *l = d * f32::from(q & 0x0F) + m;
            *h = d * f32::from(q >> 4) + m;
        }
    }
}

/// The 32 five-bit values of a Q5_0/Q5_1 block: low nibbles from `qs`, fifth bits from `qh`.
#[inline]
fn q5_values(qh: &[u8], qs: &[u8]) -> [u8; 32] {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = [0u8; 32];
    for (j, &byte) in qs.iter().enumerate().take(16) {
        q[j] = (byte & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (byte >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

fn q5_0_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(32).zip(raw.chunks_exact(22)) {
        let d = f16_at(block, 0);
        let q = q5_values(&block[2..6], &block[6..]);
        for (o, &q) in y.iter_mut().zip(&q) {
            *o = d * f32::from(q as i8 - 16);
        }
    }
}

fn q5_1_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(32).zip(raw.chunks_exact(24)) {
        let (d, m) = (f16_at(block, 0), f16_at(block, 2));
        let q = q5_values(&block[4..8], &block[8..]);
        for (o, &q) in y.iter_mut().zip(&q) {
            *o = d * f32::from(q) + m;
        }
    }
}

/// The eight 6-bit (scale, min) pairs packed into the 12 `scales` bytes of Q4_K/Q5_K
/// (ggml `get_scale_min_k4`).
#[inline]
fn k4_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 0x3F;
        m[j] = s[j + 4] & 0x3F;
        sc[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 2) & 0x30);
        m[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30);
    }
    (sc, m)
}

const Q4_K_BYTES: usize = 2 + 2 + 12 + QK_K / 2;
const Q5_K_BYTES: usize = 2 + 2 + 12 + QK_K / 8 + QK_K / 2;
const Q6_K_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

fn q4_k_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(QK_K).zip(raw.chunks_exact(Q4_K_BYTES)) {
        let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
        let (sc, m) = k4_scales_mins(&block[4..16]);
        let qs = &block[16..];
        // Each 32 bytes of `qs` hold sub-block 2c in their low nibbles and 2c+1 in their high.
        for (sub, y) in y.chunks_exact_mut(32).enumerate() {
            let scale = d * f32::from(sc[sub]);
            let min = dmin * f32::from(m[sub]);
            let shift = 4 * (sub % 2);
            for (o, &q) in y.iter_mut().zip(&qs[32 * (sub / 2)..]) {
                *o = scale * f32::from((q >> shift) & 0x0F) - min;
            }
        }
    }
}

fn q5_k_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(QK_K).zip(raw.chunks_exact(Q5_K_BYTES)) {
        let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
        let (sc, m) = k4_scales_mins(&block[4..16]);
        let qh = &block[16..48];
        let qs = &block[48..];
        // Low nibbles as in Q4_K; bit `sub` of `qh[l]` is the fifth bit of element l of sub-block `sub`.
        for (sub, y) in y.chunks_exact_mut(32).enumerate() {
            let scale = d * f32::from(sc[sub]);
            let min = dmin * f32::from(m[sub]);
            let shift = 4 * (sub % 2);
            for ((o, &q), &h) in y.iter_mut().zip(&qs[32 * (sub / 2)..]).zip(qh) {
                let q = ((q >> shift) & 0x0F) | (((h >> sub) & 1) << 4);
                *o = scale * f32::from(q) - min;
            }
        }
    }
}

fn q6_k_row(raw: &[u8], out: &mut [f32]) {
    for (y, block) in out.chunks_exact_mut(QK_K).zip(raw.chunks_exact(Q6_K_BYTES)) {
        let ql = &block[..128];
        let qh = &block[128..192];
        let scales = &block[192..208];
        let d = f16_at(block, 208);
        // Element e: row r = e / 32 of eight, column l = e % 32. Rows 4h..4h+4 come from
        // ql[64h..64h+64] (low nibbles of the first and second 32 bytes, then high nibbles) and
        // from two bits of qh[32h + l] each; scale e / 16.
        for (r, y) in y.chunks_exact_mut(32).enumerate() {
            let (half, row) = (r / 4, r % 4);
            let low = &ql[64 * half + 32 * (row % 2)..];
            let nibble_shift = 4 * (row / 2);
            let high = &qh[32 * half..];
            let high_shift = 2 * row;
            for (l, o) in y.iter_mut().enumerate() {
                let q = ((low[l] >> nibble_shift) & 0x0F) | (((high[l] >> high_shift) & 3) << 4);
                let scale = d * f32::from(scales[(32 * r + l) / 16] as i8);
                *o = scale * f32::from(q as i8 - 32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn q8_0_is_scale_times_int8() {
        let mut block = Vec::from(f16_bytes(0.5));
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let out = dequantize(GgmlType::Q8_0, &block).unwrap();
        let expected: Vec<f32> = (0..32).map(|i| 0.5 * (i - 16) as f32).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn q4_1_low_nibbles_first_then_high() {
        let mut block = Vec::from(f16_bytes(2.0));
        block.extend(f16_bytes(-1.0));
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let out = dequantize(GgmlType::Q4_1, &block).unwrap();
        for j in 0..16 {
            assert_eq!(out[j], 2.0 * j as f32 - 1.0);
            assert_eq!(out[j + 16], 2.0 * (15 - j) as f32 - 1.0);
        }
    }

    /// Q6_K against a direct transcription of ggml's `dequantize_row_q6_K` loop.
    #[test]
    fn q6_k_matches_ggml_reference_loop() {
        let mut block: Vec<u8> = (0..Q6_K_BYTES).map(|i| (i * 37 + 11) as u8).collect();
        block[208..].copy_from_slice(&f16_bytes(0.01));
        let ours = dequantize(GgmlType::Q6_K, &block).unwrap();

        let d = f16_at(&block, 208);
        let mut reference = vec![0f32; QK_K];
        for n in 0..2 {
            let (ql, qh, sc) = (
                &block[64 * n..],
                &block[128 + 32 * n..],
                &block[192 + 8 * n..],
            );
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                let y = &mut reference[128 * n..];
                y[l] = d * f32::from(sc[is] as i8) * f32::from(q1);
                y[l + 32] = d * f32::from(sc[is + 2] as i8) * f32::from(q2);
                y[l + 64] = d * f32::from(sc[is + 4] as i8) * f32::from(q3);
                y[l + 96] = d * f32::from(sc[is + 6] as i8) * f32::from(q4);
            }
        }
        assert_eq!(ours, reference);
    }

    /// Q4_K against a transcription of ggml's `dequantize_row_q4_K` with `get_scale_min_k4`.
    #[test]
    fn q4_k_matches_ggml_reference_loop() {
        let mut block: Vec<u8> = (0..Q4_K_BYTES).map(|i| (i * 53 + 7) as u8).collect();
        block[..2].copy_from_slice(&f16_bytes(0.02));
        block[2..4].copy_from_slice(&f16_bytes(0.003));
        let ours = dequantize(GgmlType::Q4_K, &block).unwrap();

        fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
            if j < 4 {
                (q[j] & 63, q[j + 4] & 63)
            } else {
                (
                    (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                    (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
                )
            }
        }
        let (d, min) = (f16_at(&block, 0), f16_at(&block, 2));
        let scales = &block[4..16];
        let mut q = &block[16..];
        let mut reference = Vec::new();
        for is in (0..8).step_by(2) {
            let (sc, m) = scale_min(is, scales);
            let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
            let (sc, m) = scale_min(is + 1, scales);
            let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
            reference.extend(q[..32].iter().map(|&x| d1 * f32::from(x & 0xF) - m1));
            reference.extend(q[..32].iter().map(|&x| d2 * f32::from(x >> 4) - m2));
            q = &q[32..];
        }
        assert_eq!(ours, reference);
    }

    #[test]
    fn wrong_lengths_and_types_are_errors() {
        assert_eq!(
            dequantize_into(GgmlType::Q8_0, &[0; 33], &mut [0.0; 32]),
            Err(DequantError::Length {
                ggml_type: GgmlType::Q8_0,
                bytes: 33,
                elements: 32
            })
        );
        assert_eq!(
            dequantize(GgmlType::Q2_K, &[0; 84]),
            Err(DequantError::Unsupported(GgmlType::Q2_K))
        );
        assert_eq!(
            dequantize(GgmlType(1000), &[0; 4]),
            Err(DequantError::Unsupported(GgmlType(1000)))
        );
    }
}
