//! Cleaning: normalisers first (NFC, boilerplate, whitespace), then quality
//! filters. [`Cleaner::apply`] returns the cleaned document or the rejection,
//! and counts both per normaliser / filter for the stage manifest.

pub mod boilerplate;
pub mod filters;
pub mod normalize;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::document::{Document, Rejected};
pub use filters::{Filter, Reject};

/// Every threshold of the cleaning stage. Defaults follow Gopher (Rae et al.
/// 2021) except where this corpus mix needs otherwise (noted per field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanConfig {
    pub normalize_nfc: bool,
    pub normalize_whitespace: bool,
    /// Drop the final ` Reuter` sign-off line of wire stories.
    pub strip_reuters_signoff: bool,
    /// Strip Usenet headers, quotes, signatures, PGP and uuencoded blocks
    /// (only in documents that start with a header block).
    pub strip_usenet: bool,
    /// Cut Project Gutenberg licence header/footer at their `***` markers.
    pub strip_gutenberg: bool,
    /// Gopher: 50. Lowered to 10 so genuine short items (Reuters briefs of a
    /// few sentences, short BBC/Wikipedia stubs) survive; one-line headlines
    /// and empty documents still go.
    pub min_words: usize,
    /// Gopher: 100,000. Raised to 500,000 because whole books (Moby-Dick
    /// ≈ 215k words, tiny Shakespeare ≈ 200k) are genuine documents here.
    pub max_words: usize,
    pub min_mean_word_length: f64,
    pub max_mean_word_length: f64,
    /// `#` and ellipses per word.
    pub max_symbol_to_word_ratio: f64,
    pub max_ellipsis_line_fraction: f64,
    pub max_bullet_line_fraction: f64,
    /// Words with at least one alphabetic character.
    pub min_alphabetic_word_fraction: f64,
    /// Distinct Gopher stop words (the, be, to, of, and, that, have, with) required.
    pub min_stop_words: usize,
    pub max_duplicate_line_fraction: f64,
    pub max_duplicate_line_char_fraction: f64,
    pub max_duplicate_paragraph_fraction: f64,
    pub max_duplicate_paragraph_char_fraction: f64,
    /// Share of characters in the most frequent 2-, 3-, 4-gram.
    pub max_top_ngram_char_fraction: [f64; 3],
    /// Share of characters in repeats of an earlier 5-, 6-, …, 10-gram.
    pub max_duplicate_ngram_char_fraction: [f64; 6],
    /// ISO 639-3 code the text must be in (whatlang); omit to skip language id.
    pub language: Option<String>,
    pub min_language_confidence: f64,
    /// Texts shorter than this (bytes) skip language id.
    pub min_language_chars: usize,
    /// Language id looks at this many leading characters (cost bound).
    pub language_sample_chars: usize,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            normalize_nfc: true,
            normalize_whitespace: true,
            strip_reuters_signoff: true,
            strip_usenet: true,
            strip_gutenberg: true,
            min_words: 10,
            max_words: 500_000,
            min_mean_word_length: 3.0,
            max_mean_word_length: 10.0,
            max_symbol_to_word_ratio: 0.1,
            max_ellipsis_line_fraction: 0.3,
            max_bullet_line_fraction: 0.9,
            min_alphabetic_word_fraction: 0.8,
            min_stop_words: 2,
            max_duplicate_line_fraction: 0.3,
            max_duplicate_line_char_fraction: 0.2,
            max_duplicate_paragraph_fraction: 0.3,
            max_duplicate_paragraph_char_fraction: 0.2,
            max_top_ngram_char_fraction: [0.20, 0.18, 0.16],
            max_duplicate_ngram_char_fraction: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10],
            language: Some("eng".into()),
            min_language_confidence: 0.5,
            min_language_chars: 200,
            language_sample_chars: 1000,
        }
    }
}

/// A document split into words and lines once, shared by all filters.
pub struct TextView<'a> {
    pub doc: &'a Document,
    pub words: Vec<&'a str>,
    pub lines: Vec<&'a str>,
}

