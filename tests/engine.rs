//! The pipeline engine, driven through the real `dapt` binary: what runs, what is
//! skipped, why, and what survives failures, kills and concurrent runs.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// a -> b -> c -> ... a chain of ten, plus nothing else.
fn ten_stage_chain() -> String {
    let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let mut text = header("chain", 2);
    for (i, name) in names.iter().enumerate() {
        let inputs: Vec<&str> = if i == 0 {
            vec![]
        } else {
            vec![names[i - 1].as_str()]
        };
        text += &stage(name, &inputs, "");
    }
    text
}

/// a -> b -> d, a -> c (b and c independent).
fn diamond() -> String {
    header("diamond", 2)
        + &stage("a", &[], "")
        + &stage("b", &["a"], "")
        + &stage("c", &["a"], "")
        + &stage("d", &["b"], "")
}

#[test]
fn first_run_does_everything_and_second_run_nothing() {
    let sb = Sandbox::new(&ten_stage_chain());
    sb.dapt_expect(&["run"], 0);
    let runs = sb.runs();
    assert_eq!(
        runs,
        (0..10).map(|i| format!("s{i}")).collect::<Vec<_>>(),
        "every stage once, in order"
    );
    assert!(sb.status().iter().all(|(_, state, _)| state == "fresh"));

    sb.clear_runs();
    let out = sb.dapt_expect(&["run"], 0);
    assert!(sb.runs().is_empty(), "second run ran {:?}", sb.runs());
    assert_eq!(
        stdout(&out).matches(" fresh").count(),
        10,
        "{}",
        stdout(&out)
    );
}

#[test]
fn changing_a_parameter_reruns_exactly_that_stage_and_its_descendants() {
    let sb = Sandbox::new(
        &(header("p", 2)
            + &stage("a", &[], "")
            + &stage("b", &["a"], "env = { THRESHOLD = \"0.8\" }")
            + &stage("c", &["b"], "")
            + &stage("d", &["a"], "")),
    );
    // b's output depends on its parameter, so its dependents see new input.
    sb.edit_pipeline(
        "(cat out/a.txt; echo b)",
        "(cat out/a.txt; echo b $THRESHOLD)",
    );
    sb.dapt_expect(&["run"], 0);
    sb.clear_runs();

    sb.edit_pipeline("THRESHOLD = \"0.8\"", "THRESHOLD = \"0.7\"");
    let (state, reason) = sb.state_of("b");
    assert_eq!(state, "stale");
    assert_eq!(reason, "param env.THRESHOLD \"0.8\" -> \"0.7\"");
    let (state, reason) = sb.state_of("c");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("stale", "upstream b is stale")
    );
    assert_eq!(sb.state_of("a").0, "fresh");
    assert_eq!(sb.state_of("d").0, "fresh");

    sb.dapt_expect(&["run"], 0);
    assert_eq!(sb.runs(), ["b", "c"]);
}

#[test]
fn a_rerun_whose_outputs_are_unchanged_does_not_rerun_dependents() {
    let sb = Sandbox::new(&diamond());
    sb.dapt_expect(&["run"], 0);
    sb.clear_runs();
    let out = sb.dapt_expect(&["run", "--force", "a"], 0);
    assert_eq!(sb.runs(), ["a"], "{}", stdout(&out));
}

#[test]
fn a_failed_stage_reruns_alone_with_what_depends_on_it() {
    let sb = Sandbox::new(&diamond());
    // b fails until the file `fixed` exists; c is independent of b.
    sb.edit_pipeline("cmd = \"echo b >>", "cmd = \"test -e fixed && echo b >>");
    let out = sb.dapt_expect(&["run", "--keep-going"], 1);
    assert!(
        stderr(&out).contains("stage(s) failed: b"),
        "{}",
        stderr(&out)
    );
    let mut ran = sb.runs();
    ran.sort();
    assert_eq!(
        ran,
        ["a", "c"],
        "b failed, d blocked, c finished with --keep-going"
    );
    let (state, reason) = sb.state_of("b");
    assert_eq!(state, "failed");
    assert!(reason.contains("exited with status 1"), "{reason}");
    assert_eq!(sb.state_of("d").1, "upstream b is failed");

    sb.clear_runs();
    std::fs::write(sb.path("fixed"), "").unwrap();
    sb.dapt_expect(&["run"], 0);
    assert_eq!(sb.runs(), ["b", "d"]);
}

#[test]
fn without_keep_going_a_failure_stops_new_stages() {
    let sb = Sandbox::new(
        &(header("stop", 1)
            + &stage("a", &[], "")
            + &stage("b", &["a"], "")
            + &stage("c", &[], "")),
    );
    sb.edit_pipeline("cmd = \"echo a >>", "cmd = \"false && echo a >>");
    let out = sb.dapt_expect(&["run"], 1);
    assert!(sb.runs().is_empty(), "{:?}", sb.runs());
    let table = stdout(&out);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("b ") && l.contains("blocked")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("c ") && l.contains("skipped")),
        "{table}"
    );
}

