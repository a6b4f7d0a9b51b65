//! The pre-training objectives through the `dapt` binary on a slice of the real corpora: a
//! GPT by causal LM, a BERT by masked LM and a T5 by span corruption, each pretrained on
//! general text and continued on financial text, evaluated side by side and reported.

mod support;

use support::*;

/// The training pipeline with `<mask>` and sentinels in its tokenizer, a 1-layer BERT and
/// a 1+1-layer T5 beside its GPT, all evaluated (the PhraseBank probe included) and
/// reported.
fn objectives_pipeline() -> String {
    let data_root = dapt_testdata::mirror();
    training_pipeline(&data_root).replace(
        "vocab_size = 1000\nsample_mb = 2\n",
        "vocab_size = 1000\nsample_mb = 2\nmask_token = true\nsentinels = 20\n",
    ) + "\n[stages.mlm_base]\nkind = \"pretrain\"\ninputs = [\"tokenize\", \"tokenizer\"]\n\
         model = { family = \"bert\", n_layer = 1, n_head = 2, d_model = 32, context = 32 }\n\
         mixture = { general = 1.0 }\ntoken_budget = 16_384\nbatch_size = 8\npeak_lr = 3e-3\n\
         eval_every = 16\ncheckpoint_every = 16\neval_batches = 8\n\n\
         [stages.mlm_financial]\nkind = \"continue\"\ninputs = [\"tokenize\", \"tokenizer\", \"mlm_base\"]\n\
         from = \"mlm_base\"\nmixture = { financial = 1.0 }\nmasking = { whole_word = true }\ntoken_budget = 16_384\nbatch_size = 8\n\
         peak_lr = 3e-3\neval_every = 16\ncheckpoint_every = 16\neval_batches = 8\n\n\
         [stages.span_base]\nkind = \"pretrain\"\ninputs = [\"tokenize\", \"tokenizer\"]\n\
         model = { family = \"t5\", n_layer = 1, n_head = 2, d_model = 32, context = 32 }\n\
         mixture = { general = 1.0 }\ntoken_budget = 16_384\nbatch_size = 8\npeak_lr = 3e-3\n\
         eval_every = 16\ncheckpoint_every = 16\neval_batches = 8\n\n\
         [stages.span_financial]\nkind = \"continue\"\ninputs = [\"tokenize\", \"tokenizer\", \"span_base\"]\n\
         from = \"span_base\"\nmixture = { financial = 1.0 }\ntoken_budget = 16_384\nbatch_size = 8\n\
         peak_lr = 3e-3\neval_every = 16\ncheckpoint_every = 16\neval_batches = 8\n\n\
         [corpora.phrasebank]\ndomain = \"sentiment\"\nreader = \"phrasebank\"\n\
         paths = [\"financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt\"]\n\n\
         [stages.ingest_sentiment]\nkind = \"ingest\"\ncorpora = [\"phrasebank\"]\n\n\
         [stages.evaluate]\nkind = \"evaluate\"\n\
         inputs = [\"tokenize\", \"tokenizer\", \"ingest_sentiment\", \"base\", \"financial\", \"mlm_base\", \"mlm_financial\", \"span_base\", \"span_financial\"]\n\
         tokens = \"tokenize\"\ntokenizer = \"tokenizer\"\nsentiment = \"ingest_sentiment\"\n\
         models = [\"base\", \"financial\", \"mlm_base\", \"mlm_financial\", \"span_base\", \"span_financial\"]\n\
         max_tokens_per_domain = 3000\npseudo_tokens = 24\nmax_train_examples = 200\nmax_test_examples = 100\n\n\
         [stages.evaluate.datasets.phrasebank]\nsources = [\"phrasebank\"]\n\
         labels = { negative = \"negative\", neutral = \"neutral\", positive = \"positive\" }\n\n\
         [stages.report]\nkind = \"report\"\n\
         inputs = [\"ingest\", \"split\", \"tokenize\", \"base\", \"financial\", \"mlm_base\", \"mlm_financial\", \"span_base\", \"span_financial\", \"evaluate\"]\n\
         evaluate = \"evaluate\"\nbaseline = \"base\"\nadapted = \"financial\"\n"
}

