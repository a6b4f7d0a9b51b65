//! Byte-level BPE tokenizer training (Hugging Face `tokenizers`), on a seeded sample that
//! draws from each domain in a configured share of a byte budget; saving and loading
//! `tokenizer.json`.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::rng::{SplitMix64, fnv1a};

/// Separates documents in token streams; the loader packs across it.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Reserved for padding by consumers that need it (the packed loader never pads).
pub const PAD: &str = "<|pad|>";
/// Parameters of tokenizer training. `Default` gives an 8192-token vocabulary trained on
/// at most 64 MiB of sampled text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerTrainingConfig {
    /// Final vocabulary size, special tokens and the 256 byte tokens included.
    pub vocab_size: usize,
    /// Total UTF-8 bytes of text to train on, split across domains by their shares.
    pub sample_bytes_budget: u64,
    /// Seeds the document sample; same seed + same input order = same tokenizer.
    pub seed: u64,
}

impl Default for TokenizerTrainingConfig {
    fn default() -> Self {
        Self {
            vocab_size: 8192,
            sample_bytes_budget: 64 << 20,
            seed: 0,
        }
    }
}

/// What the tokenizer was trained on, per domain (for the stage manifest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DomainSample {
    pub budget_bytes: u64,
    pub documents_seen: u64,
    pub bytes_seen: u64,
    pub documents_sampled: u64,
    pub bytes_sampled: u64,
}

#[derive(Debug, Clone)]
pub struct TrainedTokenizer {
    pub tokenizer: Tokenizer,
    /// Per domain of `shares`; a domain whose corpus is smaller than its budget is used whole,
    /// so its realised share is below the configured one — check `bytes_sampled`.
    pub sample: BTreeMap<String, DomainSample>,
}

/// A document waiting in a domain's sample, ordered by its random key.
struct SampledText {
    key: u64,
    text: String,
}

impl PartialEq for SampledText {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for SampledText {}
impl PartialOrd for SampledText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SampledText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Per-domain bottom-k sample: every document gets a seeded random key and the domain keeps
/// the smallest keys that fit its byte budget. That is a uniform random subset of the domain's
/// documents, computed in one streaming pass with memory bounded by the budget.
struct DomainReservoir {
    budget_bytes: u64,
    keys: SplitMix64,
    kept: BinaryHeap<SampledText>,
    kept_bytes: u64,
    documents_seen: u64,
    bytes_seen: u64,
}

impl DomainReservoir {
    fn offer(&mut self, text: String) {
        self.documents_seen += 1;
        self.bytes_seen += text.len() as u64;
        let key = self.keys.next_u64();
        self.kept_bytes += text.len() as u64;
        self.kept.push(SampledText { key, text });
        // Drop the largest keys until the budget holds; the document just offered may be
        // among them.
        while self.kept_bytes > self.budget_bytes {
            let Some(dropped) = self.kept.pop() else {
                break;
            };
            self.kept_bytes -= dropped.text.len() as u64;
        }
    }
}

/// Trains a byte-level BPE tokenizer on a sample of `samples` (domain, text) in which each
/// domain of `shares` gets `share / sum(shares)` of `config.sample_bytes_budget`. Domains
/// absent from `shares` are ignored. Deterministic for a given seed and input order.
pub fn train_tokenizer<D, T>(
    samples: impl Iterator<Item = (D, T)>,
    shares: &BTreeMap<String, f64>,
    config: &TokenizerTrainingConfig,
) -> Result<TrainedTokenizer>
where
    D: AsRef<str>,
    T: Into<String>,
{
    let share_total: f64 = shares.values().sum();
    if shares.is_empty()
        || shares.values().any(|s| !s.is_finite() || *s < 0.0)
        || share_total <= 0.0
    {
        bail!("tokenizer shares must be finite, non-negative and not all zero; got {shares:?}");
    }
    if config.vocab_size < 256 + 2 {
        bail!(
            "vocab_size {} is too small: byte-level BPE needs 256 byte tokens plus 2 special tokens",
            config.vocab_size
        );
    }

    let mut reservoirs: HashMap<&str, DomainReservoir> = shares
        .iter()
        .map(|(domain, share)| {
            let budget_bytes = (config.sample_bytes_budget as f64 * share / share_total) as u64;
            let domain_seed = config.seed ^ fnv1a(domain.bytes());
            let reservoir = DomainReservoir {
                budget_bytes,
                keys: SplitMix64::new(domain_seed),
                kept: BinaryHeap::new(),
                kept_bytes: 0,
                documents_seen: 0,
                bytes_seen: 0,
            };
            (domain.as_str(), reservoir)
        })
        .collect();
    for (domain, text) in samples {
        if let Some(reservoir) = reservoirs.get_mut(domain.as_ref()) {
            reservoir.offer(text.into());
        }
    }

    let mut sample = BTreeMap::new();
    let mut texts = Vec::new();
    for (domain, reservoir) in reservoirs {
        sample.insert(
            domain.to_string(),
            DomainSample {
                budget_bytes: reservoir.budget_bytes,
                documents_seen: reservoir.documents_seen,
                bytes_seen: reservoir.bytes_seen,
                documents_sampled: reservoir.kept.len() as u64,
                bytes_sampled: reservoir.kept_bytes,
            },
        );
        texts.extend(reservoir.kept.into_iter().map(|s| s.text));
    }
    if texts.is_empty() {
        bail!("no training text: none of the documents belongs to a domain in {shares:?}");
    }

    let tokenizer = train_byte_level_bpe(texts, config.vocab_size)?;
    Ok(TrainedTokenizer { tokenizer, sample })
}

fn train_byte_level_bpe(texts: Vec<String>, vocab_size: usize) -> Result<Tokenizer> {
    // No prefix space: decode(encode(x)) must give back x exactly.
    let byte_level = ByteLevel::default().add_prefix_space(false);
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        // All 256 bytes in the vocabulary, seen in training or not: any text stays encodable.
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![
            AddedToken::from(END_OF_TEXT, true),
            AddedToken::from(PAD, true),
        ])
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(byte_level))
        .with_decoder(Some(byte_level));
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| anyhow::anyhow!("BPE training failed: {e}"))?;
    Ok(tokenizer)
}

