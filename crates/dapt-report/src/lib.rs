//! dapt-report: `report.md` and PNG plots of a pipeline run — what domain adaptation gained on
//! the target domain (financial text) and what it cost on the reference domain (general text),
//! with the training, mixture, data funnel and tokenizer numbers behind it.
//!
//! The report is built from what the stages recorded, never recomputed: [`StageInfo`] carries a
//! stage's manifest (kind, counts, conservation, seconds), [`TrainLog`] a training stage's
//! `train_log.csv`. Every number printed comes from those, so it equals the manifests' (rounded
//! to the printed decimals; `report.json` holds the exact values of the headline).
//!
//! What the report expects of the stages it summarises (by `kind`):
//! - training stages (`pretrain`, `continue`): counts `params`, `steps`, `tokens`,
//!   `tokens_per_s`, `final_train_loss`, `validation` {domain: nats}, `mixture`
//!   {domain: {weight, sequences, tokens, realised_share, epochs}}, `init`, `chinchilla`
//!   {params, tokens, optimal_tokens, flops, predicted_loss};
//! - `evaluate`: counts `split`, `lm` {model: {domain: {bits_per_byte, token_loss, perplexity,
//!   tokens, bytes, documents}}}, `sentiment` {model: {dataset: {probe, zero_shot, majority:
//!   {accuracy, macro_f1}}}};
//! - `tokenize`: counts `fertility` {domain: {bytes_per_token, tokens_per_word}};
//! - any stage with a `conservation` record is a data stage of the funnel; its rejection reasons
//!   come from counts `rejected_by_filter` {reason: n} or `by_corpus.reasons` {reason: n}.
//!
//! Missing pieces are reported as missing (`–`), not as errors, except the headline's: the
//! baseline and adapted models must have bits per byte on both domains.

mod markdown;
pub mod plots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use markdown::{TIMING_FILE, render_markdown, render_timing};

pub const REPORT_FILE: &str = "report.md";
pub const REPORT_JSON: &str = "report.json";

/// Kinds whose stages are trained models.
pub const MODEL_KINDS: &[&str] = &["pretrain", "continue"];

/// What one stage's manifest says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageInfo {
    pub name: String,
    pub kind: String,
    pub counts: BTreeMap<String, Value>,
    pub conservation: Option<Conservation>,
    /// Wall-clock seconds of the stage's run.
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conservation {
    pub input: u64,
    pub kept: u64,
    pub rejected: u64,
}

/// One row of a training log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub train_loss: f64,
    /// Validation loss (nats) per set, on the steps that validated.
    pub validation: BTreeMap<String, f64>,
}

/// A training stage's `train_log.csv` (`step,lr,train_loss,grad_norm,tokens,val_<name>...`;
/// other columns are ignored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainLog {
    pub rows: Vec<LogRow>,
}

impl TrainLog {
    pub fn parse(text: &str) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = reader.headers().context("empty training log")?.clone();
        let column = |name: &str| header.iter().position(|h| h == name);
        let (Some(step), Some(loss)) = (column("step"), column("train_loss")) else {
            bail!("training log header lacks step or train_loss: {header:?}");
        };
        let validation: Vec<(usize, String)> = header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((i, h.strip_prefix("val_")?.to_string())))
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.context("training log")?;
            let line = record.position().map_or(0, |p| p.line());
            let field = |i: usize| record.get(i).unwrap_or("");
            let parse = |i: usize| -> Result<f64> {
                field(i)
                    .parse::<f64>()
                    .with_context(|| format!("training log line {line}: bad number {:?}", field(i)))
            };
            rows.push(LogRow {
                step: parse(step)? as u64,
                train_loss: parse(loss)?,
                validation: validation
                    .iter()
                    .filter(|(i, _)| !field(*i).is_empty())
                    .map(|(i, name)| Ok((name.clone(), parse(*i)?)))
                    .collect::<Result<_>>()?,
            });
        }
        Ok(Self { rows })
    }

    /// The latest validation loss of each set.
    pub fn last_validation(&self) -> BTreeMap<String, f64> {
        let mut last = BTreeMap::new();
        for row in &self.rows {
            last.extend(row.validation.iter().map(|(k, v)| (k.clone(), *v)));
        }
        last
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading training log {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Median tokens/s of a training stage's `throughput.csv` (`step,seconds,tokens_per_s`, in
/// the stage's `timing/`), 0 for an empty file.
pub fn median_tokens_per_s(path: &Path) -> Result<f64> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("reading throughput log {}", path.display()))?;
    let header = reader.headers()?.clone();
    let rate = header
        .iter()
        .position(|h| h == "tokens_per_s")
        .with_context(|| format!("{} has no tokens_per_s column", path.display()))?;
    let mut rates = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        let value = record.get(rate).unwrap_or("");
        rates.push(
            value
                .parse::<f64>()
                .with_context(|| format!("{}: bad tokens_per_s {value:?}", path.display()))?,
        );
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates.get(rates.len() / 2).copied().unwrap_or(0.0))
}

/// A trained model: its stage and, when present, its training log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    pub stage: StageInfo,
    pub log: Option<TrainLog>,
}

/// Everything the report is made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportInput {
    pub pipeline: String,
    /// Every summarised stage except models and the evaluation, in pipeline order.
    pub stages: Vec<StageInfo>,
    pub models: Vec<ModelInfo>,
    pub evaluation: StageInfo,
    /// The model adaptation is measured against.
    pub baseline: String,
    /// The headline (adapted) model.
    pub adapted: String,
    /// The domain adaptation targets (`financial`).
    pub target_domain: String,
    /// The domain whose skill adaptation should keep (`general`).
    pub reference_domain: String,
}

