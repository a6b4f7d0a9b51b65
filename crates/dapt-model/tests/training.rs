//! The training loop end to end on tiny models.

mod support;

use std::fs;

use dapt_model::burn::prelude::*;
use dapt_model::{
    BatchSource, Diverged, Initialization, LOG_FILE, Silent, TrainRun, ValidationSet, checkpoint,
    export_model, train,
};
use support::*;

#[test]
fn tiny_models_of_both_families_overfit_one_batch() {
    for model in [tiny_model(32), tiny_llama(32)] {
        overfits_one_batch(model);
    }
}

fn overfits_one_batch(model: dapt_model::ModelConfig) {
    let vocab = model.vocab_size();
    let config = dapt_model::TrainConfig {
        peak_lr: 1e-2,
        min_lr: 1e-3,
        warmup_steps: 10,
        optimizer: dapt_model::AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        ..tiny_training(150)
    };
    let batch = ProgressionSource::new(vocab as u32)
        .next_batch(config.batch_size, config.seq_len)
        .unwrap();
    let dir = scratch_dir(&format!("overfit-{}", model.family()));
    let mut recorder = Recorder::default();
    train(
        TrainRun {
            dir: &dir,
            timing_dir: &dir,
            model: &model,
            config: &config,
            init: Initialization::Scratch,
            device: &Device::flex(),
        },
        &mut FixedBatch(batch),
        &mut [],
        &mut recorder,
    )
    .unwrap();
    let first = recorder.records.first().unwrap().train_loss;
    let last = recorder.records.last().unwrap().train_loss;
    // A fresh model predicts roughly uniformly: loss ≈ ln(V) = 3.47 nats.
    assert!(
        (first - (vocab as f64).ln()).abs() < 0.3,
        "first loss {first}"
    );
    assert!(
        last < 0.5,
        "loss only fell from {first} to {last} in 150 steps"
    );
}

/// Dropout draws from burn's process-global RNG: the tests whose runs use it take turns.
static DROPOUT_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The model of the resume tests: dropout on, to exercise the checkpointed RNG stream.
fn resumable_gpt() -> dapt_model::ModelConfig {
    dapt_model::ModelConfig::Gpt(dapt_model::GptConfig {
        dropout: 0.1,
        ..tiny_gpt(40)
    })
}

/// Trains `steps` of a 10-step run in `dir`, stopping early after `stop_after` if given.
fn run_resumable(
    dir: &std::path::Path,
    model: &dapt_model::ModelConfig,
    stop_after: Option<u64>,
) -> Recorder {
    run_resumable_with(dir, model, dapt_model::Objective::Clm, stop_after)
}

/// As [`run_resumable`], with another objective.
fn run_resumable_with(
    dir: &std::path::Path,
    model: &dapt_model::ModelConfig,
    objective: dapt_model::Objective,
    stop_after: Option<u64>,
) -> Recorder {
    // Span corruption's sentinels are ids the text never holds: the source stays below them.
    let vocab = match &objective {
        dapt_model::Objective::Span { sentinels, .. } => *sentinels.iter().min().unwrap() as usize,
        _ => model.vocab_size(),
    };
    let config = dapt_model::TrainConfig {
        grad_accum_steps: 2,
        eval_every: 4,
        checkpoint_every: 3,
        objective,
        ..tiny_training(10)
    };
    let mut validation = [ValidationSet {
        name: "held_out".into(),
        source: Box::new(ProgressionSource {
            rows_drawn: 1_000_000,
            ..ProgressionSource::new(vocab as u32)
        }),
    }];
    let mut recorder = Recorder {
        stop_after,
        ..Recorder::default()
    };
    train(
        TrainRun {
            dir,
            timing_dir: dir,
            model,
            config: &config,
            init: Initialization::Scratch,
            device: &Device::flex(),
        },
        &mut ProgressionSource::new(vocab as u32),
        &mut validation,
        &mut recorder,
    )
    .unwrap();
    recorder
}

