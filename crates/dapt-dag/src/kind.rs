//! Stage kinds: the one trait every kind implements, the registry of kinds, and the
//! context a kind runs in (paths, progress, resumable shards).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Pipeline, StageSpec};
use crate::fsutil::atomic_write;
use crate::manifest::{Conservation, StageDir};

/// One kind of stage (`command`, `ingest`, `clean`, …): one module, one impl.
pub trait StageKind: Send + Sync {
    /// The `kind = "…"` name.
    fn name(&self) -> &'static str;

    /// Bump when the kind's outputs change for the same inputs and parameters;
    /// every stage of the kind becomes stale.
    fn version(&self) -> u32;

    /// Validates the stage's parameters (its table without `kind`, `inputs`,
    /// `corpora`). Usually `parse_params::<MyParams>(params).map(drop)`.
    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>>;

    /// Files the stage reads besides upstream outputs; their contents are part of
    /// the fingerprint. Directories are walked.
    fn deps(&self, stage: &StageSpec, pipeline: &Pipeline) -> anyhow::Result<Vec<PathBuf>> {
        let _ = (stage, pipeline);
        Ok(Vec::new())
    }

    /// Outputs the stage writes outside its managed `out/` directory (paths
    /// relative to the pipeline root). Most kinds write only to `ctx.out_dir`.
    fn declared_outputs(&self, stage: &StageSpec, pipeline: &Pipeline) -> Vec<PathBuf> {
        let _ = (stage, pipeline);
        Vec::new()
    }

    /// Whether the kind does its work through [`StageContext::for_each_shard`], so a
    /// cluster executor can deal its shards to several tasks (`tasks = N`). The tasks
    /// run the kind's first sharded phase; the stage's finalising task runs the rest.
    fn sharded(&self) -> bool {
        false
    }

    /// Whether the kind trains a model: on a cluster its job gets the configured GPUs and
    /// `--requeue` (a requeued job resumes from its newest checkpoint).
    fn accelerated(&self) -> bool {
        false
    }

    /// Does the work. Write outputs under `ctx.out_dir` (or the declared outputs);
    /// use [`StageContext::for_each_shard`] so a killed run resumes mid-stage.
    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport>;
}

/// What a finished stage reports for its manifest.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    pub counts: BTreeMap<String, serde_json::Value>,
    /// Stages that drop documents report this; the engine refuses to mark the stage
    /// done unless `input == kept + rejected`.
    pub conservation: Option<Conservation>,
}

/// A problem with one key of a stage's (or corpus's) table.
#[derive(Debug, Clone)]
pub struct ParamError {
    /// Key path relative to the table, e.g. `filters.min_words`.
    pub key: String,
    pub message: String,
    /// The key itself is wrong (points at the key rather than the value).
    pub unknown_key: bool,
}

impl ParamError {
    /// A bad value for `key` (the key itself is fine).
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError {
            key: key.into(),
            message: message.into(),
            unknown_key: false,
        }
    }
}

/// Deserialises a parameter table into `P`, reporting every unknown key and the
/// first type error, each with its key path. `P` should not use
/// `deny_unknown_fields`: unknown keys are collected here, all of them.
pub fn parse_params<P: DeserializeOwned>(params: &toml::Table) -> Result<P, Vec<ParamError>> {
    let mut errors = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let value = toml::Value::Table(params.clone());
    let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
    let parsed = serde_ignored::deserialize(tracked, |path| {
        errors.push(ParamError {
            key: path.to_string(),
            message: format!("unknown key `{path}`"),
            unknown_key: true,
        })
    });
    match parsed {
        Ok(p) if errors.is_empty() => Ok(p),
        Ok(_) => Err(errors),
        Err(e) => {
            let path = track.path().to_string();
            let mut key = if path == "." { String::new() } else { path };
            let message = e.message().to_string();
            // A `deny_unknown_fields` struct names the key only in its message;
            // point at the key itself, as for the keys `serde_ignored` reports.
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field.to_string());
            if let Some(field) = &unknown {
                // The tracked path may already end at the field (a flattened
                // `deny_unknown_fields` struct), or stop at its table.
                if key.rsplit('.').next() != Some(field.as_str()) {
                    key = if key.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                }
            }
            errors.push(ParamError {
                message,
                key,
                unknown_key: unknown.is_some(),
            });
            Err(errors)
        }
    }
}

/// A corpus schema: validates the `[corpora.NAME]` table of corpus `NAME`.
pub type CorpusCheck = fn(&str, &toml::Table) -> Result<(), Vec<ParamError>>;

