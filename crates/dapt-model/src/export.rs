//! The model folder every dapt stage that holds a model writes, in Hugging Face's layout so
//! that `transformers` loads it as it is:
//!
//! - `config.json`: transformers' config of the family (`model_type` `gpt2` or `llama`);
//! - `model.safetensors`: F32 tensors under transformers' names and layouts (`hf.rs`),
//!   sorted by name, with no free-form metadata, so equal weights give equal bytes.
//!
//! Reading accepts what transformers writes: `model.safetensors` or a sharded
//! `model.safetensors.index.json`, and F32, F16 or BF16 tensors. (Checkpoints keep burn's
//! parameter paths instead: `weights_to_safetensors`.)

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use crate::config::ModelConfig;
use crate::hf::{Dense, from_hf_config, gather, scatter, slots, to_hf_config};
use crate::model::Decoder;
use crate::params::{map_params, param_shapes, param_values};
use dapt_dag::fsutil::atomic_write;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const CONFIG_FILE: &str = "config.json";

/// The model's weights under burn's parameter paths, as checkpoints hold them. burn's
/// default metadata lives in a `HashMap` whose order changes from run to run; without it,
/// equal weights give equal bytes.
pub fn weights_to_safetensors(model: &Decoder) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).clear_metadata();
    model
        .save_into(&mut store)
        .map_err(|e| anyhow!("serialising weights: {e}"))?;
    store
        .get_bytes()
        .map_err(|e| anyhow!("serialising weights: {e}"))
}

/// Overwrites `model`'s weights with those in `bytes` (burn's parameter paths, as
/// [`weights_to_safetensors`] writes them); every parameter must be present and no extra
/// tensor may be left over, so a mismatched architecture fails loudly.
pub fn load_safetensors_weights(model: Decoder, bytes: Vec<u8>, origin: &Path) -> Result<Decoder> {
    let mut model = model;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow!("loading weights from {}: {e}", origin.display()))?;
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

/// The weights as Hugging Face safetensors bytes (transformers' names and layouts).
pub fn weights_to_hf_safetensors(model: &Decoder, config: &ModelConfig) -> Result<Vec<u8>> {
    let mut ours = param_values(model);
    let mut tensors: BTreeMap<String, Dense> = BTreeMap::new();
    for slot in slots(config) {
        let value = ours
            .remove(&slot.ours)
            .with_context(|| format!("the model has no parameter {}", slot.ours))?;
        tensors.extend(scatter(&slot, &value));
    }
    ensure!(
        ours.is_empty(),
        "parameters without a Hugging Face name: {:?}",
        ours.keys().collect::<Vec<_>>()
    );
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, dense)| {
            let bytes = dense.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, dense.shape, bytes)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Writes `dir/model.safetensors` and `dir/config.json` (each atomically), loadable by
/// transformers' `AutoModelForCausalLM`.
pub fn export_model(model: &Decoder, config: &ModelConfig, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    atomic_write(
        &dir.join(WEIGHTS_FILE),
        &weights_to_hf_safetensors(model, config)?,
    )?;
    let json = to_hf_config(config);
    atomic_write(&dir.join(CONFIG_FILE), &serde_json::to_vec_pretty(&json)?)?;
    Ok(())
}

/// Reads the model config from `dir/config.json` (transformers' form).
pub fn read_exported_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}; is {} a model folder?",
            path.display(),
            dir.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let config = from_hf_config(&json, &path.display().to_string())?;
    config
        .validate()
        .with_context(|| format!("model described by {}", path.display()))?;
    Ok(config)
}

/// The safetensors files of a model folder: `model.safetensors`, or the shards an index
/// names, each with the tensors it holds.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if single.exists() {
        return Ok(vec![single]);
    }
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    let text = fs::read_to_string(&index_path).with_context(|| {
        format!(
            "{} has neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE}",
            dir.display()
        )
    })?;
    let index: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", index_path.display()))?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{}: no `weight_map` object", index_path.display()))?;
    let mut files: Vec<PathBuf> = map
        .values()
        .map(|file| {
            file.as_str()
                .map(|f| dir.join(f))
                .with_context(|| format!("{}: a shard name is not a string", index_path.display()))
        })
        .collect::<Result<_>>()?;
    files.sort();
    files.dedup();
    Ok(files)
}

/// One tensor of a safetensors file as f32 (F32, F16 and BF16 are read).
fn dense(view: &TensorView, name: &str, origin: &Path) -> Result<Dense> {
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => bail!(
            "{}: tensor {name} is {other:?}; dapt reads F32, F16 and BF16",
            origin.display()
        ),
    };
    Ok(Dense {
        shape: view.shape().to_vec(),
        values,
    })
}

/// Loads a model folder (dapt's or transformers') onto `device`.
pub fn load_exported(dir: &Path, device: &Device) -> Result<(Decoder, ModelConfig)> {
    let config = read_exported_config(dir)?;
    let files = weight_files(dir)?;
    let mut contents = Vec::with_capacity(files.len());
    for file in &files {
        contents.push(fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    }
    let mut tensors: BTreeMap<String, (usize, TensorView)> = BTreeMap::new();
    let parsed: Vec<SafeTensors> = contents
        .iter()
        .zip(&files)
        .map(|(bytes, file)| {
            SafeTensors::deserialize(bytes)
                .with_context(|| format!("{}: not a valid safetensors file", file.display()))
        })
        .collect::<Result<_>>()?;
    for (i, st) in parsed.iter().enumerate() {
        for (name, view) in st.tensors() {
            tensors.insert(name, (i, view));
        }
    }
    let mut used = std::collections::BTreeSet::new();
    let mut values: BTreeMap<String, Dense> = BTreeMap::new();
    for slot in slots(&config) {
        let mut get = |name: &str| -> Result<Dense> {
            let (file, view) = tensors.get(name).with_context(|| {
                format!(
                    "{}: tensor {name} is missing (a {} model of this config needs it)",
                    dir.display(),
                    config.family()
                )
            })?;
            used.insert(name.to_owned());
            dense(view, name, &files[*file])
        };
        let value =
            gather(&slot, &mut get).with_context(|| format!("loading {}", dir.display()))?;
        values.insert(slot.ours.clone(), value);
    }
    // transformers' GPT-2 keeps causal-mask buffers in old checkpoints; tied heads may be
    // saved as a copy of the embedding.
    let ignorable = |name: &str| {
        name.ends_with(".attn.bias")
            || name.ends_with(".attn.masked_bias")
            || name.ends_with("rotary_emb.inv_freq")
            || (config.tie_embeddings() && name == "lm_head.weight")
    };
    let unexpected: Vec<&String> = tensors
        .keys()
        .filter(|name| !used.contains(*name) && !ignorable(name))
        .collect();
    ensure!(
        unexpected.is_empty(),
        "{}: tensors the config does not account for: {unexpected:?}",
        dir.display()
    );
    let model = config.init(0, device)?;
    let shapes = param_shapes(&model);
    for (path, dense) in &values {
        let expected = &shapes[path];
        ensure!(
            &dense.shape == expected,
            "{}: parameter {path} is {:?} after conversion, the config needs {expected:?}",
            dir.display(),
            dense.shape
        );
    }
    let model = map_params(model, &mut |path, current, _| {
        let values = values[path].values.clone();
        Tensor::<1>::from_data(
            TensorData::new(values, [current.dims()[0]]),
            &current.device(),
        )
    });
    Ok((model, config))
}
