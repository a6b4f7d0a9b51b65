//! Property tests ("fuzz") of every reader: arbitrary bytes, soups of the format's
//! own delimiters, and mutated slices of the real corpora (byte flips, truncation,
//! inserted quotes/tags/delimiters, invalid UTF-8, NUL, duplicated and dropped
//! lines), plain and gzip/zstd-compressed. Per case:
//!
//! - no panic (proptest catches it and shrinks the input);
//! - a file-level failure is an `Err` whose message names the file, and only
//!   where one is legitimate (a NUL in the sniffed head, a missing column, a
//!   broken container);
//! - every record is accounted for: documents + rejections equal a count of
//!   the input made independently of the reader (lines, rows, `<REUTERS`
//!   openings, blocks of a generated file), ordinals run 0..n with no gap,
//!   every rejection has a reason and a `file:line` detail naming a line the
//!   file has. Exceptions: a CSV with quotes is only bounded by its lines (a
//!   quoted field may span several), and a corrupted parquet file has no count
//!   apart from its reader (generated parquet files are counted exactly);
//! - reading the same file twice gives the same records.
//!
//! `DAPT_FUZZ_CASES` is the number of cases per reader (default 400, split
//! between its properties); `just fuzz` runs tens of thousands.
//! `DAPT_FUZZ_SEED` changes the (otherwise fixed) seed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use dapt_data::{CorpusConfig, Encoding, Record, read_files};
use dapt_testdata::fuzz;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{TestCaseError, TestRunner};

// ---------------------------------------------------------------------------
// Runner

/// Runs `cases` cases of `test` on `strategy`; a failure panics with the shrunk input.
fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = fuzz::config(cases);
    TALLY.with(|t| t.borrow_mut().clear());
    let start = Instant::now();
    let result = TestRunner::new(config).run(&strategy, test);
    let tally = TALLY.with(|t| std::mem::take(&mut *t.borrow_mut()));
    let tally: Vec<String> = tally.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "fuzz {name}: {cases} cases in {:.2}s (seed {}): {}",
        start.elapsed().as_secs_f64(),
        fuzz::seed(),
        tally.join(", ")
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

thread_local! {
    /// What the cases of the running property produced (files read, file
    /// errors, documents, rejections by reason): shows the inputs reach deep.
    static TALLY: std::cell::RefCell<std::collections::BTreeMap<String, u64>> =
        Default::default();
}

fn tally(key: &str, n: u64) {
    TALLY.with(|t| *t.borrow_mut().entry(key.to_owned()).or_default() += n);
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

// ---------------------------------------------------------------------------
// Real-file seeds

/// `data/raw` once `just data` filled it, else the read-only mirror.
fn data_root() -> PathBuf {
    let local = dapt_testdata::workspace_root().join("data/raw");
    if local.join("MANIFEST.sha256").is_file() {
        local
    } else {
        dapt_testdata::mirror()
    }
}

fn head(relative: &str, bytes: usize) -> Vec<u8> {
    let path = data_root().join(relative);
    let mut out = Vec::new();
    std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .take(bytes as u64)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The first `n` lines (with their terminators) of a file, at most `bytes` read.
fn first_lines(relative: &str, n: usize, bytes: usize) -> Vec<u8> {
    let text = head(relative, bytes);
    let mut end = 0;
    for (i, at) in memchr::memchr_iter(b'\n', &text).enumerate() {
        end = at + 1;
        if i + 1 == n {
            break;
        }
    }
    text[..end].to_vec()
}

/// The first file (sorted) matching `pattern` under the data root, relative.
fn first_match(pattern: &str) -> String {
    let root = data_root();
    let mut files: Vec<PathBuf> = glob::glob(&root.join(pattern).to_string_lossy())
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    files.sort();
    let file = files.first().unwrap_or_else(|| panic!("no {pattern}"));
    file.strip_prefix(&root)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn reuters_seeds() -> Vec<Vec<u8>> {
    let text = head("financial/reuters21578/reut2-000.sgm", 64 << 10);
    let closes: Vec<usize> = memchr::memmem::find_iter(&text, b"</REUTERS>\n")
        .map(|at| at + "</REUTERS>\n".len())
        .collect();
    let last = head("financial/reuters21578/reut2-021.sgm", 16 << 10);
    let last_close = memchr::memmem::find(&last, b"</REUTERS>\n").unwrap() + 11;
    vec![
        text[..closes[2]].to_vec(),
        text[closes[0]..closes[1]].to_vec(),
        last[..last_close].to_vec(),
    ]
}

fn edgar_seeds() -> Vec<Vec<u8>> {
    let mut files: Vec<_> = glob::glob(
        &data_root()
            .join("financial/edgar_crawler_10k_sample/10-K/*.json")
            .to_string_lossy(),
    )
    .unwrap()
    .filter_map(Result::ok)
    .collect();
    files.sort();
    files
        .iter()
        .take(2)
        .map(|path| {
            let mut filing: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            for value in filing.values_mut() {
                if let serde_json::Value::String(s) = value {
                    *s = truncate_chars(s, 160);
                }
            }
            serde_json::to_vec_pretty(&filing).unwrap()
        })
        .collect()
}

fn ectsum_and_gutenberg_seeds() -> Vec<Vec<u8>> {
    let ects = first_match("financial/ectsum/val/ects/*.txt");
    let gutenberg = data_root().join("general/gutenberg/2701-0.txt");
    let book = std::fs::read(&gutenberg).unwrap();
    let start = memchr::memmem::find(&book, b"*** START OF").unwrap();
    let end = memchr::memmem::find(&book, b"*** END OF").unwrap();
    let mut framed = book[start.saturating_sub(300)..start + 900].to_vec();
    framed.extend_from_slice(&book[end - 200..(end + 600).min(book.len())]);
    vec![first_lines(&ects, 20, 3000), framed]
}

fn bbc_seeds() -> Vec<Vec<u8>> {
    vec![
        std::fs::read(data_root().join("general/bbc_news/business/001.txt")).unwrap(),
        // Holds one Latin-1 byte.
        std::fs::read(data_root().join("general/bbc_news/sport/199.txt")).unwrap(),
    ]
}

fn csv_seeds() -> Vec<Vec<u8>> {
    let dir = "financial/twitter_financial_news_sentiment";
    vec![
        first_lines(&format!("{dir}/sent_train.csv"), 30, 8 << 10),
        first_lines(&format!("{dir}/sent_valid.csv"), 30, 8 << 10),
    ]
}

fn jsonl_seeds() -> Vec<Vec<u8>> {
    let lines = first_lines(
        "general/20newsgroups_bydate/20news-bydate-test.jsonl",
        4,
        64 << 10,
    );
    let mut out = Vec::new();
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).unwrap();
        if let Some(serde_json::Value::String(s)) = object.get_mut("text") {
            *s = truncate_chars(s, 400);
        }
        out.extend(serde_json::to_vec(&object).unwrap());
        out.push(b'\n');
    }
    vec![out]
}

fn phrasebank_seeds() -> Vec<Vec<u8>> {
    let file = "financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt";
    vec![first_lines(file, 40, 16 << 10)]
}

fn wikiextractor_seeds() -> Vec<Vec<u8>> {
    let text = head(
        &first_match("general/enwiki_2015_wikiextractor/*/wiki_*"),
        256 << 10,
    );
    let mut out = Vec::new();
    let (mut docs, mut body) = (0, 0);
    for line in text.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"<doc ") {
            docs += 1;
            body = 0;
            out.extend_from_slice(line);
        } else if line.starts_with(b"</doc>") {
            out.extend_from_slice(line);
            if docs == 3 {
                break;
            }
        } else if body < 6 {
            body += 1;
            out.extend_from_slice(&line[..line.len().min(300)]);
            if line.len() > 300 {
                out.push(b'\n');
            }
        }
    }
    vec![out]
}

