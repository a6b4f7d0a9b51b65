//! Training throughput probes: a few real training steps on pseudo-random tokens (speed does
//! not depend on the token values), in a scratch folder that is removed afterwards. Used by
//! `dapt plan` when no run has measured a model shape yet, and by the benchmark example.

use std::ops::ControlFlow;

use anyhow::Result;
use burn::prelude::Device;

use crate::config::ModelConfig;
use crate::model::Decoder;
use crate::train::{
    BatchSource, Initialization, StepRecord, TrainConfig, TrainObserver, TrainRun, train,
};

/// Uniform pseudo-random token ids from a 64-bit LCG.
pub struct RandomTokens {
    state: u64,
    vocab: u64,
}

impl RandomTokens {
    pub fn new(vocab_size: usize) -> Self {
        Self {
            state: 1,
            vocab: vocab_size as u64,
        }
    }
}

impl BatchSource for RandomTokens {
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>> {
        Ok((0..batch * (seq_len + 1))
            .map(|_| {
                self.state = self
                    .state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.state >> 33) % self.vocab) as u32
            })
            .collect())
    }
    fn state(&self) -> serde_json::Value {
        self.state.into()
    }
    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.state = state.as_u64().unwrap_or(1);
        Ok(())
    }
}

/// Sentinel ids a span-corruption probe takes from the top of the vocabulary.
const PROBE_SENTINELS: usize = 16;

/// The family's own objective, with ids that serve for a speed probe: any id as the mask
/// token, the top ids as sentinels.
fn probe_objective(model: &ModelConfig) -> crate::Objective {
    let vocab = model.vocab_size();
    if model.causal() {
        crate::Objective::Clm
    } else if model.is_seq2seq() {
        let first = (vocab - PROBE_SENTINELS.min(vocab / 2)) as u32;
        crate::Objective::Span {
            noise: Default::default(),
            sentinels: (first..vocab as u32).collect(),
            eos: 0,
            decoder_start: 0,
        }
    } else {
        crate::Objective::Mlm {
            masking: Default::default(),
            mask_id: 0,
            special: Vec::new(),
            word_starts: Vec::new(),
        }
    }
}

/// What a probe measured.
pub struct Throughput {
    /// Each step's tokens/s, in order (the first steps include allocation warm-up).
    pub rates: Vec<f64>,
    pub last_loss: f64,
    /// The trained weights (e.g. to time evaluation next).
    pub model: Decoder,
}

impl Throughput {
    /// Median tokens/s after skipping `warmup` steps.
    pub fn median_after(&self, warmup: usize) -> f64 {
        let mut steady: Vec<f64> = self.rates.iter().copied().skip(warmup).collect();
        steady.sort_by(f64::total_cmp);
        steady.get(steady.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// Trains `steps` steps of `batch_size` x `seq_len` tokens (fp32, AdamW, clipping; the
/// family's own objective) and reports every step through `on_step` as well.
pub fn measure_training(
    model: &ModelConfig,
    batch_size: usize,
    seq_len: usize,
    steps: u64,
    device: &Device,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<Throughput> {
    let config = TrainConfig {
        seed: 0,
        batch_size,
        seq_len,
        grad_accum_steps: 1,
        max_steps: steps,
        peak_lr: 3e-4,
        min_lr: 3e-5,
        warmup_steps: 1,
        optimizer: Default::default(),
        grad_clip: Some(1.0),
        eval_every: 0,
        eval_batches: 1,
        checkpoint_every: 0,
        keep_checkpoints: 1,
        objective: probe_objective(model),
    };
    let dir = std::env::temp_dir().join(format!(
        "dapt-throughput-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut recorder = Recorder {
        rates: Vec::new(),
        last_loss: f64::NAN,
        on_step,
    };
    let outcome = train(
        TrainRun {
            dir: &dir,
            timing_dir: &dir,
            model,
            config: &config,
            init: Initialization::Scratch,
            device,
        },
        // Below the sentinels of span corruption, which text never holds.
        &mut RandomTokens::new(model.vocab_size() - PROBE_SENTINELS.min(model.vocab_size() / 2)),
        &mut [],
        &mut recorder,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Throughput {
        rates: recorder.rates,
        last_loss: recorder.last_loss,
        model: outcome?.model,
    })
}

struct Recorder<'a> {
    rates: Vec<f64>,
    last_loss: f64,
    on_step: &'a mut dyn FnMut(&StepRecord),
}

impl TrainObserver for Recorder<'_> {
    fn on_step(&mut self, record: &StepRecord) -> ControlFlow<()> {
        self.rates.push(record.tokens_per_s);
        self.last_loss = record.train_loss;
        (self.on_step)(record);
        ControlFlow::Continue(())
    }
}
