//! Step-level training: gradient accumulation, AdamW, warm-up + cosine schedule, global-norm
//! clipping, periodic validation on named sets, a CSV log, atomic checkpoints every N steps and
//! resume from the newest valid one, and a guard that stops on a non-finite loss or gradient.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointContents, RngState};
use crate::config::ModelConfig;
use crate::export::{WEIGHTS_FILE, load_exported, load_safetensors_weights, read_exported_config};
use crate::model::Decoder;
use crate::objective::Objective;
use crate::optim::{AdamWConfig, AdamWState, LrSchedule, clip_scale, global_grad_norm};
use crate::params::{ParamTensors, take_gradients};
use crate::rng::derive_seed;
use dapt_dag::fsutil::atomic_write;

/// Where training batches come from. Implemented by the token-shard loader; must be
/// deterministic given its state so that a resumed run sees the same batches.
pub trait BatchSource {
    /// `batch` rows of `seq_len + 1` consecutive token ids, row-major: a row's first `seq_len`
    /// ids are the inputs and its last `seq_len` ids the targets.
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>>;
    /// The cursor, as saved in checkpoints.
    fn state(&self) -> serde_json::Value;
    /// Moves the cursor back to a state previously returned by [`BatchSource::state`].
    fn restore(&mut self, state: &serde_json::Value) -> Result<()>;
}

/// A named held-out set (e.g. one per domain). Every evaluation rewinds `source` to the state it
/// had when `train` was called and scores the same `eval_batches` batches.
pub struct ValidationSet {
    pub name: String,
    pub source: Box<dyn BatchSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds initialisation and the dropout streams.
    pub seed: u64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    pub seq_len: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "one")]
    pub grad_accum_steps: usize,
    /// Optimizer steps in the run (also the end of the cosine decay).
    pub max_steps: u64,
    pub peak_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    #[serde(default)]
    pub optimizer: AdamWConfig,
    /// Maximum global gradient norm; `null` disables clipping.
    #[serde(default = "default_grad_clip")]
    pub grad_clip: Option<f64>,
    /// Validate every this many steps (and always after the last); 0 = only after the last.
    pub eval_every: u64,
    /// Batches scored per validation set.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Checkpoint every this many steps (and always after the last); 0 = only after the last.
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest ones).
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
    /// What the model learns to predict: the next token (decoders), masked tokens
    /// (encoders) or dropped spans (encoder-decoders).
    #[serde(default)]
    pub objective: Objective,
}

fn one() -> usize {
    1
}
fn default_grad_clip() -> Option<f64> {
    Some(1.0)
}
fn default_eval_batches() -> usize {
    4
}
fn default_keep_checkpoints() -> usize {
    2
}

impl TrainConfig {
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak_lr: self.peak_lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.max_steps,
        }
    }

    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.seq_len * self.grad_accum_steps) as u64
    }

    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        ensure!(
            self.batch_size > 0 && self.seq_len > 0 && self.grad_accum_steps > 0,
            "train config: batch_size, seq_len and grad_accum_steps must be at least 1"
        );
        ensure!(
            self.seq_len <= model.context(),
            "train config: seq_len {} exceeds the model context {}; lower seq_len or raise context",
            self.seq_len,
            model.context()
        );
        ensure!(
            self.peak_lr > 0.0 && (0.0..=self.peak_lr).contains(&self.min_lr),
            "train config: need 0 <= min_lr <= peak_lr and peak_lr > 0 (got {} / {})",
            self.min_lr,
            self.peak_lr
        );
        ensure!(
            self.grad_clip.is_none_or(|clip| clip > 0.0),
            "train config: grad_clip must be positive or null"
        );
        self.objective.validate(model)
    }

    fn due(every: u64, step: u64, last: u64) -> bool {
        step == last || (every > 0 && step.is_multiple_of(every))
    }
}

/// How a run's weights start when its directory holds no checkpoint yet.
#[derive(Debug, Clone)]
pub enum Initialization {
    /// Fresh weights from `TrainConfig::seed`.
    Scratch,
    /// Weights of an exported model (the `continue` stage): fresh optimizer, schedule from
    /// step 0. The export's config must equal the run's model config.
    FromExport(PathBuf),
}

/// One training run: its directory (checkpoints, log), shapes and where its weights start.
pub struct TrainRun<'a> {
    /// Checkpoints and `train_log.csv`: outputs, the same on every run of the same inputs.
    pub dir: &'a Path,
    /// `throughput.csv` (seconds and tokens/s per step): measurements that differ from
    /// run to run, kept apart from the outputs so they never make a rerun look changed.
    pub timing_dir: &'a Path,
    pub model: &'a ModelConfig,
    pub config: &'a TrainConfig,
    pub init: Initialization,
    /// The device to train on (autodiff is enabled on it here).
    pub device: &'a Device,
}