fn wikitext_seeds() -> Vec<Vec<u8>> {
    let cut = |relative: &str| {
        first_lines(relative, 40, 256 << 10)
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|line| {
                let mut line = line[..line.len().min(200)].to_vec();
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                line
            })
            .collect()
    };
    vec![
        cut("general/wikitext-2/valid.txt"),
        cut("general/wikitext-2/test.txt"),
    ]
}

// ---------------------------------------------------------------------------
// Byte-level mutations

const COMMON_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xa3",
    b"\xef\xbb\xbf",
    b"\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b"\"",
    b"'",
    b"\\",
    b",",
    b";",
    b"&",
    b"<",
    b">",
    b"=",
    b"@",
    b"{",
    b"}",
    b"[",
    b"]",
];

fn dictionary(specific: &[&[u8]]) -> Vec<Vec<u8>> {
    COMMON_TOKENS
        .iter()
        .chain(specific)
        .map(|t| t.to_vec())
        .collect()
}

/// Mutated seeds (most cases), soups of dictionary tokens, and arbitrary bytes.
fn input(seeds: Vec<Vec<u8>>, dict: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let token = prop_oneof![
        4 => select(dict.clone()),
        2 => "[ -~]{0,12}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..6),
    ];
    prop_oneof![
        6 => (select(seeds), vec(fuzz::mutation(dict), 0..8))
            .prop_map(|(seed, ms)| fuzz::apply(seed, &ms)),
        3 => vec(token, 0..64).prop_map(|tokens| tokens.concat()),
        1 => vec(any::<u8>(), 0..768),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// One case: write the file, read it twice, check what came out

#[derive(Debug, Clone, Copy, PartialEq)]
enum Packing {
    Plain,
    Gzip,
    GzipTruncated,
    Zstd,
}

fn packing() -> impl Strategy<Value = Packing> {
    prop_oneof![
        16 => Just(Packing::Plain),
        2 => Just(Packing::Gzip),
        1 => Just(Packing::GzipTruncated),
        1 => Just(Packing::Zstd),
    ]
}

fn pack(bytes: &[u8], packing: Packing) -> Vec<u8> {
    match packing {
        Packing::Plain => bytes.to_vec(),
        Packing::Gzip | Packing::GzipTruncated => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(bytes).unwrap();
            let mut out = gz.finish().unwrap();
            if packing == Packing::GzipTruncated {
                out.truncate(out.len() / 2);
            }
            out
        }
        Packing::Zstd => zstd::encode_all(bytes, 1).unwrap(),
    }
}

fn suffix(packing: Packing) -> &'static str {
    match packing {
        Packing::Plain => "",
        Packing::Gzip | Packing::GzipTruncated => ".gz",
        Packing::Zstd => ".zst",
    }
}

/// The per-corpus settings a case varies: encoding and record-size bound.
#[derive(Debug, Clone)]
struct Settings {
    encoding: Option<&'static str>,
    max_record_bytes: Option<usize>,
}

fn settings() -> impl Strategy<Value = Settings> {
    let encoding = prop_oneof![
        3 => Just(None),
        1 => Just(Some("utf-8")),
        1 => Just(Some("latin-1")),
        1 => Just(Some("utf-8-or-latin-1")),
    ];
    let max = prop_oneof![
        8 => Just(None),
        1 => (0usize..48).prop_map(Some),
        1 => (48usize..2048).prop_map(Some),
    ];
    (encoding, max).prop_map(|(encoding, max_record_bytes)| Settings {
        encoding,
        max_record_bytes,
    })
}

fn config(reader: &str, extra: &str, settings: &Settings) -> CorpusConfig {
    let mut text = format!("domain = 'd'\nreader = '{reader}'\npaths = ['*']\non_error = 'fail'\n");
    text.push_str(extra);
    if let Some(encoding) = settings.encoding {
        text.push_str(&format!("encoding = '{encoding}'\n"));
    }
    if let Some(max) = settings.max_record_bytes {
        text.push_str(&format!("max_record_bytes = {max}\n"));
    }
    let config: CorpusConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    config.validate("t").unwrap();
    config
}

struct Outcome {
    /// `Err` holds the error's message.
    result: Result<dapt_data::ReadStats, String>,
    records: Vec<Record>,
}

impl Outcome {
    fn docs(&self) -> impl Iterator<Item = &dapt_data::Document> {
        self.records.iter().filter_map(|r| match r {
            Record::Doc(d) => Some(d),
            Record::Rejected(_) => None,
        })
    }

