//! `kind = "report"`: `out/report.md` (+ `report.json` and PNG plots) on what domain
//! adaptation gained on the target domain and cost on the reference domain, built from the
//! manifests of every stage in `inputs` (data stages for the funnel, `tokenize` for fertility,
//! training stages for the models, mixture and loss curves, the `evaluate` stage for the
//! scores). Nothing is recomputed: the report's numbers are the manifests'.

use std::collections::BTreeMap;

use anyhow::Context;
use dapt_dag::{ParamError, RunReport, StageContext, StageKind, parse_params};
use dapt_report::{
    Conservation, MODEL_KINDS, ModelInfo, ReportInput, StageInfo, TrainLog, default_fonts,
    write_report,
};
use serde::Deserialize;

use super::docs::params;

#[derive(Debug, Deserialize)]
struct Params {
    /// The `evaluate` stage whose scores the report presents.
    evaluate: String,
    /// The model adaptation is measured against.
    baseline: String,
    /// The headline, adapted model.
    adapted: String,
    #[serde(default = "default_target")]
    target_domain: String,
    #[serde(default = "default_reference")]
    reference_domain: String,
    /// A .ttf font for the plots' text, tried before `$DAPT_FONT` and DejaVu Sans.
    #[serde(default)]
    font: Option<String>,
}

fn default_target() -> String {
    "financial".into()
}

fn default_reference() -> String {
    "general".into()
}

pub struct ReportKind;

impl StageKind for ReportKind {
    fn name(&self) -> &'static str {
        "report"
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        let p = parse_params::<Params>(params)?;
        if p.baseline == p.adapted {
            return Err(vec![ParamError::invalid(
                "adapted",
                "must differ from `baseline`",
            )]);
        }
        Ok(())
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        for name in [&p.evaluate, &p.baseline, &p.adapted] {
            anyhow::ensure!(
                ctx.stage.inputs.contains(name),
                "`{name}` must be one of this stage's inputs ({})",
                ctx.stage.inputs.join(", ")
            );
        }
        let mut stages = Vec::new();
        let mut models = Vec::new();
        let mut evaluation = None;
        for name in &ctx.stage.inputs {
            let manifest = ctx.input_manifest(name)?;
            let info = StageInfo {
                name: name.clone(),
                kind: manifest.ingredients.kind.clone(),
                counts: manifest.counts,
                conservation: manifest.conservation.map(|c| Conservation {
                    input: c.input,
                    kept: c.kept,
                    rejected: c.rejected,
                }),
                seconds: manifest.seconds,
            };
            if *name == p.evaluate {
                evaluation = Some(info);
            } else if MODEL_KINDS.contains(&info.kind.as_str()) {
                let log_path = ctx.input_dir(name).join(dapt_model::LOG_FILE);
                let log = if log_path.exists() {
                    Some(TrainLog::read(&log_path)?)
                } else {
                    None
                };
                models.push(ModelInfo { stage: info, log });
            } else {
                stages.push(info);
            }
        }
        let input = ReportInput {
            pipeline: ctx.pipeline.name.clone(),
            stages,
            models,
            evaluation: evaluation.context("the evaluate stage is among the inputs")?,
            baseline: p.baseline,
            adapted: p.adapted,
            target_domain: p.target_domain,
            reference_domain: p.reference_domain,
        };
        let mut fonts: Vec<std::path::PathBuf> = p.font.iter().map(Into::into).collect();
        fonts.extend(default_fonts());
        let summary = write_report(&input, &ctx.out_dir, Some(&ctx.timing_dir), &fonts)?;
        let mut counts: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        counts.insert("headline".into(), serde_json::to_value(&summary.headline)?);
        counts.insert("plots".into(), serde_json::to_value(&summary.plots)?);
        counts.insert(
            "font".into(),
            serde_json::to_value(summary.font.as_ref().map(|f| f.display().to_string()))?,
        );
        Ok(RunReport {
            counts,
            conservation: None,
        })
    }
}
