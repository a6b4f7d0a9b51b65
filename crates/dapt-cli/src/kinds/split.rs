//! `kind = "split"`: gives every document a `train` / `validation` / `test` split.
//!
//! A document keeps the split its corpus defines (Reuters' LEWISSPLIT, the WikiText
//! files, ECTSum's folders, PhraseBank's fixed split). Any other document is placed by
//! a stable hash of its id — or of a metadata field named in `group_by`, so that
//! e.g. all filings of one company (`cik`) land in the same split — with the
//! configured ratios. Nothing is dropped. A document that lacks its corpus's
//! `group_by` field is an error naming the corpus and the field: falling back to the
//! id would quietly scatter the group across splits.

use std::collections::BTreeMap;

use dapt_dag::{ParamError, RunReport, StageContext, StageKind, parse_params};
use dapt_data::Document;
use serde::Deserialize;

use super::docs::{ShardSink, SinkCounts, input_shards, params};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Params {
    /// Shares of train, validation and test for documents without a split.
    ratios: BTreeMap<String, f64>,
    /// Corpus -> `meta` field whose value decides the split instead of the id.
    group_by: BTreeMap<String, String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            ratios: [("train", 0.98), ("validation", 0.01), ("test", 0.01)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            group_by: BTreeMap::new(),
        }
    }
}

const SPLITS: [&str; 3] = ["train", "validation", "test"];

impl Params {
    /// The split for hash position `u` in [0, 1), in the fixed order train, validation, test.
    fn split_at(&self, u: f64) -> &'static str {
        let total: f64 = self.ratios.values().sum();
        let mut acc = 0.0;
        for split in SPLITS {
            acc += self.ratios.get(split).copied().unwrap_or(0.0) / total;
            if u < acc {
                return split;
            }
        }
        "train"
    }

    /// What the split is hashed from: the document's id, or the value of its corpus's
    /// `group_by` field. A document without that field is an error naming the corpus
    /// and the field (falling back to the id would scatter the group it belongs to).
    fn key<'d>(&self, doc: &'d Document) -> anyhow::Result<std::borrow::Cow<'d, str>> {
        let Some(field) = self.group_by.get(&doc.source) else {
            return Ok(std::borrow::Cow::Borrowed(&doc.id));
        };
        let meta: Option<serde_json::Value> = doc
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok());
        match meta.as_ref().and_then(|m| m.get(field)) {
            Some(v) if !v.is_null() => Ok(std::borrow::Cow::Owned(format!("{}/{v}", doc.source))),
            _ => anyhow::bail!(
                "corpus `{}`: document {} has no `{field}` field, which group_by.{} names \
                 (its metadata: {})",
                doc.source,
                doc.id,
                doc.source,
                doc.meta.as_deref().unwrap_or("none")
            ),
        }
    }
}

/// A stable position in [0, 1) for `key` (blake3, independent of platform and run).
fn unit_hash(key: &str) -> f64 {
    let digest = blake3::hash(key.as_bytes());
    let bits = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

pub struct SplitKind;

impl StageKind for SplitKind {
    fn name(&self) -> &'static str {
        "split"
    }

    fn sharded(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        let p: Params = parse_params(params)?;
        let mut errors = Vec::new();
        for (split, share) in &p.ratios {
            if !SPLITS.contains(&split.as_str()) {
                errors.push(ParamError {
                    key: format!("ratios.{split}"),
                    message: format!("unknown split `{split}` (expected train, validation, test)"),
                    unknown_key: true,
                });
            } else if !share.is_finite() || *share < 0.0 {
                errors.push(ParamError {
                    key: format!("ratios.{split}"),
                    message: "must be a non-negative share".into(),
                    unknown_key: false,
                });
            }
        }
        if p.ratios.values().sum::<f64>() <= 0.0 {
            errors.push(ParamError {
                key: "ratios".into(),
                message: "the shares must add up to more than 0".into(),
                unknown_key: false,
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        let shards = input_shards(ctx)?;
        let written = ctx.for_each_shard("split", shards.len(), |i| {
            let mut sink = ShardSink::create(ctx, &shards[i].name())?;
            sink.read(shards[i].rows()?);
            for doc in shards[i].documents()? {
                let mut doc = doc?;
                if doc.split.is_none() {
                    doc.split = Some(p.split_at(unit_hash(&p.key(&doc)?)).to_string());
                }
                sink.keep(doc)?;
            }
            sink.finish()
        })?;
        let (total, json) = SinkCounts::summarise(&written);
        let mut counts = BTreeMap::new();
        counts.insert("documents".into(), total.total_kept().into());
        counts.insert("by_corpus".into(), json);
        Ok(RunReport {
            counts,
            conservation: Some(total.conservation()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_positions_follow_the_ratios() {
        let p = Params::default();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..20_000 {
            *counts
                .entry(p.split_at(unit_hash(&format!("doc/{i}"))))
                .or_default() += 1;
        }
        assert!(
            (counts["train"] as f64 / 20_000.0 - 0.98).abs() < 0.005,
            "{counts:?}"
        );
        assert!(
            (counts["test"] as f64 / 20_000.0 - 0.01).abs() < 0.003,
            "{counts:?}"
        );
    }

    #[test]
    fn group_by_keeps_a_company_in_one_split() {
        let p = Params {
            group_by: [("edgar".to_string(), "cik".to_string())].into(),
            ..Params::default()
        };
        let doc = |id: &str, cik: &str| Document {
            meta: Some(format!("{{\"cik\": \"{cik}\"}}")),
            ..Document::new(id.into(), "financial", "edgar", "text".into())
        };
        assert_eq!(
            p.key(&doc("edgar/a", "1000")).unwrap(),
            p.key(&doc("edgar/b", "1000")).unwrap()
        );
        assert_ne!(
            p.key(&doc("edgar/a", "1000")).unwrap(),
            p.key(&doc("edgar/a", "2000")).unwrap()
        );
        let without = Document {
            meta: Some("{\"year\": 2020}".into()),
            ..Document::new("edgar/c".into(), "financial", "edgar", "text".into())
        };
        let error = p.key(&without).unwrap_err().to_string();
        assert!(
            error.contains("corpus `edgar`") && error.contains("no `cik` field"),
            "{error}"
        );
    }
}
