//! Export round trip and the evaluation helpers.

mod support;

use std::fs;

use dapt_model::burn::module::Param;
use dapt_model::burn::prelude::*;
use dapt_model::{export_model, ids_tensor, load_exported, token_nll};
use support::*;

#[test]
fn exported_safetensors_reload_to_identical_logits() {
    let untied_gpt = dapt_model::ModelConfig::Gpt(dapt_model::GptConfig {
        tie_embeddings: false,
        ..tiny_gpt(48)
    });
    let dapt_model::ModelConfig::Llama(llama) = tiny_llama(48) else {
        unreachable!()
    };
    let untied_llama = dapt_model::ModelConfig::Llama(dapt_model::LlamaConfig {
        tie_embeddings: false,
        ..llama
    });
    let encoder = |flavour, tie_embeddings| {
        dapt_model::ModelConfig::Bert(dapt_model::BertConfig {
            vocab_size: 48,
            n_layer: 2,
            n_head: 2,
            d_model: 32,
            d_ff: 40,
            context: 16,
            position_offset: if flavour == dapt_model::EncoderFlavour::Roberta {
                2
            } else {
                0
            },
            tie_embeddings,
            flavour,
            ..dapt_model::BertConfig::default()
        })
    };
    let device = Device::flex();
    for (i, (config, model_type, width_key)) in [
        (untied_gpt, "gpt2", "n_embd"),
        (tiny_llama(48), "llama", "hidden_size"),
        (untied_llama, "llama", "hidden_size"),
        (
            encoder(dapt_model::EncoderFlavour::Bert, true),
            "bert",
            "hidden_size",
        ),
        (
            encoder(dapt_model::EncoderFlavour::Roberta, false),
            "roberta",
            "hidden_size",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let model = config.init(21, &device).unwrap();
        let dir = scratch_dir(&format!("export-roundtrip-{model_type}-{i}"));
        export_model(&model, &config, &dir).unwrap();

        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(json["model_type"], model_type);
        assert_eq!(json[width_key], 32);

        // Initialisation with seed 0 proves the weights come from the file.
        let (reloaded, reloaded_config) = load_exported(&dir, &device).unwrap();
        assert_eq!(reloaded_config, config);
        let ids = ids_tensor(&[5, 9, 1, 47, 0, 3, 3, 8], 2, 4, &device);
        assert_eq!(
            model.forward(ids.clone()).into_data(),
            reloaded.forward(ids).into_data(),
            "{model_type}"
        );
    }
}

#[test]
fn an_exported_t5_reloads_to_identical_logits() {
    let device = Device::flex();
    for (tie, activation) in [
        (true, dapt_model::Activation::Relu),
        (false, dapt_model::Activation::GatedGeluTanh),
    ] {
        let config = dapt_model::ModelConfig::T5(dapt_model::T5Config {
            vocab_size: 48,
            n_layer: 2,
            n_decoder_layer: 2,
            n_head: 2,
            d_model: 32,
            d_kv: 8,
            d_ff: 40,
            activation,
            context: 16,
            relative_buckets: 8,
            relative_max_distance: 20,
            tie_embeddings: tie,
            scale_logits: tie,
            ..dapt_model::T5Config::default()
        });
        let model = config.init(21, &device).unwrap();
        let dir = scratch_dir(&format!("export-roundtrip-t5-{tie}"));
        export_model(&model, &config, &dir).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(json["architectures"][0], "T5ForConditionalGeneration");
        let (reloaded, reloaded_config) = load_exported(&dir, &device).unwrap();
        assert_eq!(reloaded_config, config);
        let input = ids_tensor(&[5, 9, 1, 47, 0, 3, 3, 8], 2, 4, &device);
        let decoder = ids_tensor(&[0, 4, 7, 0, 2, 2], 2, 3, &device);
        assert_eq!(
            model
                .forward_seq2seq(input.clone(), decoder.clone())
                .into_data(),
            reloaded.forward_seq2seq(input, decoder).into_data(),
        );
    }
}

#[test]
fn uniform_logits_cost_ln_vocab_per_token() {
    let vocab = 50;
    let config = tiny_model(vocab);
    let device = Device::flex();
    let mut model = config.init(0, &device).unwrap();
    // Zero token embeddings + tied head: every logit is exactly 0, i.e. uniform predictions.
    model.token_embedding.weight = Param::from_data(
        TensorData::new(
            vec![0f32; vocab * config.d_model()],
            [vocab, config.d_model()],
        ),
        &device,
    );
    let ids: Vec<u32> = (0..37).map(|i| (i * 7 % vocab) as u32).collect();
    for (context, stride) in [(16, 16), (16, 5), (8, 1)] {
        let nll = token_nll(&model, &ids, context, stride, 3).unwrap();
        assert_eq!(nll.tokens, 36, "context {context} stride {stride}");
        let expected = 36.0 * (vocab as f64).ln();
        assert!(
            (nll.sum_nats - expected).abs() < 1e-4,
            "{} vs {expected}",
            nll.sum_nats
        );
    }
}

#[test]
fn rolling_windows_match_scoring_each_token_with_its_own_context() {
    let config = tiny_model(30);
    let device = Device::flex();
    let model = config.init(4, &device).unwrap();
    let ids: Vec<u32> = (0..29).map(|i| ((i * i + 3) % 30) as u32).collect();
    let (context, stride) = (8, 3);
    let windowed = token_nll(&model, &ids, context, stride, 4).unwrap();

    // Reference: each target scored in its own model call, with the context the windowing
    // promises it (the whole window that ends at it, as built by the rolling scheme).
    let mut reference = 0.0;
    let mut next = 1;
    while next < ids.len() {
        let window_end = if next == 1 {
            context.min(ids.len() - 1)
        } else {
            (next + stride).min(ids.len()) - 1
        };
        let start = window_end.saturating_sub(context);
        for target in next..=window_end {
            let inputs = &ids[start..target];
            let logits = model.forward(ids_tensor(inputs, 1, inputs.len(), &device));
            let last = logits.narrow(1, inputs.len() - 1, 1);
            let nll = dapt_model::sum_nll(last, ids_tensor(&ids[target..=target], 1, 1, &device));
            reference += f64::from(nll.into_scalar::<f32>());
        }
        next = window_end + 1;
    }
    assert_eq!(windowed.tokens, 28);
    assert!(
        (windowed.sum_nats - reference).abs() < 1e-3,
        "{} vs {reference}",
        windowed.sum_nats
    );
}

#[test]
fn pooled_features_have_one_row_of_width_d_model_per_document() {
    let config = tiny_model(20);
    let device = Device::flex();
    let model = config.init(8, &device).unwrap();
    let docs: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4], (0..40).map(|i| i % 20).collect()];
    let refs: Vec<&[u32]> = docs.iter().map(Vec::as_slice).collect();
    let batched = dapt_model::pooled_features(&model, &refs, 2).unwrap();
    assert_eq!(batched.len(), 3);
    assert!(batched.iter().all(|row| row.len() == config.d_model()));
    // Batching with padding does not change a document's features.
    let alone = dapt_model::pooled_features(&model, &refs[..1], 1).unwrap();
    for (a, b) in alone[0].iter().zip(&batched[0]) {
        assert!((a - b).abs() < 1e-5);
    }
}