#[test]
fn killed_and_resumed_run_is_bit_exact() {
    let _turn = DROPOUT_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let straight_dir = scratch_dir("resume-straight");
    let straight = run_resumable(&straight_dir, &resumable_gpt(), None);

    let resumed_dir = scratch_dir("resume-killed");
    // "Kill" after step 7: the step-6 checkpoint is the newest; step 7 is lost and redone.
    let killed = run_resumable(&resumed_dir, &resumable_gpt(), Some(7));
    assert_eq!(killed.records.len(), 7);
    // Debris of a crash: an abandoned partial save and a torn newer checkpoint.
    let checkpoints = resumed_dir.join(checkpoint::CHECKPOINTS_DIR);
    let step6 = checkpoints.join("step-000000006");
    let torn = checkpoints.join("step-000000008");
    fs::create_dir_all(checkpoints.join(".partial-step-000000009-4242")).unwrap();
    fs::create_dir_all(&torn).unwrap();
    for file in ["state.json", "optimizer.safetensors"] {
        fs::copy(step6.join(file), torn.join(file)).unwrap();
    }
    fs::write(torn.join("model.safetensors"), b"half a file").unwrap();

    let resumed = run_resumable(&resumed_dir, &resumable_gpt(), None);
    assert_eq!(
        resumed.records.first().unwrap().step,
        7,
        "resumed from the step-6 checkpoint"
    );
    assert!(
        resumed.notices.iter().any(|n| n.contains("step-000000008")),
        "the torn checkpoint was reported: {:?}",
        resumed.notices
    );

    let final_straight = straight_dir
        .join(checkpoint::CHECKPOINTS_DIR)
        .join("step-000000010");
    let final_resumed = checkpoints.join("step-000000010");
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            fs::read(final_straight.join(file)).unwrap()
                == fs::read(final_resumed.join(file)).unwrap(),
            "{file} differs between the straight and the resumed run"
        );
    }
    let straight_meta = checkpoint::verify(&final_straight).unwrap();
    let resumed_meta = checkpoint::verify(&final_resumed).unwrap();
    assert_eq!(straight_meta.data_state, resumed_meta.data_state);
    assert_eq!(straight_meta.rng, resumed_meta.rng);
    assert_eq!(straight_meta.optimizer_steps, 10);
    // Same losses (training and validation) for the steps both runs computed.
    let comparable = |records: &[dapt_model::StepRecord]| -> Vec<_> {
        records
            .iter()
            .map(|r| {
                (
                    r.step,
                    r.lr,
                    r.train_loss,
                    r.grad_norm,
                    r.tokens,
                    r.validation.clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        comparable(&straight.records[6..]),
        comparable(&resumed.records)
    );
    // The log holds each step once, the redone step 7 included.
    let log = fs::read_to_string(resumed_dir.join(LOG_FILE)).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
    assert!(log.lines().next().unwrap().ends_with(",val_held_out"));
    // With its timings kept apart, the log is an output like the weights: the same bytes.
    assert_eq!(
        log,
        fs::read_to_string(straight_dir.join(LOG_FILE)).unwrap()
    );
    let throughput = fs::read_to_string(resumed_dir.join(dapt_model::THROUGHPUT_FILE)).unwrap();
    assert_eq!(throughput.lines().count(), 11, "{throughput}");
    // Only the newest two checkpoints are kept, and no debris.
    let mut left: Vec<_> = fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["step-000000009", "step-000000010"]);
}

#[test]
fn killed_and_resumed_llama_run_is_bit_exact() {
    let dapt_model::ModelConfig::Llama(llama) = tiny_llama(40) else {
        unreachable!()
    };
    let model = dapt_model::ModelConfig::Llama(dapt_model::LlamaConfig {
        dropout: 0.1,
        ..llama
    });
    assert_resume_is_bit_exact(&model, dapt_model::Objective::Clm, "llama");
}

/// Masked LM on a tiny BERT: mask token 0, nothing else special.
fn tiny_mlm() -> (dapt_model::ModelConfig, dapt_model::Objective) {
    let model = dapt_model::ModelConfig::Bert(dapt_model::BertConfig {
        vocab_size: 40,
        n_layer: 2,
        n_head: 2,
        d_model: 32,
        d_ff: 48,
        context: 16,
        dropout: 0.1,
        ..dapt_model::BertConfig::default()
    });
    let objective = dapt_model::Objective::Mlm {
        masking: Default::default(),
        mask_id: 0,
        special: vec![],
        word_starts: vec![],
    };
    (model, objective)
}

/// Trains `model` by `objective` straight through and again killed after step 5, then
/// resumed (from the step-3 checkpoint): the final weights, optimizer state and every
/// loss must be the same. Returns the straight run's records.
fn assert_resume_is_bit_exact(
    model: &dapt_model::ModelConfig,
    objective: dapt_model::Objective,
    tag: &str,
) -> Recorder {
    let _turn = DROPOUT_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let straight_dir = scratch_dir(&format!("resume-{tag}-straight"));
    let straight = run_resumable_with(&straight_dir, model, objective.clone(), None);
    let resumed_dir = scratch_dir(&format!("resume-{tag}-killed"));
    run_resumable_with(&resumed_dir, model, objective.clone(), Some(5));
    let resumed = run_resumable_with(&resumed_dir, model, objective, None);
    assert_eq!(
        resumed.records.first().unwrap().step,
        4,
        "resumed from step 3"
    );
    let last = |dir: &std::path::Path| dir.join(checkpoint::CHECKPOINTS_DIR).join("step-000000010");
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            fs::read(last(&straight_dir).join(file)).unwrap()
                == fs::read(last(&resumed_dir).join(file)).unwrap(),
            "{file} differs between the straight and the resumed {tag} run"
        );
    }
    let losses = |r: &Recorder| -> Vec<_> {
        r.records
            .iter()
            .map(|r| (r.step, r.train_loss, r.validation.clone()))
            .collect()
    };
    assert_eq!(losses(&straight)[3..], losses(&resumed)[..]);
    straight
}

