//! T5 span corruption, the data side (Raffel et al. 2020, §3.1.4): random spans of the input are
//! each replaced by one sentinel token (`<extra_id_0>`, `<extra_id_1>`, ...) and the decoder
//! predicts the dropped spans, each after its sentinel. Pure token arithmetic, no tensors.
//!
//! This follows T5's `random_spans_noise_mask`, `noise_span_to_unique_sentinel` and
//! `random_spans_helper` (google-research/text-to-text-transfer-transformer,
//! `t5/data/preprocessors.py`) and their numpy port in Hugging Face's `run_t5_mlm_flax.py`
//! (`FlaxDataCollatorForT5MLM`, `compute_input_and_target_lengths`):
//!
//! - [`noise_mask`]: exactly `round(length · noise_density)` noise tokens (at least 1, at most
//!   `length - 1`) in `max(1, round(noise / mean_span_length))` spans; the noise and non-noise
//!   tokens are each split into that many non-empty segments uniformly at random and interleaved
//!   starting with non-noise, so a mask always ends with a noise span. Rounding is half to even,
//!   as `tf.round` / `np.round`. One guard T5 lacks: the span count is also capped at the number
//!   of non-noise tokens (T5 would merge adjacent spans there; it takes a `noise_density` above
//!   `mean_span_length / (mean_span_length + 1)`, 0.75 for spans of 3).
//! - [`corrupt`]: inputs are the tokens with every noise span replaced by the next sentinel;
//!   targets are, for every span, its sentinel followed by its tokens. As in T5 (whose targets
//!   are the tokens with every *non*-noise span replaced by a sentinel), a final sentinel closes
//!   the targets when the sequence ends with non-noise, which never happens with a
//!   [`noise_mask`] of length 2 or more. So for T5's 512-token inputs, 568 raw tokens give
//!   targets of `85 + 28 + 1 = 114` tokens, the lengths T5 and Hugging Face use.
//! - [`input_and_target_lengths`] / [`raw_length_for_inputs`]: the lengths a loader needs to cut
//!   fixed-size examples without padding.

use std::collections::HashMap;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// How much of a sequence to corrupt and in how long spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanConfig {
    /// Share of the tokens that are noise (T5's `noise_density`).
    pub noise_density: f64,
    /// Mean length of a noise span in tokens (T5's `mean_noise_span_length`).
    pub mean_span_length: f64,
}

impl Default for SpanConfig {
    fn default() -> Self {
        Self {
            noise_density: 0.15,
            mean_span_length: 3.0,
        }
    }
}

impl SpanConfig {
    /// Checks the ranges (density in (0, 1), mean span length at least 1); errors name the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.noise_density > 0.0 && self.noise_density < 1.0,
            "span config: noise_density must be in (0, 1), got {}",
            self.noise_density
        );
        ensure!(
            self.mean_span_length.is_finite() && self.mean_span_length >= 1.0,
            "span config: mean_span_length must be at least 1, got {}",
            self.mean_span_length
        );
        Ok(())
    }
}

/// `(noise tokens, noise spans)` of a [`noise_mask`] of `length` tokens. Total for any config:
/// out-of-range values end up clamped, so the counts always describe a well-formed mask.
fn span_counts(length: usize, cfg: &SpanConfig) -> (usize, usize) {
    // T5 computes a mask of length 2 and truncates it; either way one token is not noise.
    if length < 2 {
        return (0, 0);
    }
    // `as usize` saturates (NaN gives 0), and the clamps below bring every value into range.
    let noise =
        ((length as f64 * cfg.noise_density).round_ties_even() as usize).clamp(1, length - 1);
    let spans = ((noise as f64 / cfg.mean_span_length).round_ties_even() as usize)
        .max(1)
        .min(noise)
        .min(length - noise);
    (noise, spans)
}

