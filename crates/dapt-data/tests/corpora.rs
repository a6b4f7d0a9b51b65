//! Every reader on the real corpora, checked against the counts in SOURCES.md.

mod common;

use common::{corpora, count_by, counts, data_root, read_all};

/// Reads corpus `name` from tests/corpora.toml; asserts no rejection.
fn read_clean(name: &str) -> Vec<dapt_data::Document> {
    let root = data_root();
    let config = corpora()
        .remove(name)
        .unwrap_or_else(|| panic!("no corpus {name}"));
    let (docs, rejected) = read_all(name, &config, &root);
    assert!(
        rejected.is_empty(),
        "{name}: unexpected rejections {:?}",
        &rejected[..rejected.len().min(3)]
    );
    assert!(
        docs.iter()
            .all(|d| d.source == name && d.domain == config.domain)
    );
    docs
}

#[test]
fn every_corpus_config_is_valid() {
    for (name, config) in corpora() {
        config.validate(&name).unwrap();
    }
}

#[test]
fn reuters_has_21578_documents_in_lewis_splits() {
    let docs = read_clean("reuters");
    assert_eq!(docs.len(), 21_578);
    let splits = count_by(docs.iter().map(|d| d.split.as_deref()));
    assert_eq!(
        splits,
        counts(&[("train", 14_668), ("test", 6_188), ("validation", 722)])
    );
    let first = &docs[0];
    assert_eq!(first.id, "reuters/financial/reuters21578/reut2-000.sgm/0");
    assert_eq!(first.title.as_deref(), Some("BAHIA COCOA REVIEW"));
    assert_eq!(first.date.as_deref(), Some("26-FEB-1987 15:01:01.79"));
    assert!(
        first
            .text
            .starts_with("BAHIA COCOA REVIEW\n\nShowers continued")
    );
    assert!(
        first.text.ends_with("Reuter"),
        "sign-off is left to `clean`"
    );
    let meta: serde_json::Value = serde_json::from_str(first.meta.as_deref().unwrap()).unwrap();
    assert_eq!(meta["topics"], serde_json::json!(["cocoa"]));
    assert_eq!(
        meta["places"],
        serde_json::json!(["el-salvador", "usa", "uruguay"])
    );
    assert_eq!(meta["newid"], "1");
    // Control-character references are gone; `&lt;` became `<`.
    assert!(docs.iter().all(|d| {
        !d.text.contains("&#")
            && !d
                .text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
    }));
    assert!(
        docs.iter()
            .any(|d| d.text.contains("<IBM>") || d.text.contains("<IBM"))
    );
    // The single Latin-1 byte (0xFC in reut2-017.sgm) decodes to ü.
    assert!(
        docs.iter()
            .any(|d| d.id.contains("reut2-017") && d.text.contains('ü'))
    );
    // SOURCES.md gives TOPICS YES 12,902 / NO 6,911 / BYPASS 1,043, which sum
    // to 20,856, not 21,578; the files hold 13,476 / 7,059 / 1,043 (grep agrees).
    let has_topics = count_by(docs.iter().map(|d| {
        let meta: serde_json::Value = serde_json::from_str(d.meta.as_deref().unwrap()).unwrap();
        ["YES", "NO", "BYPASS"]
            .into_iter()
            .find(|v| meta["has_topics"] == *v)
    }));
    assert_eq!(
        has_topics,
        counts(&[("BYPASS", 1_043), ("NO", 7_059), ("YES", 13_476)])
    );
}

#[test]
fn edgar_has_62_filings_with_items_in_natural_order() {
    let docs = read_clean("edgar");
    assert_eq!(docs.len(), 62);
    let chars: usize = docs.iter().map(|d| d.text.chars().count()).sum();
    // 13,484,786 characters of item text, plus the blank lines joining sections
    // and minus the whitespace trimmed at section ends.
    assert!((13_300_000..13_600_000).contains(&chars), "{chars}");
    for doc in &docs {
        let meta: serde_json::Value = serde_json::from_str(doc.meta.as_deref().unwrap()).unwrap();
        let items: Vec<&str> = meta["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        if let (Some(a), Some(b)) = (
            items.iter().position(|i| *i == "item_1A"),
            items.iter().position(|i| *i == "item_10"),
        ) {
            assert!(a < b, "{}: {items:?}", doc.id);
        }
        assert!(meta["cik"].is_string() && doc.date.is_some() && doc.title.is_some());
        assert_eq!(meta["year"].as_str(), doc.date.as_deref().map(|d| &d[..4]));
    }
}

#[test]
fn ectsum_has_249_val_and_495_test_transcripts() {
    let val = read_clean("ectsum_val");
    let test = read_clean("ectsum_test");
    assert_eq!((val.len(), test.len()), (249, 495));
    let words = |docs: &[dapt_data::Document]| {
        docs.iter()
            .map(|d| d.text.split_whitespace().count())
            .sum::<usize>()
    };
    assert_eq!((words(&val), words(&test)), (689_564, 1_394_951));
    assert!(test.iter().all(|d| d.split.as_deref() == Some("test")));
}

