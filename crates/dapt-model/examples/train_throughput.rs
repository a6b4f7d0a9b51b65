//! Training and evaluation throughput of a GPT (default: 4 layers, d 256, 4 heads; always
//! T 128, B 8, vocab 8192), or of SmolLM2-135M's Llama shape (`smollm2`: 30 layers, d 576,
//! 9/3 heads, d_ff 1536, vocab 49152, tied; B 4, T 256), through the real training loop
//! and the real scorer.
//!
//! `cargo run --release -p dapt-model --example train_throughput -- [DEVICE] [STEPS] [N_LAYER D_MODEL N_HEAD | smollm2]`
//!
//! The last line is JSON (`train_tokens_per_s`, `eval_tokens_per_s`, `params`) for
//! scripts/bench-train.sh, which runs PyTorch on the same shapes.

use std::time::Instant;

/// As the dapt binary (see the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use dapt_model::{
    BatchSource, GptConfig, LlamaConfig, ModelConfig, RandomTokens, device_from_name,
    measure_training, token_nll,
};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let device_name = args.next().unwrap_or_else(|| "cpu".into());
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let rest: Vec<String> = args.collect();
    let (model, batch, seq_len) = if rest.first().map(String::as_str) == Some("smollm2") {
        let smollm2 = LlamaConfig::smollm2_135m();
        (ModelConfig::Llama(smollm2), 4, 256)
    } else {
        let mut shape = rest.iter().map(|s| s.parse::<usize>());
        let mut next_or = |default| shape.next().transpose().map(|v| v.unwrap_or(default));
        let (n_layer, d_model, n_head) = (next_or(4)?, next_or(256)?, next_or(4)?);
        let gpt = GptConfig {
            vocab_size: 8192,
            n_layer,
            n_head,
            d_model,
            context: 128,
            ..GptConfig::default()
        };
        (ModelConfig::Gpt(gpt), 8, 128)
    };
    let device = device_from_name(&device_name)?;
    let measured = measure_training(&model, batch, seq_len, steps, &device, &mut |record| {
        eprintln!(
            "step {:>3}  loss {:.3}  {:>8.0} tokens/s",
            record.step, record.train_loss, record.tokens_per_s
        )
    })?;
    // Skip the first two steps (allocation warm-up).
    let median = measured.median_after(2);
    println!(
        "{device_name}: {} params, median {median:.0} training tokens/s over {} steps (B{batch} T{seq_len}, fp32); last loss {:?}",
        model.param_count(),
        steps.saturating_sub(2),
        measured.last_loss
    );

    // Evaluation: non-overlapping windows of T tokens, B at a time, as the evaluate stage
    // scores documents; best of three passes over 16 windows.
    let ids = RandomTokens::new(model.vocab_size()).next_batch(1, 16 * seq_len)?;
    let mut eval_rate = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        let scored = token_nll(&measured.model, &ids, seq_len, seq_len, batch)?;
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
