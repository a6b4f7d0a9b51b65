//! `dapt`: domain-adaptive pre-training as a resumable DAG.
//!
//! Exit codes: 0 success; 1 a stage failed or another runtime error; 2 the pipeline
//! file (or the command line) is invalid; 3 another run holds the work directory.

mod alloc;
mod cluster;
mod export;
mod generate;
mod inspect;
mod kinds;
mod plan;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dapt_dag::{Engine, Pipeline, Registry, RunError, RunOptions, State};

/// See the workspace Cargo.toml: training reuses large buffers every step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dapt",
    version,
    about = "Domain-adaptive pre-training as a resumable DAG"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct PipelineArg {
    /// The pipeline file.
    #[arg(
        short = 'c',
        long = "config",
        default_value = "pipeline.toml",
        global = true
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the stale stages (all, or STAGES and what they need) in dependency order.
    Run {
        /// Stages to bring up to date, with everything upstream of them.
        stages: Vec<String>,
        /// Rerun this stage and everything downstream of it.
        #[arg(long, value_name = "STAGE")]
        from: Vec<String>,
        /// Rerun these stages even if fresh.
        #[arg(long, value_name = "STAGE", num_args = 1..)]
        force: Vec<String>,
        /// Show what would run, and why, without running anything.
        #[arg(long)]
        dry_run: bool,
        /// After a failure, finish the branches that do not depend on it.
        #[arg(long)]
        keep_going: bool,
        /// Where stages run: here, or as Slurm jobs (`[executor.slurm]` in the pipeline
        /// file); `slurm` returns once the jobs are queued.
        #[arg(long, value_enum, default_value = "local")]
        executor: Executor,
        /// With `--executor slurm`: follow the jobs until they end, then exit 1 if a stage
        /// did not finish.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// One Slurm task of a stage (what `run --executor slurm` submits): with `--rank`, the
    /// rank's shards; without, the stage's finalising attempt.
    #[command(hide = true)]
    SlurmTask {
        stage: String,
        #[arg(long, requires = "ranks")]
        rank: Option<usize>,
        #[arg(long, requires = "rank")]
        ranks: Option<usize>,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Show every stage as fresh, stale (with why), failed (with the error) or never-run.
    Status {
        /// Print a JSON array of {stage, state, reason}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Print the stage graph as a tree, or as Graphviz DOT.
    Graph {
        #[arg(long)]
        dot: bool,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Show the schema, row count, per-column summary and first rows of a parquet
    /// shard, or of every shard under a directory.
    Inspect {
        path: PathBuf,
        /// How many rows to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
    /// Estimate the training stages: parameters, 6ND FLOPs, Chinchilla-optimal tokens and
    /// fitted loss, epochs per domain, and wall time from measured throughput.
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Sample text from the model a stage holds (temperature 0: greedy), with a KV cache.
    Generate {
        /// A `model`, `pretrain` or `continue` stage.
        stage: String,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 48)]
        max_tokens: usize,
        /// 0 picks the most likely token at each step.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Nucleus sampling: draw from the smallest set of tokens holding this much mass.
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Copy a stage's model (a Hugging Face folder) to DIR with a model card that includes
    /// the pipeline's evaluation scores of it.
    Export {
        stage: String,
        dir: PathBuf,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
    /// Delete the outputs and state of STAGES (all when none), so they run again.
    Clean {
        stages: Vec<String>,
        #[command(flatten)]
        pipeline: PipelineArg,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    Local,
    Slurm,
}

fn main() -> ExitCode {
    alloc::keep_freed_memory_mapped();
    let cli = Cli::parse();
    let registry = kinds::registry();
    match run(cli.command, &registry) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load(arg: &PipelineArg, registry: &Registry) -> Result<Pipeline, ExitCode> {
    Pipeline::load(&arg.config, registry).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "{} problem(s) in {}; nothing was run",
            errors.errors.len(),
            errors.file.display()
        );
        ExitCode::from(2)
    })
}

fn run(cmd: Cmd, registry: &Registry) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Generate {
            stage,
            prompt,
            max_tokens,
            temperature,
            top_p,
            seed,
            pipeline,
        } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let request = generate::Request {
                stage,
                prompt,
                sampling: dapt_model::Sampling {
                    max_tokens,
                    temperature,
                    top_p,
                    seed,
                    stop: Vec::new(),
                },
            };
            generate::run(&pipeline, &request, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Export {
            stage,
            dir,
            pipeline,
        } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let card = export::export(&pipeline, &stage, &dir)?;
            println!(
                "exported `{stage}` to {} (with the scores of {} evaluate stage(s))",
                dir.display(),
                card.evaluation.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plan { json, pipeline } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let plans = plan::plan(&pipeline)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                print!("{}", plan::render(&plans));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            stages,
            from,
            force,
            dry_run,
            keep_going,
            executor,
            wait,
            pipeline,
        } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let options = RunOptions {
                targets: stages,
                from,
                force,
                dry_run,
                keep_going,
            };
            if executor == Executor::Slurm && !dry_run {
                return cluster::submit(&pipeline, registry, &options, wait);
            }
            if wait {
                eprintln!("error: --wait follows Slurm jobs; it needs --executor slurm");
                return Ok(ExitCode::from(2));
            }
            if !dry_run && let Some(code) = cluster::refuse_while_queued(&pipeline) {
                return Ok(code);
            }
            let observer = progress::RunProgress::new();
            let summary = match Engine::new(&pipeline, registry).run(&options, &observer) {
                Ok(s) => s,
                Err(e @ RunError::Lock(_)) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(3));
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(holder) = &summary.took_over_lock {
                eprintln!("note: took over the lock left by a run that died ({holder})");
            }
            print!("{}", progress::summary_table(&summary));
            if summary.failed() {
                let failed: Vec<&str> = summary
                    .stages
                    .iter()
                    .filter(|(_, o)| matches!(o, dapt_dag::Outcome::Failed(_)))
                    .map(|(n, _)| n.as_str())
                    .collect();
                eprintln!(
                    "error: stage(s) failed: {}; fix the cause and run again (finished stages are kept)",
                    failed.join(", ")
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::SlurmTask {
            stage,
            rank,
            ranks,
            force,
            pipeline,
        } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            cluster::task(&pipeline, registry, &stage, rank.zip(ranks), force)
        }
        Cmd::Status { json, pipeline } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let status = Engine::new(&pipeline, registry).status();
            if json {
                let slurm = cluster::describe_all(&pipeline, &status);
                let rows: Vec<serde_json::Value> = status
                    .iter()
                    .map(|(stage, state)| {
                        let mut row = serde_json::json!({"stage": stage, "state": state.label(), "reason": state.reason()});
                        if let Some(jobs) = slurm.get(stage) {
                            row["slurm"] = jobs.clone().into();
                        }
                        row
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let slurm = cluster::describe_all(&pipeline, &status);
                let mut rows = vec![[
                    "STAGE".to_string(),
                    "KIND".into(),
                    "STATE".into(),
                    "WHY".into(),
                ]];
                for (stage, state) in &status {
                    let kind = pipeline.stage(stage).map_or("", |s| s.kind.as_str());
                    let mut why = match state {
                        State::NeverRun(None) => String::new(),
                        s => s.reason().lines().next().unwrap_or("").to_string(),
                    };
                    if let Some(jobs) = slurm.get(stage) {
                        why = if why.is_empty() {
                            format!("slurm: {jobs}")
                        } else {
                            format!("slurm: {jobs}; {why}")
                        };
                    }
                    rows.push([stage.clone(), kind.into(), state.label().into(), why]);
                }
                print!("{}", table(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Graph { dot, pipeline } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            print!(
                "{}",
                if dot {
                    graph_dot(&pipeline)
                } else {
                    graph_tree(&pipeline)
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect { path, rows } => {
            print!("{}", inspect::inspect(&path, rows)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Clean { stages, pipeline } => {
            let pipeline = match load(&pipeline, registry) {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            match Engine::new(&pipeline, registry).clean(&stages) {
                Ok(cleaned) => {
                    println!("cleaned: {}", cleaned.join(", "));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ RunError::Lock(_)) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(3))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The stage graph as a tree from the stages with no inputs; a stage reached again
/// through another path is shown once and then marked `(*)`, as `cargo tree` does.
fn graph_tree(pipeline: &Pipeline) -> String {
    struct Tree<'a> {
        pipeline: &'a Pipeline,
        graph: dapt_dag::graph::Graph,
        seen: std::collections::HashSet<String>,
        out: String,
    }
    impl Tree<'_> {
        /// `branch` is `None` for a root, else whether `name` is its parent's last child.
        fn walk(&mut self, name: &str, prefix: &str, branch: Option<bool>) {
            let kind = self.pipeline.stage(name).map_or("", |s| s.kind.as_str());
            let (connector, child_prefix) = match branch {
                None => ("", prefix.to_string()),
                Some(true) => ("└── ", format!("{prefix}    ")),
                Some(false) => ("├── ", format!("{prefix}│   ")),
            };
            let repeat = !self.seen.insert(name.to_string());
            let mark = if repeat { " (*)" } else { "" };
            self.out
                .push_str(&format!("{prefix}{connector}{name} ({kind}){mark}\n"));
            if repeat {
                return;
            }
            let children: Vec<String> = self.graph.dependents(name).map(str::to_string).collect();
            for (i, child) in children.iter().enumerate() {
                self.walk(child, &child_prefix, Some(i + 1 == children.len()));
            }
        }
    }
    let mut tree = Tree {
        pipeline,
        graph: pipeline.graph(),
        seen: Default::default(),
        out: String::new(),
    };
    for stage in pipeline.stages.iter().filter(|s| s.inputs.is_empty()) {
        tree.walk(&stage.name, "", None);
    }
    tree.out
}

fn graph_dot(pipeline: &Pipeline) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
        pipeline.name
    );
    for stage in &pipeline.stages {
        out.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            stage.name, stage.name, stage.kind
        ));
        for input in &stage.inputs {
            out.push_str(&format!("  \"{input}\" -> \"{}\";\n", stage.name));
        }
    }
    out.push_str("}\n");
    out
}

/// Left-aligned columns; the last column is not padded.
pub(crate) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c + 1 == N {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
