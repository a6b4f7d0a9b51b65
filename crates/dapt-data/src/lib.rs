//! dapt-data: corpus readers, cleaning filters and document shard I/O.
//!
//! The flow this crate serves: a [`CorpusConfig`] names source files and a
//! reader; [`read_corpus`] streams every input record out as a [`Record`]
//! (a [`Document`] or a [`Rejected`] — nothing is silently dropped);
//! [`clean::Cleaner`] normalises documents and applies quality filters; the
//! [`shards`] writers persist both streams as parquet, atomically.

pub mod clean;
pub mod config;
pub mod document;
pub mod error;
pub mod input;
pub mod readers;
pub mod shards;

pub use clean::{CleanConfig, CleanStats, Cleaner};
pub use config::{CorpusConfig, Encoding, OnError, ReaderKind, SplitFrom, Unit};
pub use document::{Document, Record, Rejected};
pub use error::{DataError, FileError};
pub use readers::{ReadCtx, ReadStats, Reader, read_corpus, read_files};
pub use shards::{
    DocShardReader, DocShardWriter, RejectedShardReader, RejectedShardWriter, parquet_rows,
};
