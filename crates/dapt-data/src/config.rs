//! `[corpora.NAME]` tables: which files, which reader, how to decode them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{DataError, FileError};

/// One corpus: a set of source files, the reader that parses them and the
/// domain they belong to. Deserialised from a TOML table; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// Domain label written on every document (e.g. `financial`, `general`).
    pub domain: String,
    pub reader: ReaderKind,
    /// Globs relative to the data root (`../` and absolute paths reach outside it);
    /// the union is read in sorted order.
    pub paths: Vec<String>,
    /// Globs (relative to the data root) of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Text encoding of the files; each reader has a stated default
    /// ([`ReaderKind::default_encoding`]).
    pub encoding: Option<Encoding>,
    /// A fixed split for every document of this corpus (`train`, `validation`, `test`).
    pub split: Option<String>,
    /// Derive the split per document instead (see [`SplitFrom`]).
    pub split_from: Option<SplitFrom>,
    /// csv / jsonl / parquet: the text column (default `text`).
    pub text_field: Option<String>,
    /// csv / jsonl / parquet: an optional label column.
    pub label_field: Option<String>,
    /// jsonl / parquet: a column whose value becomes the id (`corpus/<value>`).
    pub id_field: Option<String>,
    /// txt: one document per file (default) or per non-blank line.
    pub unit: Option<Unit>,
    #[serde(default)]
    pub on_error: OnError,
    /// Largest record (a line, or a whole file for per-file readers) read into
    /// memory; larger ones become `record_too_large` rejections.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