    fn rejected(&self) -> impl Iterator<Item = &dapt_data::Rejected> {
        self.records.iter().filter_map(|r| match r {
            Record::Rejected(r) => Some(r),
            Record::Doc(_) => None,
        })
    }
}

fn read_once(root: &Path, file: &Path, config: &CorpusConfig) -> Outcome {
    let mut records = Vec::new();
    let result = read_files("t", config, root, vec![file.to_owned()], &mut |r| {
        records.push(r)
    })
    .map_err(|e| e.to_string());
    Outcome { result, records }
}

/// Writes `bytes` at `root/relative`, reads it twice and checks the invariants
/// every reader keeps whatever the input; returns the first outcome.
fn read_checked(
    root: &Path,
    relative: &str,
    bytes: &[u8],
    config: &CorpusConfig,
) -> Result<Outcome, TestCaseError> {
    let file = root.join(relative);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    let outcome = read_once(root, &file, config);
    let again = read_once(root, &file, config);
    check!(
        outcome.records == again.records && outcome.result == again.result,
        "two reads of the same file differ"
    );
    let id_field = config.id_field.is_some();
    for (ordinal, record) in outcome.records.iter().enumerate() {
        let ordinal_id = format!("t/{relative}/{ordinal}");
        match record {
            Record::Doc(doc) => {
                check!(
                    doc.id == ordinal_id || id_field,
                    "record {ordinal} has id {}, expected {ordinal_id}",
                    doc.id
                );
                check!(doc.source == "t" && doc.domain == "d", "{doc:?}");
            }
            Record::Rejected(r) => {
                check!(
                    r.id == ordinal_id,
                    "rejection {ordinal} has id {}, expected {ordinal_id}",
                    r.id
                );
                check!(!r.reason.is_empty(), "rejection without a reason: {r:?}");
                check!(
                    r.detail.starts_with(&format!("{relative}:")),
                    "rejection detail does not start with `{relative}:`: {r:?}"
                );
            }
        }
    }
    tally(
        if outcome.result.is_ok() {
            "read"
        } else {
            "file-error"
        },
        1,
    );
    if let Err(message) = &outcome.result
        && message.contains("decoder panicked")
    {
        tally("of which caught decoder panics", 1);
    }
    tally("docs", outcome.docs().count() as u64);
    for r in outcome.rejected() {
        tally(&format!("rejected:{}", r.reason), 1);
    }
    match &outcome.result {
        Ok(stats) => {
            let docs = outcome.docs().count() as u64;
            check!(
                stats.files == 1
                    && stats.documents == docs
                    && stats.rejected == outcome.records.len() as u64 - docs,
                "stats {stats:?} disagree with {} records ({docs} docs)",
                outcome.records.len()
            );
        }
        Err(message) => {
            let name = file.file_name().unwrap().to_string_lossy();
            check!(
                message.contains(name.as_ref()) && message.len() > name.len() + 2,
                "error does not name the file {name}: {message}"
            );
        }
    }
    Ok(outcome)
}

// ---------------------------------------------------------------------------
// Independent counts

/// One line as the readers' line splitter should see it.
enum Line {
    TooLarge,
    Undecodable,
    Text(String),
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// Decodes one unit per the declared encoding; `None` when it must be rejected.
fn decode(bytes: &[u8], encoding: Encoding) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    match (std::str::from_utf8(bytes), encoding) {
        (_, Encoding::Latin1) => Some(latin1(bytes)),
        (Ok(s), _) => Some(s.to_owned()),
        (Err(_), Encoding::Utf8OrLatin1) => Some(latin1(bytes)),
        (Err(_), Encoding::Utf8) => None,
    }
}

/// Lines split on `\n` (no empty line after a final terminator), one trailing
/// `\r` dropped, longer than `max` (before dropping it) too large.
fn lines(bytes: &[u8], encoding: Encoding, max: usize) -> Vec<Line> {
    fuzz::line_spans(bytes)
        .into_iter()
        .map(|(s, e)| {
            let mut line = &bytes[s..e];
            line = line.strip_suffix(b"\n").unwrap_or(line);
            if line.len() > max {
                return Line::TooLarge;
            }
            line = line.strip_suffix(b"\r").unwrap_or(line);
            decode(line, encoding).map_or(Line::Undecodable, Line::Text)
        })
        .collect()
}

/// Records a line format holds: each line too large or undecodable is one
/// rejection; a decoded line counts when `counts` says so.
fn count_lines(bytes: &[u8], config: &CorpusConfig, counts: impl Fn(&str) -> bool) -> usize {
    lines(bytes, config.encoding(), config.max_record_bytes)
        .iter()
        .filter(|line| match line {
            Line::Text(text) => counts(text),
            _ => true,
        })
        .count()
}

fn non_blank(text: &str) -> bool {
    !text.trim().is_empty()
}

/// What the reader must produce when it succeeds.
#[derive(Debug)]
enum Expect {
    Exact(usize),
    AtMost(usize),
    Any,
}

/// Independent expectations for a reader on an input.
struct Oracle {
    /// Count on success, from the decompressed bytes.
    expect: fn(&[u8], &CorpusConfig) -> Expect,
    /// Whether an `Err` with this message is legitimate for this input
    /// (beyond a NUL in the sniffed head and a broken compressed stream).
    may_fail: fn(&[u8], &str) -> bool,
}

fn nul_in_head(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8 << 10)].contains(&0)
}

fn one(_: &[u8], _: &CorpusConfig) -> Expect {
    Expect::Exact(1)
}

fn never(_: &[u8], _: &str) -> bool {
    false
}

