//! A pretrained model brought in and adapted, through the `dapt` binary: a `model` stage
//! imports a tiny Llama GGUF (the dapt-gguf fixture written by the `gguf` Python package:
//! Q8_0/F16 tensors, q/k permuted as llama.cpp stores them, a byte-level BPE tokenizer in
//! its metadata), the tokenizer stage takes its tokenizer, `continue` trains it on a slice
//! of the real financial corpus, `evaluate` scores both, and `dapt generate` samples.

mod support;

use std::path::Path;

use support::*;

const GGUF_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dapt-gguf/tests/fixtures/llama_tiny.gguf"
);

fn pipeline(data_root: &Path) -> String {
    format!(
        "[pipeline]\nname = \"foundation\"\njobs = 2\nseed = 7\ndata_root = \"{}\"\n\n\
         [corpora.business]\ndomain = \"financial\"\nreader = \"folder-labels\"\nencoding = \"utf-8-or-latin-1\"\npaths = [\"general/bbc_news/business/*.txt\"]\n\n\
         [corpora.tech]\ndomain = \"general\"\nreader = \"folder-labels\"\nencoding = \"utf-8-or-latin-1\"\npaths = [\"general/bbc_news/tech/*.txt\"]\n\n\
         [stages.ingest]\nkind = \"ingest\"\ncorpora = [\"business\", \"tech\"]\n\n\
         [stages.split]\nkind = \"split\"\ninputs = [\"ingest\"]\nratios = {{ train = 0.8, validation = 0.1, test = 0.1 }}\n\n\
         [stages.imported]\nkind = \"model\"\nfrom = \"tiny.gguf\"\nlicense = \"apache-2.0\"\n\n\
         [stages.tokenizer]\nkind = \"tokenizer\"\ninputs = [\"imported\"]\nfrom = \"imported\"\n\n\
         [stages.tokenize]\nkind = \"tokenize\"\ninputs = [\"split\", \"tokenizer\"]\ntokenizer = \"tokenizer\"\n\n\
         [stages.financial]\nkind = \"continue\"\ninputs = [\"tokenize\", \"tokenizer\", \"imported\"]\nfrom = \"imported\"\n\
         mixture = {{ financial = 1.0 }}\ntoken_budget = 16_384\nbatch_size = 8\nseq_len = 32\npeak_lr = 1e-2\n\
         eval_every = 16\ncheckpoint_every = 32\neval_batches = 8\n\n\
         [stages.evaluate]\nkind = \"evaluate\"\ninputs = [\"tokenize\", \"tokenizer\", \"imported\", \"financial\"]\n\
         tokens = \"tokenize\"\ntokenizer = \"tokenizer\"\nmodels = [\"imported\", \"financial\"]\n\
         split = \"test\"\nmax_tokens_per_domain = 4000\ncontext = 32\nstride = 16\n",
        data_root.display()
    )
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::new(&pipeline(&dapt_testdata::mirror()));
    std::fs::copy(GGUF_FIXTURE, sb.path("tiny.gguf")).unwrap();
    sb
}

fn bits_per_byte(sb: &Sandbox, model: &str, domain: &str) -> f64 {
    counts(sb, "evaluate")["lm"][model][domain]["bits_per_byte"]
        .as_f64()
        .unwrap_or_else(|| panic!("no bits per byte of {model} on {domain}"))
}

