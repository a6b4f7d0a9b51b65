//! Evaluate and report through the `dapt` binary on the tiny training pipeline plus the
//! Financial PhraseBank: the report and its plots exist, and its numbers are the manifests'.

mod support;

use support::*;

fn pipeline() -> String {
    evaluated_pipeline(&dapt_testdata::mirror())
}

fn bits_per_byte(evaluate: &serde_json::Value, model: &str, domain: &str) -> f64 {
    evaluate["lm"][model][domain]["bits_per_byte"]
        .as_f64()
        .unwrap_or_else(|| panic!("no bits_per_byte for {model}/{domain} in {evaluate:#}"))
}

#[test]
fn the_report_states_gain_and_cost_with_the_manifests_numbers_and_draws_its_plots() {
    let sb = Sandbox::new(&pipeline());
    // Without a terminal (stdout and stderr are pipes here), every running stage prints
    // a progress line each interval: count, rate and ETA once it counts something.
    let out = sb
        .command(&["run"])
        .env("DAPT_PROGRESS_INTERVAL_SECS", "0.1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let log = stdout(&out);
    let progress_lines = |stage: &str| -> Vec<&str> {
        log.lines()
            .filter(|l| l.contains(&format!("] {:7}{stage}: running ", "")))
            .collect()
    };
    let evaluate_lines = progress_lines("evaluate");
    let total_documents = evaluate_lines
        .iter()
        .find_map(|l| {
            let counted = l.split(", ").nth(1)?;
            let (done, rest) = counted.split_once('/')?;
            let total = rest.strip_suffix(" documents")?;
            Some((
                done.replace(',', "").parse::<u64>().ok()?,
                total.replace(',', "").parse::<u64>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("no evaluate line with a count in\n{log}"));
    assert!(
        total_documents.0 <= total_documents.1,
        "{total_documents:?}"
    );
    assert!(
        evaluate_lines
            .iter()
            .any(|l| l.contains(" documents/s, eta ")),
        "no rate and ETA in {evaluate_lines:#?}"
    );
    for stage in ["base", "financial"] {
        assert!(
            !progress_lines(stage).is_empty(),
            "no progress line for {stage} in\n{log}"
        );
    }
    let evaluate = counts(&sb, "evaluate");
    // The progress total is every model's documents and sentiment examples.
    let documents: u64 = ["financial", "general"]
        .iter()
        .map(|d| evaluate["selection"][d]["documents"].as_u64().unwrap())
        .sum();
    let scores = &evaluate["sentiment"]["base"]["phrasebank"];
    let examples =
        scores["train_examples"].as_u64().unwrap() + 2 * scores["test_examples"].as_u64().unwrap();
    assert_eq!(
        total_documents.1,
        2 * (documents + examples),
        "{evaluate_lines:#?}"
    );
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

    // Early cut-off through training: a forced rerun of `base` reproduces its weights
    // bit for bit (its timings live outside the digested outputs), so nothing below it
    // runs again.
    let digest = |stage: &str| {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(sb.path(&format!(".dapt/stages/{stage}/manifest.json")))
                .unwrap(),
        )
        .unwrap();
        m["output_digest"].as_str().unwrap().to_string()
    };
    let before = digest("base");
    let out = sb.dapt_expect(&["run", "--force", "base"], 0);
    let table = stdout(&out);
    assert_eq!(digest("base"), before, "base reproduced its outputs");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("base ") && l.contains("ran")),
        "{table}"
    );
    for stage in ["financial", "evaluate", "report"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("{stage} ")) && l.contains("fresh")),
            "{stage} should stay fresh:\n{table}"
        );
    }
    assert!(sb.path(".dapt/stages/base/timing/throughput.csv").is_file());

    // evaluate refuses a model read through a tokenizer it was not trained with.
    let text = pipeline()
        .replace(
            "[stages.evaluate]\n",
            "[stages.tokenizer2]\nkind = \"tokenizer\"\ninputs = [\"split\"]\nvocab_size = 600\nsample_mb = 2\n\n[stages.evaluate]\n",
        )
        .replace(
            "inputs = [\"tokenize\", \"tokenizer\", \"ingest_sentiment\"",
            "inputs = [\"tokenize\", \"tokenizer2\", \"ingest_sentiment\"",
        )
        .replace("tokenizer = \"tokenizer\"\nsentiment", "tokenizer = \"tokenizer2\"\nsentiment");
    sb.write_pipeline(&text);
    sb.dapt_expect(&["run", "evaluate"], 1);
    let (_, reason) = sb.state_of("evaluate");
    assert!(
        reason.contains("model `base` was not trained with the tokenizer of `tokenizer2`")
            && reason.contains("differ"),
        "{reason}"
    );

    // A sentiment dataset named in `datasets` without a test split is an error naming it.
    let text = pipeline().replace(
        "Sentences_AllAgree.txt\"]\n",
        "Sentences_AllAgree.txt\"]\nsplit = \"train\"\n",
    );
    sb.write_pipeline(&text);
    sb.dapt_expect(&["run", "evaluate"], 1);
    let (_, reason) = sb.state_of("evaluate");
    assert!(
        reason.contains("sentiment dataset `phrasebank`") && reason.contains("\"train\": "),
        "{reason}"
    );
}
