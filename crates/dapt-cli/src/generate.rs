//! `dapt generate`: samples text from the model a stage holds (`model`, `pretrain` or
//! `continue`), so a user can read what adaptation did to it. The prompt is encoded with the
//! model's own `tokenizer.json`; the text streams to stdout as it is generated; generation
//! stops at `<|endoftext|>`, the model's end-of-sequence token, or `--max-tokens`.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::{Context, ensure};
use dapt_dag::Pipeline;
use dapt_dag::manifest::StageDir;
use dapt_model::{Sampling, generate, load_exported};

use crate::kinds::TOKENIZER_FILE;
use crate::kinds::training::model_dir;

pub struct Request {
    pub stage: String,
    pub prompt: String,
    pub sampling: Sampling,
}

/// Generates from `request.stage`'s model, writing the prompt and the continuation to `out`.
/// Returns the continuation.
pub fn run(pipeline: &Pipeline, request: &Request, out: &mut dyn Write) -> anyhow::Result<String> {
    let spec = pipeline.stage(&request.stage).with_context(|| {
        format!(
            "no stage `{}` in {}",
            request.stage,
            pipeline.file.display()
        )
    })?;
    let dir = model_dir(&StageDir::new(&pipeline.workdir, &spec.name).out());
    ensure!(
        dir.join(dapt_model::CONFIG_FILE).is_file(),
        "stage `{}` holds no model yet ({} is missing); run `dapt run {}` first",
        spec.name,
        dir.join(dapt_model::CONFIG_FILE).display(),
        spec.name
    );
    let tokenizer_path = dir.join(TOKENIZER_FILE);
    let tokenizer = dapt_tokenize::load_tokenizer(&tokenizer_path)?;
    let (model, _) = load_exported(&dir, &dapt_model::burn::prelude::Device::flex())?;
    let encoding = tokenizer
        .encode(request.prompt.as_str(), false)
        .map_err(|e| anyhow::anyhow!("encoding the prompt: {e}"))?;
    let prompt = encoding.get_ids();
    ensure!(!prompt.is_empty(), "the prompt encodes to no tokens");
    let mut sampling = request.sampling.clone();
    sampling
        .stop
        .push(dapt_tokenize::end_of_text_id(&tokenizer)?);
    sampling.stop.extend(eos_ids(&dir));
    write!(out, "{}", request.prompt)?;
    out.flush()?;
    let mut generated: Vec<u32> = Vec::new();
    let mut shown = String::new();
    let mut write_error = None;
    generate(&model, prompt, &sampling, &mut |token| {
        generated.push(token);
        // Decoding the whole continuation each time keeps multi-byte characters whole.
        if let Ok(text) = tokenizer.decode(&generated, false)
            && text.len() > shown.len()
            && text.starts_with(&shown)
        {
            if let Err(e) = write!(out, "{}", &text[shown.len()..]).and_then(|()| out.flush()) {
                write_error = Some(e);
                return ControlFlow::Break(());
            }
            shown = text;
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let text = tokenizer
        .decode(&generated, false)
        .map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
    if text.len() > shown.len() && text.starts_with(&shown) {
        write!(out, "{}", &text[shown.len()..])?;
    }
    writeln!(out)?;
    Ok(text)
}

/// `eos_token_id` of `generation_config.json` or `config.json`, a number or a list.
fn eos_ids(dir: &std::path::Path) -> Vec<u32> {
    let mut ids = Vec::new();
    for file in ["generation_config.json", dapt_model::CONFIG_FILE] {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        match &json["eos_token_id"] {
            serde_json::Value::Number(n) => ids.extend(n.as_u64().map(|n| n as u32)),
            serde_json::Value::Array(list) => {
                ids.extend(list.iter().filter_map(|v| v.as_u64()).map(|n| n as u32))
            }
            _ => {}
        }
    }
    ids
}
