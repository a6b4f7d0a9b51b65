//! Packing a token stream into fixed-length training sequences.
//!
//! Documents of one (split, domain) are concatenated in shard order — their `<|endoftext|>`
//! separators are already in the shards — and cut into sequences of `seq_len + 1` tokens
//! (inputs plus targets shifted by one). Consecutive sequences overlap by one token, so
//! every token after the first is a target exactly once; a tail shorter than a sequence is
//! dropped.
//!
//! Memory: all token ids of the selected split and domain are held in RAM (4 bytes per token;
//! 50M tokens = 200 MB). That is fine for dapt's corpora (tens of millions of tokens); bigger
//! corpora would need a memory-mapped or streaming variant.

use std::path::Path;

use anyhow::{Result, bail};

use crate::rng::fnv1a;
use crate::shards::TokenShardReader;

#[derive(Debug, Clone)]
pub struct PackedTokens {
    domain: String,
    split: String,
    tokens: Vec<u32>,
    seq_len: usize,
}

impl PackedTokens {
    /// Reads the documents of `split` and `domain` from `shards`, in the order given.
    pub fn from_shards(
        shards: &[impl AsRef<Path>],
        split: &str,
        domain: &str,
        seq_len: usize,
    ) -> Result<Self> {
        let mut packed = Self::from_shards_for(shards, &[(split, domain)], seq_len)?;
        Ok(packed.remove(0))
    }

    /// One packed stream per `(split, domain)` of `wanted`, in that order, from a single pass
    /// over `shards`.
    pub fn from_shards_for(
        shards: &[impl AsRef<Path>],
        wanted: &[(&str, &str)],
        seq_len: usize,
    ) -> Result<Vec<Self>> {
        let mut streams: Vec<Vec<u32>> = vec![Vec::new(); wanted.len()];
        for shard in shards {
            for row in TokenShardReader::open(shard.as_ref())? {
                let row = row?;
                if let Some(i) = wanted
                    .iter()
                    .position(|&(split, domain)| row.split == split && row.domain == domain)
                {
                    streams[i].extend_from_slice(&row.tokens);
                }
            }
        }
        wanted
            .iter()
            .zip(streams)
            .map(|(&(split, domain), tokens)| Self::from_tokens(domain, split, tokens, seq_len))
            .collect()
    }

    /// Packs an already concatenated token stream.
    pub fn from_tokens(
        domain: &str,
        split: &str,
        tokens: Vec<u32>,
        seq_len: usize,
    ) -> Result<Self> {
        if seq_len == 0 {
            bail!("seq_len must be at least 1");
        }
        if tokens.len() < seq_len + 1 {
            bail!(
                "domain `{domain}` split `{split}` has {} tokens, fewer than one sequence of \
                 seq_len + 1 = {}; lower seq_len or add documents",
                tokens.len(),
                seq_len + 1
            );
        }
        Ok(Self {
            domain: domain.to_owned(),
            split: split.to_owned(),
            tokens,
            seq_len,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn split(&self) -> &str {
        &self.split
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }

    pub fn num_sequences(&self) -> usize {
        (self.tokens.len() - 1) / self.seq_len
    }

    /// Sequence `index`: `seq_len + 1` tokens starting at `index * seq_len`.
    pub fn sequence(&self, index: usize) -> &[u32] {
        let start = index * self.seq_len;
        &self.tokens[start..start + self.seq_len + 1]
    }

    /// The largest token id, to check the stream against a model's vocabulary.
    pub fn max_token(&self) -> Option<u32> {
        self.tokens.iter().copied().max()
    }

    /// Identifies the token stream, so a saved cursor is not restored onto different data.
    pub fn fingerprint(&self) -> u64 {
        fnv1a(self.tokens.iter().flat_map(|t| t.to_le_bytes()))
    }

    /// The fixed, unshuffled pass used for evaluation.
    pub fn validation_sequences(&self) -> ValidationSequences<'_> {
        ValidationSequences {
            packed: self,
            next: 0,
        }
    }
}

/// Every sequence once, in stream order. `next_batch` gives flat batches for evaluation.
#[derive(Debug, Clone)]
pub struct ValidationSequences<'a> {
    packed: &'a PackedTokens,
    next: usize,
}

impl<'a> ValidationSequences<'a> {
    /// Up to `batch` sequences, flattened (`n * (seq_len + 1)` ids; the last batch may be
    /// short); `None` after the last sequence.
    pub fn next_batch(&mut self, batch: usize) -> Option<Vec<u32>> {
        let mut ids = Vec::with_capacity(batch * (self.packed.seq_len + 1));
        for sequence in self.by_ref().take(batch) {
            ids.extend_from_slice(sequence);
        }
        (!ids.is_empty()).then_some(ids)
    }
}

impl<'a> Iterator for ValidationSequences<'a> {
    type Item = &'a [u32];

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.packed.num_sequences() {
            return None;
        }
        self.next += 1;
        Some(self.packed.sequence(self.next - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_overlap_by_one_and_drop_the_tail() {
        let packed = PackedTokens::from_tokens("fin", "train", (0..10).collect(), 3).unwrap();
        assert_eq!(packed.num_sequences(), 3);
        let sequences: Vec<&[u32]> = packed.validation_sequences().collect();
        assert_eq!(
            sequences,
            vec![&[0, 1, 2, 3][..], &[3, 4, 5, 6], &[6, 7, 8, 9]]
        );
        let mut batches = packed.validation_sequences();
        assert_eq!(batches.next_batch(2).unwrap(), vec![0, 1, 2, 3, 3, 4, 5, 6]);
        assert_eq!(batches.next_batch(2).unwrap(), vec![6, 7, 8, 9]);
        assert_eq!(batches.next_batch(2), None);
    }

    #[test]
    fn too_few_tokens_is_an_error_that_names_the_domain() {
        let error = PackedTokens::from_tokens("fin", "val", vec![1, 2], 4).unwrap_err();
        assert!(error.to_string().contains("`fin`"), "{error}");
    }
}
