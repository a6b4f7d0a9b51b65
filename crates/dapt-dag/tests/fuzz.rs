//! Property tests ("fuzz") of the pipeline.toml parser and the stage graph:
//! arbitrary text, soups of TOML tokens, the real pipeline files with their bytes
//! mutated, and the real files with structured edits (a key deleted, a value of
//! another type, a stage duplicated, a cycle, an unknown input/kind/key). Per case:
//!
//! - no panic, in parsing or in printing the errors;
//! - a rejection lists at least one error, each with a message and a key path or
//!   a place in the file (inside the text), printed as `file:line:col: error ...`;
//! - the error a structured edit must cause is among them (`dependency cycle`,
//!   `is not a stage`, the changed key, ...);
//! - an accepted pipeline's graph is acyclic and its topological order puts
//!   every stage after its inputs;
//! - the same text gives the same result twice.
//!
//! `DAPT_FUZZ_CASES` is the number of cases per property (default 400);
//! `just fuzz` runs tens of thousands. `DAPT_FUZZ_SEED` changes the fixed seed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use dapt_dag::{ConfigErrors, ParamError, Pipeline, Registry, RunReport, StageContext, StageKind};
use dapt_testdata::fuzz::{self, Mutation};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{TestCaseError, TestRunner};

fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let config = fuzz::config(fuzz::cases());
    let start = Instant::now();
    COUNTS.with(|c| c.set((0, 0)));
    let result = TestRunner::new(config).run(&strategy, test);
    let (ok, err) = COUNTS.with(|c| c.get());
    eprintln!(
        "fuzz {name}: {} cases in {:.2}s (seed {}): {ok} accepted, {err} rejected",
        fuzz::cases(),
        start.elapsed().as_secs_f64(),
        fuzz::seed()
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

thread_local! {
    /// Accepted and rejected pipelines of the running property.
    static COUNTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

// ---------------------------------------------------------------------------
// A registry like the CLI's: its kind names, the real corpus schema; stage
// parameters are the kinds' business, so most stubs take any table, and two
// check typed parameters (nested key paths in errors).

struct Stub {
    name: &'static str,
    check: fn(&toml::Table) -> Result<(), Vec<ParamError>>,
}

impl StageKind for Stub {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        (self.check)(params)
    }

    fn run(&self, _: &StageContext) -> anyhow::Result<RunReport> {
        anyhow::bail!("stub kinds do not run")
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct CommandParams {
    cmd: String,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    outs: Vec<String>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SplitParams {
    ratios: BTreeMap<String, f64>,
    #[serde(default)]
    group_by: BTreeMap<String, String>,
}

fn registry() -> Registry {
    fn any(_: &toml::Table) -> Result<(), Vec<ParamError>> {
        Ok(())
    }
    let mut registry = Registry::new();
    for name in [
        "ingest",
        "clean",
        "dedup",
        "tokenizer",
        "tokenize",
        "pretrain",
        "continue",
        "model",
        "evaluate",
        "report",
    ] {
        registry.register(Stub { name, check: any });
    }
    registry.register(Stub {
        name: "command",
        check: |p| dapt_dag::parse_params::<CommandParams>(p).map(drop),
    });
    registry.register(Stub {
        name: "split",
        check: |p| dapt_dag::parse_params::<SplitParams>(p).map(drop),
    });
    registry.set_corpus_check(|name, table| {
        let config: dapt_data::CorpusConfig = dapt_dag::parse_params(table)?;
        config
            .validate(name)
            .map_err(|e| vec![ParamError::invalid(String::new(), e.to_string())])
    });
    registry
}

// ---------------------------------------------------------------------------
// Parsing one text and checking what came back

const FILE: &str = "fuzz/pipeline.toml";

/// Parses `source` twice; checks determinism and the shape of the errors.
fn parse(
    registry: &Registry,
    source: &str,
) -> Result<Result<Pipeline, ConfigErrors>, TestCaseError> {
    let first = Pipeline::parse(Path::new(FILE), source, registry);
    let second = Pipeline::parse(Path::new(FILE), source, registry);
    let show = |r: &Result<Pipeline, ConfigErrors>| match r {
        Ok(p) => format!("{:?}", (&p.name, p.seed, p.jobs, &p.stages, &p.corpora)),
        Err(e) => e.to_string(),
    };
    check!(
        show(&first) == show(&second),
        "two parses of the same text differ"
    );
    match &first {
        Ok(pipeline) => {
            COUNTS.with(|c| c.set((c.get().0 + 1, c.get().1)));
            check_graph(pipeline)?;
        }
        Err(errors) => {
            COUNTS.with(|c| c.set((c.get().0, c.get().1 + 1)));
            check_errors(source, errors)?;
        }
    }
    Ok(first)
}

fn check_errors(source: &str, errors: &ConfigErrors) -> Result<(), TestCaseError> {
    check!(!errors.errors.is_empty(), "rejected with no error");
    for e in &errors.errors {
        check!(
            !e.message.trim().is_empty(),
            "an error without a message: {e:?}"
        );
        check!(
            e.key.as_deref().is_some_and(|k| !k.is_empty()) || e.span.is_some(),
            "an error that names neither a key nor a place: {e:?}"
        );
        if let Some(span) = &e.span {
            check!(
                span.start <= span.end && span.end <= source.len(),
                "span {span:?} outside the {} bytes of text: {e:?}",
                source.len()
            );
        }
    }
    let shown = errors.to_string();
    for (e, line) in errors.errors.iter().zip(shown.split(&format!("\n{FILE}"))) {
        let line = line.strip_prefix(FILE).unwrap_or(line);
        check!(
            line.contains(": error") && line.contains(&e.message),
            "error printed as {line:?}: {e:?}"
        );
        if let Some(key) = &e.key {
            check!(
                line.contains(&format!("`{key}`")),
                "key missing in {line:?}"
            );
        }
    }
    Ok(())
}

/// An accepted pipeline: its graph is acyclic, the topological order complete
/// and inputs-first, the closures agree with the edges.
fn check_graph(pipeline: &Pipeline) -> Result<(), TestCaseError> {
    let graph = pipeline.graph();
    check!(graph.find_cycle().is_none(), "accepted with a cycle");
    let order = graph.topological();
    let names: BTreeSet<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    check!(
        order.len() == names.len() && order.iter().all(|n| names.contains(n.as_str())),
        "topological order {order:?} is not the stages {names:?}"
    );
    let position: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for stage in &pipeline.stages {
        for input in &stage.inputs {
            check!(
                names.contains(input.as_str()),
                "accepted an unknown input {input}"
            );
            check!(
                position[input.as_str()] < position[stage.name.as_str()],
                "{input} after {} in {order:?}",
                stage.name
            );
        }
    }
    let closures = |up: bool| -> BTreeMap<&str, BTreeSet<String>> {
        names
            .iter()
            .map(|&n| {
                let start = [n.to_owned()];
                let set = if up {
                    graph.with_ancestors(&start)
                } else {
                    graph.with_descendants(&start)
                };
                (n, set)
            })
            .collect()
    };
    let (ancestors, descendants) = (closures(true), closures(false));
    for stage in &pipeline.stages {
        for input in &stage.inputs {
            check!(
                ancestors[stage.name.as_str()].contains(input),
                "input {input} not among the ancestors of {}",
                stage.name
            );
        }
    }
    for (stage, above) in &ancestors {
        for a in above {
            check!(
                descendants[a.as_str()].contains(*stage),
                "{a} is an ancestor of {stage} but not the reverse"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The real pipeline files

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// pipeline.toml and configs/*.toml.
fn real_files() -> Vec<String> {
    let mut paths = vec![workspace().join("pipeline.toml")];
    let mut configs: Vec<PathBuf> = std::fs::read_dir(workspace().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    paths.extend(configs);
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

#[test]
fn the_real_files_are_accepted_by_the_fuzzing_registry() {
    let registry = registry();
    for text in real_files() {
        if let Err(e) = Pipeline::parse(Path::new(FILE), &text, &registry) {
            panic!("{e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Arbitrary text and TOML token soups

const TOML_TOKENS: &[&str] = &[
    "[pipeline]\n",
    "name = \"x\"\n",
    "[stages.a]\n",
    "[stages.b]\n",
    "[stages.a.p]\n",
    "[[stages]]\n",
    "[corpora.c]\n",
    "kind = \"command\"\n",
    "kind = \"split\"\n",
    "cmd = \"true\"\n",
    "ratios = { train = 1.0 }\n",
    "inputs = [\"a\"]\n",
    "inputs = [\"b\"]\n",
    "inputs = [\"a\", \"b\", \"zz\"]\n",
    "corpora = [\"c\"]\n",
    "reader = \"txt\"\n",
    "domain = \"d\"\n",
    "paths = [\"*\"]\n",
    "jobs = 0\n",
    "seed = -1\n",
    "stages = 1\n",
    "a.b.c = 1\n",
    "\"quoted.key\" = 2\n",
    "'lit' = 'x'\n",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ".",
    ",",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "#",
    "# comment\n",
    "\\",
    "\\u",
    "\\U0010FFFF",
    "\\uD800",
    "é",
    "\u{1F4A5}",
    "\u{FEFF}",
    "\u{0}",
    "\u{7F}",
    "1e",
    "1e400",
    "0x",
    "0xFFFFFFFFFFFFFFFFFF",
    "-9223372036854775809",
    "nan",
    "-inf",
    "1_000",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "true",
    "false",
];

/// Keys, headers, arrays and inline tables nested `depth` deep (toml has
/// limits; hitting one must still be an error that says where).
fn nested() -> impl Strategy<Value = String> {
    (0usize..4, 1usize..200).prop_map(|(form, depth)| match form {
        0 => format!("{} = 1\n", vec!["a"; depth].join(".")),
        1 => format!("[{}]\nb = 1\n", vec!["a"; depth].join(".")),
        2 => format!("a = {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
        _ => format!("a = {}1{}\n", "{ b = ".repeat(depth), " }".repeat(depth)),
    })
}

fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        6 => select(TOML_TOKENS).prop_map(str::to_owned),
        2 => "[a-z_.]{1,8}",
        1 => any::<String>(),
    ];
    let text = prop_oneof![
        6 => vec(token, 0..48).prop_map(|t| t.concat()),
        2 => any::<String>(),
        2 => vec(any::<u8>(), 0..256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => nested(),
    ];
    // Half behind a valid [pipeline] table, so that validation is reached.
    (any::<bool>(), text).prop_map(|(header, text)| {
        if header {
            format!("[pipeline]\nname = \"soup\"\n{text}")
        } else {
            text
        }
    })
}

/// Found by this file: a key of 80 or more dotted parts was rejected by toml
/// with `recursion limit` and no place (an error naming nothing).
#[test]
fn too_deep_a_key_is_an_error_with_a_place() {
    let registry = registry();
    for text in [
        format!(
            "[pipeline]\nname = \"x\"\n{} = 1\n",
            vec!["a"; 100].join(".")
        ),
        format!(
            "[pipeline]\nname = \"x\"\n\n[{}]\n",
            vec!["a"; 1000].join(".")
        ),
    ] {
        let e = Pipeline::parse(Path::new(FILE), &text, &registry).expect_err("too deep");
        assert!(e.errors[0].span.is_some(), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{FILE}:3:1: error"))
                || e.to_string().starts_with(&format!("{FILE}:4:1: error")),
            "{e}"
        );
    }
}

#[test]
fn fuzz_arbitrary_text() {
    let registry = registry();
    run("pipeline.toml (arbitrary text)", soup(), |text| {
        parse(&registry, &text).map(drop)
    });
}

// ---------------------------------------------------------------------------
// Byte mutations of the real files

/// Byte mutations whose insertions are mostly TOML's own tokens.
fn byte_edit() -> impl Strategy<Value = Mutation> {
    fuzz::mutation(TOML_TOKENS.iter().map(|t| t.as_bytes().to_vec()).collect())
}

fn apply_bytes(text: &str, edits: &[Mutation]) -> String {
    // Flips and cuts may break UTF-8; the parser takes text, as `load` reads it.
    String::from_utf8_lossy(&fuzz::apply(text.as_bytes().to_vec(), edits)).into_owned()
}

#[test]
fn fuzz_real_files_byte_mutations() {
    let registry = registry();
    let files = real_files();
    run(
        "pipeline.toml (byte mutations of the real files)",
        (select(files), vec(byte_edit(), 1..8)),
        |(text, edits)| parse(&registry, &apply_bytes(&text, &edits)).map(drop),
    );
}

// ---------------------------------------------------------------------------
// Structured edits of the real files

#[derive(Debug, Clone)]
enum Edit {
    /// Delete the key at a path (any depth).
    DeleteKey(Index),
    /// Replace the value at a path by a value of another type.
    ChangeType(Index, Index),
    /// Define a stage's table a second time (a TOML error).
    RedefineStage(Index),
    /// Copy a stage under a new name.
    CopyStage(Index),
    /// Make a stage an input of itself or of one of its ancestors.
    Cycle(Index, Index),
    /// Add an input naming no stage.
    UnknownInput(Index),
    /// Set a stage's kind to one nobody registered.
    UnknownKind(Index),
    /// Add a key no schema knows to a table (top level, [pipeline], a corpus, a stage).
    UnknownKey(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => any::<Index>().prop_map(Edit::DeleteKey),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::ChangeType(a, b)),
        1 => any::<Index>().prop_map(Edit::RedefineStage),
        1 => any::<Index>().prop_map(Edit::CopyStage),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Cycle(a, b)),
        1 => any::<Index>().prop_map(Edit::UnknownInput),
        1 => any::<Index>().prop_map(Edit::UnknownKind),
        1 => any::<Index>().prop_map(Edit::UnknownKey),
    ]
}

/// A path to a value: table keys and array indices.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    At(usize),
}

fn paths(value: &toml::Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                prefix.push(Step::Key(k.clone()));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Step::At(i));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// The dotted form the parser uses in error keys: `stages.b.inputs[0]`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::At(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn get_mut<'v>(value: &'v mut toml::Value, path: &[Step]) -> Option<&'v mut toml::Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.as_table_mut()?.get_mut(k),
        Step::At(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// A value of a type other than `old`'s.
fn other_type(old: &toml::Value, pick: Index) -> toml::Value {
    let candidates = [
        toml::Value::String("fuzz".into()),
        toml::Value::Integer(-3),
        toml::Value::Float(0.5),
        toml::Value::Boolean(true),
        toml::Value::Array(vec![toml::Value::Integer(1)]),
        toml::Value::Table(toml::Table::new()),
    ];
    let others: Vec<&toml::Value> = candidates
        .iter()
        .filter(|c| c.type_str() != old.type_str())
        .collect();
    others[pick.index(others.len())].clone()
}

/// What the parser must report after an edit.
#[derive(Debug)]
enum Want {
    /// Nothing in particular (still no panic, well-formed errors).
    Anything,
    /// Rejected, with an error whose key starts with this path.
    KeyError(String),
    /// Rejected, with an error whose message contains this.
    Message(String),
    /// Rejected at all (a TOML error).
    Rejected,
    /// Accepted.
    Accepted,
}

/// The stages defined as tables (stacked edits may have changed some).
fn stage_names(doc: &toml::Value) -> Vec<String> {
    doc.get("stages")
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.iter()
                .filter(|(_, v)| v.is_table())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn stage_inputs(doc: &toml::Value, name: &str) -> Vec<String> {
    doc.get("stages")
        .and_then(|s| s.get(name))
        .and_then(|s| s.get("inputs"))
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn inputs_mut<'d>(doc: &'d mut toml::Value, stage: &str) -> &'d mut Vec<toml::Value> {
    let table = doc["stages"][stage].as_table_mut().unwrap();
    let inputs = table
        .entry("inputs")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    if !inputs.is_array() {
        *inputs = toml::Value::Array(Vec::new());
    }
    inputs.as_array_mut().unwrap()
}

/// Whether the engine or the corpus schema checks the value at `path`.
fn validated(path: &[Step]) -> bool {
    let key = |i: usize| match path.get(i) {
        Some(Step::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    match (key(0), path.len()) {
        (Some("pipeline"), 1 | 2) => true,
        (Some("corpora"), n) => n >= 2,
        (Some("stages"), 1 | 2) => true,
        (Some("stages"), _) => matches!(key(2), Some("kind" | "inputs" | "corpora")),
        _ => false,
    }
}

/// Applies one edit to a parsed real file; returns the new text and what the
/// parser must say about it, or `None` when the edit does not apply (stacked
/// edits may have deleted every key or stage).
fn apply_edit(original: &toml::Value, edit: &Edit) -> Option<(String, Want)> {
    let mut doc = original.clone();
    let mut all = Vec::new();
    paths(&doc, &mut Vec::new(), &mut all);
    let stages = stage_names(&doc);
    let on_stage = !matches!(
        edit,
        Edit::DeleteKey(_) | Edit::ChangeType(..) | Edit::UnknownKey(_)
    );
    if (all.is_empty() && !on_stage) || (stages.is_empty() && on_stage) {
        return None;
    }
    let stage = |i: &Index| stages[i.index(stages.len())].clone();
    let want = match edit {
        Edit::DeleteKey(i) => {
            let path = &all[i.index(all.len())];
            let (last, parent) = path.split_last().unwrap();
            let parent = get_mut(&mut doc, parent).unwrap();
            match (last, parent) {
                (Step::Key(k), toml::Value::Table(t)) => {
                    t.remove(k);
                }
                (Step::At(i), toml::Value::Array(a)) => {
                    a.remove(*i);
                }
                _ => unreachable!(),
            }
            Want::Anything
        }
        Edit::ChangeType(i, pick) => {
            let path = all[i.index(all.len())].clone();
            let value = get_mut(&mut doc, &path).unwrap();
            *value = other_type(value, *pick);
            if validated(&path) {
                // A corpus's errors name the corpus at least (a schema-level
                // `validate` error is keyed by the corpus table).
                let depth = if matches!(path.first(), Some(Step::Key(k)) if k == "corpora") {
                    2
                } else {
                    path.len()
                };
                Want::KeyError(dotted(&path[..depth]))
            } else {
                Want::Anything
            }
        }
        Edit::RedefineStage(i) => {
            let name = stage(i);
            let text = toml::to_string(&doc).unwrap();
            let text = format!("{text}\n[stages.{name}]\nkind = \"command\"\ncmd = \"true\"\n");
            return Some((text, Want::Rejected));
        }
        Edit::CopyStage(i) => {
            let name = stage(i);
            let copy = doc["stages"][name.as_str()].clone();
            doc["stages"]
                .as_table_mut()
                .unwrap()
                .insert(format!("{name}_copy"), copy);
            Want::Accepted
        }
        Edit::Cycle(a, b) => {
            // `a` depends (transitively) on `b` or is `b`: adding `a` to b's inputs
            // closes a loop.
            let a = stage(a);
            let mut ancestors = vec![a.clone()];
            let mut todo = vec![a.clone()];
            while let Some(s) = todo.pop() {
                for input in stage_inputs(&doc, &s) {
                    if stages.contains(&input) && !ancestors.contains(&input) {
                        ancestors.push(input.clone());
                        todo.push(input);
                    }
                }
            }
            let b = ancestors[b.index(ancestors.len())].clone();
            inputs_mut(&mut doc, &b).push(toml::Value::String(a));
            Want::Message("dependency cycle".into())
        }
        Edit::UnknownInput(i) => {
            let name = stage(i);
            let inputs = inputs_mut(&mut doc, &name);
            inputs.push(toml::Value::String("no_such_stage".into()));
            Want::KeyError(format!("stages.{name}.inputs[{}]", inputs.len() - 1))
        }
        Edit::UnknownKind(i) => {
            let name = stage(i);
            doc["stages"][name.as_str()]
                .as_table_mut()
                .unwrap()
                .insert("kind".into(), toml::Value::String("no-such-kind".into()));
            Want::KeyError(format!("stages.{name}.kind"))
        }
        Edit::UnknownKey(i) => {
            let mut tables = vec![Vec::new()];
            if doc.get("pipeline").is_some_and(toml::Value::is_table) {
                tables.push(vec![Step::Key("pipeline".into())]);
            }
            for section in ["corpora", "stages"] {
                if let Some(t) = doc.get(section).and_then(toml::Value::as_table) {
                    for (name, _) in t.iter().filter(|(_, v)| v.is_table()) {
                        tables.push(vec![Step::Key(section.into()), Step::Key(name.clone())]);
                    }
                }
            }
            let path = tables[i.index(tables.len())].clone();
            let table = get_mut(&mut doc, &path).unwrap().as_table_mut().unwrap();
            table.insert("colour_fuzz".into(), toml::Value::Integer(1));
            let mut key = path;
            key.push(Step::Key("colour_fuzz".into()));
            if key.len() == 3 && key[0] == Step::Key("stages".into()) {
                // A stage's own keys are its kind's parameters: only the typed
                // stubs reject it.
                Want::Anything
            } else {
                Want::KeyError(dotted(&key))
            }
        }
    };
    Some((toml::to_string(&doc).unwrap(), want))
}

fn check_want(result: &Result<Pipeline, ConfigErrors>, want: &Want) -> Result<(), TestCaseError> {
    match (want, result) {
        (Want::Anything, _) => {}
        (Want::Accepted, Ok(_)) => {}
        (Want::Accepted, Err(e)) => check!(false, "rejected: {e}"),
        (_, Ok(_)) => check!(false, "accepted, wanted {want:?}"),
        (Want::Rejected, Err(_)) => {}
        (Want::KeyError(key), Err(e)) => check!(
            e.errors.iter().any(|x| x
                .key
                .as_deref()
                .is_some_and(|k| k.starts_with(key.as_str()))),
            "no error keyed `{key}` in:\n{e}"
        ),
        (Want::Message(m), Err(e)) => check!(
            e.errors.iter().any(|x| x.message.contains(m.as_str())),
            "no error saying `{m}` in:\n{e}"
        ),
    }
    Ok(())
}

/// The real pipeline files as TOML documents, for structured edits.
fn real_docs() -> Vec<toml::Value> {
    real_files()
        .iter()
        .map(|t| toml::from_str(t).unwrap())
        .collect()
}

#[test]
fn fuzz_real_files_structured_edits() {
    let registry = registry();
    let docs = real_docs();
    run(
        "pipeline.toml (one structured edit of the real files)",
        (select(docs), edit()),
        |(doc, edit)| {
            let (text, want) = apply_edit(&doc, &edit).expect("applies to a real file");
            let result = parse(&registry, &text)?;
            check_want(&result, &want)
        },
    );
}

#[test]
fn fuzz_real_files_stacked_edits() {
    let registry = registry();
    let docs = real_docs();
    run(
        "pipeline.toml (stacked structured and byte edits)",
        (select(docs), vec(edit(), 1..5), vec(byte_edit(), 0..4)),
        |(doc, edits, bytes)| {
            let mut text = toml::to_string(&doc).unwrap();
            let mut doc = doc;
            for edit in &edits {
                let Some((edited, _)) = apply_edit(&doc, edit) else {
                    continue;
                };
                text = edited;
                match toml::from_str(&text) {
                    Ok(next) => doc = next,
                    Err(_) => break, // a redefined stage: text is no TOML any more
                }
            }
            parse(&registry, &apply_bytes(&text, &bytes)).map(drop)
        },
    );
}

// ---------------------------------------------------------------------------
// Random stage graphs: cycles and unknown inputs are found exactly

#[derive(Debug, Clone)]
struct GraphCase {
    /// Per stage, its inputs: indices of stages, or `None` for an unknown name.
    inputs: Vec<Vec<Option<usize>>>,
}

fn graph_case() -> impl Strategy<Value = GraphCase> {
    (1usize..12)
        .prop_flat_map(|n| {
            let input = prop_oneof![
                12 => (0..n).prop_map(Some),
                1 => Just(None),
            ];
            // Mostly edges to earlier stages (DAGs), sometimes anywhere.
            let back = (0..n).prop_map(Some);
            vec(
                (
                    vec(input, 0..4),
                    proptest::bool::weighted(0.25),
                    vec(back, 0..3),
                ),
                n..=n,
            )
        })
        .prop_map(|stages| GraphCase {
            inputs: stages
                .into_iter()
                .enumerate()
                .map(|(i, (any, cyclic, earlier))| {
                    if cyclic {
                        any
                    } else {
                        earlier
                            .into_iter()
                            .map(|e| e.map(|e| e % i.max(1)))
                            .filter(|e| *e != Some(i))
                            .collect()
                    }
                })
                .collect(),
        })
}

/// Whether the known edges hold a cycle (Kahn's algorithm).
fn has_cycle(case: &GraphCase) -> bool {
    let n = case.inputs.len();
    let mut indegree = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for (stage, inputs) in case.inputs.iter().enumerate() {
        let known: BTreeSet<usize> = inputs.iter().flatten().copied().collect();
        for input in known {
            indegree[stage] += 1;
            dependents[input].push(stage);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&s| indegree[s] == 0).collect();
    let mut done = 0;
    while let Some(s) = ready.pop() {
        done += 1;
        for &d in &dependents[s] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(d);
            }
        }
    }
    done < n
}

#[test]
fn fuzz_stage_graphs() {
    let registry = registry();
    run(
        "pipeline.toml (random stage graphs)",
        graph_case(),
        |case| {
            let name = |i: usize| format!("s{i}");
            let mut text = String::from("[pipeline]\nname = \"g\"\n");
            let mut unknown = Vec::new();
            for (i, inputs) in case.inputs.iter().enumerate() {
                let list: Vec<String> = inputs
                    .iter()
                    .enumerate()
                    .map(|(k, input)| match input {
                        Some(j) => format!("\"{}\"", name(*j)),
                        None => {
                            unknown.push(format!("stages.{}.inputs[{k}]", name(i)));
                            "\"ghost\"".to_owned()
                        }
                    })
                    .collect();
                text.push_str(&format!(
                    "\n[stages.{}]\nkind = \"command\"\ncmd = \"true\"\ninputs = [{}]\n",
                    name(i),
                    list.join(", ")
                ));
            }
            let result = parse(&registry, &text)?;
            let cycle = has_cycle(&case);
            match &result {
                Ok(_) => check!(!cycle && unknown.is_empty(), "accepted a bad graph"),
                Err(e) => {
                    let cycles: Vec<&str> = e
                        .errors
                        .iter()
                        .filter(|x| x.message.starts_with("dependency cycle: "))
                        .map(|x| x.message.as_str())
                        .collect();
                    check!(
                        cycles.len() == usize::from(cycle),
                        "cycle {cycle}, reported {cycles:?}"
                    );
                    for reported in cycles {
                        // `a -> b -> c -> a`: each is an input of the next.
                        let names: Vec<&str> = reported["dependency cycle: ".len()..]
                            .split(" -> ")
                            .collect();
                        check!(names.first() == names.last(), "not closed: {reported}");
                        for pair in names.windows(2) {
                            let to: usize = pair[1][1..].parse().unwrap();
                            let from: usize = pair[0][1..].parse().unwrap();
                            check!(
                                case.inputs[to].contains(&Some(from)),
                                "{} is not an input of {} in {reported}",
                                pair[0],
                                pair[1]
                            );
                        }
                    }
                    for key in &unknown {
                        check!(
                            e.errors
                                .iter()
                                .any(|x| x.key.as_deref() == Some(key.as_str())
                                    && x.message.contains("is not a stage")),
                            "no `is not a stage` error for {key}:\n{e}"
                        );
                    }
                    check!(
                        e.errors.len() == unknown.len() + usize::from(cycle),
                        "unexpected errors:\n{e}"
                    );
                }
            }
            Ok(())
        },
    );
}