#[test]
fn killed_and_resumed_mlm_run_is_bit_exact() {
    let (model, objective) = tiny_mlm();
    let straight = assert_resume_is_bit_exact(&model, objective, "mlm");
    // Masked positions only: the loss of a fresh encoder is about ln V.
    let first = straight.records[0].train_loss;
    assert!((first - 40f64.ln()).abs() < 0.5, "first MLM loss {first}");
}

#[test]
fn killed_and_resumed_span_corruption_run_is_bit_exact() {
    let model = dapt_model::ModelConfig::T5(dapt_model::T5Config {
        vocab_size: 48,
        n_layer: 2,
        n_decoder_layer: 2,
        n_head: 2,
        d_model: 32,
        d_kv: 16,
        d_ff: 48,
        context: 16,
        relative_buckets: 8,
        relative_max_distance: 16,
        dropout: 0.1,
        ..dapt_model::T5Config::default()
    });
    let objective = dapt_model::Objective::Span {
        noise: Default::default(),
        sentinels: (40..48).collect(),
        eos: 1,
        decoder_start: 0,
    };
    let straight = assert_resume_is_bit_exact(&model, objective, "span");
    let (first, last) = (
        straight.records[0].train_loss,
        straight.records[9].train_loss,
    );
    assert!((first - 48f64.ln()).abs() < 0.5, "first span loss {first}");
    assert!(last < first, "span loss {first} -> {last}");
}

