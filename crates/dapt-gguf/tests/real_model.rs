//! Opt-in check on a real model: SmolLM2-135M-Instruct, Q4_1 (Llama, 30 layers, d 576,
//! 9 heads / 3 KV heads, vocab 49152, tied embeddings).
//!
//! ```text
//! DAPT_GGUF_SMOLLM2=/path/SmolLM2-135M-Instruct.Q4_1.gguf \
//!     cargo test -p dapt-gguf --release --test real_model -- --ignored
//! ```
//!
//! The expected token ids are those of transformers' own GGUF tokenizer
//! (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, transformers 5.25) on the same file.

use dapt_gguf::write_hf_folder;
use tokenizers::Tokenizer;

#[test]
#[ignore = "needs DAPT_GGUF_SMOLLM2 pointing at SmolLM2-135M-Instruct.Q4_1.gguf"]
fn smollm2_135m_converts() {
    let Some(path) = std::env::var_os("DAPT_GGUF_SMOLLM2") else {
        eprintln!("DAPT_GGUF_SMOLLM2 is not set; skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let summary = write_hf_folder(&path, dir.path()).unwrap();
    assert_eq!(summary.n_params, 134_515_008);
    assert_eq!(summary.n_tensors, 272);
    assert!(summary.tie_word_embeddings);
    let types: Vec<(&str, usize)> = summary
        .tensor_types
        .iter()
        .map(|(k, &v)| (k.as_str(), v))
        .collect();
    assert_eq!(types, [("F32", 61), ("Q4_1", 210), ("Q8_0", 1)]);

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    for (key, value) in [
        ("hidden_size", 576.0),
        ("intermediate_size", 1536.0),
        ("num_hidden_layers", 30.0),
        ("num_attention_heads", 9.0),
        ("num_key_value_heads", 3.0),
        ("vocab_size", 49152.0),
        ("max_position_embeddings", 8192.0),
        ("rope_theta", 100000.0),
        ("rms_norm_eps", 1e-5),
    ] {
        assert_eq!(config[key].as_f64(), Some(value), "{key}");
    }

    let tokenizer = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    for (text, ids) in [
        ("Hello, we can use", &[19556, 28, 392, 416, 722][..]),
        ("The capital of France is", &[504, 3575, 282, 4649, 314]),
        ("Hello world! 123", &[19556, 905, 17, 216, 33, 34, 35]),
    ] {
        assert_eq!(
            tokenizer.encode(text, true).unwrap().get_ids(),
            ids,
            "{text}"
        );
    }
}
