//! The data stages end to end on the real corpora (from `$DAPT_DATA_MIRROR`):
//! ingest, clean, split and dedup through the `dapt` binary.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use dapt_data::{DocShardReader, Document, Rejected, RejectedShardReader};
use support::*;

fn header_with_data(name: &str, data_root: &Path) -> String {
    format!(
        "[pipeline]\nname = \"{name}\"\njobs = 2\ndata_root = \"{}\"\n\n",
        data_root.display()
    )
}

fn manifest(sb: &Sandbox, stage: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(sb.path(&format!(".dapt/stages/{stage}/manifest.json")))
        .expect("manifest");
    serde_json::from_str(&text).unwrap()
}

fn docs(sb: &Sandbox, stage: &str) -> Vec<Document> {
    shard_rows(&sb.path(&format!(".dapt/stages/{stage}/out/docs")), |p| {
        DocShardReader::open(p)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    })
}

fn rejected(sb: &Sandbox, stage: &str) -> Vec<Rejected> {
    shard_rows(
        &sb.path(&format!(".dapt/stages/{stage}/out/rejected")),
        |p| {
            RejectedShardReader::open(p)
                .unwrap()
                .map(Result::unwrap)
                .collect()
        },
    )
}

fn shard_rows<T>(dir: &Path, read: impl Fn(&Path) -> Vec<T>) -> Vec<T> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().flat_map(|p| read(p)).collect()
}

const REUTERS: &str = "[corpora.reuters]\ndomain = \"financial\"\nreader = \"reuters-sgml\"\npaths = [\"financial/reuters21578/reut2-*.sgm\"]\n\n";

