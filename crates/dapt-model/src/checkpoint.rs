//! Training checkpoints. Layout under a run directory:
//!
//! ```text
//! checkpoints/step-000000120/model.safetensors      weights (burn-store, parameter paths)
//!                            optimizer.safetensors  Adam moments: exp_avg.<path>, exp_avg_sq.<path>
//!                            state.json             step, tokens, configs, data cursor, RNG,
//!                                                   size + blake3 of the two tensor files
//! checkpoints/.partial-step-…                        a save in progress (never trusted)
//! ```
//!
//! A save fills a `.partial-*` directory, fsyncs every file and the directory, then renames it
//! to `step-*` (atomic): a killed process leaves at worst a `.partial-*` that the next save
//! removes. On load, a `step-*` whose files do not match the sizes and hashes in its
//! `state.json` is removed (and reported) in favour of an older one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::export::weights_to_safetensors;
use crate::model::Decoder;
use crate::optim::AdamWState;
use crate::train::TrainConfig;
use dapt_dag::fsutil::{sync_dir, write_synced};

pub const CHECKPOINTS_DIR: &str = "checkpoints";
const STEP_PREFIX: &str = "step-";
const PARTIAL_PREFIX: &str = ".partial-";
const STATE_FILE: &str = "state.json";
const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// 2: the model config names its family (`ModelConfig`).
const FORMAT_VERSION: u32 = 2;
const FIRST_MOMENT: &str = "exp_avg";
const SECOND_MOMENT: &str = "exp_avg_sq";

/// Counter-based RNG state: the stochastic parts of step `n` (dropout) draw from a stream
/// derived from `seed` and a counter, so saving the counter restores the generator exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: u64,
    /// Streams used so far (one per micro-batch).
    pub streams_used: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileDigest {
    bytes: u64,
    blake3: String,
}

impl FileDigest {
    fn of(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len() as u64,
            blake3: blake3::hash(bytes).to_hex().to_string(),
        }
    }
}

/// Everything in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    pub format_version: u32,
    pub step: u64,
    pub tokens_seen: u64,
    pub optimizer_steps: u64,
    pub model_config: ModelConfig,
    pub train_config: TrainConfig,
    /// The training `BatchSource::state()` after the batches of `step` were drawn.
    pub data_state: serde_json::Value,
    pub rng: RngState,
    files: BTreeMap<String, FileDigest>,
}

/// A verified checkpoint read back from disk.
pub(crate) struct Checkpoint {
    pub dir: PathBuf,
    pub meta: CheckpointMeta,
    pub model_weights: Vec<u8>,
    pub optimizer: AdamWState,
}

/// What the trainer knows at the end of a step, to be saved.
pub(crate) struct CheckpointContents<'a> {
    pub step: u64,
    pub tokens_seen: u64,
    pub model_config: &'a ModelConfig,
    pub train_config: &'a TrainConfig,
    pub data_state: serde_json::Value,
    pub rng: RngState,
    pub model: &'a Decoder,
    pub optimizer: &'a AdamWState,
}

fn step_dir_name(step: u64) -> String {
    format!("{STEP_PREFIX}{step:09}")
}

/// Saves a checkpoint atomically and prunes all but the newest `keep` ones.
pub(crate) fn save(run_dir: &Path, contents: CheckpointContents, keep: usize) -> Result<PathBuf> {
    let root = run_dir.join(CHECKPOINTS_DIR);
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let name = step_dir_name(contents.step);
    let partial = root.join(format!("{PARTIAL_PREFIX}{name}-{}", std::process::id()));
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir(&partial).with_context(|| format!("creating {}", partial.display()))?;

    let model_bytes = weights_to_safetensors(contents.model)?;
    let optimizer_bytes = optimizer_to_safetensors(contents.optimizer)?;
    let mut files = BTreeMap::new();
    for (file, bytes) in [
        (MODEL_FILE, &model_bytes),
        (OPTIMIZER_FILE, &optimizer_bytes),
    ] {
        write_synced(&partial.join(file), bytes)?;
        files.insert(file.to_owned(), FileDigest::of(bytes));
    }
    let meta = CheckpointMeta {
        format_version: FORMAT_VERSION,
        step: contents.step,
        tokens_seen: contents.tokens_seen,
        optimizer_steps: contents.optimizer.steps,
        model_config: contents.model_config.clone(),
        train_config: contents.train_config.clone(),
        data_state: contents.data_state,
        rng: contents.rng,
        files,
    };
    write_synced(
        &partial.join(STATE_FILE),
        &serde_json::to_vec_pretty(&meta)?,
    )?;
    sync_dir(&partial)?;
    dapt_dag::fault::hit("checkpoint-write", "");

    let final_dir = root.join(&name);
    if final_dir.exists() {
        // Only an unverifiable leftover can sit at a step we are saving again.
        fs::remove_dir_all(&final_dir)?;
    }
    fs::rename(&partial, &final_dir)
        .with_context(|| format!("renaming {} into place", partial.display()))?;
    sync_dir(&root)?;
    prune(&root, keep)?;
    Ok(final_dir)
}

