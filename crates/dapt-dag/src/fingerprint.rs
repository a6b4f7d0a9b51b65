//! Fingerprints: what makes a stage stale, exactly.
//!
//! A stage's fingerprint is the blake3 hash of its [`Ingredients`]; a stage is
//! *fresh* when its manifest exists, the fingerprint recorded there equals the one
//! computed now, and the outputs it recorded are intact. Each row below is one
//! ingredient and the [`Reason`] `dapt status` prints when it differs:
//!
//! | ingredient                 | what is compared                                    | reason printed                          |
//! |----------------------------|-----------------------------------------------------|-----------------------------------------|
//! | stage kind                 | the `kind` name                                     | `kind command -> ingest`                |
//! | kind version               | [`StageKind::version`], bumped when a kind's output changes for the same input | `kind ingest version 1 -> 2` |
//! | parameters                 | every parameter, canonicalised (key order, TOML formatting and comments do not matter) | `param threshold 0.8 -> 0.7` |
//! | corpora                    | the `[corpora.NAME]` tables the stage names          | `corpus reuters: paths changed`         |
//! | upstream stages            | each input stage must be fresh, and the digest of its outputs must equal the one used last time | `upstream clean is stale`, `upstream clean output changed` |
//! | input files                | content hash of every file the kind reads (`deps`), with a size+mtime fast path: a file whose size and mtime match the manifest keeps its recorded hash, any other is rehashed | `input data/raw/x.sgm changed` |
//! | outputs (not hashed into the fingerprint) | every recorded output exists with its size and hash (same fast path) | `output out/a.txt missing` |
//!
//! Not in the fingerprint: the `seed`/`jobs` of `[pipeline]` unless a kind reads them
//! as parameters, timestamps, the dapt version. Because upstream *outputs* rather than
//! upstream fingerprints are hashed in, a rerun stage that reproduces its outputs
//! byte for byte does not make its dependents stale (early cut-off).
//!
//! [`StageKind::version`]: crate::kind::StageKind::version

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::fsutil::{files_under, hash_file};

/// Everything a fingerprint is computed from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ingredients {
    pub kind: String,
    pub kind_version: u32,
    /// Canonical JSON of the kind's parameters (object keys sorted).
    pub params: serde_json::Value,
    pub corpora: BTreeMap<String, serde_json::Value>,
    /// Upstream stage -> digest of its outputs.
    pub upstream: BTreeMap<String, String>,
    pub deps: Vec<FileStamp>,
}

impl Ingredients {
    pub fn fingerprint(&self) -> String {
        // Dep stamps enter by path and content hash only: touching a file without
        // changing it must not change the fingerprint.
        let deps: Vec<(&str, &str)> = self
            .deps
            .iter()
            .map(|d| (d.path.as_str(), d.hash.as_str()))
            .collect();
        let canonical = serde_json::json!({
            "kind": self.kind,
            "kind_version": self.kind_version,
            "params": self.params,
            "corpora": self.corpora,
            "upstream": self.upstream,
            "deps": deps,
        });
        blake3::hash(canonical.to_string().as_bytes())
            .to_hex()
            .to_string()
    }