#[test]
fn reuters_yields_every_document_with_its_lewissplit() {
    let sb = Sandbox::new(
        &(header_with_data("reuters", &dapt_testdata::mirror())
            + REUTERS
            + "[stages.ingest]\nkind = \"ingest\"\ncorpora = [\"reuters\"]\nshard_mb = 4\n"),
    );
    sb.dapt_expect(&["run"], 0);
    let m = manifest(&sb, "ingest");
    assert_eq!(m["counts"]["documents"], 21_578);
    assert_eq!(m["counts"]["rejected"], 0);
    let splits = &m["counts"]["by_corpus"]["splits"];
    assert_eq!(
        (
            splits["train"].as_u64(),
            splits["test"].as_u64(),
            splits["validation"].as_u64()
        ),
        (Some(14_668), Some(6_188), Some(722))
    );
    assert_eq!(
        m["conservation"],
        serde_json::json!({"input": 21_578, "kept": 21_578, "rejected": 0})
    );
    assert!(m["shards"].as_u64().unwrap() > 1, "ingest is sharded");
    // Stable ids, and the rows on disk are the documents counted.
    let all = docs(&sb, "ingest");
    assert_eq!(all.len(), 21_578);
    assert_eq!(all[0].id, "reuters/financial/reuters21578/reut2-000.sgm/0");
    let inspect = std::process::Command::new(env!("CARGO_BIN_EXE_dapt"))
        .args(["inspect", ".dapt/stages/ingest/out/docs", "--rows", "2"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let inspect = stdout(&inspect);
    assert!(inspect.contains("21578 rows"), "{inspect}");
    assert!(
        inspect.contains("  text: str") && inspect.contains("id: nulls=0 distinct=21578"),
        "{inspect}"
    );
}

#[test]
fn phrasebank_all_agree_keeps_its_labels() {
    let corpus = "[corpora.phrasebank]\ndomain = \"sentiment\"\nreader = \"phrasebank\"\npaths = [\"financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt\"]\n\n";
    let sb = Sandbox::new(
        &(header_with_data("pb", &dapt_testdata::mirror())
            + corpus
            + "[stages.ingest]\nkind = \"ingest\"\ncorpora = [\"phrasebank\"]\n"),
    );
    sb.dapt_expect(&["run"], 0);
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    for d in docs(&sb, "ingest") {
        *labels.entry(d.label.unwrap()).or_default() += 1;
    }
    assert_eq!(
        labels,
        BTreeMap::from([
            ("negative".into(), 303),
            ("neutral".into(), 1_391),
            ("positive".into(), 570)
        ])
    );
}

/// Reuters (3 files, two with TEST documents), BBC News and PhraseBank through
/// ingest, clean, split, dedup.
fn small_pipeline(data_root: &Path) -> String {
    header_with_data("small", data_root)
        + "[corpora.reuters]\ndomain = \"financial\"\nreader = \"reuters-sgml\"\npaths = [\"financial/reuters21578/reut2-01[3-5].sgm\"]\n\n"
        + "[corpora.bbc]\ndomain = \"general\"\nreader = \"folder-labels\"\nencoding = \"utf-8-or-latin-1\"\npaths = [\"general/bbc_news/*/*.txt\"]\n\n"
        + "[corpora.phrasebank]\ndomain = \"sentiment\"\nreader = \"phrasebank\"\npaths = [\"financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt\"]\n\n"
        + "[stages.ingest_fin]\nkind = \"ingest\"\ncorpora = [\"reuters\"]\nshard_mb = 1\n\n"
        + "[stages.ingest_gen]\nkind = \"ingest\"\ncorpora = [\"bbc\"]\nshard_mb = 1\n\n"
        + "[stages.ingest_sentiment]\nkind = \"ingest\"\ncorpora = [\"phrasebank\"]\n\n"
        + "[stages.clean]\nkind = \"clean\"\ninputs = [\"ingest_fin\", \"ingest_gen\"]\n\n"
        + "[stages.split]\nkind = \"split\"\ninputs = [\"clean\"]\n\n"
        + "[stages.dedup]\nkind = \"dedup\"\ninputs = [\"split\", \"ingest_sentiment\"]\neval_only = [\"ingest_sentiment\"]\n"
}

#[test]
fn every_stage_accounts_for_every_document() {
    let sb = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    sb.dapt_expect(&["run"], 0);
    for stage in ["ingest_fin", "ingest_gen", "clean", "split", "dedup"] {
        let m = manifest(&sb, stage);
        let c = &m["conservation"];
        let (input, kept, dropped) = (
            c["input"].as_u64().unwrap(),
            c["kept"].as_u64().unwrap(),
            c["rejected"].as_u64().unwrap(),
        );
        assert_eq!(input, kept + dropped, "{stage}: {c}");
        assert_eq!(
            docs(&sb, stage).len() as u64,
            kept,
            "{stage}: kept rows on disk"
        );
        assert_eq!(
            rejected(&sb, stage).len() as u64,
            dropped,
            "{stage}: rejected rows on disk"
        );
    }
    // What clean drops is what ingest kept and clean did not: nothing vanishes in between.
    let ingested = manifest(&sb, "ingest_fin")["counts"]["documents"]
        .as_u64()
        .unwrap()
        + manifest(&sb, "ingest_gen")["counts"]["documents"]
            .as_u64()
            .unwrap();
    assert_eq!(
        manifest(&sb, "clean")["conservation"]["input"]
            .as_u64()
            .unwrap(),
        ingested
    );
    let reasons: HashSet<String> = rejected(&sb, "clean")
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert!(
        reasons.iter().all(|r| r.starts_with("filter:")),
        "{reasons:?}"
    );
    // Every document has a split after the split stage.
    assert!(
        docs(&sb, "split")
            .iter()
            .all(|d| matches!(d.split.as_deref(), Some("train" | "validation" | "test")))
    );
}

#[test]
fn a_kind_that_loses_a_document_fails_and_the_difference_is_named() {
    let sb = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    // Each of these kinds, broken on purpose, drops one document it should have written.
    for stage in ["ingest_fin", "clean", "split", "dedup"] {
        let out = sb
            .command(&["run", stage])
            .env("DAPT_FAULT", format!("drop-document/{stage}=fire"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{stage}: {}", stderr(&out));
        let (state, reason) = sb.state_of(stage);
        assert_eq!(state, "failed", "{stage}");
        assert!(
            reason.contains("documents not accounted for") && reason.contains(", 1 lost"),
            "{stage}: {reason}"
        );
        assert!(
            !sb.path(&format!(".dapt/stages/{stage}/manifest.json"))
                .exists()
        );
        // Unbroken, the same stage passes its check.
        sb.dapt_expect(&["run", stage], 0);
    }
}

#[test]
fn the_98_duplicate_bbc_files_are_found() {
    let sb = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    sb.dapt_expect(&["run", "dedup"], 0);
    let exact_bbc: Vec<Rejected> = rejected(&sb, "dedup")
        .into_iter()
        .filter(|r| r.source == "bbc" && r.detail.ends_with(" exact"))
        .collect();
    assert_eq!(
        exact_bbc.len(),
        98,
        "exact duplicate files removed from BBC News"
    );
    for r in &exact_bbc {
        let of = r
            .detail
            .split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches("duplicate_of=");
        assert!(
            of < r.id.as_str(),
            "the smallest id is kept: {} kept over {}",
            of,
            r.id
        );
    }
}

/// Writes `corpus.jsonl` of `texts` under `dir`.
fn write_jsonl(path: &Path, texts: &[String]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn dedup_never_removes_an_evaluation_document_and_short_ones_match_only_exactly() {
    // Real BBC articles as training text, and a test corpus holding two copies of one
    // article (a benchmark's own duplicate) and a short PhraseBank-like sentence.
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dapt_testdata::mirror().join("general/bbc_news/business"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    paths.sort();
    let articles: Vec<String> = paths
        .iter()
        .take(30)
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let short = "Operating profit rose sharply in the third quarter.";
    let mut training: Vec<String> = articles[..20].to_vec();
    training.push(format!(
        "{short} The board proposed a dividend of 0.50 euro per share."
    ));
    training.push(short.to_uppercase());
    let evaluation = vec![
        articles[25].clone(),
        articles[25].clone(),
        short.to_string(),
    ];

    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("train.jsonl"), &training);
    write_jsonl(&dir.path().join("test.jsonl"), &evaluation);
    let text = header_with_data("evaldedup", dir.path())
        + "[corpora.train]\ndomain = \"financial\"\nreader = \"jsonl\"\npaths = [\"train.jsonl\"]\nsplit = \"train\"\n\n"
        + "[corpora.test]\ndomain = \"financial\"\nreader = \"jsonl\"\npaths = [\"test.jsonl\"]\nsplit = \"test\"\n\n"
        + "[stages.ingest]\nkind = \"ingest\"\ncorpora = [\"train\", \"test\"]\n\n"
        + "[stages.dedup]\nkind = \"dedup\"\ninputs = [\"ingest\"]\n";
    let sb = Sandbox::new(&text);
    sb.dapt_expect(&["run"], 0);

    let kept: HashSet<String> = docs(&sb, "dedup").into_iter().map(|d| d.id).collect();
    for k in 0..3 {
        assert!(
            kept.contains(&format!("test/test.jsonl/{k}")),
            "evaluation document {k} was removed"
        );
    }
    let removed: BTreeMap<String, (String, String)> = rejected(&sb, "dedup")
        .into_iter()
        .map(|r| (r.id, (r.reason, r.detail)))
        .collect();
    // The training text that merely contains the short sentence stays; the one that is
    // the sentence (case aside) goes.
    assert!(kept.contains("train/train.jsonl/20"), "{removed:?}");
    let (reason, detail) = &removed["train/train.jsonl/21"];
    assert_eq!(reason, "contamination");
    assert!(detail.contains("test/test.jsonl/2"), "{detail}");
    let contaminated: Vec<&String> = removed
        .iter()
        .filter(|(_, (reason, _))| reason == "contamination")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(contaminated, ["train/train.jsonl/21"], "{removed:?}");

    let counts = &manifest(&sb, "dedup")["counts"];
    assert_eq!(counts["eval_duplicates"]["count"], 1, "{counts}");
    assert_eq!(
        counts["eval_duplicates"]["examples"][0]["duplicate_of"],
        "test/test.jsonl/0"
    );
    assert!(
        counts["rule"].as_str().unwrap().contains("never removed"),
        "{counts}"
    );
}

#[test]
fn planted_exact_and_near_duplicates_are_found_across_corpora() {
    // Originals: 200 real BBC articles, none a near copy of another (BBC News has
    // some); copies in a second corpus: 40 exact (case and spacing changed), 40 near
    // (1% of words replaced), 40 unrelated articles.
    let shingles =
        |t: &str| -> HashSet<Vec<String>> { words(t).windows(5).map(<[String]>::to_vec).collect() };
    let mut bbc: Vec<String> = Vec::new();
    let mut seen: Vec<HashSet<Vec<String>>> = Vec::new();
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dapt_testdata::mirror().join("general/bbc_news/tech"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap();
        let s = shingles(&text);
        let similar =
            |o: &HashSet<Vec<String>>| s.intersection(o).count() * 2 > s.union(o).count() / 2;
        if !seen.iter().any(similar) {
            seen.push(s);
            bbc.push(text);
        }
        if bbc.len() == 240 {
            break;
        }
    }
    let originals = &bbc[..200];
    let mut copies = Vec::new();
    for text in originals.iter().take(40) {
        copies.push(
            text.to_uppercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("  "),
        );
    }
    for text in originals.iter().skip(40).take(40) {
        let words: Vec<String> = text
            .split_whitespace()
            .enumerate()
            .map(|(k, w)| {
                if k % 100 == 7 {
                    format!("edited{k}")
                } else {
                    w.to_string()
                }
            })
            .collect();
        copies.push(words.join(" "));
    }
    copies.extend(bbc[200..240].iter().cloned());

    let dir = tempfile::tempdir().unwrap();
    write_jsonl(&dir.path().join("originals.jsonl"), originals);
    write_jsonl(&dir.path().join("planted.jsonl"), &copies);
    let text = header_with_data("planted", dir.path())
        + "[corpora.originals]\ndomain = \"general\"\nreader = \"jsonl\"\npaths = [\"originals.jsonl\"]\nsplit = \"train\"\n\n"
        + "[corpora.planted]\ndomain = \"general\"\nreader = \"jsonl\"\npaths = [\"planted.jsonl\"]\nsplit = \"train\"\n\n"
        + "[stages.ingest]\nkind = \"ingest\"\ncorpora = [\"originals\", \"planted\"]\n\n"
        + "[stages.dedup]\nkind = \"dedup\"\ninputs = [\"ingest\"]\n";
    let sb = Sandbox::new(&text);
    sb.dapt_expect(&["run"], 0);

    let removed: BTreeMap<String, String> = rejected(&sb, "dedup")
        .into_iter()
        .map(|r| (r.id, r.detail))
        .collect();
    for k in 0..80 {
        let id = format!("planted/planted.jsonl/{k}");
        let detail = removed
            .get(&id)
            .unwrap_or_else(|| panic!("planted copy {k} not found"));
        let kind = if k < 40 { "exact" } else { "near" };
        assert_eq!(
            detail,
            &format!(
                "duplicate_of=originals/originals.jsonl/{k} cluster=originals/originals.jsonl/{k} {kind}"
            )
        );
    }
    assert_eq!(
        removed.len(),
        80,
        "only the planted copies are removed: {removed:?}"
    );
    let quality = &manifest(&sb, "dedup")["counts"]["quality"];
    assert!(
        quality["planted_recall"]["recall"].as_f64().unwrap() >= 0.9,
        "{quality}"
    );
    assert!(
        quality["near_duplicate_precision"]["precision"]
            .as_f64()
            .unwrap()
            >= 0.9,
        "{quality}"
    );
}

/// Lower-cased alphanumeric words, the way a reviewer would check for leaks
/// (independent of dapt-dedup's hashing).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn no_test_text_survives_in_training() {
    let sb = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    sb.dapt_expect(&["run"], 0);
    let kept = docs(&sb, "dedup");
    let mut eval_grams: HashSet<Vec<String>> = HashSet::new();
    let mut eval_texts: HashSet<Vec<String>> = HashSet::new();
    let sentiment_test = docs(&sb, "ingest_sentiment")
        .into_iter()
        .filter(|d| d.split.as_deref() == Some("test"));
    for d in kept
        .iter()
        .filter(|d| d.split.as_deref() == Some("test"))
        .cloned()
        .chain(sentiment_test)
    {
        let w = words(&d.text);
        eval_grams.extend(w.windows(13).map(<[String]>::to_vec));
        eval_texts.insert(w);
    }
    assert!(eval_grams.len() > 10_000, "the test splits are not empty");
    let training: Vec<&Document> = kept
        .iter()
        .filter(|d| d.split.as_deref() == Some("train"))
        .collect();
    assert!(training.len() > 1000);
    for d in training {
        let w = words(&d.text);
        assert!(
            !eval_texts.contains(&w),
            "{} is a copy of a test document",
            d.id
        );
        assert!(
            !w.windows(13).any(|g| eval_grams.contains(g)),
            "{} shares a 13-gram with a test document",
            d.id
        );
    }
    let contaminated = rejected(&sb, "dedup")
        .into_iter()
        .filter(|r| r.reason == "contamination")
        .count();
    assert!(
        contaminated > 0,
        "Reuters' train and test splits do share text"
    );
}

#[test]
fn repeated_ids_missing_group_fields_and_split_less_documents_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let line = |id: &str, company: Option<&str>, text: &str| {
        let mut object = serde_json::json!({ "id": id, "text": text });
        if let Some(c) = company {
            object["company"] = c.into();
        }
        object.to_string()
    };
    let filings = [
        line("f1", Some("acme"), "Acme reports revenue up four percent."),
        line("f2", Some("acme"), "Acme opens a plant in Ohio."),
        line("f1", Some("bolt"), "Bolt says its margin narrowed."),
        line("f3", None, "An unsigned note about markets."),
    ];
    std::fs::write(dir.path().join("filings.jsonl"), filings.join("\n") + "\n").unwrap();
    let text = header_with_data("inputs", dir.path())
        + "[corpora.filings]\ndomain = \"financial\"\nreader = \"jsonl\"\npaths = [\"filings.jsonl\"]\nid_field = \"id\"\n\n"
        + "[stages.ingest]\nkind = \"ingest\"\ncorpora = [\"filings\"]\n\n"
        + "[stages.split]\nkind = \"split\"\ninputs = [\"ingest\"]\ngroup_by = { filings = \"company\" }\nratios = { train = 1.0 }\n\n"
        + "[stages.tokenizer]\nkind = \"tokenizer\"\ninputs = [\"split\"]\nvocab_size = 300\n\n"
        + "[stages.tokenize]\nkind = \"tokenize\"\ninputs = [\"ingest\", \"tokenizer\"]\ntokenizer = \"tokenizer\"\n";
    let sb = Sandbox::new(&text);

    // A repeated `id_field` value is quarantined with its reason.
    sb.dapt_expect(&["run", "ingest"], 0);
    let rejects = rejected(&sb, "ingest");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0].reason, "duplicate_id");
    assert_eq!(rejects[0].id, "filings/f1");
    assert!(
        rejects[0].detail.contains("already given to record 1"),
        "{}",
        rejects[0].detail
    );
    assert_eq!(docs(&sb, "ingest").len(), 3);

    // A document without its corpus's `group_by` field stops the split, named.
    let out = sb.dapt_expect(&["run", "split"], 1);
    let (_, reason) = sb.state_of("split");
    assert!(
        reason.contains("corpus `filings`")
            && reason.contains("filings/f3")
            && reason.contains("no `company` field"),
        "{reason}\n{}",
        stderr(&out)
    );

    // Documents without a split reaching tokenize are an error, not "train".
    std::fs::write(
        dir.path().join("filings.jsonl"),
        filings[..3].join("\n") + "\n",
    )
    .unwrap();
    sb.dapt_expect(&["run", "tokenizer"], 0);
    sb.dapt_expect(&["run", "tokenize"], 1);
    let (_, reason) = sb.state_of("tokenize");
    assert!(
        reason.contains("has no split") && reason.contains("filings/f"),
        "{reason}"
    );
}

#[test]
fn a_killed_dedup_resumes_to_byte_identical_outputs() {
    let reference = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    reference.dapt_expect(&["run"], 0);

    let sb = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    sb.dapt_expect(&["run", "split", "ingest_sentiment"], 0);
    // Abort, as a kill would, right after the third signature shard is marked.
    let killed = sb
        .command(&["run"])
        .env("DAPT_FAULT", "shard-done#3=abort")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "the injected kill did not happen");
    // The other worker may have marked one more shard before the abort landed.
    let finished = finished_shards(&sb, "dedup", "signatures").len();
    assert!((3..=4).contains(&finished), "{finished} shards marked");
    assert!(!sb.path(".dapt/stages/dedup/manifest.json").exists());
    sb.dapt_expect(&["run"], 0);
    assert_eq!(
        manifest(&sb, "dedup")["shards_resumed"].as_u64(),
        Some(finished as u64)
    );

    let out = |s: &Sandbox, sub: &str| files_in(&s.path(&format!(".dapt/stages/dedup/out/{sub}")));
    for sub in ["docs", "rejected", "signatures"] {
        assert_eq!(
            out(&sb, sub),
            out(&reference, sub),
            "{sub} differ after resume"
        );
    }
}

