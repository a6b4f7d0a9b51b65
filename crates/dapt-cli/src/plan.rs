//! `dapt plan`: what the training stages of a pipeline will cost before they run.
//!
//! For each `pretrain` / `continue` stage: parameters N (from its model, or its `from`
//! model's), the tokens D it trains on (its budget, and the model's total through its
//! `from` chain), training FLOPs 6·N·D, the Chinchilla compute-optimal 20·N tokens and fitted
//! loss L(N, D), the epochs each mixture domain will see (from the token counts on disk), and
//! the wall time at the tokens/s measured by the newest training run of the same model
//! shape — or, when there is none, by a 3-step probe on random tokens.

use std::collections::BTreeMap;

use anyhow::Context;
use dapt_dag::Pipeline;
use dapt_dag::manifest::{Manifest, StageDir};
use dapt_model::{ComputeBudget, ModelConfig, device_from_name, measure_training};
use serde::Serialize;

use crate::kinds::training::{self, Params, Start};

/// The plan of one training stage.
#[derive(Debug, Serialize)]
pub struct StagePlan {
    pub stage: String,
    pub kind: String,
    pub model: ModelConfig,
    /// This stage's training tokens.
    pub tokens: u64,
    pub steps: u64,
    pub budget: ComputeBudget,
    /// Passes over each mixture domain's training tokens (`None`: not tokenized yet).
    pub epochs: BTreeMap<String, Option<f64>>,
    pub tokens_per_s: f64,
    /// Where `tokens_per_s` comes from.
    pub throughput_from: String,
    pub wall_s: f64,
}

pub fn plan(pipeline: &Pipeline) -> anyhow::Result<Vec<StagePlan>> {
    let mut plans: Vec<StagePlan> = Vec::new();
    let mut measured = measured_throughputs(pipeline);
    for stage in &pipeline.stages {
        let start = match stage.kind.as_str() {
            "pretrain" => Start::Scratch,
            "continue" => Start::Continue,
            _ => continue,
        };
        let p = Params::check(&stage.params, start)
            .map_err(|e| crate::kinds::param_error(&e))
            .with_context(|| format!("stage {}", stage.name))?;
        let train_tokens = train_tokens(pipeline, &p.tokens);
        let (model, tokens_before) = match &p.from {
            None => {
                let shape = p.model.as_ref().expect("checked: pretrain has a model");
                let model = shape
                    .with_vocab(vocab_size(pipeline, &p.tokenizer)?)
                    .with_context(|| format!("stage {}", stage.name))?;
                (model, 0)
            }
            Some(from) if is_model_stage(pipeline, from) => (imported_model(pipeline, from)?, 0),
            Some(from) => {
                let base = plans
                    .iter()
                    .find(|plan| &plan.stage == from)
                    .with_context(|| {
                        format!(
                            "stage {}: `from = \"{from}\"` is not a pretrain or continue stage \
                         listed before it",
                            stage.name
                        )
                    })?;
                (base.model.clone(), base.budget.tokens)
            }
        };
        let seq_len = p.seq_len.unwrap_or(model.context());
        let tokens = match (&train_tokens, p.epochs) {
            (None, Some(_)) => anyhow::bail!(
                "stage {}: its budget is in epochs, and stage `{}` has no token counts yet; \
                 run `dapt run {}` first",
                stage.name,
                p.tokens,
                p.tokens
            ),
            (counts, _) => p.budget(&counts.clone().unwrap_or_default()),
        };
        let config = p.train_config(seq_len, tokens, p.seed.unwrap_or(pipeline.seed));
        let tokens = config.max_steps * config.tokens_per_step();
        let total_weight: f64 = p.mixture.values().sum();
        let epochs = p
            .mixture
            .iter()
            .map(|(domain, weight)| {
                let available = train_tokens.as_ref().and_then(|t| t.get(domain).copied());
                let share = tokens as f64 * weight / total_weight;
                (domain.clone(), available.map(|n| share / n.max(1) as f64))
            })
            .collect();
        let key = shape_key(&model, config.batch_size, seq_len, &p.device);
        let (tokens_per_s, throughput_from) = match measured.get(&key) {
            Some(found) => found.clone(),
            None => {
                let rate = probe(&model, config.batch_size, seq_len, &p.device)?;
                let found = (rate, "a 3-step probe on random tokens".to_owned());
                measured.insert(key, found.clone());
                found
            }
        };
        plans.push(StagePlan {
            stage: stage.name.clone(),
            kind: stage.kind.clone(),
            budget: ComputeBudget::new(model.param_count() as u64, tokens_before + tokens),
            model,
            tokens,
            steps: config.max_steps,
            epochs,
            tokens_per_s,
            throughput_from,
            wall_s: tokens as f64 / tokens_per_s.max(1e-9),
        });
    }
    Ok(plans)
}

/// Throughput depends on the model, the batch shape and the device.
fn shape_key(model: &ModelConfig, batch_size: usize, seq_len: usize, device: &str) -> String {
    let config = serde_json::to_string(model).expect("plain data");
    format!("{config} b{batch_size} t{seq_len} {device}")
}

fn is_model_stage(pipeline: &Pipeline, stage: &str) -> bool {
    pipeline.stage(stage).is_some_and(|s| s.kind == "model")
}

