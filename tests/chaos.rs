//! Fault-injection campaign: the whole test pipeline (data stages, a short pretrain and
//! continue, evaluate, report) is killed at seeded moments and at the dangerous named
//! points (a parquet shard's finish, a checkpoint write, a manifest commit, the lock
//! hand-over), then rerun to completion. Every output file must equal an uninterrupted
//! run's byte for byte, and no stage that had finished before the kill may run again.
//! A workdir on a full disk fails with the path named, and completes once space is freed.
//!
//! `cargo test --test chaos` runs the short form (a few kills); `just chaos` runs the
//! campaign (`DAPT_CHAOS_KILLS=20`, seed `DAPT_CHAOS_SEED`), printing a table of kill
//! points, reruns, files compared and differences, and writing it to
//! `target/chaos/campaign.json`.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

/// Every file under every stage's `out/`, by path relative to the workdir.
fn outputs(sb: &Sandbox) -> BTreeMap<String, Vec<u8>> {
    let stages = sb.path(".dapt/stages");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&stages).unwrap() {
        let out = entry.unwrap().path().join("out");
        if out.is_dir() {
            let stage = out.parent().unwrap().file_name().unwrap().to_string_lossy();
            collect_files(&out, &format!("{stage}/out"), &mut files);
        }
    }
    files
}

fn collect_files(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{prefix}/{}", path.file_name().unwrap().to_string_lossy());
        if path.is_dir() {
            collect_files(&path, &name, files);
        } else {
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
}

/// `started_at` of every stage with a manifest: a finished stage that ran again would
/// have a new one.
fn finished(sb: &Sandbox) -> BTreeMap<String, String> {
    let mut done = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(sb.path(".dapt/stages")) else {
        return done;
    };
    for entry in entries {
        let dir = entry.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) {
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            done.insert(
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                m["started_at"].as_str().unwrap().to_string(),
            );
        }
    }
    done
}

/// A seeded number in `0..bound` (blake3 of seed and index: no generator to keep).
fn seeded(seed: u64, index: u64, bound: u64) -> u64 {
    let digest = blake3::hash(format!("chaos/{seed}/{index}").as_bytes());
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap()) % bound.max(1)
}

#[derive(Debug, Clone)]
enum Kill {
    /// `DAPT_FAULT=…=abort`: the process dies at a named point.
    At(String),
    /// SIGKILL after this long.
    After(Duration),
}

impl Kill {
    fn label(&self) -> String {
        match self {
            Kill::At(rule) => rule.trim_end_matches("=abort").to_string(),
            Kill::After(d) => format!("SIGKILL at {:.2}s", d.as_secs_f64()),
        }
    }
}

/// The named points, each at a seeded visit, then seeded moments over the reference run.
fn plan(kills: usize, seed: u64, reference: Duration) -> Vec<Kill> {
    let named = [
        // Shard finishes of the data stages: ingest's two, split's two, the sentiment set's.
        format!("parquet-finish#{}=abort", 1 + seeded(seed, 0, 5)),
        // base and financial save 4 checkpoints each.
        format!("checkpoint-write#{}=abort", 1 + seeded(seed, 1, 8)),
        // Between `out/` in place and the manifest written: the narrowest window.
        "manifest-commit/base=abort".to_string(),
        // The next run's hand-over of the lock (the first thing a run does).
        "lock-handover=abort".to_string(),
    ];
    let mut plan: Vec<Kill> = named.into_iter().map(Kill::At).take(kills).collect();
    let ms = reference.as_millis() as u64;
    for i in plan.len()..kills {
        // Within the first 80% of the uninterrupted run's time, so the kill lands.
        let at = ms / 20 + seeded(seed, 100 + i as u64, ms * 3 / 4);
        plan.push(Kill::After(Duration::from_millis(at)));
    }
    plan
}

struct Row {
    kill: String,
    killed_after_s: f64,
    finished_before: usize,
    rerun_s: f64,
    stages_rerun: usize,
    files_compared: usize,
    differences: Vec<String>,
}

