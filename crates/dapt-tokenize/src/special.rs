//! The special tokens the pre-training objectives need, in a tokenizer dapt trained or one
//! it imported: the mask token of masked LM (`<mask>`, RoBERTa's and dapt's; `[MASK]`,
//! BERT's), T5's sentinels `<extra_id_i>`, and which tokens begin a word (whole-word
//! masking): byte-level BPE marks a word's first token with a leading space (`Ġ`),
//! SentencePiece with `▁`, WordPiece marks the others with `##`.

use anyhow::Result;
use tokenizers::{AddedToken, Tokenizer};

/// The mask token dapt adds (RoBERTa's spelling).
pub const MASK: &str = "<mask>";

/// Mask tokens recognised, in order: dapt's and RoBERTa's, then BERT's.
const MASK_TOKENS: [&str; 2] = [MASK, "[MASK]"];

/// T5's `i`-th sentinel, `<extra_id_i>`, which stands for the `i`-th dropped span.
pub fn sentinel(i: usize) -> String {
    format!("<extra_id_{i}>")
}

/// The sentinel ids the tokenizer has, `<extra_id_0>` onwards while they last.
pub fn sentinel_ids(tokenizer: &Tokenizer) -> Vec<u32> {
    (0..)
        .map_while(|i| tokenizer.token_to_id(&sentinel(i)))
        .collect()
}

/// The tokenizer's mask token, if it has one.
pub fn mask_token(tokenizer: &Tokenizer) -> Option<&'static str> {
    MASK_TOKENS
        .into_iter()
        .find(|t| tokenizer.token_to_id(t).is_some())
}

/// The id of the tokenizer's mask token, if it has one.
pub fn mask_id(tokenizer: &Tokenizer) -> Option<u32> {
    mask_token(tokenizer).and_then(|t| tokenizer.token_to_id(t))
}

/// Appends the special tokens `tokens` (those not already in the vocabulary) after the
/// existing ids, so the ids the tokenizer already gives do not change; returns how many
/// it added.
pub fn add_special_tokens(tokenizer: &mut Tokenizer, tokens: &[String]) -> Result<usize> {
    let new: Vec<AddedToken> = tokens
        .iter()
        .filter(|t| tokenizer.token_to_id(t).is_none())
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    let added = new.len();
    tokenizer
        .add_special_tokens(new)
        .map_err(|e| anyhow::anyhow!("adding special tokens {tokens:?}: {e}"))?;
    Ok(added)
}

/// The ids of every special token, sorted.
pub fn special_token_ids(tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, token)| token.special)
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids
}

/// The sorted ids of the tokens that begin a word: WordPiece's tokens without `##` when
/// the vocabulary has `##` pieces, else the tokens with a leading space (`Ġ` in byte-level
/// BPE, `▁` in SentencePiece). Empty when the vocabulary marks no word boundary.
pub fn word_start_ids(tokenizer: &Tokenizer) -> Vec<u32> {
    let vocab = tokenizer.get_vocab(true);
    let wordpiece = vocab.keys().any(|t| t.starts_with("##"));
    let mut ids: Vec<u32> = vocab
        .into_iter()
        .filter(|(token, _)| {
            if wordpiece {
                !token.starts_with("##")
            } else {
                token.starts_with(['\u{0120}', '\u{2581}'])
            }
        })
        .map(|(_, id)| id)
        .collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_spellings_are_recognised() {
        // A WordPiece tokenizer as BERT's tokenizer.json holds it.
        let json = r###"{"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
            "post_processor": null, "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[PAD]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": {"[PAD]": 0, "[MASK]": 1, "fin": 2, "##ance": 3, "rates": 4}}}"###;
        let mut tokenizer: Tokenizer = json.parse().unwrap();
        assert_eq!(mask_token(&tokenizer), Some("[MASK]"));
        assert_eq!(mask_id(&tokenizer), Some(1));
        assert_eq!(word_start_ids(&tokenizer), vec![0, 1, 2, 4]);
        assert!(sentinel_ids(&tokenizer).is_empty());
        let added =
            add_special_tokens(&mut tokenizer, &[sentinel(0), sentinel(1), MASK.into()]).unwrap();
        assert_eq!(added, 3);
        assert_eq!(sentinel_ids(&tokenizer), vec![5, 6]);
        // dapt's own spelling is preferred when both are present.
        assert_eq!(mask_id(&tokenizer), Some(7));
        assert_eq!(special_token_ids(&tokenizer), vec![5, 6, 7]);
    }
}
