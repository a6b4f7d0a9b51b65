//! The interface the trainer (dapt-model) consumes through a thin adapter.

use anyhow::Result;

/// A resumable source of training batches.
pub trait TokenBatchSource {
    /// `batch` sequences of `seq_len + 1` token ids (inputs and targets shifted by one),
    /// flattened: `batch * (seq_len + 1)` ids.
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>>;
    /// Everything needed to continue with exactly the same batches.
    fn state(&self) -> serde_json::Value;
    /// Continues from a [`Self::state`]; refuses a state taken on different data or settings.
    fn restore(&mut self, state: &serde_json::Value) -> Result<()>;
}
