//! Llama GGUF -> Hugging Face folder, on the tiny Llamas of `scripts/make_gguf_fixture.py`:
//! config, tensor names, shapes and values (q/k un-permuted), tokenizer, and the errors.

mod common;

use std::str::FromStr;

use common::{assert_bits_eq, fixture, read_safetensors};
use dapt_gguf::tokenizer::{tokenizer_config_json, tokenizer_json};
use dapt_gguf::{Gguf, GgufError, LlamaConfig, write_hf_folder};
use serde_json::{Value as Json, json};
use tokenizers::Tokenizer;

fn read_json(path: &std::path::Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn config_of_the_tied_fixture() {
    let gguf = Gguf::open(fixture("llama_tiny.gguf")).unwrap();
    let config = LlamaConfig::from_gguf(&gguf).unwrap();
    assert_eq!(
        config,
        LlamaConfig {
            vocab_size: 286,
            hidden_size: 8,
            intermediate_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            head_dim: 4,
            max_position_embeddings: 128,
            rms_norm_eps: 1e-5,
            rope_theta: 100000.0,
            rope_scaling: None,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(2),
            pad_token_id: Some(2),
        }
    );
}

/// Convert `stem.gguf` and check every output file; returns the folder.
fn convert_and_check(stem: &str) -> (tempfile::TempDir, Json) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let summary = write_hf_folder(fixture(&format!("{stem}.gguf")), &out).unwrap();

    // Tensors: the Hugging Face originals, bit for bit (q/k un-permuted).
    let reference = read_safetensors(&fixture(&format!("{stem}_reference.safetensors")));
    let written = read_safetensors(&out.join("model.safetensors"));
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "tensor names"
    );
    for (name, want) in &reference {
        assert_eq!(written[name].shape, want.shape, "{name}: shape");
        assert_bits_eq(name, &written[name].values, &want.values);
    }
    assert_eq!(summary.n_tensors, reference.len());
    let n_params: usize = reference.values().map(|r| r.values.len()).sum();
    assert_eq!(summary.n_params, n_params as u64);
    assert_eq!(summary.architecture, "llama");
    let names: Vec<_> = summary
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json"
        ]
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The same GGUF converts to the same bytes.
    let again = dir.path().join("again");
    write_hf_folder(fixture(&format!("{stem}.gguf")), &again).unwrap();
    for name in &names {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name}"
        );
    }
    let config = read_json(&out.join("config.json"));
    (dir, config)
}

