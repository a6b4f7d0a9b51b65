//! `kind = "clean"`: normalisation, boilerplate removal and quality filters
//! (`dapt_data::clean`) over every document of the input stages. Every threshold is a
//! parameter; `overrides.CORPUS` changes some of them for one corpus (10-K filings
//! repeat more than news, tweets are shorter than articles). Dropped documents go to
//! `rejected/` as `filter:NAME` with the failing value; the manifest counts each
//! filter per corpus.

use std::collections::BTreeMap;

use dapt_dag::{ParamError, RunReport, StageContext, StageKind, parse_params};
use dapt_data::{CleanConfig, CleanStats, Cleaner};
use serde::{Deserialize, Serialize};

use super::docs::{ShardSink, SinkCounts, input_shards};

/// The base configuration, and per corpus the configuration with its overrides.
struct Configs {
    base: CleanConfig,
    by_corpus: BTreeMap<String, CleanConfig>,
}

fn configs(params: &toml::Table) -> Result<Configs, Vec<ParamError>> {
    let mut base_table = params.clone();
    let overrides = base_table.remove("overrides");
    let base: CleanConfig = parse_params(&base_table)?;
    let mut by_corpus = BTreeMap::new();
    let mut errors = Vec::new();
    match overrides {
        None => {}
        Some(toml::Value::Table(overrides)) => {
            for (corpus, table) in overrides {
                let Some(table) = table.as_table() else {
                    errors.push(ParamError {
                        key: format!("overrides.{corpus}"),
                        message: "expected a table of clean parameters".into(),
                        unknown_key: false,
                    });
                    continue;
                };
                let mut merged = base_table.clone();
                merged.extend(table.clone());
                match parse_params::<CleanConfig>(&merged) {
                    Ok(config) => {
                        by_corpus.insert(corpus, config);
                    }
                    Err(es) => errors.extend(es.into_iter().map(|e| ParamError {
                        key: format!("overrides.{corpus}.{}", e.key),
                        ..e
                    })),
                }
            }
        }
        Some(other) => errors.push(ParamError {
            key: "overrides".into(),
            message: format!("expected a table of corpora, found {}", other.type_str()),
            unknown_key: false,
        }),
    }
    if errors.is_empty() {
        Ok(Configs { base, by_corpus })
    } else {
        Err(errors)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShardResult {
    /// Documents read from the input shard.
    read: u64,
    sink: SinkCounts,
    /// Filter statistics per corpus.
    stats: BTreeMap<String, CleanStatsJson>,
}

/// `CleanStats` as stored in a shard's completion record.
type CleanStatsJson = serde_json::Value;

pub struct CleanKind;

impl StageKind for CleanKind {
    fn name(&self) -> &'static str {
        "clean"
    }

    fn sharded(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        configs(params).map(drop)
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let configs = configs(&ctx.stage.params).map_err(|e| super::docs::param_error(&e))?;
        let shards = input_shards(ctx)?;
        let results = ctx.for_each_shard("clean", shards.len(), |i| {
            let mut sink = ShardSink::create(ctx, &shards[i].name())?;
            sink.read(shards[i].rows()?);
            let mut cleaners: BTreeMap<String, Cleaner> = BTreeMap::new();
            let mut read = 0;
            for doc in shards[i].documents()? {
                let doc = doc?;
                read += 1;
                let cleaner = cleaners.entry(doc.source.clone()).or_insert_with(|| {
                    Cleaner::new(
                        configs
                            .by_corpus
                            .get(&doc.source)
                            .unwrap_or(&configs.base)
                            .clone(),
                    )
                });
                match cleaner.apply(doc) {
                    Ok(doc) => sink.keep(doc)?,
                    Err(rejected) => sink.reject(rejected)?,
                }
            }
            let stats = cleaners
                .into_iter()
                .map(|(corpus, c)| (corpus, serde_json::to_value(c.stats()).unwrap_or_default()))
                .collect();
            Ok(ShardResult {
                read,
                sink: sink.finish()?,
                stats,
            })
        })?;

        let mut per_corpus: BTreeMap<String, CleanStats> = BTreeMap::new();
        for r in &results {
            for (corpus, json) in &r.stats {
                let stats: CleanStats = serde_json::from_value(json.clone())?;
                per_corpus.entry(corpus.clone()).or_default().merge(&stats);
            }
        }
        let read: u64 = results.iter().map(|r| r.read).sum();
        let sinks: Vec<SinkCounts> = results.into_iter().map(|r| r.sink).collect();
        let (total, _) = SinkCounts::summarise(&sinks);
        let mut counts = BTreeMap::new();
        counts.insert("documents_in".into(), read.into());
        counts.insert("kept".into(), total.total_kept().into());
        counts.insert("rejected".into(), total.total_rejected().into());
        counts.insert(
            "rejected_by_filter".into(),
            serde_json::to_value(&total.reasons)?,
        );
        counts.insert("by_corpus".into(), serde_json::to_value(&per_corpus)?);
        Ok(RunReport {
            counts,
            conservation: Some(total.conservation()),
        })
    }
}