/// The lengths of `segments` non-empty parts of `items`, uniform over all such compositions
/// (T5's `_random_segmentation`): `segments - 1` of the `items - 1` inner boundaries, drawn
/// without replacement. Needs `1 <= segments <= items`.
fn random_segmentation(items: usize, segments: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let cuts = segments - 1;
    let mut boundaries: Vec<usize> = (1..items).collect();
    for i in 0..cuts {
        let j = i + rng.below((boundaries.len() - i) as u64) as usize;
        boundaries.swap(i, j);
    }
    boundaries.truncate(cuts);
    boundaries.sort_unstable();
    let mut lengths = Vec::with_capacity(segments);
    let mut previous = 0;
    for boundary in boundaries.into_iter().chain([items]) {
        lengths.push(boundary - previous);
        previous = boundary;
    }
    lengths
}

/// T5's random-spans noise mask over `length` tokens (`true` = noise), deterministic in `seed`;
/// see the module doc for the counts. Lengths 0 and 1 have no noise.
///
/// `cfg` should have passed [`SpanConfig::validate`]; other values are clamped into a
/// well-formed mask rather than rejected.
pub fn noise_mask(length: usize, cfg: &SpanConfig, seed: u64) -> Vec<bool> {
    let mut mask = vec![false; length];
    let (noise, spans) = span_counts(length, cfg);
    if spans == 0 {
        return mask;
    }
    let mut rng = SplitMix64::new(seed);
    let noise_lengths = random_segmentation(noise, spans, &mut rng);
    let kept_lengths = random_segmentation(length - noise, spans, &mut rng);
    let mut position = 0;
    for (kept, noise) in kept_lengths.into_iter().zip(noise_lengths) {
        position += kept;
        mask[position..position + noise].fill(true);
        position += noise;
    }
    mask
}

/// Sentinel id -> its index, after checking that the sentinels are distinct and not `eos`.
fn sentinel_index(sentinels: &[u32], eos: Option<u32>) -> Result<HashMap<u32, usize>> {
    let mut index = HashMap::with_capacity(sentinels.len());
    for (k, &id) in sentinels.iter().enumerate() {
        if let Some(first) = index.insert(id, k) {
            bail!("sentinels {first} and {k} are the same id {id}");
        }
    }
    if let Some(eos) = eos {
        ensure!(
            !index.contains_key(&eos),
            "eos {eos} is also a sentinel (sentinel {})",
            index[&eos]
        );
    }
    Ok(index)
}

/// Span-corrupts `tokens` by `mask` (`true` = noise, any pattern; usually a [`noise_mask`]) and
/// returns `(inputs, targets)`:
///
/// - inputs: the tokens with the k-th noise span replaced by `sentinels[k]`, then `eos`;
/// - targets: `sentinels[k]` followed by the k-th span's tokens, for every span in order, then
///   the next sentinel when the last token is not noise, then `eos`.
///
/// `sentinels[0]` is `<extra_id_0>` (in T5's vocabulary the highest id, counting down). Errors
/// if `mask` and `tokens` differ in length, if there are fewer sentinels than the targets need,
/// if the sentinels repeat or include `eos`, or if a token is itself a sentinel (the result
/// could not be undone by [`reconstruct`]).
pub fn corrupt(
    tokens: &[u32],
    mask: &[bool],
    sentinels: &[u32],
    eos: Option<u32>,
) -> Result<(Vec<u32>, Vec<u32>)> {
    ensure!(
        mask.len() == tokens.len(),
        "corrupt: mask has {} flags for {} tokens",
        mask.len(),
        tokens.len()
    );
    let index = sentinel_index(sentinels, eos).context("corrupt")?;
    if let Some(position) = tokens.iter().position(|token| index.contains_key(token)) {
        bail!(
            "corrupt: token {} at position {position} is a sentinel id",
            tokens[position]
        );
    }
    let spans = mask
        .iter()
        .enumerate()
        .filter(|&(i, &noise)| noise && (i == 0 || !mask[i - 1]))
        .count();
    let closing = mask.last() == Some(&false);
    let needed = spans + usize::from(closing);
    ensure!(
        needed <= sentinels.len(),
        "corrupt: {spans} noise spans{} need {needed} sentinels, only {} given",
        if closing {
            " and a closing sentinel"
        } else {
            ""
        },
        sentinels.len()
    );

    let noise = mask.iter().filter(|&&noise| noise).count();
    let mut inputs = Vec::with_capacity(tokens.len() - noise + spans + 1);
    let mut targets = Vec::with_capacity(noise + needed + 1);
    let mut next = sentinels.iter().copied();
    let mut in_span = false;
    for (&token, &is_noise) in tokens.iter().zip(mask) {
        if is_noise {
            if !in_span {
                // Counted above: there is a sentinel for every span.
                let sentinel = next.next().context("corrupt: sentinels ran out")?;
                inputs.push(sentinel);
                targets.push(sentinel);
            }
            targets.push(token);
        } else {
            inputs.push(token);
        }
        in_span = is_noise;
    }
    if closing {
        targets.push(next.next().context("corrupt: sentinels ran out")?);
    }
    if let Some(eos) = eos {
        inputs.push(eos);
        targets.push(eos);
    }
    Ok((inputs, targets))
}

