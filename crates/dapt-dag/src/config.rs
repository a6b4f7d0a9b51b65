//! `pipeline.toml`: schema, parsing and validation.
//!
//! Validation runs before anything else and reports *every* problem it finds, each
//! with `file:line:column` and the key it concerns. The file is parsed twice: once
//! into plain `toml` values (what the rest of dapt uses) and once into toml's spanned
//! tree, from which [`SpanIndex`] maps every key path to its place in the file.
//!
//! ```toml
//! [pipeline]
//! name = "demo"        # required
//! workdir = ".dapt"    # stage outputs, manifests and the lock; relative to this file
//! seed = 0             # passed to every stage
//! jobs = 2             # stages run in parallel at most (default: available cores)
//! data_root = "data/raw"
//!
//! [corpora.reuters]    # free-form tables, checked by the registry's corpus schema
//! reader = "reuters-sgml"
//!
//! [stages.ingest]
//! kind = "ingest"      # a registered stage kind
//! inputs = []          # upstream stages
//! corpora = ["reuters"]  # corpora the stage reads (part of its fingerprint)
//! tasks = 3            # cluster tasks its shards are dealt to (not hashed: outputs are
//!                      # the same whatever the count); kinds that work in shards only
//! # ... the kind's own parameters
//!
//! [executor.slurm]     # `dapt run --executor slurm` (see `crate::slurm`)
//! partition = "cpu"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::graph::Graph;
use crate::kind::{ParamError, Registry};

/// Keys of a `[stages.NAME]` table that the engine owns; every other key is a
/// parameter of the stage's kind.
const ENGINE_STAGE_KEYS: [&str; 4] = ["kind", "inputs", "corpora", "tasks"];
const PIPELINE_KEYS: [&str; 5] = ["name", "workdir", "seed", "jobs", "data_root"];

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline file, as given.
    pub file: PathBuf,
    /// The directory of the pipeline file: relative paths resolve against it.
    pub root: PathBuf,
    pub name: String,
    /// Absolute path of the work directory.
    pub workdir: PathBuf,
    pub seed: u64,
    pub jobs: usize,
    /// Absolute path of the raw data root that corpora paths are relative to.
    pub data_root: PathBuf,
    pub corpora: BTreeMap<String, toml::Table>,
    /// Stages in file order.
    pub stages: Vec<StageSpec>,
    /// `[executor.slurm]`, if present.
    pub slurm: Option<crate::slurm::SlurmConfig>,
}

/// One `[stages.NAME]` table.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    pub kind: String,
    pub inputs: Vec<String>,
    pub corpora: Vec<String>,
    /// How many tasks the stage's shards are dealt to on a cluster (shard `i` to task
    /// `i % tasks`); 1 unless set. Not part of the fingerprint: a kind's shards (and so
    /// its outputs) do not depend on it.
    pub tasks: usize,
    /// The kind's parameters: the table without the engine's keys.
    pub params: toml::Table,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn graph(&self) -> Graph {
        Self::graph_of(&self.stages)
    }

    /// Reads, parses and validates a pipeline file.
    pub fn load(file: &Path, registry: &Registry) -> Result<Pipeline, ConfigErrors> {
        let source = std::fs::read_to_string(file).map_err(|e| ConfigErrors {
            file: file.to_path_buf(),
            source: String::new(),
            errors: vec![ConfigError::new(
                None,
                None,
                format!("cannot read pipeline file: {e}"),
            )],
        })?;
        Self::parse(file, &source, registry)
    }

    /// Parses and validates pipeline text; `file` is used for messages and to
    /// resolve relative paths.
    pub fn parse(file: &Path, source: &str, registry: &Registry) -> Result<Pipeline, ConfigErrors> {
        let fail = |errors| ConfigErrors {
            file: file.to_path_buf(),
            source: source.to_string(),
            errors,
        };
        let spans = match DeTable::parse(source) {
            Ok(tree) => SpanIndex::new(tree.get_ref()),
            Err(e) => {
                let (span, message) = match e.span() {
                    // toml stops at a key of 80 dotted parts without saying where
                    // (found by tests/fuzz.rs): point at the line with the most dots.
                    None if e.message() == "recursion limit" => (
                        most_dotted_line(source),
                        "recursion limit: a key or table name has too many dotted parts"
                            .to_string(),
                    ),
                    span => (span, e.message().to_string()),
                };
                return Err(fail(vec![ConfigError::new(None, span, message)]));
            }
        };
        let doc: toml::Table = toml::from_str(source).map_err(|e| {
            fail(vec![ConfigError::new(
                None,
                e.span(),
                e.message().to_string(),
            )])
        })?;
        let mut v = Validator {
            spans: &spans,
            errors: Vec::new(),
        };
        let pipeline = v.pipeline(file, &doc, registry);
        if v.errors.is_empty() {
            Ok(pipeline)
        } else {
            v.errors
                .sort_by_key(|e| e.span.as_ref().map_or(0, |s| s.start));
            Err(fail(v.errors))
        }
    }
}

