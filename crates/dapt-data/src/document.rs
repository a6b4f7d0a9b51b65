//! The two row types every stage exchanges: kept documents and rejected records.

use serde::{Deserialize, Serialize};

/// One row of a document shard; the same schema for every corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Stable id: `corpus/relative-file/ordinal` (or `corpus/<id_field value>`).
    pub id: String,
    pub domain: String,
    /// The corpus name (the `[corpora.NAME]` key).
    pub source: String,
    /// train / validation / test where the source (or the config) defines it.
    pub split: Option<String>,
    pub text: String,
    pub title: Option<String>,
    pub date: Option<String>,
    pub label: Option<String>,
    /// JSON object with source-specific extras (topics, cik, item names, …).
    pub meta: Option<String>,
}

/// A record that did not become (or stay) a document, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: String,
    pub source: String,
    /// Machine-readable reason: `filter:mean_word_length`, `parse_error`, `invalid_utf8`, …
    pub reason: String,
    /// Human-readable detail: the offending value or message, with `file:line` where known.
    pub detail: String,
    /// The text, when there is one worth keeping for inspection.
    pub text: Option<String>,
}

/// What a reader emits for each input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Doc(Document),
    Rejected(Rejected),
}

impl Document {
    /// A document with only the mandatory fields set.
    pub fn new(id: String, domain: &str, source: &str, text: String) -> Self {
        Document {
            id,
            domain: domain.to_owned(),
            source: source.to_owned(),
            split: None,
            text,
            title: None,
            date: None,
            label: None,
            meta: None,
        }
    }

    /// Turns this document into a rejected record, keeping its text.
    pub fn reject(self, reason: impl Into<String>, detail: impl Into<String>) -> Rejected {
        Rejected {
            id: self.id,
            source: self.source,
            reason: reason.into(),
            detail: detail.into(),
            text: Some(self.text),
        }
    }
}

/// Serialises a JSON object map into the `meta` column; `None` when empty.
pub fn meta_json(meta: serde_json::Map<String, serde_json::Value>) -> Option<String> {
    (!meta.is_empty()).then(|| serde_json::Value::Object(meta).to_string())
}