/// `sequence` without its final `eos` (which must be there), or as is without `eos`.
fn strip_eos<'a>(sequence: &'a [u32], eos: Option<u32>, what: &str) -> Result<&'a [u32]> {
    match (eos, sequence.split_last()) {
        (None, _) => Ok(sequence),
        (Some(eos), Some((&last, rest))) if last == eos => Ok(rest),
        (Some(eos), _) => bail!("reconstruct: {what} do not end with eos {eos}"),
    }
}

/// The inverse of [`corrupt`]: the original tokens from `(inputs, targets)` and the same
/// `sentinels` and `eos`. A closing sentinel at the end of the targets (one with no tokens after
/// it) is accepted whether or not the inputs end with non-noise. Errors if the two do not fit
/// together: a missing `eos`, targets that do not start with a sentinel, sentinels out of order,
/// an empty span before the last sentinel, or spans without their sentinel in the inputs (or the
/// other way round).
pub fn reconstruct(
    inputs: &[u32],
    targets: &[u32],
    sentinels: &[u32],
    eos: Option<u32>,
) -> Result<Vec<u32>> {
    let index = sentinel_index(sentinels, eos).context("reconstruct")?;
    let inputs = strip_eos(inputs, eos, "inputs")?;
    let mut rest = strip_eos(targets, eos, "targets")?;

    // The targets: sentinel k, then span k up to the next sentinel.
    let mut spans: Vec<&[u32]> = Vec::new();
    while let Some((&first, tail)) = rest.split_first() {
        let Some(&k) = index.get(&first) else {
            bail!("reconstruct: targets start with token {first}, not a sentinel");
        };
        ensure!(
            k == spans.len(),
            "reconstruct: targets have sentinel {k} where sentinel {} belongs",
            spans.len()
        );
        let end = tail
            .iter()
            .position(|token| index.contains_key(token))
            .unwrap_or(tail.len());
        let (span, after) = tail.split_at(end);
        if span.is_empty() {
            ensure!(
                after.is_empty(),
                "reconstruct: sentinel {k} in the targets has no tokens"
            );
        } else {
            spans.push(span);
        }
        rest = after;
    }

    let noise: usize = spans.iter().map(|span| span.len()).sum();
    let mut tokens = Vec::with_capacity(inputs.len() + noise);
    let mut used = 0;
    for &token in inputs {
        match index.get(&token) {
            None => tokens.push(token),
            Some(&k) => {
                ensure!(
                    k == used,
                    "reconstruct: inputs have sentinel {k} where sentinel {used} belongs"
                );
                let span = spans.get(k).with_context(|| {
                    format!("reconstruct: inputs have sentinel {k}, the targets no span {k}")
                })?;
                tokens.extend_from_slice(span);
                used += 1;
            }
        }
    }
    ensure!(
        used == spans.len(),
        "reconstruct: targets have {} spans, inputs only {used} sentinels",
        spans.len()
    );
    Ok(tokens)
}

/// `(inputs, targets)` lengths, each with its `eos` (one fewer each without), that [`corrupt`]
/// gives for `raw_length` tokens and their [`noise_mask`]: the non-noise tokens plus a sentinel
/// per span, and the noise tokens plus a sentinel per span (plus the closing sentinel of a
/// mask without noise, i.e. of a single token).
pub fn input_and_target_lengths(raw_length: usize, cfg: &SpanConfig) -> (usize, usize) {
    let (noise, spans) = span_counts(raw_length, cfg);
    let closing = usize::from(spans == 0 && raw_length > 0);
    let inputs = (raw_length - noise + spans).saturating_add(1);
    let targets = (noise + spans + closing).saturating_add(1);
    (inputs, targets)
}

