mod common;

use dapt_tokenize::{
    Document, DocumentEncoder, TokenShardReader, TokenShardWriter, TokenStats, encode_documents,
    end_of_text_id, write_token_shard,
};

fn documents() -> Vec<Document> {
    let financial = common::reuters_bodies("reut2-001.sgm", 60)
        .into_iter()
        .chain([common::ectsum_transcript("EVC_q4_2020.txt")]);
    let general = common::bbc_sport(30);
    let document = |domain: &str, split: &str, ordinal: usize, text: String| Document {
        id: format!("{domain}/{ordinal}"),
        domain: domain.into(),
        split: split.into(),
        text,
    };
    financial
        .enumerate()
        .map(|(i, t)| document("financial", if i % 5 == 0 { "val" } else { "train" }, i, t))
        .chain(
            general
                .into_iter()
                .enumerate()
                .map(|(i, t)| document("general", "train", i, t)),
        )
        .collect()
}

#[test]
fn rows_end_with_one_separator_and_count_bytes_and_words() {
    let tokenizer = common::tokenizer();
    let end_of_text = end_of_text_id(tokenizer).unwrap();
    let documents = documents();
    let rows = encode_documents(tokenizer, documents.clone()).unwrap();
    assert_eq!(rows.len(), documents.len());
    for (row, document) in rows.iter().zip(&documents) {
        assert_eq!(row.id, document.id);
        assert_eq!(row.tokens.last(), Some(&end_of_text));
        let text_tokens = &row.tokens[..row.tokens.len() - 1];
        assert!(!text_tokens.contains(&end_of_text));
        assert_eq!(tokenizer.decode(text_tokens, false).unwrap(), document.text);
        assert_eq!(row.n_bytes, document.text.len() as u64);
        assert_eq!(row.n_words, document.text.split_whitespace().count() as u64);
    }
}

#[test]
fn token_counts_add_up_across_shards_and_stats() {
    let tokenizer = common::tokenizer();
    let folder = tempfile::tempdir().unwrap();
    let documents = documents();
    let expected_tokens: u64 = encode_documents(tokenizer, documents.clone())
        .unwrap()
        .iter()
        .map(|r| r.tokens.len() as u64)
        .sum();

    // Three shards of uneven size, written by the stage's path.
    let shards: Vec<_> = (0..3)
        .map(|i| folder.path().join(format!("tokens-{i}.parquet")))
        .collect();
    let encoder = DocumentEncoder::new(tokenizer).unwrap();
    let mut merged = TokenStats::default();
    let mut remaining = documents.clone().into_iter();
    for (shard, size) in shards.iter().zip([10, 50, usize::MAX]) {
        let stats = encoder
            .encode_to_shard(remaining.by_ref().take(size), shard)
            .unwrap();
        merged.merge(&stats);
    }

    let read_back = TokenStats::from_shards(&shards).unwrap();
    assert_eq!(read_back, merged);
    let total = merged.total();
    assert_eq!(total.documents, documents.len() as u64);
    assert_eq!(total.tokens, expected_tokens);
    assert_eq!(
        total.bytes,
        documents.iter().map(|d| d.text.len() as u64).sum::<u64>()
    );
    let financial_val = merged.counts("financial", "val");
    assert_eq!(financial_val.documents, 13);
    assert_eq!(
        merged.domain_total("financial").tokens + merged.domain_total("general").tokens,
        total.tokens
    );

    // Fertility counts the texts' tokens, separators excluded.
    let fertility = merged.fertility();
    for (domain, f) in &fertility {
        let counts = merged.domain_total(domain);
        let text_tokens = (counts.tokens - counts.documents) as f64;
        assert_eq!(f.tokens_per_word, text_tokens / counts.words as f64);
        assert_eq!(f.bytes_per_token, counts.bytes as f64 / text_tokens);
        assert!((1.0..3.0).contains(&f.tokens_per_word), "{domain}: {f:?}");
        assert!((2.0..6.0).contains(&f.bytes_per_token), "{domain}: {f:?}");
    }
    let manifest = merged.to_manifest_json();
    assert_eq!(manifest["total"]["tokens"], expected_tokens);
    assert_eq!(
        manifest["by_domain_split"]["financial"]["val"]["documents"],
        13
    );
}

#[test]
fn rows_read_back_exactly_as_written() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("tokens.parquet");
    // More rows than one record batch, to cross batch boundaries while reading.
    let rows = encode_documents(common::tokenizer(), documents()).unwrap();
    let many: Vec<_> = rows.iter().cycle().take(2500).cloned().collect();
    write_token_shard(&path, many.clone()).unwrap();
    let read: Vec<_> = TokenShardReader::open(&path)
        .unwrap()
        .collect::<anyhow::Result<_>>()
        .unwrap();
    assert_eq!(read, many);
}

#[test]
fn an_unfinished_shard_leaves_nothing_behind() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("nested/tokens.parquet");
    let mut writer = TokenShardWriter::create(&path).unwrap();
    writer
        .write_all(encode_documents(common::tokenizer(), documents()).unwrap())
        .unwrap();
    assert!(!path.exists(), "nothing at the final path before finish");
    drop(writer);
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        0
    );
}
