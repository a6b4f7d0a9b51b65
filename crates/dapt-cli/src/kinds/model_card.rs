//! The model card (`README.md`) of every model folder dapt writes, as model hubs expect:
//! YAML metadata (license, library, pipeline tag, base model), then what the model is, the
//! base it started from, its training data mixture with tokens per domain, its training
//! configuration, the pipeline's evaluation scores, and its limitations.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use dapt_model::ModelConfig;
use serde_json::Value;

pub const CARD_FILE: &str = "README.md";

#[derive(Debug, Clone)]
pub struct Card {
    pub title: String,
    /// The model this one started from (a stage, or an imported file).
    pub base_model: Option<String>,
    pub license: String,
    pub model: ModelConfig,
    pub summary: String,
    /// The realised mixture (`mixture.json`): per domain weight, sequences, tokens,
    /// realised share, epochs.
    pub mixture: Option<Value>,
    /// Training tokens of this stage and with its base's.
    pub tokens: Option<(u64, u64)>,
    /// The training loop's configuration.
    pub training: Option<Value>,
    /// Validation loss (nats/token) per domain at the end of training.
    pub validation: Vec<(String, f64)>,
    /// `evaluate` stages' scores of this model, by stage.
    pub evaluation: Vec<(String, Value)>,
}

impl Default for Card {
    fn default() -> Self {
        Self {
            title: String::new(),
            base_model: None,
            license: "unknown".into(),
            model: ModelConfig::Gpt(dapt_model::GptConfig::default()),
            summary: String::new(),
            mixture: None,
            tokens: None,
            training: None,
            validation: Vec::new(),
            evaluation: Vec::new(),
        }
    }
}

