//! Reads and cleans every corpus of a `[corpora.*]` TOML file and prints
//! per-corpus counts, rejections per filter and read+clean throughput.
//!
//! cargo run --release -p dapt-data --example corpus_report -- DATA_ROOT [CORPORA_TOML]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use dapt_data::{CleanConfig, Cleaner, CorpusConfig, Record, read_corpus};

#[derive(serde::Deserialize)]
struct CorporaFile {
    corpora: BTreeMap<String, CorpusConfig>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .ok_or("usage: corpus_report DATA_ROOT [CORPORA_TOML]")?,
    );
    let toml_path = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpora.toml").to_owned());
    let corpora: CorporaFile = toml::from_str(&std::fs::read_to_string(&toml_path)?)?;
    let mut clean_config = CleanConfig::default();
    if std::env::var_os("NO_LANGUAGE_ID").is_some() {
        clean_config.language = None;
    }
    let (mut total_bytes, mut total_secs) = (0u64, 0f64);
    for (name, config) in &corpora.corpora {
        let started = Instant::now();
        read_corpus(name, config, &root, &mut |_| {})?;
        let read_secs = started.elapsed().as_secs_f64();
        let mut cleaner = Cleaner::new(clean_config.clone());
        let mut read_rejections: BTreeMap<String, u64> = BTreeMap::new();
        let started = Instant::now();
        let stats = read_corpus(name, config, &root, &mut |record| match record {
            Record::Doc(doc) => {
                let _ = cleaner.apply(doc);
            }
            Record::Rejected(r) => *read_rejections.entry(r.reason).or_default() += 1,
        })?;
        let secs = started.elapsed().as_secs_f64();
        total_bytes += stats.bytes;
        total_secs += secs;
        let clean = cleaner.stats();
        println!(
            "{name}: files {} docs {} read-rejected {} {:?} | kept {} rejected {} {:?} | {:.1} MB: read {:.1} MB/s, read+clean {:.1} MB/s",
            stats.files,
            stats.documents,
            stats.rejected,
            read_rejections,
            clean.kept,
            clean.rejected,
            clean.rejected_by,
            stats.bytes as f64 / 1e6,
            stats.bytes as f64 / 1e6 / read_secs,
            stats.bytes as f64 / 1e6 / secs
        );
    }
    println!(
        "total: {:.1} MB in {:.2}s = {:.1} MB/s (one thread)",
        total_bytes as f64 / 1e6,
        total_secs,
        total_bytes as f64 / 1e6 / total_secs
    );
    Ok(())
}
