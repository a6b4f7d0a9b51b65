//! Shared helpers for the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::PathBuf;

use dapt_data::{CorpusConfig, Document, Record, Rejected, read_corpus};

/// The data mirror (see `dapt_testdata::mirror`).
pub fn data_root() -> PathBuf {
    dapt_testdata::mirror()
}

#[derive(serde::Deserialize)]
struct CorporaFile {
    corpora: BTreeMap<String, CorpusConfig>,
}

/// The `[corpora.*]` tables of tests/corpora.toml.
pub fn corpora() -> BTreeMap<String, CorpusConfig> {
    let text = include_str!("../corpora.toml");
    toml::from_str::<CorporaFile>(text)
        .expect("tests/corpora.toml parses")
        .corpora
}

/// Reads a corpus fully into memory (fine for test-sized corpora).
pub fn read_all(
    name: &str,
    config: &CorpusConfig,
    root: &std::path::Path,
) -> (Vec<Document>, Vec<Rejected>) {
    let (mut docs, mut rejected) = (Vec::new(), Vec::new());
    read_corpus(name, config, root, &mut |record| match record {
        Record::Doc(d) => docs.push(d),
        Record::Rejected(r) => rejected.push(r),
    })
    .unwrap_or_else(|e| panic!("reading corpus {name}: {e}"));
    (docs, rejected)
}

pub fn count_by<'a>(values: impl Iterator<Item = Option<&'a str>>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for value in values {
        *counts
            .entry(value.unwrap_or("<none>").to_owned())
            .or_default() += 1;
    }
    counts
}

pub fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
