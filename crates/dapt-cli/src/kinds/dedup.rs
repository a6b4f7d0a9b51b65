//! `kind = "dedup"`: exact and MinHash near-duplicate removal over all inputs
//! together (cross-corpus duplicates count), and decontamination of training text
//! against every evaluation document.
//!
//! Three passes:
//! 1. `signatures` (sharded, resumable): exact key and MinHash signature of every
//!    document, stored compactly in `out/signatures/`.
//! 2. clustering (deterministic): union-find over exact keys and LSH buckets, in
//!    memory, or with `memory_mb` out of core (`dapt_dedup::external`: the keys sorted
//!    in bounded runs on disk; the same clusters); each cluster keeps one document (evaluation documents first, then the
//!    smallest id) — see `dapt_dedup::clusters`. The word n-grams of the protected
//!    documents (`validation`/`test` splits, and every document of `eval_only`
//!    inputs) are indexed.
//! 3. `write` (sharded, resumable): every training document is kept, or rejected
//!    as `duplicate` (with `duplicate_of` and the cluster) or `contamination` (with
//!    the evaluation document it matched).
//!
//! Documents of `eval_only` inputs (the sentiment sets) are references: their
//! protected documents protect their text, the rest take no part (a sentiment set's
//! train half may be the very text the language model trains on), and none is
//! written out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use dapt_dag::{ParamError, RunReport, StageContext, StageKind, parse_params};
use dapt_data::{Document, Rejected};
use dapt_dedup::external::{Bounds, band_groups, band_pairs, exact_pairs, roots_from_pairs};
use dapt_dedup::minhash::{MinHashConfig, MinHasher};
use dapt_dedup::store::{self, DocSignature, SignatureFiles, SignatureReader, SignatureWriter};
use dapt_dedup::text::{exact_key, word_hashes};
use dapt_dedup::{Clusters, Decision, Member, NgramIndex, quality, resolve_roots};
use rayon::prelude::*;
use serde::Deserialize;

use super::docs::{InputShard, ShardSink, SinkCounts, input_shards, params};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Params {
    /// Words per MinHash shingle.
    ngram: usize,
    bands: usize,
    rows: usize,
    /// Merge LSH candidates only when their signatures agree on at least this
    /// fraction of minima (`0` merges every candidate, as datatrove does). On the
    /// default corpora 0.7 raises the precision of removals from 0.71 to 0.89 at
    /// the same recall.
    verify: f64,
    /// Words per n-gram of the decontamination check (13, as in GPT-3).
    decontam_ngram: usize,
    /// Ignore n-grams held by more than this many evaluation documents (templates
    /// and legal boilerplate, not leaks); unset: every n-gram counts.
    decontam_max_eval_docs: Option<u32>,
    /// Splits whose documents are protected evaluation text.
    protect_splits: Vec<String>,
    /// Input stages whose documents are all evaluation-only (not written out).
    eval_only: Vec<String>,
    /// Pairs sampled for the precision and recall check.
    quality_samples: usize,
    /// Cluster out of core: signatures stay on disk and exact and band keys are sorted
    /// in runs of at most this many MB (`dapt_dedup::external`), so the stage holds about
    /// 4 bytes a document plus one entry per cluster of two or more, not every signature
    /// (~460 bytes a document), and hands freed memory back at once. Its peak is then
    /// about this + `jobs` x 128 MB of shard I/O (row groups of at most 64 MB, one read
    /// and one written per shard) + 40 MB. Unset: in memory. The outputs are the same
    /// either way.
    memory_mb: Option<usize>,
}

impl Default for Params {
    fn default() -> Self {
        let minhash = MinHashConfig::default();
        Params {
            ngram: minhash.ngram,
            bands: minhash.bands,
            rows: minhash.rows,
            verify: 0.7,
            decontam_ngram: 13,
            decontam_max_eval_docs: None,
            protect_splits: vec!["validation".into(), "test".into()],
            eval_only: Vec::new(),
            quality_samples: 1000,
            memory_mb: None,
        }
    }
}

impl Params {
    fn hasher(&self, seed: u64) -> MinHasher {
        MinHasher::new(MinHashConfig {
            ngram: self.ngram,
            bands: self.bands,
            rows: self.rows,
            seed,
        })
    }
}

/// The documents of a shard that take part in deduplication.
type Docs<'a> = Box<dyn Iterator<Item = anyhow::Result<Document>> + 'a>;

/// Which documents are protected evaluation text, and which take part at all.
#[derive(Clone, Copy)]
struct Membership<'a> {
    eval_only: &'a [String],
    protect_splits: &'a [String],
}