/// Runs one case of a reader and compares it with the oracle.
fn check_case(
    root: &Path,
    name: &str,
    bytes: &[u8],
    packing: Packing,
    config: &CorpusConfig,
    oracle: &Oracle,
) -> Result<Outcome, TestCaseError> {
    let relative = format!("{name}{}", suffix(packing));
    let packed = pack(bytes, packing);
    let outcome = read_checked(root, &relative, &packed, config)?;
    // `file:LINE` in a rejection names a line the file has.
    let last_line = memchr::memchr_iter(b'\n', bytes).count() + 1;
    for r in outcome.rejected() {
        let at = r.detail[relative.len() + 1..]
            .split(':')
            .next()
            .unwrap_or("");
        if let Ok(line) = at.parse::<usize>() {
            check!(
                (1..=last_line).contains(&line),
                "line {line} of a file of {last_line} lines: {r:?}"
            );
        }
    }
    match &outcome.result {
        Err(message) => {
            let legit = match packing {
                Packing::Plain => nul_in_head(bytes),
                Packing::Gzip | Packing::Zstd => bytes.contains(&0),
                Packing::GzipTruncated => true,
            };
            check!(
                legit || (oracle.may_fail)(bytes, message),
                "unexpected file error: {message}"
            );
        }
        Ok(_) if packing == Packing::GzipTruncated => {}
        Ok(_) => {
            let n = outcome.records.len();
            let expect = if packed.is_empty() {
                Expect::Exact(1) // the `empty_file` rejection
            } else {
                (oracle.expect)(bytes, config)
            };
            let ok = match expect {
                Expect::Exact(e) => n == e,
                Expect::AtMost(e) => n <= e,
                Expect::Any => true,
            };
            check!(
                ok,
                "{n} records ({} docs), expected {expect:?}",
                outcome.docs().count()
            );
        }
    }
    Ok(outcome)
}

/// The byte-level property of one reader: mutated seeds, token soups and
/// arbitrary bytes, under varied settings (`extras` are TOML lines, one picked
/// per case).
struct BytesFuzz {
    label: &'static str,
    reader: &'static str,
    /// The file's name relative to the data root.
    name: &'static str,
    extras: Vec<&'static str>,
    seeds: Vec<Vec<u8>>,
    tokens: &'static [&'static [u8]],
    oracle: Oracle,
    /// Replaces the default input strategy (mutated seeds, soups, arbitrary bytes).
    input: Option<BoxedStrategy<Vec<u8>>>,
}

impl BytesFuzz {
    fn run(self, cases: u32) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let BytesFuzz {
            label,
            reader,
            name,
            extras,
            seeds,
            tokens,
            oracle,
            input: custom,
        } = self;
        let strategy = (
            custom.unwrap_or_else(|| input(seeds, dictionary(tokens))),
            packing(),
            settings(),
            select(extras),
        );
        run(
            label,
            cases,
            strategy,
            move |(bytes, packing, settings, extra)| {
                let config = config(reader, extra, &settings);
                check_case(&root, name, &bytes, packing, &config, &oracle).map(drop)
            },
        );
    }
}

fn half() -> u32 {
    fuzz::cases().div_ceil(2)
}

// ---------------------------------------------------------------------------
// Whole-file readers: exactly one record per non-empty file.

#[test]
fn fuzz_edgar_json() {
    BytesFuzz {
        label: "edgar-json",
        reader: "edgar-json",
        name: "filing.json",
        extras: vec![""],
        seeds: edgar_seeds(),
        tokens: &[
            b"\"item_1\": ",
            b"\"item_7A\": null,",
            b"\"item_2\": 5,",
            b"\"item_99999999999\": \"x\",",
            b"\"filing_date\": \"\xc3\xa9\",",
            b"\\u0000",
            b"\\ud800",
            b"[",
            b"null",
        ],
        oracle: Oracle {
            expect: one,
            may_fail: never,
        },
        input: None,
    }
    .run(fuzz::cases());
}

