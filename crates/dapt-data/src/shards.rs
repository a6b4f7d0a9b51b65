//! Parquet shards of [`Document`]s and [`Rejected`] records.
//!
//! Writers buffer rows into arrow record batches, write them to `PATH.tmp`
//! and only `finish()` fsyncs and renames to `PATH`, so a killed run never
//! leaves a half-written shard under the final name. Readers stream rows
//! batch by batch. Each row type's columns are declared once, in
//! [`ShardRow::COLUMNS`]; schema, writer and reader all derive from it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::document::{Document, Rejected};
use crate::error::DataError;

/// Rows per arrow batch, and how many encoded bytes a row group may buffer
/// before it is flushed (bounds writer memory for corpora of long documents).
const BATCH_ROWS: usize = 1024;
const ROW_GROUP_BYTES: usize = 64 << 20;

/// One string column of a shard row type.
pub struct Column<R> {
    pub name: &'static str,
    pub nullable: bool,
    pub get: fn(&R) -> Option<&str>,
}

/// A row type stored in shards.
pub trait ShardRow: Sized + 'static {
    const COLUMNS: &'static [Column<Self>];
    /// Builds a row from its column values by name (`None` = null).
    fn from_columns(value: &mut dyn FnMut(&'static str) -> Option<String>) -> Self;
}

impl ShardRow for Document {
    const COLUMNS: &'static [Column<Self>] = &[
        Column {
            name: "id",
            nullable: false,
            get: |d| Some(&d.id),
        },
        Column {
            name: "domain",
            nullable: false,
            get: |d| Some(&d.domain),
        },
        Column {
            name: "source",
            nullable: false,
            get: |d| Some(&d.source),
        },
        Column {
            name: "split",
            nullable: true,
            get: |d| d.split.as_deref(),
        },
        Column {
            name: "text",
            nullable: false,
            get: |d| Some(&d.text),
        },
        Column {
            name: "title",
            nullable: true,
            get: |d| d.title.as_deref(),
        },
        Column {
            name: "date",
            nullable: true,
            get: |d| d.date.as_deref(),
        },
        Column {
            name: "label",
            nullable: true,
            get: |d| d.label.as_deref(),
        },
        Column {
            name: "meta",
            nullable: true,
            get: |d| d.meta.as_deref(),
        },
    ];

    fn from_columns(value: &mut dyn FnMut(&'static str) -> Option<String>) -> Self {
        Document {
            id: value("id").unwrap_or_default(),
            domain: value("domain").unwrap_or_default(),
            source: value("source").unwrap_or_default(),
            split: value("split"),
            text: value("text").unwrap_or_default(),
            title: value("title"),
            date: value("date"),
            label: value("label"),
            meta: value("meta"),
        }
    }
}

impl ShardRow for Rejected {
    const COLUMNS: &'static [Column<Self>] = &[
        Column {
            name: "id",
            nullable: false,
            get: |r| Some(&r.id),
        },
        Column {
            name: "source",
            nullable: false,
            get: |r| Some(&r.source),
        },
        Column {
            name: "reason",
            nullable: false,
            get: |r| Some(&r.reason),
        },
        Column {
            name: "detail",
            nullable: false,
            get: |r| Some(&r.detail),
        },
        Column {
            name: "text",
            nullable: true,
            get: |r| r.text.as_deref(),
        },
    ];

    fn from_columns(value: &mut dyn FnMut(&'static str) -> Option<String>) -> Self {
        Rejected {
            id: value("id").unwrap_or_default(),
            source: value("source").unwrap_or_default(),
            reason: value("reason").unwrap_or_default(),
            detail: value("detail").unwrap_or_default(),
            text: value("text"),
        }
    }
}

/// The arrow schema of a row type: every column UTF-8.
pub fn schema_of<R: ShardRow>() -> SchemaRef {
    let fields: Vec<Field> = R::COLUMNS
        .iter()
        .map(|c| Field::new(c.name, DataType::Utf8, c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

fn to_batch<R: ShardRow>(
    schema: &SchemaRef,
    rows: &[R],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let columns: Vec<ArrayRef> = R::COLUMNS
        .iter()
        .map(|c| Arc::new(rows.iter().map(c.get).collect::<StringArray>()) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writes rows of `R` to one parquet shard, atomically (see module docs).
pub struct ShardWriter<R: ShardRow> {
    path: PathBuf,
    tmp_path: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    file: File,
    buffer: Vec<R>,
    rows: u64,
}

pub type DocShardWriter = ShardWriter<Document>;
pub type RejectedShardWriter = ShardWriter<Rejected>;

fn shard_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Shard {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl<R: ShardRow> ShardWriter<R> {
    /// Starts `path.tmp` (creating parent folders); nothing appears at `path`
    /// before [`Self::finish`].
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, DataError> {
        let path = path.into();
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".tmp");
        let tmp_path = path.with_file_name(tmp_name);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| shard_error(parent, e))?;
        }
        let file = File::create(&tmp_path).map_err(|e| shard_error(&tmp_path, e))?;
        let sync_handle = file.try_clone().map_err(|e| shard_error(&tmp_path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let schema = schema_of::<R>();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| shard_error(&tmp_path, e))?;
        Ok(ShardWriter {
            path,
            tmp_path,
            schema,
            writer: Some(writer),
            file: sync_handle,
            buffer: Vec::with_capacity(BATCH_ROWS),
            rows: 0,
        })
    }

    pub fn write(&mut self, row: R) -> Result<(), DataError> {
        self.buffer.push(row);
        if self.buffer.len() >= BATCH_ROWS {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Rows written so far (buffered included).
    pub fn rows(&self) -> u64 {
        self.rows + self.buffer.len() as u64
    }

    fn flush_buffer(&mut self) -> Result<(), DataError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch =
            to_batch(&self.schema, &self.buffer).map_err(|e| shard_error(&self.tmp_path, e))?;
        let writer = self
            .writer
            .as_mut()
            .expect("writer is present until finish");
        writer
            .write(&batch)
            .map_err(|e| shard_error(&self.tmp_path, e))?;
        if writer.in_progress_size() > ROW_GROUP_BYTES {
            writer.flush().map_err(|e| shard_error(&self.tmp_path, e))?;
        }
        self.rows += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the footer, fsyncs, renames `path.tmp` to `path` and fsyncs the
    /// folder. Returns the number of rows.
    pub fn finish(mut self) -> Result<u64, DataError> {
        self.flush_buffer()?;
        let writer = self.writer.take().expect("writer is present until finish");
        writer.close().map_err(|e| shard_error(&self.tmp_path, e))?;
        self.file
            .sync_all()
            .map_err(|e| shard_error(&self.tmp_path, e))?;
        std::fs::rename(&self.tmp_path, &self.path).map_err(|e| shard_error(&self.path, e))?;
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Makes the rename itself durable; not every platform can open a folder.
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(self.rows)
    }
}

impl<R: ShardRow> Drop for ShardWriter<R> {
    /// An unfinished shard (error or early return) leaves no `.tmp` behind.
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// A string-like arrow column, whatever its physical type (`Utf8`,
/// `LargeUtf8`, `Utf8View` as polars writes, or integers for labels).
pub enum TextColumn<'a> {
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    Utf8View(&'a arrow_array::StringViewArray),
    Int64(&'a arrow_array::Int64Array),
    Int32(&'a arrow_array::Int32Array),
}

impl<'a> TextColumn<'a> {
    pub fn from_batch(batch: &'a RecordBatch, name: &str) -> Result<Self, String> {
        let array = batch
            .column_by_name(name)
            .ok_or_else(|| format!("no column `{name}`"))?;
        Ok(match array.data_type() {
            DataType::Utf8 => TextColumn::Utf8(array.as_string()),
            DataType::LargeUtf8 => TextColumn::LargeUtf8(array.as_string()),
            DataType::Utf8View => TextColumn::Utf8View(array.as_string_view()),
            DataType::Int64 => TextColumn::Int64(array.as_primitive::<Int64Type>()),
            DataType::Int32 => TextColumn::Int32(array.as_primitive::<Int32Type>()),
            other => {
                return Err(format!(
                    "column `{name}` has type {other}; expected a string or integer column"
                ));
            }
        })
    }

    /// The value at `row`, `None` when null.
    pub fn get(&self, row: usize) -> Option<Cow<'a, str>> {
        let array: &dyn Array = match self {
            TextColumn::Utf8(a) => *a,
            TextColumn::LargeUtf8(a) => *a,
            TextColumn::Utf8View(a) => *a,
            TextColumn::Int64(a) => *a,
            TextColumn::Int32(a) => *a,
        };
        if array.is_null(row) {
            return None;
        }
        Some(match self {
            TextColumn::Utf8(a) => Cow::Borrowed(a.value(row)),
            TextColumn::LargeUtf8(a) => Cow::Borrowed(a.value(row)),
            TextColumn::Utf8View(a) => Cow::Borrowed(a.value(row)),
            TextColumn::Int64(a) => Cow::Owned(a.value(row).to_string()),
            TextColumn::Int32(a) => Cow::Owned(a.value(row).to_string()),
        })
    }
}

/// Rows in the parquet file at `path`, from its footer: what is on disk, counted apart
/// from whatever wrote it (the stage kinds' conservation checks rely on that).
pub fn parquet_rows(path: &Path) -> Result<u64, DataError> {
    let file = File::open(path).map_err(|e| shard_error(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| shard_error(path, e))?;
    Ok(builder.metadata().file_metadata().num_rows() as u64)
}

/// Streams rows of `R` from a parquet shard, one arrow batch in memory at a time.
pub struct ShardReader<R: ShardRow> {
    path: PathBuf,
    batches: ParquetRecordBatchReader,
    pending: VecDeque<R>,
    total_rows: u64,
    _row: PhantomData<R>,
}

pub type DocShardReader = ShardReader<Document>;
pub type RejectedShardReader = ShardReader<Rejected>;

impl<R: ShardRow> ShardReader<R> {
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, DataError> {
        let path = path.into();
        let file = File::open(&path).map_err(|e| shard_error(&path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| shard_error(&path, e))?;
        let total_rows = builder.metadata().file_metadata().num_rows() as u64;
        let fields = builder.schema().fields();
        for column in R::COLUMNS.iter().filter(|c| !c.nullable) {
            if !fields.iter().any(|f| f.name() == column.name) {
                return Err(shard_error(
                    &path,
                    format!("required column `{}` is missing", column.name),
                ));
            }
        }
        let batches = builder
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| shard_error(&path, e))?;
        Ok(ShardReader {
            path,
            batches,
            pending: VecDeque::new(),
            total_rows,
            _row: PhantomData,
        })
    }

    /// Rows in the shard, from its footer.
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    fn decode_batch(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let columns: Vec<(&'static str, Option<TextColumn>)> = R::COLUMNS
            .iter()
            .map(|c| {
                let column = TextColumn::from_batch(batch, c.name);
                match column {
                    Ok(column) => Ok((c.name, Some(column))),
                    Err(_) if c.nullable && batch.column_by_name(c.name).is_none() => {
                        Ok((c.name, None))
                    }
                    Err(e) => Err(shard_error(&self.path, e)),
                }
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let mut value = |name: &'static str| {
                columns
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, c)| c.as_ref()?.get(row))
                    .map(Cow::into_owned)
            };
            self.pending.push_back(R::from_columns(&mut value));
        }
        Ok(())
    }
}

impl<R: ShardRow> Iterator for ShardReader<R> {
    type Item = Result<R, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pending.is_empty() {
            match self.batches.next()? {
                Ok(batch) => {
                    if let Err(e) = self.decode_batch(&batch) {
                        return Some(Err(e));
                    }
                }
                Err(e) => return Some(Err(shard_error(&self.path, e))),
            }
        }
        self.pending.pop_front().map(Ok)
    }
}
