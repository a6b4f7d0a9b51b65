//! The Slurm executor on a real slurmd: a one-node cluster on this machine, started by
//! scripts/slurm-local.sh (as CI does; the script installs Debian's Slurm 22.05 if it is
//! missing, which needs root).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{Sandbox, stderr, stdout};

/// Starts the local cluster once per test binary and returns its `SLURM_CONF`.
fn slurm_conf() -> &'static PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::var_os("DAPT_SLURM_DIR")
            .map_or_else(|| PathBuf::from("/tmp/dapt-slurm"), PathBuf::from);
        let out = Command::new(root.join("scripts/slurm-local.sh"))
            .arg("start")
            .env("DAPT_SLURM_DIR", &dir)
            .output()
            .expect("run scripts/slurm-local.sh");
        assert!(
            out.status.success(),
            "scripts/slurm-local.sh start failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        dir.join("slurm.conf")
    })
}

fn dapt(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = sb.command(args);
    cmd.env("SLURM_CONF", slurm_conf())
        .env("DAPT_SLURM_POLL_SECS", "0.5")
        .env_remove("DAPT_FAULT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dapt")
}

fn expect(out: std::process::Output, code: i32, what: &str) -> std::process::Output {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

const DATA_STAGES: [&str; 7] = [
    "ingest_fin",
    "ingest_gen",
    "clean",
    "split",
    "dedup",
    "tokenizer",
    "tokenize",
];

/// Reuters (3 files) and BBC News through every data stage, each sharded stage dealt to
/// 3 tasks on Slurm.
fn data_pipeline() -> String {
    format!(
        "[pipeline]\nname = \"slurm\"\njobs = 2\nseed = 3\ndata_root = \"{}\"\n\n\
         [executor.slurm]\ntime = \"00:10:00\"\nmem = \"2G\"\ncpus_per_task = 1\n\n\
         [corpora.reuters]\ndomain = \"financial\"\nreader = \"reuters-sgml\"\npaths = [\"financial/reuters21578/reut2-01[3-5].sgm\"]\n\n\
         [corpora.bbc]\ndomain = \"general\"\nreader = \"folder-labels\"\nencoding = \"utf-8-or-latin-1\"\npaths = [\"general/bbc_news/*/*.txt\"]\n\n\
         [stages.ingest_fin]\nkind = \"ingest\"\ncorpora = [\"reuters\"]\nshard_mb = 1\ntasks = 3\n\n\
         [stages.ingest_gen]\nkind = \"ingest\"\ncorpora = [\"bbc\"]\nshard_mb = 1\ntasks = 3\n\n\
         [stages.clean]\nkind = \"clean\"\ninputs = [\"ingest_fin\", \"ingest_gen\"]\ntasks = 3\n\n\
         [stages.split]\nkind = \"split\"\ninputs = [\"clean\"]\ntasks = 3\n\n\
         [stages.dedup]\nkind = \"dedup\"\ninputs = [\"split\"]\ntasks = 3\n\n\
         [stages.tokenizer]\nkind = \"tokenizer\"\ninputs = [\"dedup\"]\nvocab_size = 600\nsample_mb = 1\n\n\
         [stages.tokenize]\nkind = \"tokenize\"\ninputs = [\"dedup\", \"tokenizer\"]\ntokenizer = \"tokenizer\"\ntasks = 3\n",
        dapt_testdata::mirror().display()
    )
}

fn manifest(sb: &Sandbox, stage: &str) -> serde_json::Value {
    let path = sb.path(&format!(".dapt/stages/{stage}/manifest.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}", path.display());
    }))
    .unwrap()
}

fn submission(sb: &Sandbox, stage: &str) -> serde_json::Value {
    let path = sb.path(&format!(".dapt/stages/{stage}/slurm.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}", path.display());
    }))
    .unwrap()
}

