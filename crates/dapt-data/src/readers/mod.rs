//! Readers turn source files into [`Record`]s, one module per format.
//!
//! Every reader streams: it gets one file at a time and hands each record to
//! a sink as soon as it is parsed. Per-file readers hold one file in memory
//! (bounded by `max_record_bytes`); line readers hold one line.

mod csv;
mod edgar_json;
mod folder_labels;
mod jsonl;
mod parquet;
mod phrasebank;
mod reuters_sgml;
mod txt;
mod wikiextractor;
mod wikitext;

use std::cell::Cell;
use std::path::{Path, PathBuf};

use crate::config::{CorpusConfig, OnError, ReaderKind, SplitFrom};
use crate::document::{Document, Record, Rejected, meta_json};
use crate::error::{DataError, FileError};
use crate::input::{self, Bounded, Decoded};

/// A source format. Implementations are stateless; per-file state lives in
/// the `read` call and per-corpus settings in [`ReadCtx::config`].
pub trait Reader {
    /// Parses `file`, sending every record it contains to `sink`. Returns an
    /// error only when the file cannot be read as a whole (I/O, truncated
    /// archive, binary, broken container); per-record problems go to `sink`
    /// as [`Rejected`].
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError>;
}

/// The reader implementing a [`ReaderKind`].
pub fn reader_for(kind: ReaderKind) -> &'static dyn Reader {
    match kind {
        ReaderKind::ReutersSgml => &reuters_sgml::ReutersSgml,
        ReaderKind::EdgarJson => &edgar_json::EdgarJson,
        ReaderKind::Txt => &txt::Txt,
        ReaderKind::Phrasebank => &phrasebank::Phrasebank,
        ReaderKind::Csv => &csv::Csv,
        ReaderKind::Wikitext => &wikitext::Wikitext,
        ReaderKind::Wikiextractor => &wikiextractor::Wikiextractor,
        ReaderKind::FolderLabels => &folder_labels::FolderLabels,
        ReaderKind::Jsonl => &jsonl::Jsonl,
        ReaderKind::Parquet => &parquet::Parquet,
    }
}

/// What a reader knows about the file it is reading.
pub struct ReadCtx<'a> {
    pub corpus: &'a str,
    pub config: &'a CorpusConfig,
    /// The file's path relative to the data root, `/`-separated: part of ids
    /// and of every `file:line` in rejection details.
    pub relative: String,
    next_ordinal: Cell<u64>,
}

impl<'a> ReadCtx<'a> {
    pub fn new(corpus: &'a str, config: &'a CorpusConfig, relative: String) -> Self {
        ReadCtx {
            corpus,
            config,
            relative,
            next_ordinal: Cell::new(0),
        }
    }

    /// The next stable id `corpus/relative-file/ordinal`; ordinals count every
    /// record (document or rejected) of the file from 0.
    fn next_id(&self) -> String {
        let ordinal = self.next_ordinal.get();
        self.next_ordinal.set(ordinal + 1);
        format!("{}/{}/{}", self.corpus, self.relative, ordinal)
    }

    /// A document with the next id, the corpus's domain and fixed split, and
    /// `meta` (plus `"decoded_as": "latin-1"` when the fallback decoded it).
    pub fn doc(
        &self,
        text: String,
        decoded_as_latin1: bool,
        mut meta: serde_json::Map<String, serde_json::Value>,
    ) -> Document {
        let mut doc = Document::new(self.next_id(), &self.config.domain, self.corpus, text);
        doc.split = self.config.split.clone();
        if decoded_as_latin1 {
            meta.insert("decoded_as".into(), "latin-1".into());
        }
        doc.meta = meta_json(meta);
        doc
    }

    /// A rejected record with the next id.
    pub fn reject(&self, reason: &str, detail: String, text: Option<String>) -> Record {
        Record::Rejected(Rejected {
            id: self.next_id(),
            source: self.corpus.to_owned(),
            reason: reason.to_owned(),
            detail,
            text,
        })
    }

    /// `relative-file:line`, the prefix of every per-record detail.
    pub fn at(&self, line: u64) -> String {
        format!("{}:{line}", self.relative)
    }

    /// Decodes a unit that starts at `first_line`; an undecodable one is
    /// sent to `sink` as rejected and `None` returned.
    fn decode(
        &self,
        bytes: Vec<u8>,
        first_line: u64,
        sink: &mut dyn FnMut(Record),
    ) -> Option<Decoded> {
        match input::decode(bytes, self.config.encoding()) {
            Ok(decoded) => Some(decoded),
            Err(e) => {
                sink(self.reject(e.reason(), e.detail(&self.relative, first_line), None));
                None
            }
        }
    }

    fn too_large(&self, line: u64, size: usize) -> Record {
        self.reject(
            "record_too_large",
            format!(
                "{}: record of {size} bytes exceeds max_record_bytes = {}; raise it if this is genuine",
                self.at(line),
                self.config.max_record_bytes
            ),
            None,
        )
    }
}