#[test]
fn an_imported_gguf_model_is_continued_evaluated_and_sampled() {
    let sb = sandbox();
    sb.dapt_expect(&["run"], 0);

    // The import: a Hugging Face folder with transformers' names, the rebuilt tokenizer
    // and a model card.
    let imported = counts(&sb, "imported");
    assert_eq!(imported["model"]["family"], "llama");
    assert_eq!(imported["model"]["n_kv_head"], 1);
    assert_eq!(imported["gguf"]["tensor_types"]["Q8_0"], 2, "{imported}");
    assert_eq!(imported["params"], 4248);
    let model_dir = sb.path(".dapt/stages/imported/out/model");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    let card = std::fs::read_to_string(model_dir.join("README.md")).unwrap();
    assert!(card.contains("license: apache-2.0") && card.contains("base_model: tiny.gguf"));
    // The tokenizer stage took the model's own tokenizer, byte for byte.
    assert_eq!(
        std::fs::read(model_dir.join("tokenizer.json")).unwrap(),
        std::fs::read(sb.path(".dapt/stages/tokenizer/out/tokenizer.json")).unwrap()
    );

    // Continued on financial text, it fits financial text better than the import.
    let continued = counts(&sb, "financial");
    assert_eq!(continued["init"], "imported");
    assert_eq!(continued["model"], imported["model"]);
    let (before, after) = (
        bits_per_byte(&sb, "imported", "financial"),
        bits_per_byte(&sb, "financial", "financial"),
    );
    assert!(
        after < before - 0.1,
        "financial bits per byte {before} -> {after}"
    );
    let card =
        std::fs::read_to_string(sb.path(".dapt/stages/financial/out/model/README.md")).unwrap();
    assert!(
        card.contains("base_model: imported") && card.contains("| financial |"),
        "{card}"
    );

    // Exported for the hub: the folder, and a card with the evaluate stage's scores.
    let exported = sb.path("exported");
    sb.dapt_expect(&["export", "financial", exported.to_str().unwrap()], 0);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert_eq!(
            std::fs::read(exported.join(file)).unwrap(),
            std::fs::read(sb.path(".dapt/stages/financial/out/model").join(file)).unwrap(),
            "{file}"
        );
    }
    let card = std::fs::read_to_string(exported.join("README.md")).unwrap();
    assert!(
        card.contains("Scores of evaluate stage `evaluate`"),
        "{card}"
    );
    assert!(
        card.contains(&format!("| financial | {after:.4} |")),
        "{card}"
    );

    // Generation: greedy is deterministic, sampling is seeded.
    let generate = |stage: &str, extra: &[&str]| {
        let mut args = vec![
            "generate",
            stage,
            "--prompt",
            "The company said",
            "--max-tokens",
            "12",
        ];
        args.extend_from_slice(extra);
        stdout(&sb.dapt_expect(&args, 0))
    };
    let greedy = generate("financial", &[]);
    assert!(greedy.starts_with("The company said"), "{greedy}");
    assert!(
        greedy.len() > "The company said".len() + 1,
        "nothing generated: {greedy:?}"
    );
    assert_eq!(greedy, generate("financial", &[]));
    let sampled = |seed: &str| {
        generate(
            "financial",
            &["--temperature", "1.0", "--top-p", "0.9", "--seed", seed],
        )
    };
    assert_eq!(sampled("3"), sampled("3"));
    assert_ne!(
        generate("imported", &[]),
        greedy,
        "training changed nothing"
    );

    // The file is content-hashed: a copy with a new mtime changes nothing...
    let before_runs = sb.dapt_expect(&["run"], 0);
    assert!(
        !stdout(&before_runs).contains("ran "),
        "{}",
        stdout(&before_runs)
    );
    std::fs::write(sb.path("tiny.gguf"), std::fs::read(GGUF_FIXTURE).unwrap()).unwrap();
    let (state, _) = sb.state_of("imported");
    assert_eq!(state, "fresh");
    // ...other bytes make the import and everything downstream stale.
    let untied = GGUF_FIXTURE.replace("llama_tiny.gguf", "llama_tiny_untied.gguf");
    std::fs::copy(untied, sb.path("tiny.gguf")).unwrap();
    let (state, reason) = sb.state_of("imported");
    assert_eq!(state, "stale", "{reason}");
    assert!(reason.contains("tiny.gguf"), "{reason}");
}

#[test]
fn a_damaged_gguf_fails_its_stage_naming_the_file_and_the_problem() {
    let sb = sandbox();
    let bytes = std::fs::read(GGUF_FIXTURE).unwrap();
    std::fs::write(sb.path("tiny.gguf"), &bytes[..bytes.len() - 100]).unwrap();
    let out = sb.dapt_expect(&["run", "imported"], 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("tiny.gguf") && text.contains("truncated"),
        "{text}"
    );
    let mut bad = bytes.clone();
    bad[..4].copy_from_slice(b"GGXF");
    std::fs::write(sb.path("tiny.gguf"), &bad).unwrap();
    let out = sb.dapt_expect(&["run", "imported"], 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("tiny.gguf") && text.contains("magic"),
        "{text}"
    );
    // Fixed, the rerun imports it.
    std::fs::write(sb.path("tiny.gguf"), &bytes).unwrap();
    sb.dapt_expect(&["run", "imported"], 0);
}
