//! Gopher / C4-style quality filters (Rae et al. 2021, "Scaling Language
//! Models", appendix A). Each reads the precomputed [`TextView`] so a document
//! is split into words and lines once, not once per filter.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::{CleanConfig, TextView};

/// Why a filter rejected a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub filter: &'static str,
    pub value: f64,
    /// The rule that failed, e.g. `mean_word_length = 2.10, allowed 3..10`.
    pub detail: String,
}

pub trait Filter: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self, view: &TextView) -> Result<(), Reject>;
}

fn reject(filter: &'static str, value: f64, rule: String) -> Result<(), Reject> {
    Err(Reject {
        filter,
        value,
        detail: format!("{filter} = {value:.3}, {rule}"),
    })
}

fn at_most(filter: &'static str, value: f64, max: f64) -> Result<(), Reject> {
    if value > max {
        reject(filter, value, format!("allowed at most {max}"))
    } else {
        Ok(())
    }
}

fn at_least(filter: &'static str, value: f64, min: f64) -> Result<(), Reject> {
    if value < min {
        reject(filter, value, format!("required at least {min}"))
    } else {
        Ok(())
    }
}

/// The filters in evaluation order (cheapest first), configured from `cfg`.
pub fn from_config(cfg: &CleanConfig) -> Vec<Box<dyn Filter>> {
    let mut filters: Vec<Box<dyn Filter>> = vec![
        Box::new(WordCount {
            min: cfg.min_words,
            max: cfg.max_words,
        }),
        Box::new(MeanWordLength {
            min: cfg.min_mean_word_length,
            max: cfg.max_mean_word_length,
        }),
        Box::new(SymbolToWordRatio {
            max: cfg.max_symbol_to_word_ratio,
        }),
        Box::new(EllipsisLines {
            max: cfg.max_ellipsis_line_fraction,
        }),
        Box::new(BulletLines {
            max: cfg.max_bullet_line_fraction,
        }),
        Box::new(AlphabeticWords {
            min: cfg.min_alphabetic_word_fraction,
        }),
        Box::new(StopWords {
            min: cfg.min_stop_words,
        }),
        Box::new(Repetition::from_config(cfg)),
    ];
    if let Some(language) = &cfg.language {
        filters.push(Box::new(Language {
            expected: whatlang::Lang::from_code(language).unwrap_or(whatlang::Lang::Eng),
            min_confidence: cfg.min_language_confidence,
            min_chars: cfg.min_language_chars,
            sample_chars: cfg.language_sample_chars,
        }));
    }
    filters
}

pub struct WordCount {
    pub min: usize,
    pub max: usize,
}

impl Filter for WordCount {
    fn name(&self) -> &'static str {
        "word_count"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let n = view.words.len();
        if n < self.min || n > self.max {
            return reject(
                self.name(),
                n as f64,
                format!("allowed {}..={}", self.min, self.max),
            );
        }
        Ok(())
    }
}

pub struct MeanWordLength {
    pub min: f64,
    pub max: f64,
}

impl Filter for MeanWordLength {
    fn name(&self) -> &'static str {
        "mean_word_length"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let chars: usize = view.words.iter().map(|w| w.chars().count()).sum();
        let mean = chars as f64 / view.words.len().max(1) as f64;
        if mean < self.min || mean > self.max {
            return reject(
                self.name(),
                mean,
                format!("allowed {}..{}", self.min, self.max),
            );
        }
        Ok(())
    }
}

/// `#` and ellipses (`...`, `…`) per word.
pub struct SymbolToWordRatio {
    pub max: f64,
}

impl Filter for SymbolToWordRatio {
    fn name(&self) -> &'static str {
        "symbol_to_word_ratio"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let text = view.doc.text.as_str();
        let symbols =
            text.matches('#').count() + text.matches("...").count() + text.matches('…').count();
        at_most(
            self.name(),
            symbols as f64 / view.words.len().max(1) as f64,
            self.max,
        )
    }
}

fn fraction_of_lines(view: &TextView, pred: impl Fn(&str) -> bool) -> f64 {
    let lines = view.lines.iter().filter(|l| !l.is_empty());
    let (mut total, mut hits) = (0usize, 0usize);
    for line in lines {
        total += 1;
        hits += pred(line) as usize;
    }
    hits as f64 / total.max(1) as f64
}

pub struct EllipsisLines {
    pub max: f64,
}

