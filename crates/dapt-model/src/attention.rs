//! Multi-head self-attention from the fused q|k|v projection, causal (decoders) or
//! bidirectional (encoders), as one autodiff node on flex.
//!
//! burn differentiates attention through its composed fallback: the q, k, v head views,
//! a causal mask built per call, scale, mask-fill, a five-operation softmax with scalar
//! `exp`, two batched matmuls, and the heads transposed back, each a node with its own
//! buffers. Here one node reads q, k and v where the projection wrote them, runs per
//! (batch, head) `S = scale · q kᵀ`, a masked row softmax with the vector `exp`, and
//! `o = P v` written straight into the `[B, T, d]` layout the output projection reads.
//! Backward, from the kept `P`: `dv = Pᵀ do`, `dS = P ∘ (do vᵀ − rowsum(P ∘ do vᵀ))`,
//! `dq = scale · dS k`, `dk = scale · dSᵀ q`, into one `[B, T, 3d]` gradient.
//! Other backends use burn's `attention`.

mod flex;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::flexbuf::is_f32;
use crate::model::Heads;

/// `[B, T, width]` projections, columns ordered as [`Heads`] says (query heads, then key
/// heads, then value heads; `n_head / n_kv_head` query heads share a key/value head) ->
/// `[B, T, n_head·head_dim]` context, heads concatenated. Causal: a position attends to
/// itself and those before it; otherwise to every position.
pub fn self_attention(qkv: Tensor<3>, heads: Heads, causal: bool) -> Tensor<3> {
    fused(&qkv, heads, causal).unwrap_or_else(|| composed(qkv, heads, causal))
}

fn composed(qkv: Tensor<3>, heads: Heads, causal: bool) -> Tensor<3> {
    let [batch, seq_len, _] = qkv.dims();
    let Heads {
        n_head,
        n_kv_head,
        head_dim,
    } = heads;
    // [B, T, H + 2K, hd] -> [B, H + 2K, T, hd]: H query heads, then K key and K value heads.
    let qkv = qkv
        .reshape([batch, seq_len, n_head + 2 * n_kv_head, head_dim])
        .swap_dims(1, 2);
    let group = n_head / n_kv_head;
    let shared = |t: Tensor<4>| {
        t.unsqueeze_dim::<5>(2)
            .expand([batch, n_kv_head, group, seq_len, head_dim])
            .reshape([batch, n_head, seq_len, head_dim])
    };
    let query = qkv.clone().narrow(1, 0, n_head);
    let key = shared(qkv.clone().narrow(1, n_head, n_kv_head));
    let value = shared(qkv.narrow(1, n_head + n_kv_head, n_kv_head));
    let options = AttentionModuleOptions {
        is_causal: causal,
        ..Default::default()
    };
    attention(query, key, value, None, None, options)
        .swap_dims(1, 2)
        .reshape([batch, seq_len, heads.q_width()])
}

fn fused(qkv: &Tensor<3>, heads: Heads, causal: bool) -> Option<Tensor<3>> {
    if let Ok(qkv) = qkv.clone().try_into_primitive::<Autodiff<Flex>>() {
        if !is_f32(qkv.primitive()) {
            return None;
        }
        let (context, probs) = flex::forward(qkv.primitive(), heads, causal);
        let context = match AttentionNode
            .prepare::<NoCheckpointing>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((qkv.into_primitive(), probs, heads, causal), context)
            }
            OpsKind::UnTracked(prep) => prep.finish(context),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(context));
    }
    let qkv = qkv.clone().try_into_primitive::<Flex>().ok()?;
    is_f32(&qkv).then(|| Tensor::from_primitive::<Flex>(flex::forward(&qkv, heads, causal).0))
}

/// The state: the projections, the attention probabilities `[B·H, T, T]`, the heads and
/// whether the mask is causal.
#[derive(Debug)]
struct AttentionNode;

impl Backward<Flex, 1> for AttentionNode {
    type State = (FlexTensor, Vec<f32>, Heads, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (qkv, probs, heads, causal) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |d_context| {
            flex::backward(&qkv, &probs, heads, causal, d_context)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_same_values_and_gradients;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn values_and_gradients_equal_burns_attention() {
        let device = Device::flex().autodiff();
        // Multi-head (GPT), grouped-query (Llama: 2 query heads per key/value head) and
        // multi-query attention.
        // Each causal (decoders) and bidirectional (encoders).
        for (n_head, n_kv_head) in [(3, 3), (4, 2), (3, 1)] {
            for causal in [true, false] {
                let heads = Heads {
                    n_head,
                    n_kv_head,
                    head_dim: 5,
                };
                let shape = [2, 11, heads.width()];
                let qkv = Tensor::<3>::random(shape, Distribution::Normal(0.0, 2.0), &device);
                assert!(fused(&qkv, heads, causal).is_some());
                assert_same_values_and_gradients(
                    qkv,
                    |qkv| self_attention(qkv, heads, causal),
                    |qkv| composed(qkv, heads, causal),
                    Tolerance::absolute(1e-5),
                );
            }
        }
    }

    #[test]
    fn causal_outputs_ignore_later_tokens_and_bidirectional_ones_see_them() {
        let device = Device::flex();
        let heads = Heads {
            n_head: 2,
            n_kv_head: 1,
            head_dim: 2,
        };
        let qkv = Tensor::<3>::random([1, 6, 8], Distribution::Normal(0.0, 1.0), &device);
        let changed = qkv.clone().slice_assign(
            [0..1, 5..6, 0..8],
            Tensor::<3>::random([1, 1, 8], Distribution::Normal(0.0, 1.0), &device),
        );
        let prefix = |qkv, causal| {
            self_attention(qkv, heads, causal)
                .narrow(1, 0, 5)
                .into_data()
        };
        prefix(qkv.clone(), true)
            .assert_approx_eq::<f32>(&prefix(changed.clone(), true), Tolerance::absolute(0.0));
        // Bidirectional: the last token reaches every earlier output.
        let (before, after) = (prefix(qkv, false), prefix(changed, false));
        let before = before.try_to_vec::<f32>().unwrap();
        let after = after.try_to_vec::<f32>().unwrap();
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(
            moved,
            before.len(),
            "every earlier output must see the last token"
        );
    }
}
