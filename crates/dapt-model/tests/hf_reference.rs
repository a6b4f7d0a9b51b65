//! dapt's import of tiny random transformers models gives transformers' logits.
//!
//! The fixtures under `tests/fixtures/hf/` are made by `scripts/make_hf_fixtures.py`
//! (GPT-2 with tanh and erf GELU, tied and untied; Llama with grouped-query attention,
//! tied and untied, rope scaling; BERT and RoBERTa masked LMs; T5 with ReLU and a tied,
//! scaled head, and with gated GELU and its own head): each folder is what
//! `save_pretrained` wrote, plus `reference.safetensors` with the `input_ids` it was run
//! on (and T5's `decoder_input_ids`) and the `logits` it gave (and, for encoders, the last
//! layer's `hidden_states`, T5's `encoder_hidden_states`).
//! `just test-hf` checks the other direction (dapt's exports load in transformers).

use std::path::{Path, PathBuf};

use dapt_model::burn::prelude::*;
use dapt_model::{ids_tensor, load_exported};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.safetensors").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Integer ids of a reference file (`input_ids`, `decoder_input_ids`), with their shape.
fn ids(tensors: &SafeTensors, name: &str) -> Option<(Vec<u32>, [usize; 2])> {
    let ids = tensors.tensor(name).ok()?;
    let shape = [ids.shape()[0], ids.shape()[1]];
    let values = match ids.dtype() {
        Dtype::I64 => ids
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect(),
        Dtype::I32 => ids
            .data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect(),
        other => panic!("{name} is {other:?}"),
    };
    Some((values, shape))
}

/// `input_ids` (as u32, with their [B, T] shape) and the flat `logits`.
fn reference(dir: &Path) -> (Vec<u32>, [usize; 2], Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let (ids, shape) = ids(&tensors, "input_ids").expect("input_ids");
    let (values, logits_shape) = floats(&tensors, "logits").unwrap();
    (ids, shape, values, logits_shape)
}

/// A float32 tensor of a reference file, flat, and its shape; `None` if absent.
fn floats(tensors: &SafeTensors, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
    let tensor = tensors.tensor(name).ok()?;
    assert_eq!(tensor.dtype(), Dtype::F32, "{name}");
    let values = tensor
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Some((values, tensor.shape().to_vec()))
}

fn max_abs_diff(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

#[test]
fn imported_transformers_models_give_transformers_logits() {
    let dirs = fixtures();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (family, count) in [
        ("gpt2", 2),
        ("llama", 2),
        ("bert", 1),
        ("roberta", 1),
        ("t5", 2),
    ] {
        assert!(
            names.iter().filter(|n| n.starts_with(family)).count() >= count,
            "expected {count} {family} fixtures, found {names:?}"
        );
    }
    let device = Device::flex();
    for dir in &dirs {
        let (model, config) = load_exported(dir, &device)
            .unwrap_or_else(|e| panic!("importing {}: {e:#}", dir.display()));
        let (ids, [rows, cols], expected, shape) = reference(dir);
        let ids = ids_tensor(&ids, rows, cols, &device);
        let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
        let tensors = SafeTensors::deserialize(&bytes).unwrap();
        // An encoder-decoder reads the input and the decoder's own ids.
        let logits = match self::ids(&tensors, "decoder_input_ids") {
            Some((decoder, [r, c])) => {
                model.forward_seq2seq(ids.clone(), ids_tensor(&decoder, r, c, &device))
            }
            None => model.forward(ids.clone()),
        };
        assert_eq!(logits.dims().to_vec(), shape, "{}", dir.display());
        let got = logits.into_data().try_into_vec::<f32>().unwrap();
        let max_diff = max_abs_diff(&got, &expected);
        // An encoder's last hidden states feed the sentiment probe: compared too.
        if let Some((expected, shape)) =
            floats(&tensors, "hidden_states").or_else(|| floats(&tensors, "encoder_hidden_states"))
        {
            let hidden = model.hidden_states(ids);
            assert_eq!(hidden.dims().to_vec(), shape, "{}", dir.display());
            let got = hidden.into_data().try_into_vec::<f32>().unwrap();
            let diff = max_abs_diff(&got, &expected);
            assert!(diff <= 1e-4, "{}: max |Δhidden| = {diff}", dir.display());
            eprintln!("{}: max |Δhidden| = {diff:.2e}", dir.display());
        }
        // The logits are O(1)-O(10): the tolerance is tight enough that a wrong layout,
        // norm, activation or rotary convention fails by orders of magnitude.
        assert!(
            max_diff <= 1e-4,
            "{} ({}): max |Δlogit| = {max_diff}",
            dir.display(),
            config.family()
        );
        eprintln!("{}: max |Δlogit| = {max_diff:.2e}", dir.display());
    }
}

/// Keeps, reshapes or drops one tensor (name, shape, bytes) of a safetensors file.
type Edit = dyn Fn(&str, Vec<usize>, Vec<u8>) -> Option<(Vec<usize>, Vec<u8>)>;

#[test]
fn a_missing_or_misshapen_tensor_is_named() {
    let source = fixtures()
        .into_iter()
        .find(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("llama")
        })
        .expect("a llama fixture");
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let rewrite = |dir: &Path, edit: &Edit| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
        let kept: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .tensors()
            .into_iter()
            .filter_map(|(name, view)| {
                edit(&name, view.shape().to_vec(), view.data().to_vec())
                    .map(|(shape, data)| (name, shape, data))
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = kept
            .iter()
            .map(|(name, shape, data)| {
                (
                    name.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        std::fs::write(
            dir.join("model.safetensors"),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
    };
    let scratch = std::env::temp_dir().join(format!("dapt-hf-bad-{}", std::process::id()));
    let missing = scratch.join("missing");
    rewrite(&missing, &|name, shape, data| {
        (name != "model.layers.1.self_attn.k_proj.weight").then_some((shape, data))
    });
    let message = format!(
        "{:#}",
        load_exported(&missing, &Device::flex()).err().unwrap()
    );
    assert!(
        message.contains("model.layers.1.self_attn.k_proj.weight") && message.contains("missing"),
        "{message}"
    );
    let misshapen = scratch.join("misshapen");
    rewrite(&misshapen, &|name, shape, data| {
        if name == "model.layers.0.mlp.up_proj.weight" {
            // The same elements as [cols, rows]: a transposed tensor.
            Some((vec![shape[1], shape[0]], data))
        } else {
            Some((shape, data))
        }
    });
    let message = format!(
        "{:#}",
        load_exported(&misshapen, &Device::flex()).err().unwrap()
    );
    assert!(
        message.contains("model.layers.0.mlp.up_proj.weight"),
        "{message}"
    );
    std::fs::remove_dir_all(&scratch).ok();
}