#[test]
fn bbc_has_2225_articles_in_five_folders() {
    let business = read_clean("bbc_business");
    let general = read_clean("bbc_general");
    assert_eq!(business.len(), 510);
    let labels = count_by(general.iter().map(|d| d.label.as_deref()));
    assert_eq!(
        labels,
        counts(&[
            ("entertainment", 386),
            ("politics", 417),
            ("sport", 511),
            ("tech", 401)
        ])
    );
    let fallback: Vec<&str> = general
        .iter()
        .filter(|d| d.meta.as_deref().is_some_and(|m| m.contains("latin-1")))
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(fallback, ["bbc_general/general/bbc_news/sport/199.txt/0"]);
    let words: usize = business
        .iter()
        .chain(&general)
        .map(|d| d.text.split_whitespace().count())
        .sum();
    assert_eq!(words, 854_490);
    assert_eq!(
        business[0].title.as_deref(),
        Some("Ad sales boost Time Warner profit")
    );
}

#[test]
fn tweets_csv_rows_and_labels() {
    let train = read_clean("tweets_sentiment_train");
    let valid = read_clean("tweets_sentiment_valid");
    assert_eq!(
        count_by(train.iter().map(|d| d.label.as_deref())),
        counts(&[("0", 1_442), ("1", 1_923), ("2", 6_178)])
    );
    assert_eq!(
        count_by(valid.iter().map(|d| d.label.as_deref())),
        counts(&[("0", 347), ("1", 475), ("2", 1_566)])
    );
    assert!(train.iter().all(|d| !d.text.ends_with('\r')));
    assert_eq!(
        train[2].text,
        "$CX - Cemex cut at Credit Suisse, J.P. Morgan on weak building outlook https://t.co/KN1g4AWFIb"
    );
}

#[test]
fn wikipedia_has_783_articles() {
    let docs = read_clean("wikipedia");
    assert_eq!(docs.len(), 783);
    assert_eq!(docs[0].title.as_deref(), Some("Anarchism"));
    assert!(
        docs[0]
            .text
            .starts_with("Anarchism\n\nAnarchism is a political philosophy")
    );
    assert!(
        docs[0]
            .meta
            .as_deref()
            .unwrap()
            .contains("\"wiki_id\":\"12\"")
    );
    let per_file = count_by(
        docs.iter()
            .map(|d| d.id.rsplit_once('/').map(|(file, _)| file)),
    );
    assert_eq!(
        per_file["wikipedia/general/enwiki_2015_wikiextractor/AD/wiki_96"],
        93
    );
}

#[test]
fn newsgroups_has_7532_posts_with_ids_and_groups() {
    let docs = read_clean("newsgroups");
    assert_eq!(docs.len(), 7_532);
    let groups = count_by(docs.iter().map(|d| d.label.as_deref()));
    assert_eq!(groups.len(), 20);
    assert_eq!(groups["alt.atheism"], 319);
    assert_eq!(groups["talk.religion.misc"], 251);
    assert_eq!(
        docs[0].id,
        "newsgroups/20news-bydate-test/alt.atheism/53068"
    );
    let bytes: usize = docs.iter().map(|d| d.text.chars().count()).sum();
    assert_eq!(bytes, 13_800_509, "one char per original Latin-1 byte");
}

#[test]
fn gutenberg_and_shakespeare_one_document_per_file() {
    let books = read_clean("gutenberg");
    assert_eq!(books.len(), 5);
    let moby = books.iter().find(|d| d.id.contains("2701-0.txt")).unwrap();
    assert!(!moby.text.contains("*** START OF") && !moby.text.contains("*** END OF"));
    assert!(moby.text.contains("Call me Ishmael."));
    let shakespeare = read_clean("shakespeare");
    assert_eq!(shakespeare.len(), 1);
    assert_eq!(shakespeare[0].text.lines().count(), 40_000);
}

#[test]
fn wikitext_articles_split_at_top_level_headings() {
    let valid = read_clean("wikitext_valid");
    let test = read_clean("wikitext_test");
    assert_eq!((valid.len(), test.len()), (60, 62));
    assert_eq!(valid[0].title.as_deref(), Some("Homarus gammarus"));
    assert!(valid[0].text.contains(" = = Description = = "));
    let tokens: usize = valid
        .iter()
        .map(|d| d.text.split_whitespace().count())
        .sum();
    assert_eq!(tokens, 213_886);
}

#[test]
fn phrasebank_all_agree_labels_and_stable_split() {
    let docs = read_clean("phrasebank");
    assert_eq!(docs.len(), 2_264);
    let labels = count_by(docs.iter().map(|d| d.label.as_deref()));
    assert_eq!(
        labels,
        counts(&[("negative", 303), ("neutral", 1_391), ("positive", 570)])
    );
    let splits = count_by(docs.iter().map(|d| d.split.as_deref()));
    let train = splits["train"] as f64 / docs.len() as f64;
    assert!((0.75..0.85).contains(&train), "{splits:?}");
    assert_eq!(splits.values().sum::<usize>(), 2_264);
    // Mojibake is kept as decoded from Latin-1, not repaired.
    assert!(docs.iter().any(|d| d.text.contains("+ñ")));
    // The split depends only on the text: re-reading gives the same one.
    let again = read_clean("phrasebank");
    assert!(docs.iter().zip(&again).all(|(a, b)| a.split == b.split));
}
