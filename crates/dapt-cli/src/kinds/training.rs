//! What `pretrain` and `continue` share: their parameters, the mixture of domain loaders
//! they draw from, and the run itself (dapt-model's step-level loop in the stage's output
//! folder, so a killed stage resumes from its newest checkpoint).
//!
//! A training stage's `out/` holds:
//!
//! | path                         | what                                                    |
//! |------------------------------|---------------------------------------------------------|
//! | `model/`                     | `config.json`, `model.safetensors`, the `tokenizer.json` it was trained with |
//! | `train_log.csv`              | one row per step: lr, losses, grad norm, tokens, validation losses |
//! | `mixture.json`               | the realised mixture: sequences, tokens, share and epochs per domain |
//! | `checkpoints/step-N/`        | the newest checkpoints (model, optimizer, data cursor, RNG)            |
//!
//! and its `timing/` (not hashed: a rerun that reproduces the weights changes nothing
//! downstream) holds `throughput.csv`, the seconds and tokens/s of every step.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use dapt_dag::{ParamError, RunReport, StageContext, parse_params};
use dapt_model::mlm::MlmConfig;
use dapt_model::span::SpanConfig;
use dapt_model::{
    AdamWConfig, BatchSource, BertConfig, ComputeBudget, GptConfig, Initialization, LlamaConfig,
    ModelConfig, Objective, StepRecord, T5Config, TrainConfig, TrainObserver, TrainRun,
    ValidationSet, device_from_name, export_model, train,
};
use dapt_report::TrainLog;
use dapt_tokenize::{
    MASK, MixtureSampler, PAD, PackedTokens, SequenceLoader, TokenBatchSource, end_of_text_id,
    load_tokenizer, mask_id, sentinel_ids, special_token_ids, word_start_ids,
};
use serde::{Deserialize, Serialize};

use super::docs::params;
use super::model_card::{self, Card};
use super::tokenize::TOKENS;
use super::tokenizer::TOKENIZER_FILE;

pub const MODEL_DIR: &str = "model";
pub const MIXTURE_FILE: &str = "mixture.json";
/// transformers' tokenizer settings beside `tokenizer.json`.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// The architecture of a `pretrain` model (the vocabulary comes from the tokenizer).
/// `family = "gpt"` (the default), `"llama"`, `"bert"` (an encoder, trained by masked
/// LM) or `"t5"` (an encoder-decoder, trained by span corruption); the Llama-only keys
/// default to `n_kv_head = n_head`, `d_ff` = the SwiGLU width of Llama (8/3·d rounded up
/// to 64) and `rope_theta = 10000`; BERT's and T5's `d_ff` to `4·d`; T5 has `n_layer`
/// encoder and as many decoder layers (`n_decoder_layer`), ReLU, 32 relative buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    #[serde(default = "default_family")]
    pub family: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    pub context: usize,
    #[serde(default)]
    pub dropout: f64,
    pub n_kv_head: Option<usize>,
    pub d_ff: Option<usize>,
    pub rope_theta: Option<f64>,
    pub tie_embeddings: Option<bool>,
    /// T5: decoder layers (default `n_layer`).
    pub n_decoder_layer: Option<usize>,
}

fn default_family() -> String {
    "gpt".into()
}

impl ModelShape {
    /// An error naming the first Llama-only key a non-Llama family was given.
    fn refuse_llama_keys(&self) -> anyhow::Result<()> {
        for (key, set) in [
            ("n_kv_head", self.n_kv_head.is_some()),
            ("rope_theta", self.rope_theta.is_some()),
        ] {
            ensure!(
                !set,
                "`{key}` is a Llama option; set family = \"llama\" or remove it"
            );
        }
        Ok(())
    }

