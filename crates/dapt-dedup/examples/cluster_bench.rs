//! Clustering a dedup stage's signatures in memory (`clusters::resolve`) or out of core
//! (`external::cluster_roots`): wall time, documents/s, peak RSS and a digest of the
//! partition (equal digests: the same clusters). Run each mode in its own process, so the
//! peak RSS is its own.
//!
//! `cargo run --release -p dapt-cli -p dapt-dedup --example cluster_bench -- MODE SIG_DIR [COPIES] [MEMORY_MB]`
//!
//! MODE is `memory` or `external`; SIG_DIR a dedup stage's `out/signatures`; COPIES
//! repeats the corpus (each copy an exact duplicate of the first), to measure how memory
//! grows with the corpus; MEMORY_MB the external sort buffer (default 64).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dapt_dedup::external::{Bounds, cluster_roots};
use dapt_dedup::minhash::{MinHashConfig, MinHasher};
use dapt_dedup::store::{self, DocSignature, SignatureFiles};
use dapt_dedup::{Decision, Member, resolve};

fn sig_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sig"))
        .collect();
    files.sort();
    Ok(files)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A digest of the partition: each document's smallest cluster-mate, in order.
fn digest(min_of: impl Iterator<Item = u32>) -> (u64, usize) {
    let (mut h, mut clustered) = (0xcbf2_9ce4_8422_2325u64, 0);
    for (i, m) in min_of.enumerate() {
        if m as usize != i {
            clustered += 1;
        }
        h = (h ^ u64::from(m)).wrapping_mul(0x0100_0000_01b3);
    }
    (h, clustered)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("memory");
    let dir = PathBuf::from(args.get(1).expect("SIG_DIR"));
    let copies: usize = args.get(2).map_or(1, |c| c.parse().expect("COPIES"));
    let memory_mb: usize = args.get(3).map_or(64, |m| m.parse().expect("MEMORY_MB"));
    // The stage's defaults (dedup.rs): 14 bands of 8 rows, verify at 0.7.
    let config = MinHashConfig::default();
    let hasher = MinHasher::new(config);
    let verify = Some(0.7);
    let started = Instant::now();
    let (docs, (partition, clustered)) = match mode {
        "memory" => {
            let mut all = Vec::new();
            for _ in 0..copies {
                for path in sig_files(&dir)? {
                    all.extend(store::read_file(&path)?);
                }
            }
            let members: Vec<Member> = all.iter().map(DocSignature::member).collect();
            let decisions = resolve(&members, &hasher, verify, &mut |_| {});
            let mut min_of: HashMap<usize, u32> = HashMap::new();
            for (i, d) in decisions.iter().enumerate() {
                let cluster = match d {
                    Decision::Keep { .. } => i,
                    Decision::Duplicate { cluster, .. } => *cluster,
                };
                min_of.entry(cluster).or_insert(i as u32);
            }
            let mins = decisions.iter().enumerate().map(|(i, d)| match d {
                Decision::Keep { .. } => min_of[&i],
                Decision::Duplicate { cluster, .. } => min_of[cluster],
            });
            (all.len(), digest(mins))
        }
        "external" => {
            let scratch =
                std::env::temp_dir().join(format!("dapt-cluster-bench-{}", std::process::id()));
            std::fs::create_dir_all(&scratch)?;
            let source = SignatureFiles::open(sig_files(&dir)?, copies, &scratch)?;
            let bounds = Bounds {
                memory_bytes: memory_mb << 20,
                bands_per_group: hasher.config().bands,
            };
            let roots = cluster_roots(&source, &hasher, verify, &bounds, &scratch, &mut |_| {})?;
            std::fs::remove_dir_all(&scratch)?;
            (roots.len(), digest(roots.into_iter()))
        }
        other => panic!("unknown mode `{other}` (memory or external)"),
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"docs\":{docs},\"copies\":{copies},\"memory_mb\":{memory_mb},\"seconds\":{seconds:.3},\"docs_per_s\":{:.0},\"peak_rss_mb\":{:.1},\"clustered\":{clustered},\"partition\":\"{partition:016x}\"}}",
        docs as f64 / seconds,
        peak_rss_mb()
    );
    Ok(())
}
