//! Status and runs: which stages are fresh, and running the rest in dependency order.
//!
//! A stage runs as one *attempt*:
//! 1. its `manifest.json` and `failed.json` are deleted (nothing trusts it meanwhile);
//! 2. if `partial/` holds an interrupted attempt with the same fingerprint, the
//!    attempt resumes there (finished shards are skipped); otherwise `partial/` and
//!    the stage's declared outputs are cleared;
//! 3. the kind runs, writing into `partial/out/` (and its declared outputs);
//! 4. on success `partial/out/` replaces `out/` (and `partial/timing/`, the run's
//!    measurements, replaces `timing/`, which is not hashed), outputs are hashed, and the
//!    manifest is written last, atomically; on failure `failed.json` records why.
//!    A panic in the kind is a failure like any other (see [`crate::panics`]).
//!
//! Independent stages run in parallel, up to `[pipeline] jobs`. A stage whose
//! inputs have all finished is re-checked before it starts: if its upstream
//! reproduced the same outputs it is still fresh and does not run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use crate::config::{Pipeline, StageSpec};
use crate::fingerprint::{Ingredients, Reason, Stamper, canonical, output_digest};
use crate::fsutil::remove_path;
use crate::kind::{Observer, Rank, Registry, ShardsPending, StageContext};
use crate::lock::{LockError, WorkdirLock};
use crate::manifest::{Failure, Manifest, StageDir, now_stamp};

/// A stage's state as `dapt status` reports it.
#[derive(Debug, Clone)]
pub enum State {
    Fresh,
    Stale(Vec<Reason>),
    Failed(String),
    /// Never completed; the note says whether an interrupted attempt will resume.
    NeverRun(Option<String>),
}

impl State {
    pub fn label(&self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale(_) => "stale",
            State::Failed(_) => "failed",
            State::NeverRun(_) => "never-run",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            State::Fresh => String::new(),
            State::Stale(reasons) => reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            State::Failed(error) => error.clone(),
            State::NeverRun(note) => note.clone().unwrap_or_default(),
        }
    }
}

/// One stage's evaluation against the files on disk.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    pub state: State,
    /// The fingerprint ingredients now, if every upstream stage is fresh.
    ingredients: Option<Result<Ingredients, String>>,
    manifest: Option<Manifest>,
}

impl Evaluation {
    /// The stage's fingerprint ingredients now, when every upstream stage is fresh.
    pub(crate) fn ingredients(&self) -> Option<&Ingredients> {
        self.ingredients.as_ref()?.as_ref().ok()
    }
}

/// How one stage ended in a run.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran {
        seconds: f64,
        counts: BTreeMap<String, serde_json::Value>,
        shards_resumed: usize,
    },
    Fresh,
    Failed(String),
    /// Not run because an upstream stage failed.
    Blocked(String),
    /// Not started because the run stopped after a failure (no `--keep-going`).
    Skipped,
    /// `--dry-run`: would run, for this reason.
    WouldRun(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ran { .. } => "ran",
            Outcome::Fresh => "fresh",
            Outcome::Failed(_) => "failed",
            Outcome::Blocked(_) => "blocked",
            Outcome::Skipped => "skipped",
            Outcome::WouldRun(_) => "would-run",
        }
    }
}

/// How a cluster task ([`Engine::run_task`]) ended.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    /// The finalising task ran the stage and committed it.
    Ran(Outcome),
    /// The stage was already fresh (e.g. a requeued task after its commit).
    Fresh,
    /// A rank task finished its shards.
    TaskDone(String),
    Failed(String),
}

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Run these and what they need; all stages when empty.
    pub targets: Vec<String>,
    /// Rerun these and everything downstream of them.
    pub from: Vec<String>,
    /// Rerun these even if fresh.
    pub force: Vec<String>,
    pub dry_run: bool,
    pub keep_going: bool,
}

#[derive(Debug)]
pub struct RunSummary {
    /// Stages in the run's scope, in execution order, with how each ended.
    pub stages: Vec<(String, Outcome)>,
    /// Set when this run took over a lock left by a dead run.
    pub took_over_lock: Option<String>,
}