/// Writes `tokenizer.json` atomically (temporary file, fsync, rename), in the format
/// Python's `tokenizers.Tokenizer.from_file` reads.
pub fn save_tokenizer(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    let json = tokenizer
        .to_string(true)
        .map_err(|e| anyhow::anyhow!("cannot serialise tokenizer: {e}"))?;
    crate::atomic::write_atomically(path, json.as_bytes())
}

/// Loads a `tokenizer.json` (ours or any byte-level BPE with an `<|endoftext|>` token).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let tokenizer = Tokenizer::from_file(path)
        .map_err(|e| anyhow::anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
    end_of_text_id(&tokenizer)
        .with_context(|| format!("tokenizer {} is not usable here", path.display()))?;
    Ok(tokenizer)
}

/// The id of `<|endoftext|>`, appended after every document.
pub fn end_of_text_id(tokenizer: &Tokenizer) -> Result<u32> {
    tokenizer.token_to_id(END_OF_TEXT).with_context(|| {
        format!("the tokenizer has no {END_OF_TEXT} token; train one with dapt or add it")
    })
}

/// The `tokenizer_config.json` transformers' `AutoTokenizer` needs beside a dapt
/// `tokenizer.json`: the fast tokenizer class as it is (no added BOS, no extra cleanup),
/// `<|endoftext|>` as end-of-sequence and beginning token, as GPT-2's, and `PAD` when the
/// tokenizer has it.
pub fn hf_tokenizer_config(tokenizer: &Tokenizer, model_max_length: usize) -> serde_json::Value {
    let mut config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": null,
        "clean_up_tokenization_spaces": false,
        "add_bos_token": false,
        "add_eos_token": false,
    });
    if tokenizer.token_to_id(PAD).is_some() {
        config["pad_token"] = PAD.into();
    }
    if let Some(mask) = crate::special::mask_token(tokenizer) {
        config["mask_token"] = mask.into();
    }
    config
}