#[test]
fn fuzz_folder_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let strategy = (
        input(bbc_seeds(), dictionary(&[b"\n\n", b"Headline\n\n"])),
        packing(),
        settings(),
    );
    run(
        "folder-labels",
        fuzz::cases(),
        strategy,
        move |(bytes, packing, settings)| {
            let config = config("folder-labels", "", &settings);
            let oracle = Oracle {
                expect: one,
                may_fail: never,
            };
            let outcome = check_case(&root, "business/001.txt", &bytes, packing, &config, &oracle)?;
            for doc in outcome.docs() {
                check!(doc.label.as_deref() == Some("business"), "{doc:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_txt_file() {
    BytesFuzz {
        label: "txt (unit = file)",
        reader: "txt",
        name: "doc.txt",
        extras: vec!["", "unit = 'file'\n"],
        seeds: ectsum_and_gutenberg_seeds(),
        tokens: &[
            b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\n",
            b"*** END OF THE PROJECT GUTENBERG EBOOK X ***\n",
            b"***\n",
        ],
        oracle: Oracle {
            expect: one,
            may_fail: never,
        },
        input: None,
    }
    .run(fuzz::cases());
}

// ---------------------------------------------------------------------------
// Line readers: one record per non-blank line (or per rejected line).

#[test]
fn fuzz_txt_line() {
    BytesFuzz {
        label: "txt (unit = line)",
        reader: "txt",
        name: "lines.txt",
        extras: vec!["unit = 'line'\n"],
        seeds: ectsum_and_gutenberg_seeds(),
        tokens: &[b"\n \n", b"\x85\n", b"\xa0\n"],
        oracle: Oracle {
            expect: |bytes, config| Expect::Exact(count_lines(bytes, config, non_blank)),
            may_fail: never,
        },
        input: None,
    }
    .run(fuzz::cases());
}

#[test]
fn fuzz_phrasebank() {
    BytesFuzz {
        label: "phrasebank",
        reader: "phrasebank",
        name: "Sentences.txt",
        extras: vec![""],
        seeds: phrasebank_seeds(),
        tokens: &[b"@", b"@positive\n", b"@ \n", b"@@neutral", b"\xe4\xf6"],
        oracle: Oracle {
            expect: |bytes, config| Expect::Exact(count_lines(bytes, config, non_blank)),
            may_fail: never,
        },
        input: None,
    }
    .run(fuzz::cases());
}

const JSONL_TOKENS: &[&[u8]] = &[
    b"{\"text\": \"x\"}\n",
    b"{\"text\": 5}\n",
    b"{\"label\": \"a\", \"id\": 7, \"text\": \"t\"}\n",
    b"\"text\":",
    b"\"id\": null,",
    b"\"label\": [1],",
    b"\\u",
    b"\\ud83d",
    b"\\\"",
    b"[]\n",
    b"null\n",
    b"1e999",
];

#[test]
fn fuzz_jsonl() {
    BytesFuzz {
        label: "jsonl (bytes)",
        reader: "jsonl",
        name: "docs.jsonl",
        extras: vec![
            "",
            "text_field = 'text'\nlabel_field = 'label'\nid_field = 'id'\n",
            "text_field = 'label'\n",
        ],
        seeds: jsonl_seeds(),
        tokens: JSONL_TOKENS,
        oracle: Oracle {
            expect: |bytes, config| Expect::Exact(count_lines(bytes, config, non_blank)),
            may_fail: never,
        },
        input: None,
    }
    .run(half());
    jsonl_structured(half());
}

/// One generated JSON Lines line and what it must become.
#[derive(Debug, Clone)]
enum JsonLine {
    Doc {
        text: String,
        label: Option<serde_json::Value>,
        id: Option<serde_json::Value>,
    },
    /// An object whose `text` is missing or not a string: `missing_field`.
    NoText(serde_json::Value),
    /// Valid JSON, not an object: `parse_error`.
    NotObject(serde_json::Value),
    /// An object cut short: `parse_error`.
    Cut(String),
    /// Raw invalid UTF-8 inside the text: `invalid_utf8` (strict UTF-8).
    BadUtf8(String),
    Blank(String),
}

fn json_scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<String>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn json_line() -> impl Strategy<Value = JsonLine> {
    prop_oneof![
        6 => (any::<String>(), proptest::option::of(json_scalar()), proptest::option::of(json_scalar()))
            .prop_map(|(text, label, id)| JsonLine::Doc { text, label, id }),
        1 => proptest::option::of(json_scalar().prop_filter("not a string", |v| !v.is_string()))
            .prop_map(|text| JsonLine::NoText(match text {
                Some(v) => serde_json::json!({ "text": v, "other": 1 }),
                None => serde_json::json!({ "body": "x" }),
            })),
        1 => prop_oneof![
            json_scalar(),
            vec(json_scalar(), 0..3).prop_map(serde_json::Value::from),
        ].prop_map(JsonLine::NotObject),
        1 => any::<String>().prop_map(JsonLine::Cut),
        1 => "[a-z ]{0,10}".prop_map(JsonLine::BadUtf8),
        1 => "[ \t\r]{0,3}".prop_map(JsonLine::Blank),
    ]
}

fn jsonl_structured(cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let strategy = (vec(json_line(), 0..24), any::<bool>(), any::<bool>());
    run(
        "jsonl (generated lines)",
        cases,
        strategy,
        move |(lines, crlf, with_fields)| {
            let mut bytes = Vec::new();
            let (mut docs, mut rejected) = (Vec::new(), 0);
            for line in &lines {
                match line {
                    JsonLine::Doc { text, label, id } => {
                        let mut object = serde_json::Map::new();
                        object.insert("text".into(), text.clone().into());
                        if let Some(label) = label {
                            object.insert("label".into(), label.clone());
                        }
                        if let Some(id) = id {
                            object.insert("id".into(), id.clone());
                        }
                        bytes.extend(serde_json::to_vec(&object).unwrap());
                        docs.push(text.clone());
                    }
                    JsonLine::NoText(v) | JsonLine::NotObject(v) => {
                        bytes.extend(serde_json::to_vec(v).unwrap());
                        rejected += 1;
                    }
                    JsonLine::Cut(text) => {
                        let full =
                            serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap();
                        bytes.extend_from_slice(&full[..full.len() - 1]);
                        rejected += 1;
                    }
                    JsonLine::BadUtf8(text) => {
                        bytes.extend_from_slice(b"{\"text\": \"");
                        bytes.extend_from_slice(text.as_bytes());
                        bytes.extend_from_slice(b"\xff\"}");
                        rejected += 1;
                    }
                    JsonLine::Blank(space) => bytes.extend_from_slice(space.as_bytes()),
                }
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            let extra = if with_fields {
                "label_field = 'label'\nid_field = 'id'\n"
            } else {
                ""
            };
            let config = config(
                "jsonl",
                extra,
                &Settings {
                    encoding: None,
                    max_record_bytes: None,
                },
            );
            let outcome = read_checked(&root, "g.jsonl", &bytes, &config)?;
            check!(outcome.result.is_ok(), "{:?}", outcome.result);
            if bytes.is_empty() {
                return Ok(());
            }
            let texts: Vec<&str> = outcome.docs().map(|d| d.text.as_str()).collect();
            check!(texts == docs, "documents {texts:?}, expected {docs:?}");
            check!(
                outcome.rejected().count() == rejected,
                "{} rejected, expected {rejected}",
                outcome.rejected().count()
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// CSV

fn csv_segments(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|s| !s.is_empty())
        .count()
}

#[test]
fn fuzz_csv() {
    BytesFuzz {
        label: "csv (bytes)",
        reader: "csv",
        name: "rows.csv",
        extras: vec!["", "label_field = 'label'\n", "text_field = 'label'\n"],
        seeds: csv_seeds(),
        tokens: &[
            b"\"",
            b"\"\"",
            b",",
            b",,",
            b"\",\"",
            b"\"\n\"",
            b"text,label\n",
            b"\xef\xbb\xbftext",
        ],
        oracle: Oracle {
            // Without quotes every non-empty line is one row (the first is the
            // header); quoted fields may span lines, so only a bound then.
            expect: |bytes, _| {
                let rows = csv_segments(bytes).saturating_sub(1);
                if bytes.contains(&b'"') {
                    Expect::AtMost(rows)
                } else {
                    Expect::Exact(rows)
                }
            },
            may_fail: |_, message| message.contains("not in the header"),
        },
        input: None,
    }
    .run(half());
    csv_structured(half());
}

/// A generated CSV file: header, then rows of fields as raw bytes.
#[derive(Debug, Clone)]
struct CsvFile {
    header: Vec<String>,
    /// Column of the text; a label column follows it when `with_label`.
    text_col: usize,
    with_label: bool,
    rows: Vec<Vec<Vec<u8>>>,
    quote_all: bool,
    crlf: bool,
    final_newline: bool,
}

fn csv_field() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-zA-Z0-9 $.:/-]{0,16}".prop_map(String::into_bytes),
        2 => "[a-z,\"\r\n ]{0,10}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..8).prop_map(|mut b| {
            b.retain(|&c| c != 0);
            b
        }),
    ]
}

fn csv_file() -> impl Strategy<Value = CsvFile> {
    (1usize..5, any::<Index>(), any::<bool>())
        .prop_flat_map(|(columns, text_at, with_label)| {
            let columns = columns + usize::from(with_label);
            let text_col = text_at.index(columns - usize::from(with_label));
            let row = prop_oneof![
                8 => vec(csv_field(), columns..=columns),
                1 => vec(csv_field(), 1..columns + 3),
            ];
            (
                Just(columns),
                Just(text_col),
                Just(with_label),
                vec(row, 0..20),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(
            |(columns, text_col, with_label, rows, quote_all, crlf, final_newline)| {
                let mut header: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
                header[text_col] = "text".into();
                if with_label {
                    header[text_col + 1] = "label".into();
                }
                CsvFile {
                    header,
                    text_col,
                    with_label,
                    rows,
                    quote_all,
                    crlf,
                    final_newline,
                }
            },
        )
}

fn csv_bytes(file: &CsvFile) -> Vec<u8> {
    let quote = |field: &[u8]| {
        let needs = file.quote_all
            || field.is_empty()
            || field
                .iter()
                .any(|b| matches!(b, b'"' | b',' | b'\r' | b'\n'))
            || field.first().is_some_and(|&b| b == b' ');
        if !needs {
            return field.to_vec();
        }
        let mut out = vec![b'"'];
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    };
    let terminator: &[u8] = if file.crlf { b"\r\n" } else { b"\n" };
    let header: Vec<Vec<u8>> = file.header.iter().map(|h| h.as_bytes().to_vec()).collect();
    let mut out = Vec::new();
    let all = std::iter::once(&header).chain(&file.rows);
    let count = file.rows.len() + 1;
    for (i, row) in all.enumerate() {
        let fields: Vec<Vec<u8>> = row.iter().map(|f| quote(f)).collect();
        out.extend(fields.join(&b","[..]));
        if i + 1 < count || file.final_newline {
            out.extend_from_slice(terminator);
        }
    }
    out
}

fn csv_structured(cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let encodings = prop_oneof![
        Just(None),
        Just(Some("latin-1")),
        Just(Some("utf-8-or-latin-1"))
    ];
    run(
        "csv (generated rows)",
        cases,
        (csv_file(), encodings),
        move |(file, encoding)| {
            let extra = if file.with_label {
                "label_field = 'label'\n"
            } else {
                ""
            };
            let config = config(
                "csv",
                extra,
                &Settings {
                    encoding,
                    max_record_bytes: None,
                },
            );
            let bytes = csv_bytes(&file);
            let outcome = read_checked(&root, "g.csv", &bytes, &config)?;
            check!(outcome.result.is_ok(), "{:?}", outcome.result);
            let mut expected = Vec::new();
            for row in &file.rows {
                if row.len() != file.header.len() {
                    continue;
                }
                let text = decode(&row[file.text_col], config.encoding());
                let label = file
                    .with_label
                    .then(|| decode(&row[file.text_col + 1], config.encoding()));
                if let (Some(text), None | Some(Some(_))) = (text, &label) {
                    expected.push((text, label.flatten()));
                }
            }
            let got: Vec<(String, Option<String>)> = outcome
                .docs()
                .map(|d| (d.text.clone(), d.label.clone()))
                .collect();
            check!(got == expected, "documents {got:?}, expected {expected:?}");
            check!(
                outcome.records.len() == file.rows.len(),
                "{} records for {} rows",
                outcome.records.len(),
                file.rows.len()
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Reuters SGML: one record per `<REUTERS` opening.

#[test]
fn fuzz_reuters_sgml() {
    BytesFuzz {
        label: "reuters-sgml",
        reader: "reuters-sgml",
        name: "reut2-000.sgm",
        extras: vec!["", "split = 'train'\n", "split_from = 'hash'\n"],
        seeds: reuters_seeds(),
        tokens: &[
            b"<REUTERS",
            b"<REUTERS>",
            b"</REUTERS>",
            b"<REUTERS TOPICS=\"YES\" LEWISSPLIT=\"TRAIN\" NEWID=\"1\">",
            b"<TEXT>",
            b"</TEXT>",
            b"<TEXT TYPE=\"",
            b"<TITLE>",
            b"</TITLE>",
            b"<BODY>",
            b"</BODY>",
            b"<DATELINE>",
            b"<TOPICS><D>",
            b"</D>",
            b"<D>",
            b"</TOPICS>",
            b"<DATE>",
            b"&#3;",
            b"&#2;",
            b"&#1114112;",
            b"&#99999999;",
            b"&lt;",
            b"&amp",
            b"=\"",
        ],
        oracle: Oracle {
            expect: |bytes, config| {
                let whole_file_ok = bytes.len() <= config.max_record_bytes
                    && decode(bytes, config.encoding()).is_some();
                if whole_file_ok {
                    Expect::Exact(memchr::memmem::find_iter(bytes, b"<REUTERS").count())
                } else {
                    Expect::Exact(1)
                }
            },
            may_fail: never,
        },
        input: None,
    }
    .run(fuzz::cases());
}

// ---------------------------------------------------------------------------
// WikiExtractor: one record per `<doc` opening, stray `</doc>` or stray text line.

fn wikiextractor_count(bytes: &[u8], config: &CorpusConfig) -> usize {
    let mut open = false;
    let mut n = 0;
    for line in lines(bytes, config.encoding(), config.max_record_bytes) {
        match line {
            Line::TooLarge | Line::Undecodable => n += 1,
            Line::Text(text) if text.starts_with("<doc ") => {
                n += 1; // the document, or its `not closed` rejection
                open = true;
            }
            Line::Text(text) if text.trim_end() == "</doc>" => {
                if !std::mem::replace(&mut open, false) {
                    n += 1;
                }
            }
            Line::Text(text) => n += usize::from(!open && non_blank(&text)),
        }
    }
    n
}

#[test]
fn fuzz_wikiextractor() {
    BytesFuzz {
        label: "wikiextractor (bytes)",
        reader: "wikiextractor",
        name: "AA/wiki_00",
        extras: vec![""],
        seeds: wikiextractor_seeds(),
        tokens: &[
            b"<doc id=\"1\" url=\"u\" title=\"T\">\n",
            b"<doc \n",
            b"</doc>\n",
            b"</doc> \n",
            b" title=\"",
            b"\n</doc>",
        ],
        oracle: Oracle {
            expect: |bytes, config| Expect::Exact(wikiextractor_count(bytes, config)),
            may_fail: never,
        },
        input: None,
    }
    .run(half());
    wikiextractor_structured(half());
}

#[derive(Debug, Clone)]
enum WikiBlock {
    Doc {
        title: String,
        body: Vec<String>,
        closed: bool,
    },
    StrayText(String),
    StrayClose,
    Blank,
}

fn wiki_body_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ,.()é–-]{0,40}",
        1 => "[<>/a-z \"=]{0,12}",
    ]
    .prop_filter("not a block delimiter", |l| {
        !l.starts_with("<doc ") && l.trim_end() != "</doc>"
    })
}

fn wiki_block() -> impl Strategy<Value = WikiBlock> {
    prop_oneof![
        6 => ("[a-zA-Z ()]{0,20}", vec(wiki_body_line(), 0..6), prop::bool::weighted(0.85))
            .prop_map(|(title, body, closed)| WikiBlock::Doc { title, body, closed }),
        1 => wiki_body_line().prop_filter("non-blank", |l| non_blank(l)).prop_map(WikiBlock::StrayText),
        1 => Just(WikiBlock::StrayClose),
        1 => Just(WikiBlock::Blank),
    ]
}

fn wikiextractor_structured(cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    run(
        "wikiextractor (generated blocks)",
        cases,
        vec(wiki_block(), 0..12),
        move |blocks| {
            let mut text = String::new();
            // What the blocks hold, by their structure: a closed document is a
            // document; an unclosed one is rejected at the next `<doc` or at the
            // end, unless a stray `</doc>` closes it (then stray text before it
            // belongs to it); stray text or `</doc>` outside a document is rejected.
            let (mut titles, mut rejected) = (Vec::new(), 0);
            let mut open: Option<&str> = None;
            for block in &blocks {
                match block {
                    WikiBlock::Doc {
                        title,
                        body,
                        closed,
                    } => {
                        text.push_str(&format!(
                            "<doc id=\"{}\" url=\"u\" title=\"{title}\">\n",
                            titles.len()
                        ));
                        for line in body {
                            text.push_str(line);
                            text.push('\n');
                        }
                        if open.take().is_some() {
                            rejected += 1;
                        }
                        if *closed {
                            text.push_str("</doc>\n");
                            titles.push(title.clone());
                        } else {
                            open = Some(title);
                        }
                    }
                    WikiBlock::StrayText(line) => {
                        text.push_str(line);
                        text.push('\n');
                        rejected += usize::from(open.is_none());
                    }
                    WikiBlock::StrayClose => {
                        text.push_str("</doc>\n");
                        match open.take() {
                            Some(title) => titles.push(title.to_owned()),
                            None => rejected += 1,
                        }
                    }
                    WikiBlock::Blank => text.push('\n'),
                }
            }
            rejected += usize::from(open.is_some());
            let config = config(
                "wikiextractor",
                "",
                &Settings {
                    encoding: None,
                    max_record_bytes: None,
                },
            );
            let outcome = read_checked(&root, "AA/wiki_01", text.as_bytes(), &config)?;
            check!(outcome.result.is_ok(), "{:?}", outcome.result);
            if text.is_empty() {
                return Ok(());
            }
            let got: Vec<&str> = outcome
                .docs()
                .map(|d| d.title.as_deref().unwrap_or(""))
                .collect();
            check!(got == titles, "titles {got:?}, expected {titles:?}");
            check!(
                outcome.rejected().count() == rejected,
                "{} rejected, expected {rejected}",
                outcome.rejected().count()
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// WikiText: one document per top-level heading, plus a non-blank preamble.

/// ` = Title = ` (and not ` = = Section = = `), by the format's definition.
fn is_top_heading(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 4 && t.starts_with("= ") && t.ends_with(" =") && !t[2..].starts_with('=')
}

fn wikitext_count(bytes: &[u8], config: &CorpusConfig) -> usize {
    let (mut n, mut in_preamble, mut preamble_text) = (0, true, false);
    for line in lines(bytes, config.encoding(), config.max_record_bytes) {
        match line {
            Line::TooLarge | Line::Undecodable => n += 1,
            Line::Text(text) if is_top_heading(&text) => {
                n += 1;
                in_preamble = false;
            }
            Line::Text(text) => preamble_text |= in_preamble && non_blank(&text),
        }
    }
    n + usize::from(preamble_text)
}

#[test]
fn fuzz_wikitext() {
    BytesFuzz {
        label: "wikitext (bytes)",
        reader: "wikitext",
        name: "valid.txt",
        extras: vec![""],
        seeds: wikitext_seeds(),
        tokens: &[
            b" = T = \n",
            b" = = S = = \n",
            b"= =",
            b" =  = \n",
            b" = = \n",
            b" \n \n",
            b"@,@",
            b"<unk>",
        ],
        oracle: Oracle {
            expect: |bytes, config| Expect::Exact(wikitext_count(bytes, config)),
            may_fail: never,
        },
        input: None,
    }
    .run(half());
    wikitext_structured(half());
}

fn wikitext_structured(cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let body_line = prop_oneof![
        5 => "[a-zA-Z0-9 ,.@<>()–-]{0,40}".prop_map(|l| format!(" {l} ")),
        1 => "[a-zA-Z ]{1,12}".prop_map(|s| format!(" = = {s} = = ")),
        1 => "[a-zA-Z ]{1,12}".prop_map(|s| format!(" = = = {s} = = = ")),
        2 => Just(" ".to_owned()),
    ];
    let article = ("[a-zA-Z][a-zA-Z0-9 ()]{0,20}", vec(body_line.clone(), 0..8));
    run(
        "wikitext (generated articles)",
        cases,
        (vec(body_line, 0..4), vec(article, 0..8)),
        move |(preamble, articles)| {
            let mut text = String::new();
            for line in &preamble {
                text.push_str(line);
                text.push('\n');
            }
            let mut titles = Vec::new();
            if preamble.iter().any(|l| non_blank(l)) {
                titles.push(String::new());
            }
            for (title, body) in &articles {
                text.push_str(&format!(" = {title} = \n"));
                for line in body {
                    text.push_str(line);
                    text.push('\n');
                }
                titles.push(title.trim().to_owned());
            }
            let config = config(
                "wikitext",
                "",
                &Settings {
                    encoding: None,
                    max_record_bytes: None,
                },
            );
            let outcome = read_checked(&root, "test.txt", text.as_bytes(), &config)?;
            check!(outcome.result.is_ok(), "{:?}", outcome.result);
            if text.is_empty() {
                return Ok(());
            }
            let got: Vec<String> = outcome
                .docs()
                .map(|d| d.title.clone().unwrap_or_default())
                .collect();
            check!(got == titles, "titles {got:?}, expected {titles:?}");
            check!(outcome.rejected().count() == 0, "rejections on valid input");
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Parquet: generated files (every row accounted for) and corrupted ones.

fn parquet_bytes(
    texts: &[Option<String>],
    labels: Option<&[Option<i64>]>,
    large: bool,
    row_group: usize,
    compression: u8,
) -> Vec<u8> {
    use arrow_array::{ArrayRef, Int64Array, LargeStringArray, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    let text: ArrayRef = if large {
        Arc::new(LargeStringArray::from(texts.to_vec()))
    } else {
        Arc::new(StringArray::from(texts.to_vec()))
    };
    let mut columns = vec![("text", text)];
    if let Some(labels) = labels {
        columns.push((
            "label",
            Arc::new(Int64Array::from(labels.to_vec())) as ArrayRef,
        ));
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group.max(1)))
        .set_compression(match compression % 3 {
            0 => Compression::UNCOMPRESSED,
            1 => Compression::SNAPPY,
            _ => Compression::ZSTD(ZstdLevel::default()),
        })
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn parquet_seeds() -> Vec<Vec<u8>> {
    let csv = csv_seeds().remove(0);
    let mut reader = csv::Reader::from_reader(&csv[..]);
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        texts.push(Some(row[0].to_owned()));
        labels.push(row[1].parse().ok());
    }
    texts[3] = None;
    vec![
        parquet_bytes(&texts[..12], Some(&labels[..12]), false, 5, 0),
        parquet_bytes(&texts[..8], None, true, 1024, 1),
        parquet_bytes(&texts[..6], Some(&labels[..6]), false, 4, 2),
    ]
}

/// The parquet reader catches the panics of the parquet crate on corrupt files (see
/// readers/parquet.rs); keep their thousands of messages out of `just fuzz`'s output.
fn quiet_parquet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file()).unwrap_or("");
            if !(file.contains("/parquet-") || file.contains("/arrow-")) {
                previous(info);
            }
        }));
    });
}

#[test]
fn fuzz_parquet() {
    quiet_parquet_panics();
    const TOKENS: &[&[u8]] = &[
        b"PAR1",
        b"\x00\x00\x00\x00",
        b"\xff\xff\xff\x7f",
        b"\x15\x04",
    ];
    let seeds = parquet_seeds();
    // Mostly few flips, so that many files still open and their pages get decoded;
    // overwritten bytes in the footer (the thrift metadata) too.
    let flips = (
        select(seeds.clone()),
        vec((any::<Index>(), 1u8..=255), 1..3),
    )
        .prop_map(|(mut bytes, flips)| {
            for (i, x) in flips {
                let at = i.index(bytes.len());
                bytes[at] ^= x;
            }
            bytes
        });
    let footer = (
        select(seeds.clone()),
        vec((any::<Index>(), any::<u8>()), 1..3),
    )
        .prop_map(|(mut bytes, sets)| {
            let start = bytes.len().saturating_sub(256);
            for (i, v) in sets {
                let at = start + i.index(bytes.len() - start);
                bytes[at] = v;
            }
            bytes
        });
    BytesFuzz {
        label: "parquet (corrupted bytes)",
        reader: "parquet",
        name: "rows.parquet",
        extras: vec!["", "label_field = 'label'\n", "id_field = 'label'\n"],
        seeds: Vec::new(),
        tokens: TOKENS,
        oracle: Oracle {
            expect: |_, _| Expect::Any,
            may_fail: |_, _| true,
        },
        input: Some(
            prop_oneof![
                2 => input(seeds, dictionary(TOKENS)),
                3 => flips,
                2 => footer,
            ]
            .boxed(),
        ),
    }
    .run(half());
    parquet_structured(half());
}

fn parquet_structured(cases: u32) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let rows = vec(
        (
            proptest::option::weighted(0.9, any::<String>()),
            proptest::option::of(any::<i64>()),
        ),
        0..40,
    );
    run(
        "parquet (generated rows)",
        cases,
        (rows, any::<bool>(), any::<bool>(), 1usize..16, any::<u8>()),
        move |(rows, with_label, large, row_group, compression)| {
            let texts: Vec<Option<String>> = rows.iter().map(|r| r.0.clone()).collect();
            let labels: Vec<Option<i64>> = rows.iter().map(|r| r.1).collect();
            let bytes = parquet_bytes(
                &texts,
                with_label.then_some(&labels[..]),
                large,
                row_group,
                compression,
            );
            let extra = if with_label {
                "label_field = 'label'\n"
            } else {
                ""
            };
            let config = config(
                "parquet",
                extra,
                &Settings {
                    encoding: None,
                    max_record_bytes: None,
                },
            );
            let outcome = read_checked(&root, "g.parquet", &bytes, &config)?;
            check!(outcome.result.is_ok(), "{:?}", outcome.result);
            check!(
                outcome.records.len() == rows.len(),
                "{} records for {} rows",
                outcome.records.len(),
                rows.len()
            );
            let got: Vec<(String, Option<String>)> = outcome
                .docs()
                .map(|d| (d.text.clone(), d.label.clone()))
                .collect();
            let expected: Vec<(String, Option<String>)> = rows
                .iter()
                .filter_map(|(text, label)| {
                    let label = label.filter(|_| with_label).map(|l| l.to_string());
                    text.clone().map(|t| (t, label))
                })
                .collect();
            check!(got == expected, "documents {got:?}, expected {expected:?}");
            Ok(())
        },
    );
}