#[test]
fn a_panic_in_a_stage_fails_that_stage_alone_with_its_message_and_location() {
    // b panics as its kind starts; c runs beside it (jobs = 2) and finishes.
    let sb = Sandbox::new(&diamond());
    sb.edit_pipeline("cmd = \"echo c >>", "cmd = \"sleep 1 && echo c >>");
    let out = sb
        .command(&["run"])
        .env("DAPT_FAULT", "kind-run/b=panic")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stage(s) failed: b"),
        "{}",
        stderr(&out)
    );
    let mut ran = sb.runs();
    ran.sort();
    assert_eq!(ran, ["a", "c"], "c, running beside b, finished on its own");
    assert_eq!(sb.state_of("c").0, "fresh");
    let (state, reason) = sb.state_of("b");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("panicked at crates/dapt-dag/src/fault.rs:")
            && reason.contains("injected fault at `kind-run` in stage `b`"),
        "{reason}"
    );
    let failed = std::fs::read_to_string(sb.path(".dapt/stages/b/failed.json")).unwrap();
    assert!(failed.contains("panicked at"), "{failed}");

    // Without the fault, the rerun does b and what depends on it, and nothing else.
    sb.clear_runs();
    sb.dapt_expect(&["run"], 0);
    assert_eq!(sb.runs(), ["b", "d"]);
}

#[test]
fn a_panic_on_a_shard_worker_thread_fails_the_stage_and_keeps_finished_shards() {
    let sb = Sandbox::new(&sharded(4));
    let out = sb
        .command(&["run"])
        .env("DAPT_FAULT", "shard-done#2=panic")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (state, reason) = sb.state_of("parts");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("panicked at") && reason.contains("injected fault at `shard-done`"),
        "{reason}"
    );
    let finished = finished_shards(&sb, "parts", "command");
    assert_eq!(finished.len(), 2, "{finished:?}");
    let out = sb.dapt_expect(&["run"], 0);
    assert!(stdout(&out).contains("resumed after"), "{}", stdout(&out));
    let log = std::fs::read_to_string(sb.path("shard-runs.log")).unwrap();
    assert_eq!(
        log.lines().count(),
        4,
        "no finished shard ran again:\n{log}"
    );
}

#[test]
fn a_declared_output_that_is_not_produced_fails_the_stage_and_is_not_trusted() {
    let sb = Sandbox::new(
        &(header("outs", 1)
            + "[stages.a]\nkind = \"command\"\ncmd = \"mkdir -p out && echo 1 > out/x.txt\"\nouts = [\"out/x.txt\", \"out/y.txt\"]\n"),
    );
    let out = sb.dapt_expect(&["run"], 1);
    assert!(stderr(&out).contains("stage(s) failed: a"));
    let (state, reason) = sb.state_of("a");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("declared output") && reason.contains("out/y.txt"),
        "{reason}"
    );
}

#[test]
fn tampered_outputs_and_changed_inputs_make_a_stage_stale() {
    let sb = Sandbox::new(
        &(header("tamper", 1)
            + &stage("a", &[], "")
            + "[stages.b]\nkind = \"command\"\ninputs = [\"a\"]\ndeps = [\"input.txt\"]\nouts = [\"out/b.txt\"]\ncmd = \"cat input.txt > out/b.txt\"\n"),
    );
    std::fs::write(sb.path("input.txt"), "one").unwrap();
    sb.dapt_expect(&["run"], 0);

    std::fs::write(sb.path("out/a.txt"), "edited by hand").unwrap();
    assert_eq!(
        sb.state_of("a"),
        ("stale".into(), "output out/a.txt changed".into())
    );
    std::fs::write(sb.path("input.txt"), "two").unwrap();
    let (_, reason) = sb.state_of("b");
    assert!(reason.contains("input input.txt changed"), "{reason}");

    sb.dapt_expect(&["run"], 0);
    assert_eq!(
        std::fs::read_to_string(sb.path("out/b.txt")).unwrap(),
        "two"
    );
    // Touching a file without changing it keeps the stage fresh (content hashes).
    std::fs::write(sb.path("input.txt"), "two").unwrap();
    assert_eq!(sb.state_of("b").0, "fresh");
}

#[test]
fn dry_run_says_what_would_run_and_runs_nothing() {
    let sb = Sandbox::new(&diamond());
    let out = sb.dapt_expect(&["run", "--dry-run"], 0);
    assert!(sb.runs().is_empty());
    assert_eq!(
        stdout(&out).matches("would-run").count(),
        4,
        "{}",
        stdout(&out)
    );
    sb.dapt_expect(&["run"], 0);
    let out = sb.dapt_expect(&["run", "--dry-run", "--from", "b"], 0);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("b ") && l.contains("forced")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("d ") && l.contains("forced")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("c ") && l.contains("fresh")),
        "{text}"
    );
}