impl Filter for EllipsisLines {
    fn name(&self) -> &'static str {
        "ellipsis_line_fraction"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let value = fraction_of_lines(view, |l| l.ends_with("...") || l.ends_with('…'));
        at_most(self.name(), value, self.max)
    }
}

pub struct BulletLines {
    pub max: f64,
}

impl Filter for BulletLines {
    fn name(&self) -> &'static str {
        "bullet_line_fraction"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let value = fraction_of_lines(view, |l| {
            l.starts_with(['•', '●', '○', '▪', '‣', '◦', '-', '*'])
        });
        at_most(self.name(), value, self.max)
    }
}

pub struct AlphabeticWords {
    pub min: f64,
}

impl Filter for AlphabeticWords {
    fn name(&self) -> &'static str {
        "alphabetic_word_fraction"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let alphabetic = view
            .words
            .iter()
            .filter(|w| w.chars().any(char::is_alphabetic))
            .count();
        at_least(
            self.name(),
            alphabetic as f64 / view.words.len().max(1) as f64,
            self.min,
        )
    }
}

/// Gopher's stop words; a real English text contains at least two of them.
const STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];

pub struct StopWords {
    pub min: usize,
}

impl Filter for StopWords {
    fn name(&self) -> &'static str {
        "stop_words"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let mut seen = [false; STOP_WORDS.len()];
        for word in &view.words {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric());
            if word.len() <= 4
                && let Some(i) = STOP_WORDS.iter().position(|s| s.eq_ignore_ascii_case(word))
            {
                seen[i] = true;
            }
        }
        at_least(
            self.name(),
            seen.iter().filter(|&&s| s).count() as f64,
            self.min as f64,
        )
    }
}

/// Gopher's repetition filters: duplicate lines and paragraphs (by count and
/// by characters), the share of characters in the most frequent 2/3/4-gram,
/// and the share of characters in repeats of earlier 5..10-grams.
pub struct Repetition {
    pub max_duplicate_line_fraction: f64,
    pub max_duplicate_line_char_fraction: f64,
    pub max_duplicate_paragraph_fraction: f64,
    pub max_duplicate_paragraph_char_fraction: f64,
    /// For n = 2, 3, 4.
    pub max_top_ngram_char_fraction: [f64; 3],
    /// For n = 5..=10.
    pub max_duplicate_ngram_char_fraction: [f64; 6],
}

impl Repetition {
    fn from_config(cfg: &CleanConfig) -> Self {
        Repetition {
            max_duplicate_line_fraction: cfg.max_duplicate_line_fraction,
            max_duplicate_line_char_fraction: cfg.max_duplicate_line_char_fraction,
            max_duplicate_paragraph_fraction: cfg.max_duplicate_paragraph_fraction,
            max_duplicate_paragraph_char_fraction: cfg.max_duplicate_paragraph_char_fraction,
            max_top_ngram_char_fraction: cfg.max_top_ngram_char_fraction,
            max_duplicate_ngram_char_fraction: cfg.max_duplicate_ngram_char_fraction,
        }
    }
}

/// (fraction of pieces that repeat an earlier one, fraction of their characters).
fn duplicate_fractions<'t>(pieces: impl Iterator<Item = &'t str>) -> (f64, f64) {
    let mut seen = HashSet::new();
    let (mut total, mut dups, mut chars, mut dup_chars) = (0usize, 0usize, 0usize, 0usize);
    for piece in pieces.filter(|p| !p.trim().is_empty()) {
        total += 1;
        chars += piece.len();
        if !seen.insert(piece) {
            dups += 1;
            dup_chars += piece.len();
        }
    }
    (
        dups as f64 / total.max(1) as f64,
        dup_chars as f64 / chars.max(1) as f64,
    )
}

/// A hasher for keys that are already well-mixed u64 hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type NgramCounts = HashMap<u64, u32, BuildHasherDefault<PassThrough>>;

/// FNV-1a: deterministic and much cheaper than SipHash for short words.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn ngram_hash(word_hashes: &[u64]) -> u64 {
    word_hashes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29)
    })
}

