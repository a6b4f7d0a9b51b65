//! Hugging Face `tokenizer.json` / `tokenizer_config.json` from a GGUF's tokenizer metadata.
//!
//! A GGUF carries its tokenizer as metadata (llama.cpp `llama-vocab.cpp`, gguf-py `constants.py`
//! `Keys.Tokenizer`): `tokenizer.ggml.model` (the algorithm: `gpt2` is byte-level BPE, `llama` is
//! SentencePiece), `tokenizer.ggml.tokens` (the vocabulary, id = index), `tokenizer.ggml.merges`
//! (`"left right"`, best first), `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control,
//! 4 user-defined, 5 unused, 6 byte), the special ids `tokenizer.ggml.{bos,eos,unknown,padding}_token_id`,
//! `tokenizer.ggml.add_{bos,eos}_token`, and `tokenizer.ggml.pre`, the name of the pre-tokenizer
//! (the regex that splits text before BPE) that `convert_hf_to_gguf.py` recognised in the original
//! `tokenizer.json` (`get_vocab_base_pre`).
//!
//! Only byte-level BPE is rebuilt so far. The pre-tokenizer names map to the regexes of
//! `llama-vocab.cpp` (`llm_tokenizer_bpe`), expressed as `tokenizers` components:
//!
//! * `smollm`, `starcoder`, `refact`, `command-r`, `codeshell`, `exaone`, `minerva-7b`: split every
//!   number character (`\p{N}`), then GPT-2's regex -- `Digits { individual_digits: true }` and
//!   `ByteLevel { use_regex: true }`, which is also what SmolLM2's own `tokenizer.json` has.
//! * `gpt2`, `gpt-2`, `default`, `phi-2`, `mpt`, `olmo`: GPT-2's regex alone, `ByteLevel
//!   { use_regex: true }` (transformers' GGUF loader does the same for all of them; llama.cpp's
//!   `default` adds a few extra splits around punctuation and digit runs).
//! * `llama3`, `llama-v3`, `llama-bpe`, `falcon3`, `pixtral`, `dbrx`, `smaug-bpe`: Llama 3's
//!   `Split` regex then `ByteLevel { use_regex: false }`; the first five also match a word that is
//!   in the vocabulary whole (`ignore_merges`), as llama.cpp does for them.
//!
//! Any other name is an error naming it, rather than a tokenizer that splits text wrongly.

use serde_json::{Map, Value as Json, json};

use crate::error::{GgufError, Result};
use crate::reader::Gguf;

/// `tokenizer.ggml.token_type` of a control token (`<|endoftext|>`, ...).
pub const TOKEN_TYPE_CONTROL: i64 = 3;
/// `tokenizer.ggml.token_type` of a user-defined added token (`<think>`, ...).
pub const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Llama 3's pre-tokenizer split (its `tokenizer.json`, and `llama-vocab.cpp`'s LLAMA3 regex).
pub const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a byte-level BPE vocabulary splits text before merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex (`ByteLevel` with `use_regex`).
    Gpt2,
    /// Each digit alone, then GPT-2's regex.
    DigitsThenGpt2,
    /// Llama 3's regex, then byte-level without a regex.
    Llama3,
}

impl PreTokenizer {
    /// The pre-tokenizer of a `tokenizer.ggml.pre` name, and whether llama.cpp sets
    /// `ignore_merges` for it.
    pub fn from_gguf_name(name: &str) -> Option<(Self, bool)> {
        Some(match name {
            "gpt2" | "gpt-2" | "default" | "phi-2" | "mpt" | "olmo" => (Self::Gpt2, false),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => (Self::DigitsThenGpt2, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (Self::Llama3, true),
            "dbrx" | "smaug-bpe" => (Self::Llama3, false),
            _ => return None,
        })
    }

    /// The `pre_tokenizer` object of `tokenizer.json`.
    pub fn to_json(self) -> Json {
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        match self {
            Self::Gpt2 => byte_level(true),
            Self::DigitsThenGpt2 => json!({
                "type": "Sequence",
                "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)],
            }),
            Self::Llama3 => json!({
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
                    byte_level(false),
                ],
            }),
        }
    }
}

/// The special tokens a GGUF names, as strings, and whether to add BOS / EOS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<(u32, String)>,
    pub eos: Option<(u32, String)>,
    pub unk: Option<(u32, String)>,
    pub pad: Option<(u32, String)>,
    pub add_bos: bool,
    pub add_eos: bool,
}

fn malformed(gguf: &Gguf, what: impl Into<String>) -> GgufError {
    GgufError::Malformed {
        path: gguf.path().to_path_buf(),
        what: what.into(),
    }
}

fn tokens(gguf: &Gguf) -> Result<&[String]> {
    const KEY: &str = "tokenizer.ggml.tokens";
    gguf.get_str_array(KEY)?
        .ok_or_else(|| gguf.missing_key(KEY))
}

impl SpecialTokens {
    /// Read the special token ids and look up their strings.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let tokens = tokens(gguf)?;
        let lookup = |name: &str| -> Result<Option<(u32, String)>> {
            let key = format!("tokenizer.ggml.{name}");
            let Some(id) = gguf.get_u32(&key)? else {
                return Ok(None);
            };
            let token = tokens.get(id as usize).ok_or_else(|| {
                malformed(
                    gguf,
                    format!("{key} is {id}, outside the {} tokens", tokens.len()),
                )
            })?;
            Ok(Some((id, token.clone())))
        };
        Ok(SpecialTokens {
            bos: lookup("bos_token_id")?,
            eos: lookup("eos_token_id")?,
            unk: lookup("unknown_token_id")?,
            pad: lookup("padding_token_id")?,
            add_bos: gguf
                .get_bool("tokenizer.ggml.add_bos_token")?
                .unwrap_or(false),
            add_eos: gguf
                .get_bool("tokenizer.ggml.add_eos_token")?
                .unwrap_or(false),
        })
    }
}

