//! How good are the LSH decisions? Measured against exact Jaccard similarity of the
//! shingle sets, at the LSH threshold `t`:
//!
//! - *precision* ([`pair_precision`]): of pairs LSH put in one cluster (a removed
//!   near-duplicate and the document it duplicates), the fraction whose exact
//!   Jaccard is at least `t`;
//! - *recall* ([`planted_recall`]): of planted pairs — a sampled document and a copy
//!   with a few words replaced — whose exact Jaccard is at least `t`, the fraction
//!   LSH makes candidates; random pairs of the sample that LSH does not pair up are
//!   checked too (a miss in the wild would show there).

use serde::Serialize;

use crate::minhash::{MinHasher, jaccard};
use crate::text::mix;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Precision {
    pub pairs: usize,
    pub above_threshold: usize,
    pub precision: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Recall {
    pub planted_pairs_above_threshold: usize,
    pub found: usize,
    pub recall: f64,
    pub random_non_candidate_pairs: usize,
    pub random_non_candidates_above_threshold: usize,
}

pub fn pair_precision(pairs: &[(&str, &str)], hasher: &MinHasher) -> Precision {
    let t = hasher.config().threshold();
    let above = pairs
        .iter()
        .filter(|(a, b)| jaccard(&hasher.shingles(a), &hasher.shingles(b)) >= t)
        .count();
    Precision {
        pairs: pairs.len(),
        above_threshold: above,
        precision: ratio(above, pairs.len()),
    }
}

pub fn planted_recall(texts: &[&str], hasher: &MinHasher, samples: usize, seed: u64) -> Recall {
    let t = hasher.config().threshold();
    let mut rng = Rng(seed);
    let usable: Vec<Vec<u64>> = texts.iter().map(|x| hasher.shingles(x)).collect();
    let candidates: Vec<usize> = (0..texts.len())
        .filter(|&i| usable[i].len() >= 20)
        .collect();
    let mut report = Recall::default();
    if candidates.is_empty() {
        report.recall = f64::NAN;
        return report;
    }
    for _ in 0..samples {
        let i = candidates[rng.below(candidates.len())];
        let copy = hasher.shingles(&edit(texts[i], rng.unit() * 0.06, &mut rng));
        if jaccard(&usable[i], &copy) >= t {
            report.planted_pairs_above_threshold += 1;
            report.found += usize::from(is_candidate(hasher, &usable[i], &copy));
        }
        let j = candidates[rng.below(candidates.len())];
        if i != j && !is_candidate(hasher, &usable[i], &usable[j]) {
            report.random_non_candidate_pairs += 1;
            report.random_non_candidates_above_threshold +=
                usize::from(jaccard(&usable[i], &usable[j]) >= t);
        }
    }
    report.recall = ratio(report.found, report.planted_pairs_above_threshold);
    report
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

fn is_candidate(hasher: &MinHasher, a: &[u64], b: &[u64]) -> bool {
    let (sa, sb) = (
        hasher.signature_of_shingles(a),
        hasher.signature_of_shingles(b),
    );
    hasher
        .band_keys(&sa)
        .zip(hasher.band_keys(&sb))
        .any(|(x, y)| x == y)
}

/// Replaces each word with probability `rate`.
fn edit(text: &str, rate: f64, rng: &mut Rng) -> String {
    text.split_whitespace()
        .map(|w| {
            if rng.unit() < rate {
                format!("edit{}", rng.below(1_000_000))
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tiny deterministic generator (splitmix64), so reports are reproducible.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 = mix(self.0);
        (self.0 % n.max(1) as u64) as usize
    }
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 = mix(self.0);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::MinHashConfig;

    fn doc(salt: u64) -> String {
        (0..400u64)
            .map(|i| format!("w{}", mix(salt << 32 | i) % 30_000))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn lsh_finds_planted_near_duplicates_and_precision_counts_true_pairs() {
        let h = MinHasher::new(MinHashConfig::default());
        let texts: Vec<String> = (0..60).map(doc).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let recall = planted_recall(&refs, &h, 200, 7);
        assert!(recall.planted_pairs_above_threshold > 50, "{recall:?}");
        assert!(recall.recall >= 0.9, "{recall:?}");
        assert_eq!(recall.random_non_candidates_above_threshold, 0);

        let near = texts[0].replacen("w", "v", 2);
        let p = pair_precision(&[(&texts[0], &near), (&texts[1], &texts[2])], &h);
        assert_eq!((p.pairs, p.above_threshold), (2, 1));
    }
}