    /// Why `self` (now) differs from `old` (recorded), most fundamental first.
    pub fn diff(&self, old: &Ingredients) -> Vec<Reason> {
        let mut reasons = Vec::new();
        if self.kind != old.kind {
            reasons.push(Reason::Kind {
                from: old.kind.clone(),
                to: self.kind.clone(),
            });
        } else if self.kind_version != old.kind_version {
            reasons.push(Reason::KindVersion {
                kind: self.kind.clone(),
                from: old.kind_version,
                to: self.kind_version,
            });
        }
        diff_values("", &old.params, &self.params, &mut |key, from, to| {
            reasons.push(Reason::Param { key, from, to });
        });
        for name in union_keys(&old.corpora, &self.corpora) {
            let (from, to) = (old.corpora.get(name), self.corpora.get(name));
            if from != to {
                let mut keys = Vec::new();
                if let (Some(from), Some(to)) = (from, to) {
                    diff_values("", from, to, &mut |key, _, _| keys.push(key));
                }
                reasons.push(Reason::Corpus {
                    name: name.clone(),
                    keys,
                });
            }
        }
        for name in union_keys(&old.upstream, &self.upstream) {
            if old.upstream.get(name) != self.upstream.get(name) {
                reasons.push(Reason::UpstreamOutput {
                    stage: name.clone(),
                });
            }
        }
        let old_deps: BTreeMap<&str, &str> = old
            .deps
            .iter()
            .map(|d| (d.path.as_str(), d.hash.as_str()))
            .collect();
        let new_deps: BTreeMap<&str, &str> = self
            .deps
            .iter()
            .map(|d| (d.path.as_str(), d.hash.as_str()))
            .collect();
        for path in union_keys(&old_deps, &new_deps) {
            let change = match (old_deps.get(path), new_deps.get(path)) {
                (None, Some(_)) => Some(Change::Added),
                (Some(_), None) => Some(Change::Removed),
                (Some(a), Some(b)) if a != b => Some(Change::Changed),
                _ => None,
            };
            if let Some(change) = change {
                reasons.push(Reason::Input {
                    path: path.to_string(),
                    change,
                });
            }
        }
        reasons
    }
}

fn union_keys<'a, K: Ord, V>(
    a: &'a BTreeMap<K, V>,
    b: &'a BTreeMap<K, V>,
) -> std::collections::BTreeSet<&'a K> {
    a.keys().chain(b.keys()).collect()
}

/// Calls `report(key, from, to)` for each leaf that differs; a missing side is `None`.
fn diff_values(
    prefix: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    report: &mut dyn FnMut(String, Option<String>, Option<String>),
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_values(&path, x, y, report),
                    (x, y) => report(path, x.map(Value::to_string), y.map(Value::to_string)),
                }
            }
        }
        (a, b) if a != b => report(prefix.to_string(), Some(a.to_string()), Some(b.to_string())),
        _ => {}
    }
}

/// Canonical JSON for TOML values: tables become objects with sorted keys.
pub fn canonical(value: &toml::Value) -> serde_json::Value {
    // serde_json's map is ordered (no `preserve_order` feature), so keys come out sorted.
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A file's identity for freshness: path, size, mtime (fast path) and content hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileStamp {
    /// Relative to the pipeline root when the file is under it, else absolute.
    pub path: String,
    pub size: u64,
    pub mtime_ns: u128,
    pub hash: String,
}

/// Stamps files, reusing the recorded hash of any file whose size and mtime are
/// unchanged (the fast path), and hashing the rest.
pub struct Stamper<'a> {
    root: &'a Path,
    known: BTreeMap<&'a str, &'a FileStamp>,
}

impl<'a> Stamper<'a> {
    pub fn new(root: &'a Path, previous: &'a [FileStamp]) -> Self {
        Stamper {
            root,
            known: previous.iter().map(|s| (s.path.as_str(), s)).collect(),
        }
    }

    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    pub fn absolute(&self, stamp_path: &str) -> PathBuf {
        self.root.join(stamp_path)
    }

    /// Stamps every file under each path (directories are walked), sorted by path.
    pub fn stamp_all(&self, paths: &[PathBuf]) -> io::Result<Vec<FileStamp>> {
        let mut stamps = Vec::new();
        for path in paths {
            let files = files_under(path).map_err(|e| annotate(path, e))?;
            for file in files {
                stamps.push(self.stamp(&file)?);
            }
        }
        stamps.sort_by(|a, b| a.path.cmp(&b.path));
        stamps.dedup_by(|a, b| a.path == b.path);
        Ok(stamps)
    }

    pub fn stamp(&self, file: &Path) -> io::Result<FileStamp> {
        let meta = std::fs::metadata(file).map_err(|e| annotate(file, e))?;
        let path = self.display_path(file);
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let size = meta.len();
        let hash = match self.known.get(path.as_str()) {
            Some(old) if old.size == size && old.mtime_ns == mtime_ns => old.hash.clone(),
            _ => hash_file(file).map_err(|e| annotate(file, e))?,
        };
        Ok(FileStamp {
            path,
            size,
            mtime_ns,
            hash,
        })
    }

