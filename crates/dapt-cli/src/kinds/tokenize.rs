//! `kind = "tokenize"`: encodes documents into parquet token shards (`id`, `domain`,
//! `split`, `tokens` as list<u32> ending in `<|endoftext|>`, `n_bytes`, `n_words`),
//! one shard per input shard, in parallel. `tokenizer = "STAGE"` names the input
//! stage that holds `tokenizer.json`; every other input provides documents. The
//! manifest reports tokens per domain and split and the fertility per domain (tokens
//! per word, bytes per token): what a domain tokenizer buys.

use std::collections::BTreeMap;

use anyhow::Context;
use dapt_dag::{Conservation, ParamError, RunReport, StageContext, StageKind, parse_params};
use dapt_tokenize::{Document, DocumentEncoder, TokenStats, load_tokenizer};
use serde::Deserialize;

use super::docs::{InputShard, params, shards_of};
use super::tokenizer::TOKENIZER_FILE;

pub const TOKENS: &str = "tokens";

#[derive(Debug, Deserialize)]
struct Params {
    /// The input stage whose output holds `tokenizer.json`.
    tokenizer: String,
}

pub struct TokenizeKind;

impl StageKind for TokenizeKind {
    fn name(&self) -> &'static str {
        "tokenize"
    }

    fn sharded(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        2
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        parse_params::<Params>(params).map(drop)
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        anyhow::ensure!(
            ctx.stage.inputs.contains(&p.tokenizer),
            "tokenizer = \"{}\" must name one of this stage's inputs ({})",
            p.tokenizer,
            ctx.stage.inputs.join(", ")
        );
        let path = ctx.input_dir(&p.tokenizer).join(TOKENIZER_FILE);
        let tokenizer =
            load_tokenizer(&path).with_context(|| format!("loading {}", path.display()))?;
        let encoder = DocumentEncoder::new(&tokenizer)?;
        let mut shards: Vec<InputShard> = Vec::new();
        for (stage, dir) in ctx
            .input_dirs()
            .into_iter()
            .filter(|(s, _)| *s != p.tokenizer)
        {
            shards.extend(shards_of(&stage, &dir.join(super::docs::DOCS))?);
        }
        let results = ctx.for_each_shard("tokenize", shards.len(), |i| {
            let shard = &shards[i];
            let mut docs = shard
                .documents()?
                .map(|d| {
                    let d = d?;
                    let Some(split) = d.split else {
                        anyhow::bail!(
                            "document {} in {} has no split; put a `split` stage between \
                             ingest and tokenize (or give the corpus `split_from`)",
                            d.id,
                            shard.path.display()
                        );
                    };
                    Ok(Document {
                        id: d.id,
                        domain: d.domain,
                        split,
                        text: d.text,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if dapt_dag::fault::hit("drop-document", &ctx.stage.name) {
                docs.pop(); // a lost document, on purpose: conservation must see it
            }
            let target = ctx
                .out_dir
                .join(TOKENS)
                .join(format!("{}.parquet", shard.name()));
            std::fs::create_dir_all(target.parent().expect("has a parent"))?;
            let stats = encoder.encode_to_shard(docs, &target)?;
            // Conservation, each side counted on its own: the input shard's footer
            // against the rows (one per document) of the token shard on disk.
            let (given, written) = (shard.rows()?, dapt_data::parquet_rows(&target)?);
            Conservation {
                input: given,
                kept: written,
                rejected: 0,
            }
            .check()
            .map_err(|d| anyhow::anyhow!("{}: {d}", target.display()))?;
            Ok((stats, (given, written)))
        })?;
        let mut stats = TokenStats::default();
        let (mut read, mut written) = (0, 0);
        for (r, (docs_in, docs_out)) in &results {
            stats.merge(r);
            read += docs_in;
            written += docs_out;
        }
        let total = stats.total();
        let mut counts = BTreeMap::new();
        counts.insert("documents".into(), total.documents.into());
        counts.insert("tokens".into(), total.tokens.into());
        counts.insert(
            "by_domain_split".into(),
            serde_json::to_value(&stats.by_domain_split)?,
        );
        counts.insert("fertility".into(), serde_json::to_value(stats.fertility())?);
        Ok(RunReport {
            counts,
            conservation: Some(Conservation {
                input: read,
                kept: written,
                rejected: 0,
            }),
        })
    }
}
