//! dapt-tokenize: the tokenizer and token side of domain-adaptive pre-training.
//!
//! - [`trainer`]: byte-level BPE training on a per-domain share of sampled text, saving and
//!   loading `tokenizer.json` (readable by Python's `tokenizers`).
//! - [`encode`] and [`shards`]: documents → parquet token shards (one `<|endoftext|>` after
//!   each document), and reading them back.
//! - [`stats`]: counts and fertility for the stage manifest.
//! - [`packing`], [`loader`], [`mixture`]: fixed-length training sequences, shuffled and
//!   resumable per domain, mixed across domains by weight; [`TokenBatchSource`] is what the
//!   trainer consumes.
//! - [`bench`]: throughput of the encode stage against the raw encoder.

mod atomic;
pub mod batch_source;
pub mod bench;
pub mod encode;
pub mod loader;
pub mod mixture;
pub mod packing;
mod rng;
pub mod shards;
pub mod special;
pub mod stats;
pub mod trainer;

pub use batch_source::TokenBatchSource;
pub use encode::{Document, DocumentEncoder, encode_documents};
pub use loader::{LoaderCursor, SequenceLoader};
pub use mixture::{DomainDraws, MixtureSampler};
pub use packing::{PackedTokens, ValidationSequences};
pub use shards::{TokenRow, TokenShardReader, TokenShardWriter, write_token_shard};
pub use special::{
    MASK, add_special_tokens, mask_id, mask_token, sentinel, sentinel_ids, special_token_ids,
    word_start_ids,
};
pub use stats::{Fertility, TokenCounts, TokenStats};
pub use tokenizers::Tokenizer;
pub use trainer::{
    DomainSample, END_OF_TEXT, PAD, TokenizerTrainingConfig, TrainedTokenizer, end_of_text_id,
    hf_tokenizer_config, load_tokenizer, save_tokenizer, train_tokenizer,
};
