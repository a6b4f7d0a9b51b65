//! The Slurm executor: `dapt run --executor slurm` turns each stale stage into jobs,
//! after datatrove's `SlurmPipelineExecutor` (completion markers per rank, arrays over the
//! unfinished ranks only, dependencies by job id).
//!
//! - A stage whose kind works in shards ([`crate::StageKind::sharded`]) and has
//!   `tasks = N > 1` becomes a job array over the ranks that still have unfinished
//!   shards (the shard marks of `partial/` tell; all `N` on a first attempt). Rank `r`
//!   runs `dapt slurm-task STAGE --rank r --ranks N`: shard `i` of the kind's first
//!   sharded phase is its iff `i % N == r` ([`crate::kind::Rank`]), so the outputs never
//!   depend on `N`.
//! - Every stage then gets one finalising job, `dapt slurm-task STAGE`, after its array
//!   (`afterok`): a whole attempt through the same code as a local run
//!   ([`crate::Engine::run_task`]), which finds the rank tasks' shards finished, runs
//!   what is left, and commits the manifest. A stage without an array (training,
//!   evaluation, or `tasks = 1`) is this one job.
//! - Jobs depend on their upstream stages' finalising jobs (`afterok`), with
//!   `--kill-on-invalid-dep=yes`: when a task fails, every job after it is cancelled
//!   instead of pending forever.
//! - Training kinds ([`crate::StageKind::accelerated`]) get `--gpus` (when set) and
//!   `--requeue`; a requeued or resubmitted job resumes from its newest checkpoint.
//! - The job ids go to `STAGE/slurm.json`, written under the workdir lock before it is
//!   released. A second `dapt run --executor slurm` skips stages whose jobs are still in
//!   the queue (and makes their dependents wait for them), so nothing runs twice; a local
//!   `dapt run` refuses while any are.
//! - Task logs: `STAGE/slurm/JOBID_TASK.log` (arrays) and `STAGE/slurm/JOBID.log`.
//! - `dapt status` reads the queue (`squeue`, no `slurmdbd` needed) for each stage's
//!   recorded jobs; a failed task records `failed.json` itself, naming its rank and job.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::config::{Pipeline, StageSpec};
use crate::fingerprint::Ingredients;
use crate::kind::ParamError;
use crate::lock::WorkdirLock;
use crate::manifest::{StageDir, now_stamp};
use crate::runner::{Engine, RunError, RunOptions, State};

/// `[executor.slurm]` in pipeline.toml.
///
/// ```toml
/// [executor.slurm]
/// partition = "cpu"          # sbatch --partition
/// account = "my-lab"         # --account
/// time = "04:00:00"          # --time, per job
/// cpus_per_task = 8          # --cpus-per-task
/// mem = "32G"                # --mem
/// gpus = 1                   # --gpus, for training jobs only
/// max_array_size = 1000      # a stage with more ranks is split into several arrays
/// dapt = "/shared/bin/dapt"  # the binary the jobs run (default: this one)
/// sbatch = { all = ["--qos=normal"], pretrain = ["--constraint=a100"] }  # extra flags, per kind
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub gpus: Option<u32>,
    pub max_array_size: Option<usize>,
    pub dapt: Option<PathBuf>,
    #[serde(default)]
    pub sbatch: BTreeMap<String, Vec<String>>,
}

impl SlurmConfig {
    pub const KEYS: [&str; 9] = [
        "partition",
        "account",
        "time",
        "cpus_per_task",
        "mem",
        "gpus",
        "max_array_size",
        "dapt",
        "sbatch",
    ];

