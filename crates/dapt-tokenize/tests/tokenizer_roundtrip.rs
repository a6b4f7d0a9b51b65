mod common;

use dapt_tokenize::{END_OF_TEXT, PAD, load_tokenizer, save_tokenizer, train_tokenizer};

fn round_trip(text: &str) -> String {
    let tokenizer = common::tokenizer();
    let encoding = tokenizer.encode(text, false).unwrap();
    tokenizer.decode(encoding.get_ids(), false).unwrap()
}

#[test]
fn decode_of_encode_gives_back_real_financial_text_with_non_ascii() {
    // Held out of training: another Reuters file and transcripts with "–", "á", "ó".
    let mut texts = common::reuters_bodies("reut2-017.sgm", 30);
    texts.push(common::ectsum_transcript("EVC_q4_2020.txt"));
    texts.push(common::ectsum_transcript("AN_q1_2021.txt"));
    assert!(
        texts.iter().any(|t| t.contains("Botón")),
        "the sample must contain non-ASCII"
    );
    for text in &texts {
        assert_eq!(&round_trip(text), text);
    }
}

#[test]
fn decode_of_encode_gives_back_any_text() {
    for text in [
        "",
        " leading space, trailing space ",
        "tabs\tand\r\nCRLF\n\n  indented",
        "Ünïcödé — 株式会社 🚀📈 €1,000.50 ¥ ₹",
        "control \u{1} \u{7f} and a literal <|endoftext|> inside text",
        "   ",
    ] {
        assert_eq!(round_trip(text), text);
    }
}

#[test]
fn special_tokens_come_first_and_every_byte_is_in_the_vocabulary() {
    let tokenizer = common::tokenizer();
    assert_eq!(tokenizer.token_to_id(END_OF_TEXT), Some(0));
    assert_eq!(tokenizer.token_to_id(PAD), Some(1));
    assert_eq!(tokenizer.get_vocab_size(true), 2048);
    // A byte never seen in training still encodes to a single token.
    let encoding = tokenizer.encode("\u{1}", false).unwrap();
    assert_eq!(encoding.get_ids().len(), 1);
}

#[test]
fn training_is_deterministic_and_follows_the_shares() {
    let train = |seed| {
        let mut config = common::small_training_config();
        config.seed = seed;
        config.sample_bytes_budget = 100_000;
        train_tokenizer(
            common::training_texts().into_iter(),
            &common::even_shares(),
            &config,
        )
        .unwrap()
    };
    let first = train(5);
    let again = train(5);
    assert_eq!(
        first.tokenizer.to_string(false).unwrap(),
        again.tokenizer.to_string(false).unwrap()
    );
    assert_eq!(first.sample, again.sample);
    let other_seed = train(6);
    assert_ne!(
        first.sample, other_seed.sample,
        "another seed samples other documents"
    );

    for (domain, sample) in &first.sample {
        assert_eq!(sample.budget_bytes, 50_000, "{domain}");
        assert!(sample.bytes_sampled <= 50_000, "{domain}: {sample:?}");
        // Documents are kept whole, so the budget fills up to about one document.
        assert!(sample.bytes_sampled > 40_000, "{domain}: {sample:?}");
        assert!(
            sample.documents_sampled < sample.documents_seen,
            "{domain}: {sample:?}"
        );
    }
}

#[test]
fn saved_tokenizer_loads_back_identically_and_leaves_no_temporary_file() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("tokenizer.json");
    save_tokenizer(common::tokenizer(), &path).unwrap();
    let names: Vec<_> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tokenizer.json"]);

    let loaded = load_tokenizer(&path).unwrap();
    let text = common::ectsum_transcript("EVC_q4_2020.txt");
    assert_eq!(
        loaded.encode(text.as_str(), false).unwrap().get_ids(),
        common::tokenizer()
            .encode(text.as_str(), false)
            .unwrap()
            .get_ids()
    );
    assert!(load_tokenizer(&folder.path().join("missing.json")).is_err());
}
