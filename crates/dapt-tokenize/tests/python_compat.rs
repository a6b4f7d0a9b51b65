//! The saved tokenizer.json must work unchanged in Python's `tokenizers`. Skips (loudly)
//! where that package is not installed; CI installs it.

mod common;

use std::process::Command;

use dapt_tokenize::save_tokenizer;

const PYTHON_ENCODE: &str = r#"
import json, sys
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
print(json.dumps([tokenizer.encode(t, add_special_tokens=False).ids for t in texts]))
"#;

fn python_has_tokenizers() -> bool {
    Command::new("python3")
        .args(["-c", "import tokenizers"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn saved_tokenizer_encodes_identically_in_python() {
    if !python_has_tokenizers() {
        eprintln!(
            "\n!!! SKIPPED saved_tokenizer_encodes_identically_in_python: `python3 -c 'import \
             tokenizers'` failed; `pip install tokenizers` to run this check !!!\n"
        );
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let tokenizer_path = folder.path().join("tokenizer.json");
    save_tokenizer(common::tokenizer(), &tokenizer_path).unwrap();

    let mut texts = common::reuters_bodies("reut2-017.sgm", 20);
    texts.push(common::ectsum_transcript("EVC_q4_2020.txt"));
    texts.push("Ünïcödé — 株式会社 🚀 €1,000.50\r\n\ttabs  and   spaces ".to_owned());
    let texts_path = folder.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_string(&texts).unwrap()).unwrap();

    let output = Command::new("python3")
        .args(["-c", PYTHON_ENCODE])
        .arg(&tokenizer_path)
        .arg(&texts_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python_ids: Vec<Vec<u32>> = serde_json::from_slice(&output.stdout).unwrap();
    let rust_ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            common::tokenizer()
                .encode(t.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec()
        })
        .collect();
    assert_eq!(python_ids.len(), texts.len());
    for ((python, rust), text) in python_ids.iter().zip(&rust_ids).zip(&texts) {
        assert_eq!(
            python,
            rust,
            "encodings differ on {:?}",
            &text[..text.len().min(80)]
        );
    }
}
