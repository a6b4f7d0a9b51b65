//! `kind = "command"`: a shell command with declared file deps and outs, like a DVC
//! stage. It runs with `sh -c` in the pipeline file's directory, with
//! `DAPT_STAGE`, `DAPT_OUT` (the stage's managed output directory) and, when
//! `shards = N` is set, once per shard with `DAPT_SHARD` (0-based) and `DAPT_SHARDS`.
//! Finished shards are not rerun after an interruption.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use dapt_dag::{ParamError, Pipeline, RunReport, StageContext, StageKind, StageSpec, parse_params};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Params {
    cmd: String,
    /// Files (or directories) the command reads, relative to the pipeline file.
    #[serde(default)]
    deps: Vec<String>,
    /// Files (or directories) the command must produce, relative to the pipeline file.
    #[serde(default)]
    outs: Vec<String>,
    /// Run the command once per shard, `0..shards`.
    #[serde(default)]
    shards: Option<usize>,
    /// Extra environment variables.
    #[serde(default)]
    env: BTreeMap<String, String>,
}

pub struct CommandKind;

impl CommandKind {
    fn params(stage: &StageSpec) -> anyhow::Result<Params> {
        parse_params(&stage.params).map_err(|errors| {
            let messages: Vec<String> = errors
                .into_iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect();
            anyhow::anyhow!("invalid parameters: {}", messages.join("; "))
        })
    }
}

impl StageKind for CommandKind {
    fn name(&self) -> &'static str {
        "command"
    }

    fn sharded(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        let p: Params = parse_params(params)?;
        if p.shards == Some(0) {
            return Err(vec![ParamError::invalid("shards", "must be at least 1")]);
        }
        Ok(())
    }

    fn deps(&self, stage: &StageSpec, pipeline: &Pipeline) -> anyhow::Result<Vec<PathBuf>> {
        Ok(Self::params(stage)?
            .deps
            .iter()
            .map(|d| pipeline.root.join(d))
            .collect())
    }

    fn declared_outputs(&self, stage: &StageSpec, _: &Pipeline) -> Vec<PathBuf> {
        Self::params(stage)
            .map(|p| p.outs.iter().map(PathBuf::from).collect())
            .unwrap_or_default()
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let params = Self::params(ctx.stage)?;
        let logs = ctx.out_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let run_one = |shard: Option<(usize, usize)>| -> anyhow::Result<()> {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(&params.cmd)
                .current_dir(ctx.root())
                .env("DAPT_STAGE", &ctx.stage.name)
                .env("DAPT_OUT", &ctx.out_dir)
                .envs(&params.env);
            let log_name = match shard {
                Some((i, n)) => {
                    command
                        .env("DAPT_SHARD", i.to_string())
                        .env("DAPT_SHARDS", n.to_string());
                    format!("shard-{i:06}.log")
                }
                None => "command.log".to_string(),
            };
            let output = command
                .output()
                .with_context(|| format!("cannot start `sh -c {}`", params.cmd))?;
            let mut log = output.stdout.clone();
            log.extend_from_slice(&output.stderr);
            dapt_dag::fsutil::atomic_write(&logs.join(&log_name), &log)?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                bail!(
                    "command `{}` {} (full log: {}){}{}",
                    params.cmd,
                    describe_status(output.status),
                    logs.join(&log_name).display(),
                    if tail.is_empty() { "" } else { "\n" },
                    tail.join("\n")
                );
            }
            Ok(())
        };
        let mut counts = BTreeMap::new();
        match params.shards {
            Some(n) => {
                ctx.for_each_shard("command", n, |i| run_one(Some((i, n))))?;
                counts.insert("shards".into(), n.into());
            }
            None => run_one(None)?,
        }
        Ok(RunReport {
            counts,
            conservation: None,
        })
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "failed".into(),
    }
}