struct Validator<'a> {
    spans: &'a SpanIndex,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        let span = self.spans.value(path);
        self.errors.push(ConfigError::new(
            Some(path.to_string()),
            span,
            message.into(),
        ));
    }

    fn key_error(&mut self, path: &str, message: impl Into<String>) {
        let span = self.spans.key(path);
        self.errors.push(ConfigError::new(
            Some(path.to_string()),
            span,
            message.into(),
        ));
    }

    fn unknown_keys(&mut self, prefix: &str, table: &toml::Table, known: &[&str]) {
        for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
            self.key_error(
                &join(prefix, key),
                format!(
                    "unknown key `{key}` (expected one of: {})",
                    known.join(", ")
                ),
            );
        }
    }

    fn table<'t>(&mut self, path: &str, value: &'t toml::Value) -> Option<&'t toml::Table> {
        let table = value.as_table();
        if table.is_none() {
            self.error(
                path,
                format!("expected a table, found {}", value.type_str()),
            );
        }
        table
    }

    fn string(&mut self, path: &str, value: Option<&toml::Value>) -> Option<String> {
        match value? {
            toml::Value::String(s) => Some(s.clone()),
            other => {
                self.error(
                    path,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn count(&mut self, path: &str, value: Option<&toml::Value>, min: i64) -> Option<i64> {
        match value? {
            toml::Value::Integer(i) if *i >= min => Some(*i),
            toml::Value::Integer(i) => {
                self.error(path, format!("must be at least {min}, found {i}"));
                None
            }
            other => {
                self.error(
                    path,
                    format!("expected an integer, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string_list(&mut self, path: &str, value: Option<&toml::Value>) -> Vec<String> {
        let Some(value) = value else {
            return Vec::new();
        };
        let Some(items) = value.as_array() else {
            self.error(
                path,
                format!("expected an array of strings, found {}", value.type_str()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.string(&format!("{path}[{i}]"), Some(item)) {
                out.push(s);
            }
        }
        out
    }

    fn pipeline(&mut self, file: &Path, doc: &toml::Table, registry: &Registry) -> Pipeline {
        self.unknown_keys("", doc, &["pipeline", "corpora", "stages", "executor"]);
        let root = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());

        let empty = toml::Table::new();
        let settings = match doc.get("pipeline") {
            Some(v) => self.table("pipeline", v).unwrap_or(&empty),
            None => {
                self.errors.push(ConfigError::new(
                    Some("pipeline".into()),
                    None,
                    "missing [pipeline] table (it needs at least `name`)".into(),
                ));
                &empty
            }
        };
        self.unknown_keys("pipeline", settings, &PIPELINE_KEYS);
        let name = self.string("pipeline.name", settings.get("name"));
        if name.is_none() && doc.contains_key("pipeline") && !settings.contains_key("name") {
            self.key_error("pipeline", "missing key `name` in [pipeline]");
        }
        let workdir = self
            .string("pipeline.workdir", settings.get("workdir"))
            .unwrap_or_else(|| ".dapt".into());
        let data_root = self
            .string("pipeline.data_root", settings.get("data_root"))
            .unwrap_or_else(|| "data/raw".into());
        let seed = self
            .count("pipeline.seed", settings.get("seed"), 0)
            .unwrap_or(0) as u64;
        let jobs = self
            .count("pipeline.jobs", settings.get("jobs"), 1)
            .map(|j| j as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

        let corpora = self.corpora(doc.get("corpora"), registry);
        let stages = self.stages(doc.get("stages"), &corpora, registry);
        let slurm = self.executor(doc.get("executor"));

        Pipeline {
            file: file.to_path_buf(),
            workdir: root.join(workdir),
            data_root: root.join(data_root),
            root,
            name: name.unwrap_or_default(),
            seed,
            jobs,
            corpora,
            stages,
            slurm,
        }
    }

    fn executor(&mut self, value: Option<&toml::Value>) -> Option<crate::slurm::SlurmConfig> {
        let table = self.table("executor", value?)?;
        self.unknown_keys("executor", table, &["slurm"]);
        let slurm = self.table("executor.slurm", table.get("slurm")?)?;
        // Unknown keys first, so the known ones are still checked beside them.
        self.unknown_keys("executor.slurm", slurm, &crate::slurm::SlurmConfig::KEYS);
        let known: toml::Table = slurm
            .iter()
            .filter(|(k, _)| crate::slurm::SlurmConfig::KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match crate::kind::parse_params::<crate::slurm::SlurmConfig>(&known)
            .and_then(|c| c.check().map(|()| c))
        {
            Ok(config) => Some(config),
            Err(errors) => {
                self.param_errors("executor.slurm", errors);
                None
            }
        }
    }

    fn corpora(
        &mut self,
        value: Option<&toml::Value>,
        registry: &Registry,
    ) -> BTreeMap<String, toml::Table> {
        let mut out = BTreeMap::new();
        let Some(table) = value.and_then(|v| self.table("corpora", v)) else {
            return out;
        };
        for (name, corpus) in table {
            let path = join("corpora", name);
            let Some(corpus) = self.table(&path, corpus) else {
                continue;
            };
            if let Err(errors) = registry.check_corpus(name, corpus) {
                self.param_errors(&path, errors);
            }
            out.insert(name.clone(), corpus.clone());
        }
        out
    }

    fn param_errors(&mut self, prefix: &str, errors: Vec<ParamError>) {
        for e in errors {
            let path = join(prefix, &e.key);
            if e.unknown_key {
                self.key_error(&path, e.message);
            } else {
                self.error(&path, e.message);
            }
        }
    }

    fn stages(
        &mut self,
        value: Option<&toml::Value>,
        corpora: &BTreeMap<String, toml::Table>,
        registry: &Registry,
    ) -> Vec<StageSpec> {
        let Some(table) = value.and_then(|v| self.table("stages", v)) else {
            return Vec::new();
        };
        let mut stages = Vec::new();
        for (name, stage) in table {
            let path = join("stages", name);
            let Some(stage) = self.table(&path, stage) else {
                continue;
            };
            let kind = self.string(&join(&path, "kind"), stage.get("kind"));
            if !stage.contains_key("kind") {
                self.key_error(
                    &path,
                    format!(
                        "stage `{name}` has no `kind` (known kinds: {})",
                        registry.kind_names().join(", ")
                    ),
                );
            }
            let inputs = self.string_list(&join(&path, "inputs"), stage.get("inputs"));
            let stage_corpora = self.string_list(&join(&path, "corpora"), stage.get("corpora"));
            for (i, c) in stage_corpora.iter().enumerate() {
                if !corpora.contains_key(c) {
                    let known: Vec<_> = corpora.keys().map(String::as_str).collect();
                    self.error(
                        &format!("{path}.corpora[{i}]"),
                        format!(
                            "unknown corpus `{c}` (defined corpora: {})",
                            list_or_none(&known)
                        ),
                    );
                }
            }
            let tasks = self
                .count(&join(&path, "tasks"), stage.get("tasks"), 1)
                .map_or(1, |n| n as usize);
            let params: toml::Table = stage
                .iter()
                .filter(|(k, _)| !ENGINE_STAGE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(kind) = &kind {
                match registry.get(kind) {
                    None => self.error(
                        &join(&path, "kind"),
                        format!(
                            "unknown stage kind `{kind}` (known kinds: {})",
                            registry.kind_names().join(", ")
                        ),
                    ),
                    Some(k) => {
                        if let Err(errors) = k.check(&params) {
                            self.param_errors(&path, errors);
                        }
                        if tasks > 1 && !k.sharded() {
                            self.error(
                                &join(&path, "tasks"),
                                format!(
                                    "a `{kind}` stage runs as one task; `tasks` applies to kinds that work in shards"
                                ),
                            );
                        }
                    }
                }
            }
            stages.push(StageSpec {
                name: name.clone(),
                kind: kind.unwrap_or_default(),
                inputs,
                corpora: stage_corpora,
                tasks,
                params,
            });
        }
        // File order, so that `graph` and `status` read like the file.
        stages.sort_by_key(|s| {
            self.spans
                .key(&join("stages", &s.name))
                .map_or(0, |r| r.start)
        });

        let known: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        let mut missing = Vec::new();
        for s in &stages {
            for (i, input) in s.inputs.iter().enumerate() {
                if !known.contains(&input.as_str()) {
                    missing.push((
                        format!("stages.{}.inputs[{i}]", s.name),
                        format!(
                            "input `{input}` is not a stage (stages: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        for (path, message) in missing {
            self.error(&path, message);
        }
        if let Some(cycle) = Pipeline::graph_of(&stages).find_cycle() {
            let first = &cycle[0];
            self.error(
                &format!("stages.{first}.inputs"),
                format!("dependency cycle: {} -> {first}", cycle.join(" -> ")),
            );
        }
        stages
    }
}

impl Pipeline {
    fn graph_of(stages: &[StageSpec]) -> Graph {
        Graph::new(
            stages
                .iter()
                .map(|s| (s.name.clone(), s.inputs.clone()))
                .collect(),
        )
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The span of the (trimmed) line holding the most `.`s, if any does.
fn most_dotted_line(source: &str) -> Option<Range<usize>> {
    let (mut best, mut most, mut offset) = (None, 0, 0);
    for line in source.split_inclusive('\n') {
        let dots = line.matches('.').count();
        if dots > most {
            most = dots;
            let start = offset + line.len() - line.trim_start().len();
            best = Some(start..offset + line.trim_end().len());
        }
        offset += line.len();
    }
    best
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Byte spans of every key and value in the file, by dotted key path
/// (`stages.b.inputs[0]`).
struct SpanIndex {
    keys: HashMap<String, Range<usize>>,
    values: HashMap<String, Range<usize>>,
}

impl SpanIndex {
    fn new(root: &DeTable<'_>) -> Self {
        let mut index = SpanIndex {
            keys: HashMap::new(),
            values: HashMap::new(),
        };
        index.add_table("", root);
        index
    }

    fn add_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = join(prefix, key.get_ref());
            self.keys.insert(path.clone(), key.span());
            self.add_value(path, value);
        }
    }

    fn add_value(&mut self, path: String, value: &toml::Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => self.add_table(&path, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.add_value(format!("{path}[{i}]"), item);
                }
            }
            _ => {}
        }
        self.values.insert(path, value.span());
    }

    fn key(&self, path: &str) -> Option<Range<usize>> {
        self.keys.get(path).cloned()
    }

    /// The value's span, or failing that the nearest enclosing key's.
    fn value(&self, path: &str) -> Option<Range<usize>> {
        let mut path = path;
        loop {
            if let Some(span) = self.values.get(path).or_else(|| self.keys.get(path)) {
                return Some(span.clone());
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

/// One problem in a pipeline file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// Dotted key path, e.g. `stages.dedup.threshold`.
    pub key: Option<String>,
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl ConfigError {
    fn new(key: Option<String>, span: Option<Range<usize>>, message: String) -> Self {
        ConfigError { key, span, message }
    }
}

/// Every problem found in one pipeline file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    source: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// 1-based line and column of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.source[..offset.min(self.source.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(span) = &e.span {
                let (line, col) = self.line_col(span.start);
                write!(f, ":{line}:{col}")?;
            }
            write!(f, ": error")?;
            if let Some(key) = &e.key {
                write!(f, " in `{key}`")?;
            }
            write!(f, ": {}", e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