/// Every file under `out/` of each stage, relative path and bytes.
fn outputs(sb: &Sandbox, stages: &[&str]) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, prefix: &str, into: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
            if e.path().is_dir() {
                walk(&e.path(), &name, into);
            } else {
                into.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    for stage in stages {
        walk(
            &sb.path(&format!(".dapt/stages/{stage}/out")),
            stage,
            &mut files,
        );
    }
    files
}

fn assert_same_outputs(a: &Sandbox, b: &Sandbox, stages: &[&str]) {
    for stage in stages {
        assert_eq!(
            manifest(a, stage)["output_digest"],
            manifest(b, stage)["output_digest"],
            "{stage}: output digests differ"
        );
    }
    let (left, right) = (outputs(a, stages), outputs(b, stages));
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&left), names(&right));
    for ((name, x), (_, y)) in left.iter().zip(&right) {
        assert!(x == y, "{name} differs between the local and the Slurm run");
    }
}

fn status(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = expect(dapt(sb, &["status", "--json"], &[]), 0, "dapt status");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status_of(sb: &Sandbox, stage: &str) -> serde_json::Value {
    status(sb)
        .into_iter()
        .find(|row| row["stage"] == stage)
        .unwrap_or_else(|| panic!("no {stage} in dapt status"))
}

#[test]
fn data_stages_on_slurm_match_the_local_run_and_a_failed_task_reruns_alone() {
    let local = Sandbox::new(&data_pipeline());
    expect(dapt(&local, &["run"], &[]), 0, "local run");

    // 1. The whole data pipeline through Slurm: arrays of 3 tasks, then finalising jobs.
    let cluster = Sandbox::new(&data_pipeline());
    let out = expect(
        dapt(&cluster, &["run", "--executor", "slurm", "--wait"], &[]),
        0,
        "slurm run",
    );
    let log = stdout(&out);
    for stage in DATA_STAGES {
        assert!(log.contains(&format!("{stage}: done")), "{stage}:\n{log}");
        let jobs = submission(&cluster, stage)["jobs"].clone();
        let roles: Vec<&str> = jobs
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["role"].as_str().unwrap())
            .collect();
        if stage == "tokenizer" {
            assert_eq!(roles, ["finalise"], "{stage}: {jobs}");
        } else {
            assert_eq!(roles, ["tasks", "finalise"], "{stage}: {jobs}");
            assert_eq!(jobs[0]["ranks"], serde_json::json!([0, 1, 2]), "{stage}");
        }
    }
    // Each rank task logged its share; the finalising job found them finished.
    let logs = std::fs::read_dir(cluster.path(".dapt/stages/clean/slurm"))
        .unwrap()
        .count();
    assert_eq!(logs, 4, "3 task logs and the finalising job's");
    assert!(
        manifest(&cluster, "clean")["shards_resumed"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_same_outputs(&local, &cluster, &DATA_STAGES);
    // Nothing is stale: a second submission queues nothing.
    let again = expect(
        dapt(&cluster, &["run", "--executor", "slurm"], &[]),
        0,
        "second submission",
    );
    assert!(!stdout(&again).contains("submitted"), "{}", stdout(&again));

    // 2. One task of `split` fails: the stage fails naming the task, what depends on it
    // is cancelled, and the rerun submits only that task and the stages after it.
    let failing = Sandbox::new(&data_pipeline());
    let out = expect(
        dapt(
            &failing,
            &["run", "--executor", "slurm", "--wait"],
            &[("DAPT_FAULT", "shard-start/split.1=panic")],
        ),
        1,
        "slurm run with a failing task",
    );
    let split = status_of(&failing, "split");
    assert_eq!(split["state"], "failed", "{split}");
    let reason = split["reason"].as_str().unwrap();
    assert!(
        reason.contains("task 1 of 3")
            && reason.contains("Slurm job")
            && reason.contains("split shard 1"),
        "{reason}"
    );
    for stage in ["dedup", "tokenizer", "tokenize"] {
        let row = status_of(&failing, stage);
        assert_eq!(row["state"], "never-run", "{row}");
        assert!(
            row["slurm"].as_str().unwrap().starts_with("cancelled"),
            "{stage} should be cancelled, not left pending: {row}\n{}",
            stdout(&out)
        );
    }
    let out = expect(
        dapt(&failing, &["run", "--executor", "slurm", "--wait"], &[]),
        0,
        "rerun after the failure",
    );
    let table = stdout(&out);
    for stage in ["ingest_fin", "ingest_gen", "clean"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(stage) && l.contains("fresh")),
            "{stage} was resubmitted:\n{table}"
        );
    }
    let split = submission(&failing, "split");
    assert_eq!(split["jobs"][0]["role"], "tasks", "{split}");
    assert_eq!(split["jobs"][0]["ranks"], serde_json::json!([1]), "{split}");
    assert_same_outputs(&local, &failing, &DATA_STAGES);
}