#[test]
fn swapping_a_corpus_makes_exactly_its_downstream_stale() {
    let sb = Sandbox::new(&small_pipeline(&dapt_testdata::mirror()));
    sb.dapt_expect(&["run", "split"], 0);
    sb.edit_pipeline("reut2-01[3-5].sgm", "reut2-01[6-7].sgm");
    let status: BTreeMap<String, (String, String)> = sb
        .status()
        .into_iter()
        .map(|(s, st, r)| (s, (st, r)))
        .collect();
    let (state, reason) = &status["ingest_fin"];
    assert_eq!(state, "stale");
    assert!(
        reason.starts_with("corpus reuters: paths changed; input "),
        "{reason}"
    );
    assert!(
        reason.contains("reut2-013.sgm missing") && reason.contains("reut2-016.sgm added"),
        "{reason}"
    );
    assert_eq!(status["ingest_gen"].0, "fresh");
    assert_eq!(status["ingest_sentiment"].0, "never-run");
    assert_eq!(
        status["clean"],
        ("stale".into(), "upstream ingest_fin is stale".into())
    );
    assert_eq!(
        status["split"],
        ("stale".into(), "upstream clean is stale".into())
    );
}

#[test]
fn bad_input_is_quarantined_or_fails_the_stage_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("good.jsonl"),
        "{\"text\": \"fine text\"}\n{\"text\": broken\n{\"text\": \"more\"}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("rows.csv"),
        "text,label\r\n\"a, b\",1\r\nonly-one-field\r\nc,2,extra\r\n",
    )
    .unwrap();
    // A gzip stream cut in half.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, "{\"text\": \"x\"}\n".repeat(5000).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(root.join("cut.jsonl.gz"), &gz[..gz.len() / 2]).unwrap();

    let corpora = "[corpora.json]\ndomain = \"general\"\nreader = \"jsonl\"\npaths = [\"*.jsonl*\"]\non_error = \"fail\"\n\n\
                   [corpora.csv]\ndomain = \"general\"\nreader = \"csv\"\npaths = [\"rows.csv\"]\nlabel_field = \"label\"\n\n\
                   [stages.ingest]\nkind = \"ingest\"\ncorpora = [\"json\", \"csv\"]\n";
    let sb = Sandbox::new(&(header_with_data("bad", root) + corpora));
    let out = sb.dapt_expect(&["run"], 1);
    let (state, reason) = sb.state_of("ingest");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("cut.jsonl.gz"),
        "the error names the file: {reason}"
    );
    assert!(stderr(&out).contains("stage(s) failed: ingest"));

    sb.edit_pipeline("on_error = \"fail\"", "on_error = \"quarantine\"");
    sb.dapt_expect(&["run"], 0);
    let rejected = rejected(&sb, "ingest");
    let find = |needle: &str| {
        rejected
            .iter()
            .find(|r| r.detail.contains(needle))
            .unwrap_or_else(|| panic!("no rejection mentions {needle}: {rejected:?}"))
    };
    assert_eq!(find("good.jsonl:2").reason, "parse_error");
    assert_eq!(find("rows.csv:3").reason, "wrong_arity");
    assert_eq!(find("rows.csv:4").reason, "wrong_arity");
    assert!(find("cut.jsonl.gz").reason.starts_with("file_error"));
    let m = manifest(&sb, "ingest");
    assert_eq!(
        m["conservation"]["rejected"].as_u64().unwrap(),
        rejected.len() as u64
    );
}

