//! Token shards: parquet files with one row per document —
//! `id`, `domain`, `split` (utf8), `tokens` (list<u32>, the document's tokens followed by one
//! `<|endoftext|>`), `n_bytes` (UTF-8 bytes of the source text), `n_words` (whitespace-separated
//! words, for fertility).
//!
//! [`TokenShardWriter`] writes `PATH.tmp` and only `finish()` fsyncs and renames it to `PATH`,
//! so a killed run never leaves a shard that looks complete.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow_array::builder::{ListBuilder, StringBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::stats::TokenStats;

/// One document's tokens, as stored in a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    pub domain: String,
    pub split: String,
    /// The document's tokens, then one `<|endoftext|>`.
    pub tokens: Vec<u32>,
    pub n_bytes: u64,
    pub n_words: u64,
}

/// Rows buffered before they become one arrow batch.
const BATCH_ROWS: usize = 1024;
/// Row groups are cut at about this many bytes of encoded data.
const ROW_GROUP_BYTES: usize = 64 << 20;

pub fn token_shard_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
        Field::new(
            "tokens",
            DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))),
            false,
        ),
        Field::new("n_bytes", DataType::UInt64, false),
        Field::new("n_words", DataType::UInt64, false),
    ]))
}

fn to_record_batch(schema: &SchemaRef, rows: &[TokenRow]) -> Result<RecordBatch> {
    let total_tokens = rows.iter().map(|r| r.tokens.len()).sum();
    let strings = |get: fn(&TokenRow) -> &str| {
        let mut builder = StringBuilder::new();
        rows.iter().for_each(|r| builder.append_value(get(r)));
        Arc::new(builder.finish()) as ArrayRef
    };
    let numbers = |get: fn(&TokenRow) -> u64| {
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(get))) as ArrayRef
    };
    let item = Arc::new(Field::new_list_field(DataType::UInt32, false));
    let mut tokens =
        ListBuilder::with_capacity(UInt32Builder::with_capacity(total_tokens), rows.len())
            .with_field(item);
    for row in rows {
        tokens.values().append_slice(&row.tokens);
        tokens.append(true);
    }
    let columns = vec![
        strings(|r| &r.id),
        strings(|r| &r.domain),
        strings(|r| &r.split),
        Arc::new(tokens.finish()) as ArrayRef,
        numbers(|r| r.n_bytes),
        numbers(|r| r.n_words),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Writes [`TokenRow`]s to one parquet shard, atomically (see module docs).
pub struct TokenShardWriter {
    path: PathBuf,
    temporary: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    file: File,
    buffer: Vec<TokenRow>,
    stats: TokenStats,
}

impl TokenShardWriter {
    /// Starts `PATH.tmp` (creating parent folders); nothing appears at `path` before
    /// [`Self::finish`].
    pub fn create(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let (file, temporary) = atomic::create_temporary(&path)?;
        let sync_handle = file
            .try_clone()
            .with_context(|| format!("cannot reopen {}", temporary.display()))?;
        // Level 1: token ids compress about as well as at higher levels and the writer must
        // not slow the encode stage down (see examples/bench_encode.rs).
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .build();
        let schema = token_shard_schema();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))
            .with_context(|| format!("cannot start parquet shard {}", temporary.display()))?;
        Ok(Self {
            path,
            temporary,
            schema,
            writer: Some(writer),
            file: sync_handle,
            buffer: Vec::with_capacity(BATCH_ROWS),
            stats: TokenStats::default(),
        })
    }

    pub fn write(&mut self, row: TokenRow) -> Result<()> {
        self.stats.add_row(&row);
        self.buffer.push(row);
        if self.buffer.len() >= BATCH_ROWS {
            self.flush_buffer()?;
        }
        Ok(())
    }

    pub fn write_all(&mut self, rows: impl IntoIterator<Item = TokenRow>) -> Result<()> {
        rows.into_iter().try_for_each(|row| self.write(row))
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = to_record_batch(&self.schema, &self.buffer)?;
        let writer = self
            .writer
            .as_mut()
            .expect("writer is present until finish");
        writer
            .write(&batch)
            .with_context(|| format!("cannot write {}", self.temporary.display()))?;
        if writer.in_progress_size() > ROW_GROUP_BYTES {
            writer.flush()?;
        }
        self.buffer.clear();
        Ok(())
    }

    /// Writes the footer, fsyncs, renames `PATH.tmp` to `PATH`. Returns the shard's counts.
    pub fn finish(mut self) -> Result<TokenStats> {
        self.flush_buffer()?;
        let writer = self.writer.take().expect("writer is present until finish");
        writer
            .close()
            .with_context(|| format!("cannot finish {}", self.temporary.display()))?;
        atomic::commit(&self.file, &self.temporary, &self.path)?;
        Ok(std::mem::take(&mut self.stats))
    }
}

