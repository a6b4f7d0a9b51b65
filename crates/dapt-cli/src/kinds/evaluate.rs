//! `kind = "evaluate"`: scores every model of `models` the same way.
//!
//! - **Language modelling**, per domain, on the `split` documents of the `tokens` stage's token
//!   shards: token loss (nats), perplexity and bits per byte (summed NLL of each document's
//!   text, after an `<|endoftext|>`, over its UTF-8 bytes; lm-evaluation-harness's definition).
//!   `max_tokens_per_domain` caps the work: documents are taken whole in a seeded hash order of
//!   their ids (a representative, reproducible sample), the same documents for every model.
//!   Documents longer than the window are scored in rolling windows sliding by `stride`.
//!   Encoders (masked-LM models) get `masked_lm` scores instead, on the same documents:
//!   masked-token loss under the same seeded masks for every model, and pseudo-perplexity
//!   over the first `pseudo_tokens` tokens of each domain (`dapt_eval::masked`); encoder-
//!   decoders get `span_lm`: the span-corruption loss under the same seeded spans for every
//!   model (`dapt_eval::span`).
//! - **Sentiment**, per dataset of the `sentiment` stage's documents (grouped by corpus): a
//!   linear probe on mean-pooled features (train split → test split), zero-shot label-word
//!   likelihood after `{text}{prompt}` (decoders only), and the majority class, each with
//!   accuracy and macro-F1.
//!
//! Models are the `model/` directories (`config.json` + `model.safetensors`) of the named
//! training stages. One model is one resumable shard: an interrupted run keeps the models it
//! finished. Outputs `out/scores.json`; the same numbers are the manifest's counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use dapt_dag::{ParamError, RunReport, StageContext, StageKind, parse_params};
use dapt_eval::lm::ScoredDocument;
use dapt_eval::{
    LmEvalConfig, LmScore, MaskedLmConfig, MaskedScore, ProbeConfig, SentimentConfig,
    SentimentExample, SentimentScores, SentimentTask, SpanEvalConfig, SpanScore,
    evaluate_sentiment, hash_order, score_documents, score_masked, score_span,
    sentiment_progress_total, take_until_tokens,
};
use dapt_model::mlm::{MlmConfig, MlmVocab};
use dapt_model::span::{SpanConfig, raw_length_for_inputs};
use dapt_tokenize::{
    Document, DocumentEncoder, MASK, TokenShardReader, end_of_text_id, load_tokenizer, mask_id,
    sentinel_ids, special_token_ids,
};
use serde::{Deserialize, Serialize};

use super::docs::{DOCS, params, shards_of};
use super::tokenize::TOKENS;
use super::tokenizer::TOKENIZER_FILE;

pub const SCORES_FILE: &str = "scores.json";

