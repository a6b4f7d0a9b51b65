//! Evaluate and report through the `dapt` binary on the tiny training pipeline plus the
//! Financial PhraseBank: the report and its plots exist, and its numbers are the manifests'.

mod support;

use support::*;

fn pipeline() -> String {
    let mirror = dapt_testdata::mirror();
    training_pipeline(&mirror)
        + "\n[corpora.phrasebank]\ndomain = \"sentiment\"\nreader = \"phrasebank\"\n\
           paths = [\"financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt\"]\n\n\
           [stages.ingest_sentiment]\nkind = \"ingest\"\ncorpora = [\"phrasebank\"]\n\n\
           [stages.evaluate]\nkind = \"evaluate\"\n\
           inputs = [\"tokenize\", \"tokenizer\", \"ingest_sentiment\", \"base\", \"financial\"]\n\
           tokens = \"tokenize\"\ntokenizer = \"tokenizer\"\nsentiment = \"ingest_sentiment\"\n\
           models = [\"base\", \"financial\"]\nmax_tokens_per_domain = 4000\n\
           max_train_examples = 200\nmax_test_examples = 100\n\n\
           [stages.evaluate.datasets.phrasebank]\nsources = [\"phrasebank\"]\n\
           labels = { negative = \"negative\", neutral = \"neutral\", positive = \"positive\" }\n\n\
           [stages.report]\nkind = \"report\"\n\
           inputs = [\"ingest\", \"split\", \"tokenize\", \"base\", \"financial\", \"evaluate\"]\n\
           evaluate = \"evaluate\"\nbaseline = \"base\"\nadapted = \"financial\"\n"
}

fn bits_per_byte(evaluate: &serde_json::Value, model: &str, domain: &str) -> f64 {
    evaluate["lm"][model][domain]["bits_per_byte"]
        .as_f64()
        .unwrap_or_else(|| panic!("no bits_per_byte for {model}/{domain} in {evaluate:#}"))
}

#[test]
fn the_report_states_gain_and_cost_with_the_manifests_numbers_and_draws_its_plots() {
    let sb = Sandbox::new(&pipeline());
    sb.dapt_expect(&["run"], 0);
    let evaluate = counts(&sb, "evaluate");
    let out = sb.path(".dapt/stages/report/out");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();

    // The first lines give the gain on financial text and the change on general text,
    // with the evaluate stage's bits per byte to four places.
    let headline: String = report.lines().take(6).collect::<Vec<_>>().join("\n");
    for (model, domain) in [
        ("base", "financial"),
        ("financial", "financial"),
        ("base", "general"),
        ("financial", "general"),
    ] {
        let value = format!("{:.4}", bits_per_byte(&evaluate, model, domain));
        assert!(
            headline.contains(&value),
            "{value} ({model}/{domain}) not in:\n{headline}"
        );
    }
    assert!(headline.contains("Financial text"), "{headline}");
    assert!(headline.contains("General text"), "{headline}");
    let fin_before = bits_per_byte(&evaluate, "base", "financial");
    let fin_after = bits_per_byte(&evaluate, "financial", "financial");
    assert!(fin_after < fin_before, "{fin_before} -> {fin_after}");

    // report.json holds the exact headline values.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let h = &summary["headline"];
    assert_eq!(h["target_bpb_baseline"].as_f64(), Some(fin_before));
    assert_eq!(h["target_bpb_adapted"].as_f64(), Some(fin_after));

    // Training tokens, the sentiment scores and the funnel come from the manifests.
    let tokens = counts(&sb, "financial")["tokens"].as_u64().unwrap();
    assert!(
        report.contains(&format!("| {tokens} |")),
        "no {tokens} in the models table"
    );
    let probe = &evaluate["sentiment"]["financial"]["phrasebank"]["probe"];
    let accuracy = format!("{:.4}", probe["accuracy"].as_f64().unwrap());
    assert!(
        report.contains(&accuracy),
        "probe accuracy {accuracy} missing"
    );
    let ingest = sb.path(".dapt/stages/ingest/manifest.json");
    let ingest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ingest).unwrap()).unwrap();
    let kept = ingest["conservation"]["kept"].as_u64().unwrap();
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("| `ingest` |") && l.contains(&format!("| {kept} |"))),
        "the funnel row of ingest with {kept} kept"
    );

    // Every plot is a PNG and is linked from the report.
    for plot in [
        "loss_curves.png",
        "bits_per_byte.png",
        "mixture.png",
        "data_funnel.png",
        "fertility.png",
    ] {
        let bytes = std::fs::read(out.join(plot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{plot} is a PNG");
        assert!(report.contains(&format!("({plot})")), "{plot} linked");
    }
}