/// The Hugging Face `tokenizer.json` of the GGUF's tokenizer (byte-level BPE only).
pub fn tokenizer_json(gguf: &Gguf) -> Result<Json> {
    const MODEL: &str = "tokenizer.ggml.model";
    let model = gguf
        .get_str(MODEL)?
        .ok_or_else(|| gguf.missing_key(MODEL))?;
    if model != "gpt2" {
        let what = match model {
            "llama" => {
                "SentencePiece tokenizers (tokenizer.ggml.model = \"llama\") are not supported yet"
                    .to_string()
            }
            other => format!(
                "tokenizer.ggml.model = \"{other}\" (only \"gpt2\", byte-level BPE, is supported)"
            ),
        };
        return Err(GgufError::Unsupported {
            path: gguf.path().to_path_buf(),
            what,
        });
    }
    const PRE: &str = "tokenizer.ggml.pre";
    // convert_hf_to_gguf.py always writes it; llama.cpp falls back to `default` without it.
    let pre_name = gguf.get_str(PRE)?.unwrap_or("default");
    let (pre_tokenizer, ignore_merges) =
        PreTokenizer::from_gguf_name(pre_name).ok_or_else(|| GgufError::Unsupported {
            path: gguf.path().to_path_buf(),
            what: format!("pre-tokenizer `{pre_name}` ({PRE})"),
        })?;

    let tokens = tokens(gguf)?;
    let token_types = gguf.get_i64_array("tokenizer.ggml.token_type")?;
    if let Some(types) = &token_types
        && types.len() != tokens.len()
    {
        return Err(malformed(
            gguf,
            format!("{} token types for {} tokens", types.len(), tokens.len()),
        ));
    }
    // A later duplicate wins, as in llama.cpp's `token_to_id` and transformers' dict.
    let vocab: Map<String, Json> = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), json!(id)))
        .collect();
    let merges = gguf
        .get_str_array("tokenizer.ggml.merges")?
        .unwrap_or_default()
        .iter()
        .map(|merge| match merge.split_once(' ') {
            Some((left, right))
                if !left.is_empty() && !right.is_empty() && !right.contains(' ') =>
            {
                Ok(json!([left, right]))
            }
            _ => Err(malformed(
                gguf,
                format!("merge {merge:?} is not two tokens"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;

    let added_tokens: Vec<Json> = token_types
        .iter()
        .flatten()
        .enumerate()
        .filter(|&(_, &t)| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
        .map(|(id, &t)| {
            json!({
                "id": id,
                "content": tokens[id],
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": t == TOKEN_TYPE_CONTROL,
            })
        })
        .collect();

    let special = SpecialTokens::from_gguf(gguf)?;
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer.to_json(),
        "post_processor": post_processor(&special),
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": ignore_merges,
            "vocab": vocab,
            "merges": merges,
        },
    }))
}

/// `TemplateProcessing` adding BOS / EOS when the GGUF asks for them, else a no-op `ByteLevel`.
fn post_processor(special: &SpecialTokens) -> Json {
    let bos = special.bos.as_ref().filter(|_| special.add_bos);
    let eos = special.eos.as_ref().filter(|_| special.add_eos);
    if bos.is_none() && eos.is_none() {
        return json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true});
    }
    let piece = |(_, token): &(u32, String), type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
    let sequence = |name: &str, type_id: u32| json!({"Sequence": {"id": name, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    single.extend(bos.map(|b| piece(b, 0)));
    single.push(sequence("A", 0));
    single.extend(eos.map(|e| piece(e, 0)));
    pair.extend(single.iter().cloned());
    pair.extend(bos.map(|b| piece(b, 1)));
    pair.push(sequence("B", 1));
    pair.extend(eos.map(|e| piece(e, 1)));
    let mut special_tokens = Map::new();
    for (id, token) in bos.into_iter().chain(eos) {
        special_tokens.insert(
            token.clone(),
            json!({"id": token, "ids": [id], "tokens": [token]}),
        );
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special_tokens})
}

/// The Hugging Face `tokenizer_config.json`: `PreTrainedTokenizerFast` with the special tokens
/// as strings, `model_max_length`, and the chat template if the GGUF has one.
pub fn tokenizer_config_json(gguf: &Gguf, model_max_length: Option<u64>) -> Result<Json> {
    let special = SpecialTokens::from_gguf(gguf)?;
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": special.add_bos,
        "add_eos_token": special.add_eos,
        "clean_up_tokenization_spaces": false,
    });
    for (name, token) in [
        ("bos_token", &special.bos),
        ("eos_token", &special.eos),
        ("unk_token", &special.unk),
        ("pad_token", &special.pad),
    ] {
        if let Some((_, token)) = token {
            config[name] = json!(token);
        }
    }
    if let Some(n) = model_max_length {
        config["model_max_length"] = json!(n);
    }
    if let Some(template) = gguf.get_str("tokenizer.chat_template")? {
        config["chat_template"] = json!(template);
    }
    Ok(config)
}
