//! Training and evaluation throughput of a GPT (default: 4 layers, d 256, 4 heads; always
//! T 128, B 8, vocab 8192) through the real training loop and the real scorer.
//!
//! `cargo run --release -p dapt-model --example train_throughput -- [DEVICE] [STEPS] [N_LAYER D_MODEL N_HEAD]`
//!
//! The last line is JSON (`train_tokens_per_s`, `eval_tokens_per_s`, `params`) for
//! scripts/bench-train.sh, which runs PyTorch on the same shapes.

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Result;
use dapt_model::{
    BatchSource, GptConfig, Initialization, StepRecord, TrainConfig, TrainObserver, TrainRun,
    device_from_name, token_nll, train,
};

/// Pseudo-random token ids (throughput does not depend on the data).
struct RandomTokens {
    state: u64,
    vocab: u64,
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
        self.state = state.as_u64().unwrap_or_default();
        Ok(())
    }
}

/// Tokens/s per step, and the last loss (printed exactly, to compare runs bit for bit).
#[derive(Default)]
struct Rates(Vec<f64>, f64);

impl TrainObserver for Rates {
    fn on_step(&mut self, record: &StepRecord) -> ControlFlow<()> {
        eprintln!(
            "step {:>3}  loss {:.3}  {:>8.0} tokens/s",
            record.step, record.train_loss, record.tokens_per_s
        );
        self.0.push(record.tokens_per_s);
        self.1 = record.train_loss;
        ControlFlow::Continue(())
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let device_name = args.next().unwrap_or_else(|| "cpu".into());
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let mut shape = args.map(|s| s.parse::<usize>());
    let mut next_or = |default| shape.next().transpose().map(|v| v.unwrap_or(default));
    let (n_layer, d_model, n_head) = (next_or(4)?, next_or(256)?, next_or(4)?);
    let model = GptConfig {
        vocab_size: 8192,
        n_layer,
        n_head,
        d_model,
        context: 128,
        dropout: 0.0,
        tie_embeddings: true,
    };
    let config = TrainConfig {
        seed: 0,
        batch_size: 8,
        seq_len: 128,
        grad_accum_steps: 1,
        max_steps: steps,
        peak_lr: 3e-4,
        min_lr: 3e-5,
        warmup_steps: 2,
        optimizer: Default::default(),
        grad_clip: Some(1.0),
        eval_every: 0,
        eval_batches: 1,
        checkpoint_every: 0,
        keep_checkpoints: 1,
    };
    let dir = std::env::temp_dir().join(format!("dapt-throughput-{}", std::process::id()));
    let mut rates = Rates::default();
    let device = device_from_name(&device_name)?;
    let mut tokens = RandomTokens {
        state: 1,
        vocab: 8192,
    };
    let outcome = train(
        TrainRun {
            dir: &dir,
            model: &model,
            config: &config,
            init: Initialization::Scratch,
            device: &device,
        },
        &mut tokens,
        &mut [],
        &mut rates,
    )?;
    std::fs::remove_dir_all(&dir)?;
    // Skip the first two steps (allocation warm-up).
    let last_loss = rates.1;
    let mut steady: Vec<f64> = rates.0.into_iter().skip(2).collect();
    steady.sort_by(f64::total_cmp);
    let median = steady.get(steady.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{device_name}: {} params, median {median:.0} training tokens/s over {} steps (B8 T128, fp32); last loss {last_loss:?}",
        model.param_count(),
        steady.len()
    );

    // Evaluation: non-overlapping windows of 128 tokens, 8 at a time, as the evaluate stage
    // scores documents; best of three passes over 16 windows.
    let ids = tokens.next_batch(1, 16 * 128)?;
    let mut eval_rate = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        let scored = token_nll(&outcome.model, &ids, 128, 128, 8)?;
        eval_rate = eval_rate.max(scored.tokens as f64 / started.elapsed().as_secs_f64());
    }
    println!("{device_name}: {eval_rate:.0} evaluation tokens/s");
    println!(
        "{}",
        serde_json::json!({
            "params": model.param_count(),
            "train_tokens_per_s": median,
            "eval_tokens_per_s": eval_rate,
        })
    );
    Ok(())
}