/// The architecture a `model` stage imported (it must have run: its file decides it).
fn imported_model(pipeline: &Pipeline, stage: &str) -> anyhow::Result<ModelConfig> {
    let dir = training::model_dir(&StageDir::new(&pipeline.workdir, stage).out());
    dapt_model::read_exported_config(&dir).with_context(|| {
        format!("stage `{stage}` has not imported its model yet; run `dapt run {stage}` first")
    })
}

fn manifest(pipeline: &Pipeline, stage: &str) -> Option<Manifest> {
    StageDir::new(&pipeline.workdir, stage)
        .read_manifest()
        .ok()
        .flatten()
}

/// tokens/s of every finished training stage, by model and batch shape.
fn measured_throughputs(pipeline: &Pipeline) -> BTreeMap<String, (f64, String)> {
    let mut found = BTreeMap::new();
    for stage in &pipeline.stages {
        let Some(m) = manifest(pipeline, &stage.name) else {
            continue;
        };
        let counts = &m.counts;
        let (Some(model), Some(train), Some(rate)) = (
            counts
                .get("model")
                .and_then(|v| serde_json::from_value::<ModelConfig>(v.clone()).ok()),
            counts.get("train"),
            counts.get("tokens_per_s").and_then(|v| v.as_f64()),
        ) else {
            continue;
        };
        let as_usize = |key: &str| train.get(key).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        let device = counts
            .get("device")
            .and_then(|v| v.as_str())
            .unwrap_or("cpu");
        let key = shape_key(&model, as_usize("batch_size"), as_usize("seq_len"), device);
        found.insert(key, (rate, format!("stage {}'s last run", stage.name)));
    }
    found
}

/// Training tokens per domain from a tokenize stage's manifest, if it has run.
fn train_tokens(pipeline: &Pipeline, tokens_stage: &str) -> Option<BTreeMap<String, u64>> {
    let m = manifest(pipeline, tokens_stage)?;
    training::token_counts(m.counts.get("by_domain_split")?, "train").ok()
}

/// The vocabulary: the trained tokenizer's if it exists, else the stage's `vocab_size`.
fn vocab_size(pipeline: &Pipeline, tokenizer_stage: &str) -> anyhow::Result<usize> {
    let file = StageDir::new(&pipeline.workdir, tokenizer_stage)
        .out()
        .join(crate::kinds::TOKENIZER_FILE);
    if let Ok(tokenizer) = dapt_tokenize::load_tokenizer(&file) {
        return Ok(tokenizer.get_vocab_size(true));
    }
    let spec = pipeline
        .stage(tokenizer_stage)
        .with_context(|| format!("no stage `{tokenizer_stage}`"))?;
    Ok(spec
        .params
        .get("vocab_size")
        .and_then(|v| v.as_integer())
        .map_or(8192, |v| v as usize))
}

/// Trains 3 steps on random tokens; the median of the last two.
fn probe(
    model: &ModelConfig,
    batch_size: usize,
    seq_len: usize,
    device: &str,
) -> anyhow::Result<f64> {
    let measured = measure_training(
        model,
        batch_size,
        seq_len,
        3,
        &device_from_name(device)?,
        &mut |_| {},
    )
    .context("throughput probe")?;
    Ok(measured.median_after(1))
}

/// The plan as a table, with the domains' epochs underneath.
pub fn render(plans: &[StagePlan]) -> String {
    let mut rows = vec![
        [
            "STAGE",
            "PARAMS",
            "TOKENS",
            "MODEL TOKENS",
            "FLOPS (6ND)",
            "CHINCHILLA 20N",
            "OF OPTIMAL",
            "L(N,D)",
            "TOKENS/S",
            "WALL",
        ]
        .map(String::from),
    ];
    for p in plans {
        rows.push([
            p.stage.clone(),
            si(p.budget.params as f64),
            si(p.tokens as f64),
            si(p.budget.tokens as f64),
            format!("{:.2e}", p.budget.flops),
            si(p.budget.optimal_tokens as f64),
            format!("{:.2}%", 100.0 * p.budget.fraction_of_optimal),
            format!("{:.2}", p.budget.predicted_loss),
            format!("{:.0}", p.tokens_per_s),
            duration(p.wall_s),
        ]);
    }
    let mut out = crate::table(&rows);
    for p in plans {
        let epochs: Vec<String> = p
            .epochs
            .iter()
            .map(|(domain, e)| match e {
                Some(e) => format!("{domain} {e:.3} epochs"),
                None => format!("{domain} (not tokenized yet)"),
            })
            .collect();
        out.push_str(&format!(
            "{}: {} steps; {}; tokens/s from {}\n",
            p.stage,
            p.steps,
            epochs.join(", "),
            p.throughput_from
        ));
    }
    let total: f64 = plans.iter().map(|p| p.wall_s).sum();
    out.push_str(&format!("training wall time: {}\n", duration(total)));
    out
}

fn si(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2}B", n / 1e9),
        n if n >= 1e6 => format!("{:.2}M", n / 1e6),
        n if n >= 1e3 => format!("{:.1}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

fn duration(seconds: f64) -> String {
    if seconds >= 3600.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else if seconds >= 60.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{seconds:.0} s")
    }
}