/// Removes abandoned partial saves and all but the newest `keep` checkpoints.
fn prune(root: &Path, keep: usize) -> Result<()> {
    let mut steps = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PARTIAL_PREFIX) {
            fs::remove_dir_all(entry.path())?;
        } else if let Some(step) = parse_step(&name) {
            steps.push((step, entry.path()));
        }
    }
    steps.sort();
    let excess = steps.len().saturating_sub(keep.max(1));
    for (_, path) in steps.into_iter().take(excess) {
        fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

fn parse_step(dir_name: &str) -> Option<u64> {
    dir_name.strip_prefix(STEP_PREFIX)?.parse().ok()
}

/// Checkpoint directories under `run_dir`, newest first (unverified).
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let root = run_dir.join(CHECKPOINTS_DIR);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    for entry in fs::read_dir(&root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry?;
        if let Some(step) = parse_step(&entry.file_name().to_string_lossy()) {
            steps.push((step, entry.path()));
        }
    }
    steps.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    Ok(steps)
}

/// The newest checkpoint that verifies. Damaged ones newer than it (a torn copy, a
/// hand-edited file) are removed, each reported through `removed`, so that pruning and later
/// saves only ever see trustworthy checkpoints.
pub(crate) fn latest_valid(
    run_dir: &Path,
    device: &Device,
    removed: &mut dyn FnMut(&Path, &anyhow::Error),
) -> Result<Option<Checkpoint>> {
    for (_, dir) in list(run_dir)? {
        match read(&dir, device) {
            Ok(checkpoint) => return Ok(Some(checkpoint)),
            Err(error) => {
                fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing damaged checkpoint {}", dir.display()))?;
                removed(&dir, &error);
            }
        }
    }
    Ok(None)
}

/// Reads `dir/state.json` and checks the tensor files against the sizes and hashes it records.
pub fn verify(dir: &Path) -> Result<CheckpointMeta> {
    verified_contents(dir).map(|(meta, _)| meta)
}

fn verified_contents(dir: &Path) -> Result<(CheckpointMeta, BTreeMap<String, Vec<u8>>)> {
    let state_path = dir.join(STATE_FILE);
    let meta: CheckpointMeta = serde_json::from_slice(
        &fs::read(&state_path).with_context(|| format!("reading {}", state_path.display()))?,
    )
    .with_context(|| format!("parsing {}", state_path.display()))?;
    ensure!(
        meta.format_version == FORMAT_VERSION,
        "checkpoint format {} is not the supported {FORMAT_VERSION}",
        meta.format_version
    );
    let mut contents = BTreeMap::new();
    for (file, expected) in &meta.files {
        let path = dir.join(file);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if FileDigest::of(&bytes) != *expected {
            bail!(
                "{} does not match the size/hash recorded in state.json (torn or altered)",
                path.display()
            );
        }
        contents.insert(file.clone(), bytes);
    }
    Ok((meta, contents))
}

/// Reads and verifies one checkpoint directory; optimizer moments land on `device`.
pub(crate) fn read(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let (meta, mut contents) = verified_contents(dir)?;
    let (Some(model_weights), Some(optimizer_bytes)) =
        (contents.remove(MODEL_FILE), contents.remove(OPTIMIZER_FILE))
    else {
        bail!(
            "{} lists no model or optimizer file",
            dir.join(STATE_FILE).display()
        );
    };
    let optimizer = optimizer_from_safetensors(&optimizer_bytes, meta.optimizer_steps, device)?;
    Ok(Checkpoint {
        dir: dir.to_owned(),
        meta,
        model_weights,
        optimizer,
    })
}

fn optimizer_to_safetensors(state: &AdamWState) -> Result<Vec<u8>> {
    let mut named = Vec::new();
    for (prefix, moments) in [
        (FIRST_MOMENT, &state.first_moment),
        (SECOND_MOMENT, &state.second_moment),
    ] {
        for (path, tensor) in moments {
            let data = tensor.clone().into_data();
            ensure!(
                data.dtype() == burn::tensor::DType::F32,
                "optimizer moment {path} is {:?}; checkpoints store F32",
                data.dtype()
            );
            named.push((
                format!("{prefix}.{path}"),
                data.num_elements(),
                data.into_bytes(),
            ));
        }
    }
    let views = named
        .iter()
        .map(|(name, len, bytes)| {
            TensorView::new(Dtype::F32, vec![*len], bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Moments are created on `device` (the training device without autodiff, like gradients).
fn optimizer_from_safetensors(bytes: &[u8], steps: u64, device: &Device) -> Result<AdamWState> {
    let tensors = safetensors::SafeTensors::deserialize(bytes)?;
    let mut state = AdamWState {
        steps,
        ..AdamWState::default()
    };
    for (name, view) in tensors.tensors() {
        ensure!(
            view.dtype() == Dtype::F32,
            "optimizer tensor {name} is {:?}, expected F32",
            view.dtype()
        );
        let data = TensorData::from_bytes_vec(
            view.data().to_vec(),
            [view.data().len() / 4],
            burn::tensor::DType::F32,
        );
        let tensor = Tensor::<1>::from_data(data, device);
        let previous = match name.split_once('.') {
            Some((FIRST_MOMENT, path)) => state.first_moment.insert(path.to_owned(), tensor),
            Some((SECOND_MOMENT, path)) => state.second_moment.insert(path.to_owned(), tensor),
            _ => bail!("unexpected tensor {name} in optimizer state"),
        };
        ensure!(previous.is_none(), "duplicate optimizer tensor {name}");
    }
    Ok(state)
}