/// What happened in one optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: u64,
    pub lr: f64,
    /// Mean token NLL (nats) over the step's micro-batches.
    pub train_loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens seen so far, this step included.
    pub tokens: u64,
    /// This step's tokens over its forward/backward/update time.
    pub tokens_per_s: f64,
    /// Mean token NLL per validation set, on steps that validate.
    pub validation: Vec<(String, f64)>,
}

/// Progress reporting, e.g. a progress bar; training itself never prints.
pub trait TrainObserver {
    fn on_start(&mut self, _resumed_from_step: u64, _max_steps: u64) {}
    /// Called after each step (after its checkpoint, if any). `Break` stops the run there.
    fn on_step(&mut self, _record: &StepRecord) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    fn on_checkpoint(&mut self, _step: u64, _dir: &Path) {}
    /// Something worth telling the user, such as a damaged checkpoint being skipped.
    fn on_notice(&mut self, _message: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl TrainObserver for Silent {}

pub struct TrainOutcome {
    /// Final weights (on the training device, without autodiff).
    pub model: Decoder,
    pub step: u64,
    /// False when the observer stopped the run early.
    pub finished: bool,
    pub last_checkpoint: Option<PathBuf>,
}

/// A non-finite loss or gradient: training stopped without saving anything from the bad step.
#[derive(Debug)]
pub struct Diverged {
    pub step: u64,
    pub quantity: &'static str,
    pub value: f64,
    pub last_good_checkpoint: Option<PathBuf>,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "training diverged at step {}: {} is {}; nothing from this step was saved. ",
            self.step, self.quantity, self.value
        )?;
        match &self.last_good_checkpoint {
            Some(dir) => write!(
                f,
                "The last good checkpoint is {} and a rerun resumes from it; ",
                dir.display()
            )?,
            None => write!(f, "No checkpoint was written yet; ")?,
        }
        write!(
            f,
            "lower peak_lr, tighten grad_clip, or inspect the training data around this step"
        )
    }
}

impl std::error::Error for Diverged {}

pub const LOG_FILE: &str = "train_log.csv";
/// Per-step wall time in [`TrainRun::timing_dir`]: `step,seconds,tokens_per_s`.
pub const THROUGHPUT_FILE: &str = "throughput.csv";

struct TrainState {
    model: Decoder,
    optimizer: AdamWState,
    step: u64,
    tokens_seen: u64,
    rng: RngState,
    last_checkpoint: Option<PathBuf>,
}