fn default_max_record_bytes() -> usize {
    64 << 20
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReaderKind {
    ReutersSgml,
    EdgarJson,
    Txt,
    Phrasebank,
    Csv,
    Wikitext,
    Wikiextractor,
    FolderLabels,
    Jsonl,
    Parquet,
}

impl ReaderKind {
    /// The encoding a reader assumes when the config names none. Only the two
    /// sources documented as Latin-1 default to it; everything else is UTF-8.
    pub fn default_encoding(self) -> Encoding {
        match self {
            ReaderKind::ReutersSgml | ReaderKind::Phrasebank => Encoding::Latin1,
            _ => Encoding::Utf8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    /// Strict UTF-8: an invalid unit is rejected with `invalid_utf8` and its position.
    #[serde(rename = "utf-8")]
    Utf8,
    /// ISO-8859-1: byte 0xNN is code point U+00NN; never fails.
    #[serde(rename = "latin-1")]
    Latin1,
    /// UTF-8, but a unit (file or line) that is not valid UTF-8 is decoded as
    /// Latin-1 instead and marked `"decoded_as": "latin-1"` in its meta. For
    /// sources like BBC News where one file in 2,225 is Latin-1.
    #[serde(rename = "utf-8-or-latin-1")]
    Utf8OrLatin1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    File,
    Line,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// A file unreadable as a whole becomes one `Rejected` record; the run goes on.
    #[default]
    Quarantine,
    /// A file unreadable as a whole stops the run with an error naming it.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitFrom {
    /// Reuters only: LEWISSPLIT TRAIN→train, TEST→test, NOT-USED→validation.
    /// The default for `reuters-sgml`.
    Lewissplit,
    /// Any reader: 80/10/10 train/validation/test by a blake3 hash of the text,
    /// so the split is stable across runs and machines. The default for `phrasebank`.
    Hash,
}

const SPLITS: [&str; 3] = ["train", "validation", "test"];

impl CorpusConfig {
    /// Checks combinations serde cannot express; call before reading.
    pub fn validate(&self, corpus: &str) -> Result<(), DataError> {
        let fail = |message: String| {
            Err(DataError::Config {
                corpus: corpus.to_owned(),
                message,
            })
        };
        if self.paths.is_empty() {
            return fail("`paths` is empty; list at least one glob".into());
        }
        if let Some(split) = &self.split {
            if !SPLITS.contains(&split.as_str()) {
                return fail(format!("split = {split:?}; use one of {SPLITS:?}"));
            }
            if self.split_from.is_some() {
                return fail("set either `split` or `split_from`, not both".into());
            }
        }
        if self.split_from == Some(SplitFrom::Lewissplit) && self.reader != ReaderKind::ReutersSgml
        {
            return fail(
                "split_from = \"lewissplit\" only works with reader = \"reuters-sgml\"".into(),
            );
        }
        if self.unit.is_some() && self.reader != ReaderKind::Txt {
            return fail("`unit` only applies to reader = \"txt\"".into());
        }
        let field_readers = [ReaderKind::Csv, ReaderKind::Jsonl, ReaderKind::Parquet];
        let uses_fields = self.text_field.is_some() || self.label_field.is_some();
        if uses_fields && !field_readers.contains(&self.reader) {
            return fail("`text_field`/`label_field` only apply to csv, jsonl and parquet".into());
        }
        if self.id_field.is_some()
            && !matches!(self.reader, ReaderKind::Jsonl | ReaderKind::Parquet)
        {
            return fail("`id_field` only applies to jsonl and parquet".into());
        }
        for pattern in self.paths.iter().chain(&self.exclude) {
            if let Err(e) = glob::Pattern::new(pattern) {
                return fail(format!("invalid glob `{pattern}`: {e}"));
            }
        }
        Ok(())
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
            .unwrap_or_else(|| self.reader.default_encoding())
    }

    /// How per-document splits are assigned, after defaults.
    pub fn split_from(&self) -> Option<SplitFrom> {
        match (self.split_from, &self.split, self.reader) {
            (Some(from), _, _) => Some(from),
            (None, Some(_), _) => None,
            (None, None, ReaderKind::ReutersSgml) => Some(SplitFrom::Lewissplit),
            (None, None, ReaderKind::Phrasebank) => Some(SplitFrom::Hash),
            (None, None, _) => None,
        }
    }

    pub fn text_field(&self) -> &str {
        self.text_field.as_deref().unwrap_or("text")
    }

    /// The input files: every glob in `paths` (relative to `data_root`) must
    /// match at least one file; `exclude` globs remove files; the result is
    /// sorted and deduplicated so runs are deterministic.
    pub fn files(&self, data_root: &Path) -> Result<Vec<PathBuf>, DataError> {
        let excludes = self
            .exclude
            .iter()
            .map(|p| glob::Pattern::new(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DataError::Config {
                corpus: String::new(),
                message: format!("invalid exclude glob: {e}"),
            })?;
        let mut files = Vec::new();
        for pattern in &self.paths {
            // Lexically, so that `../x/*.txt` reaches outside data_root: the glob crate
            // matches `..` against directory entries, where it never appears.
            let full = lexical(&data_root.join(pattern));
            let matches = glob::glob(&full.to_string_lossy()).map_err(|e| DataError::Config {
                corpus: String::new(),
                message: format!("invalid glob `{pattern}`: {e}"),
            })?;
            let before = files.len();
            for entry in matches {
                let path = entry.map_err(|e| DataError::File {
                    path: e.path().to_owned(),
                    source: FileError::Io(e.into()),
                })?;
                if !path.is_file() {
                    continue;
                }
                let relative = PathBuf::from(relative_name(&path, data_root));
                if !excludes.iter().any(|x| x.matches_path(&relative)) {
                    files.push(path);
                }
            }
            if files.len() == before {
                return Err(DataError::NoMatch {
                    glob: pattern.clone(),
                    root: data_root.to_owned(),
                });
            }
        }
        files.sort();
        files.dedup();
        Ok(files)
    }
}

/// `path` with `.` and `..` resolved without touching the file system.
pub fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let popped =
                    matches!(out.components().next_back(), Some(Component::Normal(_))) && out.pop();
                if !popped {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` relative to `data_root`, with `/` separators, going up with `..` for a file
/// outside it: the name a document id carries, the same on every machine for files
/// under (or beside) the data root.
pub fn relative_name(path: &Path, data_root: &Path) -> String {
    let (path, root) = (lexical(path), lexical(data_root));
    let common = path
        .components()
        .zip(root.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = root.components().count() - common;
    std::iter::repeat_n("..".to_string(), ups)
        .chain(
            path.components()
                .skip(common)
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_paths_may_lie_beside_or_outside_the_data_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data/raw");
        let beside = dir.path().join("x");
        let elsewhere = tempfile::tempdir().unwrap();
        for d in [&root, &beside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(beside.join("a.txt"), "beside").unwrap();
        std::fs::write(elsewhere.path().join("b.txt"), "elsewhere").unwrap();
        let absolute = format!("{}/*.txt", elsewhere.path().display());
        let config: CorpusConfig = toml::from_str(&format!(
            "domain = \"general\"\nreader = \"txt\"\npaths = [\"../../x/*.txt\", \"{absolute}\"]\n"
        ))
        .unwrap();
        let files = config.files(&root).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files.contains(&beside.join("a.txt")), "{files:?}");
        assert_eq!(relative_name(&beside.join("a.txt"), &root), "../../x/a.txt");
        assert_eq!(relative_name(&root.join("f/g.txt"), &root), "f/g.txt");
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(lexical(Path::new("../a/../../b")), Path::new("../../b"));
    }
}
