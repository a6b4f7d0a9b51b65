//! Cleaning on real corpora and on crafted texts: what each filter rejects,
//! with which reason, and that every input is either kept or rejected.

mod common;

use common::{corpora, data_root, read_all};
use dapt_data::{CleanConfig, Cleaner, Document};

fn doc(text: &str) -> Document {
    Document::new("t/f/0".into(), "d", "t", text.into())
}

const PROSE: &str = "The company said that its quarterly profit rose to the highest level in a decade, \
    helped by strong demand for its products and lower costs of raw materials in the period.";

fn reason(cleaner: &mut Cleaner, text: &str) -> String {
    match cleaner.apply(doc(text)) {
        Ok(_) => "kept".into(),
        Err(rejected) => rejected.reason,
    }
}

#[test]
fn each_filter_rejects_its_pattern() {
    let mut cleaner = Cleaner::new(CleanConfig::default());
    assert_eq!(reason(&mut cleaner, PROSE), "kept");
    assert_eq!(
        reason(&mut cleaner, "Too short to keep."),
        "filter:word_count"
    );
    assert_eq!(reason(&mut cleaner, " \n\t "), "filter:empty");
    let numbers = "Shr 34 cts vs 1.19 dlrs Net 3,300,000 vs 9,600,000 Revs 12.6 mln vs 15.2 mln 1986 1985 of the";
    assert_eq!(
        reason(&mut cleaner, numbers),
        "filter:alphabetic_word_fraction"
    );
    let no_stop_words =
        "Apples oranges bananas grapes melons cherries plums peaches pears lemons limes";
    assert_eq!(reason(&mut cleaner, no_stop_words), "filter:stop_words");
    let hashtags = format!("{PROSE} #a #b #c #d #e #f #g #h #i #j");
    assert_eq!(
        reason(&mut cleaner, &hashtags),
        "filter:symbol_to_word_ratio"
    );
    let repeated = format!("{PROSE}\n{PROSE}\n{PROSE}");
    assert_eq!(
        reason(&mut cleaner, &repeated),
        "filter:duplicate_line_fraction"
    );
    let german = "Die Gesellschaft teilte mit, dass der Gewinn im vierten Quartal deutlich gestiegen ist, \
        weil die Nachfrage nach ihren Produkten stark war und die Kosten für Rohstoffe gesunken sind. \
        Der Vorstand erwartet auch für das kommende Jahr ein Wachstum und will die Dividende erhöhen.";
    let mut no_stop_words_rule = Cleaner::new(CleanConfig {
        min_stop_words: 0,
        ..CleanConfig::default()
    });
    assert_eq!(reason(&mut no_stop_words_rule, german), "filter:language");
    let stats = cleaner.stats();
    assert_eq!(stats.documents_in, stats.kept + stats.rejected);
    assert_eq!(stats.rejected_by["word_count"], 1);
}

#[test]
fn rejection_detail_names_value_and_rule() {
    let mut cleaner = Cleaner::new(CleanConfig::default());
    let rejected = cleaner.apply(doc("Too short to keep.")).unwrap_err();
    assert_eq!(rejected.detail, "word_count = 4.000, allowed 10..=500000");
    assert_eq!(rejected.text.as_deref(), Some("Too short to keep."));
}

#[test]
fn clean_config_has_defaults_and_rejects_unknown_keys() {
    let config: CleanConfig = toml::from_str("min_words = 5\nlanguage = \"eng\"").unwrap();
    assert_eq!((config.min_words, config.max_mean_word_length), (5, 10.0));
    let typo = toml::from_str::<CleanConfig>("min_word = 5")
        .unwrap_err()
        .to_string();
    assert!(typo.contains("min_word"), "{typo}");
}

#[test]
fn reuters_file_is_cleaned_of_signoff_and_keeps_real_stories() {
    let root = data_root();
    let mut config = corpora().remove("reuters").unwrap();
    config.paths = vec!["financial/reuters21578/reut2-000.sgm".into()];
    let (docs, _) = read_all("reuters", &config, &root);
    let mut cleaner = Cleaner::new(CleanConfig::default());
    let kept: Vec<Document> = docs
        .into_iter()
        .filter_map(|d| cleaner.apply(d).ok())
        .collect();
    let stats = cleaner.stats();
    assert_eq!(stats.documents_in, 1000);
    assert_eq!(stats.kept + stats.rejected, 1000);
    // Most stories survive; tables of figures and headline-only briefs do not.
    assert!((650..900).contains(&stats.kept), "{stats:?}");
    assert!(
        stats.rejected_by.contains_key("alphabetic_word_fraction"),
        "{stats:?}"
    );
    assert!(kept.iter().all(|d| !d.text.ends_with("Reuter")));
    assert!(stats.normalised_by["reuters_signoff"] > 900, "{stats:?}");
    assert!(
        kept[0]
            .text
            .starts_with("BAHIA COCOA REVIEW\n\nShowers continued")
    );
}

#[test]
fn newsgroup_posts_lose_headers_quotes_and_signatures() {
    let root = data_root();
    let config = corpora().remove("newsgroups").unwrap();
    let (docs, _) = read_all("newsgroups", &config, &root);
    let mut cleaner = Cleaner::new(CleanConfig::default());
    let first = cleaner.apply(docs[0].clone()).unwrap();
    assert!(docs[0].text.starts_with("From: decay@cbnewsj.cb.att.com"));
    assert!(
        first
            .text
            .starts_with("I am not familiar with, or knowledgeable abo"),
        "{}",
        &first.text[..80]
    );
    assert!(
        !first
            .text
            .lines()
            .any(|l| l.starts_with('>') || l.starts_with("Subject:"))
    );
    let sample: Vec<Document> = docs.into_iter().step_by(10).collect();
    let mut cleaner = Cleaner::new(CleanConfig::default());
    for doc in &sample {
        if let Ok(kept) = cleaner.apply(doc.clone()) {
            assert!(
                !kept.text.contains("-----BEGIN PGP SIGNATURE"),
                "{}",
                kept.id
            );
        }
    }
    assert_eq!(cleaner.stats().normalised_by["usenet"], sample.len() as u64);
}