/// The largest raw length whose inputs (with `eos`) are at most `inputs_length` tokens, as T5's
/// `random_spans_helper` / Hugging Face's `compute_input_and_target_lengths` find it; for
/// T5's defaults `512 -> 568`. Cut the raw stream into pieces of this length and every example
/// has inputs of exactly (for all but degenerate configs) `inputs_length` tokens and targets of
/// `input_and_target_lengths(raw, cfg).1`. Returns 0 for an `inputs_length` of 0, which nothing
/// fits (even empty inputs hold an `eos`).
///
/// Differs from T5's formula only where that one omits the clamps its own mask applies: raw
/// lengths so short that `round(noise / mean_span_length)` is 0 (below about
/// `mean_span_length / (2 · noise_density)`, 10 tokens for the defaults) and the span cap of the
/// module doc; this one always agrees with [`noise_mask`]. T5's adjustment for a density of
/// exactly 0.5 (one raw token fewer so that targets are not longer than inputs) is not made.
pub fn raw_length_for_inputs(inputs_length: usize, cfg: &SpanConfig) -> usize {
    let fits = |raw: usize| input_and_target_lengths(raw, cfg).0 <= inputs_length;
    // Every noise span has a token and becomes one sentinel, so inputs hold at most raw + 1
    // tokens: `inputs_length - 1` fits. The inputs length never decreases as raw grows, so
    // gallop to a length that does not fit and bisect between the two.
    let Some(mut low) = inputs_length.checked_sub(1) else {
        return 0;
    };
    let mut step = 1usize;
    let mut high = loop {
        let candidate = low.saturating_add(step);
        if candidate == low {
            return low;
        }
        if !fits(candidate) {
            break candidate;
        }
        low = candidate;
        step = step.saturating_mul(2);
    };
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    const EOS: u32 = 1;

    /// T5's layout: `<extra_id_k>` is `32099 - k`.
    fn sentinels(count: usize) -> Vec<u32> {
        (0..count as u32).map(|k| 32_099 - k).collect()
    }

    /// Spans as (start, length) runs of `true`.
    fn runs(mask: &[bool]) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (i, &noise) in mask.iter().enumerate() {
            match runs.last_mut() {
                Some((start, len)) if noise && *start + *len == i => *len += 1,
                _ if noise => runs.push((i, 1)),
                _ => {}
            }
        }
        runs
    }

    fn random_tokens(len: usize, rng: &mut SplitMix64) -> Vec<u32> {
        // Small ids, eos among them: an eos inside the text must survive too.
        (0..len).map(|_| rng.below(1_000) as u32).collect()
    }

    #[test]
    fn the_papers_example() {
        // "Thank you for inviting me to your party last week ."
        let tokens: Vec<u32> = (10..21).collect();
        let mask = [
            false, false, true, true, false, false, false, false, true, false, false,
        ];
        let (inputs, targets) = corrupt(&tokens, &mask, &sentinels(3), Some(EOS)).expect("ok");
        // "Thank you <X> me to your party <Y> week ." / "<X> for inviting <Y> last <Z>"
        assert_eq!(
            inputs,
            [10, 11, 32_099, 14, 15, 16, 17, 32_098, 19, 20, EOS]
        );
        assert_eq!(targets, [32_099, 12, 13, 32_098, 18, 32_097, EOS]);
        assert_eq!(
            reconstruct(&inputs, &targets, &sentinels(3), Some(EOS)).expect("ok"),
            tokens
        );
    }

    #[test]
    fn noise_masks_end_with_noise_and_hf_shaped_targets_have_no_closing_sentinel() {
        let cfg = SpanConfig::default();
        let mask = noise_mask(568, &cfg, 3);
        assert!(!mask[0] && mask[567]);
        let tokens: Vec<u32> = (100..668).collect();
        let (inputs, targets) = corrupt(&tokens, &mask, &sentinels(100), Some(EOS)).expect("ok");
        assert_eq!((inputs.len(), targets.len()), (512, 114));
        // The last span's tokens, then eos, as Hugging Face's collator gives them.
        assert_eq!(targets[targets.len() - 2..], [667, EOS]);
    }

    #[test]
    fn corrupt_then_reconstruct_is_the_identity() {
        let mut rng = SplitMix64::new(2024);
        let all_sentinels = sentinels(300);
        let mut cases = 0;
        for case in 0..3_000u64 {
            let len = rng.below(300) as usize;
            let tokens = random_tokens(len, &mut rng);
            let eos = (case % 3 != 0).then_some(EOS);
            // T5 masks over random configs, and arbitrary masks (also starting with noise).
            let mask = if case % 2 == 0 {
                let cfg = SpanConfig {
                    noise_density: 0.02 + 0.96 * rng.next_unit(),
                    mean_span_length: 1.0 + 9.0 * rng.next_unit(),
                };
                noise_mask(len, &cfg, case)
            } else {
                let p = rng.next_unit();
                (0..len).map(|_| rng.next_unit() < p).collect()
            };
            let (inputs, targets) =
                corrupt(&tokens, &mask, &all_sentinels, eos).expect("enough sentinels");
            let noise = mask.iter().filter(|&&m| m).count();
            let spans = runs(&mask).len();
            let with_eos = usize::from(eos.is_some());
            assert_eq!(inputs.len(), len - noise + spans + with_eos, "case {case}");
            let closing = usize::from(mask.last() == Some(&false));
            assert_eq!(targets.len(), noise + spans + closing + with_eos);
            let back = reconstruct(&inputs, &targets, &all_sentinels, eos).expect("reconstructs");
            assert_eq!(back, tokens, "case {case}: mask {mask:?}");
            cases += 1;
        }
        assert_eq!(cases, 3_000);
    }

    #[test]
    fn noise_rate_and_mean_span_length_over_a_million_tokens() {
        let cfg = SpanConfig::default();
        let mut rng = SplitMix64::new(7);
        let (mut tokens, mut noise, mut spans) = (0usize, 0usize, 0usize);
        let mut seed = 0;
        while tokens < 1_000_000 {
            let len = 64 + rng.below(961) as usize;
            let mask = noise_mask(len, &cfg, seed);
            let runs = runs(&mask);
            let mask_noise = mask.iter().filter(|&&m| m).count();
            assert_eq!(
                (mask_noise, runs.len()),
                span_counts(len, &cfg),
                "seed {seed}"
            );
            assert!(
                !mask[0] && mask[len - 1],
                "seed {seed}: starts with non-noise, ends in noise"
            );
            tokens += len;
            noise += mask_noise;
            spans += runs.len();
            seed += 1;
        }
        let rate = noise as f64 / tokens as f64;
        let mean_span = noise as f64 / spans as f64;
        eprintln!(
            "span corruption: {tokens} tokens in {seed} masks, noise rate {rate:.5} (want {}), \
             mean span length {mean_span:.4} (want {})",
            cfg.noise_density, cfg.mean_span_length
        );
        assert!(
            (rate - cfg.noise_density).abs() <= 0.005,
            "noise rate {rate}"
        );
        assert!(
            (mean_span - cfg.mean_span_length).abs() <= 0.1,
            "mean span {mean_span}"
        );
    }

    #[test]
    fn masks_vary_with_the_seed_over_every_position() {
        // Uniform over the masks with the given counts: any position but the first (always
        // non-noise) and the last (always noise) may go either way.
        let cfg = SpanConfig::default();
        let mut hits = [0usize; 100];
        let mut distinct = std::collections::HashSet::new();
        for seed in 0..2_000 {
            let mask = noise_mask(100, &cfg, seed);
            for (hit, &noise) in hits.iter_mut().zip(&mask) {
                *hit += usize::from(noise);
            }
            distinct.insert(mask);
        }
        assert_eq!((hits[0], hits[99]), (0, 2_000));
        assert!(hits[1..99].iter().all(|&h| h > 0 && h < 2_000), "{hits:?}");
        assert!(distinct.len() > 1_990, "{} distinct masks", distinct.len());
    }

    #[test]
    fn short_masks() {
        let cfg = SpanConfig::default();
        assert!(noise_mask(0, &cfg, 1).is_empty());
        assert_eq!(noise_mask(1, &cfg, 1), [false]);
        assert_eq!(noise_mask(2, &cfg, 1), [false, true]);
        // At least one noise token, at most length - 1, whatever the density.
        let dense = SpanConfig {
            noise_density: 0.99,
            mean_span_length: 1.0,
        };
        for len in 2..50 {
            let mask = noise_mask(len, &dense, len as u64);
            let noise = mask.iter().filter(|&&m| m).count();
            assert_eq!(noise, len - 1);
            // Capped at the one non-noise token: a single span.
            assert_eq!(runs(&mask), [(1, len - 1)]);
            let sparse = noise_mask(len, &SpanConfig::default(), len as u64);
            assert!(sparse.iter().filter(|&&m| m).count() >= 1);
        }
    }

    #[test]
    fn lengths_match_input_and_target_lengths() {
        let configs = [
            SpanConfig::default(),
            SpanConfig {
                noise_density: 0.5,
                mean_span_length: 8.0,
            },
            SpanConfig {
                noise_density: 0.3,
                mean_span_length: 1.0,
            },
            SpanConfig {
                noise_density: 0.9,
                mean_span_length: 1.5,
            },
        ];
        let all_sentinels = sentinels(1_000);
        for cfg in &configs {
            for raw in 0..=1_200usize {
                let tokens: Vec<u32> = (0..raw as u32).map(|t| t + 2).collect();
                let mask = noise_mask(raw, cfg, raw as u64);
                let (inputs, targets) =
                    corrupt(&tokens, &mask, &all_sentinels, Some(EOS)).expect("ok");
                let expected = input_and_target_lengths(raw, cfg);
                assert_eq!((inputs.len(), targets.len()), expected, "{cfg:?} raw {raw}");
                let (inputs, targets) = corrupt(&tokens, &mask, &all_sentinels, None).expect("ok");
                assert_eq!((inputs.len() + 1, targets.len() + 1), expected);
            }
        }
    }

    #[test]
    fn raw_length_for_inputs_is_the_largest_that_fits() {
        let cfg = SpanConfig::default();
        // T5's and Hugging Face's numbers for 512-token inputs.
        assert_eq!(raw_length_for_inputs(512, &cfg), 568);
        assert_eq!(input_and_target_lengths(568, &cfg), (512, 114));
        assert_eq!(raw_length_for_inputs(0, &cfg), 0);
        assert_eq!(raw_length_for_inputs(1, &cfg), 0);
        for cfg in [
            cfg,
            SpanConfig {
                noise_density: 0.5,
                mean_span_length: 3.0,
            },
            SpanConfig {
                noise_density: 0.3,
                mean_span_length: 1.0,
            },
        ] {
            let inputs = |raw| input_and_target_lengths(raw, &cfg).0;
            for target in 1..=2_000 {
                let raw = raw_length_for_inputs(target, &cfg);
                assert!(inputs(raw) <= target, "{cfg:?} {target}: {raw}");
                // Largest: no longer raw length fits (the inputs never shrink).
                assert!(
                    (raw + 1..raw + 50).all(|longer| inputs(longer) > target),
                    "{cfg:?} {target}: {raw}"
                );
                // No padding needed once the span counts are past their clamps.
                if target >= 16 {
                    assert_eq!(inputs(raw), target, "{cfg:?} {target}: {raw}");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_mask_and_seeds_differ() {
        let cfg = SpanConfig::default();
        assert_eq!(noise_mask(512, &cfg, 5), noise_mask(512, &cfg, 5));
        assert_ne!(noise_mask(512, &cfg, 5), noise_mask(512, &cfg, 6));
    }

    #[test]
    fn too_few_sentinels_and_bad_inputs_error() {
        let tokens = [5, 6, 7, 8, 9];
        // Two spans, ending in noise: two sentinels are enough, one is not.
        let mask = [false, true, false, true, true];
        assert!(corrupt(&tokens, &mask, &sentinels(2), Some(EOS)).is_ok());
        let err = corrupt(&tokens, &mask, &sentinels(1), Some(EOS)).unwrap_err();
        assert!(err.to_string().contains("need 2 sentinels"), "{err}");
        // Ending with non-noise needs the closing sentinel too.
        let mask = [false, true, false, true, false];
        let err = corrupt(&tokens, &mask, &sentinels(2), None).unwrap_err();
        assert!(err.to_string().contains("need 3 sentinels"), "{err}");

        let err = corrupt(&tokens, &[true; 4], &sentinels(3), None).unwrap_err();
        assert!(err.to_string().contains("mask has 4 flags"), "{err}");
        let err = corrupt(&[5, 32_098], &[false, true], &sentinels(3), None).unwrap_err();
        assert!(err.to_string().contains("is a sentinel"), "{err}");
        let err = corrupt(&tokens, &[false; 5], &[40, 41, 40], None).unwrap_err();
        assert!(format!("{err:#}").contains("same id 40"), "{err:#}");
        let err = corrupt(&tokens, &[false; 5], &[40, 41], Some(41)).unwrap_err();
        assert!(format!("{err:#}").contains("eos 41"), "{err:#}");
    }

    #[test]
    fn reconstruct_rejects_what_corrupt_cannot_give() {
        let s = sentinels(3);
        let (a, b) = (s[0], s[1]);
        let check = |inputs: &[u32], targets: &[u32], eos, want: &str| {
            let err = reconstruct(inputs, targets, &s, eos).expect_err(want);
            assert!(format!("{err:#}").contains(want), "{err:#}, want {want}");
        };
        check(&[5, a], &[a, 6], Some(EOS), "inputs do not end with eos");
        check(
            &[5, a, EOS],
            &[a, 6],
            Some(EOS),
            "targets do not end with eos",
        );
        check(&[5, a], &[6, a, 7], None, "not a sentinel");
        check(
            &[5, a, 6, b],
            &[b, 6, a, 7],
            None,
            "sentinel 1 where sentinel 0",
        );
        check(&[5, a, 6, b], &[a, b, 7], None, "has no tokens");
        check(
            &[5, b, 6, a],
            &[a, 6, b, 7],
            None,
            "sentinel 1 where sentinel 0",
        );
        check(&[5, a, 6, b], &[a, 7], None, "the targets no span 1");
        check(&[5, a, 6], &[a, 7, b, 8], None, "2 spans, inputs only 1");
        // The closing sentinel is optional.
        assert_eq!(
            reconstruct(&[5, a, 6], &[a, 7, b], &s, None).expect("ok"),
            [5, 7, 6]
        );
        assert_eq!(
            reconstruct(&[5, a, 6], &[a, 7], &s, None).expect("ok"),
            [5, 7, 6]
        );
        assert_eq!(reconstruct(&[5, 6], &[a], &s, None).expect("ok"), [5, 6]);
    }

    #[test]
    fn config_defaults_serde_and_validation() {
        let cfg: SpanConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(cfg, SpanConfig::default());
        assert_eq!((cfg.noise_density, cfg.mean_span_length), (0.15, 3.0));
        cfg.validate().expect("defaults are valid");
        let back: SpanConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).expect("ser")).expect("de");
        assert_eq!(back, cfg);
        let unknown = serde_json::from_str::<SpanConfig>(r#"{"mean_noise_span_length": 3}"#);
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("mean_noise_span_length")
        );
        for (cfg, field) in [
            (r#"{"noise_density": 0.0}"#, "noise_density"),
            (r#"{"noise_density": 1.0}"#, "noise_density"),
            (r#"{"mean_span_length": 0.5}"#, "mean_span_length"),
        ] {
            let cfg: SpanConfig = serde_json::from_str(cfg).expect("parses");
            let err = cfg.validate().expect_err("invalid").to_string();
            assert!(err.contains(field), "{err}");
        }
        let nan = SpanConfig {
            noise_density: f64::NAN,
            ..SpanConfig::default()
        };
        assert!(nan.validate().is_err());
        let infinite = SpanConfig {
            mean_span_length: f64::INFINITY,
            ..SpanConfig::default()
        };
        assert!(infinite.validate().is_err());
    }
}
