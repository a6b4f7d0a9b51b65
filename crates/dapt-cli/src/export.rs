//! `dapt export STAGE DIR`: hands a stage's model to the Hugging Face ecosystem. Copies its
//! model folder (already transformers' layout) to DIR and writes a model card that adds,
//! to what the stage itself knew (base model, mixture, tokens, training configuration,
//! validation losses), the scores of every `evaluate` stage that scored it.

use std::path::Path;

use anyhow::{Context, ensure};
use dapt_dag::Pipeline;
use dapt_dag::manifest::StageDir;
use dapt_model::ModelConfig;
use serde_json::{Value, json};

use crate::kinds::model_card::{self, CARD_FILE, Card};
use crate::kinds::training::model_dir;

/// Exports `stage`'s model to `dest`; returns the card written.
pub fn export(pipeline: &Pipeline, stage: &str, dest: &Path) -> anyhow::Result<Card> {
    let spec = pipeline
        .stage(stage)
        .with_context(|| format!("no stage `{stage}` in {}", pipeline.file.display()))?;
    let dir = StageDir::new(&pipeline.workdir, stage);
    let manifest = dir
        .read_manifest()?
        .with_context(|| format!("stage `{stage}` has not finished; run `dapt run {stage}`"))?;
    let source = model_dir(&dir.out());
    ensure!(
        source.join(dapt_model::CONFIG_FILE).is_file(),
        "stage `{stage}` ({}) holds no model",
        spec.kind
    );
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for entry in std::fs::read_dir(&source)? {
        let path = entry?.path();
        if path.is_file() && path.file_name().is_some_and(|n| n != CARD_FILE) {
            let bytes = std::fs::read(&path)?;
            dapt_dag::fsutil::atomic_write(&dest.join(path.file_name().unwrap()), &bytes)
                .with_context(|| format!("writing into {}", dest.display()))?;
        }
    }
    let counts = &manifest.counts;
    let get = |key: &str| counts.get(key).cloned();
    let model: ModelConfig = serde_json::from_value(get("model").context("no model config")?)?;
    let init = get("init").and_then(|v| v.as_str().map(str::to_owned));
    let license = spec
        .params
        .get("license")
        .and_then(|v| v.as_str())
        .unwrap_or("other")
        .to_owned();
    let card = Card {
        title: format!("{}: stage `{stage}`", pipeline.name),
        base_model: init.filter(|i| i != "scratch"),
        license,
        model,
        summary: format!(
            "Exported by dapt from stage `{stage}` (kind `{}`) of pipeline `{}`.",
            spec.kind, pipeline.name
        ),
        mixture: get("mixture"),
        tokens: match (get("tokens"), get("tokens_total")) {
            (Some(a), Some(b)) => a.as_u64().zip(b.as_u64()),
            _ => None,
        },
        training: get("train"),
        validation: get("validation")
            .and_then(|v| serde_json::from_value(v).ok())
            .map(|m: std::collections::BTreeMap<String, f64>| m.into_iter().collect())
            .unwrap_or_default(),
        evaluation: evaluations(pipeline, stage),
    };
    model_card::write(dest, &card)?;
    Ok(card)
}

/// Every finished `evaluate` stage's scores of `stage`'s model.
fn evaluations(pipeline: &Pipeline, stage: &str) -> Vec<(String, Value)> {
    pipeline
        .stages
        .iter()
        .filter(|s| s.kind == "evaluate")
        .filter_map(|s| {
            let manifest = StageDir::new(&pipeline.workdir, &s.name)
                .read_manifest()
                .ok()??;
            let lm = manifest.counts.get("lm")?.get(stage)?.clone();
            let sentiment = manifest
                .counts
                .get("sentiment")
                .and_then(|v| v.get(stage))
                .cloned()
                .unwrap_or(Value::Null);
            Some((s.name.clone(), json!({ "lm": lm, "sentiment": sentiment })))
        })
        .collect()
}
