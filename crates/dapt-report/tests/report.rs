//! The report from a complete input, with a font when the machine has one.

mod common;

use dapt_report::{REPORT_FILE, default_fonts, write_report};

fn is_png(path: &std::path::Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[test]
fn report_states_gain_and_cost_with_manifest_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::input();
    let timing = dir.path().join("timing");
    std::fs::create_dir_all(&timing).unwrap();
    let summary = write_report(&input, dir.path(), Some(&timing), &default_fonts()).unwrap();
    let text = std::fs::read_to_string(dir.path().join(REPORT_FILE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // Headline first: financial gain, general cost, numbers as in the evaluation counts.
    let h = &summary.headline;
    assert!((h.target_bpb_baseline - 1.2345678).abs() < 1e-12);
    assert!((h.target_change_pct - 100.0 * (1.1 - 1.2345678) / 1.2345678).abs() < 1e-9);
    assert!(lines[2].contains("Financial text"), "{}", lines[2]);
    assert!(lines[2].contains("gained 10.90%"), "{}", lines[2]);
    assert!(lines[2].contains("1.2346") && lines[2].contains("1.1000"));
    assert!(
        lines[3].contains("General text") && lines[3].contains("cost 4.55%"),
        "{}",
        lines[3]
    );
    assert!(lines[3].contains("1.1000") && lines[3].contains("1.1500"));
    // Chinchilla budget: tokens / optimal, and tokens including the init's.
    assert!(text.contains(
        "250000 training tokens in this stage, 1250000 in total with its initialisation's"
    ));
    assert!(text.contains(&format!(
        "{:.2}% of the Chinchilla compute-optimal 24691340 tokens",
        100.0 * 1_250_000.0 / 24_691_340.0
    )));

    // Sections and their numbers.
    for section in [
        "## Models",
        "## Bits per byte per domain (test split)",
        "## Sentiment",
        "## Training mixture",
        "## Data funnel",
        "## Tokenizer fertility",
        "## Training",
    ] {
        assert!(text.contains(section), "missing {section}");
    }
    assert!(
        text.contains(
            "| `clean` | clean | 98 | 88 | 10 | filter:word_count 7, filter:language 3 |"
        )
    );
    assert!(text.contains("| `ingest` | ingest | 100 | 98 | 2 | parse_error 2 |"));
    assert!(text.contains("| financial | 4.0428 | 1.5513 |"));
    assert!(text.contains("| `continue_mix` | phrasebank | 500 | 100 | 0.7500 | 0.3750 | 0.4000 | 0.2000 | 0.6000 | 0.3000 |"));
    assert!(text.contains("| `continue_mix` | financial | 0.7000 | 0.7000 | 70 | 8960 | 0.0100 |"));
    assert!(text.contains("| `base` | 4.0000 | 4.1000 | 4.2000 |\n"));
    // Wall times and throughput go beside the report, not in it.
    assert!(
        !text.contains("1000.00"),
        "throughput leaked into report.md"
    );
    let timing = std::fs::read_to_string(timing.join(dapt_report::TIMING_FILE)).unwrap();
    let base = timing
        .lines()
        .find(|l| l.starts_with("| `base` |"))
        .unwrap_or_else(|| panic!("no row for base in\n{timing}"));
    assert!(base.ends_with("| 1000.00 |"), "{base}");

    // Every plot written, a real PNG, and linked from the markdown.
    assert_eq!(summary.plots.len(), 5, "{:?}", summary.plots);
    for plot in &summary.plots {
        assert!(is_png(&dir.path().join(plot)), "{plot}");
        assert!(text.contains(&format!("]({plot})")), "{plot} not linked");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["headline"]["target_bpb_adapted"], 1.1);
    if summary.font.is_some() {
        assert!(!text.contains("Plots have no text"));
    }
}

#[test]
fn headline_needs_both_models_on_both_domains() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = common::input();
    input.adapted = "continue_financial".into();
    let err = write_report(&input, dir.path(), None, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("continue_financial"), "{err}");
}
