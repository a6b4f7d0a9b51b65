//! `dapt run --executor slurm` (submission, `--wait`), `dapt slurm-task` (what the jobs
//! run) and the Slurm column of `dapt status`; the executor itself is
//! `dapt_dag::slurm`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dapt_dag::slurm::{self, StageSubmit};
use dapt_dag::{Engine, Pipeline, Rank, Registry, RunError, RunOptions, State, TaskOutcome};

use crate::progress;

pub fn submit(
    pipeline: &Pipeline,
    registry: &Registry,
    options: &RunOptions,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let Some(config) = &pipeline.slurm else {
        eprintln!(
            "error: --executor slurm needs an [executor.slurm] table in {} (its keys: partition, account, time, cpus_per_task, mem, gpus, max_array_size, dapt, sbatch)",
            pipeline.file.display()
        );
        return Ok(ExitCode::from(2));
    };
    let dapt = match &config.dapt {
        Some(path) => pipeline.root.join(path),
        None => std::env::current_exe()?,
    };
    let engine = Engine::new(pipeline, registry);
    let started = Instant::now();
    let stages = match slurm::submit(&engine, options, config, &dapt) {
        Ok(s) => s,
        Err(e @ RunError::Lock(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e.into()),
    };
    let mut rows = vec![["STAGE".to_string(), "SLURM".into(), "JOBS".into()]];
    let mut followed = Vec::new();
    for (stage, submitted) in &stages {
        let (what, jobs) = match submitted {
            StageSubmit::Fresh => ("fresh".to_string(), String::new()),
            StageSubmit::Queued(s) | StageSubmit::AlreadyQueued(s) => {
                followed.push(stage.clone());
                let jobs: Vec<String> = s
                    .jobs
                    .iter()
                    .map(|j| match j.of {
                        Some(of) => format!(
                            "{} (task{} {} of {of})",
                            j.id,
                            if j.ranks.len() == 1 { "" } else { "s" },
                            j.ranks
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                        None => j.id.clone(),
                    })
                    .collect();
                let what = if matches!(submitted, StageSubmit::Queued(_)) {
                    "submitted"
                } else {
                    "already queued"
                };
                (what.to_string(), jobs.join(", "))
            }
        };
        rows.push([stage.clone(), what, jobs]);
    }
    print!("{}", crate::table(&rows));
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow(pipeline, registry, &followed, started)
}

/// `--wait`: prints each followed stage's Slurm state when it changes, until none of
/// their jobs is left in the queue; then the stages' states. Exit 1 unless all are fresh.
fn follow(
    pipeline: &Pipeline,
    registry: &Registry,
    stages: &[String],
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let poll = std::env::var("DAPT_SLURM_POLL_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let engine = Engine::new(pipeline, registry);
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let queue = slurm::queue()?;
        let active = slurm::active(pipeline, &queue);
        let status: Vec<(String, State)> = engine.status();
        let states: BTreeMap<String, State> = status.iter().cloned().collect();
        for stage in stages {
            let line = slurm::describe(pipeline, stage, &states[stage], &queue, &states)
                .unwrap_or_default();
            if last.get(stage) != Some(&line) {
                println!(
                    "[{:>8.1}s] {stage}: {line}",
                    started.elapsed().as_secs_f64()
                );
                last.insert(stage.clone(), line);
            }
        }
        if !active.iter().any(|(s, _)| stages.contains(s)) {
            let mut failed = Vec::new();
            let mut rows = vec![["STAGE".to_string(), "STATE".into(), "WHY".into()]];
            for (stage, state) in status.iter().filter(|(s, _)| stages.contains(s)) {
                if !matches!(state, State::Fresh) {
                    failed.push(stage.clone());
                }
                let why = state.reason().lines().next().unwrap_or("").to_string();
                rows.push([stage.clone(), state.label().into(), why]);
            }
            print!("{}", crate::table(&rows));
            if failed.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "error: stage(s) did not finish: {}; fix the cause and run again (finished work is kept)",
                failed.join(", ")
            );
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(Duration::from_secs_f64(poll));
    }
}

/// `dapt slurm-task`: one rank's shards, or the stage's finalising attempt.
pub fn task(
    pipeline: &Pipeline,
    registry: &Registry,
    stage: &str,
    rank: Option<(usize, usize)>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let rank = match rank {
        Some((rank, ranks)) if rank < ranks => Some(Rank { rank, ranks }),
        Some((rank, ranks)) => {
            eprintln!("error: --rank {rank} is not below --ranks {ranks}");
            return Ok(ExitCode::from(2));
        }
        None => None,
    };
    let observer = progress::RunProgress::new();
    let engine = Engine::new(pipeline, registry);
    let label = slurm::job_label().unwrap_or_else(|| "outside Slurm".into());
    match engine.run_task(stage, rank, force, &observer)? {
        TaskOutcome::Ran(outcome) => {
            eprintln!("{stage}: finished ({label})");
            let summary = dapt_dag::RunSummary {
                stages: vec![(stage.to_string(), outcome)],
                took_over_lock: None,
            };
            print!("{}", progress::summary_table(&summary));
            Ok(ExitCode::SUCCESS)
        }
        TaskOutcome::Fresh => {
            eprintln!("{stage}: fresh, nothing to do ({label})");
            Ok(ExitCode::SUCCESS)
        }
        TaskOutcome::TaskDone(what) => {
            eprintln!("{stage}: {what} ({label})");
            Ok(ExitCode::SUCCESS)
        }
        TaskOutcome::Failed(error) => {
            eprintln!("error: {stage} failed ({label}): {error}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A local run while Slurm jobs of this workdir are queued would run their stages twice.
pub fn refuse_while_queued(pipeline: &Pipeline) -> Option<ExitCode> {
    let recorded = pipeline
        .stages
        .iter()
        .any(|s| slurm::read_submission(&pipeline.workdir, &s.name).is_some());
    if !recorded {
        return None;
    }
    let queue = slurm::queue().ok()?;
    let active = slurm::active(pipeline, &queue);
    if active.is_empty() {
        return None;
    }
    let stages: Vec<&str> = active.iter().map(|(s, _)| s.as_str()).collect();
    eprintln!(
        "error: Slurm jobs of stage(s) {} are still queued or running; wait for them (`dapt run --executor slurm --wait` follows them) or scancel them before running here",
        stages.join(", ")
    );
    Some(ExitCode::from(3))
}

/// The Slurm state of every stage with a recorded submission (empty where Slurm is not
/// installed or nothing was submitted).
pub fn describe_all(pipeline: &Pipeline, status: &[(String, State)]) -> BTreeMap<String, String> {
    let recorded = pipeline
        .stages
        .iter()
        .any(|s| slurm::read_submission(&pipeline.workdir, &s.name).is_some());
    if !recorded {
        return BTreeMap::new();
    }
    let queue = slurm::queue().unwrap_or_default();
    let states: BTreeMap<String, State> = status.iter().cloned().collect();
    status
        .iter()
        .filter_map(|(stage, state)| {
            slurm::describe(pipeline, stage, state, &queue, &states).map(|d| (stage.clone(), d))
        })
        .collect()
}
