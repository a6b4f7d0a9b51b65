//! Exported model: `model.safetensors` (burn-store, parameter paths as tensor names) and
//! `config.json` = `{"architecture": "dapt-gpt", ...GptConfig}`.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::config::GptConfig;
use crate::fsutil::atomic_write;
use crate::model::Gpt;

/// Value of the `architecture` key in an exported `config.json`.
pub const ARCHITECTURE: &str = "dapt-gpt";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

/// The model's weights as safetensors bytes. burn's default metadata lives in a `HashMap`
/// whose order changes from run to run; without it, equal weights give equal bytes (and equal
/// content hashes downstream).
pub fn weights_to_safetensors(model: &Gpt) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).clear_metadata();
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("serialising weights: {e}"))?;
    store
        .get_bytes()
        .map_err(|e| anyhow::anyhow!("serialising weights: {e}"))
}

/// Overwrites `model`'s weights with those in `bytes`; every parameter must be present and no
/// extra tensor may be left over, so a mismatched architecture fails loudly.
pub fn load_safetensors_weights(model: Gpt, bytes: Vec<u8>, origin: &Path) -> Result<Gpt> {
    let mut model = model;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("loading weights from {}: {e}", origin.display()))?;
    ensure!(
        result.missing.is_empty() && result.unused.is_empty() && result.errors.is_empty(),
        "weights in {} do not fit the model (missing {:?}, unexpected {:?}, errors {:?}); \
         the model config must match the one the weights were trained with",
        origin.display(),
        result.missing,
        result.unused,
        result.errors
    );
    Ok(model)
}

/// Writes `dir/model.safetensors` and `dir/config.json` (each atomically).
pub fn export_model(model: &Gpt, config: &GptConfig, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    atomic_write(&dir.join(WEIGHTS_FILE), &weights_to_safetensors(model)?)?;
    let mut json = serde_json::to_value(config)?;
    json.as_object_mut()
        .expect("GptConfig serialises to an object")
        .insert("architecture".into(), ARCHITECTURE.into());
    atomic_write(&dir.join(CONFIG_FILE), &serde_json::to_vec_pretty(&json)?)
}

/// Reads the `config.json` of an exported model, checking the architecture.
pub fn read_exported_config(dir: &Path) -> Result<GptConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}; is {} an exported dapt model?",
            path.display(),
            dir.display()
        )
    })?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let architecture = json
        .as_object_mut()
        .and_then(|object| object.remove("architecture"));
    if architecture.as_ref().and_then(|a| a.as_str()) != Some(ARCHITECTURE) {
        bail!(
            "{}: architecture is {architecture:?}, expected \"{ARCHITECTURE}\"",
            path.display()
        );
    }
    serde_json::from_value(json).with_context(|| format!("reading model config {}", path.display()))
}

/// Loads an exported model onto `device`.
pub fn load_exported(dir: &Path, device: &Device) -> Result<(Gpt, GptConfig)> {
    let config = read_exported_config(dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes =
        fs::read(&weights_path).with_context(|| format!("reading {}", weights_path.display()))?;
    let model = load_safetensors_weights(config.init(0, device)?, bytes, &weights_path)?;
    Ok((model, config))
}