    pub fn check(&self) -> Result<(), Vec<ParamError>> {
        let mut errors = Vec::new();
        if self.max_array_size == Some(0) {
            errors.push(ParamError::invalid("max_array_size", "must be at least 1"));
        }
        if self.cpus_per_task == Some(0) {
            errors.push(ParamError::invalid("cpus_per_task", "must be at least 1"));
        }
        for (kind, flags) in &self.sbatch {
            if let Some(bad) = flags.iter().find(|f| !f.starts_with('-')) {
                errors.push(ParamError::invalid(
                    format!("sbatch.{kind}"),
                    format!("`{bad}` is not an sbatch flag (flags start with `-`)"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn max_array_size(&self) -> usize {
        self.max_array_size.unwrap_or(1000)
    }
}

/// What one submission of a stage queued: `STAGE/slurm.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub submitted_at: String,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Job {
    pub id: String,
    /// `tasks` (an array over `ranks` of `of`) or `finalise`.
    pub role: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<usize>,
}

impl Submission {
    fn finalise(&self) -> Option<&str> {
        self.jobs
            .iter()
            .find(|j| j.role == "finalise")
            .map(|j| j.id.as_str())
    }

    pub fn ids(&self) -> Vec<&str> {
        self.jobs.iter().map(|j| j.id.as_str()).collect()
    }
}

fn record_path(dir: &StageDir) -> PathBuf {
    dir.root.join("slurm.json")
}

pub fn read_submission(workdir: &Path, stage: &str) -> Option<Submission> {
    let path = record_path(&StageDir::new(workdir, stage));
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// How a stage stands with Slurm after a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum StageSubmit {
    /// Newly queued: these jobs.
    Queued(Submission),
    /// Jobs of an earlier submission are still in the queue; nothing was submitted.
    AlreadyQueued(Submission),
    /// Fresh, nothing to do.
    Fresh,
}

/// One job in the queue (`squeue`): array tasks appear one per task, or as one pending
/// row for the array.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// The job id as recorded at submission (an array's job id for its tasks).
    pub job: String,
    /// The array task id, or the pending range (`[0-2]`), if an array.
    pub task: Option<String>,
    pub state: String,
    pub reason: String,
}

/// Every job of this user in the queue, by job id. An error when `squeue` cannot run
/// (no Slurm here), with what to do about it.
pub fn queue() -> anyhow::Result<HashMap<String, Vec<Queued>>> {
    let out = Command::new("squeue")
        .args(["-h", "--me", "-o", "%F|%K|%T|%r"])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("cannot run squeue ({e}): is Slurm installed, and SLURM_CONF set?")
        })?;
    anyhow::ensure!(
        out.status.success(),
        "squeue failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let mut jobs: HashMap<String, Vec<Queued>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.trim().split('|').collect();
        if let [job, task, state, reason] = fields[..] {
            jobs.entry(job.to_string()).or_default().push(Queued {
                job: job.to_string(),
                task: (task != "N/A").then(|| task.to_string()),
                state: state.to_string(),
                reason: reason.to_string(),
            });
        }
    }
    Ok(jobs)
}

/// Stages with jobs still in `queue`, with those jobs.
pub fn active(
    pipeline: &Pipeline,
    queue: &HashMap<String, Vec<Queued>>,
) -> Vec<(String, Vec<Queued>)> {
    pipeline
        .stages
        .iter()
        .filter_map(|s| {
            let submission = read_submission(&pipeline.workdir, &s.name)?;
            let queued: Vec<Queued> = submission
                .ids()
                .iter()
                .filter_map(|id| queue.get(*id))
                .flatten()
                .cloned()
                .collect();
            (!queued.is_empty()).then(|| (s.name.clone(), queued))
        })
        .collect()
}

/// A stage's Slurm state for `dapt status`: its queued or running jobs, or how the last
/// submission ended when none is left in the queue.
pub fn describe(
    pipeline: &Pipeline,
    stage: &str,
    state: &State,
    queue: &HashMap<String, Vec<Queued>>,
    states: &BTreeMap<String, State>,
) -> Option<String> {
    let submission = read_submission(&pipeline.workdir, stage)?;
    let queued: Vec<&Queued> = submission
        .ids()
        .iter()
        .filter_map(|id| queue.get(*id))
        .flatten()
        .collect();
    let name = |q: &Queued| match &q.task {
        Some(t) => format!("{}_{t}", q.job),
        None => q.job.clone(),
    };
    let running: Vec<String> = queued
        .iter()
        .filter(|q| q.state == "RUNNING" || q.state == "COMPLETING")
        .map(|q| name(q))
        .collect();
    if !running.is_empty() {
        // Progress: the shards (or checkpoints) the stage's tasks have finished so far.
        let finished = StageDir::new(&pipeline.workdir, stage).finished_shards();
        let progress = if finished > 0 {
            format!(", {finished} shard(s) or checkpoint(s) finished")
        } else {
            String::new()
        };
        return Some(format!("running (job {}{progress})", running.join(", ")));
    }
    if let Some(q) = queued.first() {
        let jobs: Vec<String> = queued.iter().map(|q| name(q)).collect();
        return Some(format!(
            "{} (job {}{})",
            q.state.to_lowercase(),
            jobs.join(", "),
            if q.reason.is_empty() || q.reason == "None" {
                String::new()
            } else {
                format!(": {}", q.reason)
            }
        ));
    }
    let ids = submission.ids().join(", ");
    Some(match state {
        State::Fresh => format!("done (job {ids})"),
        State::Failed(_) => format!("failed (job {ids})"),
        _ => {
            let spec = pipeline.stage(stage)?;
            match spec
                .inputs
                .iter()
                .find(|i| matches!(states.get(*i), Some(State::Failed(_) | State::NeverRun(_))))
            {
                Some(input) => format!("cancelled: upstream {input} did not finish (job {ids})"),
                None => format!("ended without finishing: cancelled or lost (job {ids})"),
            }
        }
    })
}

/// Submits the stale stages of the selection (see the module docs). Returns each stage
/// in the run's scope with what was done for it.
pub fn submit(
    engine: &Engine,
    opts: &RunOptions,
    config: &SlurmConfig,
    dapt: &Path,
) -> Result<Vec<(String, StageSubmit)>, RunError> {
    let pipeline = engine.pipeline;
    let (order, forced) = engine.scope(opts)?;
    let _lock = WorkdirLock::acquire(&pipeline.workdir)?;
    let queue = queue().map_err(|e| RunError::Io(std::io::Error::other(format!("{e:#}"))))?;
    let known = engine.evaluate_all();
    let mut submitted: HashMap<String, String> = HashMap::new();
    let mut result = Vec::new();
    for name in order {
        let stage = pipeline.stage(&name).expect("scope names stages");
        let dir = StageDir::new(&pipeline.workdir, &name);
        if let Some(earlier) = read_submission(&pipeline.workdir, &name)
            && earlier.ids().iter().any(|id| queue.contains_key(*id))
        {
            if let Some(id) = earlier.finalise() {
                submitted.insert(name.clone(), id.to_string());
            }
            result.push((name, StageSubmit::AlreadyQueued(earlier)));
            continue;
        }
        let after: Vec<String> = stage
            .inputs
            .iter()
            .filter_map(|i| submitted.get(i).cloned())
            .collect();
        let force = forced.contains(&name);
        if !force && after.is_empty() && matches!(known[&name].state, State::Fresh) {
            result.push((name, StageSubmit::Fresh));
            continue;
        }
        let kind = engine
            .registry
            .get(&stage.kind)
            .expect("validated pipelines name registered kinds");
        let sub = |e: anyhow::Error| RunError::Io(std::io::Error::other(format!("{e:#}")));
        std::fs::create_dir_all(dir.root.join("slurm"))?;
        crate::fsutil::remove_path(&dir.failure())?;
        let mut jobs = Vec::new();
        let mut finalise_after = after.clone();
        if kind.sharded() && stage.tasks > 1 {
            let ranks = unfinished_ranks(&dir, stage, known[&name].ingredients());
            for chunk in ranks.chunks(config.max_array_size()) {
                let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
                let id = sbatch(
                    config,
                    pipeline,
                    stage,
                    &after,
                    Some(&list.join(",")),
                    &task_command(dapt, pipeline, stage, force, Some(stage.tasks)),
                    false,
                )
                .map_err(sub)?;
                finalise_after.push(id.clone());
                jobs.push(Job {
                    id,
                    role: "tasks".into(),
                    ranks: chunk.to_vec(),
                    of: Some(stage.tasks),
                });
            }
        }
        let id = sbatch(
            config,
            pipeline,
            stage,
            &finalise_after,
            None,
            &task_command(dapt, pipeline, stage, force, None),
            kind.accelerated(),
        )
        .map_err(sub)?;
        jobs.push(Job {
            id: id.clone(),
            role: "finalise".into(),
            ranks: Vec::new(),
            of: None,
        });
        let submission = Submission {
            submitted_at: now_stamp(),
            jobs,
        };
        crate::fsutil::atomic_write(
            &record_path(&dir),
            &serde_json::to_vec_pretty(&submission).map_err(std::io::Error::other)?,
        )?;
        submitted.insert(name.clone(), id);
        result.push((name, StageSubmit::Queued(submission)));
    }
    Ok(result)
}

/// The ranks that still have work: on a resumed attempt (same fingerprint), those with
/// an unfinished shard in a phase that has started; else every rank.
fn unfinished_ranks(
    dir: &StageDir,
    stage: &StageSpec,
    ingredients: Option<&Ingredients>,
) -> Vec<usize> {
    let all: Vec<usize> = (0..stage.tasks).collect();
    let resumed = ingredients.is_some_and(|i| {
        std::fs::read_to_string(dir.partial_fingerprint()).is_ok_and(|f| f == i.fingerprint())
    });
    if !resumed {
        return all;
    }
    let Ok(entries) = std::fs::read_dir(dir.shard_marks()) else {
        return all;
    };
    let mut todo = std::collections::BTreeSet::new();
    let mut phases = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let (Some(phase), Some("count")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let Some(count) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
        else {
            return all;
        };
        phases += 1;
        let marks = dir.shard_marks().join(phase);
        for i in 0..count {
            if !marks.join(format!("{i:06}.json")).exists() {
                todo.insert(i % stage.tasks);
            }
        }
    }
    if phases == 0 {
        return all;
    }
    todo.into_iter().collect()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn task_command(
    dapt: &Path,
    pipeline: &Pipeline,
    stage: &StageSpec,
    force: bool,
    ranks: Option<usize>,
) -> String {
    let config = std::path::absolute(&pipeline.file).unwrap_or_else(|_| pipeline.file.clone());
    let mut cmd = format!(
        "exec {} slurm-task -c {} {}",
        quote(&dapt.to_string_lossy()),
        quote(&config.to_string_lossy()),
        quote(&stage.name)
    );
    if let Some(n) = ranks {
        cmd.push_str(&format!(" --rank \"$SLURM_ARRAY_TASK_ID\" --ranks {n}"));
    }
    if force {
        cmd.push_str(" --force");
    }
    cmd
}

fn sbatch(
    config: &SlurmConfig,
    pipeline: &Pipeline,
    stage: &StageSpec,
    after: &[String],
    array: Option<&str>,
    command: &str,
    accelerated: bool,
) -> anyhow::Result<String> {
    let logs = StageDir::new(&pipeline.workdir, &stage.name)
        .root
        .join("slurm");
    let mut args: Vec<String> = vec![
        "--parsable".into(),
        format!("--job-name=dapt-{}-{}", pipeline.name, stage.name),
        format!("--chdir={}", pipeline.root.display()),
        "--kill-on-invalid-dep=yes".into(),
    ];
    match array {
        Some(list) => {
            args.push(format!("--array={list}"));
            args.push(format!("--output={}/%A_%a.log", logs.display()));
        }
        None => args.push(format!("--output={}/%j.log", logs.display())),
    }
    if !after.is_empty() {
        args.push(format!("--dependency=afterok:{}", after.join(":")));
    }
    let options = [
        ("--partition", config.partition.clone()),
        ("--account", config.account.clone()),
        ("--time", config.time.clone()),
        (
            "--cpus-per-task",
            config.cpus_per_task.map(|c| c.to_string()),
        ),
        ("--mem", config.mem.clone()),
    ];
    for (flag, value) in options {
        if let Some(v) = value {
            args.push(format!("{flag}={v}"));
        }
    }
    if accelerated {
        args.push("--requeue".into());
        if let Some(gpus) = config.gpus {
            args.push(format!("--gpus={gpus}"));
        }
    }
    for key in ["all", stage.kind.as_str()] {
        args.extend(config.sbatch.get(key).into_iter().flatten().cloned());
    }
    args.push(format!("--wrap={command}"));
    let out = Command::new("sbatch").args(&args).output().map_err(|e| {
        anyhow::anyhow!("cannot run sbatch ({e}): is Slurm installed, and SLURM_CONF set?")
    })?;
    anyhow::ensure!(
        out.status.success(),
        "sbatch for stage `{}` failed ({}): {}\n  sbatch {}",
        stage.name,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        args.join(" ")
    );
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    anyhow::ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch for stage `{}` printed no job id: {stdout:?}",
        stage.name
    );
    Ok(id)
}

/// `Slurm job 12_3` for a task's messages, from the environment Slurm gives a job.
pub fn job_label() -> Option<String> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(job), Some(task)) => Some(format!("Slurm job {job}_{task}")),
        _ => var("SLURM_JOB_ID").map(|j| format!("Slurm job {j}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
