//! Real text from the data mirror, read straight from the raw files (no other dapt crate),
//! and a tokenizer trained once per test binary on a few hundred KB of it.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use dapt_tokenize::{Tokenizer, TokenizerTrainingConfig, train_tokenizer};

/// The data mirror (see `dapt_testdata::mirror`).
pub fn data_mirror() -> PathBuf {
    dapt_testdata::mirror()
}

fn read(relative: &str) -> Vec<u8> {
    let path = data_mirror().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set DAPT_DATA_MIRROR to the folder holding financial/ and general/",
            path.display()
        )
    })
}

/// `<BODY>` texts of one Reuters-21578 SGML file (Latin-1, SGML entities resolved, the
/// `&#3;` end-of-text control reference removed).
pub fn reuters_bodies(file: &str, limit: usize) -> Vec<String> {
    let text: String = read(&format!("financial/reuters21578/{file}"))
        .into_iter()
        .map(char::from)
        .collect();
    text.split("<BODY>")
        .skip(1)
        .filter_map(|rest| rest.split("</BODY>").next())
        .map(|body| {
            body.replace("&#3;", "")
                .replace("&lt;", "<")
                .replace("&amp;", "&")
        })
        .take(limit)
        .collect()
}

/// Earnings-call transcripts (UTF-8).
pub fn ectsum_transcript(name: &str) -> String {
    String::from_utf8(read(&format!("financial/ectsum/val/ects/{name}")))
        .expect("ECTSum transcripts are UTF-8")
}

/// Paragraphs of Pride and Prejudice (UTF-8, Project Gutenberg, CRLF kept as is).
pub fn gutenberg_paragraphs(limit: usize) -> Vec<String> {
    let text = String::from_utf8(read("general/gutenberg/1342-0.txt")).expect("UTF-8");
    text.split("\r\n\r\n")
        .filter(|p| p.len() > 200)
        .take(limit)
        .map(str::to_owned)
        .collect()
}

/// BBC sport articles (plain text).
pub fn bbc_sport(limit: usize) -> Vec<String> {
    (1..=limit)
        .map(|i| {
            String::from_utf8_lossy(&read(&format!("general/bbc_news/sport/{i:03}.txt")))
                .into_owned()
        })
        .collect()
}

/// Texts by domain: about 150 KB of financial and 150 KB of general text.
pub fn training_texts() -> Vec<(String, String)> {
    let financial = reuters_bodies("reut2-000.sgm", 150)
        .into_iter()
        .chain(["ABM_q1_2021.txt", "ABT_q3_2021.txt"].map(ectsum_transcript));
    let general = gutenberg_paragraphs(200).into_iter().chain(bbc_sport(40));
    financial
        .map(|t| ("financial".to_owned(), t))
        .chain(general.map(|t| ("general".to_owned(), t)))
        .collect()
}

pub fn even_shares() -> BTreeMap<String, f64> {
    BTreeMap::from([("financial".to_owned(), 0.5), ("general".to_owned(), 0.5)])
}

pub fn small_training_config() -> TokenizerTrainingConfig {
    TokenizerTrainingConfig {
        vocab_size: 2048,
        sample_bytes_budget: 300_000,
        seed: 17,
    }
}

/// A tokenizer trained once per test binary.
pub fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        train_tokenizer(
            training_texts().into_iter(),
            &even_shares(),
            &small_training_config(),
        )
        .expect("training on the mirror's text works")
        .tokenizer
    })
}
