//! MinHash signatures over word n-gram shingles, and LSH band keys.
//!
//! Each of the `bands * rows` permutations is a multiply-shift hash
//! `(a_i * s + b_i) >> 32` of the 64-bit shingle hash `s` (a_i odd): one multiply and
//! add per shingle and permutation, which the compiler vectorises. Two documents
//! become LSH candidates when all `rows` minima of at least one band agree; the
//! probability for Jaccard similarity J is `1 - (1 - J^rows)^bands`.

use serde::{Deserialize, Serialize};

use crate::text::{mix, ngram_hash, word_hashes};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MinHashConfig {
    /// Words per shingle.
    pub ngram: usize,
    pub bands: usize,
    pub rows: usize,
    /// Seeds the permutations; signatures are comparable only under the same seed.
    pub seed: u64,
}

impl Default for MinHashConfig {
    /// FineWeb's setting: 5-word shingles, 112 permutations as 14 bands of 8 rows.
    fn default() -> Self {
        MinHashConfig {
            ngram: 5,
            bands: 14,
            rows: 8,
            seed: 1,
        }
    }
}

impl MinHashConfig {
    pub fn permutations(&self) -> usize {
        self.bands * self.rows
    }

    /// The similarity at which the LSH S-curve is steepest, `(1/bands)^(1/rows)`:
    /// pairs above it are likely candidates, pairs below it unlikely.
    pub fn threshold(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }

    /// Probability that a pair of Jaccard similarity `j` becomes a candidate.
    pub fn candidate_probability(&self, j: f64) -> f64 {
        1.0 - (1.0 - j.powi(self.rows as i32)).powi(self.bands as i32)
    }
}

/// The minima of each permutation, `bands * rows` of them.
pub type Signature = Vec<u32>;

pub struct MinHasher {
    config: MinHashConfig,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    pub fn new(config: MinHashConfig) -> Self {
        let n = config.permutations();
        let mut state = config.seed;
        let mut next = || {
            state = mix(state);
            state
        };
        let a = (0..n).map(|_| next() | 1).collect();
        let b = (0..n).map(|_| next()).collect();
        MinHasher { config, a, b }
    }

    pub fn config(&self) -> &MinHashConfig {
        &self.config
    }

    /// Hashes of the word n-gram shingles of `text`; a text shorter than one
    /// shingle is one shingle of all its words; an empty text has none.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let words = word_hashes(text);
        if words.is_empty() {
            return Vec::new();
        }
        let n = self.config.ngram.min(words.len());
        let mut shingles: Vec<u64> = words.windows(n).map(ngram_hash).collect();
        shingles.sort_unstable();
        shingles.dedup();
        shingles
    }

    pub fn signature(&self, text: &str) -> Signature {
        self.signature_of_shingles(&self.shingles(text))
    }

    pub fn signature_of_shingles(&self, shingles: &[u64]) -> Signature {
        let mut minima = vec![u32::MAX; self.a.len()];
        for &s in shingles {
            for ((m, &a), &b) in minima.iter_mut().zip(&self.a).zip(&self.b) {
                let h = (a.wrapping_mul(s).wrapping_add(b) >> 32) as u32;
                *m = (*m).min(h);
            }
        }
        minima
    }

    /// One key per band: equal keys in the same band make two documents candidates.
    pub fn band_keys<'s>(&self, signature: &'s Signature) -> impl Iterator<Item = u64> + 's {
        let rows = self.config.rows;
        signature.chunks(rows).enumerate().map(|(band, chunk)| {
            chunk
                .iter()
                .fold(mix(band as u64 + 1), |h, &v| mix(h ^ u64::from(v)))
        })
    }
}

/// Fraction of equal minima: an unbiased estimate of Jaccard similarity.
pub fn estimated_similarity(a: &Signature, b: &Signature) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// Exact Jaccard similarity of two sorted, deduplicated shingle sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        1.0
    } else {
        common as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(words: usize, salt: usize) -> String {
        (0..words)
            .map(|i| format!("w{}", mix((salt as u64) << 32 | i as u64) % 100_003))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn signature_agreement_estimates_jaccard() {
        let h = MinHasher::new(MinHashConfig::default());
        let base = text(400, 0);
        // Replace every 10th word: about 40% of 5-shingles change.
        let edited: String = base
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                if i % 10 == 0 {
                    "x".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let j = jaccard(&h.shingles(&base), &h.shingles(&edited));
        let est = estimated_similarity(&h.signature(&base), &h.signature(&edited));
        assert!((j - est).abs() < 0.12, "jaccard {j} vs estimate {est}");
        assert_eq!(
            estimated_similarity(&h.signature(&base), &h.signature(&base)),
            1.0
        );
        assert!(estimated_similarity(&h.signature(&base), &h.signature(&text(400, 1))) < 0.05);
    }

    #[test]
    fn fineweb_setting_has_its_threshold_near_0_72() {
        let c = MinHashConfig::default();
        assert!((c.threshold() - 0.719).abs() < 0.01);
        assert!(c.candidate_probability(0.9) > 0.99);
        assert!(c.candidate_probability(0.3) < 0.01);
    }
}