/// The headline numbers (also written to `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub baseline: String,
    pub adapted: String,
    pub split: String,
    pub target_domain: String,
    pub reference_domain: String,
    pub target_bpb_baseline: f64,
    pub target_bpb_adapted: f64,
    /// Relative change in percent (negative = better).
    pub target_change_pct: f64,
    pub reference_bpb_baseline: f64,
    pub reference_bpb_adapted: f64,
    pub reference_change_pct: f64,
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub headline: Headline,
    /// PNG files, relative to the output directory.
    pub plots: Vec<String>,
    /// The font plots were drawn with; `None`: plots have no text.
    pub font: Option<PathBuf>,
}

/// A JSON value at `path` of nested objects.
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

pub(crate) fn num(value: &Value, path: &[&str]) -> Option<f64> {
    at(value, path)?.as_f64()
}

impl StageInfo {
    pub(crate) fn counts_value(&self) -> Value {
        Value::Object(self.counts.clone().into_iter().collect())
    }
}

impl ReportInput {
    /// Bits per byte of `model` on `domain`, from the evaluation's counts.
    pub fn bits_per_byte(&self, model: &str, domain: &str) -> Option<f64> {
        num(
            &self.evaluation.counts_value(),
            &["lm", model, domain, "bits_per_byte"],
        )
    }

    pub fn model(&self, name: &str) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.stage.name == name)
    }

    /// The evaluated split, as the evaluation recorded it.
    pub fn split(&self) -> String {
        self.evaluation
            .counts
            .get("split")
            .and_then(Value::as_str)
            .unwrap_or("test")
            .to_string()
    }

    pub fn headline(&self) -> Result<Headline> {
        let get = |model: &str, domain: &str| {
            self.bits_per_byte(model, domain).with_context(|| {
                format!(
                    "the evaluation stage `{}` has no bits per byte for model `{model}` on domain \
                     `{domain}`; is `{model}` among its models?",
                    self.evaluation.name
                )
            })
        };
        let change = |before: f64, after: f64| 100.0 * (after - before) / before;
        let tb = get(&self.baseline, &self.target_domain)?;
        let ta = get(&self.adapted, &self.target_domain)?;
        let rb = get(&self.baseline, &self.reference_domain)?;
        let ra = get(&self.adapted, &self.reference_domain)?;
        Ok(Headline {
            baseline: self.baseline.clone(),
            adapted: self.adapted.clone(),
            split: self.split(),
            target_domain: self.target_domain.clone(),
            reference_domain: self.reference_domain.clone(),
            target_bpb_baseline: tb,
            target_bpb_adapted: ta,
            target_change_pct: change(tb, ta),
            reference_bpb_baseline: rb,
            reference_bpb_adapted: ra,
            reference_change_pct: change(rb, ra),
        })
    }

    /// Training tokens of `model` including those of the models it was initialised from.
    pub fn cumulative_tokens(&self, model: &str) -> Option<f64> {
        let mut total = 0.0;
        let mut current = self.model(model)?;
        for _ in 0..=self.models.len() {
            total += current.stage.counts.get("tokens")?.as_f64()?;
            let init = current.stage.counts.get("init").and_then(Value::as_str);
            match init.and_then(|i| self.model(i)) {
                Some(parent) => current = parent,
                None => return Some(total),
            }
        }
        None // a cycle of inits: not a real pipeline
    }

    /// Domains evaluated, in the evaluation's order (target and reference first).
    pub fn domains(&self) -> Vec<String> {
        let mut domains = vec![self.target_domain.clone(), self.reference_domain.clone()];
        if let Some(Value::Object(models)) = self.evaluation.counts.get("lm") {
            for per_domain in models.values() {
                if let Value::Object(d) = per_domain {
                    for name in d.keys() {
                        if !domains.contains(name) {
                            domains.push(name.clone());
                        }
                    }
                }
            }
        }
        domains
    }

    /// Evaluated model names: training stages first (input order), then any other the
    /// evaluation scored.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models.iter().map(|m| m.stage.name.clone()).collect();
        if let Some(Value::Object(models)) = self.evaluation.counts.get("lm") {
            for name in models.keys() {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }
}

/// Writes `report.md`, `report.json` and the PNG plots into `out_dir`. Plots draw text with the
/// first usable font of `fonts` (see [`plots::register_font`]).
pub fn write_report(
    input: &ReportInput,
    out_dir: &Path,
    timing_dir: Option<&Path>,
    fonts: &[PathBuf],
) -> Result<ReportSummary> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let headline = input.headline()?;
    let font = plots::register_font(fonts);
    let plots = markdown::draw_plots(input, out_dir)?;
    let summary = ReportSummary {
        headline,
        plots,
        font,
    };
    let text = render_markdown(input, &summary);
    std::fs::write(out_dir.join(REPORT_FILE), text)
        .with_context(|| format!("writing {}", out_dir.join(REPORT_FILE).display()))?;
    std::fs::write(
        out_dir.join(REPORT_JSON),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    if let Some(dir) = timing_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join(markdown::TIMING_FILE),
            markdown::render_timing(input),
        )?;
    }
    Ok(summary)
}

/// The default font search list: `$DAPT_FONT` first, then [`plots::FONT_CANDIDATES`].
pub fn default_fonts() -> Vec<PathBuf> {
    std::env::var_os("DAPT_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(plots::FONT_CANDIDATES.iter().map(PathBuf::from))
        .collect()
}