impl<'a> TextView<'a> {
    pub fn new(doc: &'a Document) -> Self {
        TextView {
            doc,
            words: doc.text.split_whitespace().collect(),
            lines: doc.text.lines().map(str::trim).collect(),
        }
    }
}

/// Counters for the manifest: in == kept + rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanStats {
    pub documents_in: u64,
    pub kept: u64,
    pub rejected: u64,
    /// Rejections per filter (`word_count`, `duplicate_line_fraction`, …).
    pub rejected_by: BTreeMap<String, u64>,
    /// Documents changed by each normaliser.
    pub normalised_by: BTreeMap<String, u64>,
    pub bytes_in: u64,
    pub bytes_kept: u64,
}

impl CleanStats {
    /// Adds another worker's counters (for parallel cleaning).
    pub fn merge(&mut self, other: &CleanStats) {
        self.documents_in += other.documents_in;
        self.kept += other.kept;
        self.rejected += other.rejected;
        for (k, v) in &other.rejected_by {
            *self.rejected_by.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.normalised_by {
            *self.normalised_by.entry(k.clone()).or_default() += v;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_kept += other.bytes_kept;
    }
}

/// A text rewrite: the new text, or `None` when nothing changed.
type Normaliser = fn(&str) -> Option<String>;

/// Normalises and filters documents; cheap to create, one per worker thread.
pub struct Cleaner {
    config: CleanConfig,
    filters: Vec<Box<dyn Filter>>,
    stats: CleanStats,
}

impl Cleaner {
    pub fn new(config: CleanConfig) -> Self {
        Cleaner {
            filters: filters::from_config(&config),
            config,
            stats: CleanStats::default(),
        }
    }

    pub fn stats(&self) -> &CleanStats {
        &self.stats
    }

    /// The cleaned document, or a `Rejected` with reason `filter:<name>`, the
    /// failing value and rule in `detail`, and the normalised text.
    pub fn apply(&mut self, mut doc: Document) -> Result<Document, Rejected> {
        self.stats.documents_in += 1;
        self.stats.bytes_in += doc.text.len() as u64;
        self.normalise(&mut doc);
        let verdict = {
            let view = TextView::new(&doc);
            if view.words.is_empty() {
                Err(Reject {
                    filter: "empty",
                    value: 0.0,
                    detail: "no words left after normalisation".into(),
                })
            } else {
                self.filters.iter().try_for_each(|f| f.check(&view))
            }
        };
        match verdict {
            Ok(()) => {
                self.stats.kept += 1;
                self.stats.bytes_kept += doc.text.len() as u64;
                Ok(doc)
            }
            Err(reject) => {
                self.stats.rejected += 1;
                *self
                    .stats
                    .rejected_by
                    .entry(reject.filter.to_owned())
                    .or_default() += 1;
                Err(doc.reject(format!("filter:{}", reject.filter), reject.detail))
            }
        }
    }

    fn normalise(&mut self, doc: &mut Document) {
        let config = &self.config;
        let steps: [(&str, bool, Normaliser); 4] = [
            ("nfc", config.normalize_nfc, normalize::nfc),
            ("gutenberg_licence", config.strip_gutenberg, |t| {
                let kept = boilerplate::strip_gutenberg_licence(t);
                (kept.len() != t.len()).then(|| kept.to_owned())
            }),
            (
                "reuters_signoff",
                config.strip_reuters_signoff,
                boilerplate::strip_reuters_signoff,
            ),
            ("usenet", config.strip_usenet, boilerplate::strip_usenet),
        ];
        for (name, enabled, step) in steps {
            if let Some(changed) = step(&doc.text).filter(|_| enabled) {
                doc.text = changed;
                *self.stats.normalised_by.entry(name.to_owned()).or_default() += 1;
            }
        }
        if config.normalize_whitespace {
            let normalised = normalize::whitespace(&doc.text);
            if normalised != doc.text {
                doc.text = normalised;
                *self
                    .stats
                    .normalised_by
                    .entry("whitespace".to_owned())
                    .or_default() += 1;
            }
        }
    }
}
