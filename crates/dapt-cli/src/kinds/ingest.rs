//! `kind = "ingest"`: the corpora a stage names (`corpora = [...]`) become document
//! shards. Each corpus's files are grouped, in sorted order, into shards of about
//! `shard_mb` megabytes; a killed run resumes at the next unfinished group. Records
//! a reader cannot use (parse errors, bad encoding, unreadable files with
//! `on_error = "quarantine"`) go to `rejected/` with their file and line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use dapt_dag::{ParamError, Pipeline, RunReport, StageContext, StageKind, StageSpec, parse_params};
use dapt_data::{CorpusConfig, ReadStats, Record, Rejected, read_files};
use serde::{Deserialize, Serialize};

use super::docs::{ShardSink, SinkCounts, params};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Params {
    /// Target size of the files read into one shard.
    shard_mb: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params { shard_mb: 16 }
    }
}

/// Validates a `[corpora.NAME]` table (registered as the pipeline's corpus schema).
pub fn check_corpus(name: &str, table: &toml::Table) -> Result<(), Vec<ParamError>> {
    let config: CorpusConfig = parse_params(table)?;
    config
        .validate(name)
        .map_err(|e| vec![ParamError::invalid(String::new(), e.to_string())])
}

fn corpus(pipeline: &Pipeline, name: &str) -> anyhow::Result<CorpusConfig> {
    let table = pipeline
        .corpora
        .get(name)
        .with_context(|| format!("unknown corpus `{name}`"))?;
    parse_params(table)
        .map_err(|e| super::docs::param_error(&e).context(format!("corpus `{name}`")))
}

/// One shard: some files of one corpus.
struct FileGroup {
    corpus: String,
    index: usize,
    files: Vec<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShardResult {
    sink: SinkCounts,
    files: u64,
    bytes: u64,
}

pub struct IngestKind;

impl IngestKind {
    fn groups(stage: &StageSpec, pipeline: &Pipeline) -> anyhow::Result<Vec<FileGroup>> {
        let p: Params = params(stage)?;
        let limit = p.shard_mb.max(1) * 1_000_000;
        let mut groups = Vec::new();
        for name in &stage.corpora {
            let config = corpus(pipeline, name)?;
            let files = config.files(&pipeline.data_root).with_context(|| {
                format!(
                    "corpus `{name}`: run `just data` to fill {}",
                    pipeline.data_root.display()
                )
            })?;
            let mut current = FileGroup {
                corpus: name.clone(),
                index: 0,
                files: Vec::new(),
            };
            let mut bytes = 0;
            // Ids from `id_field` must be unique in the corpus; one shard reads all of
            // its files so that a repeated id is seen wherever it occurs.
            let one_shard = config.id_field.is_some();
            for file in files {
                let size = std::fs::metadata(&file).map_or(0, |m| m.len());
                if !one_shard && !current.files.is_empty() && bytes + size > limit {
                    let index = current.index + 1;
                    groups.push(std::mem::replace(
                        &mut current,
                        FileGroup {
                            corpus: name.clone(),
                            index,
                            files: Vec::new(),
                        },
                    ));
                    bytes = 0;
                }
                bytes += size;
                current.files.push(file);
            }
            groups.push(current);
        }
        Ok(groups)
    }
}

impl StageKind for IngestKind {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn sharded(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        // 2: JSONL keeps other fields as metadata; repeated ids are quarantined.
        2
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        parse_params::<Params>(params).map(drop)
    }

    fn deps(&self, stage: &StageSpec, pipeline: &Pipeline) -> anyhow::Result<Vec<PathBuf>> {
        Ok(Self::groups(stage, pipeline)?
            .into_iter()
            .flat_map(|g| g.files)
            .collect())
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        anyhow::ensure!(
            !ctx.stage.corpora.is_empty(),
            "an ingest stage needs `corpora = [...]`"
        );
        let groups = Self::groups(ctx.stage, ctx.pipeline)?;
        let configs: BTreeMap<&str, CorpusConfig> = ctx
            .stage
            .corpora
            .iter()
            .map(|c| Ok((c.as_str(), corpus(ctx.pipeline, c)?)))
            .collect::<anyhow::Result<_>>()?;
        let results = ctx.for_each_shard("read", groups.len(), |i| {
            let group = &groups[i];
            let mut sink = ShardSink::create(ctx, &format!("{}-{:05}", group.corpus, group.index))?;
            let mut failure = None;
            // Where each id was first seen: a repeated `id_field` value is quarantined.
            let mut seen_ids: std::collections::HashMap<String, u64> = Default::default();
            let unique_ids = configs[group.corpus.as_str()].id_field.is_some();
            let stats: ReadStats = read_files(
                &group.corpus,
                &configs[group.corpus.as_str()],
                &ctx.pipeline.data_root,
                group.files.clone(),
                &mut |record| {
                    if failure.is_some() {
                        return;
                    }
                    sink.read(1);
                    let written = match record {
                        Record::Doc(doc) if unique_ids => {
                            let ordinal = sink.counts.tally.read;
                            match seen_ids.get(&doc.id) {
                                Some(first) => sink.reject(Rejected {
                                    detail: format!(
                                        "id `{}` (record {ordinal} of the corpus) was already \
                                         given to record {first}",
                                        doc.id
                                    ),
                                    id: doc.id,
                                    source: doc.source,
                                    reason: "duplicate_id".into(),
                                    text: Some(doc.text),
                                }),
                                None => {
                                    seen_ids.insert(doc.id.clone(), ordinal);
                                    sink.keep(doc)
                                }
                            }
                        }
                        Record::Doc(doc) => sink.keep(doc),
                        Record::Rejected(r) => sink.reject(r),
                    };
                    failure = written.err();
                },
            )?;
            if let Some(e) = failure {
                return Err(e);
            }
            Ok(ShardResult {
                sink: sink.finish()?,
                files: stats.files,
                bytes: stats.bytes,
            })
        })?;

        let sinks: Vec<SinkCounts> = results.iter().map(|r| r.sink.clone()).collect();
        let (total, by_corpus) = SinkCounts::summarise(&sinks);
        let mut counts = BTreeMap::new();
        counts.insert("documents".into(), total.total_kept().into());
        counts.insert("rejected".into(), total.total_rejected().into());
        counts.insert(
            "files".into(),
            results.iter().map(|r| r.files).sum::<u64>().into(),
        );
        counts.insert(
            "bytes".into(),
            results.iter().map(|r| r.bytes).sum::<u64>().into(),
        );
        counts.insert("by_corpus".into(), by_corpus);
        Ok(RunReport {
            counts,
            conservation: Some(total.conservation()),
        })
    }
}