#[test]
fn tied_fixture_converts_to_its_hugging_face_original() {
    let (dir, config) = convert_and_check("llama_tiny");
    let out = dir.path().join("hf");
    assert_eq!(config["architectures"], json!(["LlamaForCausalLM"]));
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["vocab_size"], 286);
    assert_eq!(config["hidden_size"], 8);
    assert_eq!(config["intermediate_size"], 32);
    assert_eq!(config["num_hidden_layers"], 2);
    assert_eq!(config["num_attention_heads"], 2);
    assert_eq!(config["num_key_value_heads"], 1);
    assert_eq!(config["head_dim"], 4);
    assert_eq!(config["max_position_embeddings"], 128);
    assert_eq!(config["rms_norm_eps"], 1e-5);
    assert_eq!(config["rope_theta"], 100000.0);
    assert_eq!(config["rope_scaling"], Json::Null);
    assert_eq!(config["tie_word_embeddings"], true);
    assert_eq!(
        (
            config["bos_token_id"].clone(),
            config["eos_token_id"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(config["hidden_act"], "silu");
    assert_eq!(
        (config["attention_bias"].clone(), config["mlp_bias"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(config["torch_dtype"], "float32");

    let written = read_safetensors(&out.join("model.safetensors"));
    assert!(!written.contains_key("lm_head.weight"));
    assert_eq!(
        written["model.layers.1.self_attn.k_proj.weight"].shape,
        [4, 8]
    );
    assert_eq!(
        written["model.layers.0.mlp.down_proj.weight"].shape,
        [8, 32]
    );

    let generation = read_json(&out.join("generation_config.json"));
    assert_eq!(
        generation,
        json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2})
    );

    let tokenizer_config = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(
        tokenizer_config["tokenizer_class"],
        "PreTrainedTokenizerFast"
    );
    assert_eq!(tokenizer_config["bos_token"], "<|im_start|>");
    assert_eq!(tokenizer_config["eos_token"], "<|im_end|>");
    assert_eq!(tokenizer_config["unk_token"], "<|endoftext|>");
    assert_eq!(tokenizer_config["pad_token"], "<|im_end|>");
    assert_eq!(tokenizer_config["model_max_length"], 128);
    assert_eq!(tokenizer_config["add_bos_token"], false);
    assert!(
        tokenizer_config["chat_template"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>")
    );

    // The written tokenizer.json loads in `tokenizers`; `smollm` splits digits one by one, so
    // the "1 2" merge never applies.
    let tokenizer = Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 286);
    let text = "the cat and 12";
    let encoding = tokenizer.encode(text, true).unwrap();
    assert_eq!(encoding.get_ids(), [119, 260, 269, 267, 277, 35, 52, 53]);
    assert_eq!(
        encoding.get_tokens(),
        [
            "t",
            "he",
            "\u{120}c",
            "at",
            "\u{120}and",
            "\u{120}",
            "1",
            "2"
        ]
    );
    assert_eq!(tokenizer.decode(encoding.get_ids(), false).unwrap(), text);

    // Control tokens are special and whole; user-defined ones are whole but not special.
    let encoding = tokenizer
        .encode("<|im_start|>h\u{e9}llo <think>\n<|im_end|>", true)
        .unwrap();
    let ids = encoding.get_ids();
    assert_eq!((ids[0], *ids.last().unwrap()), (1, 2));
    assert!(ids.contains(&285), "{ids:?}");
    assert_eq!(tokenizer.decode(ids, true).unwrap(), "h\u{e9}llo <think>\n");
    for text in [
        "Byte-level: \u{1f980} \u{4e2d}\u{6587}, tabs\tand\r\nnewlines.",
        "  two  spaces  ",
    ] {
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn untied_fixture_with_defaults_and_rope_scaling() {
    let (dir, config) = convert_and_check("llama_tiny_untied");
    let out = dir.path().join("hf");
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(
        config["num_key_value_heads"], 2,
        "defaults to the head count"
    );
    assert_eq!(config["rope_theta"], 10000.0, "the default");
    assert_eq!(
        config["rope_scaling"],
        json!({"type": "linear", "rope_type": "linear", "factor": 2.0})
    );
    let written = read_safetensors(&out.join("model.safetensors"));
    assert_eq!(written["lm_head.weight"].shape, [286, 8]);
    assert_eq!(
        written["model.layers.0.self_attn.k_proj.weight"].shape,
        [8, 8]
    );

    // `llama-bpe`: Llama 3's split keeps up to three digits together, whole words in the
    // vocabulary skip the merges, and BOS is added.
    let tokenizer = Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let encoding = tokenizer.encode("the cat and 12", true).unwrap();
    assert_eq!(encoding.get_ids(), [1, 119, 260, 269, 267, 277, 35, 284]);
    assert_eq!(
        tokenizer.decode(encoding.get_ids(), true).unwrap(),
        "the cat and 12"
    );
    let tokenizer_config = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(tokenizer_config["add_bos_token"], true);
}

#[test]
fn tokenizer_json_parses_from_a_string() {
    let gguf = Gguf::open(fixture("llama_tiny.gguf")).unwrap();
    let json = tokenizer_json(&gguf).unwrap();
    assert_eq!(json["model"]["type"], "BPE");
    assert_eq!(json["model"]["byte_fallback"], false);
    assert_eq!(json["model"]["ignore_merges"], false);
    assert_eq!(json["model"]["merges"][0], json!(["\u{120}", "t"]));
    assert_eq!(json["added_tokens"].as_array().unwrap().len(), 4);
    assert_eq!(json["added_tokens"][3]["content"], "<think>");
    assert_eq!(json["added_tokens"][3]["special"], false);
    assert_eq!(
        json["pre_tokenizer"]["pretokenizers"][0],
        json!({"type": "Digits", "individual_digits": true})
    );
    let tokenizer = Tokenizer::from_str(&json.to_string()).unwrap();
    assert_eq!(tokenizer.token_to_id("\u{120}the"), Some(261));
    let config = tokenizer_config_json(&gguf, None).unwrap();
    assert!(config.get("model_max_length").is_none());
}

/// `bytes` with the first length-prefixed string `from` replaced by `to` (any length: only the
/// metadata is read afterwards).
fn replace_string(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let mut needle = (from.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(from.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut out = bytes[..at].to_vec();
    out.extend((to.len() as u64).to_le_bytes());
    out.extend(to.as_bytes());
    out.extend(&bytes[at + needle.len()..]);
    out
}

#[test]
fn tokenizer_errors_name_what_is_unsupported() {
    let bytes = std::fs::read(fixture("llama_tiny.gguf")).unwrap();
    let gguf = Gguf::from_bytes("spm.gguf", replace_string(&bytes, "gpt2", "llama")).unwrap();
    let message = tokenizer_json(&gguf).unwrap_err().to_string();
    assert!(
        message.contains("spm.gguf")
            && message.contains("SentencePiece")
            && message.contains("not supported yet"),
        "{message}"
    );

    let gguf =
        Gguf::from_bytes("pre.gguf", replace_string(&bytes, "smollm", "klingon-bpe")).unwrap();
    let message = tokenizer_json(&gguf).unwrap_err().to_string();
    assert!(message.contains("pre-tokenizer `klingon-bpe`"), "{message}");
}

#[test]
fn conversion_errors_name_the_tensor_or_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never-written");

    let err = write_hf_folder(fixture("quants.gguf"), &out).unwrap_err();
    assert!(
        matches!(err, GgufError::UnsupportedArchitecture { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("quants-test") && message.contains("quants.gguf"),
        "{message}"
    );

    let bytes = std::fs::read(fixture("llama_tiny.gguf")).unwrap();

    // A tensor renamed away is missing (and the stray name is not silently dropped).
    let renamed = replace_string(&bytes, "blk.1.ffn_up.weight", "blk.1.ffn_uq.weight");
    let path = dir.path().join("renamed.gguf");
    std::fs::write(&path, renamed).unwrap();
    let err = write_hf_folder(&path, &out).unwrap_err();
    assert!(
        matches!(&err, GgufError::MissingTensor { tensor, .. } if tensor == "blk.1.ffn_up.weight"),
        "{err:?}"
    );
    assert!(err.to_string().contains("renamed.gguf"));

    // attn_q's ne = [8, 8] -> [8, 4]: wrong shape, named with both shapes.
    let mut reshaped = bytes.clone();
    let name = "blk.0.attn_q.weight";
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = reshaped
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len()
        + 4
        + 8;
    reshaped[at..at + 8].copy_from_slice(&4u64.to_le_bytes());
    let gguf = Gguf::from_bytes("reshaped.gguf", reshaped).unwrap();
    let err = dapt_gguf::write_hf_folder_from(&gguf, &out).unwrap_err();
    assert!(matches!(err, GgufError::ShapeMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("`blk.0.attn_q.weight`")
            && message.contains("[4, 8]")
            && message.contains("expected [8, 8]"),
        "{message}"
    );

    // A missing required key.
    let gguf = Gguf::from_bytes(
        "nokey.gguf",
        replace_string(&bytes, "llama.block_count", "llama.block_kount"),
    )
    .unwrap();
    let message = LlamaConfig::from_gguf(&gguf).unwrap_err().to_string();
    assert!(
        message.contains("`llama.block_count` is missing"),
        "{message}"
    );

    assert!(
        !out.exists(),
        "nothing is written when the conversion fails"
    );
}