/// The stage kinds a pipeline may use.
#[derive(Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Box<dyn StageKind>>,
    corpus_check: Option<CorpusCheck>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, kind: impl StageKind + 'static) -> &mut Self {
        self.kinds.insert(kind.name(), Box::new(kind));
        self
    }

    pub fn set_corpus_check(&mut self, check: CorpusCheck) -> &mut Self {
        self.corpus_check = Some(check);
        self
    }

    pub fn get(&self, name: &str) -> Option<&dyn StageKind> {
        self.kinds.get(name).map(|k| k.as_ref())
    }

    pub fn kind_names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    pub fn check_corpus(&self, name: &str, corpus: &toml::Table) -> Result<(), Vec<ParamError>> {
        self.corpus_check
            .map_or(Ok(()), |check| check(name, corpus))
    }
}

/// Receives progress from running stages (the CLI draws bars or log lines).
pub trait Observer: Sync {
    fn started(&self, stage: &str, why: &str);
    /// `done` of `total` units (`docs`, `bytes`, `shards`, …) finished.
    fn progress(&self, stage: &str, done: u64, total: Option<u64>, unit: &str);
    fn finished(&self, stage: &str, outcome: &crate::runner::Outcome);
    /// A one-line state of a running stage (e.g. loss and tokens/s), replaced by the next.
    fn status(&self, _stage: &str, _text: &str) {}
    /// A line worth keeping in the run's log (e.g. a validation result).
    fn log(&self, _stage: &str, _text: &str) {}
}

/// Everything a stage kind sees while it runs.
pub struct StageContext<'a> {
    pub pipeline: &'a Pipeline,
    pub stage: &'a StageSpec,
    /// Empty on a fresh attempt; holds finished shards' files on a resumed one.
    /// Renamed to the stage's `out/` when the run succeeds.
    pub out_dir: PathBuf,
    /// Where measurements go (wall times, tokens/s): moved to the stage's `timing/`
    /// beside `out/` on success, and never part of the output digest.
    pub timing_dir: PathBuf,
    /// Whether this attempt continues an interrupted one.
    pub resumed: bool,
    pub(crate) dir: StageDir,
    pub(crate) workdir: PathBuf,
    pub(crate) observer: &'a dyn Observer,
    pub(crate) progress: Mutex<(u64, Option<u64>, &'static str)>,
    /// Set by [`Self::count_own_progress`]: shards then no longer count as progress.
    pub(crate) own_progress: AtomicBool,
    pub(crate) shards: Mutex<Option<ShardStats>>,
    /// Set in a cluster task that does only its share of the shards (see [`Rank`]).
    pub(crate) rank: Option<Rank>,
}

/// One task of a stage's shards on a cluster: `rank` of `ranks` takes shard `i` iff
/// `i % ranks == rank`, so which task does a shard never changes what it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub rank: usize,
    pub ranks: usize,
}

/// Returned by [`StageContext::for_each_shard`] in a rank task once the task's own
/// shards of the phase are finished: the task is done, and the stage's finalising task
/// (which sees every shard finished) goes on from there.
#[derive(Debug, thiserror::Error)]
#[error("task {} of {}: its {done} of {count} `{phase}` shard(s) are finished", .rank.rank, .rank.ranks)]
pub struct ShardsPending {
    pub rank: Rank,
    pub phase: String,
    pub done: usize,
    pub count: usize,
}

