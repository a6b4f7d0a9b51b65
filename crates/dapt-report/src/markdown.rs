//! The markdown text of the report, and the plots it links.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::plots::{BarSeries, Line, Panel, grouped_bars, line_panels};
use crate::{MODEL_KINDS, ReportInput, ReportSummary, StageInfo, at, num};

pub const PLOT_LOSS: &str = "loss_curves.png";
pub const PLOT_BPB: &str = "bits_per_byte.png";
pub const PLOT_MIXTURE: &str = "mixture.png";
pub const PLOT_FUNNEL: &str = "data_funnel.png";
pub const PLOT_FERTILITY: &str = "fertility.png";

const MISSING: &str = "–";
/// Rejection reasons listed per data stage (the rest are summed).
const MAX_REASONS: usize = 8;

/// Bits per byte and losses: 4 decimals.
pub(crate) fn f4(v: Option<f64>) -> String {
    v.map_or(MISSING.into(), |v| format!("{v:.4}"))
}

fn f2(v: Option<f64>) -> String {
    v.map_or(MISSING.into(), |v| format!("{v:.2}"))
}

/// Integers as recorded (no separators, so they can be compared with the manifest).
fn int(v: Option<f64>) -> String {
    v.map_or(MISSING.into(), |v| format!("{}", v.round() as i64))
}

fn signed_pct(v: f64) -> String {
    format!("{v:+.2}%")
}

fn data_stages(input: &ReportInput) -> Vec<&StageInfo> {
    input
        .stages
        .iter()
        .filter(|s| s.conservation.is_some() && !MODEL_KINDS.contains(&s.kind.as_str()))
        .collect()
}

fn tokenize_stage(input: &ReportInput) -> Option<&StageInfo> {
    input.stages.iter().rev().find(|s| s.kind == "tokenize")
}

/// Rejection reasons of a data stage, largest first.
fn reasons(stage: &StageInfo) -> Vec<(String, u64)> {
    let counts = stage.counts_value();
    let map = at(&counts, &["rejected_by_filter"])
        .or_else(|| at(&counts, &["by_corpus", "reasons"]))
        .and_then(Value::as_object);
    let mut reasons: Vec<(String, u64)> = map
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    reasons
}

fn mixture_domains(input: &ReportInput) -> Vec<String> {
    let mut domains: Vec<String> = Vec::new();
    for m in &input.models {
        if let Some(Value::Object(mix)) = m.stage.counts.get("mixture") {
            for d in mix.keys() {
                if !domains.contains(d) {
                    domains.push(d.clone());
                }
            }
        }
    }
    domains
}