#[test]
fn nan_guard_stops_on_a_poisoned_batch_and_keeps_the_last_good_checkpoint() {
    let vocab = 24;
    let model_config = dapt_model::ModelConfig::Gpt(dapt_model::GptConfig {
        tie_embeddings: false, // so a NaN input row poisons only batches that use that token
        ..tiny_gpt(vocab)
    });
    let poison_token = vocab as u32 - 1;
    let device = Device::flex();
    let mut model = model_config.init(3, &device).unwrap();
    let weight = model.token_embedding.weight.val();
    let [rows, width] = weight.dims();
    let mut values = weight.into_data().try_into_vec::<f32>().unwrap();
    values[poison_token as usize * width..][..width].fill(f32::NAN);
    model.token_embedding.weight =
        dapt_model::burn::module::Param::from_data(TensorData::new(values, [rows, width]), &device);
    let export_dir = scratch_dir("nan-guard-export");
    export_model(&model, &model_config, &export_dir).unwrap();

    let run_dir = scratch_dir("nan-guard-run");
    let config = dapt_model::TrainConfig {
        checkpoint_every: 2,
        ..tiny_training(8)
    };
    let mut source = ProgressionSource::new(vocab as u32);
    source.poison = Some((4, poison_token)); // the 5th batch, i.e. step 5
    let mut recorder = Recorder::default();
    let error = train(
        TrainRun {
            dir: &run_dir,
            timing_dir: &run_dir,
            model: &model_config,
            config: &config,
            init: Initialization::FromExport(export_dir),
            device: &device,
        },
        &mut source,
        &mut [],
        &mut recorder,
    )
    .err()
    .expect("a NaN batch must stop training");
    let diverged = error.downcast_ref::<Diverged>().expect("a Diverged error");
    assert_eq!(diverged.step, 5);
    assert!(diverged.value.is_nan());
    let step4 = run_dir
        .join(checkpoint::CHECKPOINTS_DIR)
        .join("step-000000004");
    assert_eq!(
        diverged.last_good_checkpoint.as_deref(),
        Some(step4.as_path())
    );
    assert!(error.to_string().contains("step-000000004"), "{error}");
    assert_eq!(recorder.records.len(), 4);
    assert!(recorder.records.iter().all(|r| r.train_loss.is_finite()));
    // The good checkpoint is intact and still the newest.
    assert_eq!(checkpoint::verify(&step4).unwrap().step, 4);
    assert_eq!(checkpoint::list(&run_dir).unwrap()[0].0, 4);
}

#[test]
fn continued_run_starts_from_exported_weights_with_a_rewarmed_schedule() {
    let vocab = 32;
    let model = tiny_model(vocab);
    let base_dir = scratch_dir("continue-base");
    let base_config = tiny_training(40);
    let base = train(
        TrainRun {
            dir: &base_dir,
            timing_dir: &base_dir,
            model: &model,
            config: &base_config,
            init: Initialization::Scratch,
            device: &Device::flex(),
        },
        &mut ProgressionSource::new(vocab as u32),
        &mut [],
        &mut Silent,
    )
    .unwrap();
    assert!(base.finished);
    let export_dir = base_dir.join("export");
    export_model(&base.model, &model, &export_dir).unwrap();

    let continued_config = dapt_model::TrainConfig {
        seed: 99,
        ..tiny_training(3)
    };
    let mut recorder = Recorder::default();
    let continue_dir = scratch_dir("continue-run");
    train(
        TrainRun {
            dir: &continue_dir,
            timing_dir: &continue_dir,
            model: &model,
            config: &continued_config,
            init: Initialization::FromExport(export_dir),
            device: &Device::flex(),
        },
        &mut ProgressionSource::new(vocab as u32),
        &mut [],
        &mut recorder,
    )
    .unwrap();
    let first = &recorder.records[0];
    assert_eq!(
        first.lr,
        continued_config.peak_lr / continued_config.warmup_steps as f64
    );
    assert_eq!(first.tokens, continued_config.tokens_per_step());
    // The base model already learnt the task; a fresh one starts near ln(V) = 3.47.
    assert!(
        first.train_loss < 2.5,
        "continued run starts at {}",
        first.train_loss
    );
}
