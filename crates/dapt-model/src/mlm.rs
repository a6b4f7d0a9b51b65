//! BERT-style masked language modelling, the data side (Devlin et al. 2019): which positions a
//! masked-LM loss is taken on and what the encoder sees there. Pure token arithmetic, no tensors.
//!
//! The recipe is Hugging Face's `DataCollatorForLanguageModeling` (`torch_mask_tokens`): every
//! non-special token is chosen independently with probability `mask_prob`; a chosen token gets
//! its original id as label (all others get [`IGNORE_INDEX`]) and its input becomes the mask
//! token with probability `mask_token_ratio` (80%), a random token with probability
//! `random_token_ratio` (10%), and stays unchanged otherwise (10%). Two deliberate differences:
//! random replacements are drawn from the non-special ids only (Hugging Face draws from the
//! whole vocabulary, `[CLS]` and `[MASK]` included), and the draws come from our seeded
//! `SplitMix64`, so a batch is a pure function of its tokens and seed.
//!
//! With `whole_word` the unit of choice is a word, as in `DataCollatorForWholeWordMask`: every
//! word is chosen with probability `mask_prob` (so the expected share of chosen tokens is still
//! `mask_prob`; Hugging Face instead picks words until `round(mask_prob · len)` tokens are
//! reached), all its tokens get labels, and each of them gets the 80/10/10 treatment on its own.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Label of the positions the loss ignores (PyTorch's and Hugging Face's convention).
pub const IGNORE_INDEX: i64 = -100;

/// How many tokens to choose and what to put in their place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlmConfig {
    /// Probability that a non-special token (or, with `whole_word`, a word) is chosen.
    pub mask_prob: f64,
    /// Share of the chosen tokens whose input becomes the mask token.
    pub mask_token_ratio: f64,
    /// Share of the chosen tokens whose input becomes a random non-special token; the rest of
    /// the chosen tokens (`1 - mask_token_ratio - random_token_ratio`) keep their input.
    pub random_token_ratio: f64,
    /// Choose whole words (needs the `word_start` flags) instead of single tokens.
    pub whole_word: bool,
}

impl Default for MlmConfig {
    fn default() -> Self {
        Self {
            mask_prob: 0.15,
            mask_token_ratio: 0.8,
            random_token_ratio: 0.1,
            whole_word: false,
        }
    }
}

impl MlmConfig {
    /// Checks the probabilities and that the two ratios sum to at most 1; errors name the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.mask_prob > 0.0 && self.mask_prob <= 1.0,
            "mlm config: mask_prob must be in (0, 1], got {}",
            self.mask_prob
        );
        ensure!(
            (0.0..=1.0).contains(&self.mask_token_ratio),
            "mlm config: mask_token_ratio must be in [0, 1], got {}",
            self.mask_token_ratio
        );
        ensure!(
            (0.0..=1.0).contains(&self.random_token_ratio),
            "mlm config: random_token_ratio must be in [0, 1], got {}",
            self.random_token_ratio
        );
        // A little slack for decimal ratios whose binary sum rounds up past 1.
        ensure!(
            self.mask_token_ratio + self.random_token_ratio <= 1.0 + 1e-9,
            "mlm config: mask_token_ratio + random_token_ratio must be at most 1, got {} + {}",
            self.mask_token_ratio,
            self.random_token_ratio
        );
        Ok(())
    }
}

/// The ids masking needs from the tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlmVocab {
    /// The mask token (`[MASK]`). It is never chosen nor drawn as a random replacement either.
    pub mask_id: u32,
    /// Ids are `0..vocab_size`; random replacements are drawn from this range.
    pub vocab_size: u32,
    /// Ids never chosen and never drawn as random replacements (`[CLS]`, `[SEP]`, `[PAD]`, ...).
    pub special: Vec<u32>,
}

impl MlmVocab {
    /// Checks that the mask id is in the vocabulary and that some id is left to draw.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.mask_id < self.vocab_size,
            "mlm vocab: mask_id {} is outside the vocabulary of {} ids",
            self.mask_id,
            self.vocab_size
        );
        ensure!(
            Replacements::new(self).choices > 0,
            "mlm vocab: all {} ids are special, none is left to draw as a random replacement",
            self.vocab_size
        );
        Ok(())
    }

    /// The special ids and the mask id, sorted and deduplicated.
    fn never_chosen(&self) -> Vec<u32> {
        let mut ids = self.special.clone();
        ids.push(self.mask_id);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// One masked sequence: what the encoder reads and what the loss predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The tokens with the chosen positions replaced (mask, random) or kept.
    pub inputs: Vec<u32>,
    /// The original id at chosen positions, [`IGNORE_INDEX`] elsewhere.
    pub labels: Vec<i64>,
}