impl<'a> Membership<'a> {
    fn is_protected(&self, doc: &Document) -> bool {
        doc.split
            .as_ref()
            .is_some_and(|s| self.protect_splits.contains(s))
    }

    /// The documents of `shard` that take part, in order: all of a training input,
    /// the protected ones of an `eval_only` input.
    fn documents(&self, shard: &InputShard) -> anyhow::Result<Docs<'a>> {
        let docs = shard.documents()?;
        if !self.eval_only.contains(&shard.stage) {
            return Ok(Box::new(docs));
        }
        let this = *self;
        Ok(Box::new(docs.filter(move |d| {
            d.as_ref().map_or(true, |d| this.is_protected(d))
        })))
    }
}

pub struct DedupKind;

/// Documents signed together on every core: enough to keep both busy, few enough that a
/// batch of long filings stays small.
const SIGN_BATCH: usize = 256;

impl StageKind for DedupKind {
    fn name(&self) -> &'static str {
        "dedup"
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
        for (key, value) in [
            ("ngram", p.ngram),
            ("bands", p.bands),
            ("rows", p.rows),
            ("decontam_ngram", p.decontam_ngram),
        ] {
            if value == 0 {
                errors.push(ParamError::invalid(key, "must be at least 1"));
            }
        }
        if p.memory_mb == Some(0) {
            errors.push(ParamError::invalid("memory_mb", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&p.verify) {
            errors.push(ParamError::invalid("verify", "must be between 0 and 1"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        for name in &p.eval_only {
            anyhow::ensure!(
                ctx.stage.inputs.contains(name),
                "eval_only names `{name}`, which is not among this stage's inputs"
            );
        }
        if p.memory_mb.is_some() {
            crate::alloc::return_freed_memory();
        }
        let hasher = p.hasher(ctx.pipeline.seed);
        let shards = input_shards(ctx)?;
        let sig_dir = ctx.out_dir.join("signatures");
        let sig_path = |s: &InputShard| sig_dir.join(format!("{}.sig", s.name()));

        // Pass 1: signatures.
        let t0 = Instant::now();
        let membership = Membership {
            eval_only: &p.eval_only,
            protect_splits: &p.protect_splits,
        };
        let sig_counts = ctx.for_each_shard("signatures", shards.len(), |i| {
            let shard = &shards[i];
            // Signatures of a batch of documents on every core, in document order.
            let sign = |batch: Vec<Document>| -> Vec<DocSignature> {
                batch
                    .into_par_iter()
                    .map(|doc| DocSignature {
                        exact: exact_key(&doc.text),
                        signature: hasher.signature(&doc.text),
                        protected: membership.is_protected(&doc),
                        id: doc.id,
                        source: doc.source,
                    })
                    .collect()
            };
            // Streamed to the file a batch at a time: the pass holds one batch, whatever
            // the shard's size.
            let mut out = SignatureWriter::create(&sig_path(shard))?;
            let mut batch = Vec::with_capacity(SIGN_BATCH);
            for doc in membership.documents(shard)? {
                batch.push(doc?);
                if batch.len() == SIGN_BATCH {
                    sign(std::mem::take(&mut batch))
                        .iter()
                        .try_for_each(|d| out.push(d))?;
                }
            }
            sign(batch).iter().try_for_each(|d| out.push(d))?;
            Ok(out.finish()? as usize)
        })?;
        let signature_seconds = t0.elapsed().as_secs_f64();

        // Pass 2: clusters, and the n-gram index of evaluation text.
        let t1 = Instant::now();
        let mut offsets = Vec::with_capacity(shards.len());
        let mut total = 0usize;
        for count in &sig_counts {
            offsets.push(total);
            total += count;
        }
        let sig_files: Vec<PathBuf> = shards.iter().map(&sig_path).collect();
        let verify = (p.verify > 0.0).then_some(p.verify);
        ctx.status(&format!("clustering {total} documents"));
        ctx.set_progress_total(hasher.config().bands as u64, "LSH bands");
        let roots = match p.memory_mb {
            None => {
                let mut all: Vec<DocSignature> = Vec::with_capacity(total);
                for path in &sig_files {
                    all.extend(store::read_file(path)?);
                }
                let members: Vec<Member> = all.iter().map(DocSignature::member).collect();
                resolve_roots(&members, &hasher, verify, &mut |n| ctx.add_progress(n))
            }
            Some(mb) => {
                // In the attempt's partial folder: a resumed attempt keeps the finished
                // phases' pair files, and the commit removes them.
                let scratch = ctx
                    .out_dir
                    .parent()
                    .context("the stage's output folder has a parent")?
                    .join("cluster-scratch");
                std::fs::create_dir_all(&scratch)?;
                let source = SignatureFiles::open(sig_files.clone(), 1, &scratch)?;
                // One group of bands per job, each with its share of the sort buffer.
                let jobs = ctx.pipeline.jobs.max(1);
                let bands = hasher.config().bands;
                let bounds = Bounds {
                    memory_bytes: (mb << 20) / jobs,
                    bands_per_group: bands.div_ceil(jobs),
                };
                let entrants = scratch.join("entrants.bin");
                let exact = scratch.join("pairs-exact.bin");
                ctx.for_each_shard("exact", 1, |_| {
                    exact_pairs(&source, &bounds, &scratch, &exact, &entrants)?;
                    Ok(())
                })?;
                let groups = band_groups(bands, bounds.bands_per_group);
                let group_file = |g: usize| scratch.join(format!("pairs-bands-{g:03}.bin"));
                ctx.for_each_shard("buckets", groups.len(), |g| {
                    let group = groups[g].clone();
                    band_pairs(
                        &source,
                        &hasher,
                        verify,
                        group,
                        &bounds,
                        &scratch,
                        &entrants,
                        &group_file(g),
                    )?;
                    Ok(())
                })?;
                let mut pair_files = vec![exact];
                pair_files.extend((0..groups.len()).map(group_file));
                // The scratch folder stays until the commit removes `partial/`: a resumed
                // attempt whose phases are marked finished still needs their pair files.
                roots_from_pairs(total, &pair_files)?
            }
        };
        anyhow::ensure!(
            roots.len() == total,
            "the signature files hold {} documents, the signature pass counted {total}",
            roots.len()
        );
        // Representatives, from one pass over the signature files.
        // The same pass notes the protected (evaluation) documents, few, for the index below.
        let mut protected: Vec<usize> = Vec::new();
        let clusters = Clusters::new(roots, |visit| {
            let mut g = 0u32;
            for path in &sig_files {
                for d in SignatureReader::open(path)? {
                    let d = d?;
                    visit(g, &d.id, d.protected, d.exact);
                    if d.protected {
                        protected.push(g as usize);
                    }
                    g += 1;
                }
            }
            anyhow::Ok(())
        })?;
        ctx.status("indexing evaluation n-grams");
        let mut eval_index = NgramIndex::new(p.decontam_ngram, p.decontam_max_eval_docs);
        let mut eval_ids: Vec<String> = Vec::new();
        // Evaluation documents shorter than the decontamination n-gram: they
        // decontaminate only by exact normalised match, not as MinHash neighbours.
        let mut short_eval: HashSet<usize> = HashSet::new();
        for (s, shard) in shards.iter().enumerate() {
            // `protected` is in document order: this shard's are a contiguous run of it.
            let range = offsets[s]..offsets[s] + sig_counts[s];
            let first = protected.partition_point(|&g| g < range.start);
            if !protected.get(first).is_some_and(|g| range.contains(g)) {
                continue;
            }
            for (k, doc) in membership.documents(shard)?.enumerate() {
                let doc = doc?;
                if protected.binary_search(&(offsets[s] + k)).is_ok() {
                    if word_hashes(&doc.text).len() < p.decontam_ngram {
                        short_eval.insert(offsets[s] + k);
                    }
                    eval_index.add(eval_ids.len() as u32, &doc.text);
                    eval_ids.push(doc.id);
                }
            }
        }
        let cluster_seconds = t1.elapsed().as_secs_f64();

        // Pass 3: write what survives.
        let t2 = Instant::now();
        ctx.status("writing what survives");
        let written = ctx.for_each_shard("write", shards.len(), |s| {
            let shard = &shards[s];
            let mut sink = ShardSink::create(ctx, &shard.name())?;
            if p.eval_only.contains(&shard.stage) {
                return sink.finish();
            }
            sink.read(shard.rows()?);
            let mut sigs = SignatureReader::open(&sig_files[s])?;
            for (k, doc) in shard.documents()?.enumerate() {
                let doc = doc?;
                let g = offsets[s] + k;
                let sig = sigs
                    .next()
                    .transpose()?
                    .filter(|sig| sig.id == doc.id)
                    .with_context(|| {
                        format!(
                            "{} changed while the stage ran; run it again",
                            shard.path.display()
                        )
                    })?;
                let representative = clusters.cluster_of(g);
                let rep_protected = representative.is_some_and(|c| c.representative_protected);
                let verdict = match clusters.decision(g, sig.exact) {
                    // A benchmark is what it is: an evaluation document is never
                    // dropped, even as a duplicate (those are counted, below).
                    _ if sig.protected => None,
                    // A MinHash neighbour of a short evaluation text is not evidence
                    // of a leak; only the n-gram index's exact match is.
                    Decision::Duplicate {
                        of, exact: false, ..
                    } if rep_protected && short_eval.contains(&of) => {
                        eval_index.first_match(&doc.text).map(|e| {
                            (
                                "contamination",
                                format!(
                                    "equals short evaluation document {}",
                                    eval_ids[e as usize]
                                ),
                            )
                        })
                    }
                    Decision::Duplicate { exact, .. } => {
                        let rep = &representative
                            .expect("a duplicate has a cluster")
                            .representative_id;
                        let kind = if exact { "exact" } else { "near" };
                        if rep_protected {
                            Some((
                                "contamination",
                                format!("{kind} duplicate of evaluation document {rep}"),
                            ))
                        } else {
                            Some((
                                "duplicate",
                                format!("duplicate_of={rep} cluster={rep} {kind}"),
                            ))
                        }
                    }
                    Decision::Keep { .. } => eval_index.first_match(&doc.text).map(|e| {
                        (
                            "contamination",
                            format!(
                                "shares a {}-gram with evaluation document {}",
                                p.decontam_ngram, eval_ids[e as usize]
                            ),
                        )
                    }),
                };
                match verdict {
                    None => sink.keep(doc)?,
                    Some((reason, detail)) => sink.reject(Rejected {
                        id: doc.id,
                        source: doc.source,
                        reason: reason.to_string(),
                        detail,
                        text: Some(doc.text),
                    })?,
                }
            }
            sink.finish()
        })?;
        let write_seconds = t2.elapsed().as_secs_f64();

        let (sums, counts_json) = SinkCounts::summarise(&written);
        let input: u64 = sig_counts
            .iter()
            .zip(&shards)
            .filter(|(_, shard)| !p.eval_only.contains(&shard.stage))
            .map(|(n, _)| *n as u64)
            .sum();
        let scan = Scan {
            shards: &shards,
            sig_files: &sig_files,
            offsets: &offsets,
            clusters: &clusters,
        };
        let quality = quality_report(
            ctx,
            &scan,
            &membership,
            &hasher,
            p.quality_samples,
            ctx.pipeline.seed,
        )?;

        let mut counts = BTreeMap::new();
        counts.insert("documents_in".into(), input.into());
        counts.insert("kept".into(), sums.total_kept().into());
        counts.insert("removed".into(), sums.total_rejected().into());
        counts.insert("by_corpus".into(), counts_json);
        counts.insert("cluster_sizes".into(), cluster_histogram(&clusters));
        counts.insert("eval_documents_protected".into(), eval_ids.len().into());
        counts.insert(
            "eval_duplicates".into(),
            eval_duplicates(&scan, &p.eval_only)?,
        );
        counts.insert(
            "rule".into(),
            format!(
                "evaluation documents (splits {:?} and inputs {:?}) are never removed; \
                 duplicates among them are counted in eval_duplicates. A training document \
                 is removed as contamination when it duplicates one, exactly or as a MinHash \
                 neighbour, or shares a {}-gram with one; evaluation documents under {} \
                 words match only by exact normalised text",
                p.protect_splits, p.eval_only, p.decontam_ngram, p.decontam_ngram
            )
            .into(),
        );
        counts.insert("eval_ngrams_indexed".into(), eval_index.len().into());
        counts.insert(
            "eval_ngrams_ignored_as_boilerplate".into(),
            eval_index.boilerplate().into(),
        );
        counts.insert("lsh_threshold".into(), hasher.config().threshold().into());
        counts.insert("quality".into(), quality);
        counts.insert(
            "seconds".into(),
            serde_json::json!({"signatures": signature_seconds, "clusters": cluster_seconds, "write": write_seconds}),
        );
        counts.insert(
            "signature_bytes".into(),
            dir_bytes(&ctx.out_dir.join("signatures")).into(),
        );
        Ok(RunReport {
            counts,
            conservation: Some(sums.conservation()),
        })
    }
}

/// The documents' signatures, streamed one at a time, with their clusters.
struct Scan<'a> {
    shards: &'a [InputShard],
    sig_files: &'a [PathBuf],
    offsets: &'a [usize],
    clusters: &'a Clusters,
}

impl Scan<'_> {
    fn len(&self) -> usize {
        self.clusters.len()
    }

    /// `visit(global index, input shard, signature)` for every document, in order.
    fn for_each(
        &self,
        mut visit: impl FnMut(usize, &InputShard, &DocSignature),
    ) -> anyhow::Result<()> {
        for (s, shard) in self.shards.iter().enumerate() {
            for (k, sig) in SignatureReader::open(&self.sig_files[s])?.enumerate() {
                visit(self.offsets[s] + k, shard, &sig?);
            }
        }
        Ok(())
    }
}

/// Evaluation documents that duplicate another evaluation document: reported (how
/// many, and the first few pairs), never dropped. `eval_only` inputs are not written,
/// so their duplicates are counted apart.
fn eval_duplicates(scan: &Scan, eval_only: &[String]) -> anyhow::Result<serde_json::Value> {
    const EXAMPLES: usize = 10;
    let mut count = 0u64;
    let mut in_eval_only = 0u64;
    let mut examples = Vec::new();
    scan.for_each(|g, shard, sig| {
        let Decision::Duplicate { exact, .. } = scan.clusters.decision(g, sig.exact) else {
            return;
        };
        let rep = scan
            .clusters
            .cluster_of(g)
            .expect("a duplicate has a cluster");
        if !(sig.protected && rep.representative_protected) {
            return;
        }
        count += 1;
        if eval_only.contains(&shard.stage) {
            in_eval_only += 1;
        }
        if examples.len() < EXAMPLES {
            examples.push(serde_json::json!({
                "id": sig.id,
                "duplicate_of": rep.representative_id,
                "exact": exact,
            }));
        }
    })?;
    Ok(serde_json::json!({
        "count": count,
        "in_eval_only_inputs": in_eval_only,
        "examples": examples,
    }))
}

/// Clusters by size: `{"1": n, "2": m, ...}` (sizes over 10 grouped as `>10`).
fn cluster_histogram(clusters: &Clusters) -> serde_json::Value {
    let mut histogram: BTreeMap<String, u64> = BTreeMap::new();
    for size in clusters.sizes() {
        let key = if size > 10 {
            ">10".to_string()
        } else {
            format!("{size:02}")
        };
        *histogram.entry(key).or_default() += 1;
    }
    serde_json::to_value(histogram).unwrap_or_default()
}

/// Precision of the near-duplicate removals and recall on planted copies.
fn quality_report(
    ctx: &StageContext,
    scan: &Scan,
    membership: &Membership,
    hasher: &MinHasher,
    samples: usize,
    seed: u64,
) -> anyhow::Result<serde_json::Value> {
    let mut all_near: Vec<(usize, usize)> = Vec::new();
    scan.for_each(|g, _, sig| {
        if let Decision::Duplicate {
            of, exact: false, ..
        } = scan.clusters.decision(g, sig.exact)
        {
            all_near.push((g, of));
        }
    })?;
    let near: Vec<(usize, usize)> = all_near
        .iter()
        .copied()
        .step_by((all_near.len() / samples.max(1)).max(1))
        .take(samples)
        .collect();
    let total = scan.len();
    let stride = (total / samples.max(1)).max(1);
    let wanted: HashSet<usize> = near
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .chain((0..total).step_by(stride))
        .collect();
    let mut texts: HashMap<usize, String> = HashMap::new();
    let mut g = 0;
    ctx.status("quality check: reading sampled pairs");
    ctx.set_progress_total(total as u64, "documents");
    for shard in scan.shards {
        let before = g;
        for doc in membership.documents(shard)? {
            let doc = doc?;
            if wanted.contains(&g) {
                texts.insert(g, doc.text);
            }
            g += 1;
        }
        ctx.add_progress((g - before) as u64);
    }
    let pairs: Vec<(&str, &str)> = near
        .iter()
        .map(|(a, b)| (texts[a].as_str(), texts[b].as_str()))
        .collect();
    let sample: Vec<&str> = (0..total)
        .step_by(stride)
        .map(|i| &texts[&i][..texts[&i].floor_char_boundary(20_000)]) // recall needs a prefix, not whole books
        .collect();
    ctx.status(&format!(
        "quality check: Jaccard of {} removed pairs, recall on {} planted copies",
        pairs.len(),
        samples
    ));
    Ok(serde_json::json!({
        "near_duplicate_precision": quality::pair_precision(&pairs, hasher),
        "planted_recall": quality::planted_recall(&sample, hasher, samples, seed),
    }))
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    dapt_dag::fsutil::files_under(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|f: &PathBuf| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}
