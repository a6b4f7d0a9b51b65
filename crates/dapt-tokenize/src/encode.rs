//! Documents → token rows, in parallel, and the tokenize stage's shard writing.

use std::path::Path;

use anyhow::{Result, anyhow};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::shards::{TokenRow, TokenShardWriter};
use crate::stats::TokenStats;
use crate::trainer::end_of_text_id;

/// A document to encode (the fields of a dapt document shard this stage needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub domain: String,
    pub split: String,
    pub text: String,
}

/// Documents are encoded in chunks of about this many text bytes: big enough to keep every
/// core busy, small enough to bound memory.
const CHUNK_BYTES: usize = 8 << 20;

/// Encodes documents into [`TokenRow`]s: the text's tokens, then `<|endoftext|>`.
///
/// Document text is data, never markup: a literal `<|endoftext|>` inside a text is encoded as
/// ordinary characters, so it cannot forge a document boundary. (Python's `tokenizers`
/// matches it as the special token unless `tokenizer.encode_special_tokens = True`.)
///
/// Build one encoder per stage run and reuse it: it owns a copy of the tokenizer, whose BPE
/// word cache warms up as it goes (a copy starts with an empty cache).
pub struct DocumentEncoder {
    tokenizer: Tokenizer,
    end_of_text: u32,
}

impl DocumentEncoder {
    pub fn new(tokenizer: &Tokenizer) -> Result<Self> {
        let end_of_text = end_of_text_id(tokenizer)?;
        let mut tokenizer = tokenizer.clone();
        tokenizer.set_encode_special_tokens(true);
        Ok(Self {
            tokenizer,
            end_of_text,
        })
    }

    /// Encodes on rayon's pool (one task per document, like `Tokenizer::encode_batch`);
    /// rows keep input order.
    pub fn encode(&self, documents: Vec<Document>) -> Result<Vec<TokenRow>> {
        documents
            .into_par_iter()
            .map(|document| self.encode_one(document))
            .collect()
    }

    fn encode_one(&self, document: Document) -> Result<TokenRow> {
        let encoding = self
            .tokenizer
            .encode_fast(document.text.as_str(), false)
            .map_err(|e| anyhow!("cannot encode document {}: {e}", document.id))?;
        let mut tokens = Vec::with_capacity(encoding.len() + 1);
        tokens.extend_from_slice(encoding.get_ids());
        tokens.push(self.end_of_text);
        Ok(TokenRow {
            n_bytes: document.text.len() as u64,
            n_words: document.text.split_whitespace().count() as u64,
            tokens,
            id: document.id,
            domain: document.domain,
            split: document.split,
        })
    }

    /// The tokenize stage's work for one shard: encodes `documents` chunk by chunk and writes
    /// them to a token shard at `path` (atomically). Returns the shard's counts.
    ///
    /// A writer thread turns chunk `n` into parquet while chunk `n + 1` is being encoded, so
    /// the shard costs little more than the encoding itself. The shard is only committed when
    /// every chunk encoded and wrote without error.
    pub fn encode_to_shard(
        &self,
        documents: impl IntoIterator<Item = Document>,
        path: &Path,
    ) -> Result<TokenStats> {
        let writer = TokenShardWriter::create(path)?;
        let (encoded, writer) = std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<TokenRow>>(1);
            let writing = scope.spawn(move || -> Result<TokenShardWriter> {
                let mut writer = writer;
                for rows in receiver {
                    writer.write_all(rows)?;
                }
                Ok(writer)
            });
            let encoded = self.encode_chunks(documents, |rows| sender.send(rows).is_ok());
            drop(sender);
            let writer = writing.join().expect("the shard writer thread panicked");
            (encoded, writer)
        });
        // A write error also ends the encoding early, so report it first.
        let writer = writer?;
        encoded?;
        writer.finish()
    }

    /// Encodes chunks of about `CHUNK_BYTES` and hands each to `deliver`, stopping early when
    /// it returns false.
    fn encode_chunks(
        &self,
        documents: impl IntoIterator<Item = Document>,
        mut deliver: impl FnMut(Vec<TokenRow>) -> bool,
    ) -> Result<()> {
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for document in documents {
            chunk_bytes += document.text.len();
            chunk.push(document);
            if chunk_bytes >= CHUNK_BYTES {
                if !deliver(self.encode(std::mem::take(&mut chunk))?) {
                    return Ok(());
                }
                chunk_bytes = 0;
            }
        }
        deliver(self.encode(chunk)?);
        Ok(())
    }
}

/// One-off convenience for [`DocumentEncoder::encode`].
pub fn encode_documents(tokenizer: &Tokenizer, documents: Vec<Document>) -> Result<Vec<TokenRow>> {
    DocumentEncoder::new(tokenizer)?.encode(documents)
}
