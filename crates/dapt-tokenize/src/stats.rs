//! Counts for a stage manifest: documents, tokens, bytes and words per (domain, split), and
//! fertility per domain.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::shards::{TokenRow, TokenShardReader};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub documents: u64,
    /// Tokens as stored, one `<|endoftext|>` per document included (what the loader packs).
    pub tokens: u64,
    /// UTF-8 bytes of the source texts.
    pub bytes: u64,
    /// Whitespace-separated words of the source texts.
    pub words: u64,
}

impl TokenCounts {
    fn add(&mut self, other: &TokenCounts) {
        self.documents += other.documents;
        self.tokens += other.tokens;
        self.bytes += other.bytes;
        self.words += other.words;
    }

    /// Tokens of the texts themselves, without the end-of-text separators.
    pub fn text_tokens(&self) -> u64 {
        self.tokens - self.documents
    }
}

/// How many tokens a tokenizer spends on a domain's text (lower = a better fit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fertility {
    pub tokens_per_word: f64,
    pub bytes_per_token: f64,
}

impl Fertility {
    /// Separators excluded: fertility describes the text, not our framing of it.
    pub fn of(counts: &TokenCounts) -> Self {
        let text_tokens = counts.text_tokens() as f64;
        Self {
            tokens_per_word: text_tokens / counts.words.max(1) as f64,
            bytes_per_token: counts.bytes as f64 / text_tokens.max(1.0),
        }
    }
}

/// Counts keyed domain → split → counts (nested so it serialises as plain JSON objects).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStats {
    pub by_domain_split: BTreeMap<String, BTreeMap<String, TokenCounts>>,
}

impl TokenStats {
    pub fn add_row(&mut self, row: &TokenRow) {
        let counts = TokenCounts {
            documents: 1,
            tokens: row.tokens.len() as u64,
            bytes: row.n_bytes,
            words: row.n_words,
        };
        self.counts_mut(&row.domain, &row.split).add(&counts);
    }

    pub fn merge(&mut self, other: &TokenStats) {
        for (domain, splits) in &other.by_domain_split {
            for (split, counts) in splits {
                self.counts_mut(domain, split).add(counts);
            }
        }
    }

    /// Reads every row of `shards` (tokens are decoded, so this costs a full read).
    pub fn from_shards(shards: &[impl AsRef<Path>]) -> Result<Self> {
        let mut stats = Self::default();
        for shard in shards {
            for row in TokenShardReader::open(shard.as_ref())? {
                stats.add_row(&row?);
            }
        }
        Ok(stats)
    }

    fn counts_mut(&mut self, domain: &str, split: &str) -> &mut TokenCounts {
        self.by_domain_split
            .entry(domain.to_owned())
            .or_default()
            .entry(split.to_owned())
            .or_default()
    }

    pub fn counts(&self, domain: &str, split: &str) -> TokenCounts {
        self.by_domain_split
            .get(domain)
            .and_then(|splits| splits.get(split))
            .copied()
            .unwrap_or_default()
    }

    pub fn domain_total(&self, domain: &str) -> TokenCounts {
        let mut total = TokenCounts::default();
        if let Some(splits) = self.by_domain_split.get(domain) {
            splits.values().for_each(|counts| total.add(counts));
        }
        total
    }

    pub fn total(&self) -> TokenCounts {
        let mut total = TokenCounts::default();
        for domain in self.by_domain_split.keys() {
            total.add(&self.domain_total(domain));
        }
        total
    }

    /// Fertility per domain over all its splits.
    pub fn fertility(&self) -> BTreeMap<String, Fertility> {
        self.by_domain_split
            .keys()
            .map(|domain| (domain.clone(), Fertility::of(&self.domain_total(domain))))
            .collect()
    }

    /// The manifest form: counts per domain and split, totals, fertility per domain.
    pub fn to_manifest_json(&self) -> serde_json::Value {
        serde_json::json!({
            "by_domain_split": self.by_domain_split,
            "total": self.total(),
            "fertility": self.fertility(),
        })
    }
}