#[derive(Debug, Deserialize)]
struct Params {
    /// The input stage holding token shards (`tokens/*.parquet`).
    tokens: String,
    /// The input stage holding `tokenizer.json` (to encode sentiment texts and label words).
    tokenizer: String,
    /// The input stage holding the labelled sentiment documents; none: no sentiment scores.
    #[serde(default)]
    sentiment: Option<String>,
    /// Training stages whose `model/` is scored.
    models: Vec<String>,
    #[serde(default = "default_split")]
    split: String,
    /// Domains to score; default: every domain with documents in `split`.
    #[serde(default)]
    domains: Option<Vec<String>>,
    /// Text tokens scored per domain at most (whole documents, seeded hash order).
    #[serde(default)]
    max_tokens_per_domain: Option<u64>,
    /// Window length; default: the model's context.
    #[serde(default)]
    context: Option<usize>,
    /// Tokens a rolling window advances; default: half the window.
    #[serde(default)]
    stride: Option<usize>,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    /// Encoders: tokens per domain scored one at a time for the pseudo-perplexity.
    #[serde(default = "default_pseudo_tokens")]
    pseudo_tokens: usize,
    /// Encoders: the masks of the masked-token loss (the training defaults).
    #[serde(default)]
    masking: MlmConfig,
    /// Encoder-decoders: the corruption of the span loss (the training defaults).
    #[serde(default)]
    noise: SpanConfig,
    #[serde(default = "default_device")]
    device: String,
    #[serde(default = "default_max_train")]
    max_train_examples: usize,
    #[serde(default = "default_max_test")]
    max_test_examples: usize,
    #[serde(default)]
    probe: ProbeConfig,
    /// Follows the text in a zero-shot prompt; the label word follows it.
    #[serde(default = "default_prompt")]
    prompt: String,
    /// Sentiment datasets: name -> corpora and label mapping. Default: `phrasebank`
    /// (positive/negative/neutral) and `tweets` (0 bearish, 1 bullish, 2 neutral).
    #[serde(default)]
    datasets: Option<BTreeMap<String, DatasetParams>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct DatasetParams {
    /// Corpora (the documents' `source`) of the dataset.
    sources: Vec<String>,
    /// Raw label -> class word (the zero-shot label word is a space and this word).
    labels: BTreeMap<String, String>,
}

fn default_split() -> String {
    "test".into()
}
fn default_batch_size() -> usize {
    16
}
fn default_pseudo_tokens() -> usize {
    256
}
fn default_device() -> String {
    "cpu".into()
}
fn default_max_train() -> usize {
    2000
}
fn default_max_test() -> usize {
    1000
}
fn default_prompt() -> String {
    "\nSentiment:".into()
}

fn default_datasets() -> BTreeMap<String, DatasetParams> {
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    BTreeMap::from([
        (
            "phrasebank".to_string(),
            DatasetParams {
                sources: vec!["phrasebank".into()],
                labels: labels(&[
                    ("negative", "negative"),
                    ("neutral", "neutral"),
                    ("positive", "positive"),
                ]),
            },
        ),
        (
            "tweets".to_string(),
            DatasetParams {
                sources: vec![
                    "tweets_sentiment_train".into(),
                    "tweets_sentiment_test".into(),
                ],
                labels: labels(&[("0", "negative"), ("1", "positive"), ("2", "neutral")]),
            },
        ),
    ])
}

fn check_params(p: &Params) -> Result<(), Vec<ParamError>> {
    let mut errors = Vec::new();
    if p.models.is_empty() {
        errors.push(ParamError::invalid(
            "models",
            "name at least one model stage",
        ));
    }
    if p.batch_size == 0 {
        errors.push(ParamError::invalid("batch_size", "must be at least 1"));
    }
    if p.stride == Some(0) {
        errors.push(ParamError::invalid("stride", "must be at least 1"));
    }
    if p.context == Some(0) {
        errors.push(ParamError::invalid("context", "must be at least 1"));
    }
    if let (Some(stride), Some(context)) = (p.stride, p.context)
        && stride > context
    {
        errors.push(ParamError::invalid(
            "stride",
            format!("{stride} exceeds the window of {context}"),
        ));
    }
    if let Some(datasets) = &p.datasets {
        for (name, d) in datasets {
            if d.sources.is_empty() || d.labels.is_empty() {
                errors.push(ParamError::invalid(
                    format!("datasets.{name}"),
                    "needs sources and labels",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub struct EvaluateKind;

/// One domain's evaluation documents.
struct DomainDocs {
    docs: Vec<(Vec<u32>, u64)>,
    available: u64,
}

/// Everything one model is scored on.
struct Workload {
    end_of_text: u32,
    /// The mask token and special ids, when the tokenizer has a mask token (encoders).
    mlm_vocab: Option<MlmVocab>,
    /// The sentinel ids `<extra_id_i>` the tokenizer has (encoder-decoders).
    sentinels: Vec<u32>,
    domains: BTreeMap<String, DomainDocs>,
    tasks: Vec<SentimentTask>,
}

impl Workload {
    /// The documents' text tokens, without the closing separator.
    fn texts<'a>(&self, docs: &'a DomainDocs) -> Vec<&'a [u32]> {
        docs.docs
            .iter()
            .map(|(t, _)| t.strip_suffix(&[self.end_of_text]).unwrap_or(t))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelScores {
    /// Decoders' next-token scores per domain.
    lm: BTreeMap<String, LmScore>,
    /// Encoders' masked-LM scores per domain.
    masked_lm: BTreeMap<String, MaskedScore>,
    /// Encoder-decoders' span-corruption scores per domain.
    span_lm: BTreeMap<String, SpanScore>,
    sentiment: BTreeMap<String, SentimentScores>,
    /// Wall-clock seconds: `lm`, `sentiment`, `total`.
    seconds: BTreeMap<String, f64>,
}

impl StageKind for EvaluateKind {
    fn name(&self) -> &'static str {
        "evaluate"
    }

    fn sharded(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        check_params(&parse_params::<Params>(params)?)
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        check_params(&p).map_err(|e| super::docs::param_error(&e))?;
        let named = [&p.tokens, &p.tokenizer]
            .into_iter()
            .chain(&p.sentiment)
            .chain(&p.models);
        for name in named {
            anyhow::ensure!(
                ctx.stage.inputs.contains(name),
                "`{name}` must be one of this stage's inputs ({})",
                ctx.stage.inputs.join(", ")
            );
        }
        let seed = ctx.pipeline.seed;
        let tokenizer_path = ctx.input_dir(&p.tokenizer).join(TOKENIZER_FILE);
        let tokenizer = load_tokenizer(&tokenizer_path)
            .with_context(|| format!("loading {}", tokenizer_path.display()))?;
        let end_of_text = end_of_text_id(&tokenizer)?;
        let encoder = DocumentEncoder::new(&tokenizer)?;

        let domains = load_domains(&ctx.input_dir(&p.tokens).join(TOKENS), &p, seed)?;
        anyhow::ensure!(
            !domains.is_empty(),
            "no `{}` documents in the token shards of `{}`{}",
            p.split,
            p.tokens,
            p.domains
                .as_ref()
                .map(|d| format!(" for domains {d:?}"))
                .unwrap_or_default()
        );
        let tasks = match &p.sentiment {
            Some(stage) => load_tasks(&ctx.input_dir(stage).join(DOCS), stage, &p, &encoder, seed)?,
            None => Vec::new(),
        };
        let mlm_vocab = mask_id(&tokenizer).map(|mask_id| MlmVocab {
            mask_id,
            vocab_size: tokenizer.get_vocab_size(true) as u32,
            special: special_token_ids(&tokenizer),
        });
        let sentinels = sentinel_ids(&tokenizer);
        let work = Workload {
            end_of_text,
            mlm_vocab,
            sentinels,
            domains,
            tasks,
        };

        // Scores of a model read through another tokenizer's ids are meaningless.
        for name in &p.models {
            let own = super::training::model_dir(&ctx.input_dir(name)).join(TOKENIZER_FILE);
            same_tokenizer(&own, &tokenizer_path, &tokenizer).with_context(|| {
                format!(
                    "model `{name}` was not trained with the tokenizer of `{}`; evaluate it \
                     with the tokenizer stage its training used",
                    p.tokenizer
                )
            })?;
        }

        // Progress per batch, in documents and examples of all models (one shard each).
        let per_model: u64 = work
            .domains
            .values()
            .map(|d| d.docs.len() as u64)
            .sum::<u64>()
            + work.tasks.iter().map(sentiment_progress_total).sum::<u64>();
        ctx.count_own_progress(per_model * p.models.len() as u64, "documents");
        let device = dapt_model::device_from_name(&p.device)?;
        let results = ctx.for_each_shard("models", p.models.len(), |i| {
            let name = &p.models[i];
            let dir = super::training::model_dir(&ctx.input_dir(name));
            let (model, config) = dapt_model::load_exported(&dir, &device)
                .with_context(|| format!("loading model of `{name}` from {}", dir.display()))?;
            ctx.status(&format!("scoring `{name}`"));
            score_model(&model, &config, &work, &p, &mut |n| ctx.add_progress(n))
                .with_context(|| format!("evaluating model `{name}`"))
        })?;

        let mut lm = BTreeMap::new();
        let mut masked_lm = BTreeMap::new();
        let mut span_lm = BTreeMap::new();
        let mut sentiment = BTreeMap::new();
        let mut seconds = BTreeMap::new();
        for (name, scores) in p.models.iter().zip(results) {
            if !scores.masked_lm.is_empty() {
                masked_lm.insert(name.clone(), serde_json::to_value(&scores.masked_lm)?);
            } else if !scores.span_lm.is_empty() {
                span_lm.insert(name.clone(), serde_json::to_value(&scores.span_lm)?);
            } else {
                lm.insert(name.clone(), serde_json::to_value(&scores.lm)?);
            }
            if !scores.sentiment.is_empty() {
                sentiment.insert(name.clone(), serde_json::to_value(&scores.sentiment)?);
            }
            seconds.insert(name.clone(), serde_json::to_value(&scores.seconds)?);
        }
        let selection: BTreeMap<String, serde_json::Value> = work
            .domains
            .iter()
            .map(|(d, docs)| {
                let tokens: u64 = docs.docs.iter().map(|(t, _)| t.len() as u64 - 1).sum();
                let bytes: u64 = docs.docs.iter().map(|(_, b)| b).sum();
                (
                    d.clone(),
                    serde_json::json!({
                        "documents": docs.docs.len(),
                        "documents_available": docs.available,
                        "tokens": tokens,
                        "bytes": bytes,
                    }),
                )
            })
            .collect();
        let mut counts: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        counts.insert("split".into(), p.split.clone().into());
        counts.insert("models".into(), serde_json::to_value(&p.models)?);
        counts.insert("selection".into(), serde_json::to_value(selection)?);
        counts.insert("lm".into(), serde_json::to_value(lm)?);
        if !masked_lm.is_empty() {
            counts.insert("masked_lm".into(), serde_json::to_value(masked_lm)?);
        }
        if !span_lm.is_empty() {
            counts.insert("span_lm".into(), serde_json::to_value(span_lm)?);
        }
        if !sentiment.is_empty() {
            counts.insert("sentiment".into(), serde_json::to_value(sentiment)?);
        }
        std::fs::create_dir_all(&ctx.out_dir)?;
        dapt_dag::fsutil::atomic_write(
            &ctx.out_dir.join(SCORES_FILE),
            &serde_json::to_vec_pretty(&counts)?,
        )?;
        // Wall times are measurements, not scores: beside the outputs, so that the same
        // scores from a rerun leave the report fresh.
        let seconds = serde_json::to_value(seconds)?;
        dapt_dag::fsutil::atomic_write(
            &ctx.timing_dir.join("seconds.json"),
            &serde_json::to_vec_pretty(&seconds)?,
        )?;
        counts.insert("seconds_per_model".into(), seconds);
        Ok(RunReport {
            counts,
            conservation: None,
        })
    }
}

/// `Ok` when the model's `tokenizer.json` (at `own`) is the evaluation's: the same
/// bytes, or the same vocabulary with the same special tokens.
fn same_tokenizer(
    own: &std::path::Path,
    theirs_path: &std::path::Path,
    theirs: &dapt_tokenize::Tokenizer,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(own).with_context(|| format!("reading {}", own.display()))?;
    if bytes == std::fs::read(theirs_path)? {
        return Ok(());
    }
    let model_tokenizer =
        load_tokenizer(own).with_context(|| format!("loading {}", own.display()))?;
    let (a, b) = (model_tokenizer.get_vocab(true), theirs.get_vocab(true));
    if a == b {
        return Ok(());
    }
    let differing = a
        .iter()
        .filter(|(token, id)| b.get(*token) != Some(id))
        .map(|(token, _)| token.clone())
        .take(3)
        .collect::<Vec<_>>();
    anyhow::bail!(
        "{} ({} tokens) and {} ({} tokens) differ, e.g. in {differing:?}",
        own.display(),
        a.len(),
        theirs_path.display(),
        b.len()
    )
}

fn score_model(
    model: &dapt_model::Decoder,
    model_config: &dapt_model::ModelConfig,
    work: &Workload,
    p: &Params,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<ModelScores> {
    let started = Instant::now();
    let context = p.context.unwrap_or(model.context());
    anyhow::ensure!(
        context <= model.context(),
        "context {context} exceeds the model's {}",
        model.context()
    );
    let config = LmEvalConfig {
        context,
        stride: p.stride.unwrap_or((context / 2).max(1)).min(context),
        batch_size: p.batch_size,
    };
    let mut lm = BTreeMap::new();
    let mut masked_lm = BTreeMap::new();
    let mut span_lm = BTreeMap::new();
    if let dapt_model::ModelConfig::T5(t5) = model_config {
        anyhow::ensure!(
            !work.sentinels.is_empty(),
            "an encoder-decoder is scored by span corruption, but the tokenizer has no <extra_id_0>"
        );
        let span = SpanEvalConfig {
            raw_length: raw_length_for_inputs(context, &p.noise),
            batch_size: p.batch_size,
            objective: dapt_model::Objective::Span {
                noise: p.noise.clone(),
                sentinels: work.sentinels.clone(),
                eos: work.end_of_text,
                decoder_start: t5.decoder_start_id,
            },
        };
        for (domain, docs) in &work.domains {
            let score = score_span(model, &work.texts(docs), &span, &mut |_| {})
                .with_context(|| format!("scoring domain {domain}"))?;
            progress(docs.docs.len() as u64);
            span_lm.insert(domain.clone(), score);
        }
    } else if !model.is_causal() {
        let vocab = work.mlm_vocab.clone().with_context(|| {
            format!("an encoder is scored with masks, but the tokenizer has no {MASK} token")
        })?;
        let masked = MaskedLmConfig {
            context,
            batch_size: p.batch_size,
            masking: p.masking.clone(),
            vocab,
            pseudo_tokens: p.pseudo_tokens,
        };
        for (domain, docs) in &work.domains {
            let score = score_masked(model, &work.texts(docs), &masked, &mut |_| {})
                .with_context(|| format!("scoring domain {domain}"))?;
            progress(docs.docs.len() as u64);
            masked_lm.insert(domain.clone(), score);
        }
    }
    for (domain, docs) in work.domains.iter().filter(|_| model.is_causal()) {
        let scored: Vec<ScoredDocument> = docs
            .docs
            .iter()
            .map(|(tokens, bytes)| ScoredDocument {
                tokens,
                bytes: *bytes,
            })
            .collect();
        let score = score_documents(model, &scored, work.end_of_text, &config, progress)
            .with_context(|| format!("scoring domain {domain}"))?;
        lm.insert(domain.clone(), score);
    }
    let lm_seconds = started.elapsed().as_secs_f64();
    let sentiment_config = SentimentConfig {
        probe: p.probe.clone(),
        batch_size: p.batch_size,
    };
    let mut sentiment = BTreeMap::new();
    for task in &work.tasks {
        let scores = evaluate_sentiment(model, task, work.end_of_text, &sentiment_config, progress)
            .with_context(|| format!("sentiment dataset {}", task.name))?;
        sentiment.insert(task.name.clone(), scores);
    }
    Ok(ModelScores {
        lm,
        masked_lm,
        span_lm,
        sentiment,
        seconds: BTreeMap::from([
            ("lm".to_string(), lm_seconds),
            (
                "sentiment".to_string(),
                started.elapsed().as_secs_f64() - lm_seconds,
            ),
            ("total".to_string(), started.elapsed().as_secs_f64()),
        ]),
    })
}

/// The evaluation documents of each domain: `split` rows of the token shards, in seeded hash
/// order of their ids, capped at `max_tokens_per_domain` text tokens.
fn load_domains(dir: &Path, p: &Params, seed: u64) -> anyhow::Result<BTreeMap<String, DomainDocs>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("no token shards in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    paths.sort();
    let mut by_domain: BTreeMap<String, Vec<(String, Vec<u32>, u64)>> = BTreeMap::new();
    for path in paths {
        for row in TokenShardReader::open(&path)? {
            let row = row.with_context(|| format!("reading {}", path.display()))?;
            let wanted =
                row.split == p.split && p.domains.as_ref().is_none_or(|d| d.contains(&row.domain));
            if wanted {
                by_domain
                    .entry(row.domain)
                    .or_default()
                    .push((row.id, row.tokens, row.n_bytes));
            }
        }
    }
    if let Some(domains) = &p.domains {
        for d in domains {
            anyhow::ensure!(
                by_domain.contains_key(d),
                "domain `{d}` has no `{}` documents in {}",
                p.split,
                dir.display()
            );
        }
    }
    Ok(by_domain
        .into_iter()
        .map(|(domain, mut rows)| {
            let available = rows.len() as u64;
            hash_order(&mut rows, seed, |r| &r.0);
            let take = take_until_tokens(&rows, p.max_tokens_per_domain, |r| {
                r.1.len().saturating_sub(1) as u64
            });
            rows.truncate(take);
            let docs = rows.into_iter().map(|(_, t, b)| (t, b)).collect();
            (domain, DomainDocs { docs, available })
        })
        .collect())
}

/// The sentiment datasets: documents grouped by corpus, labels mapped to classes, texts
/// encoded; train and test examples in seeded hash order, capped.
fn load_tasks(
    dir: &Path,
    stage: &str,
    p: &Params,
    encoder: &DocumentEncoder,
    seed: u64,
) -> anyhow::Result<Vec<SentimentTask>> {
    let datasets = p.datasets.clone().unwrap_or_else(default_datasets);
    let mut docs = Vec::new();
    for shard in shards_of(stage, dir)? {
        for d in shard.documents()? {
            docs.push(d?);
        }
    }
    let encode = |texts: Vec<(String, String)>| -> anyhow::Result<Vec<Vec<u32>>> {
        let rows = encoder.encode(
            texts
                .into_iter()
                .map(|(id, text)| Document {
                    id,
                    domain: "sentiment".into(),
                    split: String::new(),
                    text,
                })
                .collect(),
        )?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                r.tokens.pop(); // the <|endoftext|> the encoder appends
                r.tokens
            })
            .collect())
    };
    let mut tasks = Vec::new();
    for (name, spec) in datasets {
        // Classes in a fixed order: sorted class words.
        let mut classes: Vec<String> = spec.labels.values().cloned().collect();
        classes.sort();
        classes.dedup();
        let class_of = |label: &str| {
            spec.labels
                .get(label)
                .and_then(|word| classes.iter().position(|c| c == word))
        };
        let mut train = Vec::new();
        let mut test = Vec::new();
        let mut splits_found: BTreeMap<String, u64> = BTreeMap::new();
        for d in docs.iter().filter(|d| spec.sources.contains(&d.source)) {
            *splits_found
                .entry(d.split.clone().unwrap_or_else(|| "none".into()))
                .or_default() += 1;
            let label = d.label.as_deref().unwrap_or_default();
            let class = class_of(label).with_context(|| {
                format!(
                    "dataset {name}: document {} has label {label:?}, not one of {:?}",
                    d.id,
                    spec.labels.keys().collect::<Vec<_>>()
                )
            })?;
            match d.split.as_deref() {
                Some("train") => train.push((d.id.clone(), d.text.clone(), class)),
                Some("test") => test.push((d.id.clone(), d.text.clone(), class)),
                _ => {}
            }
        }
        if train.is_empty() || test.is_empty() {
            // A default dataset whose corpora this pipeline does not ingest is skipped;
            // one named in `datasets`, or present without both splits, is an error.
            if p.datasets.is_none() && splits_found.is_empty() {
                continue;
            }
            anyhow::bail!(
                "sentiment dataset `{name}` needs documents of both the train and the test \
                 split in `{stage}` (sources {:?}), but found {}; give its corpus a split \
                 (`split`, or `split_from = \"hash\"` for a seeded hash split)",
                spec.sources,
                if splits_found.is_empty() {
                    "no documents".to_string()
                } else {
                    format!("{splits_found:?}")
                }
            );
        }
        let examples = |mut rows: Vec<(String, String, usize)>, cap: usize| {
            hash_order(&mut rows, seed, |r| &r.0);
            rows.truncate(cap);
            let labels: Vec<(String, usize)> = rows.iter().map(|r| (r.0.clone(), r.2)).collect();
            let tokens = encode(rows.into_iter().map(|r| (r.0, r.1)).collect())?;
            anyhow::Ok(
                labels
                    .into_iter()
                    .zip(tokens)
                    .map(|((id, label), tokens)| SentimentExample { id, tokens, label })
                    .collect::<Vec<_>>(),
            )
        };
        let train = examples(train, p.max_train_examples)?;
        let test = examples(test, p.max_test_examples)?;
        let words = encode(
            classes
                .iter()
                .map(|c| (format!("label/{c}"), format!(" {c}")))
                .collect(),
        )?;
        let suffix = encode(vec![("prompt".into(), p.prompt.clone())])?
            .pop()
            .unwrap_or_default();
        tasks.push(SentimentTask {
            name,
            classes,
            label_words: words,
            prompt_suffix: suffix,
            train,
            test,
        });
    }
    Ok(tasks)
}
