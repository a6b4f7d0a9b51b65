//! A small but complete report input, shaped like the real pipeline's manifests.

use std::collections::BTreeMap;

use dapt_report::{Conservation, ModelInfo, ReportInput, StageInfo, TrainLog};
use serde_json::{Value, json};

fn counts(v: Value) -> BTreeMap<String, Value> {
    v.as_object().unwrap().clone().into_iter().collect()
}

fn stage(name: &str, kind: &str, c: Value, conservation: Option<(u64, u64, u64)>) -> StageInfo {
    StageInfo {
        name: name.into(),
        kind: kind.into(),
        counts: counts(c),
        conservation: conservation.map(|(input, kept, rejected)| Conservation {
            input,
            kept,
            rejected,
        }),
        seconds: 12.5,
    }
}

fn model(
    name: &str,
    kind: &str,
    init: &str,
    tokens: u64,
    total_tokens: u64,
    loss: f64,
) -> ModelInfo {
    let log = TrainLog::parse(&format!(
        "step,lr,train_loss,grad_norm,tokens,tokens_per_s,val_financial,val_general\n\
         1,0.001,{},1.0,4096,1000.0,,\n\
         2,0.001,{},1.0,8192,1000.0,{},{}\n\
         3,0.001,{},1.0,12288,1000.0,,\n\
         4,0.001,{loss},1.0,16384,1000.0,{},{}\n",
        loss + 3.0,
        loss + 2.0,
        loss + 2.1,
        loss + 2.2,
        loss + 1.0,
        loss + 0.1,
        loss + 0.2
    ))
    .unwrap();
    ModelInfo {
        stage: stage(
            name,
            kind,
            json!({
                "params": 1_234_567,
                "steps": 4,
                "tokens": tokens,
                "tokens_per_s": 1000.0,
                "final_train_loss": loss,
                "validation": {"financial": loss + 0.1, "general": loss + 0.2},
                "mixture": {
                    "financial": {"weight": 0.7, "sequences": 70, "tokens": 8960, "realised_share": 0.7, "epochs": 0.01},
                    "general": {"weight": 0.3, "sequences": 30, "tokens": 3840, "realised_share": 0.3, "epochs": 0.002}
                },
                "model": {"vocab_size": 8192, "n_layer": 2, "n_head": 4, "d_model": 128, "context": 128},
                "init": init,
                "chinchilla": {"params": 1_234_567, "tokens": total_tokens, "optimal_tokens": 24_691_340,
                               "flops": 1.0e12, "predicted_loss": 4.5}
            }),
            None,
        ),
        log: Some(log),
    }
}

fn lm(fin: f64, gen_: f64) -> Value {
    let domain = |bpb: f64| {
        json!({"documents": 10, "tokens": 1000, "bytes": 4000, "sum_nats": bpb * 4000.0 * std::f64::consts::LN_2,
               "token_loss": bpb * 4.0 * std::f64::consts::LN_2, "perplexity": 10.0, "bits_per_byte": bpb})
    };
    json!({"financial": domain(fin), "general": domain(gen_)})
}

fn sentiment(acc: f64) -> Value {
    let m = |a: f64| json!({"accuracy": a, "macro_f1": a / 2.0, "examples": 100});
    json!({"phrasebank": {"train_examples": 500, "test_examples": 100, "probe": m(acc), "zero_shot": m(0.4),
                          "majority": m(0.6), "majority_class": "neutral"}})
}

pub fn input() -> ReportInput {
    ReportInput {
        pipeline: "test-pipeline".into(),
        stages: vec![
            stage(
                "ingest",
                "ingest",
                json!({"by_corpus": {"reasons": {"parse_error": 2}}}),
                Some((100, 98, 2)),
            ),
            stage(
                "clean",
                "clean",
                json!({"rejected_by_filter": {"filter:word_count": 7, "filter:language": 3}}),
                Some((98, 88, 10)),
            ),
            stage(
                "tokenize",
                "tokenize",
                json!({"fertility": {"financial": {"bytes_per_token": 4.0428, "tokens_per_word": 1.5513},
                                     "general": {"bytes_per_token": 3.5069, "tokens_per_word": 1.6946}}}),
                Some((88, 88, 0)),
            ),
        ],
        models: vec![
            model("base", "pretrain", "scratch", 1_000_000, 1_000_000, 4.0),
            model("continue_mix", "continue", "base", 250_000, 1_250_000, 3.8),
        ],
        evaluation: stage(
            "evaluate",
            "evaluate",
            json!({
                "split": "test",
                "lm": {"base": lm(1.2345678, 1.1), "continue_mix": lm(1.1, 1.15)},
                "sentiment": {"base": sentiment(0.7), "continue_mix": sentiment(0.75)}
            }),
            None,
        ),
        baseline: "base".into(),
        adapted: "continue_mix".into(),
        target_domain: "financial".into(),
        reference_domain: "general".into(),
    }
}