    pub fn with_vocab(&self, vocab_size: usize) -> anyhow::Result<ModelConfig> {
        let tie_embeddings = self.tie_embeddings.unwrap_or(true);
        match self.family.as_str() {
            "gpt" => {
                for (key, set) in [
                    ("n_kv_head", self.n_kv_head.is_some()),
                    ("d_ff", self.d_ff.is_some()),
                    ("rope_theta", self.rope_theta.is_some()),
                ] {
                    ensure!(
                        !set,
                        "`{key}` is a Llama option; set family = \"llama\" or remove it"
                    );
                }
                Ok(ModelConfig::Gpt(GptConfig {
                    vocab_size,
                    n_layer: self.n_layer,
                    n_head: self.n_head,
                    d_model: self.d_model,
                    context: self.context,
                    dropout: self.dropout,
                    tie_embeddings,
                    ..GptConfig::default()
                }))
            }
            "bert" => {
                self.refuse_llama_keys()?;
                Ok(ModelConfig::Bert(BertConfig {
                    vocab_size,
                    n_layer: self.n_layer,
                    n_head: self.n_head,
                    d_model: self.d_model,
                    d_ff: self.d_ff.unwrap_or(4 * self.d_model),
                    context: self.context,
                    dropout: self.dropout,
                    tie_embeddings,
                    ..BertConfig::default()
                }))
            }
            "t5" => {
                self.refuse_llama_keys()?;
                Ok(ModelConfig::T5(T5Config {
                    vocab_size,
                    n_layer: self.n_layer,
                    n_decoder_layer: self.n_decoder_layer.unwrap_or(self.n_layer),
                    n_head: self.n_head,
                    d_model: self.d_model,
                    d_kv: self.d_model / self.n_head.max(1),
                    d_ff: self.d_ff.unwrap_or(4 * self.d_model),
                    context: self.context,
                    dropout: self.dropout,
                    tie_embeddings,
                    scale_logits: tie_embeddings,
                    ..T5Config::default()
                }))
            }
            "llama" => Ok(ModelConfig::Llama(LlamaConfig {
                vocab_size,
                n_layer: self.n_layer,
                n_head: self.n_head,
                n_kv_head: self.n_kv_head.unwrap_or(self.n_head),
                d_model: self.d_model,
                d_ff: self
                    .d_ff
                    .unwrap_or_else(|| (8 * self.d_model / 3).div_ceil(64) * 64),
                context: self.context,
                head_dim: self.d_model / self.n_head.max(1),
                rope_theta: self.rope_theta.unwrap_or(10_000.0),
                tie_embeddings,
                dropout: self.dropout,
                ..LlamaConfig::default()
            })),
            other => bail!("family {other:?} is not a model family (gpt, llama, bert, t5)"),
        }
    }
}

/// Parameters of both training kinds; `pretrain` takes `model`, `continue` takes `from`.
#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    /// Input stage holding the token shards.
    #[serde(default = "default_tokens")]
    pub tokens: String,
    /// Input stage holding `tokenizer.json` (sets the vocabulary; copied next to the model).
    #[serde(default = "default_tokenizer")]
    pub tokenizer: String,
    /// `pretrain`: the architecture.
    pub model: Option<ModelShape>,
    /// `continue`: the input training stage whose model is continued.
    pub from: Option<String>,
    /// Domain weights of the training mixture, e.g. `{ financial = 0.5, general = 0.5 }`.
    pub mixture: BTreeMap<String, f64>,
    /// Training tokens (targets) for this stage; or `epochs` over the mixture's domains.
    pub token_budget: Option<u64>,
    pub epochs: Option<f64>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Defaults to the model context.
    pub seq_len: Option<usize>,
    #[serde(default = "one")]
    pub grad_accum_steps: usize,
    pub peak_lr: f64,
    /// Defaults to `peak_lr / 10`.
    pub min_lr: Option<f64>,
    /// Defaults to 5% of the steps (at least 1).
    pub warmup_steps: Option<u64>,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables it.
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    #[serde(default = "default_every")]
    pub eval_every: u64,
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    #[serde(default = "default_every")]
    pub checkpoint_every: u64,
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// `cpu`, or `cuda` / `cuda:N` with the `tch` feature.
    #[serde(default = "default_device")]
    pub device: String,
    /// Defaults to the pipeline seed.
    pub seed: Option<u64>,
    /// `clm` (next token; decoders) or `mlm` (masked tokens; encoders). Defaults to the
    /// model family's own.
    pub objective: Option<String>,
    /// `mlm`'s masking: `mask_prob` (0.15), `mask_token_ratio` (0.8),
    /// `random_token_ratio` (0.1), `whole_word` (false).
    pub masking: Option<MlmConfig>,
    /// `span`'s corruption: `noise_density` (0.15), `mean_span_length` (3).
    pub noise: Option<SpanConfig>,
}

