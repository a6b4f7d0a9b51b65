//! Text normalisation shared by exact keys, shingles and n-grams: lower case,
//! letters and digits only, words split on everything else. Two documents that
//! differ only in case, punctuation or spacing normalise to the same words.

use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

/// The normalised words of `text`, each as a 64-bit hash.
pub fn word_hashes(text: &str) -> Vec<u64> {
    let mut out = Vec::with_capacity(text.len() / 5);
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if !word.is_empty() {
            out.push(xxh3_64(word.as_bytes()));
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else {
            flush(&mut word);
        }
    }
    flush(&mut word);
    out
}

/// Key of the exact-duplicate test: equal for texts equal after normalisation.
pub fn exact_key(text: &str) -> u128 {
    let words = word_hashes(text);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    xxh3_128(&bytes)
}

/// Combines consecutive word hashes into one n-gram hash (order-sensitive).
pub fn ngram_hash(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15u64, |h, &w| mix(h ^ w))
}

/// splitmix64's finaliser: a cheap, well-mixing bijection.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_punctuation_and_spacing_do_not_change_the_exact_key() {
        assert_eq!(
            exact_key("Shares ROSE 5%, analysts said."),
            exact_key("shares rose 5 analysts\n said")
        );
        assert_ne!(exact_key("shares rose 5"), exact_key("shares fell 5"));
        assert_eq!(word_hashes("Über-Preis, 3.5").len(), 4);
    }
}