impl RunSummary {
    pub fn failed(&self) -> bool {
        self.stages
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Failed(_) | Outcome::Blocked(_)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown stage `{0}` (see `dapt graph` for the stages of this pipeline)")]
    UnknownStage(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Status and runs for one pipeline.
pub struct Engine<'a> {
    pub pipeline: &'a Pipeline,
    pub registry: &'a Registry,
}

impl<'a> Engine<'a> {
    pub fn new(pipeline: &'a Pipeline, registry: &'a Registry) -> Self {
        Engine { pipeline, registry }
    }

    fn spec(&self, name: &str) -> &'a StageSpec {
        self.pipeline
            .stage(name)
            .expect("stage names come from the validated pipeline")
    }

    fn dir(&self, name: &str) -> StageDir {
        StageDir::new(&self.pipeline.workdir, name)
    }

    /// Every stage's state, in file order.
    pub fn status(&self) -> Vec<(String, State)> {
        let evaluations = self.evaluate_all();
        self.pipeline
            .stages
            .iter()
            .map(|s| (s.name.clone(), evaluations[&s.name].state.clone()))
            .collect()
    }

    pub(crate) fn evaluate_all(&self) -> HashMap<String, Evaluation> {
        let mut known = HashMap::new();
        for name in self.pipeline.graph().topological() {
            let evaluation = self.evaluate(self.spec(&name), &known);
            known.insert(name, evaluation);
        }
        known
    }

    /// Evaluates one stage; every input of it must be in `known`.
    fn evaluate(&self, stage: &StageSpec, known: &HashMap<String, Evaluation>) -> Evaluation {
        let dir = self.dir(&stage.name);
        let manifest = match dir.read_manifest() {
            Ok(m) => m,
            Err(e) => {
                return Evaluation {
                    state: State::Failed(format!("unreadable manifest: {e}")),
                    ingredients: None,
                    manifest: None,
                };
            }
        };
        let mut upstream_reasons = Vec::new();
        let mut digests = BTreeMap::new();
        for input in &stage.inputs {
            match known.get(input) {
                Some(Evaluation {
                    state: State::Fresh,
                    manifest: Some(m),
                    ..
                }) => {
                    digests.insert(input.clone(), m.output_digest.clone());
                }
                other => upstream_reasons.push(Reason::UpstreamNotFresh {
                    stage: input.clone(),
                    state: other.map_or("unknown", |e| e.state.label()),
                }),
            }
        }
        let previous_deps = manifest
            .as_ref()
            .map_or(&[][..], |m| &m.ingredients.deps[..]);
        let ingredients = self.ingredients(stage, digests, previous_deps);

        let Some(m) = &manifest else {
            let state = match dir.read_failure() {
                Ok(Some(f)) => State::Failed(f.error),
                Err(e) => State::Failed(e.to_string()),
                Ok(None) if dir.partial().exists() => State::NeverRun(Some(format!(
                    "interrupted with {} shard(s) or checkpoint(s) kept; the next run resumes",
                    dir.finished_shards()
                ))),
                Ok(None) if !upstream_reasons.is_empty() => State::NeverRun(Some(
                    upstream_reasons
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                )),
                Ok(None) => State::NeverRun(None),
            };
            return Evaluation {
                state,
                ingredients: upstream_reasons.is_empty().then_some(ingredients),
                manifest,
            };
        };

        let mut reasons = Vec::new();
        match &ingredients {
            Ok(now) => {
                let mut now = now.clone();
                if !upstream_reasons.is_empty() {
                    // Upstream digests are unknown until upstream reruns; report that instead.
                    now.upstream = m.ingredients.upstream.clone();
                }
                reasons.extend(now.diff(&m.ingredients));
            }
            Err(error) => reasons.push(Reason::InputsUnavailable {
                error: error.clone(),
            }),
        }
        reasons.extend(upstream_reasons.iter().cloned());
        reasons.extend(Stamper::new(&self.pipeline.root, &m.outputs).check_outputs(&m.outputs));
        Evaluation {
            state: if reasons.is_empty() {
                State::Fresh
            } else {
                State::Stale(reasons)
            },
            ingredients: upstream_reasons.is_empty().then_some(ingredients),
            manifest,
        }
    }

    fn ingredients(
        &self,
        stage: &StageSpec,
        upstream: BTreeMap<String, String>,
        previous_deps: &[crate::fingerprint::FileStamp],
    ) -> Result<Ingredients, String> {
        let kind = self
            .registry
            .get(&stage.kind)
            .ok_or_else(|| format!("unknown kind `{}`", stage.kind))?;
        let paths = kind
            .deps(stage, self.pipeline)
            .map_err(|e| format!("{e:#}"))?;
        let deps = Stamper::new(&self.pipeline.root, previous_deps)
            .stamp_all(&paths)
            .map_err(|e| e.to_string())?;
        Ok(Ingredients {
            kind: stage.kind.clone(),
            kind_version: kind.version(),
            params: canonical(&toml::Value::Table(stage.params.clone())),
            corpora: stage
                .corpora
                .iter()
                .filter_map(|c| {
                    let table = self.pipeline.corpora.get(c)?;
                    Some((c.clone(), canonical(&toml::Value::Table(table.clone()))))
                })
                .collect(),
            upstream,
            deps,
        })
    }

    /// Runs the stale stages of the selection; see the module docs.
    /// The stages a run with `opts` covers, in execution order, and those it reruns even
    /// if fresh.
    pub(crate) fn scope(
        &self,
        opts: &RunOptions,
    ) -> Result<(Vec<String>, BTreeSet<String>), RunError> {
        let graph = self.pipeline.graph();
        for name in opts.targets.iter().chain(&opts.from).chain(&opts.force) {
            if self.pipeline.stage(name).is_none() {
                return Err(RunError::UnknownStage(name.clone()));
            }
        }
        let mut scope = if opts.targets.is_empty() {
            graph.names().map(str::to_string).collect()
        } else {
            graph.with_ancestors(&opts.targets)
        };
        let from = graph.with_descendants(&opts.from);
        scope.extend(from.iter().cloned());
        let forced: BTreeSet<String> = from.into_iter().chain(opts.force.iter().cloned()).collect();
        let order: Vec<String> = graph
            .topological()
            .into_iter()
            .filter(|n| scope.contains(n))
            .collect();
        Ok((order, forced))
    }

    pub fn run(&self, opts: &RunOptions, observer: &dyn Observer) -> Result<RunSummary, RunError> {
        let (order, forced) = self.scope(opts)?;

        if opts.dry_run {
            return Ok(self.dry_run(&order, &forced));
        }
        let lock = WorkdirLock::acquire(&self.pipeline.workdir)?;

        let mut known = self.evaluate_all();
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        let mut pending: Vec<String> = order.clone();
        let mut running = 0usize;
        let mut stopping = false;
        let (tx, rx) = mpsc::channel::<(String, Result<Manifest, String>, f64)>();

        std::thread::scope(|scope| {
            loop {
                // Start every stage whose inputs are done, up to `jobs` at once.
                let mut i = 0;
                while i < pending.len() && running < self.pipeline.jobs && !stopping {
                    let name = pending[i].clone();
                    let stage = self.spec(&name);
                    let inputs: Vec<&String> = stage
                        .inputs
                        .iter()
                        .filter(|n| scope_has(&order, n))
                        .collect();
                    if let Some(bad) = inputs.iter().find(|n| {
                        matches!(
                            outcomes.get(**n),
                            Some(Outcome::Failed(_) | Outcome::Blocked(_))
                        )
                    }) {
                        outcomes.insert(
                            name,
                            Outcome::Blocked(format!("upstream {bad} did not finish")),
                        );
                        pending.remove(i);
                        continue;
                    }
                    if !inputs.iter().all(|n| {
                        matches!(outcomes.get(*n), Some(Outcome::Ran { .. } | Outcome::Fresh))
                    }) {
                        i += 1;
                        continue;
                    }
                    pending.remove(i);
                    let evaluation = self.evaluate(stage, &known);
                    let why = if forced.contains(&name) {
                        Reason::Forced.to_string()
                    } else {
                        match &evaluation.state {
                            State::Fresh => {
                                outcomes.insert(name.clone(), Outcome::Fresh);
                                known.insert(name, evaluation);
                                continue;
                            }
                            State::NeverRun(None) => "never run".to_string(),
                            state => state.reason(),
                        }
                    };
                    let ingredients = evaluation
                        .ingredients
                        .clone()
                        .unwrap_or_else(|| Err("upstream is not fresh".into()));
                    known.insert(name.clone(), evaluation);
                    observer.started(&name, &why);
                    running += 1;
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let t0 = Instant::now();
                        let result = self.attempt(stage, ingredients, observer);
                        let _ = tx.send((stage.name.clone(), result, t0.elapsed().as_secs_f64()));
                    });
                }
                if running == 0 {
                    break;
                }
                let Ok((name, result, seconds)) = rx.recv() else {
                    break;
                };
                running -= 1;
                let outcome = match result {
                    Ok(manifest) => {
                        let outcome = Outcome::Ran {
                            seconds,
                            counts: manifest.counts.clone(),
                            shards_resumed: manifest.shards_resumed,
                        };
                        known.insert(
                            name.clone(),
                            Evaluation {
                                state: State::Fresh,
                                ingredients: None,
                                manifest: Some(manifest),
                            },
                        );
                        outcome
                    }
                    Err(error) => {
                        stopping |= !opts.keep_going;
                        known.insert(
                            name.clone(),
                            Evaluation {
                                state: State::Failed(error.clone()),
                                ingredients: None,
                                manifest: None,
                            },
                        );
                        Outcome::Failed(error)
                    }
                };
                observer.finished(&name, &outcome);
                outcomes.insert(name, outcome);
            }
        });
        // `pending` is in topological order, so inputs are settled before dependents.
        for name in pending {
            let failed_input = self.spec(&name).inputs.iter().find(|n| {
                matches!(
                    outcomes.get(*n),
                    Some(Outcome::Failed(_) | Outcome::Blocked(_))
                )
            });
            let outcome = match failed_input {
                Some(input) => Outcome::Blocked(format!("upstream {input} did not finish")),
                None => Outcome::Skipped,
            };
            outcomes.insert(name, outcome);
        }
        Ok(RunSummary {
            stages: order
                .into_iter()
                .map(|n| {
                    let o = outcomes.remove(&n).unwrap_or(Outcome::Skipped);
                    (n, o)
                })
                .collect(),
            took_over_lock: lock.taken_over_from.clone(),
        })
    }

    fn dry_run(&self, order: &[String], forced: &BTreeSet<String>) -> RunSummary {
        let known = self.evaluate_all();
        let mut will_run: BTreeSet<&str> = BTreeSet::new();
        let mut stages = Vec::new();
        for name in order {
            let state = &known[name].state;
            let changed_upstream: Vec<&str> = self
                .spec(name)
                .inputs
                .iter()
                .filter(|i| will_run.contains(i.as_str()))
                .map(String::as_str)
                .collect();
            let why = if forced.contains(name) {
                Some(Reason::Forced.to_string())
            } else if !matches!(state, State::Fresh) {
                Some(match state {
                    State::NeverRun(None) => "never run".to_string(),
                    s => s.reason(),
                })
            } else if !changed_upstream.is_empty() {
                Some(format!(
                    "if upstream {} output changes",
                    changed_upstream.join(", ")
                ))
            } else {
                None
            };
            let outcome = match why {
                Some(why) => {
                    will_run.insert(name);
                    Outcome::WouldRun(why)
                }
                None => Outcome::Fresh,
            };
            stages.push((name.clone(), outcome));
        }
        RunSummary {
            stages,
            took_over_lock: None,
        }
    }

    /// One attempt at a stage (see the module docs); returns its manifest.
    fn attempt(
        &self,
        stage: &StageSpec,
        ingredients: Result<Ingredients, String>,
        observer: &dyn Observer,
    ) -> Result<Manifest, String> {
        let dir = self.dir(&stage.name);
        let fingerprint = ingredients
            .as_ref()
            .map(Ingredients::fingerprint)
            .unwrap_or_default();
        // A panic inside the kind fails this stage alone (see `panics`).
        let result = ingredients.and_then(|ing| {
            crate::panics::catch(|| self.attempt_inner(stage, ing, &dir, observer))
                .and_then(|r| r.map_err(|e| format!("{e:#}")))
        });
        if let Err(error) = &result {
            let failure = Failure {
                stage: stage.name.clone(),
                fingerprint,
                error: error.clone(),
                at: now_stamp(),
            };
            if let Err(e) = failure.write(&dir) {
                return Err(format!("{error} (and recording the failure failed: {e})"));
            }
        }
        result
    }

    fn attempt_inner(
        &self,
        stage: &StageSpec,
        ingredients: Ingredients,
        dir: &StageDir,
        observer: &dyn Observer,
    ) -> anyhow::Result<Manifest> {
        let kind = self
            .registry
            .get(&stage.kind)
            .ok_or_else(|| anyhow::anyhow!("unknown kind `{}`", stage.kind))?;
        let started_at = now_stamp();
        let t0 = Instant::now();
        let fingerprint = ingredients.fingerprint();
        let (resumed, declared) = self.prepare(stage, kind, &fingerprint, dir, true)?;
        let ctx = self.context(stage, dir, resumed, observer, None);
        crate::fault::hit("kind-run", &stage.name);
        let report = kind.run(&ctx)?;
        for out in &declared {
            anyhow::ensure!(
                out.exists(),
                "declared output {} was not produced; the stage must create every path in `outs`",
                out.display()
            );
        }
        if let Some(c) = report.conservation
            && let Err(difference) = c.check()
        {
            anyhow::bail!("{difference}; refusing to mark the stage done");
        }

        // Commit: managed outputs into place, then the manifest, last.
        crate::fault::hit("commit-start", &stage.name);
        remove_path(&dir.out())?;
        crate::fault::hit("commit-out-removed", &stage.name);
        std::fs::rename(dir.partial_out(), dir.out())?;
        remove_path(&dir.timing())?;
        if dir.partial_timing().is_dir() {
            std::fs::rename(dir.partial_timing(), dir.timing())?;
        }
        let mut output_paths = vec![dir.out()];
        output_paths.extend(declared);
        let outputs = Stamper::new(&self.pipeline.root, &[]).stamp_all(&output_paths)?;
        let shards = *ctx.shards.lock().unwrap_or_else(|e| e.into_inner());
        let manifest = Manifest {
            dapt_version: env!("CARGO_PKG_VERSION").to_string(),
            stage: stage.name.clone(),
            fingerprint,
            ingredients,
            output_digest: output_digest(&outputs),
            outputs,
            counts: report.counts,
            conservation: report.conservation,
            started_at,
            seconds: t0.elapsed().as_secs_f64(),
            peak_rss_mb: crate::manifest::peak_rss_mb(),
            shards: shards.map_or(0, |s| s.count),
            shards_resumed: shards.map_or(0, |s| s.skipped),
        };
        crate::fault::hit("manifest-commit", &stage.name);
        manifest.write(dir)?;
        crate::fault::hit("manifest-written", &stage.name);
        remove_path(&dir.partial())?;
        Ok(manifest)
    }

    /// Starts an attempt in `dir`: deletes the manifest (and the last failure, when
    /// `clear_failure`), keeps `partial/` if it holds an attempt with this fingerprint
    /// (returns `resumed`), else clears it and the declared outputs. Returns the
    /// declared outputs as absolute paths.
    fn prepare(
        &self,
        stage: &StageSpec,
        kind: &dyn crate::kind::StageKind,
        fingerprint: &str,
        dir: &StageDir,
        clear_failure: bool,
    ) -> anyhow::Result<(bool, Vec<PathBuf>)> {
        remove_path(&dir.manifest())?;
        if clear_failure {
            remove_path(&dir.failure())?;
        }
        let resumed = std::fs::read_to_string(dir.partial_fingerprint())
            .is_ok_and(|f| f == fingerprint)
            && dir.partial_out().is_dir();
        let declared: Vec<PathBuf> = kind
            .declared_outputs(stage, self.pipeline)
            .into_iter()
            .map(|p| self.pipeline.root.join(p))
            .collect();
        if !resumed {
            remove_path(&dir.partial())?;
            for out in &declared {
                remove_path(out)?;
            }
            std::fs::create_dir_all(dir.partial_out())?;
            std::fs::create_dir_all(dir.partial_timing())?;
            crate::fsutil::atomic_write(&dir.partial_fingerprint(), fingerprint.as_bytes())?;
        }
        // Room for `failed.json` should the disk fill up during the attempt.
        dir.reserve_failure_space();
        Ok((resumed, declared))
    }

    fn context<'c>(
        &'c self,
        stage: &'c StageSpec,
        dir: &StageDir,
        resumed: bool,
        observer: &'c dyn Observer,
        rank: Option<Rank>,
    ) -> StageContext<'c> {
        StageContext {
            pipeline: self.pipeline,
            stage,
            out_dir: dir.partial_out(),
            timing_dir: dir.partial_timing(),
            resumed,
            dir: dir.clone(),
            workdir: self.pipeline.workdir.clone(),
            observer,
            progress: Mutex::new((0, None, "items")),
            own_progress: std::sync::atomic::AtomicBool::new(false),
            shards: Mutex::new(None),
            rank,
        }
    }

    /// One task of a stage on a cluster (see [`crate::slurm`]). Every input must be
    /// fresh. With `rank`, the task does its share of the stage's first sharded phase
    /// in the stage's `partial/` (shared with the other tasks; the first to start
    /// prepares it, under a lock) and commits nothing. Without, it is the stage's
    /// finalising task: a whole attempt, as a local run makes it, which skips the shards
    /// the rank tasks finished; a stage already fresh is left alone.
    pub fn run_task(
        &self,
        name: &str,
        rank: Option<Rank>,
        force: bool,
        observer: &dyn Observer,
    ) -> Result<TaskOutcome, RunError> {
        let stage = self
            .pipeline
            .stage(name)
            .ok_or_else(|| RunError::UnknownStage(name.to_string()))?;
        let known = self.evaluate_all();
        if let Some(input) = stage
            .inputs
            .iter()
            .find(|i| !matches!(known[i.as_str()].state, State::Fresh))
        {
            return Ok(TaskOutcome::Failed(format!(
                "upstream stage `{input}` is not fresh ({}); its job should have finished first",
                known[input.as_str()].state.label()
            )));
        }
        let evaluation = &known[name];
        if !force && matches!(evaluation.state, State::Fresh) {
            return Ok(TaskOutcome::Fresh);
        }
        let ingredients = evaluation
            .ingredients
            .clone()
            .unwrap_or_else(|| Err("upstream is not fresh".into()));
        let Some(rank) = rank else {
            let t0 = Instant::now();
            return Ok(match self.attempt(stage, ingredients, observer) {
                Ok(manifest) => TaskOutcome::Ran(Outcome::Ran {
                    seconds: t0.elapsed().as_secs_f64(),
                    counts: manifest.counts,
                    shards_resumed: manifest.shards_resumed,
                }),
                Err(error) => TaskOutcome::Failed(error),
            });
        };
        let dir = self.dir(name);
        let fingerprint = ingredients
            .as_ref()
            .map(Ingredients::fingerprint)
            .unwrap_or_default();
        let result = ingredients.map_err(anyhow::Error::msg).and_then(|_| {
            let kind = self
                .registry
                .get(&stage.kind)
                .ok_or_else(|| anyhow::anyhow!("unknown kind `{}`", stage.kind))?;
            std::fs::create_dir_all(&dir.root)?;
            let resumed = {
                // The tasks of one stage start together: one prepares `partial/`, the
                // rest find it prepared. The last failure stays: it may be a sibling's.
                let _guard = crate::lock::FileLock::exclusive(&dir.root.join("task.lock"))?;
                self.prepare(stage, kind, &fingerprint, &dir, false)?.0
            };
            let ctx = self.context(stage, &dir, resumed, observer, Some(rank));
            crate::panics::catch(|| kind.run(&ctx))
                .map_err(anyhow::Error::msg)
                .and_then(|r| r)
        });
        match result {
            Err(e) if e.chain().any(|c| c.is::<ShardsPending>()) => {
                Ok(TaskOutcome::TaskDone(format!("{e}")))
            }
            Ok(_) => Ok(TaskOutcome::TaskDone(format!(
                "task {} of {}: the kind has no sharded phase; the finalising task does the work",
                rank.rank, rank.ranks
            ))),
            Err(e) => {
                let job = crate::slurm::job_label().map_or(String::new(), |j| format!(" ({j})"));
                let error = format!("task {} of {}{job}: {e:#}", rank.rank, rank.ranks);
                let failure = Failure {
                    stage: name.to_string(),
                    fingerprint,
                    error: error.clone(),
                    at: now_stamp(),
                };
                if let Err(e) = failure.write(&dir) {
                    return Ok(TaskOutcome::Failed(format!(
                        "{error} (and recording the failure failed: {e})"
                    )));
                }
                Ok(TaskOutcome::Failed(error))
            }
        }
    }

    /// Deletes the state and outputs of `stages` (all when empty) so they run again.
    pub fn clean(&self, stages: &[String]) -> Result<Vec<String>, RunError> {
        for name in stages {
            if self.pipeline.stage(name).is_none() {
                return Err(RunError::UnknownStage(name.clone()));
            }
        }
        let _lock = WorkdirLock::acquire(&self.pipeline.workdir)?;
        let names: Vec<String> = if stages.is_empty() {
            self.pipeline
                .stages
                .iter()
                .map(|s| s.name.clone())
                .collect()
        } else {
            stages.to_vec()
        };
        for name in &names {
            let stage = self.spec(name);
            if let Some(kind) = self.registry.get(&stage.kind) {
                for out in kind.declared_outputs(stage, self.pipeline) {
                    remove_path(&self.pipeline.root.join(out))?;
                }
            }
            remove_path(&self.dir(name).root)?;
        }
        Ok(names)
    }
}

fn scope_has(order: &[String], name: &str) -> bool {
    order.iter().any(|n| n == name)
}
