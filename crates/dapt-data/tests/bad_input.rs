//! Broken inputs, generated in a temp dir: every problem becomes a Rejected
//! record with file:line and a reason, or a file-level error naming the file
//! (`on_error = "fail"`) / one quarantine record; never a panic.

mod common;

use std::io::Write;
use std::path::Path;

use dapt_data::{CorpusConfig, DataError, Document, Record, Rejected, read_corpus};

fn config(toml_table: &str) -> CorpusConfig {
    toml::from_str(toml_table).unwrap_or_else(|e| panic!("{e}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn read(dir: &Path, cfg: &CorpusConfig) -> Result<(Vec<Document>, Vec<Rejected>), DataError> {
    let (mut docs, mut rejected) = (Vec::new(), Vec::new());
    read_corpus("t", cfg, dir, &mut |r| match r {
        Record::Doc(d) => docs.push(d),
        Record::Rejected(r) => rejected.push(r),
    })?;
    Ok((docs, rejected))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn invalid_utf8_line_is_rejected_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.jsonl",
        b"{\"text\": \"fine\"}\n{\"text\": \"bad \xff\"}\n{\"text\": \"also fine\"}\n",
    );
    let (docs, rejected) = read(
        dir.path(),
        &config("domain='d'\nreader='jsonl'\npaths=['*.jsonl']"),
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, "invalid_utf8");
    assert!(
        rejected[0].detail.starts_with("a.jsonl:2: invalid UTF-8"),
        "{}",
        rejected[0].detail
    );
}

#[test]
fn invalid_utf8_in_a_whole_file_reader_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "doc.txt", b"line one\nline two \xa3 5\n");
    let (docs, rejected) = read(
        dir.path(),
        &config("domain='d'\nreader='txt'\npaths=['*.txt']"),
    )
    .unwrap();
    assert!(docs.is_empty());
    assert!(
        rejected[0].detail.starts_with("doc.txt:2:"),
        "{}",
        rejected[0].detail
    );
    let latin1 = config("domain='d'\nreader='txt'\nencoding='latin-1'\npaths=['*.txt']");
    let (docs, _) = read(dir.path(), &latin1).unwrap();
    assert_eq!(docs[0].text, "line one\nline two £ 5\n");
}

#[test]
fn gzip_and_zstd_inputs_are_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.txt.gz", &gzip(b"one\ntwo\n"));
    write(
        dir.path(),
        "b.txt.zst",
        &zstd::encode_all(&b"three\n"[..], 3).unwrap(),
    );
    let cfg = config("domain='d'\nreader='txt'\nunit='line'\npaths=['*.txt.*']");
    let (docs, rejected) = read(dir.path(), &cfg).unwrap();
    assert!(rejected.is_empty());
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!(docs[1].id, "t/a.txt.gz/1");
}

#[test]
fn truncated_gzip_fails_naming_the_file_or_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let gz = gzip(body.as_bytes());
    write(dir.path(), "cut.txt.gz", &gz[..gz.len() / 2]);
    let fail = config("domain='d'\nreader='txt'\nunit='line'\non_error='fail'\npaths=['*.gz']");
    let message = read(dir.path(), &fail).unwrap_err().to_string();
    assert!(
        message.contains("cut.txt.gz") && message.contains("I/O error"),
        "{message}"
    );

    let quarantine = config("domain='d'\nreader='txt'\nunit='line'\npaths=['*.gz']");
    let (docs, rejected) = read(dir.path(), &quarantine).unwrap();
    assert!(!docs.is_empty(), "lines before the cut are kept");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason, "file_error:io");
    assert_eq!(rejected[0].id, "t/cut.txt.gz");
    assert!(rejected[0].detail.starts_with("cut.txt.gz: "));
}