impl Filter for Repetition {
    fn name(&self) -> &'static str {
        "repetition"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let (lines, line_chars) = duplicate_fractions(view.lines.iter().copied());
        at_most(
            "duplicate_line_fraction",
            lines,
            self.max_duplicate_line_fraction,
        )?;
        at_most(
            "duplicate_line_char_fraction",
            line_chars,
            self.max_duplicate_line_char_fraction,
        )?;
        let paragraphs = view.doc.text.split("\n\n");
        let (paras, para_chars) = duplicate_fractions(paragraphs);
        at_most(
            "duplicate_paragraph_fraction",
            paras,
            self.max_duplicate_paragraph_fraction,
        )?;
        at_most(
            "duplicate_paragraph_char_fraction",
            para_chars,
            self.max_duplicate_paragraph_char_fraction,
        )?;

        let words = &view.words;
        let word_chars: Vec<usize> = words.iter().map(|w| w.len()).collect();
        let total_chars = word_chars.iter().sum::<usize>().max(1) as f64;
        let word_hashes: Vec<u64> = words.iter().map(|w| fnv1a(w.as_bytes())).collect();
        let mut counts = NgramCounts::default();
        for (i, n) in (2..=4).enumerate() {
            if words.len() < n {
                break;
            }
            counts.clear();
            let mut top = (0u32, 0usize);
            for (start, window) in word_hashes.windows(n).enumerate() {
                let count = counts.entry(ngram_hash(window)).or_default();
                *count += 1;
                if *count > top.0 {
                    top = (*count, start);
                }
            }
            // A single occurrence is not repetition, however long the words.
            if top.0 > 1 {
                let ngram_chars: usize = word_chars[top.1..top.1 + n].iter().sum();
                let value = f64::from(top.0) * ngram_chars as f64 / total_chars;
                at_most(
                    TOP_NGRAM_NAMES[i],
                    value,
                    self.max_top_ngram_char_fraction[i],
                )?;
            }
        }
        // As in Gopher/datatrove: scanning left to right, a repeat of an
        // n-gram seen before counts its characters and skips past it; first
        // occurrences are not counted.
        let mut seen: HashSet<u64, BuildHasherDefault<PassThrough>> = HashSet::default();
        for (i, n) in (5..=10).enumerate() {
            if words.len() < n {
                break;
            }
            seen.clear();
            let (mut start, mut dup_chars) = (0, 0usize);
            while start + n <= words.len() {
                if seen.insert(ngram_hash(&word_hashes[start..start + n])) {
                    start += 1;
                } else {
                    dup_chars += word_chars[start..start + n].iter().sum::<usize>();
                    start += n;
                }
            }
            at_most(
                DUP_NGRAM_NAMES[i],
                dup_chars as f64 / total_chars,
                self.max_duplicate_ngram_char_fraction[i],
            )?;
        }
        Ok(())
    }
}

const TOP_NGRAM_NAMES: [&str; 3] = [
    "top_2gram_char_fraction",
    "top_3gram_char_fraction",
    "top_4gram_char_fraction",
];
const DUP_NGRAM_NAMES: [&str; 6] = [
    "duplicate_5gram_char_fraction",
    "duplicate_6gram_char_fraction",
    "duplicate_7gram_char_fraction",
    "duplicate_8gram_char_fraction",
    "duplicate_9gram_char_fraction",
    "duplicate_10gram_char_fraction",
];

/// whatlang on a prefix of the text; texts shorter than `min_chars` pass
/// (language id on a headline is a coin toss).
pub struct Language {
    pub expected: whatlang::Lang,
    pub min_confidence: f64,
    pub min_chars: usize,
    pub sample_chars: usize,
}

impl Filter for Language {
    fn name(&self) -> &'static str {
        "language"
    }
    fn check(&self, view: &TextView) -> Result<(), Reject> {
        let text = view.doc.text.as_str();
        if text.len() < self.min_chars {
            return Ok(());
        }
        let sample = match text.char_indices().nth(self.sample_chars) {
            Some((end, _)) => &text[..end],
            None => text,
        };
        let (lang, confidence) = whatlang::detect(sample)
            .map_or((None, 0.0), |info| (Some(info.lang()), info.confidence()));
        if lang == Some(self.expected) && confidence >= self.min_confidence {
            return Ok(());
        }
        let found = lang.map_or("none", |l| l.code());
        reject(
            self.name(),
            if lang == Some(self.expected) {
                confidence
            } else {
                0.0
            },
            format!(
                "detected {found} (confidence {confidence:.2}), required {} >= {}",
                self.expected.code(),
                self.min_confidence
            ),
        )
    }
}