fn fertility_domains(stage: &StageInfo) -> Vec<String> {
    match stage.counts.get("fertility") {
        Some(Value::Object(f)) => f.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Draws every plot there is data for; returns their file names.
pub(crate) fn draw_plots(input: &ReportInput, out_dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let models = input.model_names();
    let domains = input.domains();

    // Loss curves, one panel per model with a log.
    let panels: Vec<Panel> = input
        .models
        .iter()
        .filter_map(|m| {
            let log = m.log.as_ref()?;
            let mut lines = vec![Line {
                name: "train".into(),
                points: log
                    .rows
                    .iter()
                    .map(|r| (r.step as f64, r.train_loss))
                    .collect(),
                markers: false,
            }];
            let mut sets: Vec<&String> =
                log.rows.iter().flat_map(|r| r.validation.keys()).collect();
            sets.sort();
            sets.dedup();
            for set in sets {
                lines.push(Line {
                    name: format!("val {set}"),
                    points: log
                        .rows
                        .iter()
                        .filter_map(|r| Some((r.step as f64, *r.validation.get(set)?)))
                        .collect(),
                    markers: true,
                });
            }
            Some(Panel {
                title: m.stage.name.clone(),
                lines,
            })
        })
        .collect();
    if !panels.is_empty() {
        line_panels(
            &out_dir.join(PLOT_LOSS),
            "Training and validation loss",
            "step",
            "loss (nats/token)",
            &panels,
        )?;
        written.push(PLOT_LOSS.to_string());
    }

    let mut bars = |file: &str,
                    title: &str,
                    y_label: &str,
                    groups: &[String],
                    series: &[BarSeries]|
     -> Result<()> {
        grouped_bars(&out_dir.join(file), title, y_label, groups, series)?;
        written.push(file.to_string());
        Ok(())
    };

    // Bits per byte: groups = domains, bars = models.
    let series: Vec<BarSeries> = models
        .iter()
        .map(|m| BarSeries {
            name: m.clone(),
            values: domains.iter().map(|d| input.bits_per_byte(m, d)).collect(),
        })
        .collect();
    bars(
        PLOT_BPB,
        &format!(
            "Bits per byte on the {} split (lower is better)",
            input.split()
        ),
        "bits per byte",
        &domains,
        &series,
    )?;

    // Realised mixture: groups = models, bars = domains.
    let mix_domains = mixture_domains(input);
    if !mix_domains.is_empty() {
        let names: Vec<String> = input.models.iter().map(|m| m.stage.name.clone()).collect();
        let series: Vec<BarSeries> = mix_domains
            .iter()
            .map(|d| BarSeries {
                name: d.clone(),
                values: input
                    .models
                    .iter()
                    .map(|m| num(&m.stage.counts_value(), &["mixture", d, "realised_share"]))
                    .collect(),
            })
            .collect();
        bars(
            PLOT_MIXTURE,
            "Realised training mixture (share of sequences)",
            "share",
            &names,
            &series,
        )?;
    }

    // Data funnel: groups = data stages, bars = in / kept / rejected.
    let stages = data_stages(input);
    if !stages.is_empty() {
        let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
        let pick = |f: fn(&crate::Conservation) -> u64| -> Vec<Option<f64>> {
            stages
                .iter()
                .map(|s| s.conservation.as_ref().map(|c| f(c) as f64))
                .collect()
        };
        let series = vec![
            BarSeries {
                name: "documents in".into(),
                values: pick(|c| c.input),
            },
            BarSeries {
                name: "kept".into(),
                values: pick(|c| c.kept),
            },
            BarSeries {
                name: "rejected".into(),
                values: pick(|c| c.rejected),
            },
        ];
        bars(
            PLOT_FUNNEL,
            "Data funnel (documents)",
            "documents",
            &names,
            &series,
        )?;
    }

    // Fertility: groups = domains, bars = bytes/token and tokens/word.
    if let Some(stage) = tokenize_stage(input) {
        let fert_domains = fertility_domains(stage);
        if !fert_domains.is_empty() {
            let counts = stage.counts_value();
            let series: Vec<BarSeries> = ["bytes_per_token", "tokens_per_word"]
                .iter()
                .map(|key| BarSeries {
                    name: key.replace('_', " "),
                    values: fert_domains
                        .iter()
                        .map(|d| num(&counts, &["fertility", d, key]))
                        .collect(),
                })
                .collect();
            bars(
                PLOT_FERTILITY,
                "Tokenizer fertility per domain",
                "",
                &fert_domains,
                &series,
            )?;
        }
    }
    Ok(written)
}

fn image(out: &mut String, summary: &ReportSummary, file: &str, alt: &str) {
    if summary.plots.iter().any(|p| p == file) {
        let _ = writeln!(out, "\n![{alt}]({file})");
    }
}

/// The whole `report.md`.
pub fn render_markdown(input: &ReportInput, summary: &ReportSummary) -> String {
    let h = &summary.headline;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# dapt report: {}\n", input.pipeline);
    let gained = if h.target_change_pct <= 0.0 {
        "gained"
    } else {
        "lost"
    };
    let _ = writeln!(
        w,
        "- **{} text ({} split): adaptation {gained} {:.2}% bits per byte** — `{}` {} → `{}` {} bits/byte ({}).",
        capitalise(&h.target_domain),
        h.split,
        h.target_change_pct.abs(),
        h.baseline,
        f4(Some(h.target_bpb_baseline)),
        h.adapted,
        f4(Some(h.target_bpb_adapted)),
        signed_pct(h.target_change_pct),
    );
    let cost = if h.reference_change_pct >= 0.0 {
        "cost"
    } else {
        "also gained"
    };
    let _ = writeln!(
        w,
        "- **{} text: adaptation {cost} {:.2}% bits per byte** — `{}` {} → `{}` {} bits/byte ({}).",
        capitalise(&h.reference_domain),
        h.reference_change_pct.abs(),
        h.baseline,
        f4(Some(h.reference_bpb_baseline)),
        h.adapted,
        f4(Some(h.reference_bpb_adapted)),
        signed_pct(h.reference_change_pct),
    );
    // Every other model (the ablations) against the same baseline, in one line each.
    for other in input
        .models
        .iter()
        .map(|m| m.stage.name.as_str())
        .filter(|name| *name != h.baseline && *name != h.adapted)
    {
        let change = |domain: &str, before: f64| {
            input.bits_per_byte(other, domain).map(|after| {
                format!(
                    "{domain} {} ({})",
                    f4(Some(after)),
                    signed_pct(100.0 * (after - before) / before)
                )
            })
        };
        if let (Some(target), Some(reference)) = (
            change(&h.target_domain, h.target_bpb_baseline),
            change(&h.reference_domain, h.reference_bpb_baseline),
        ) {
            let _ = writeln!(
                w,
                "- **`{other}`** against `{}`: {target}, {reference} bits/byte.",
                h.baseline
            );
        }
    }
    for name in [&h.baseline, &h.adapted] {
        let Some(model) = input.model(name) else {
            continue;
        };
        let c = model.stage.counts_value();
        let budget = Budget::of(input, name);
        let stage_tokens = num(&c, &["tokens"]);
        let total = match (budget.tokens, stage_tokens) {
            (Some(all), Some(own)) if all > own => {
                format!(", {} in total with its initialisation's", int(Some(all)))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            w,
            "- **Compute budget of `{name}`**: {} training tokens in this stage{total}, for {} \
             parameters: {} of the Chinchilla compute-optimal {} tokens.",
            int(stage_tokens),
            int(budget.params),
            budget.share(),
            int(budget.optimal),
        );
    }
    if summary.font.is_none() {
        let _ = writeln!(
            w,
            "- Plots have no text: no font was found (set `DAPT_FONT` to a .ttf file, or install \
             DejaVu Sans)."
        );
    }

    models_section(w, input);
    bpb_section(w, input, summary);
    sentiment_section(w, input);
    objectives_section(w, input);
    mixture_section(w, input, summary);
    funnel_section(w, input, summary);
    fertility_section(w, input, summary);
    training_section(w, input, summary);
    out
}

/// A model's training compute against the Chinchilla optimum (20 tokens per parameter), from
/// its `chinchilla` counts: `tokens` there include the tokens of the model it started from.
struct Budget {
    tokens: Option<f64>,
    optimal: Option<f64>,
    params: Option<f64>,
}

impl Budget {
    fn of(input: &ReportInput, model: &str) -> Self {
        let c = input
            .model(model)
            .map(|m| m.stage.counts_value())
            .unwrap_or(Value::Null);
        Budget {
            tokens: num(&c, &["chinchilla", "tokens"])
                .or_else(|| num(&c, &["tokens_total"]))
                .or_else(|| input.cumulative_tokens(model)),
            optimal: num(&c, &["chinchilla", "optimal_tokens"]),
            params: num(&c, &["chinchilla", "params"]).or_else(|| num(&c, &["params"])),
        }
    }

    fn share(&self) -> String {
        match (self.tokens, self.optimal) {
            (Some(t), Some(o)) if o > 0.0 => format!("{:.2}%", 100.0 * t / o),
            _ => MISSING.into(),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn models_section(w: &mut String, input: &ReportInput) {
    if input.models.is_empty() {
        return;
    }
    let _ = writeln!(w, "\n## Models\n");
    let _ = writeln!(
        w,
        "| model | kind | init | parameters | architecture | steps | training tokens | \
         tokens with init | Chinchilla-optimal tokens | budget used | predicted loss |"
    );
    let _ = writeln!(w, "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for m in &input.models {
        let c = m.stage.counts_value();
        let arch = match at(&c, &["model"]) {
            Some(cfg) => {
                let family = at(cfg, &["family"])
                    .and_then(Value::as_str)
                    .unwrap_or("gpt");
                let heads = match at(cfg, &["n_kv_head"]) {
                    Some(kv) if kv != at(cfg, &["n_head"]).unwrap_or(&Value::Null) => {
                        format!("{}H/{}KV", int(num(cfg, &["n_head"])), int(kv.as_f64()))
                    }
                    _ => format!("{}H", int(num(cfg, &["n_head"]))),
                };
                format!(
                    "{family} {}L {heads} d{} ctx{} V{}",
                    int(num(cfg, &["n_layer"])),
                    int(num(cfg, &["d_model"])),
                    int(num(cfg, &["context"])),
                    int(num(cfg, &["vocab_size"])),
                )
            }
            None => MISSING.into(),
        };
        let budget = Budget::of(input, &m.stage.name);
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.stage.name,
            m.stage.kind,
            at(&c, &["init"]).and_then(Value::as_str).unwrap_or(MISSING),
            int(num(&c, &["params"])),
            arch,
            int(num(&c, &["steps"])),
            int(num(&c, &["tokens"])),
            int(budget.tokens),
            int(budget.optimal),
            budget.share(),
            f4(num(&c, &["chinchilla", "predicted_loss"])),
        );
    }
}

fn bpb_section(w: &mut String, input: &ReportInput, summary: &ReportSummary) {
    let domains = input.domains();
    let eval = input.evaluation.counts_value();
    let _ = writeln!(
        w,
        "\n## Bits per byte per domain ({} split)\n\nSummed token loss of each document's text \
         over its UTF-8 bytes (lm-evaluation-harness's bits per byte; tokenizer-independent). \
         Token loss in nats per token; perplexity per token.\n",
        input.split()
    );
    let mut header = "| model |".to_string();
    let mut rule = "|---|".to_string();
    for d in &domains {
        let _ = write!(header, " {d} bits/byte | {d} token loss | {d} perplexity |");
        rule.push_str("---:|---:|---:|");
    }
    let _ = writeln!(w, "{header}\n{rule}");
    for m in input.model_names() {
        let mut row = format!("| `{m}` |");
        for d in &domains {
            let _ = write!(
                row,
                " {} | {} | {} |",
                f4(num(&eval, &["lm", &m, d, "bits_per_byte"])),
                f4(num(&eval, &["lm", &m, d, "token_loss"])),
                f2(num(&eval, &["lm", &m, d, "perplexity"])),
            );
        }
        let _ = writeln!(w, "{row}");
    }
    // What was scored (the same documents for every model).
    if let Some(first) = input.model_names().first() {
        let _ = writeln!(
            w,
            "\n| domain | documents | tokens scored | bytes |\n|---|---:|---:|---:|"
        );
        for d in &domains {
            let _ = writeln!(
                w,
                "| {d} | {} | {} | {} |",
                int(num(&eval, &["lm", first, d, "documents"])),
                int(num(&eval, &["lm", first, d, "tokens"])),
                int(num(&eval, &["lm", first, d, "bytes"])),
            );
        }
    }
    image(
        w,
        summary,
        crate::markdown::PLOT_BPB,
        "bits per byte per domain and model",
    );
}

fn sentiment_section(w: &mut String, input: &ReportInput) {
    let eval = input.evaluation.counts_value();
    let Some(Value::Object(per_model)) = at(&eval, &["sentiment"]) else {
        return;
    };
    let _ = writeln!(
        w,
        "\n## Sentiment\n\nLinear probe on mean-pooled final hidden states (trained on the train \
         split), zero-shot label-word likelihood after `…\\nSentiment:`, and the majority class of \
         the train split; all scored on the test split.\n"
    );
    let _ = writeln!(
        w,
        "| model | dataset | train | test | probe acc | probe macro-F1 | zero-shot acc | zero-shot macro-F1 | majority acc | majority macro-F1 |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in input.model_names() {
        let Some(Value::Object(datasets)) = per_model.get(&m) else {
            continue;
        };
        for (dataset, s) in datasets {
            let _ = writeln!(
                w,
                "| `{m}` | {dataset} | {} | {} | {} | {} | {} | {} | {} | {} |",
                int(num(s, &["train_examples"])),
                int(num(s, &["test_examples"])),
                f4(num(s, &["probe", "accuracy"])),
                f4(num(s, &["probe", "macro_f1"])),
                f4(num(s, &["zero_shot", "accuracy"])),
                f4(num(s, &["zero_shot", "macro_f1"])),
                f4(num(s, &["majority", "accuracy"])),
                f4(num(s, &["majority", "macro_f1"])),
            );
        }
    }
}

/// One model's line in the objectives table: its own loss on each domain (next-token for
/// decoders, masked-token for encoders) and its change from the model it continued.
struct ObjectiveRow {
    name: String,
    family: String,
    objective: String,
    init: String,
    /// Domain -> loss in nats per predicted token.
    loss: BTreeMap<String, f64>,
    pseudo_perplexity: BTreeMap<String, f64>,
    /// Mean probe accuracy over the sentiment datasets.
    probe: Option<f64>,
}

/// The families side by side when the evaluation scored encoders or encoder-decoders too
/// (`masked_lm`, `span_lm`): which
/// adapted most to the target domain, which kept the reference domain best, which probes
/// sentiment best. Losses of different objectives are not comparable with each other; each
/// model's change from its own initialisation is.
fn objectives_section(w: &mut String, input: &ReportInput) {
    let eval = input.evaluation.counts_value();
    if at(&eval, &["masked_lm"]).is_none() && at(&eval, &["span_lm"]).is_none() {
        return;
    }
    let (target, reference) = (&input.target_domain, &input.reference_domain);
    let rows: Vec<ObjectiveRow> = input
        .models
        .iter()
        .map(|m| {
            let c = m.stage.counts_value();
            let name = m.stage.name.clone();
            let objective = at(&c, &["train", "objective", "kind"])
                .and_then(Value::as_str)
                .unwrap_or("clm")
                .to_string();
            let mut loss = BTreeMap::new();
            let mut pseudo_perplexity = BTreeMap::new();
            for domain in [target, reference] {
                let value = match objective.as_str() {
                    "mlm" => {
                        if let Some(p) =
                            num(&eval, &["masked_lm", &name, domain, "pseudo_perplexity"])
                        {
                            pseudo_perplexity.insert(domain.clone(), p);
                        }
                        num(&eval, &["masked_lm", &name, domain, "masked_loss"])
                    }
                    "span" => num(&eval, &["span_lm", &name, domain, "span_loss"]),
                    _ => num(&eval, &["lm", &name, domain, "token_loss"]),
                };
                if let Some(v) = value {
                    loss.insert(domain.clone(), v);
                }
            }
            let accuracies: Vec<f64> = match at(&eval, &["sentiment", &name]) {
                Some(Value::Object(datasets)) => datasets
                    .values()
                    .filter_map(|d| num(d, &["probe", "accuracy"]))
                    .collect(),
                _ => Vec::new(),
            };
            ObjectiveRow {
                name,
                family: at(&c, &["model", "family"])
                    .and_then(Value::as_str)
                    .unwrap_or("gpt")
                    .to_string(),
                objective,
                init: at(&c, &["init"])
                    .and_then(Value::as_str)
                    .unwrap_or("scratch")
                    .to_string(),
                loss,
                pseudo_perplexity,
                probe: (!accuracies.is_empty())
                    .then(|| accuracies.iter().sum::<f64>() / accuracies.len() as f64),
            }
        })
        .collect();
    let change = |row: &ObjectiveRow, domain: &str| -> Option<f64> {
        let init = rows.iter().find(|r| r.name == row.init)?;
        let (before, after) = (init.loss.get(domain)?, row.loss.get(domain)?);
        Some(100.0 * (after - before) / before)
    };
    let pct = |v: Option<f64>| v.map_or(MISSING.into(), signed_pct);
    let _ = writeln!(
        w,
        "\n## Pre-training objectives side by side\n\nEach model's loss is its own objective's \
         on the {} split, in nats per predicted token: the next token for causal LM (clm), the \
         masked tokens (the same seeded masks for every model) for masked LM (mlm), the \
         sentinels and dropped spans (the same seeded spans) for span corruption (span). \
         Losses of different objectives are not comparable with each other; each model's \
         change from the model it continued is. Pseudo-perplexity (Salazar et al. 2020) scores every token masked alone. Probe: \
         sentiment accuracy of a linear probe on mean-pooled final states (the encoder's, for \
         an encoder-decoder), averaged over the datasets.\n",
        input.split()
    );
    let _ = writeln!(
        w,
        "| model | family | objective | init | {target} loss | {target} change | {reference} loss | {reference} change | {target} pseudo-perplexity | {reference} pseudo-perplexity | probe accuracy |"
    );
    let _ = writeln!(w, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.family,
            row.objective,
            row.init,
            f4(row.loss.get(target).copied()),
            pct(change(row, target)),
            f4(row.loss.get(reference).copied()),
            pct(change(row, reference)),
            f2(row.pseudo_perplexity.get(target).copied()),
            f2(row.pseudo_perplexity.get(reference).copied()),
            f4(row.probe),
        );
    }
    // The answers, from the continued models (those with a change).
    let best = |key: &dyn Fn(&ObjectiveRow) -> Option<f64>| -> Option<(&ObjectiveRow, f64)> {
        rows.iter()
            .filter_map(|r| key(r).map(|v| (r, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    let mut answers = Vec::new();
    if let Some((r, v)) = best(&|r| change(r, target)) {
        answers.push(format!(
            "adapted most to {target} text: `{}` ({}, {} {target} loss from `{}`)",
            r.name,
            r.objective,
            signed_pct(v),
            r.init
        ));
    }
    if let Some((r, v)) = best(&|r| change(r, reference)) {
        answers.push(format!(
            "kept {reference} text best: `{}` ({}, {} {reference} loss)",
            r.name,
            r.objective,
            signed_pct(v)
        ));
    }
    if let Some((r, v)) = best(&|r| r.probe.map(|p| -p)) {
        answers.push(format!(
            "probes sentiment best: `{}` ({}, accuracy {:.4})",
            r.name, r.objective, -v
        ));
    }
    if !answers.is_empty() {
        let _ = writeln!(w, "\nOn this run: {}.", answers.join("; "));
    }
}

fn mixture_section(w: &mut String, input: &ReportInput, summary: &ReportSummary) {
    let domains = mixture_domains(input);
    if domains.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\n## Training mixture\n\n| model | domain | weight | realised share | sequences | tokens | epochs |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for m in &input.models {
        let c = m.stage.counts_value();
        for d in &domains {
            if at(&c, &["mixture", d]).is_none() {
                continue;
            }
            let _ = writeln!(
                w,
                "| `{}` | {d} | {} | {} | {} | {} | {} |",
                m.stage.name,
                f4(num(&c, &["mixture", d, "weight"])),
                f4(num(&c, &["mixture", d, "realised_share"])),
                int(num(&c, &["mixture", d, "sequences"])),
                int(num(&c, &["mixture", d, "tokens"])),
                f4(num(&c, &["mixture", d, "epochs"])),
            );
        }
    }
    image(w, summary, PLOT_MIXTURE, "realised mixture per model");
}

fn funnel_section(w: &mut String, input: &ReportInput, summary: &ReportSummary) {
    let stages = data_stages(input);
    if stages.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\n## Data funnel\n\n| stage | kind | documents in | kept | rejected | rejection reasons |\n|---|---|---:|---:|---:|---|"
    );
    for s in stages {
        let c = s.conservation.expect("data stages have conservation");
        let all = reasons(s);
        let mut reasons: Vec<String> = all
            .iter()
            .take(MAX_REASONS)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if all.len() > MAX_REASONS {
            let rest: u64 = all[MAX_REASONS..].iter().map(|(_, n)| n).sum();
            reasons.push(format!("{} more reasons {rest}", all.len() - MAX_REASONS));
        }
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} |",
            s.name,
            s.kind,
            c.input,
            c.kept,
            c.rejected,
            if reasons.is_empty() {
                MISSING.to_string()
            } else {
                reasons.join(", ")
            }
        );
    }
    image(
        w,
        summary,
        PLOT_FUNNEL,
        "documents in and kept per data stage",
    );
}

fn fertility_section(w: &mut String, input: &ReportInput, summary: &ReportSummary) {
    let Some(stage) = tokenize_stage(input) else {
        return;
    };
    let domains = fertility_domains(stage);
    if domains.is_empty() {
        return;
    }
    let c = stage.counts_value();
    let _ = writeln!(
        w,
        "\n## Tokenizer fertility (`{}`)\n\nFewer tokens per word and more bytes per token mean \
         the tokenizer fits the domain better.\n\n| domain | bytes per token | tokens per word |\n|---|---:|---:|",
        stage.name
    );
    for d in &domains {
        let _ = writeln!(
            w,
            "| {d} | {} | {} |",
            f4(num(&c, &["fertility", d, "bytes_per_token"])),
            f4(num(&c, &["fertility", d, "tokens_per_word"])),
        );
    }
    image(w, summary, PLOT_FERTILITY, "tokenizer fertility per domain");
}

fn training_section(w: &mut String, input: &ReportInput, summary: &ReportSummary) {
    if input.models.is_empty() {
        return;
    }
    let mut sets: Vec<String> = Vec::new();
    for m in &input.models {
        if let Some(Value::Object(v)) = m.stage.counts.get("validation") {
            for k in v.keys() {
                if !sets.contains(k) {
                    sets.push(k.clone());
                }
            }
        }
    }
    let mut header = "| model | final train loss |".to_string();
    let mut rule = "|---|---:|".to_string();
    for s in &sets {
        let _ = write!(header, " validation {s} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(
        w,
        "\n## Training\n\nLosses in nats per token.\n\n{header}\n{rule}"
    );
    for m in &input.models {
        let c = m.stage.counts_value();
        let mut row = format!(
            "| `{}` | {} |",
            m.stage.name,
            f4(num(&c, &["final_train_loss"]))
        );
        for s in &sets {
            let _ = write!(row, " {} |", f4(num(&c, &["validation", s])));
        }
        let _ = writeln!(w, "{row}");
    }
    image(
        w,
        summary,
        PLOT_LOSS,
        "training and validation loss per model",
    );
    let _ = writeln!(
        w,
        "\nWall times and throughput of this run are in `../timing/{TIMING_FILE}`, apart from \
         this report, so that the same results always give the same report."
    );
}

/// The report stage's `timing/timing.md`: wall time of every summarised stage and the
/// training throughput. Measurements of one run, kept out of `report.md`.
pub const TIMING_FILE: &str = "timing.md";

/// Renders [`TIMING_FILE`].
pub fn render_timing(input: &ReportInput) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "# Timing of `{}`\n\n| stage | kind | wall time (s) | tokens/s |\n|---|---|---:|---:|",
        input.pipeline
    );
    let stages = input
        .stages
        .iter()
        .chain(input.models.iter().map(|m| &m.stage))
        .chain(std::iter::once(&input.evaluation));
    for stage in stages {
        let rate = num(&stage.counts_value(), &["tokens_per_s"]);
        let _ = writeln!(
            w,
            "| `{}` | {} | {:.1} | {} |",
            stage.name,
            stage.kind,
            stage.seconds,
            rate.map_or_else(|| "".to_string(), |r| f2(Some(r)))
        );
    }
    w
}
