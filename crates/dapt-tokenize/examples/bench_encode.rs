//! Encode throughput: the tokenize stage's path (encode + count + write a parquet token shard)
//! against the raw `Tokenizer::encode_batch` / `encode_batch_fast` on the same texts.
//!
//! cargo run --release -p dapt-tokenize --example bench_encode -- PATH [--tokenizer tokenizer.json]
//!
//! PATH is a text file or a folder (every file under it, recursively, read as UTF-8 with
//! invalid bytes replaced); each file is one document. Without --tokenizer, a byte-level BPE
//! with 8192 tokens is trained on up to 16 MB of the texts first. Each path runs 5 times;
//! the best run counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dapt_tokenize::bench::measure_encode_throughput;
use dapt_tokenize::{TokenizerTrainingConfig, load_tokenizer, train_tokenizer};

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            collect_files(&entry, files)?;
        }
    } else {
        files.push(path.to_owned());
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut input = None;
    let mut tokenizer_path = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tokenizer" => {
                tokenizer_path = Some(PathBuf::from(
                    args.next().context("--tokenizer needs a path")?,
                ))
            }
            _ if input.is_none() => input = Some(PathBuf::from(arg)),
            other => bail!(
                "unexpected argument {other}; usage: bench_encode PATH [--tokenizer tokenizer.json]"
            ),
        }
    }
    let input = input.context("usage: bench_encode PATH [--tokenizer tokenizer.json]")?;

    let mut files = Vec::new();
    collect_files(&input, &mut files)?;
    let texts: Vec<String> = files
        .iter()
        .map(|f| Ok(String::from_utf8_lossy(&std::fs::read(f)?).into_owned()))
        .collect::<Result<_>>()?;
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{} documents, {:.1} MB from {}",
        texts.len(),
        bytes as f64 / 1e6,
        input.display()
    );

    let tokenizer = match tokenizer_path {
        Some(path) => load_tokenizer(&path)?,
        None => {
            let started = std::time::Instant::now();
            let config = TokenizerTrainingConfig {
                sample_bytes_budget: 16 << 20,
                ..TokenizerTrainingConfig::default()
            };
            let shares = BTreeMap::from([("bench".to_owned(), 1.0)]);
            let trained =
                train_tokenizer(texts.iter().map(|t| ("bench", t.clone())), &shares, &config)?;
            println!(
                "trained a {}-token BPE in {:.1} s",
                config.vocab_size,
                started.elapsed().as_secs_f64()
            );
            trained.tokenizer
        }
    };

    let scratch = std::env::temp_dir();
    let result = measure_encode_throughput(&tokenizer, &texts, &scratch, 5)?;
    println!(
        "{} tokens ({:.2} bytes/token), {} rayon threads",
        result.tokens,
        result.bytes as f64 / result.tokens as f64,
        rayon::current_num_threads()
    );
    let cpu = result
        .cpu_tokens_per_s
        .map(|c| c.map(|t| format!("{t:>12.0}")));
    let cpu_column = |index: usize| cpu.as_ref().map_or("n/a".to_owned(), |c| c[index].clone());
    println!("{:<24} {:>12} {:>12}", "tokens/s", "wall", "CPU-second");
    let rows = [
        ("raw encode_batch", result.raw_encode_batch_tokens_per_s),
        (
            "raw encode_batch_fast",
            result.raw_encode_batch_fast_tokens_per_s,
        ),
        ("stage (encode + shard)", result.stage_tokens_per_s),
    ];
    for (index, (name, wall)) in rows.iter().enumerate() {
        println!("{name:<24} {wall:>12.0} {:>12}", cpu_column(index));
    }
    let cpu_fraction = result
        .cpu_tokens_per_s
        .map_or(f64::NAN, |[raw, fast, stage]| stage / raw.max(fast));
    println!(
        "{:<24} {:>11.1}% {:>11.1}%",
        "stage / best raw",
        100.0 * result.stage_fraction_of_raw(),
        100.0 * cpu_fraction
    );
    Ok(())
}