impl StageContext<'_> {
    /// The managed output directory of upstream stage `name`.
    pub fn input_dir(&self, name: &str) -> PathBuf {
        StageDir::new(&self.workdir, name).out()
    }

    /// The manifest of upstream stage `name` (its counts, timings, conservation), for
    /// stages that summarise others, such as a report.
    pub fn input_manifest(&self, name: &str) -> anyhow::Result<crate::manifest::Manifest> {
        let dir = StageDir::new(&self.workdir, name);
        dir.read_manifest()?.ok_or_else(|| {
            anyhow::anyhow!(
                "upstream stage `{name}` has no manifest at {}",
                dir.manifest().display()
            )
        })
    }

    /// Managed output directories of all upstream stages, in `inputs` order.
    pub fn input_dirs(&self) -> Vec<(String, PathBuf)> {
        self.stage
            .inputs
            .iter()
            .map(|n| (n.clone(), self.input_dir(n)))
            .collect()
    }

    pub fn set_progress_total(&self, total: u64, unit: &'static str) {
        let mut p = lock(&self.progress);
        *p = (0, Some(total), unit);
        self.observer.progress(&self.stage.name, p.0, p.1, unit);
    }

    /// Counts this stage's progress in its own unit (documents, tokens) from here on,
    /// instead of the shards [`Self::for_each_shard`] would count: for kinds whose
    /// shards are few and long, such as one per model.
    pub fn count_own_progress(&self, total: u64, unit: &'static str) {
        self.own_progress.store(true, Ordering::SeqCst);
        self.set_progress_total(total, unit);
    }

    pub fn add_progress(&self, n: u64) {
        let mut p = lock(&self.progress);
        p.0 += n;
        self.observer.progress(&self.stage.name, p.0, p.1, p.2);
    }

    /// Replaces the running stage's one-line state (shown beside its progress bar).
    pub fn status(&self, text: &str) {
        self.observer.status(&self.stage.name, text);
    }

    /// Logs a line under the stage's name.
    pub fn log(&self, text: &str) {
        self.observer.log(&self.stage.name, text);
    }

    /// Records durable progress written outside [`Self::for_each_shard`], such as training
    /// checkpoint `index` of `phase`: `dapt status` counts it with the finished shards, and
    /// it is the fault point `shard-done` like a finished shard (`DAPT_FAULT=shard-done#N=abort`).
    pub fn durable_progress(&self, phase: &str, index: u64) -> anyhow::Result<()> {
        let marks = self.dir.shard_marks().join(phase);
        std::fs::create_dir_all(&marks)?;
        atomic_write(&marks.join(format!("{index:09}.json")), b"null")?;
        // Tests abort here at an exact point instead of racing a timer.
        crate::fault::hit("shard-done", "");
        Ok(())
    }

    /// Runs `work(i)` for each shard `0..count` of `phase` not finished by an
    /// earlier attempt, up to `jobs` at a time. A shard is marked finished, with its
    /// result, once `work` returns `Ok`; an interrupted run's finished shards are not
    /// rerun, and their recorded results are returned in their place. `work` must
    /// write its outputs atomically (see [`crate::fsutil`]). The first error stops new
    /// shards and is returned, naming the shard. Results come back in shard order.
    pub fn for_each_shard<T, F>(&self, phase: &str, count: usize, work: F) -> anyhow::Result<Vec<T>>
    where
        T: Serialize + DeserializeOwned + Send,
        F: Fn(usize) -> anyhow::Result<T> + Sync,
    {
        let marks = self.dir.shard_marks().join(phase);
        std::fs::create_dir_all(&marks)?;
        // The count, so a cluster executor can tell which tasks still have work.
        atomic_write(
            &self.dir.shard_marks().join(format!("{phase}.count")),
            count.to_string().as_bytes(),
        )?;
        let mark = |i: usize| marks.join(format!("{i:06}.json"));
        let mut results: Vec<Option<T>> = (0..count)
            .map(|i| {
                std::fs::read(mark(i))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
            })
            .collect();
        let mine = |i: &usize| self.rank.is_none_or(|r| i % r.ranks == r.rank);
        let todo: Vec<usize> = (0..count)
            .filter(|&i| results[i].is_none())
            .filter(mine)
            .collect();
        let skipped = count - todo.len();
        let shard_progress = !self.own_progress.load(Ordering::SeqCst);
        if shard_progress {
            self.set_progress_total(count as u64, "shards");
            self.add_progress(skipped as u64);
        }

        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::new());
        let threads = self.pipeline.jobs.clamp(1, todo.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        let Some(&i) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        // A panicking shard is that shard's error: the others stop
                        // cleanly and the message names the shard.
                        let result = crate::panics::catch(|| {
                            crate::fault::hit("shard-start", &format!("{}.{i}", self.stage.name));
                            work(i)
                        })
                        .unwrap_or_else(|panic| Err(anyhow::anyhow!(panic)))
                        .and_then(|value| {
                            atomic_write(&mark(i), &serde_json::to_vec(&value)?)?;
                            Ok(value)
                        });
                        match result {
                            Ok(value) => {
                                lock(&done).push((i, value));
                                if shard_progress {
                                    self.add_progress(1);
                                }
                                crate::fault::hit("shard-done", "");
                            }
                            Err(e) => {
                                stop.store(true, Ordering::SeqCst);
                                lock(&first_error).get_or_insert(
                                    e.context(format!("{phase} shard {i} of {count}")),
                                );
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        if let Some(rank) = self.rank {
            let done = (0..count).filter(mine).count();
            return Err(ShardsPending {
                rank,
                phase: phase.to_string(),
                done,
                count,
            }
            .into());
        }
        for (i, value) in done.into_inner().unwrap_or_else(|e| e.into_inner()) {
            results[i] = Some(value);
        }
        let mut stats = lock(&self.shards);
        let total = stats.get_or_insert(ShardStats {
            count: 0,
            skipped: 0,
        });
        total.count += count;
        total.skipped += skipped;
        Ok(results
            .into_iter()
            .map(|r| r.expect("every shard has a result"))
            .collect())
    }

    /// The pipeline root, where relative paths in parameters resolve.
    pub fn root(&self) -> &Path {
        &self.pipeline.root
    }
}

/// A poisoned lock only means another shard panicked; its data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How much of a sharded stage ran now and how much an earlier attempt finished.
#[derive(Debug, Clone, Copy)]
pub struct ShardStats {
    pub count: usize,
    pub skipped: usize,
}