#[test]
fn malformed_json_line_is_rejected_with_position() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.jsonl",
        b"{\"text\": \"ok\"}\n\n{\"text\": \"unterminated}\n{\"body\": \"x\"}\n[1]\n",
    );
    let (docs, rejected) = read(
        dir.path(),
        &config("domain='d'\nreader='jsonl'\npaths=['a.jsonl']"),
    )
    .unwrap();
    assert_eq!(docs.len(), 1);
    let reasons: Vec<(&str, &str)> = rejected
        .iter()
        .map(|r| (r.reason.as_str(), r.detail.split(' ').next().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("parse_error", "a.jsonl:3:23:"),
            ("missing_field", "a.jsonl:4:"),
            ("parse_error", "a.jsonl:5:")
        ]
    );
    assert!(rejected[1].detail.contains("set text_field"));
}

#[test]
fn csv_row_of_wrong_arity_is_rejected_with_line() {
    let dir = tempfile::tempdir().unwrap();
    // A quoted field spanning two lines shifts every later line number.
    write(dir.path(), "a.csv", b"text,label\r\n\"a, quoted \"\"text\"\"\",1\r\nextra,field,here\r\n\"two\r\nlines\",0\r\nx,y,z\r\nplain,0\r\n");
    let cfg = config("domain='d'\nreader='csv'\nlabel_field='label'\npaths=['a.csv']");
    let (docs, rejected) = read(dir.path(), &cfg).unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0].text, "a, quoted \"text\"");
    assert_eq!(docs[1].text, "two\r\nlines");
    assert_eq!(docs[2].label.as_deref(), Some("0"));
    let details: Vec<&str> = rejected.iter().map(|r| r.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "a.csv:3: row has 3 fields, the header has 2",
            "a.csv:6: row has 3 fields, the header has 2"
        ]
    );
    assert!(rejected.iter().all(|r| r.reason == "wrong_arity"));

    let wrong_column =
        config("domain='d'\nreader='csv'\ntext_field='body'\non_error='fail'\npaths=['a.csv']");
    let message = read(dir.path(), &wrong_column).unwrap_err().to_string();
    assert!(
        message.contains("a.csv") && message.contains("`body`") && message.contains("text_field"),
        "{message}"
    );
}

#[test]
fn empty_file_is_one_rejection() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.txt", b"");
    for on_error in ["quarantine", "fail"] {
        let cfg = config(&format!(
            "domain='d'\nreader='txt'\non_error='{on_error}'\npaths=['*.txt']"
        ));
        let (docs, rejected) = read(dir.path(), &cfg).unwrap();
        assert!(docs.is_empty());
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            (rejected[0].reason.as_str(), rejected[0].id.as_str()),
            ("empty_file", "t/empty.txt/0")
        );
    }
}

#[test]
fn binary_file_is_a_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    write(dir.path(), "blob.txt", &binary);
    let fail = config("domain='d'\nreader='txt'\nunit='line'\non_error='fail'\npaths=['*.txt']");
    let message = read(dir.path(), &fail).unwrap_err().to_string();
    assert!(
        message.contains("blob.txt") && message.contains("binary"),
        "{message}"
    );
    let parquet = config("domain='d'\nreader='parquet'\npaths=['*.txt']");
    let (docs, rejected) = read(dir.path(), &parquet).unwrap();
    assert!(docs.is_empty());
    assert_eq!(rejected[0].reason, "file_error:parquet");
}

#[test]
fn a_50_mb_line_is_handled_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("big.jsonl")).unwrap();
    file.write_all(b"{\"text\": \"before\"}\n{\"text\": \"")
        .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..50 {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(b"\"}\n{\"text\": \"after\"}\n").unwrap();
    drop(file);
    // Below the bound the line is skipped without being held in memory…
    let bounded =
        config("domain='d'\nreader='jsonl'\nmax_record_bytes=1048576\npaths=['big.jsonl']");
    let (docs, rejected) = read(dir.path(), &bounded).unwrap();
    assert_eq!(
        docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(),
        ["before", "after"]
    );
    assert_eq!(rejected[0].reason, "record_too_large");
    assert!(
        rejected[0]
            .detail
            .starts_with("big.jsonl:2: record of 52428812 bytes"),
        "{}",
        rejected[0].detail
    );
    // …and with the default 64 MiB bound it is an ordinary document.
    let default = config("domain='d'\nreader='jsonl'\npaths=['big.jsonl']");
    let (docs, rejected) = read(dir.path(), &default).unwrap();
    assert!(rejected.is_empty());
    assert_eq!(docs[1].text.len(), 50 << 20);
}

