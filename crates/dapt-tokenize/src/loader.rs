//! Shuffled, re-epoching, resumable sequences of one domain.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::batch_source::TokenBatchSource;
use crate::packing::PackedTokens;
use crate::rng::SplitMix64;

/// Where a loader stands: the next sequence is `position` of epoch `epoch`'s order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderCursor {
    pub epoch: u64,
    pub position: usize,
}

/// The saved form of a loader: its cursor plus what identifies the data and settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LoaderState {
    domain: String,
    split: String,
    seq_len: usize,
    seed: u64,
    num_sequences: usize,
    /// Hex, because JSON consumers outside Rust lose precision on u64 numbers.
    data_fingerprint: String,
    cursor: LoaderCursor,
}

/// Yields the packed sequences of one (split, domain) in a seeded order that is reshuffled
/// every epoch (epoch `e` shuffles with a generator seeded from `seed` and `e`), starting a new epoch when one runs out.
/// See [`crate::packing`] for how sequences are cut and what is held in memory.
#[derive(Debug, Clone)]
pub struct SequenceLoader {
    packed: PackedTokens,
    seed: u64,
    data_fingerprint: String,
    cursor: LoaderCursor,
    order: Vec<usize>,
}

impl SequenceLoader {
    pub fn new(packed: PackedTokens, seed: u64) -> Self {
        let data_fingerprint = format!("{:016x}", packed.fingerprint());
        let order = shuffled_order(packed.num_sequences(), seed, 0);
        Self {
            packed,
            seed,
            data_fingerprint,
            cursor: LoaderCursor::default(),
            order,
        }
    }

    pub fn from_shards(
        shards: &[impl AsRef<Path>],
        split: &str,
        domain: &str,
        seq_len: usize,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self::new(
            PackedTokens::from_shards(shards, split, domain, seq_len)?,
            seed,
        ))
    }

    pub fn packed(&self) -> &PackedTokens {
        &self.packed
    }

    pub fn seq_len(&self) -> usize {
        self.packed.seq_len()
    }

    pub fn num_sequences(&self) -> usize {
        self.packed.num_sequences()
    }

    pub fn cursor(&self) -> LoaderCursor {
        self.cursor
    }

    /// The next sequence (`seq_len + 1` ids), starting a reshuffled epoch when needed.
    pub fn next_sequence(&mut self) -> &[u32] {
        if self.cursor.position == self.order.len() {
            self.cursor = LoaderCursor {
                epoch: self.cursor.epoch + 1,
                position: 0,
            };
            self.order = shuffled_order(self.order.len(), self.seed, self.cursor.epoch);
        }
        let index = self.order[self.cursor.position];
        self.cursor.position += 1;
        self.packed.sequence(index)
    }

    pub fn set_cursor(&mut self, cursor: LoaderCursor) -> Result<()> {
        ensure!(
            cursor.position <= self.num_sequences(),
            "cursor position {} is past the {} sequences of domain `{}`",
            cursor.position,
            self.num_sequences(),
            self.packed.domain()
        );
        if cursor.epoch != self.cursor.epoch {
            self.order = shuffled_order(self.num_sequences(), self.seed, cursor.epoch);
        }
        self.cursor = cursor;
        Ok(())
    }

    fn expect_seq_len(&self, seq_len: usize) -> Result<()> {
        ensure!(
            seq_len == self.seq_len(),
            "asked for seq_len {seq_len} but the loader of domain `{}` packs sequences of {}; \
             build it with the training seq_len",
            self.packed.domain(),
            self.seq_len()
        );
        Ok(())
    }

    /// The cursor of a saved state, after checking it was saved on this data and settings.
    pub(crate) fn cursor_from_state(&self, state: &serde_json::Value) -> Result<LoaderCursor> {
        let saved: LoaderState = serde_json::from_value(state.clone())
            .context("not a sequence loader state (expected domain, split, seq_len, seed, …)")?;
        let mine = self.saved();
        let same_data = LoaderState {
            cursor: saved.cursor,
            ..mine.clone()
        };
        if saved != same_data {
            bail!(
                "the saved loader state does not match this loader (data or settings changed \
                 since it was saved): saved {saved:?}, current {mine:?}"
            );
        }
        ensure!(
            saved.cursor.position <= self.num_sequences(),
            "saved cursor position {} is past the {} sequences of domain `{}`",
            saved.cursor.position,
            self.num_sequences(),
            self.packed.domain()
        );
        Ok(saved.cursor)
    }

    fn saved(&self) -> LoaderState {
        LoaderState {
            domain: self.packed.domain().to_owned(),
            split: self.packed.split().to_owned(),
            seq_len: self.seq_len(),
            seed: self.seed,
            num_sequences: self.num_sequences(),
            data_fingerprint: self.data_fingerprint.clone(),
            cursor: self.cursor,
        }
    }
}

impl TokenBatchSource for SequenceLoader {
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>> {
        self.expect_seq_len(seq_len)?;
        let mut ids = Vec::with_capacity(batch * (seq_len + 1));
        for _ in 0..batch {
            ids.extend_from_slice(self.next_sequence());
        }
        Ok(ids)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(self.saved()).expect("loader state serialises")
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let cursor = self.cursor_from_state(state)?;
        self.set_cursor(cursor)
    }
}

fn shuffled_order(num_sequences: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..num_sequences).collect();
    // Seeded from (scrambled seed) + epoch rather than seed + epoch, so that seed 1's second
    // epoch is not seed 2's first.
    let epoch_seed = SplitMix64::new(seed).next_u64().wrapping_add(epoch);
    SplitMix64::new(epoch_seed).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader(seed: u64) -> SequenceLoader {
        let packed = PackedTokens::from_tokens("fin", "train", (0..401).collect(), 4).unwrap();
        SequenceLoader::new(packed, seed)
    }

    #[test]
    fn each_epoch_is_a_permutation_and_epochs_differ() {
        let mut loader = loader(1);
        let epoch = |loader: &mut SequenceLoader| -> Vec<u32> {
            (0..100).map(|_| loader.next_sequence()[0]).collect()
        };
        let first = epoch(&mut loader);
        let second = epoch(&mut loader);
        assert_eq!(
            loader.cursor(),
            LoaderCursor {
                epoch: 1,
                position: 100
            }
        );
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).map(|i| i * 4).collect::<Vec<_>>());
        assert_ne!(first, second);
    }

    #[test]
    fn restore_refuses_other_data_or_seq_len() {
        let state = loader(1).state();
        let mut other_seed = loader(2);
        assert!(other_seed.restore(&state).is_err());
        let packed = PackedTokens::from_tokens("fin", "train", (1..402).collect(), 4).unwrap();
        assert!(SequenceLoader::new(packed, 1).restore(&state).is_err());
        assert!(loader(1).next_batch(2, 8).is_err());
    }
}