impl Masked {
    /// 1 where a position is predicted, 0 elsewhere: the weights of a masked-token loss.
    pub fn weights(&self) -> impl Iterator<Item = f32> + '_ {
        self.labels
            .iter()
            .map(|&label| if label == IGNORE_INDEX { 0.0 } else { 1.0 })
    }
}

/// Uniform draws from the ids in `0..vocab_size` that are neither special nor the mask.
struct Replacements {
    /// The excluded ids below `vocab_size`, sorted.
    excluded: Vec<u32>,
    choices: u64,
}

impl Replacements {
    fn new(vocab: &MlmVocab) -> Self {
        let mut excluded = vocab.never_chosen();
        excluded.retain(|&id| id < vocab.vocab_size);
        let choices = u64::from(vocab.vocab_size) - excluded.len() as u64;
        Self { excluded, choices }
    }

    fn draw(&self, rng: &mut SplitMix64) -> u32 {
        // The rank among the allowed ids, then skip every excluded id at or below it.
        let mut id = rng.below(self.choices) as u32;
        for &excluded in &self.excluded {
            if excluded > id {
                break;
            }
            id += 1;
        }
        id
    }
}

/// Chooses positions of `tokens` for a masked-LM loss and replaces their inputs, as described in
/// the module doc. Deterministic in `seed`.
///
/// `word_start[i]` (same length as `tokens`) is true where a word begins and false where a token
/// continues the previous one (a WordPiece `##` piece, a byte-level piece without a leading
/// space); it is needed with `cfg.whole_word` and ignored otherwise. A word is a run of
/// non-special tokens: a special token ends the current word, and the first token of the
/// sequence or after a special token begins one whatever its flag says.
///
/// # Panics
/// If `cfg` or `vocab` fails its `validate` (check both once, where they are loaded), if
/// `word_start` is given with a different length than `tokens`, or if `cfg.whole_word` is set and
/// `word_start` is not given.
pub fn mask_tokens(
    tokens: &[u32],
    word_start: Option<&[bool]>,
    cfg: &MlmConfig,
    vocab: &MlmVocab,
    seed: u64,
) -> Masked {
    if let Err(err) = cfg.validate().and_then(|()| vocab.validate()) {
        panic!("mask_tokens: {err:#}");
    }
    if let Some(starts) = word_start {
        assert_eq!(
            starts.len(),
            tokens.len(),
            "mask_tokens: word_start has {} flags for {} tokens",
            starts.len(),
            tokens.len()
        );
    }
    let word_start = match (cfg.whole_word, word_start) {
        (true, None) => panic!("mask_tokens: whole_word masking needs the word_start flags"),
        (true, Some(starts)) => Some(starts),
        (false, _) => None,
    };

    let never_chosen = vocab.never_chosen();
    let replacements = Replacements::new(vocab);
    let keep_threshold = cfg.mask_token_ratio + cfg.random_token_ratio;
    let mut rng = SplitMix64::new(seed);
    let mut inputs = tokens.to_vec();
    let mut labels = vec![IGNORE_INDEX; tokens.len()];
    // Whether the current unit (token or word) is chosen; a special token ends a word.
    let mut chosen = false;
    let mut after_boundary = true;
    for (i, &token) in tokens.iter().enumerate() {
        if never_chosen.binary_search(&token).is_ok() {
            after_boundary = true;
            continue;
        }
        // With every flag true the draws are exactly those of token-level masking.
        let starts_unit = word_start.is_none_or(|starts| starts[i] || after_boundary);
        after_boundary = false;
        if starts_unit {
            chosen = rng.next_unit() < cfg.mask_prob;
        }
        if !chosen {
            continue;
        }
        labels[i] = i64::from(token);
        let treatment = rng.next_unit();
        if treatment < cfg.mask_token_ratio {
            inputs[i] = vocab.mask_id;
        } else if treatment < keep_threshold {
            inputs[i] = replacements.draw(&mut rng);
        }
    }
    Masked { inputs, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BERT's layout: `[PAD]` 0, `[UNK]` 100, `[CLS]` 101, `[SEP]` 102, `[MASK]` 103.
    fn bert_vocab() -> MlmVocab {
        MlmVocab {
            mask_id: 103,
            vocab_size: 30_522,
            special: vec![0, 100, 101, 102],
        }
    }

    /// `[CLS]`, `len - 2` uniform ids (specials included, rarely), `[SEP]`; and word starts with
    /// probability `start_prob` (the first token always starts one).
    fn sequence(len: usize, start_prob: f64, seed: u64) -> (Vec<u32>, Vec<bool>) {
        let mut rng = SplitMix64::new(seed ^ 0xA5A5);
        let mut tokens = vec![101];
        tokens.extend((2..len).map(|_| rng.below(30_522) as u32));
        tokens.push(102);
        let starts = (0..len)
            .map(|i| i == 0 || rng.next_unit() < start_prob)
            .collect();
        (tokens, starts)
    }

    /// Word index of every non-special position under `mask_tokens`' rules (None for specials).
    fn words(tokens: &[u32], starts: &[bool], vocab: &MlmVocab) -> Vec<Option<usize>> {
        let never = vocab.never_chosen();
        let mut word = None;
        let mut next = 0;
        tokens
            .iter()
            .zip(starts)
            .map(|(token, &start)| {
                if never.contains(token) {
                    word = None;
                    return None;
                }
                if start || word.is_none() {
                    word = Some(next);
                    next += 1;
                }
                word
            })
            .collect()
    }

    #[derive(Default, Debug)]
    struct Counts {
        eligible: usize,
        chosen: usize,
        masked: usize,
        random: usize,
        kept: usize,
    }

    impl Counts {
        /// Counts one sequence and checks what holds for every output.
        fn add(&mut self, tokens: &[u32], out: &Masked, vocab: &MlmVocab) {
            let never = vocab.never_chosen();
            assert_eq!(out.inputs.len(), tokens.len());
            assert_eq!(out.labels.len(), tokens.len());
            for ((&token, &input), &label) in tokens.iter().zip(&out.inputs).zip(&out.labels) {
                if never.contains(&token) {
                    assert_eq!(
                        (input, label),
                        (token, IGNORE_INDEX),
                        "special {token} chosen"
                    );
                    continue;
                }
                self.eligible += 1;
                if label == IGNORE_INDEX {
                    assert_eq!(input, token, "unchosen position changed");
                    continue;
                }
                assert_eq!(label, i64::from(token), "label is not the original id");
                self.chosen += 1;
                if input == vocab.mask_id {
                    self.masked += 1;
                } else if input == token {
                    self.kept += 1;
                } else {
                    assert!(
                        !never.contains(&input),
                        "random replacement {input} is special"
                    );
                    assert!(input < vocab.vocab_size);
                    self.random += 1;
                }
            }
        }

        fn rates(&self) -> [f64; 4] {
            let chosen = self.chosen as f64;
            [
                chosen / self.eligible as f64,
                self.masked as f64 / chosen,
                self.random as f64 / chosen,
                self.kept as f64 / chosen,
            ]
        }

        fn assert_rates(&self, cfg: &MlmConfig, what: &str) {
            let [chosen, masked, random, kept] = self.rates();
            eprintln!(
                "{what}: {} eligible tokens, chosen {chosen:.5} (want {}), of the chosen: \
                 mask {masked:.5}, random {random:.5}, kept {kept:.5}",
                self.eligible, cfg.mask_prob
            );
            let keep = 1.0 - cfg.mask_token_ratio - cfg.random_token_ratio;
            for (name, got, want) in [
                ("chosen", chosen, cfg.mask_prob),
                ("mask", masked, cfg.mask_token_ratio),
                ("random", random, cfg.random_token_ratio),
                ("kept", kept, keep),
            ] {
                assert!(
                    (got - want).abs() <= 0.005,
                    "{what}: {name} rate {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn token_rates_over_a_million_tokens_match_the_config() {
        let cfg = MlmConfig::default();
        let vocab = bert_vocab();
        let mut counts = Counts::default();
        for seed in 0..2_000 {
            let (tokens, _) = sequence(512, 1.0, seed);
            counts.add(
                &tokens,
                &mask_tokens(&tokens, None, &cfg, &vocab, seed),
                &vocab,
            );
        }
        assert!(counts.eligible >= 1_000_000, "{counts:?}");
        counts.assert_rates(&cfg, "token-level");
    }

    #[test]
    fn whole_words_are_all_or_nothing_and_rates_hold_over_a_million_tokens() {
        let cfg = MlmConfig {
            whole_word: true,
            ..MlmConfig::default()
        };
        let vocab = bert_vocab();
        let mut counts = Counts::default();
        let mut multi_token_words_chosen = 0;
        for seed in 0..2_000 {
            // Mean word length 2.
            let (tokens, starts) = sequence(512, 0.5, seed);
            let out = mask_tokens(&tokens, Some(&starts), &cfg, &vocab, seed);
            counts.add(&tokens, &out, &vocab);
            let words = words(&tokens, &starts, &vocab);
            for i in 1..tokens.len() {
                if words[i].is_some() && words[i] == words[i - 1] {
                    let (this, previous) = (out.labels[i], out.labels[i - 1]);
                    assert_eq!(
                        this == IGNORE_INDEX,
                        previous == IGNORE_INDEX,
                        "seed {seed}: word split at position {i}"
                    );
                    multi_token_words_chosen += usize::from(this != IGNORE_INDEX);
                }
            }
        }
        assert!(counts.eligible >= 1_000_000, "{counts:?}");
        assert!(
            multi_token_words_chosen > 10_000,
            "{multi_token_words_chosen}"
        );
        counts.assert_rates(&cfg, "whole-word");
    }

    #[test]
    fn whole_word_with_every_token_a_word_is_token_level_masking() {
        let vocab = bert_vocab();
        let (tokens, _) = sequence(300, 1.0, 5);
        let starts = vec![true; tokens.len()];
        let token_level = MlmConfig::default();
        let whole_word = MlmConfig {
            whole_word: true,
            ..MlmConfig::default()
        };
        assert_eq!(
            mask_tokens(&tokens, Some(&starts), &whole_word, &vocab, 9),
            mask_tokens(&tokens, None, &token_level, &vocab, 9)
        );
    }

    #[test]
    fn a_word_start_flag_after_a_special_token_is_not_needed() {
        // `[CLS] ##a ##b [SEP] ##c`: both runs are words of their own although no flag says so.
        let vocab = bert_vocab();
        let cfg = MlmConfig {
            whole_word: true,
            mask_prob: 0.5,
            ..MlmConfig::default()
        };
        let tokens = [101, 2000, 2001, 102, 2002];
        let starts = [false; 5];
        let mut seen = [false; 2];
        for seed in 0..200 {
            let out = mask_tokens(&tokens, Some(&starts), &cfg, &vocab, seed);
            let chosen: Vec<bool> = out.labels.iter().map(|&l| l != IGNORE_INDEX).collect();
            assert_eq!(chosen[1], chosen[2], "seed {seed}");
            assert!(!chosen[0] && !chosen[3]);
            seen[usize::from(chosen[1] == chosen[4])] = true;
        }
        assert_eq!(
            seen,
            [true, true],
            "the two words are never chosen independently"
        );
    }

    #[test]
    fn special_tokens_are_never_chosen_even_when_every_token_is() {
        let vocab = bert_vocab();
        let cfg = MlmConfig {
            mask_prob: 1.0,
            ..MlmConfig::default()
        };
        let tokens = [101, 7, 0, 8, 100, 103, 9, 102, 0, 0];
        let out = mask_tokens(&tokens, None, &cfg, &vocab, 1);
        for (i, &token) in tokens.iter().enumerate() {
            let special = vocab.never_chosen().contains(&token);
            assert_eq!(out.labels[i] == IGNORE_INDEX, special, "position {i}");
            if special {
                assert_eq!(out.inputs[i], token);
            }
        }
    }

    #[test]
    fn random_replacements_are_uniform_over_the_non_special_ids() {
        // Ids 0..8: 0, 1, 2 special, 3 the mask; every non-special token is replaced at random.
        let vocab = MlmVocab {
            mask_id: 3,
            vocab_size: 8,
            special: vec![2, 0, 1, 2],
        };
        let cfg = MlmConfig {
            mask_prob: 1.0,
            mask_token_ratio: 0.0,
            random_token_ratio: 1.0,
            whole_word: false,
        };
        let mut rng = SplitMix64::new(4);
        let tokens: Vec<u32> = (0..40_000).map(|_| rng.below(8) as u32).collect();
        let out = mask_tokens(&tokens, None, &cfg, &vocab, 2);
        let mut counts = [0usize; 8];
        for (&token, &input) in tokens.iter().zip(&out.inputs) {
            if token < 4 {
                assert_eq!(input, token);
            } else {
                counts[input as usize] += 1;
            }
        }
        assert_eq!(counts[..4], [0; 4], "a special id was drawn: {counts:?}");
        let replaced: usize = counts.iter().sum();
        for &count in &counts[4..] {
            let share = count as f64 / replaced as f64;
            assert!((share - 0.25).abs() < 0.02, "{counts:?}");
        }
    }

    #[test]
    fn same_seed_same_output_and_seeds_differ() {
        let vocab = bert_vocab();
        let (tokens, starts) = sequence(512, 0.6, 3);
        for whole_word in [false, true] {
            let cfg = MlmConfig {
                whole_word,
                ..MlmConfig::default()
            };
            let run = |seed| mask_tokens(&tokens, Some(&starts), &cfg, &vocab, seed);
            assert_eq!(run(42), run(42));
            assert_ne!(run(42), run(43));
            assert_ne!(run(42).labels, run(43).labels);
        }
    }

    #[test]
    fn empty_input_gives_empty_output() {
        let out = mask_tokens(&[], Some(&[]), &MlmConfig::default(), &bert_vocab(), 0);
        assert!(out.inputs.is_empty() && out.labels.is_empty());
    }

    #[test]
    #[should_panic(expected = "word_start has 2 flags for 3 tokens")]
    fn word_start_of_another_length_panics() {
        mask_tokens(
            &[5, 6, 7],
            Some(&[true, false]),
            &MlmConfig::default(),
            &bert_vocab(),
            0,
        );
    }

    #[test]
    #[should_panic(expected = "whole_word masking needs the word_start flags")]
    fn whole_word_without_word_starts_panics() {
        let cfg = MlmConfig {
            whole_word: true,
            ..MlmConfig::default()
        };
        mask_tokens(&[5, 6, 7], None, &cfg, &bert_vocab(), 0);
    }

    #[test]
    #[should_panic(expected = "mask_prob")]
    fn invalid_config_panics() {
        let cfg = MlmConfig {
            mask_prob: 0.0,
            ..MlmConfig::default()
        };
        mask_tokens(&[5, 6, 7], None, &cfg, &bert_vocab(), 0);
    }

    #[test]
    fn config_defaults_serde_and_validation() {
        let cfg: MlmConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(cfg, MlmConfig::default());
        assert_eq!(
            (cfg.mask_prob, cfg.mask_token_ratio, cfg.random_token_ratio),
            (0.15, 0.8, 0.1)
        );
        assert!(!cfg.whole_word);
        cfg.validate().expect("defaults are valid");
        let partial: MlmConfig =
            serde_json::from_str(r#"{"whole_word": true, "mask_prob": 0.3}"#).expect("partial");
        assert!(partial.whole_word && partial.mask_prob == 0.3);
        let back: MlmConfig =
            serde_json::from_str(&serde_json::to_string(&partial).expect("ser")).expect("de");
        assert_eq!(back, partial);
        let unknown = serde_json::from_str::<MlmConfig>(r#"{"mask_probability": 0.2}"#);
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("mask_probability")
        );

        for (cfg, field) in [
            (r#"{"mask_prob": 0.0}"#, "mask_prob"),
            (r#"{"mask_prob": 1.5}"#, "mask_prob"),
            (r#"{"mask_token_ratio": -0.1}"#, "mask_token_ratio"),
            (r#"{"random_token_ratio": 2.0}"#, "random_token_ratio"),
            (
                r#"{"mask_token_ratio": 0.8, "random_token_ratio": 0.3}"#,
                "mask_token_ratio + random_token_ratio",
            ),
        ] {
            let cfg: MlmConfig = serde_json::from_str(cfg).expect("parses");
            let err = cfg.validate().expect_err("invalid").to_string();
            assert!(err.contains(field), "{err}");
        }
        let nan = MlmConfig {
            mask_prob: f64::NAN,
            ..MlmConfig::default()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn vocab_validation() {
        bert_vocab().validate().expect("valid");
        let outside = MlmVocab {
            mask_id: 10,
            vocab_size: 10,
            special: vec![],
        };
        assert!(
            outside
                .validate()
                .unwrap_err()
                .to_string()
                .contains("mask_id")
        );
        let all_special = MlmVocab {
            mask_id: 2,
            vocab_size: 3,
            special: vec![0, 1, 7],
        };
        assert!(
            all_special
                .validate()
                .unwrap_err()
                .to_string()
                .contains("special")
        );
    }
}