/// Reads and decodes a whole file as one record (per-file readers).
/// Per-record problems go to `sink`, and `None` is returned.
pub(crate) fn whole_file_text(
    file: &Path,
    ctx: &ReadCtx,
    sink: &mut dyn FnMut(Record),
) -> Result<Option<Decoded>, FileError> {
    let mut reader = input::open_text(file)?;
    match input::read_all_bounded(&mut reader, ctx.config.max_record_bytes)? {
        Bounded::Complete(bytes) => Ok(ctx.decode(bytes, 1, sink)),
        Bounded::TooLarge(size) => {
            sink(ctx.too_large(1, size));
            Ok(None)
        }
    }
}

/// Streams the decoded lines of `file` to `on_line(line_no, text, fell_back, sink)`;
/// oversized and undecodable lines are rejected on the way.
pub(crate) fn for_each_line(
    file: &Path,
    ctx: &ReadCtx,
    sink: &mut dyn FnMut(Record),
    mut on_line: impl FnMut(u64, String, bool, &mut dyn FnMut(Record)),
) -> Result<(), FileError> {
    let mut reader = input::open_text(file)?;
    let mut lines = input::Lines::new(&mut reader, ctx.config.max_record_bytes);
    while let Some((line_no, line)) = lines.next_line()? {
        match line {
            Bounded::TooLarge(size) => sink(ctx.too_large(line_no, size)),
            Bounded::Complete(bytes) => {
                if let Some(decoded) = ctx.decode(bytes, line_no, sink) {
                    on_line(line_no, decoded.text, decoded.fell_back_to_latin1, sink);
                }
            }
        }
    }
    Ok(())
}

/// The value of `name="value"` inside an SGML/XML-ish start tag.
pub(crate) fn tag_attr<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Counts of what [`read_corpus`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadStats {
    pub files: u64,
    /// Size on disk of the input files.
    pub bytes: u64,
    pub documents: u64,
    pub rejected: u64,
}

/// Reads every file of a corpus in sorted order, sending each record to
/// `sink`. Assigns hash splits, and turns a file that cannot be read as a
/// whole into one rejected record (`on_error = "quarantine"`) or an error
/// naming it (`"fail"`). An empty file is always a `empty_file` rejection.
pub fn read_corpus(
    corpus: &str,
    config: &CorpusConfig,
    data_root: &Path,
    sink: &mut dyn FnMut(Record),
) -> Result<ReadStats, DataError> {
    config.validate(corpus)?;
    read_files(corpus, config, data_root, config.files(data_root)?, sink)
}

/// [`read_corpus`] for some of the corpus's files (a shard of an ingest stage);
/// ids and splits are the same as when the whole corpus is read.
pub fn read_files(
    corpus: &str,
    config: &CorpusConfig,
    data_root: &Path,
    files: Vec<PathBuf>,
    sink: &mut dyn FnMut(Record),
) -> Result<ReadStats, DataError> {
    let reader = reader_for(config.reader);
    let hash_split = config.split_from() == Some(SplitFrom::Hash);
    let mut stats = ReadStats::default();
    for path in files {
        let relative = crate::config::relative_name(&path, data_root);
        let ctx = ReadCtx::new(corpus, config, relative);
        stats.files += 1;
        stats.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut count = |record: Record| match record {
            Record::Doc(mut doc) => {
                if hash_split {
                    doc.split = Some(hash_split_of(&doc.text).to_owned());
                }
                stats.documents += 1;
                sink(Record::Doc(doc));
            }
            Record::Rejected(rejected) => {
                stats.rejected += 1;
                sink(Record::Rejected(rejected));
            }
        };
        let result = if is_empty_file(&path) {
            Err(None)
        } else {
            reader.read(&path, &ctx, &mut count).map_err(Some)
        };
        match result {
            Ok(()) => {}
            Err(None) => count(ctx.reject(
                "empty_file",
                format!("{}: file is empty", ctx.relative),
                None,
            )),
            Err(Some(error)) if config.on_error == OnError::Quarantine => {
                count(Record::Rejected(Rejected {
                    id: format!("{corpus}/{}", ctx.relative),
                    source: corpus.to_owned(),
                    reason: error.reason().to_owned(),
                    detail: format!("{}: {error}", ctx.relative),
                    text: None,
                }))
            }
            Err(Some(error)) => {
                return Err(DataError::File {
                    path,
                    source: error,
                });
            }
        }
    }
    Ok(stats)
}

fn is_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// 80/10/10 train/validation/test from the first 8 bytes of blake3(text):
/// stable across runs, machines and Rust versions (unlike std's hasher).
pub fn hash_split_of(text: &str) -> &'static str {
    let digest = blake3::hash(text.as_bytes());
    let bucket = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes")) % 10;
    match bucket {
        0..=7 => "train",
        8 => "validation",
        _ => "test",
    }
}