/// A tiny GPT trained on BBC business and tech news (tests/support's training pipeline,
/// longer, so a cancel lands mid-run).
fn training_pipeline() -> String {
    support::training_pipeline(&dapt_testdata::mirror())
        .replacen(
            "[corpora.business]",
            "[executor.slurm]\ntime = \"00:10:00\"\n\n[corpora.business]",
            1,
        )
        .replacen("token_budget = 16_384", "token_budget = 262_144", 1)
}

#[test]
fn a_training_job_cancelled_after_a_checkpoint_resumes_from_it() {
    let reference = Sandbox::new(&training_pipeline());
    expect(dapt(&reference, &["run", "base"], &[]), 0, "local run");

    let sb = Sandbox::new(&training_pipeline());
    expect(dapt(&sb, &["run", "tokenize"], &[]), 0, "data stages");
    expect(
        dapt(&sb, &["run", "--executor", "slurm", "base"], &[]),
        0,
        "submit base",
    );
    let job = submission(&sb, "base")["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // While the job is queued or running, a second submission queues nothing and a
    // local run refuses.
    let again = expect(
        dapt(&sb, &["run", "--executor", "slurm", "base"], &[]),
        0,
        "second submission",
    );
    assert!(
        stdout(&again)
            .lines()
            .any(|l| l.starts_with("base") && l.contains("already queued") && l.contains(&job)),
        "{}",
        stdout(&again)
    );
    let local = expect(
        dapt(&sb, &["run", "base"], &[]),
        3,
        "local run beside Slurm",
    );
    assert!(
        stderr(&local).contains("still queued or running"),
        "{}",
        stderr(&local)
    );
    let marks = sb.path(".dapt/stages/base/partial/shards/checkpoints");
    let started = Instant::now();
    while std::fs::read_dir(&marks).map_or(0, |d| d.count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint within 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cancel = Command::new("scancel")
        .arg(&job)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    // Wait for the job to leave the queue.
    loop {
        let row = status_of(&sb, "base");
        if !row["slurm"].as_str().unwrap_or("").starts_with("running")
            && !row["slurm"].as_str().unwrap_or("").starts_with("pending")
        {
            assert_ne!(row["state"], "fresh", "the cancel came too late: {row}");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let kept = std::fs::read_dir(&marks).unwrap().count();
    assert!(kept >= 2, "{kept} checkpoint(s) kept");

    expect(
        dapt(&sb, &["run", "--executor", "slurm", "--wait", "base"], &[]),
        0,
        "resubmit base",
    );
    let second = submission(&sb, "base")["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, job);
    let log =
        std::fs::read_to_string(sb.path(&format!(".dapt/stages/base/slurm/{second}.log"))).unwrap();
    assert!(
        log.contains("resumed from the checkpoint of step"),
        "the resubmitted job should resume from a checkpoint:\n{log}"
    );
    // Bit-exact resume: the same weights as an uninterrupted run.
    let weights = |s: &Sandbox| {
        std::fs::read(s.path(".dapt/stages/base/out/model/model.safetensors")).unwrap()
    };
    assert!(
        weights(&sb) == weights(&reference),
        "resumed weights differ"
    );
}
