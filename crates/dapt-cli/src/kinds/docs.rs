//! Plumbing shared by the stage kinds that read and write document shards.
//!
//! Every such stage writes `out/docs/NAME.parquet` (kept documents) and
//! `out/rejected/NAME.parquet` (dropped ones, with reasons); a shard's name is
//! `INPUT-STAGE.SHARD` so shards from several inputs never collide.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dapt_dag::{Conservation, ParamError, StageContext, StageSpec, parse_params};
use dapt_data::{
    DocShardReader, DocShardWriter, Document, Rejected, RejectedShardWriter, parquet_rows,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const DOCS: &str = "docs";
pub const REJECTED: &str = "rejected";

/// Parameters of a stage, or an error listing every problem (for `run`; `check`
/// reports the same problems with their line and column).
pub fn params<P: DeserializeOwned>(stage: &StageSpec) -> anyhow::Result<P> {
    parse_params(&stage.params).map_err(|errors| param_error(&errors))
}

pub fn param_error(errors: &[ParamError]) -> anyhow::Error {
    let messages: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.key, e.message))
        .collect();
    anyhow::anyhow!("invalid parameters: {}", messages.join("; "))
}

/// One document shard of an upstream stage.
#[derive(Debug, Clone)]
pub struct InputShard {
    pub stage: String,
    pub path: PathBuf,
}

impl InputShard {
    /// The output shard name: `STAGE.FILE-STEM`.
    pub fn name(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{}.{stem}", self.stage)
    }

    /// Documents in the shard, from its parquet footer: what the stage was given,
    /// counted apart from how the stage iterates it.
    pub fn rows(&self) -> anyhow::Result<u64> {
        Ok(parquet_rows(&self.path)?)
    }

    pub fn read(&self) -> anyhow::Result<DocShardReader> {
        DocShardReader::open(&self.path).with_context(|| format!("reading {}", self.path.display()))
    }

    /// Every document of the shard.
    pub fn documents(
        &self,
    ) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Document>> + use<>> {
        let path = self.path.clone();
        Ok(self
            .read()?
            .map(move |d| d.with_context(|| format!("reading {}", path.display()))))
    }
}

/// The document shards of every upstream stage, in input order then name order.
pub fn input_shards(ctx: &StageContext) -> anyhow::Result<Vec<InputShard>> {
    let mut shards = Vec::new();
    for (stage, dir) in ctx.input_dirs() {
        shards.extend(shards_of(&stage, &dir.join(DOCS))?);
    }
    Ok(shards)
}

pub fn shards_of(stage: &str, dir: &Path) -> anyhow::Result<Vec<InputShard>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "upstream stage {stage} has no document shards in {}",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| InputShard {
            stage: stage.to_string(),
            path,
        })
        .collect())
}

/// Kept and rejected documents of one output shard; both files appear atomically
/// on [`ShardSink::finish`].
pub struct ShardSink {
    docs: DocShardWriter,
    rejected: RejectedShardWriter,
    docs_path: PathBuf,
    rejected_path: PathBuf,
    stage: String,
    pub counts: SinkCounts,
}

/// What one output shard holds, by corpus and by rejection reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkCounts {
    pub kept: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
    pub splits: BTreeMap<String, u64>,
    /// The conservation tally, each side counted on its own: documents the kind was
    /// given ([`ShardSink::read`]), and rows found in the finished files on disk.
    #[serde(default)]
    pub tally: Tally,
}

/// Documents in, and rows out as the finished shard files hold them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Tally {
    pub read: u64,
    pub kept_rows: u64,
    pub rejected_rows: u64,
}

impl SinkCounts {
    pub fn merge(&mut self, other: &SinkCounts) {
        for (mine, theirs) in [
            (&mut self.kept, &other.kept),
            (&mut self.rejected, &other.rejected),
            (&mut self.reasons, &other.reasons),
            (&mut self.splits, &other.splits),
        ] {
            for (k, v) in theirs {
                *mine.entry(k.clone()).or_default() += v;
            }
        }
        self.tally.read += other.tally.read;
        self.tally.kept_rows += other.tally.kept_rows;
        self.tally.rejected_rows += other.tally.rejected_rows;
    }

    pub fn total_kept(&self) -> u64 {
        self.kept.values().sum()
    }

    pub fn total_rejected(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The stage's account of its documents: those it was given against the rows its
    /// output files hold (not its own kept/rejected counters, so a lost document shows).
    pub fn conservation(&self) -> Conservation {
        Conservation {
            input: self.tally.read,
            kept: self.tally.kept_rows,
            rejected: self.tally.rejected_rows,
        }
    }

    /// Sums per-shard counts and renders them for a manifest.
    pub fn summarise(shards: &[SinkCounts]) -> (SinkCounts, serde_json::Value) {
        let mut total = SinkCounts::default();
        for s in shards {
            total.merge(s);
        }
        let mut json = serde_json::to_value(&total).unwrap_or_default();
        if let Some(map) = json.as_object_mut() {
            map.remove("tally"); // the manifest's `conservation` holds it
        }
        (total, json)
    }
}

impl ShardSink {
    /// Output shard `name` of the running stage.
    pub fn create(ctx: &StageContext, name: &str) -> anyhow::Result<ShardSink> {
        let docs_path = ctx.out_dir.join(DOCS).join(format!("{name}.parquet"));
        let rejected_path = ctx.out_dir.join(REJECTED).join(format!("{name}.parquet"));
        Ok(ShardSink {
            docs: DocShardWriter::create(&docs_path)?,
            rejected: RejectedShardWriter::create(&rejected_path)?,
            docs_path,
            rejected_path,
            stage: ctx.stage.name.clone(),
            counts: SinkCounts::default(),
        })
    }

    /// Counts `n` documents given to the stage for this shard (read from a file, or
    /// from an input shard's footer).
    pub fn read(&mut self, n: u64) {
        self.counts.tally.read += n;
    }

    pub fn keep(&mut self, doc: Document) -> anyhow::Result<()> {
        *self.counts.kept.entry(doc.source.clone()).or_default() += 1;
        *self
            .counts
            .splits
            .entry(doc.split.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
        if dapt_dag::fault::hit("drop-document", &self.stage) {
            return Ok(()); // a lost document, on purpose: the conservation check must see it
        }
        Ok(self.docs.write(doc)?)
    }

    pub fn reject(&mut self, rejected: Rejected) -> anyhow::Result<()> {
        *self
            .counts
            .rejected
            .entry(rejected.source.clone())
            .or_default() += 1;
        *self
            .counts
            .reasons
            .entry(rejected.reason.clone())
            .or_default() += 1;
        Ok(self.rejected.write(rejected)?)
    }

    /// Finishes both files and counts the rows they hold on disk.
    pub fn finish(mut self) -> anyhow::Result<SinkCounts> {
        self.docs.finish()?;
        dapt_dag::fault::hit("parquet-finish", &self.stage);
        self.rejected.finish()?;
        self.counts.tally.kept_rows = parquet_rows(&self.docs_path)?;
        self.counts.tally.rejected_rows = parquet_rows(&self.rejected_path)?;
        // Checked per shard, before the shard is marked finished, so that a rerun
        // redoes this shard instead of resuming past it.
        self.counts
            .conservation()
            .check()
            .map_err(|d| anyhow::anyhow!("{}: {d}", self.docs_path.display()))?;
        Ok(self.counts)
    }
}