#[test]
fn dedup_out_of_core_equals_dedup_in_memory() {
    // The same stage twice over the same inputs: in memory, and with signatures kept on
    // disk and keys sorted in runs of 1 MB (several runs on this slice).
    let text = small_pipeline(&dapt_testdata::mirror())
        + "\n[stages.dedup_bounded]\nkind = \"dedup\"\ninputs = [\"split\", \"ingest_sentiment\"]\n\
           eval_only = [\"ingest_sentiment\"]\nmemory_mb = 1\n";
    let sb = Sandbox::new(&text);
    sb.dapt_expect(&["run"], 0);
    let out =
        |stage: &str, sub: &str| files_in(&sb.path(&format!(".dapt/stages/{stage}/out/{sub}")));
    for sub in ["docs", "rejected", "signatures"] {
        assert_eq!(out("dedup", sub), out("dedup_bounded", sub), "{sub} differ");
    }
    let removed = rejected(&sb, "dedup_bounded");
    assert!(
        removed.iter().filter(|r| r.reason == "duplicate").count() > 50,
        "the slice should have duplicates"
    );
    let (a, b) = (manifest(&sb, "dedup"), manifest(&sb, "dedup_bounded"));
    for key in [
        "cluster_sizes",
        "eval_duplicates",
        "quality",
        "kept",
        "removed",
    ] {
        assert_eq!(a["counts"][key], b["counts"][key], "{key}");
    }
    assert!(
        !sb.path(".dapt/stages/dedup_bounded/partial").exists(),
        "the sort runs go with the attempt's partial folder"
    );
}