/// Runs the pipeline in a fresh sandbox until `kill` stops it.
fn kill_once(
    mirror: &Path,
    kill: &Kill,
    reference_time: Duration,
) -> (Sandbox, std::process::ExitStatus, Duration) {
    let sb = Sandbox::new(&evaluated_pipeline(mirror));
    let mut command = sb.command(&["run"]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    if let Kill::At(rule) = kill {
        command.env("DAPT_FAULT", rule);
    }
    if matches!(kill, Kill::At(rule) if rule.starts_with("lock-handover")) {
        // The hand-over happens at a run's start: kill a second run there, after a
        // first one was itself killed half-way with the lock held.
        let mut first = sb.command(&["run"]);
        let mut first = first.stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(reference_time / 2);
        first.kill().unwrap();
        first.wait().unwrap();
    }
    let t = Instant::now();
    let mut child = command.spawn().unwrap();
    let status = match kill {
        Kill::At(_) => child.wait().unwrap(),
        Kill::After(delay) => {
            let deadline = t + *delay;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() >= deadline {
                    child.kill().unwrap();
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    (sb, status, t.elapsed())
}

fn campaign(kills: usize, seed: u64) -> Vec<Row> {
    let mirror = dapt_testdata::mirror();
    let reference = Sandbox::new(&evaluated_pipeline(&mirror));
    let t0 = Instant::now();
    reference.dapt_expect(&["run"], 0);
    let reference_time = t0.elapsed();
    let expected = outputs(&reference);
    assert!(expected.len() > 20, "{} output files", expected.len());

    let mut rows = Vec::new();
    for mut kill in plan(kills, seed, reference_time) {
        // A seeded moment can fall after a run that went faster than the reference:
        // then the same moment halved, in a fresh sandbox.
        let (sb, killed_after) = loop {
            let (sb, status, killed_after) = kill_once(&mirror, &kill, reference_time);
            match &kill {
                Kill::After(delay) if status.success() && *delay > Duration::from_millis(50) => {
                    kill = Kill::After(*delay / 2);
                }
                _ => {
                    assert!(
                        !status.success(),
                        "{}: the run finished before the kill",
                        kill.label()
                    );
                    break (sb, killed_after);
                }
            }
        };
        let before = finished(&sb);

        let t = Instant::now();
        let out = sb.dapt_expect(&["run"], 0);
        let rerun = t.elapsed();
        let after = finished(&sb);
        for (stage, started) in &before {
            assert_eq!(
                &after[stage],
                started,
                "{}: stage {stage} had finished before the kill and ran again\n{}",
                kill.label(),
                stdout(&out)
            );
        }
        let got = outputs(&sb);
        let mut differences: Vec<String> = expected
            .iter()
            .filter(|(path, bytes)| got.get(*path) != Some(bytes))
            .map(|(path, _)| path.clone())
            .collect();
        differences.extend(
            got.keys()
                .filter(|p| !expected.contains_key(*p))
                .map(|p| format!("{p} (extra)")),
        );
        rows.push(Row {
            kill: kill.label(),
            killed_after_s: killed_after.as_secs_f64(),
            finished_before: before.len(),
            rerun_s: rerun.as_secs_f64(),
            stages_rerun: after.len() - before.len(),
            files_compared: expected.len(),
            differences,
        });
    }
    print_campaign(&rows, reference_time, seed);
    rows
}

fn print_campaign(rows: &[Row], reference: Duration, seed: u64) {
    println!(
        "chaos campaign, seed {seed}: uninterrupted run {:.1} s\n\
         | kill point | killed after (s) | stages finished before | rerun (s) | stages rerun | files compared | differences |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        reference.as_secs_f64()
    );
    for r in rows {
        println!(
            "| {} | {:.2} | {} | {:.1} | {} | {} | {} |",
            r.kill,
            r.killed_after_s,
            r.finished_before,
            r.rerun_s,
            r.stages_rerun,
            r.files_compared,
            r.differences.len()
        );
    }
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "kill": r.kill, "killed_after_s": r.killed_after_s,
                "stages_finished_before": r.finished_before, "rerun_s": r.rerun_s,
                "stages_rerun": r.stages_rerun, "files_compared": r.files_compared,
                "differences": r.differences,
            })
        })
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../chaos");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("campaign.json"),
            serde_json::to_vec_pretty(&serde_json::json!({
                "seed": seed, "uninterrupted_s": reference.as_secs_f64(), "kills": json,
            }))
            .unwrap(),
        );
    }
}

#[test]
fn killed_at_any_moment_the_pipeline_reruns_to_identical_outputs() {
    let kills = std::env::var("DAPT_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed = std::env::var("DAPT_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let rows = campaign(kills, seed);
    assert_eq!(rows.len(), kills);
    for r in &rows {
        assert!(
            r.differences.is_empty(),
            "after `{}`, these outputs differ from the uninterrupted run: {:?}",
            r.kill,
            r.differences
        );
    }
}

/// Mounts a tmpfs of `size` (`mount`'s syntax: `512m`, `2400k`) at `dir`, or resizes
/// the one there (CI runs as root).
fn mount_tmpfs(dir: &Path, size: &str, remount: bool) -> bool {
    let options = if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    };
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

/// Bytes in use on the filesystem holding `dir`.
fn used_bytes(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn a_full_disk_fails_naming_the_path_and_the_rerun_completes_identically() {
    let mirror = dapt_testdata::mirror();
    let pipeline = training_pipeline(&mirror);
    let reference = Sandbox::new(&pipeline);
    reference.dapt_expect(&["run", "tokenize"], 0);

    let sb = Sandbox::new(&pipeline);
    let workdir = sb.path(".dapt");
    std::fs::create_dir_all(&workdir).unwrap();
    assert!(
        mount_tmpfs(&workdir, "512m", false),
        "mounting a tmpfs needs root (CI runs as root)"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&workdir);

    // Everything before `tokenize`, then shrink the disk to what that used plus 256 KiB:
    // the token shards (over 1.6 MB) fill it mid-stage.
    sb.dapt_expect(&["run", "tokenizer"], 0);
    let used = used_bytes(&workdir);
    assert!(
        mount_tmpfs(&workdir, &format!("{}k", used / 1024 + 256), true),
        "shrinking the tmpfs to {used} bytes + 256 KiB"
    );
    let out = sb.dapt_expect(&["run", "tokenize"], 1);
    let failed: Vec<(String, String)> = sb
        .status()
        .into_iter()
        .filter(|(_, state, _)| state == "failed")
        .map(|(stage, _, reason)| (stage, reason))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}\n{}", stderr(&out));
    let (stage, reason) = &failed[0];
    println!("full disk: `dapt status` says {stage}: {reason}");
    assert!(
        reason.contains("No space left on device")
            && reason.contains(&workdir.join("stages").join(stage).display().to_string()),
        "{stage}: {reason}"
    );

    assert!(mount_tmpfs(&workdir, "512m", true), "remount bigger");
    sb.dapt_expect(&["run", "tokenize"], 0);
    let got = outputs(&sb);
    let expected = outputs(&reference);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &expected {
        assert!(&got[path] == bytes, "{path} differs after the full disk");
    }
}