#[test]
fn selected_targets_run_with_their_ancestors_only() {
    let sb = Sandbox::new(&diamond());
    sb.dapt_expect(&["run", "b"], 0);
    assert_eq!(sb.runs(), ["a", "b"]);
    let out = sb.dapt_expect(&["run", "nope"], 1);
    assert!(
        stderr(&out).contains("unknown stage `nope`"),
        "{}",
        stderr(&out)
    );
}

/// A sharded stage with one shard at a time, each slow enough to kill mid-stage.
fn sharded(shards: usize) -> String {
    header("shards", 1)
        + &format!(
            "[stages.parts]\nkind = \"command\"\nshards = {shards}\nouts = [\"parts\"]\n\
             cmd = \"mkdir -p parts && echo $DAPT_SHARD >> shard-runs.log && sleep 0.4 && seq 0 $DAPT_SHARD > parts/p$DAPT_SHARD.txt\"\n\n"
        )
        + "[stages.join]\nkind = \"command\"\ninputs = [\"parts\"]\ndeps = [\"parts\"]\nouts = [\"all.txt\"]\ncmd = \"cat parts/* > all.txt\"\n"
}

#[test]
fn sigkill_mid_stage_resumes_at_shard_granularity_with_identical_outputs() {
    let shards = 6;
    let reference = Sandbox::new(&sharded(shards));
    reference.dapt_expect(&["run"], 0);

    let sb = Sandbox::new(&sharded(shards));
    let mut child = sb
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished_shards(&sb, "parts", "command").len() < 2 {
        assert!(Instant::now() < deadline, "no shard finished within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished: Vec<String> = finished_shards(&sb, "parts", "command")
        .iter()
        .map(|n| {
            n.trim_end_matches(".json")
                .parse::<usize>()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(finished.len() < shards, "killed too late to test resume");
    let (state, reason) = sb.state_of("parts");
    assert_eq!(state, "never-run");
    assert!(
        reason.contains("interrupted") && reason.contains("resumes"),
        "{reason}"
    );
    assert!(!sb.path("all.txt").exists());

    std::thread::sleep(Duration::from_millis(500)); // let the orphaned shard command end
    let out = sb.dapt_expect(&["run"], 0);
    assert!(stdout(&out).contains("resumed after"), "{}", stdout(&out));

    let log = std::fs::read_to_string(sb.path("shard-runs.log")).unwrap();
    for shard in &finished {
        assert_eq!(
            log.lines().filter(|l| l == shard).count(),
            1,
            "finished shard {shard} ran again:\n{log}"
        );
    }
    assert_eq!(
        files_in(&sb.path("parts")),
        files_in(&reference.path("parts"))
    );
    assert_eq!(
        std::fs::read(sb.path("all.txt")).unwrap(),
        std::fs::read(reference.path("all.txt")).unwrap()
    );
    assert_eq!(sb.state_of("join").0, "fresh");
}

#[test]
fn a_second_concurrent_run_is_refused_and_a_stale_lock_is_taken_over() {
    let sb = Sandbox::new(
        &(header("lock", 1) + "[stages.slow]\nkind = \"command\"\ncmd = \"sleep 2\"\n"),
    );
    let mut first = sb
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = sb.path(".dapt/lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with("pid")) {
        assert!(Instant::now() < deadline, "first run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = sb.dapt_expect(&["run"], 3);
    let message = stderr(&second);
    assert!(
        message.contains("another dapt run holds the lock"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", first.id())),
        "{message}"
    );
    assert!(first.wait().unwrap().success());

    // A lock file left by a process that died: nobody holds the OS lock.
    std::fs::write(&lock, "pid 4194303 since 0\n").unwrap();
    let out = sb.dapt_expect(&["run", "--force", "slow"], 0);
    assert!(
        stderr(&out).contains("took over the lock left by a run that died (pid 4194303"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn clean_makes_stages_run_again() {
    let sb = Sandbox::new(&diamond());
    sb.dapt_expect(&["run"], 0);
    sb.dapt_expect(&["clean", "d"], 0);
    assert!(!sb.path("out/d.txt").exists());
    assert_eq!(sb.state_of("d").0, "never-run");
    sb.clear_runs();
    sb.dapt_expect(&["run"], 0);
    assert_eq!(sb.runs(), ["d"]);
}

#[test]
fn graph_prints_a_tree_and_dot() {
    let sb = Sandbox::new(&diamond());
    let tree = stdout(&sb.dapt_expect(&["graph"], 0));
    assert_eq!(
        tree,
        "a (command)\n├── b (command)\n│   └── d (command)\n└── c (command)\n"
    );
    let dot = stdout(&sb.dapt_expect(&["graph", "--dot"], 0));
    for edge in ["\"a\" -> \"b\"", "\"a\" -> \"c\"", "\"b\" -> \"d\""] {
        assert!(dot.contains(edge), "{dot}");
    }
}
