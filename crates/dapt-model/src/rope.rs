//! Rotary position embeddings (Su et al. 2021) in transformers' layout: a head's first and
//! second halves are the two coordinates rotated together (`rotate_half`), so Hugging Face
//! Llama weights need no permutation (GGUF's interleaved layout is undone on import).
//!
//! Frequencies follow `modeling_rope_utils.py`: `inv_freq[i] = theta^(-2i/head_dim)`, then
//! `rope_scaling` (linear: divided by the factor; llama3: long wavelengths divided, short ones
//! kept, a smooth ramp between).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use rayon::prelude::*;

use crate::config::RopeScaling;
use crate::flexbuf::{compact, is_f32};
use crate::model::Heads;
use crate::vmath::vectorized;

/// The inverse frequencies of one head, shared by every layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    inv_freq: Vec<f64>,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64, scaling: Option<&RopeScaling>) -> Self {
        let half = head_dim / 2;
        let mut inv_freq: Vec<f64> = (0..half)
            .map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64))
            .collect();
        match scaling {
            None => {}
            Some(RopeScaling::Linear { factor }) => {
                inv_freq.iter_mut().for_each(|f| *f /= factor);
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old_context = *original_max_position_embeddings as f64;
                let low_freq_wavelen = old_context / low_freq_factor;
                let high_freq_wavelen = old_context / high_freq_factor;
                for f in &mut inv_freq {
                    let wavelen = 2.0 * std::f64::consts::PI / *f;
                    if wavelen > low_freq_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_freq_wavelen {
                        let smooth = (old_context / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
        Self { inv_freq }
    }

    /// `cos` and `sin` of every (position, frequency) for positions `start..start + len`,
    /// `[len, head_dim / 2]` row-major. Angles are computed in f32 from f32 frequencies, as
    /// transformers does, so long positions round the same way.
    fn host_tables(&self, start: usize, len: usize) -> Tables {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for position in start..start + len {
            for &f in &self.inv_freq {
                let angle = position as f32 * f as f32;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Tables { cos, sin, half }
    }

    /// The tables as `[1, len, 1, head_dim / 2]` tensors (broadcast over batch and heads).
    pub fn tables(&self, start: usize, len: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let Tables { cos, sin, half } = self.host_tables(start, len);
        let table =
            |values| Tensor::<4>::from_data(TensorData::new(values, [1, len, 1, half]), device);
        (table(cos), table(sin))
    }

    /// Rotates the query and key heads of the fused projection `qkv [B, T, width]` (columns
    /// as [`Heads`] says) to positions `start..start + T`; the value heads pass unchanged.
    /// One autodiff node on flex; burn's operations elsewhere.
    pub fn rotate_qkv(&self, qkv: Tensor<3>, heads: Heads, start: usize) -> Tensor<3> {
        let seq_len = qkv.dims()[1];
        if let Some(rotated) = fused(&qkv, heads, || self.host_tables(start, seq_len)) {
            return rotated;
        }
        let (cos, sin) = self.tables(start, seq_len, &qkv.device());
        composed(qkv, heads, &cos, &sin)
    }
}

/// Host copies of the cos/sin tables, `[T, half]`.
#[derive(Debug, Clone)]
struct Tables {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

fn composed(qkv: Tensor<3>, heads: Heads, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<3> {
    let [batch, seq_len, width] = qkv.dims();
    let rotated_heads = heads.n_head + heads.n_kv_head;
    let rotated_width = rotated_heads * heads.head_dim;
    let rotated = qkv.clone().narrow(2, 0, rotated_width).reshape([
        batch,
        seq_len,
        rotated_heads,
        heads.head_dim,
    ]);
    let rotated = apply_rope(rotated, cos, sin).reshape([batch, seq_len, rotated_width]);
    let values = qkv.narrow(2, rotated_width, width - rotated_width);
    Tensor::cat(vec![rotated, values], 2)
}

fn fused(qkv: &Tensor<3>, heads: Heads, tables: impl FnOnce() -> Tables) -> Option<Tensor<3>> {
    if let Ok(qkv) = qkv.clone().try_into_primitive::<Autodiff<Flex>>() {
        if !is_f32(qkv.primitive()) {
            return None;
        }
        let tables = tables();
        let y = rotate(qkv.primitive().clone(), heads, &tables, 1.0);
        let y = match RopeNode
            .prepare::<NoCheckpointing>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((heads, tables), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(y));
    }
    let qkv = qkv.clone().try_into_primitive::<Flex>().ok()?;
    is_f32(&qkv).then(|| Tensor::from_primitive::<Flex>(rotate(qkv, heads, &tables(), 1.0)))
}

/// The state: the heads and the tables (the rotation is linear: backward rotates back).
#[derive(Debug)]
struct RopeNode;

impl Backward<Flex, 1> for RopeNode {
    type State = (Heads, Tables);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (heads, tables) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            rotate(dy, heads, &tables, -1.0)
        });
    }
}

/// Rotates every row of `x [B, T, width]` in place by its position's angles; `direction`
/// −1 rotates back (the transpose, for the gradient).
fn rotate(x: FlexTensor, heads: Heads, tables: &Tables, direction: f32) -> FlexTensor {
    let mut x = compact(x);
    let shape = x.layout().shape().clone();
    let (seq_len, width) = (shape[1], shape[2]);
    let half = tables.half;
    let rotated_heads = heads.n_head + heads.n_kv_head;
    x.storage_mut::<f32>()
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(row, values)| {
            let t = row % seq_len;
            let cos = &tables.cos[t * half..(t + 1) * half];
            let sin = &tables.sin[t * half..(t + 1) * half];
            vectorized(
                #[inline(always)]
                || {
                    for head in
                        values[..rotated_heads * heads.head_dim].chunks_exact_mut(heads.head_dim)
                    {
                        let (first, second) = head.split_at_mut(half);
                        for i in 0..half {
                            let (a, b) = (first[i], second[i]);
                            let (c, s) = (cos[i], direction * sin[i]);
                            first[i] = a * c - b * s;
                            second[i] = b * c + a * s;
                        }
                    }
                },
            )
        });
    x
}

/// Rotates `x [B, T, heads, head_dim]` by the tables of [`Rope::tables`]:
/// `(x₁, x₂) -> (x₁ cos − x₂ sin, x₂ cos + x₁ sin)` over the two halves of each head.
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.narrow(3, half, half);
    Tensor::cat(
        vec![
            first.clone() * cos.clone() - second.clone() * sin.clone(),
            second * cos.clone() + first * sin.clone(),
        ],
        3,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_same_values_and_gradients;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn fused_rotation_equals_burns_composition_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        let heads = Heads {
            n_head: 4,
            n_kv_head: 2,
            head_dim: 6,
        };
        let rope = Rope::new(6, 10_000.0, None);
        let qkv = Tensor::<3>::random(
            [2, 9, heads.width()],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert!(fused(&qkv, heads, || rope.host_tables(3, 9)).is_some());
        let (cos, sin) = rope.tables(3, 9, &device);
        assert_same_values_and_gradients(
            qkv,
            |qkv| rope.rotate_qkv(qkv, heads, 3),
            |qkv| composed(qkv, heads, &cos, &sin),
            Tolerance::absolute(1e-5),
        );
    }

    #[test]
    fn rotation_keeps_norms_and_relative_positions_decide_dot_products() {
        let device = Device::flex();
        let rope = Rope::new(8, 10_000.0, None);
        let q = Tensor::<4>::random([1, 1, 1, 8], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<4>::random([1, 1, 1, 8], Distribution::Normal(0.0, 1.0), &device);
        let at = |x: &Tensor<4>, position| {
            let (cos, sin) = rope.tables(position, 1, &device);
            apply_rope(x.clone(), &cos, &sin)
        };
        let norm = |x: Tensor<4>| x.powf_scalar(2.0).sum().into_scalar::<f32>();
        assert!((norm(at(&q, 7)) - norm(q.clone())).abs() < 1e-4);
        // <R(m) q, R(n) k> depends on m - n only.
        let dot = |m, n| (at(&q, m) * at(&k, n)).sum().into_scalar::<f32>();
        assert!((dot(5, 2) - dot(13, 10)).abs() < 1e-4);
        assert!((dot(5, 2) - dot(2, 5)).abs() > 1e-4);
        // Position 0 is the identity.
        at(&q, 0)
            .into_data()
            .assert_approx_eq::<f32>(&q.into_data(), Tolerance::absolute(0.0));
    }

    #[test]
    fn linear_scaling_divides_the_frequencies() {
        let plain = Rope::new(16, 10_000.0, None);
        let scaled = Rope::new(16, 10_000.0, Some(&RopeScaling::Linear { factor: 4.0 }));
        for (a, b) in plain.inv_freq.iter().zip(&scaled.inv_freq) {
            assert!((a / 4.0 - b).abs() < 1e-15);
        }
    }
}
