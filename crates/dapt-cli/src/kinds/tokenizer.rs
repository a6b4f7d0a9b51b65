//! `kind = "tokenizer"`: trains a byte-level BPE tokenizer (Hugging Face
//! `tokenizers`) on a sample of the training split drawn from each domain in its
//! configured share — BloombergGPT trained its own — or, with `from`, reuses an
//! existing one: an input stage's model's (`from = "smollm2"`, required when continuing
//! that model) or a `tokenizer.json` file (`from = "PATH"`). Writes `out/tokenizer.json`, which loads unchanged in Python `tokenizers`.
//!
//! `mask_token = true` appends `<mask>` (masked LM) and `sentinels = N` appends T5's
//! `<extra_id_0>` … `<extra_id_{N-1}>` (span corruption) as special tokens after every
//! other id, so the ids of the rest do not move.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use dapt_dag::{ParamError, Pipeline, RunReport, StageContext, StageKind, StageSpec, parse_params};
use dapt_tokenize::{
    MASK, Tokenizer, TokenizerTrainingConfig, add_special_tokens, load_tokenizer, save_tokenizer,
    sentinel, train_tokenizer,
};
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
    /// Append the mask token `<mask>` (for `objective = "mlm"`).
    mask_token: bool,
    /// Append this many T5 sentinels `<extra_id_i>` (for `objective = "span"`).
    sentinels: usize,
}

impl Params {
    /// Appends the requested special tokens; returns how many were new.
    fn add_specials(&self, tokenizer: &mut Tokenizer) -> anyhow::Result<usize> {
        let mut tokens: Vec<String> = Vec::new();
        if self.mask_token {
            tokens.push(MASK.into());
        }
        tokens.extend((0..self.sentinels).map(sentinel));
        add_special_tokens(tokenizer, &tokens)
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            vocab_size: 8192,
            sample_mb: 64,
            shares: [("financial".to_string(), 0.5), ("general".to_string(), 0.5)].into(),
            from: None,
            mask_token: false,
            sentinels: 0,
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
            let mut tokenizer = load_tokenizer(&path)
                .with_context(|| format!("loading the tokenizer `from` {}", path.display()))?;
            let added = p.add_specials(&mut tokenizer)?;
            save_tokenizer(&tokenizer, &out)?;
            if added > 0 {
                counts.insert("special_tokens_added".into(), added.into());
            }
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
        let mut trained = train_tokenizer(samples, &p.shares, &config)?;
        if let Some(e) = error {
            return Err(e);
        }
        let added = p.add_specials(&mut trained.tokenizer)?;
        if added > 0 {
            counts.insert("special_tokens_added".into(), added.into());
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