impl Drop for TokenShardWriter {
    /// An unfinished shard (error or early return) leaves no `.tmp` behind.
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Writes `rows` to a new shard at `path` and returns its counts.
pub fn write_token_shard(
    path: &Path,
    rows: impl IntoIterator<Item = TokenRow>,
) -> Result<TokenStats> {
    let mut writer = TokenShardWriter::create(path)?;
    writer.write_all(rows)?;
    writer.finish()
}

/// Streams the rows of one token shard, a record batch at a time.
pub struct TokenShardReader {
    path: PathBuf,
    batches: ParquetRecordBatchReader,
    current: std::vec::IntoIter<TokenRow>,
}

impl TokenShardReader {
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = File::open(&path)
            .with_context(|| format!("cannot open token shard {}", path.display()))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{} is not a readable parquet file", path.display()))?
            .with_batch_size(BATCH_ROWS)
            .build()?;
        Ok(Self {
            path,
            batches,
            current: Vec::new().into_iter(),
        })
    }

    fn rows_of(&self, batch: &RecordBatch) -> Result<Vec<TokenRow>> {
        let column = |name: &str| {
            batch.column_by_name(name).with_context(|| {
                format!(
                    "{} has no `{name}` column; is it a dapt token shard?",
                    self.path.display()
                )
            })
        };
        let ids = strings(column("id")?)?;
        let domains = strings(column("domain")?)?;
        let splits = strings(column("split")?)?;
        let tokens = token_lists(column("tokens")?)?;
        let n_bytes = column("n_bytes")?.as_primitive_opt::<UInt64Type>();
        let n_words = column("n_words")?.as_primitive_opt::<UInt64Type>();
        let (Some(n_bytes), Some(n_words)) = (n_bytes, n_words) else {
            bail!("{}: n_bytes and n_words must be u64", self.path.display());
        };
        let rows = ids.into_iter().zip(domains).zip(splits).zip(tokens);
        Ok(rows
            .enumerate()
            .map(|(i, (((id, domain), split), tokens))| TokenRow {
                id,
                domain,
                split,
                tokens,
                n_bytes: n_bytes.value(i),
                n_words: n_words.value(i),
            })
            .collect())
    }
}

/// Text columns as written by arrow-rs (Utf8) or by polars (Utf8View / LargeUtf8).
fn strings(array: &ArrayRef) -> Result<Vec<String>> {
    let values = match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect(),
        other => bail!("expected a text column, found {other}"),
    };
    Ok(values)
}

/// Token lists as written by arrow-rs (List) or by polars (LargeList).
fn token_lists(array: &ArrayRef) -> Result<Vec<Vec<u32>>> {
    let lists: Vec<Option<ArrayRef>> = match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().iter().collect(),
        DataType::LargeList(_) => array.as_list::<i64>().iter().collect(),
        other => bail!("expected tokens as list<u32>, found {other}"),
    };
    lists
        .into_iter()
        .map(|list| {
            let Some(list) = list else {
                return Ok(Vec::new());
            };
            let ids = list
                .as_primitive_opt::<UInt32Type>()
                .with_context(|| format!("expected u32 token ids, found {}", list.data_type()))?;
            Ok(ids.values().to_vec())
        })
        .collect()
}

impl Iterator for TokenShardReader {
    type Item = Result<TokenRow>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(Ok(row));
            }
            let batch = match self.batches.next()? {
                Ok(batch) => batch,
                Err(e) => {
                    return Some(Err(anyhow::Error::new(e)
                        .context(format!("cannot read {}", self.path.display()))));
                }
            };
            match self.rows_of(&batch) {
                Ok(rows) => self.current = rows.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
