//! Invalid pipeline files: every problem reported with file:line:column and its
//! key, exit code 2, nothing run.

mod support;

use support::*;

/// Asserts `dapt status` rejects the pipeline, naming each `(line, col, needle)`.
fn assert_rejected(pipeline: &str, expected: &[(usize, usize, &str)]) {
    let sb = Sandbox::new(pipeline);
    for args in [&["status"][..], &["run"][..]] {
        let out = sb.dapt_expect(args, 2);
        let err = stderr(&out);
        for (line, col, needle) in expected {
            let location = format!("pipeline.toml:{line}:{col}: error");
            assert!(
                err.lines()
                    .any(|l| l.contains(&location) && l.contains(needle)),
                "no `{location} ... {needle}` in:\n{err}"
            );
        }
        assert!(
            err.contains(&format!("{} problem(s)", expected.len())),
            "{err}"
        );
    }
    assert!(
        !sb.path(".dapt").exists(),
        "an invalid pipeline must not touch the workdir"
    );
}

#[test]
fn a_cycle_is_printed() {
    let text = header("cycle", 1)
        + &stage("a", &["c"], "")
        + &stage("b", &["a"], "")
        + &stage("c", &["b"], "");
    // Stage `a` starts on line 5; its `inputs` value is on line 7, column 10.
    assert_rejected(&text, &[(7, 10, "dependency cycle: a -> b -> c -> a")]);
}

#[test]
fn unknown_keys_missing_inputs_wrong_types_and_kinds_are_all_reported() {
    let text = r#"[pipeline]
name = "bad"
jobs = "two"
colour = 1

[stages.a]
kind = "command"
cmd = "true"
threshhold = 3

[stages.b]
kind = "command"
cmd = 5
inputs = ["a", "missing"]

[stages.c]
kind = "comand"
"#;
    assert_rejected(
        text,
        &[
            (3, 8, "`pipeline.jobs`: expected an integer, found string"),
            (4, 1, "`pipeline.colour`: unknown key `colour`"),
            (9, 1, "`stages.a.threshhold`: unknown key `threshhold`"),
            (
                13,
                7,
                "`stages.b.cmd`: invalid type: integer `5`, expected a string",
            ),
            (
                14,
                16,
                "`stages.b.inputs[1]`: input `missing` is not a stage",
            ),
            (
                17,
                8,
                "`stages.c.kind`: unknown stage kind `comand` (known kinds:",
            ),
        ],
    );
}

#[test]
fn a_syntax_error_and_a_missing_corpus_are_located() {
    assert_rejected(
        "[pipeline]\nname = \"x\"\n[stages.a\n",
        &[(3, 10, "unclosed table")],
    );
    let text = header("c", 1)
        + "[stages.a]\nkind = \"command\"\ncmd = \"true\"\ncorpora = [\"reuters\"]\n";
    assert_rejected(
        &text,
        &[(8, 12, "unknown corpus `reuters` (defined corpora: none)")],
    );
}

#[test]
fn the_shipped_pipelines_are_valid() {
    let root = dapt_testdata::workspace_root();
    for (file, base) in [
        ("pipeline.toml", "base"),
        ("configs/gpu.toml", "base"),
        ("configs/smollm2.toml", "smollm2"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dapt"))
            .args(["graph", "-c"])
            .arg(root.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file} is invalid:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let graph = String::from_utf8_lossy(&out.stdout);
        for stage in [
            "tokenize",
            base,
            "continue_mix",
            "continue_financial",
            "evaluate",
            "report",
        ] {
            assert!(graph.contains(stage), "{file} has no stage {stage}");
        }
    }
}

/// The workspace's `rust-version` is honest: no dependency in the lock file needs a newer
/// compiler, and this compiler is not older than it (CI builds with the one it names).
/// Not `--offline`: metadata covers every platform's packages, and a fresh machine's
/// registry holds only those its builds needed.
#[test]
fn rust_version_is_the_real_minimum() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    let ours = env!("CARGO_PKG_RUST_VERSION");
    assert!(
        !ours.is_empty(),
        "the crate inherits the workspace's rust-version"
    );
    let used: std::collections::HashSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let newest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| used.contains(p["id"].as_str().unwrap()))
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .unwrap();
    assert!(
        version(newest.0) <= version(ours),
        "{} needs Rust {}, above the workspace's rust-version {ours}",
        newest.1,
        newest.0
    );
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .unwrap();
    let rustc = String::from_utf8(rustc.stdout).unwrap();
    let rustc_version = rustc.split_whitespace().nth(1).unwrap();
    let rustc_version: Vec<u64> = version(rustc_version.split('-').next().unwrap());
    assert!(
        rustc_version >= version(ours),
        "{rustc} is older than rust-version {ours}"
    );
}

#[test]
fn slurm_settings_and_shards_are_checked() {
    let text = r#"[pipeline]
name = "cluster"

[executor.slurm]
partition = "cpu"
max_array_size = 0
nodes = 4
sbatch = { pretrain = ["constraint=a100"] }

[executor.kubernetes]

[stages.a]
kind = "command"
cmd = "true"
tasks = 0

[stages.b]
kind = "report"
inputs = ["a"]
evaluate = "a"
baseline = "x"
adapted = "y"
tasks = 4
"#;
    assert_rejected(
        text,
        &[
            (6, 18, "must be at least 1"),
            (7, 1, "unknown key `nodes`"),
            (8, 23, "`constraint=a100` is not an sbatch flag"),
            (10, 11, "unknown key `kubernetes`"),
            (15, 9, "must be at least 1, found 0"),
            (23, 9, "a `report` stage runs as one task"),
        ],
    );
}

#[test]
fn an_unknown_key_of_a_flattened_kind_table_is_located() {
    // The clean kind flattens its filter thresholds into the stage table; an unknown key
    // there was once reported as `stages.clean.foo.foo`, with no line.
    let text = "[pipeline]\nname = \"x\"\n\n[stages.clean]\nkind = \"clean\"\nmin_wrds = 3\n";
    assert_rejected(
        text,
        &[(
            6,
            1,
            "error in `stages.clean.min_wrds`: unknown field `min_wrds`",
        )],
    );
}