#[test]
fn a_bert_by_masked_lm_and_a_t5_by_span_corruption_are_evaluated_beside_the_gpt() {
    let sb = Sandbox::new(&objectives_pipeline());
    sb.dapt_expect(&["run"], 0);

    // The tokenizer appended the mask token and 20 sentinels after its 1000 ids.
    assert_eq!(counts(&sb, "tokenizer")["vocab_size"], 1021);
    let base = counts(&sb, "mlm_base");
    let continued = counts(&sb, "mlm_financial");
    assert_eq!(base["model"]["family"], "bert");
    assert_eq!(base["train"]["objective"]["kind"], "mlm");
    assert_eq!(
        continued["train"]["objective"]["kind"], "mlm",
        "continue keeps the family's objective"
    );
    // Whole-word masking, with the word starts of the byte-level BPE vocabulary (Ġ).
    let objective = &continued["train"]["objective"];
    assert_eq!(objective["masking"]["whole_word"], true);
    let starts = objective["word_starts"].as_array().unwrap().len();
    assert!(
        starts > 100 && starts < 1000,
        "{starts} word starts of 1021 ids"
    );
    // Masked-token validation loss on financial text falls when continuing on it.
    let before = base["validation"]["financial"].as_f64().unwrap();
    let after = continued["validation"]["financial"].as_f64().unwrap();
    assert!(
        after < before - 0.05,
        "financial MLM loss {before} -> {after}"
    );

    // The export is a transformers BertForMaskedLM with its mask token.
    let model = sb.path(".dapt/stages/mlm_financial/out/model");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "bert");
    assert_eq!(config["architectures"][0], "BertForMaskedLM");
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(settings["mask_token"], "<mask>");

    // Decoders get next-token scores, encoders masked-token scores and pseudo-perplexity.
    let eval = counts(&sb, "evaluate");
    for m in ["base", "financial"] {
        assert!(eval["lm"][m]["financial"]["token_loss"].is_f64(), "{m}");
        assert!(eval["masked_lm"].get(m).is_none(), "{m}");
        assert!(eval["sentiment"][m]["phrasebank"]["zero_shot"]["accuracy"].is_f64());
    }
    for m in ["mlm_base", "mlm_financial"] {
        let fin = &eval["masked_lm"][m]["financial"];
        assert!(fin["masked_tokens"].as_u64().unwrap() > 100, "{fin}");
        assert_eq!(fin["pseudo_tokens"], 24);
        let loss = fin["masked_loss"].as_f64().unwrap();
        assert!(loss > 0.0 && loss < (1021f64).ln() + 1.0, "{loss}");
        assert!(eval["lm"].get(m).is_none(), "{m}");
        let probe = &eval["sentiment"][m]["phrasebank"];
        assert!(probe["probe"]["accuracy"].is_f64());
        assert!(
            probe.get("zero_shot").is_none(),
            "no zero-shot for an encoder: {probe}"
        );
    }
    // Continuing on financial text lowers the encoder's masked loss there, under the same masks.
    let masked = |m: &str| {
        eval["masked_lm"][m]["financial"]["masked_loss"]
            .as_f64()
            .unwrap()
    };
    assert!(masked("mlm_financial") < masked("mlm_base"));

    // The T5: span corruption, its sentinels from the tokenizer, a falling financial span
    // loss under the same spans, a T5ForConditionalGeneration export, the probe on its encoder.
    let span_base = counts(&sb, "span_base");
    let span_fin = counts(&sb, "span_financial");
    assert_eq!(span_base["model"]["family"], "t5");
    assert_eq!(span_fin["train"]["objective"]["kind"], "span");
    assert_eq!(
        span_fin["train"]["objective"]["sentinels"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    let before = span_base["validation"]["financial"].as_f64().unwrap();
    let after = span_fin["validation"]["financial"].as_f64().unwrap();
    assert!(
        after < before - 0.05,
        "financial span loss {before} -> {after}"
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.path(".dapt/stages/span_financial/out/model/config.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["architectures"][0], "T5ForConditionalGeneration");
    let span = |m: &str| {
        eval["span_lm"][m]["financial"]["span_loss"]
            .as_f64()
            .unwrap()
    };
    assert!(span("span_financial") < span("span_base"));
    assert!(
        eval["span_lm"]["span_base"]["general"]["target_tokens"]
            .as_u64()
            .unwrap()
            > 100
    );
    let probe = &eval["sentiment"]["span_financial"]["phrasebank"];
    assert!(probe["probe"]["accuracy"].is_f64() && probe.get("zero_shot").is_none());

    let report = std::fs::read_to_string(sb.path(".dapt/stages/report/out/report.md")).unwrap();
    let section = report
        .split("## Pre-training objectives side by side")
        .nth(1)
        .expect("the objectives section");
    for row in [
        "| `base` | gpt | clm |",
        "| `mlm_financial` | bert | mlm | mlm_base |",
        "| `span_financial` | t5 | span | span_base |",
    ] {
        assert!(section.contains(row), "{row} missing from:\n{section}");
    }
    assert!(
        section.contains("adapted most to financial text"),
        "{section}"
    );
}

#[test]
fn an_objective_that_does_not_fit_the_model_or_the_tokenizer_is_named() {
    // Masked LM for a GPT: refused by `check`, naming the key.
    let sb = Sandbox::new(&training_pipeline(&dapt_testdata::mirror()).replace(
        "[stages.base]\nkind = \"pretrain\"\n",
        "[stages.base]\nkind = \"pretrain\"\nobjective = \"mlm\"\n",
    ));
    let out = sb.dapt_expect(&["status"], 2);
    let message = stderr(&out);
    assert!(
        message.contains("objective") && message.contains("encoder"),
        "{message}"
    );
    // A BERT whose tokenizer has no mask token: the run names the fix.
    let sb = Sandbox::new(&training_pipeline(&dapt_testdata::mirror()).replace(
        "model = { n_layer = 1,",
        "model = { family = \"bert\", n_layer = 1,",
    ));
    let out = sb.dapt(&["run", "base"]);
    assert!(!out.status.success());
    let message = stderr(&out) + &stdout(&out);
    assert!(message.contains("mask_token = true"), "{message}");
    // Span corruption for a BERT: refused, naming the family it trains.
    sb.edit_pipeline(
        "[stages.base]\nkind = \"pretrain\"\n",
        "[stages.base]\nkind = \"pretrain\"\nobjective = \"span\"\n",
    );
    let out = sb.dapt_expect(&["status"], 2);
    assert!(
        stderr(&out).contains("encoder-decoder (t5)"),
        "{}",
        stderr(&out)
    );
    // A T5 whose tokenizer has no sentinels: the run names the fix.
    let sb = Sandbox::new(&training_pipeline(&dapt_testdata::mirror()).replace(
        "model = { n_layer = 1,",
        "model = { family = \"t5\", n_layer = 1,",
    ));
    let out = sb.dapt(&["run", "base"]);
    assert!(!out.status.success());
    let message = stderr(&out) + &stdout(&out);
    assert!(message.contains("sentinels = 100"), "{message}");
}