/// The objectives a training stage can name.
const OBJECTIVES: [&str; 3] = ["clm", "mlm", "span"];

/// The objective a family trains by.
fn family_objective(model: &ModelConfig) -> &'static str {
    if model.causal() {
        "clm"
    } else if model.is_seq2seq() {
        "span"
    } else {
        "mlm"
    }
}

fn default_tokens() -> String {
    "tokenize".into()
}
fn default_tokenizer() -> String {
    "tokenizer".into()
}
fn default_batch_size() -> usize {
    8
}
fn one() -> usize {
    1
}
fn default_weight_decay() -> f64 {
    0.1
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_every() -> u64 {
    50
}
fn default_eval_batches() -> usize {
    4
}
fn default_keep() -> usize {
    2
}
fn default_device() -> String {
    "cpu".into()
}

/// Which of the two kinds is checking or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Scratch,
    Continue,
}

impl Params {
    /// Everything `check` can tell without the upstream outputs.
    pub fn check(table: &toml::Table, start: Start) -> Result<Params, Vec<ParamError>> {
        let p: Params = parse_params(table)?;
        let mut errors = Vec::new();
        match (start, &p.model, &p.from) {
            (Start::Scratch, None, _) => errors.push(ParamError::invalid(
                "model",
                "pretrain needs `model = { n_layer, n_head, d_model, context }`",
            )),
            (Start::Scratch, _, Some(_)) => errors.push(ParamError::invalid(
                "from",
                "pretrain starts from scratch; use kind = \"continue\" to start from a model",
            )),
            (Start::Continue, _, None) => errors.push(ParamError::invalid(
                "from",
                "continue needs `from = \"STAGE\"`, the training stage whose model it continues",
            )),
            (Start::Continue, Some(_), _) => errors.push(ParamError::invalid(
                "model",
                "continue keeps the architecture of its `from` model; remove `model`",
            )),
            _ => {}
        }
        if let Some(shape) = &p.model
            && let Err(e) = shape.with_vocab(1).and_then(|model| model.validate())
        {
            errors.push(ParamError::invalid("model", format!("{e:#}")));
        }
        match p.objective.as_deref() {
            None => {}
            Some(name) if !OBJECTIVES.contains(&name) => errors.push(ParamError::invalid(
                "objective",
                format!("{name:?} is not an objective ({})", OBJECTIVES.join(", ")),
            )),
            Some(name) => {
                if let Some(shape) = &p.model
                    && let Ok(model) = shape.with_vocab(1)
                    && name != family_objective(&model)
                {
                    errors.push(ParamError::invalid(
                        "objective",
                        format!(
                            "{name} does not train the {} family: clm trains a decoder (gpt, llama), mlm an encoder (bert), span an encoder-decoder (t5)",
                            model.family()
                        ),
                    ));
                }
            }
        }
        if let Some(masking) = &p.masking
            && let Err(e) = masking.validate()
        {
            errors.push(ParamError::invalid("masking", format!("{e:#}")));
        }
        if let Some(noise) = &p.noise
            && let Err(e) = noise.validate()
        {
            errors.push(ParamError::invalid("noise", format!("{e:#}")));
        }
        if p.mixture.is_empty() {
            errors.push(ParamError::invalid(
                "mixture",
                "name at least one domain, e.g. mixture = { general = 1.0 }",
            ));
        }
        for (domain, weight) in &p.mixture {
            if !(weight.is_finite() && *weight > 0.0) {
                errors.push(ParamError::invalid(
                    format!("mixture.{domain}"),
                    format!("weight {weight} must be positive (leave the domain out instead)"),
                ));
            }
        }
        match (p.token_budget, p.epochs) {
            (None, None) | (Some(_), Some(_)) => errors.push(ParamError::invalid(
                "token_budget",
                "set exactly one of `token_budget` (training tokens) and `epochs`",
            )),
            (Some(0), _) => errors.push(ParamError::invalid("token_budget", "must be positive")),
            (_, Some(e)) if !(e.is_finite() && e > 0.0) => {
                errors.push(ParamError::invalid("epochs", "must be positive"))
            }
            _ => {}
        }
        if !(p.peak_lr.is_finite() && p.peak_lr > 0.0) {
            errors.push(ParamError::invalid("peak_lr", "must be positive"));
        }
        if let Some(min_lr) = p.min_lr
            && !(0.0..=p.peak_lr).contains(&min_lr)
        {
            errors.push(ParamError::invalid("min_lr", "must be in [0, peak_lr]"));
        }
        if p.grad_clip < 0.0 {
            errors.push(ParamError::invalid(
                "grad_clip",
                "must be >= 0 (0 disables)",
            ));
        }
        for (key, value) in [
            ("batch_size", p.batch_size),
            ("grad_accum_steps", p.grad_accum_steps),
            ("eval_batches", p.eval_batches),
            ("keep_checkpoints", p.keep_checkpoints),
        ] {
            if value == 0 {
                errors.push(ParamError::invalid(key, "must be at least 1"));
            }
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    pub fn tokens_per_step(&self, seq_len: usize) -> u64 {
        (self.batch_size * seq_len * self.grad_accum_steps) as u64
    }

    /// This stage's training tokens, given each domain's training tokens.
    pub fn budget(&self, train_tokens: &BTreeMap<String, u64>) -> u64 {
        match (self.token_budget, self.epochs) {
            (Some(tokens), _) => tokens,
            (None, Some(epochs)) => {
                let tokens: u64 = self
                    .mixture
                    .keys()
                    .filter_map(|d| train_tokens.get(d))
                    .sum();
                (epochs * tokens as f64).round() as u64
            }
            (None, None) => unreachable!("checked: one of token_budget and epochs is set"),
        }
    }

    /// The loop's configuration for a budget of `budget` tokens.
    pub fn train_config(&self, seq_len: usize, budget: u64, seed: u64) -> TrainConfig {
        let max_steps = budget.div_ceil(self.tokens_per_step(seq_len)).max(1);
        TrainConfig {
            seed,
            batch_size: self.batch_size,
            seq_len,
            grad_accum_steps: self.grad_accum_steps,
            max_steps,
            peak_lr: self.peak_lr,
            min_lr: self.min_lr.unwrap_or(self.peak_lr / 10.0),
            warmup_steps: self
                .warmup_steps
                .unwrap_or_else(|| (max_steps / 20).max(1))
                .min(max_steps),
            optimizer: AdamWConfig {
                weight_decay: self.weight_decay,
                ..AdamWConfig::default()
            },
            grad_clip: (self.grad_clip > 0.0).then_some(self.grad_clip),
            eval_every: self.eval_every,
            eval_batches: self.eval_batches,
            checkpoint_every: self.checkpoint_every,
            keep_checkpoints: self.keep_checkpoints,
            objective: dapt_model::Objective::Clm,
        }
    }
}

/// Training tokens per domain and split, from the token stage's manifest counts.
pub fn token_counts(
    by_domain_split: &serde_json::Value,
    split: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let table: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
        serde_json::from_value(by_domain_split.clone())
            .context("token counts by domain and split")?;
    Ok(table
        .into_iter()
        .filter_map(|(domain, splits)| {
            let tokens = splits.get(split)?.get("tokens")?.as_u64()?;
            Some((domain, tokens))
        })
        .collect())
}

/// The run's objective: the one named, else the family's own (clm for decoders, mlm for
/// encoders), with the mask token and special ids from the tokenizer of stage
/// `tokenizer_stage`.
fn objective(
    p: &Params,
    model: &ModelConfig,
    tokenizer: &dapt_tokenize::Tokenizer,
    tokenizer_stage: &str,
) -> anyhow::Result<Objective> {
    let name = p.objective.as_deref().unwrap_or(family_objective(model));
    let objective = match name {
        "span" => {
            // <extra_id_0>, <extra_id_1>, ... as far as the tokenizer has them.
            let sentinels = sentinel_ids(tokenizer);
            ensure!(
                !sentinels.is_empty(),
                "objective span needs the sentinel tokens <extra_id_0>, ... in the tokenizer of \
                 stage `{tokenizer_stage}`: set sentinels = 100 there"
            );
            let decoder_start = match model {
                ModelConfig::T5(c) => c.decoder_start_id,
                _ => 0,
            };
            Objective::Span {
                noise: p.noise.clone().unwrap_or_default(),
                sentinels,
                eos: end_of_text_id(tokenizer)?,
                decoder_start,
            }
        }
        "clm" => Objective::Clm,
        "mlm" => {
            let mask_id = mask_id(tokenizer).with_context(|| {
                format!(
                    "objective mlm needs a mask token ({MASK} or [MASK]) in the tokenizer of stage \
                     `{tokenizer_stage}`: set mask_token = true there"
                )
            })?;
            let masking = p.masking.clone().unwrap_or_default();
            let word_starts = if masking.whole_word {
                let ids = word_start_ids(tokenizer);
                ensure!(
                    !ids.is_empty(),
                    "masking.whole_word: the tokenizer of stage `{tokenizer_stage}` marks no \
                     word boundary (no leading Ġ or ▁, no ## pieces)"
                );
                ids
            } else {
                Vec::new()
            };
            Objective::Mlm {
                masking,
                mask_id,
                special: special_token_ids(tokenizer),
                word_starts,
            }
        }
        other => bail!(
            "objective {other:?} is not one of {}",
            OBJECTIVES.join(", ")
        ),
    };
    objective.validate(model)?;
    Ok(objective)
}

/// The model a training stage exported, and its tokenizer.
pub fn model_dir(stage_out: &Path) -> PathBuf {
    stage_out.join(MODEL_DIR)
}

/// A training run as a stage: `start` tells how the weights begin.
pub fn run(ctx: &StageContext, start: Start) -> anyhow::Result<RunReport> {
    let p: Params = params(ctx.stage)?;
    for (key, stage) in [
        ("tokens", Some(&p.tokens)),
        ("tokenizer", Some(&p.tokenizer)),
    ]
    .into_iter()
    .chain([("from", p.from.as_ref())])
    {
        if let Some(stage) = stage {
            ensure!(
                ctx.stage.inputs.contains(stage),
                "{key} = \"{stage}\" must name one of this stage's inputs ({})",
                ctx.stage.inputs.join(", ")
            );
        }
    }
    let seed = p.seed.unwrap_or(ctx.pipeline.seed);
    let device = device_from_name(&p.device)?;

    let tokenizer_path = ctx.input_dir(&p.tokenizer).join(TOKENIZER_FILE);
    let tokenizer = load_tokenizer(&tokenizer_path)
        .with_context(|| format!("loading {}", tokenizer_path.display()))?;
    let vocab_size = tokenizer.get_vocab_size(true);

    let (model, init, tokens_before) = match start {
        Start::Scratch => {
            let shape = p.model.as_ref().expect("checked: pretrain has a model");
            let mut model = shape.with_vocab(vocab_size)?;
            // T5 starts its decoder with the padding token.
            if let ModelConfig::T5(c) = &mut model
                && let Some(pad) = tokenizer.token_to_id(PAD)
            {
                c.decoder_start_id = pad;
            }
            (model, Initialization::Scratch, 0)
        }
        Start::Continue => {
            let from = p.from.as_ref().expect("checked: continue has from");
            let from_model = model_dir(&ctx.input_dir(from));
            let model = dapt_model::read_exported_config(&from_model)?;
            same_tokenizer(&from_model.join(TOKENIZER_FILE), &tokenizer_path, from)?;
            let before = ctx
                .input_manifest(from)?
                .counts
                .get("tokens_total")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            (model, Initialization::FromExport(from_model), before)
        }
    };
    ensure!(
        model.vocab_size() == vocab_size,
        "the model's vocabulary has {} entries but the tokenizer of stage `{}` has {vocab_size}",
        model.vocab_size(),
        p.tokenizer
    );
    let seq_len = p.seq_len.unwrap_or(model.context());

    let token_manifest = ctx.input_manifest(&p.tokens)?;
    let by_domain_split = token_manifest
        .counts
        .get("by_domain_split")
        .with_context(|| {
            format!(
                "stage `{}` reports no token counts; is it a tokenize stage?",
                p.tokens
            )
        })?;
    let train_tokens = token_counts(by_domain_split, "train")?;
    for domain in p.mixture.keys() {
        if !train_tokens.contains_key(domain) {
            bail!(
                "mixture domain `{domain}` has no training tokens in stage `{}` (it has: {})",
                p.tokens,
                train_tokens.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let budget = p.budget(&train_tokens);
    let config = TrainConfig {
        objective: objective(&p, &model, &tokenizer, &p.tokenizer)?,
        ..p.train_config(seq_len, budget, seed)
    };

    // Every stream the run needs, from one pass over the token shards.
    let validation_domains: Vec<String> = token_counts(by_domain_split, "validation")?
        .into_keys()
        .collect();
    let wanted: Vec<(&str, &str)> = p
        .mixture
        .keys()
        .map(|domain| ("train", domain.as_str()))
        .chain(
            validation_domains
                .iter()
                .map(|d| ("validation", d.as_str())),
        )
        .collect();
    let shards = token_shards(&ctx.input_dir(&p.tokens))?;
    let mut packed = PackedTokens::from_shards_for(&shards, &wanted, seq_len)?.into_iter();
    let loaders = p
        .mixture
        .iter()
        .zip(packed.by_ref())
        .map(|((domain, weight), packed)| {
            check_vocabulary(packed.max_token(), vocab_size, domain)?;
            Ok((
                SequenceLoader::new(packed, domain_seed(seed, domain)),
                *weight,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut source = Batches(MixtureSampler::new(loaders)?);
    let mut validation: Vec<ValidationSet> = validation_domains
        .into_iter()
        .zip(packed)
        .map(|(domain, packed)| {
            let loader = SequenceLoader::new(packed, domain_seed(seed, &domain));
            ValidationSet {
                name: domain,
                source: Box::new(Batches(loader)),
            }
        })
        .collect();

    let started = Instant::now();
    let mut observer = StageObserver { ctx };
    let outcome = train(
        TrainRun {
            dir: &ctx.out_dir,
            timing_dir: &ctx.timing_dir,
            model: &model,
            config: &config,
            init,
            device: &device,
        },
        &mut source,
        &mut validation,
        &mut observer,
    )?;
    let seconds = started.elapsed().as_secs_f64();

    let model_out = model_dir(&ctx.out_dir);
    export_model(&outcome.model, &model, &model_out)?;
    dapt_dag::fsutil::atomic_write(
        &model_out.join(TOKENIZER_FILE),
        &std::fs::read(&tokenizer_path)?,
    )?;
    // transformers' tokenizer settings: the base model's when it has them (its special
    // tokens), else dapt's own.
    let base_settings = p
        .from
        .as_ref()
        .map(|from| model_dir(&ctx.input_dir(from)).join(TOKENIZER_CONFIG_FILE))
        .filter(|file| file.is_file());
    let settings = match base_settings {
        Some(file) => std::fs::read(file)?,
        None => serde_json::to_vec_pretty(&dapt_tokenize::hf_tokenizer_config(
            &tokenizer,
            model.context(),
        ))?,
    };
    dapt_dag::fsutil::atomic_write(&model_out.join(TOKENIZER_CONFIG_FILE), &settings)?;
    let mixture = source.0.report();
    dapt_dag::fsutil::atomic_write(
        &ctx.out_dir.join(MIXTURE_FILE),
        &serde_json::to_vec_pretty(&mixture)?,
    )?;

    let log = TrainLog::read(&ctx.out_dir.join(dapt_model::LOG_FILE))?;
    let tokens = outcome.step * config.tokens_per_step();
    let tokens_total = tokens_before + tokens;
    model_card::write(
        &model_out,
        &Card {
            title: format!("{} (dapt stage `{}`)", ctx.pipeline.name, ctx.stage.name),
            base_model: p.from.clone(),
            license: "other".into(),
            model: model.clone(),
            summary: match &p.from {
                Some(from) => format!(
                    "Continued pre-training of stage `{from}`'s model on a domain mixture \
                     (domain-adaptive pre-training)."
                ),
                None => "A language model pre-trained from scratch by dapt.".into(),
            },
            mixture: Some(serde_json::to_value(&mixture)?),
            tokens: Some((tokens, tokens_total)),
            training: Some(serde_json::to_value(&config)?),
            validation: log.last_validation().into_iter().collect(),
            evaluation: Vec::new(),
        },
    )?;
    let params = model.param_count() as u64;
    let mut counts = BTreeMap::new();
    let mut put = |key: &str, value: serde_json::Value| counts.insert(key.to_owned(), value);
    put("params", params.into());
    put("steps", outcome.step.into());
    put("tokens", tokens.into());
    put("tokens_total", tokens_total.into());
    put(
        "tokens_per_s",
        dapt_report::median_tokens_per_s(&ctx.timing_dir.join(dapt_model::THROUGHPUT_FILE))?.into(),
    );
    put(
        "final_train_loss",
        log.rows.last().map_or(f64::NAN, |r| r.train_loss).into(),
    );
    put("validation", serde_json::to_value(log.last_validation())?);
    put("mixture", serde_json::to_value(&mixture)?);
    put("model", serde_json::to_value(&model)?);
    put("train", serde_json::to_value(&config)?);
    put(
        "init",
        p.from.clone().unwrap_or_else(|| "scratch".into()).into(),
    );
    put("device", p.device.clone().into());
    put("seconds_training", seconds.into());
    put(
        "chinchilla",
        serde_json::to_value(ComputeBudget::new(params, tokens_total))?,
    );
    Ok(RunReport {
        counts,
        conservation: None,
    })
}

/// Each domain's loader shuffles with its own stream of the run seed.
fn domain_seed(seed: u64, domain: &str) -> u64 {
    let digest = blake3::hash(format!("{seed}/{domain}").as_bytes());
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// A continued model must see token ids from the tokenizer it was trained with.
fn same_tokenizer(model_tokenizer: &Path, tokenizer: &Path, from: &str) -> anyhow::Result<()> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    ensure!(
        read(model_tokenizer)? == read(tokenizer)?,
        "the model of stage `{from}` was trained with another tokenizer ({}) than {}; \
         continue it with its own: set `from = \"{}\"` in the tokenizer stage",
        model_tokenizer.display(),
        tokenizer.display(),
        model_tokenizer.display()
    );
    Ok(())
}

fn check_vocabulary(max_token: Option<u32>, vocab_size: usize, domain: &str) -> anyhow::Result<()> {
    if let Some(max) = max_token {
        ensure!(
            (max as usize) < vocab_size,
            "domain `{domain}` holds token id {max}, outside the model's vocabulary of \
             {vocab_size}; were the shards encoded with another tokenizer?"
        );
    }
    Ok(())
}

pub fn token_shards(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = dir.join(TOKENS);
    let mut shards: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no token shards in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    shards.sort();
    Ok(shards)
}

/// dapt-tokenize's batch sources, as the trainer consumes them.
struct Batches<S>(S);

impl<S: TokenBatchSource> BatchSource for Batches<S> {
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> anyhow::Result<Vec<u32>> {
        self.0.next_batch(batch, seq_len)
    }
    fn state(&self) -> serde_json::Value {
        self.0.state()
    }
    fn restore(&mut self, state: &serde_json::Value) -> anyhow::Result<()> {
        self.0.restore(state)
    }
}

/// Training progress on the stage's bar and log; checkpoints are failure-injection points.
struct StageObserver<'a, 'b> {
    ctx: &'a StageContext<'b>,
}

impl TrainObserver for StageObserver<'_, '_> {
    fn on_start(&mut self, resumed_from_step: u64, max_steps: u64) {
        self.ctx.set_progress_total(max_steps, "steps");
        self.ctx.add_progress(resumed_from_step);
        if resumed_from_step > 0 {
            self.ctx.log(&format!(
                "resumed from the checkpoint of step {resumed_from_step}"
            ));
        }
    }

    fn on_step(&mut self, record: &StepRecord) -> ControlFlow<()> {
        self.ctx.add_progress(1);
        self.ctx.status(&format!(
            "loss {:.3} lr {:.1e} {:.0} tok/s",
            record.train_loss, record.lr, record.tokens_per_s
        ));
        if !record.validation.is_empty() {
            let validation: Vec<String> = record
                .validation
                .iter()
                .map(|(name, loss)| format!("{name} {loss:.3}"))
                .collect();
            self.ctx.log(&format!(
                "step {}: train loss {:.3}, validation {}",
                record.step,
                record.train_loss,
                validation.join(", ")
            ));
        }
        ControlFlow::Continue(())
    }

    fn on_checkpoint(&mut self, step: u64, dir: &Path) {
        if let Err(e) = self.ctx.durable_progress("checkpoints", step) {
            self.ctx.log(&format!(
                "could not record checkpoint {}: {e:#}",
                dir.display()
            ));
        }
    }

    fn on_notice(&mut self, message: &str) {
        self.ctx.log(message);
    }
}
