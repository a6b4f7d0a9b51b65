//! Sampling text from a model with a key/value cache: the prompt is run once, then each new
//! token costs one position's forward pass. Temperature 0 is greedy decoding; otherwise the
//! next token is drawn from the softmax of `logits / temperature`, cut to the smallest set of
//! tokens whose probability reaches `top_p` (nucleus sampling, Holtzman et al. 2019), with a
//! seeded generator, so the same seed gives the same text.

use std::ops::ControlFlow;

use anyhow::{Result, ensure};
use burn::prelude::*;

use crate::model::{Decoder, KvCache, ids_tensor};
use crate::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// New tokens at most.
    pub max_tokens: usize,
    /// 0 picks the most likely token.
    pub temperature: f64,
    /// Nucleus mass in (0, 1]; 1 keeps every token.
    pub top_p: f64,
    pub seed: u64,
    /// Tokens that end generation (e.g. end-of-text); not emitted.
    pub stop: Vec<u32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            max_tokens: 32,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

/// Generates up to `sampling.max_tokens` tokens after `prompt`, passing each to `on_token`
/// as it comes (`Break` stops). Returns the new tokens. The prompt keeps its newest tokens
/// if it does not leave room in the model context for one new token.
pub fn generate(
    model: &Decoder,
    prompt: &[u32],
    sampling: &Sampling,
    on_token: &mut dyn FnMut(u32) -> ControlFlow<()>,
) -> Result<Vec<u32>> {
    ensure!(!prompt.is_empty(), "generate: the prompt has no tokens");
    ensure!(
        sampling.temperature >= 0.0 && sampling.temperature.is_finite(),
        "generate: temperature must be a finite number >= 0, got {}",
        sampling.temperature
    );
    ensure!(
        sampling.top_p > 0.0 && sampling.top_p <= 1.0,
        "generate: top_p must be in (0, 1], got {}",
        sampling.top_p
    );
    let vocab = model.vocab_size();
    if let Some(bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
        anyhow::bail!("generate: prompt token {bad} is outside the vocabulary ({vocab})");
    }
    let device = model.token_embedding.weight.device();
    let context = model.context();
    let prompt = &prompt[prompt.len().saturating_sub(context - 1)..];
    let mut rng = SplitMix64::new(sampling.seed);
    let mut cache = KvCache::default();
    let mut logits = last_logits(
        model.forward_cached(ids_tensor(prompt, 1, prompt.len(), &device), &mut cache)?,
    )?;
    let mut generated = Vec::new();
    while generated.len() < sampling.max_tokens {
        let next = pick(&logits, sampling, &mut rng);
        if sampling.stop.contains(&next) {
            break;
        }
        generated.push(next);
        if on_token(next).is_break() || cache.len() >= context {
            break;
        }
        logits =
            last_logits(model.forward_cached(ids_tensor(&[next], 1, 1, &device), &mut cache)?)?;
    }
    Ok(generated)
}

/// The last position's logits of `[1, T, vocab]`.
fn last_logits(logits: Tensor<3>) -> Result<Vec<f32>> {
    let [_, seq_len, vocab] = logits.dims();
    logits
        .narrow(1, seq_len - 1, 1)
        .reshape([vocab])
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))
}

/// The next token under `sampling` (ties go to the lower id).
fn pick(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            })
            .0 as u32
    };
    if sampling.temperature == 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                i as u32,
                ((f64::from(v) - f64::from(max)) / sampling.temperature).exp(),
            )
        })
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    probs.iter_mut().for_each(|(_, p)| *p /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < probs.len() && (kept == 0 || mass < sampling.top_p) {
        mass += probs[kept].1;
        kept += 1;
    }
    let probs = &probs[..kept];
    // A uniform draw in [0, mass) from the top 53 bits.
    let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * mass;
    let mut cumulative = 0.0;
    for &(id, p) in probs {
        cumulative += p;
        if draw < cumulative {
            return id;
        }
    }
    probs[kept - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f64, top_p: f64, seed: u64) -> Sampling {
        Sampling {
            max_tokens: 1,
            temperature,
            top_p,
            seed,
            stop: Vec::new(),
        }
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(
            pick(&[0.1, 3.0, -1.0, 2.9], &sampling(0.0, 1.0, 0), &mut rng),
            1
        );
    }

    #[test]
    fn nucleus_never_draws_outside_the_top_p_mass() {
        // Probabilities ~ 0.64, 0.24, 0.09, 0.03: top_p 0.8 keeps the first two.
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let mut counts = [0usize; 4];
        let mut rng = SplitMix64::new(7);
        for _ in 0..2000 {
            counts[pick(&logits, &sampling(1.0, 0.8, 0), &mut rng) as usize] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        // Renormalised over the nucleus: 0.73 / 0.27.
        let share = counts[0] as f64 / 2000.0;
        assert!((share - 0.731).abs() < 0.04, "{counts:?}");
    }

    #[test]
    fn full_nucleus_samples_every_token_in_proportion() {
        let logits = [0.0f32, 0.0, (2.0f32).ln()];
        let mut counts = [0usize; 3];
        let mut rng = SplitMix64::new(11);
        for _ in 0..4000 {
            counts[pick(&logits, &sampling(1.0, 1.0, 0), &mut rng) as usize] += 1;
        }
        let share = counts[2] as f64 / 4000.0;
        assert!((share - 0.5).abs() < 0.03, "{counts:?}");
    }
}
