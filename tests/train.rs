//! The training stages through the `dapt` binary on a slice of the real corpora: a
//! `pretrain` on general text, a `continue` on financial text, a run killed after a
//! checkpoint that resumes to the same weights.

mod support;

use support::*;

fn weights(sb: &Sandbox, stage: &str) -> Vec<u8> {
    std::fs::read(sb.path(&format!(".dapt/stages/{stage}/out/model/model.safetensors"))).unwrap()
}

#[test]
fn continuing_on_financial_text_lowers_the_financial_loss_and_keeps_the_budget() {
    let sb = Sandbox::new(&training_pipeline(&dapt_testdata::mirror()));
    sb.dapt_expect(&["run"], 0);
    let base = counts(&sb, "base");
    let continued = counts(&sb, "financial");

    // 16,384 tokens at 8 x 32 tokens a step.
    assert_eq!(base["steps"], 64);
    assert_eq!(continued["tokens"], 16_384);
    assert_eq!(continued["tokens_total"], 32_768);
    assert_eq!(continued["init"], "base");
    let fin_before = base["validation"]["financial"].as_f64().unwrap();
    let fin_after = continued["validation"]["financial"].as_f64().unwrap();
    assert!(
        fin_after < fin_before - 0.05,
        "financial validation loss should fall when continuing on it: {fin_before} -> {fin_after}"
    );
    let realised = &continued["mixture"]["financial"];
    assert_eq!(realised["tokens"], 16_384);
    assert_eq!(realised["realised_share"], 1.0);
    // Chinchilla bookkeeping: 6ND over everything the model has seen.
    let params = continued["params"].as_f64().unwrap();
    let flops = continued["chinchilla"]["flops"].as_f64().unwrap();
    assert!((flops - 6.0 * params * 32_768.0).abs() < 1.0);

    // The export carries its tokenizer and reloads.
    let model = sb.path(".dapt/stages/financial/out/model");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(model.join(file).is_file(), "{file} exported");
    }
    let log = std::fs::read_to_string(sb.path(".dapt/stages/financial/out/train_log.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 64, "a header and one row per step");

    // A second run trains nothing.
    let out = sb.dapt_expect(&["run"], 0);
    assert!(!stdout(&out).contains("ran "), "{}", stdout(&out));
}

#[test]
fn a_training_stage_killed_after_a_checkpoint_resumes_to_the_same_weights() {
    let mirror = dapt_testdata::mirror();
    let reference = Sandbox::new(&training_pipeline(&mirror));
    reference.dapt_expect(&["run", "base"], 0);

    let sb = Sandbox::new(&training_pipeline(&mirror));
    sb.dapt_expect(&["run", "tokenize"], 0);
    // Killed (abort, no cleanup) right after base's second checkpoint (step 32 of 64).
    let killed = sb
        .command(&["run", "base"])
        .env("DAPT_FAULT", "shard-done#2=abort")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "the injected kill stops the run");
    assert!(
        !sb.path(".dapt/stages/base/manifest.json").exists(),
        "a killed stage is not done"
    );
    let status = sb.status();
    let base = status.iter().find(|(stage, ..)| stage == "base").unwrap();
    assert!(
        base.2
            .contains("interrupted with 2 shard(s) or checkpoint(s) kept"),
        "{base:?}"
    );

    let out = sb.dapt_expect(&["run", "base"], 0);
    assert!(
        stdout(&out).contains("resumed from the checkpoint of step 32"),
        "{}",
        stdout(&out)
    );
    assert_eq!(counts(&sb, "base")["steps"], 64);
    assert!(
        weights(&sb, "base") == weights(&reference, "base"),
        "resumed weights equal the uninterrupted run's bit for bit"
    );
    // The log holds no timings (those are in timing/throughput.csv), so it is bit-exact too.
    let log = |s: &Sandbox| std::fs::read_to_string(s.path(".dapt/stages/base/out/train_log.csv"));
    assert_eq!(log(&sb).unwrap(), log(&reference).unwrap());
    let throughput = std::fs::read_to_string(sb.path(".dapt/stages/base/timing/throughput.csv"));
    assert_eq!(throughput.unwrap().lines().count(), 1 + 64);
}

#[test]
fn bad_training_parameters_are_reported_with_their_keys() {
    let text = training_pipeline(&dapt_testdata::mirror())
        .replace("mixture = { general = 1.0 }", "mixture = { general = 0.0 }")
        .replace("from = \"base\"\n", "")
        .replacen("token_budget = 16_384\n", "", 1);
    let sb = Sandbox::new(&text);
    let out = sb.dapt_expect(&["status"], 2);
    let err = stderr(&out);
    for needle in ["mixture.general", "from", "token_budget"] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }

    // A mixture domain the tokens do not have fails at run time, naming what exists.
    let sb = Sandbox::new(
        &training_pipeline(&dapt_testdata::mirror())
            .replace("mixture = { financial = 1.0 }", "mixture = { legal = 1.0 }"),
    );
    let out = sb.dapt_expect(&["run"], 1);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("mixture domain `legal` has no training tokens"),
        "{all}"
    );
    assert!(all.contains("financial, general"), "{all}");
}

#[test]
fn plan_counts_flops_and_epochs_and_measures_throughput_before_and_after_a_run() {
    let sb = Sandbox::new(&training_pipeline(&dapt_testdata::mirror()));
    let plan = |sb: &Sandbox| -> Vec<serde_json::Value> {
        serde_json::from_slice(&sb.dapt_expect(&["plan", "--json"], 0).stdout).unwrap()
    };
    // Nothing has run: throughput from a probe, epochs unknown.
    let before = plan(&sb);
    assert_eq!(before.len(), 2);
    assert_eq!(
        before[0]["throughput_from"],
        "a 3-step probe on random tokens"
    );
    assert!(before[0]["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(before[0]["epochs"]["general"].is_null());
    // The continued model has seen both stages' tokens.
    assert_eq!(before[1]["budget"]["tokens"], 32_768);
    let params = before[1]["budget"]["params"].as_f64().unwrap();
    assert_eq!(
        before[1]["budget"]["optimal_tokens"].as_f64().unwrap(),
        20.0 * params
    );
    let flops = before[1]["budget"]["flops"].as_f64().unwrap();
    assert!((flops - 6.0 * params * 32_768.0).abs() < 1.0);

    sb.dapt_expect(&["run"], 0);
    let after = plan(&sb);
    assert_eq!(after[0]["throughput_from"], "stage financial's last run");
    let base = counts(&sb, "base");
    let general = base["mixture"]["general"]["epochs"].as_f64().unwrap();
    let planned = after[0]["epochs"]["general"].as_f64().unwrap();
    assert!((general - planned).abs() < 1e-3, "{general} vs {planned}");
}