/// Trains `run` to `config.max_steps`, resuming from the newest valid checkpoint in `run.dir`.
pub fn train(
    run: TrainRun,
    source: &mut dyn BatchSource,
    validation: &mut [ValidationSet],
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome> {
    run.model.validate()?;
    run.config.validate(run.model)?;
    let config = run.config;
    let device = run.device.clone().autodiff();
    let plain_device = run.device.clone().inner();
    let validation_starts: Vec<_> = validation.iter().map(|set| set.source.state()).collect();

    let mut state = restore_or_initialise(&run, &device, &plain_device, source, observer)?;
    let names: Vec<&str> = validation.iter().map(|set| set.name.as_str()).collect();
    let mut log = TrainLog::open(run.dir, run.timing_dir, &names, state.step)?;
    observer.on_start(state.step, config.max_steps);

    let schedule = config.schedule();
    while state.step < config.max_steps {
        let step = state.step + 1;
        let started = Instant::now();
        let (train_loss, grads) = accumulate_gradients(
            &state.model,
            source,
            config,
            run.model,
            &device,
            &mut state.rng,
        )?;
        let grad_norm = global_grad_norm(&grads);
        for (quantity, value) in [
            ("the training loss", train_loss),
            ("the gradient norm", grad_norm),
        ] {
            if !value.is_finite() {
                return Err(Diverged {
                    step,
                    quantity,
                    value,
                    last_good_checkpoint: state.last_checkpoint,
                }
                .into());
            }
        }
        let lr = schedule.lr_at(step);
        state.model = state.optimizer.step(
            &config.optimizer,
            state.model,
            grads,
            lr,
            clip_scale(grad_norm, config.grad_clip),
        )?;
        state.step = step;
        state.tokens_seen += config.tokens_per_step();
        let seconds = started.elapsed().as_secs_f64();

        let validation_losses = if TrainConfig::due(config.eval_every, step, config.max_steps) {
            validation_losses(
                &state.model,
                validation,
                &validation_starts,
                config,
                run.model.vocab_size(),
                &plain_device,
            )?
        } else {
            Vec::new()
        };
        let record = StepRecord {
            step,
            lr,
            train_loss,
            grad_norm,
            tokens: state.tokens_seen,
            tokens_per_s: config.tokens_per_step() as f64 / seconds.max(1e-9),
            validation: validation_losses,
        };
        log.append(&record, seconds)?;
        if TrainConfig::due(config.checkpoint_every, step, config.max_steps) {
            let dir = checkpoint::save(
                run.dir,
                CheckpointContents {
                    step,
                    tokens_seen: state.tokens_seen,
                    model_config: run.model,
                    train_config: config,
                    data_state: source.state(),
                    rng: state.rng,
                    model: &state.model,
                    optimizer: &state.optimizer,
                },
                config.keep_checkpoints,
            )?;
            observer.on_checkpoint(step, &dir);
            state.last_checkpoint = Some(dir);
        }
        if observer.on_step(&record).is_break() {
            break;
        }
    }
    Ok(TrainOutcome {
        model: state.model.valid(),
        step: state.step,
        finished: state.step >= config.max_steps,
        last_checkpoint: state.last_checkpoint,
    })
}

fn restore_or_initialise(
    run: &TrainRun,
    device: &Device,
    plain_device: &Device,
    source: &mut dyn BatchSource,
    observer: &mut dyn TrainObserver,
) -> Result<TrainState> {
    let mut report_removed = |dir: &Path, error: &anyhow::Error| {
        observer.on_notice(&format!(
            "removed damaged checkpoint {}: {error:#}",
            dir.display()
        ))
    };
    if let Some(checkpoint) = checkpoint::latest_valid(run.dir, plain_device, &mut report_removed)?
    {
        let meta = &checkpoint.meta;
        ensure!(
            meta.model_config == *run.model && meta.train_config == *run.config,
            "checkpoint {} was written with a different model or train config; \
             resume with the original config or start a new run directory",
            checkpoint.dir.display()
        );
        source.restore(&meta.data_state).with_context(|| {
            format!(
                "restoring the data cursor saved in {}",
                checkpoint.dir.display()
            )
        })?;
        let origin = checkpoint.dir.join(WEIGHTS_FILE);
        let model = load_safetensors_weights(
            run.model.init(run.config.seed, device)?,
            checkpoint.model_weights,
            &origin,
        )?;
        return Ok(TrainState {
            model,
            optimizer: checkpoint.optimizer,
            step: meta.step,
            tokens_seen: meta.tokens_seen,
            rng: meta.rng,
            last_checkpoint: Some(checkpoint.dir),
        });
    }
    let model = match &run.init {
        Initialization::Scratch => run.model.init(run.config.seed, device)?,
        Initialization::FromExport(dir) => {
            let exported = read_exported_config(dir)?;
            ensure!(
                exported == *run.model,
                "the model exported in {} has config {exported:?}, but this run is configured \
                 as {:?}; continue training with the exported architecture",
                dir.display(),
                run.model
            );
            load_exported(dir, device)?.0
        }
    };
    Ok(TrainState {
        model,
        optimizer: AdamWState::default(),
        step: 0,
        tokens_seen: 0,
        rng: RngState {
            seed: run.config.seed,
            streams_used: 0,
        },
        last_checkpoint: None,
    })
}

/// Mean loss over the step's micro-batches and the summed gradients of their mean losses.
fn accumulate_gradients(
    model: &Decoder,
    source: &mut dyn BatchSource,
    config: &TrainConfig,
    model_config: &ModelConfig,
    device: &Device,
    rng: &mut RngState,
) -> Result<(f64, ParamTensors)> {
    let (vocab_size, dropout) = (model_config.vocab_size(), model_config.dropout());
    let micro_batches = config.grad_accum_steps;
    let mut total_loss = 0.0;
    let mut summed: Option<ParamTensors> = None;
    for _ in 0..micro_batches {
        // Dropout draws from the backend RNG; reseeding per micro-batch from a counter makes
        // the stream a function of (seed, counter), which the checkpoint stores. The backend
        // RNG is process-global (flex: one mutex), so only reseed when dropout uses it.
        if dropout > 0.0 {
            device.seed(derive_seed(rng.seed, rng.streams_used));
        }
        // Masks and spans come from the same counter, so a resumed run corrupts alike.
        let mask_seed = Objective::training_seed(rng.seed, rng.streams_used);
        rng.streams_used += 1;
        let ids = source.next_batch(config.batch_size, config.seq_len)?;
        let batch = config.objective.batch(
            &ids,
            config.batch_size,
            config.seq_len,
            vocab_size,
            mask_seed,
            device,
        )?;
        let loss = batch.mean_nll(batch.logits(model));
        total_loss += f64::from(loss.clone().into_scalar::<f32>());
        let mut grads = (loss / micro_batches as f64).backward();
        let micro = take_gradients(model, &mut grads);
        summed = Some(match summed {
            None => micro,
            Some(mut acc) => {
                for (path, grad) in micro {
                    let sum = acc.remove(&path).map_or(grad.clone(), |prev| prev + grad);
                    acc.insert(path, sum);
                }
                acc
            }
        });
    }
    Ok((
        total_loss / micro_batches as f64,
        summed.expect("grad_accum_steps >= 1"),
    ))
}

/// Mean NLL per predicted token on each validation set, always over the same batches (and
/// the same masks or spans).
fn validation_losses(
    model: &Decoder,
    sets: &mut [ValidationSet],
    starts: &[serde_json::Value],
    config: &TrainConfig,
    vocab_size: usize,
    device: &Device,
) -> Result<Vec<(String, f64)>> {
    let model = model.valid();
    let mut losses = Vec::with_capacity(sets.len());
    for (set, start) in sets.iter_mut().zip(starts) {
        set.source
            .restore(start)
            .with_context(|| format!("rewinding validation set {}", set.name))?;
        let (mut nll, mut tokens) = (0.0, 0usize);
        for index in 0..config.eval_batches {
            let batch = set
                .source
                .next_batch(config.batch_size, config.seq_len)
                .and_then(|ids| {
                    config.objective.batch(
                        &ids,
                        config.batch_size,
                        config.seq_len,
                        vocab_size,
                        Objective::validation_seed(index as u64),
                        device,
                    )
                })
                .with_context(|| format!("validation set {}", set.name))?;
            nll += f64::from(batch.sum_nll(batch.logits(&model)).into_scalar::<f32>());
            tokens += batch.predicted;
        }
        losses.push((set.name.clone(), nll / tokens.max(1) as f64));
    }
    Ok(losses)
}

/// `train_log.csv` and `throughput.csv`: one row per step each. A resumed run first drops
/// rows past its checkpoint, which the killed run had logged but will now redo.
struct TrainLog {
    log: File,
    throughput: File,
    columns: usize,
}

/// Rewrites `path` keeping `header` and the rows up to `resume_step` (none when
/// starting afresh or when the header changed), then opens it for appending.
fn reopen_csv(path: &Path, header: &str, resume_step: u64) -> Result<File> {
    let mut kept = vec![header.to_owned()];
    if resume_step > 0 && path.exists() {
        let reader = BufReader::new(
            File::open(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let mut lines = reader.lines();
        if lines.next().transpose()?.as_deref() == Some(header) {
            for line in lines {
                let line = line?;
                let step = line.split(',').next().and_then(|s| s.parse::<u64>().ok());
                if step.is_some_and(|s| s <= resume_step) {
                    kept.push(line);
                }
            }
        }
    }
    atomic_write(path, (kept.join("\n") + "\n").as_bytes())?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

impl TrainLog {
    fn open(
        run_dir: &Path,
        timing_dir: &Path,
        validation_names: &[&str],
        resume_step: u64,
    ) -> Result<Self> {
        for dir in [run_dir, timing_dir] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut header = "step,lr,train_loss,grad_norm,tokens".to_owned();
        for name in validation_names {
            header.push_str(&format!(",val_{name}"));
        }
        Ok(Self {
            log: reopen_csv(&run_dir.join(LOG_FILE), &header, resume_step)?,
            throughput: reopen_csv(
                &timing_dir.join(THROUGHPUT_FILE),
                "step,seconds,tokens_per_s",
                resume_step,
            )?,
            columns: validation_names.len(),
        })
    }

    fn append(&mut self, record: &StepRecord, seconds: f64) -> Result<()> {
        let mut row = format!(
            "{},{:e},{},{},{}",
            record.step, record.lr, record.train_loss, record.grad_norm, record.tokens,
        );
        let mut values = record.validation.iter().map(|(_, loss)| loss);
        for _ in 0..self.columns {
            row.push(',');
            if let Some(loss) = values.next() {
                row.push_str(&loss.to_string());
            }
        }
        writeln!(self.log, "{row}")
            .and_then(|()| self.log.flush())
            .context("appending to the training log")?;
        writeln!(
            self.throughput,
            "{},{seconds:.4},{:.1}",
            record.step, record.tokens_per_s
        )
        .and_then(|()| self.throughput.flush())
        .context("appending to the throughput log")
    }
}