/// Writes `dir/README.md`.
pub fn write(dir: &Path, card: &Card) -> anyhow::Result<()> {
    let path = dir.join(CARD_FILE);
    dapt_dag::fsutil::atomic_write(&path, render(card).as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn render(card: &Card) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "---");
    let _ = writeln!(w, "license: {}", card.license);
    let _ = writeln!(w, "library_name: transformers");
    let _ = writeln!(w, "pipeline_tag: text-generation");
    if let Some(base) = &card.base_model {
        let _ = writeln!(w, "base_model: {base}");
    }
    let _ = writeln!(
        w,
        "tags:\n- dapt\n- domain-adaptive-pretraining\n- {}",
        card.model.family()
    );
    let _ = writeln!(w, "---\n");
    let _ = writeln!(w, "# {}\n", card.title);
    let _ = writeln!(w, "{}\n", card.summary);

    let _ = writeln!(w, "## Model\n");
    let class = match &card.model {
        ModelConfig::Gpt(_) => "GPT2LMHeadModel",
        ModelConfig::Llama(_) => "LlamaForCausalLM",
        ModelConfig::Bert(c) => match c.flavour {
            dapt_model::EncoderFlavour::Bert => "BertForMaskedLM",
            dapt_model::EncoderFlavour::Roberta => "RobertaForMaskedLM",
        },
        ModelConfig::T5(_) => "T5ForConditionalGeneration",
    };
    let _ = writeln!(
        w,
        "- Architecture: `{class}` ({} family), {} parameters{}",
        card.model.family(),
        card.model.param_count(),
        if card.model.tie_embeddings() {
            ", output head tied to the embedding"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "- Configuration: `{}`",
        serde_json::to_string(&card.model).expect("plain data")
    );
    let _ = writeln!(
        w,
        "- Base model: {}",
        card.base_model
            .as_deref()
            .unwrap_or("none (trained from scratch)")
    );
    let _ = writeln!(
        w,
        "\nLoad it with `AutoModelForCausalLM.from_pretrained(DIR)` and \
         `AutoTokenizer.from_pretrained(DIR)`; sample from it with `dapt generate`.\n"
    );

    if let Some(mixture) = &card.mixture {
        let _ = writeln!(w, "## Training data\n");
        if let Some((tokens, total)) = card.tokens {
            let _ = writeln!(
                w,
                "{tokens} training tokens in this stage ({total} including its base's training in this pipeline).\n"
            );
        }
        let _ = writeln!(
            w,
            "| domain | weight | sequences | tokens | share | epochs |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
        if let Some(domains) = mixture.as_object() {
            for (domain, d) in domains {
                let get = |key: &str| d.get(key).cloned().unwrap_or(Value::Null);
                let _ = writeln!(
                    w,
                    "| {domain} | {} | {} | {} | {} | {} |",
                    get("weight"),
                    get("sequences"),
                    get("tokens"),
                    fixed(&get("realised_share"), 4),
                    fixed(&get("epochs"), 4)
                );
            }
        } else {
            let _ = writeln!(w, "| (see mixture) | {mixture} | | | | |");
        }
        let _ = writeln!(w);
    }
    if let Some(training) = &card.training {
        let _ = writeln!(w, "## Training configuration\n");
        let _ = writeln!(
            w,
            "```json\n{}\n```\n",
            serde_json::to_string_pretty(training).expect("plain data")
        );
    }
    if !card.validation.is_empty() || !card.evaluation.is_empty() {
        let _ = writeln!(w, "## Evaluation\n");
    }
    if !card.validation.is_empty() {
        let _ = writeln!(
            w,
            "Validation loss at the end of training (nats per token, the pipeline's held-out split):\n"
        );
        let _ = writeln!(w, "| domain | loss |");
        let _ = writeln!(w, "|---|---:|");
        for (domain, loss) in &card.validation {
            let _ = writeln!(w, "| {domain} | {loss:.4} |");
        }
        let _ = writeln!(w);
    }
    for (stage, scores) in &card.evaluation {
        let _ = writeln!(w, "Scores of evaluate stage `{stage}`:\n");
        if let Some(lm) = scores.get("lm").and_then(Value::as_object) {
            let _ = writeln!(w, "| domain | bits per byte | perplexity | tokens |");
            let _ = writeln!(w, "|---|---:|---:|---:|");
            for (domain, s) in lm {
                let _ = writeln!(
                    w,
                    "| {domain} | {} | {} | {} |",
                    fixed(&s["bits_per_byte"], 4),
                    fixed(&s["perplexity"], 2),
                    s["tokens"]
                );
            }
            let _ = writeln!(w);
        }
        if let Some(sentiment) = scores.get("sentiment").and_then(Value::as_object) {
            let _ = writeln!(
                w,
                "| sentiment dataset | probe accuracy | probe macro-F1 | zero-shot accuracy |"
            );
            let _ = writeln!(w, "|---|---:|---:|---:|");
            for (dataset, s) in sentiment {
                let _ = writeln!(
                    w,
                    "| {dataset} | {} | {} | {} |",
                    fixed(&s["probe"]["accuracy"], 4),
                    fixed(&s["probe"]["macro_f1"], 4),
                    fixed(&s["zero_shot"]["accuracy"], 4)
                );
            }
            let _ = writeln!(w);
        }
    }
    let _ = writeln!(w, "## Limitations\n");
    let _ = writeln!(
        w,
        "- Trained or adapted by an automated pipeline on a small corpus; it has had no \
         instruction tuning, safety tuning or human evaluation beyond the scores above.\n\
         - Financial text generated by it can be fluent and wrong: never use it for \
         financial decisions.\n\
         - Scores are from this pipeline's own held-out splits; they say how it compares with \
         the pipeline's other models, not how it compares with published models.\n\
         - It inherits the biases of its base model and its training corpora."
    );
    w
}

fn fixed(value: &Value, digits: usize) -> String {
    value
        .as_f64()
        .map_or_else(|| "—".into(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_has_metadata_mixture_and_limitations() {
        let card = Card {
            title: "continue_mix".into(),
            base_model: Some("SmolLM2-135M-Instruct.Q4_1.gguf".into()),
            license: "apache-2.0".into(),
            mixture: Some(serde_json::json!({"financial": {"weight": 0.5,
                "sequences": 10, "tokens": 1280, "realised_share": 0.5, "epochs": 0.01}})),
            tokens: Some((2560, 2560)),
            validation: vec![("financial".into(), 2.5)],
            ..Card::default()
        };
        let text = render(&card);
        assert!(text.starts_with("---\nlicense: apache-2.0\n"), "{text}");
        assert!(text.contains("base_model: SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(
            text.contains("| financial | 0.5 | 10 | 1280 | 0.5000 | 0.0100 |"),
            "{text}"
        );
        assert!(text.contains("| financial | 2.5000 |"));
        assert!(text.contains("## Limitations"));
    }
}
