//! `kind = "model"`: brings in a pretrained model, `from = "PATH"` (relative to the
//! pipeline file, or absolute):
//!
//! - a Hugging Face folder: `config.json` (`gpt2` or `llama`), `model.safetensors` or a
//!   sharded `model.safetensors.index.json` (F32, F16 or BF16), and `tokenizer.json`;
//! - a GGUF file (llama.cpp's format): tensors dequantised to f32, llama.cpp's q/k row
//!   permutation undone, the tokenizer rebuilt from the metadata (`dapt-gguf`).
//!
//! Its `out/model/` is the folder a training stage writes (`config.json`,
//! `model.safetensors` under transformers' names, `tokenizer.json`, a model card), so
//! `continue` takes it as `from`, the `tokenizer` kind takes its tokenizer, and
//! `evaluate` scores it. The files it reads are inputs of its fingerprint (content-hashed):
//! the stage stays fresh while they are unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use dapt_dag::{ParamError, Pipeline, RunReport, StageContext, StageKind, StageSpec, parse_params};
use serde::Deserialize;

use super::docs::params;
use super::model_card::{self, Card};
use super::tokenizer::TOKENIZER_FILE;
use super::training::model_dir;

#[derive(Debug, Deserialize)]
struct Params {
    /// A Hugging Face model folder or a `.gguf` file.
    from: PathBuf,
    /// The license the model card names (e.g. `apache-2.0` for SmolLM2).
    #[serde(default = "default_license")]
    license: String,
}

fn default_license() -> String {
    "unknown".into()
}

pub struct ModelKind;

/// What `from` points at.
enum Source {
    Gguf(PathBuf),
    HuggingFace(PathBuf),
}

impl Source {
    fn of(path: PathBuf) -> anyhow::Result<Self> {
        if path.is_dir() {
            Ok(Self::HuggingFace(path))
        } else if path.is_file() {
            Ok(Self::Gguf(path))
        } else {
            bail!(
                "`from` = {}: no such file or folder (a Hugging Face model folder or a .gguf file; \
                 `just model` fetches SmolLM2 into models/)",
                path.display()
            )
        }
    }

    /// The files whose contents decide the import.
    fn files(&self) -> anyhow::Result<Vec<PathBuf>> {
        match self {
            Self::Gguf(path) => Ok(vec![path.clone()]),
            Self::HuggingFace(dir) => {
                let mut files = Vec::new();
                for entry in
                    std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?
                {
                    let path = entry?.path();
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    if name == "config.json"
                        || name == TOKENIZER_FILE
                        || name.ends_with(".safetensors")
                        || name == dapt_model::WEIGHTS_INDEX_FILE
                    {
                        files.push(path);
                    }
                }
                files.sort();
                Ok(files)
            }
        }
    }
}

impl StageKind for ModelKind {
    fn name(&self) -> &'static str {
        "model"
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        let p: Params = parse_params(params)?;
        if p.from.as_os_str().is_empty() {
            return Err(vec![ParamError::invalid(
                "from",
                "name a Hugging Face model folder or a .gguf file",
            )]);
        }
        Ok(())
    }

    fn deps(&self, stage: &StageSpec, pipeline: &Pipeline) -> anyhow::Result<Vec<PathBuf>> {
        let p: Params = params(stage)?;
        let path = pipeline.root.join(&p.from);
        // A missing source is reported when the stage runs, with the fix.
        match Source::of(path.clone()) {
            Ok(source) => source.files(),
            Err(_) => Ok(vec![path]),
        }
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        let p: Params = params(ctx.stage)?;
        let source = Source::of(ctx.root().join(&p.from))?;
        let out = model_dir(&ctx.out_dir);
        let mut counts = BTreeMap::new();
        let hf_dir = match &source {
            Source::Gguf(path) => {
                ctx.status("dequantising");
                let staging = ctx.out_dir.join("gguf-import");
                let summary = dapt_gguf::write_hf_folder(path, &staging)
                    .with_context(|| format!("importing {}", path.display()))?;
                let mut summary = serde_json::to_value(&summary)?;
                // Paths of the staging folder: not part of what was imported.
                summary.as_object_mut().map(|s| s.remove("files"));
                counts.insert("gguf".into(), summary);
                staging
            }
            Source::HuggingFace(dir) => dir.clone(),
        };
        let tokenizer = hf_dir.join(TOKENIZER_FILE);
        ensure!(
            tokenizer.is_file(),
            "{}: no {TOKENIZER_FILE}; dapt encodes with Hugging Face `tokenizers` files \
             (convert a sentencepiece model with transformers' `AutoTokenizer.save_pretrained`)",
            hf_dir.display()
        );
        let tokenizer = dapt_tokenize::load_tokenizer(&tokenizer)
            .with_context(|| format!("loading {}", tokenizer.display()))?;
        ctx.status("loading weights");
        let device = dapt_model::burn::prelude::Device::flex();
        let (model, config) = dapt_model::load_exported(&hf_dir, &device)?;
        ctx.status("writing");
        dapt_model::export_model(&model, &config, &out)?;
        // Saved as the tokenizer kind saves it (`from` this stage), so the bytes agree and
        // `continue` sees the model's own tokenizer.
        dapt_tokenize::save_tokenizer(&tokenizer, &out.join(TOKENIZER_FILE))?;
        for extra in [
            "tokenizer_config.json",
            "special_tokens_map.json",
            "generation_config.json",
        ] {
            let file = hf_dir.join(extra);
            if file.is_file() {
                copy(&file, &out.join(extra))?;
            }
        }
        if let Source::Gguf(_) = source {
            std::fs::remove_dir_all(&hf_dir)
                .with_context(|| format!("removing {}", hf_dir.display()))?;
        }
        let name = p.from.file_name().map_or_else(
            || p.from.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        model_card::write(
            &out,
            &Card {
                title: format!("{name} (imported by dapt)"),
                base_model: Some(name.clone()),
                license: p.license.clone(),
                model: config.clone(),
                summary: format!(
                    "Imported from `{}` without training: the weights as dequantised to f32 and \
                     renamed to transformers' layout.",
                    p.from.display()
                ),
                ..Card::default()
            },
        )?;
        counts.insert("source".into(), p.from.display().to_string().into());
        counts.insert("params".into(), (config.param_count() as u64).into());
        counts.insert("model".into(), serde_json::to_value(&config)?);
        counts.insert("init".into(), name.into());
        Ok(RunReport {
            counts,
            conservation: None,
        })
    }
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    dapt_dag::fsutil::atomic_write(to, &bytes).with_context(|| format!("writing {}", to.display()))
}
