//! Shared fixtures: tiny configs, deterministic batch sources, a recording observer.
#![allow(dead_code)] // each test binary uses a different subset

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use dapt_model::{
    BatchSource, GptConfig, LlamaConfig, ModelConfig, StepRecord, TrainConfig, TrainObserver,
};
use serde_json::json;

pub fn tiny_gpt(vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        n_layer: 2,
        n_head: 2,
        d_model: 32,
        context: 16,
        ..GptConfig::default()
    }
}

pub fn tiny_model(vocab_size: usize) -> ModelConfig {
    ModelConfig::Gpt(tiny_gpt(vocab_size))
}

/// A Llama of the same width: 4 query heads sharing 2 key/value heads.
pub fn tiny_llama(vocab_size: usize) -> ModelConfig {
    ModelConfig::Llama(LlamaConfig {
        vocab_size,
        n_layer: 2,
        n_head: 4,
        n_kv_head: 2,
        d_model: 32,
        d_ff: 64,
        context: 16,
        head_dim: 8,
        ..LlamaConfig::default()
    })
}

pub fn tiny_training(max_steps: u64) -> TrainConfig {
    TrainConfig {
        seed: 11,
        batch_size: 4,
        seq_len: 16,
        grad_accum_steps: 1,
        max_steps,
        peak_lr: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 5,
        optimizer: Default::default(),
        grad_clip: Some(1.0),
        eval_every: 0,
        eval_batches: 2,
        checkpoint_every: 0,
        keep_checkpoints: 2,
        objective: dapt_model::Objective::Clm,
    }
}

/// Rows are arithmetic progressions mod `vocab` whose start and stride depend on the row index:
/// learnable, deterministic, and the cursor (rows drawn so far) is the whole state.
pub struct ProgressionSource {
    pub vocab: u32,
    pub rows_drawn: u64,
    /// Token id that appears only in the batch of this (0-based) call, if set.
    pub poison: Option<(u64, u32)>,
    pub calls: u64,
}

impl ProgressionSource {
    pub fn new(vocab: u32) -> Self {
        Self {
            vocab,
            rows_drawn: 0,
            poison: None,
            calls: 0,
        }
    }
}

impl BatchSource for ProgressionSource {
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(batch * (seq_len + 1));
        // Keep the poison token (if any) out of ordinary batches.
        let modulus = self.vocab - u32::from(self.poison.is_some());
        for _ in 0..batch {
            let row = self.rows_drawn;
            let start = (row.wrapping_mul(7) % u64::from(modulus)) as u32;
            let stride = 1 + (row % 3) as u32;
            ids.extend((0..=seq_len as u32).map(|i| (start + i * stride) % modulus));
            self.rows_drawn += 1;
        }
        if let Some((call, token)) = self.poison
            && call == self.calls
        {
            ids[1] = token;
        }
        self.calls += 1;
        Ok(ids)
    }

    fn state(&self) -> serde_json::Value {
        json!({ "rows_drawn": self.rows_drawn, "calls": self.calls })
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let field = |name: &str| state[name].as_u64();
        ensure!(
            field("rows_drawn").is_some() && field("calls").is_some(),
            "bad state {state}"
        );
        self.rows_drawn = field("rows_drawn").unwrap();
        self.calls = field("calls").unwrap();
        Ok(())
    }
}

/// The same batch every time.
pub struct FixedBatch(pub Vec<u32>);

impl BatchSource for FixedBatch {
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>> {
        ensure!(
            self.0.len() == batch * (seq_len + 1),
            "fixture batch has the wrong size"
        );
        Ok(self.0.clone())
    }
    fn state(&self) -> serde_json::Value {
        json!(null)
    }
    fn restore(&mut self, _: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// Keeps every record and notice; optionally stops the run after a given step.
#[derive(Default)]
pub struct Recorder {
    pub records: Vec<StepRecord>,
    pub notices: Vec<String>,
    pub checkpoints: Vec<(u64, PathBuf)>,
    pub stop_after: Option<u64>,
}

impl TrainObserver for Recorder {
    fn on_step(&mut self, record: &StepRecord) -> ControlFlow<()> {
        self.records.push(record.clone());
        if self.stop_after == Some(record.step) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
    fn on_checkpoint(&mut self, step: u64, dir: &Path) {
        self.checkpoints.push((step, dir.to_owned()));
    }
    fn on_notice(&mut self, message: &str) {
        self.notices.push(message.to_owned());
    }
}

/// A fresh empty directory under the target dir's tmp (removed first if left over).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
