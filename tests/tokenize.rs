//! The tokenizer and tokenize stages on real text through the `dapt` binary.

mod support;

use std::path::{Path, PathBuf};

use dapt_data::DocShardReader;
use dapt_tokenize::{TokenShardReader, load_tokenizer};
use support::*;

fn pipeline() -> String {
    format!(
        "[pipeline]\nname = \"tok\"\njobs = 2\ndata_root = \"{}\"\n\n\
         [corpora.reuters]\ndomain = \"financial\"\nreader = \"reuters-sgml\"\npaths = [\"financial/reuters21578/reut2-00[0-1].sgm\"]\n\n\
         [corpora.bbc]\ndomain = \"general\"\nreader = \"folder-labels\"\npaths = [\"general/bbc_news/tech/*.txt\"]\nsplit = \"train\"\n\n\
         [stages.ingest]\nkind = \"ingest\"\ncorpora = [\"reuters\", \"bbc\"]\nshard_mb = 1\n\n\
         [stages.tokenizer]\nkind = \"tokenizer\"\ninputs = [\"ingest\"]\nvocab_size = 1000\nsample_mb = 2\n\n\
         [stages.tokenize]\nkind = \"tokenize\"\ninputs = [\"ingest\", \"tokenizer\"]\ntokenizer = \"tokenizer\"\n",
        dapt_testdata::mirror().display()
    )
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn decoding_a_documents_tokens_gives_back_its_text_and_counts_add_up() {
    let sb = Sandbox::new(&pipeline());
    sb.dapt_expect(&["run"], 0);
    let tokenizer = load_tokenizer(&sb.path(".dapt/stages/tokenizer/out/tokenizer.json")).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 1000);
    let eot = tokenizer.token_to_id("<|endoftext|>").unwrap();

    let docs: Vec<_> = sorted_files(&sb.path(".dapt/stages/ingest/out/docs"))
        .iter()
        .flat_map(|p| {
            DocShardReader::open(p)
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect();
    let rows: Vec<_> = sorted_files(&sb.path(".dapt/stages/tokenize/out/tokens"))
        .iter()
        .flat_map(|p| {
            TokenShardReader::open(p)
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(rows.len(), docs.len(), "one token row per document");
    let mut tokens = 0u64;
    for (doc, row) in docs.iter().zip(&rows) {
        assert_eq!(doc.id, row.id);
        assert_eq!(
            row.tokens.last(),
            Some(&eot),
            "{} ends with <|endoftext|>",
            row.id
        );
        let text = tokenizer
            .decode(&row.tokens[..row.tokens.len() - 1], false)
            .unwrap();
        assert_eq!(text, doc.text, "{} decodes to its text", doc.id);
        assert_eq!(row.n_bytes, doc.text.len() as u64);
        tokens += row.tokens.len() as u64;
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.path(".dapt/stages/tokenize/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["counts"]["tokens"].as_u64(), Some(tokens));
    assert_eq!(
        manifest["counts"]["documents"].as_u64(),
        Some(docs.len() as u64)
    );
    let fertility = &manifest["counts"]["fertility"];
    for domain in ["financial", "general"] {
        let bytes_per_token = fertility[domain]["bytes_per_token"].as_f64().unwrap();
        assert!(
            (2.0..8.0).contains(&bytes_per_token),
            "{domain}: {bytes_per_token}"
        );
    }
}