#[test]
fn glob_matching_nothing_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("domain='d'\nreader='txt'\npaths=['nothing/*.txt']");
    let message = read(dir.path(), &cfg).unwrap_err().to_string();
    assert!(
        message.contains("`nothing/*.txt`") && message.contains("matched no file"),
        "{message}"
    );
}

#[test]
fn config_rejects_unknown_keys_and_bad_combinations() {
    let unknown =
        toml::from_str::<CorpusConfig>("domain='d'\nreader='txt'\npaths=['x']\ntext_feild='t'");
    assert!(unknown.unwrap_err().to_string().contains("text_feild"));
    let bad_reader = toml::from_str::<CorpusConfig>("domain='d'\nreader='xml'\npaths=['x']");
    assert!(bad_reader.unwrap_err().to_string().contains("reuters-sgml"));
    let lewis = config("domain='d'\nreader='txt'\nsplit_from='lewissplit'\npaths=['x']");
    assert!(
        lewis
            .validate("c")
            .unwrap_err()
            .to_string()
            .contains("reuters-sgml")
    );
    let split = config("domain='d'\nreader='txt'\nsplit='dev'\npaths=['x']");
    assert!(
        split
            .validate("c")
            .unwrap_err()
            .to_string()
            .contains("\"validation\"")
    );
}

#[test]
fn sgml_and_wikiextractor_structure_errors_are_rejected_with_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r.sgm",
        b"<!DOCTYPE lewis>\n<REUTERS NEWID=\"1\">\n<TEXT><BODY>no close\n<REUTERS LEWISSPLIT=\"TRAIN\" NEWID=\"2\">\n<TEXT><TITLE>T</TITLE><BODY>Body &amp; more&#3;</BODY></TEXT>\n</REUTERS>\n",
    );
    let (docs, rejected) = read(
        dir.path(),
        &config("domain='d'\nreader='reuters-sgml'\npaths=['r.sgm']"),
    )
    .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].text, "T\n\nBody & more");
    assert_eq!(docs[0].split.as_deref(), Some("train"));
    assert!(
        rejected[0]
            .detail
            .starts_with("r.sgm:2: <REUTERS> not closed"),
        "{}",
        rejected[0].detail
    );

    write(dir.path(), "wiki", b"<doc id=\"1\" url=\"u\" title=\"A\">\nA\n\nText.\n<doc id=\"2\" url=\"u\" title=\"B\">\nB\n</doc>\n");
    let (docs, rejected) = read(
        dir.path(),
        &config("domain='d'\nreader='wikiextractor'\npaths=['wiki']"),
    )
    .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].title.as_deref(), Some("B"));
    assert!(
        rejected[0]
            .detail
            .starts_with("wiki:1: <doc> not closed by </doc> before line 5"),
        "{}",
        rejected[0].detail
    );
}

#[test]
fn phrasebank_line_without_label_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.txt",
        b"Sales rose .@positive\nno label here\nA@b@neutral",
    );
    let (docs, rejected) = read(
        dir.path(),
        &config("domain='d'\nreader='phrasebank'\npaths=['p.txt']"),
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        (docs[1].text.as_str(), docs[1].label.as_deref()),
        ("A@b", Some("neutral"))
    );
    assert!(
        rejected[0]
            .detail
            .starts_with("p.txt:2: expected `sentence@label`")
    );
}