    /// The recorded outputs that are missing or changed now.
    pub fn check_outputs(&self, outputs: &[FileStamp]) -> Vec<Reason> {
        outputs
            .iter()
            .filter_map(|old| {
                let change = match self.stamp(&self.absolute(&old.path)) {
                    Err(_) => Change::Removed,
                    Ok(now) if now.hash != old.hash => Change::Changed,
                    Ok(_) => return None,
                };
                Some(Reason::Output {
                    path: old.path.clone(),
                    change,
                })
            })
            .collect()
    }
}

/// Digest of a list of output stamps.
pub fn output_digest(outputs: &[FileStamp]) -> String {
    let mut h = blake3::Hasher::new();
    for o in outputs {
        h.update(o.path.as_bytes());
        h.update(b"\0");
        h.update(o.hash.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// Why a stage is not fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Kind {
        from: String,
        to: String,
    },
    KindVersion {
        kind: String,
        from: u32,
        to: u32,
    },
    Param {
        key: String,
        from: Option<String>,
        to: Option<String>,
    },
    Corpus {
        name: String,
        keys: Vec<String>,
    },
    UpstreamNotFresh {
        stage: String,
        state: &'static str,
    },
    UpstreamOutput {
        stage: String,
    },
    Input {
        path: String,
        change: Change,
    },
    InputsUnavailable {
        error: String,
    },
    Output {
        path: String,
        change: Change,
    },
    Forced,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        match self {
            Reason::Kind { from, to } => write!(f, "kind {from} -> {to}"),
            Reason::KindVersion { kind, from, to } => {
                write!(f, "kind {kind} version {from} -> {to}")
            }
            Reason::Param { key, from, to } => {
                write!(f, "param {key} {} -> {}", opt(from), opt(to))
            }
            Reason::Corpus { name, keys } if keys.is_empty() => write!(f, "corpus {name} changed"),
            Reason::Corpus { name, keys } => {
                write!(f, "corpus {name}: {} changed", keys.join(", "))
            }
            Reason::UpstreamNotFresh { stage, state } => write!(f, "upstream {stage} is {state}"),
            Reason::UpstreamOutput { stage } => write!(f, "upstream {stage} output changed"),
            Reason::Input { path, change } => {
                write!(f, "input {path} {}", change_word(*change, "added"))
            }
            Reason::InputsUnavailable { error } => write!(f, "inputs cannot be listed: {error}"),
            Reason::Output { path, change } => {
                write!(f, "output {path} {}", change_word(*change, "added"))
            }
            Reason::Forced => write!(f, "forced"),
        }
    }
}

fn change_word(change: Change, added: &'static str) -> &'static str {
    match change {
        Change::Added => added,
        Change::Removed => "missing",
        Change::Changed => "changed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingredients(params: &str) -> Ingredients {
        let table: toml::Table = toml::from_str(params).unwrap();
        Ingredients {
            kind: "command".into(),
            kind_version: 1,
            params: canonical(&toml::Value::Table(table)),
            corpora: BTreeMap::new(),
            upstream: BTreeMap::new(),
            deps: Vec::new(),
        }
    }

    #[test]
    fn key_order_and_formatting_do_not_change_the_fingerprint() {
        let a = ingredients("x = 1\ny = { b = 2, a = 'q' }");
        let b = ingredients("y.a = \"q\"\ny.b = 2\n# comment\nx = 1");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(
            a.fingerprint(),
            ingredients("x = 2\ny = { b = 2, a = 'q' }").fingerprint()
        );
    }

    #[test]
    fn diff_names_the_parameter_and_both_values() {
        let old = ingredients("threshold = 0.8\nnested = { n = 1 }");
        let new = ingredients("threshold = 0.7\nnested = { n = 1, m = true }");
        let reasons: Vec<String> = new.diff(&old).iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "param nested.m (unset) -> true",
                "param threshold 0.8 -> 0.7"
            ]
        );
    }
}
