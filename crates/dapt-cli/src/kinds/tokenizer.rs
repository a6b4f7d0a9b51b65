//! `kind = "tokenizer"`: trains a byte-level BPE tokenizer (Hugging Face
//! `tokenizers`) on a sample of the training split drawn from each domain in its
//! configured share — BloombergGPT trained its own — or, with `from`, reuses an
//! existing one: an input stage's model's (`from = "smollm2"`, required when continuing
//! that model) or a `tokenizer.json` file (`from = "PATH"`). Writes `out/tokenizer.json`, which loads unchanged in Python `tokenizers`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use dapt_dag::{ParamError, Pipeline, RunReport, StageContext, StageKind, StageSpec, parse_params};
use dapt_tokenize::{TokenizerTrainingConfig, load_tokenizer, save_tokenizer, train_tokenizer};
use serde::Deserialize;

use super::docs::{input_shards, params};

pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Params {
    vocab_size: usize,
    /// Megabytes of training text sampled, shared among domains by `shares`.
    sample_mb: u64,
    /// Domain -> share of the sample (e.g. financial = 0.5, general = 0.5).
    shares: BTreeMap<String, f64>,
    /// Reuse a tokenizer instead of training one: an input stage holding a model (its
    /// `model/tokenizer.json`), or a tokenizer.json file (relative to the pipeline file).
    from: Option<PathBuf>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            vocab_size: 8192,
            sample_mb: 64,
            shares: [("financial".to_string(), 0.5), ("general".to_string(), 0.5)].into(),
            from: None,
        }
    }
}

pub struct TokenizerKind;

/// Whether `from` names one of the stage's inputs rather than a file.
fn names_input(stage: &StageSpec, from: &std::path::Path) -> bool {
    stage
        .inputs
        .iter()
        .any(|input| std::path::Path::new(input) == from)
}

impl StageKind for TokenizerKind {
    fn name(&self) -> &'static str {
        "tokenizer"
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        let p: Params = parse_params(params)?;
        if p.vocab_size < 300 {
            return Err(vec![ParamError::invalid(
                "vocab_size",
                "must be at least 300 (256 bytes, special tokens and merges)",
            )]);
        }
        Ok(())
    }

    fn deps(&self, stage: &StageSpec, pipeline: &Pipeline) -> anyhow::Result<Vec<PathBuf>> {
        let p: Params = params(stage)?;
        Ok(p.from
            .filter(|f| !names_input(stage, f))
            .map(|f| pipeline.root.join(f))
            .into_iter()
            .collect())
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        let out = ctx.out_dir.join(TOKENIZER_FILE);
        let mut counts = BTreeMap::new();
        if let Some(from) = &p.from {
            let path = if names_input(ctx.stage, from) {
                super::training::model_dir(&ctx.input_dir(&from.to_string_lossy()))
                    .join(TOKENIZER_FILE)
            } else {
                ctx.root().join(from)
            };
            let tokenizer = load_tokenizer(&path)
                .with_context(|| format!("loading the tokenizer `from` {}", path.display()))?;
            save_tokenizer(&tokenizer, &out)?;
            counts.insert("from".into(), path.display().to_string().into());
            counts.insert("vocab_size".into(), tokenizer.get_vocab_size(true).into());
            return Ok(RunReport {
                counts,
                conservation: None,
            });
        }
        let shards = input_shards(ctx)?;
        let mut documents = Vec::new();
        let mut total = 0;
        for shard in &shards {
            total += shard.rows()?;
            documents.push(shard.documents()?);
        }
        ctx.count_own_progress(total, "documents");
        ctx.status("sampling the training split");
        let mut error = None;
        let mut read = 0u64;
        let samples = documents.into_iter().flatten().inspect(|_| {
            // Progress in steps, not per document: the stage reads a million of them.
            read += 1;
            let step = read % 1024;
            if step == 0 || read == total {
                ctx.add_progress(if step == 0 { 1024 } else { step });
                if read == total {
                    ctx.status(&format!("learning {} BPE merges", p.vocab_size));
                }
            }
        });
        let samples = samples.filter_map(|d| match d {
            Ok(doc) if doc.split.as_deref() == Some("train") => Some((doc.domain, doc.text)),
            Ok(_) => None,
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        });
        let config = TokenizerTrainingConfig {
            vocab_size: p.vocab_size,
            sample_bytes_budget: p.sample_mb << 20,
            seed: ctx.pipeline.seed,
        };
        let trained = train_tokenizer(samples, &p.shares, &config)?;
        if let Some(e) = error {
            return Err(e);
        }
        save_tokenizer(&trained.tokenizer, &out)?;
        counts.insert(
            "vocab_size".into(),
            trained.tokenizer.get_vocab_size(true).into(),
        );
        counts.insert("sample".into(), serde_json::to_value(&trained.sample)?);
        Ok(RunReport {
            counts,
            conservation: None,
        })
    }
}
