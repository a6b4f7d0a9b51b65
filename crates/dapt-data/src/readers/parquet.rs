//! Parquet: `text_field` (default `text`), optional `label_field` and
//! `id_field` string (or integer) columns, read in batches of 1,024 rows with
//! only those columns projected. A null text is rejected with its row number.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Map;

use super::{ReadCtx, Reader};
use crate::document::Record;
use crate::error::FileError;
use crate::shards::TextColumn;

pub struct Parquet;

const BATCH_ROWS: usize = 1024;

impl Reader for Parquet {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let config = ctx.config;
        let file = File::open(file)?;
        let builder = guarded(|| Ok(ParquetRecordBatchReaderBuilder::try_new(file)?))?;
        let wanted: Vec<&str> = [
            Some(config.text_field()),
            config.label_field.as_deref(),
            config.id_field.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let fields = builder.schema().fields();
        let mut roots = Vec::new();
        for name in &wanted {
            let Some(index) = fields.iter().position(|f| f.name() == name) else {
                let names: Vec<&String> = fields.iter().map(|f| f.name()).collect();
                return Err(FileError::Invalid(format!(
                    "column `{name}` not in the parquet schema {names:?}; set text_field/label_field/id_field"
                )));
            };
            roots.push(index);
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut batches = guarded(|| {
            Ok(builder
                .with_projection(mask)
                .with_batch_size(BATCH_ROWS)
                .build()?)
        })?;
        let mut row = 0u64;
        while let Some(batch) = guarded(|| Ok(batches.next()))? {
            let batch = batch.map_err(|e| FileError::Invalid(format!("row {row}: {e}")))?;
            let column =
                |name: &str| TextColumn::from_batch(&batch, name).map_err(FileError::Invalid);
            let text = column(config.text_field())?;
            let label = config.label_field.as_deref().map(column).transpose()?;
            let id = config.id_field.as_deref().map(column).transpose()?;
            for i in 0..batch.num_rows() {
                row += 1;
                let Some(value) = text.get(i) else {
                    let detail = format!(
                        "{}: row {row}: `{}` is null",
                        ctx.relative,
                        config.text_field()
                    );
                    sink(ctx.reject("missing_field", detail, None));
                    continue;
                };
                let mut doc = ctx.doc(value.into_owned(), false, Map::new());
                doc.label = label
                    .as_ref()
                    .and_then(|c| c.get(i))
                    .map(|v| v.into_owned());
                if let Some(value) = id.as_ref().and_then(|c| c.get(i)) {
                    doc.id = format!("{}/{value}", ctx.corpus);
                }
                sink(Record::Doc(doc));
            }
        }
        Ok(())
    }
}

/// Runs a call into the parquet crate, turning a panic into a file error: the
/// crate panics on some corrupt files instead of returning one (a bit-packed run
/// of definition levels longer than its page, a negative column offset in the
/// footer, ...; found by tests/fuzz.rs), and a corrupt file must be quarantined
/// or named like any other broken file, not abort the stage.
fn guarded<T>(call: impl FnOnce() -> Result<T, FileError>) -> Result<T, FileError> {
    std::panic::catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(FileError::Invalid(format!(
            "corrupt parquet file (the decoder panicked: {message})"
        )))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    use crate::{CorpusConfig, read_files};

    /// Found by tests/fuzz.rs: one byte of a page's definition levels overwritten
    /// (a bit-packed run longer than the page) made the parquet crate panic
    /// ("offset + len out of bounds" in arrow-buffer) instead of returning an error,
    /// so `on_error = "quarantine"` could not apply. Every single-byte corruption
    /// of a small file must now read or fail, never panic.
    #[test]
    fn a_corrupt_page_is_a_file_error_not_a_panic() {
        let texts: Vec<Option<&str>> = vec![
            Some("a b"),
            None,
            Some("c"),
            Some("d e f"),
            Some("g"),
            Some("h"),
        ];
        let labels: Vec<Option<i64>> = vec![Some(0), Some(1), None, Some(2), Some(0), None];
        let batch = RecordBatch::try_from_iter([
            ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
            ("label", Arc::new(Int64Array::from(labels)) as ArrayRef),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(4))
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut good = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut good, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rows.parquet");
        let config: CorpusConfig = toml::from_str(
            "domain = 'd'\nreader = 'parquet'\npaths = ['*']\nlabel_field = 'label'\non_error = 'fail'\n",
        )
        .unwrap();
        let mut panicked = Vec::new();
        for at in 0..good.len() {
            for value in [0xd5, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                std::fs::write(&file, &bytes).unwrap();
                let read = std::panic::catch_unwind(|| {
                    read_files("t", &config, dir.path(), vec![file.clone()], &mut |_| {})
                });
                if read.is_err() {
                    panicked.push((at, value));
                }
            }
        }
        assert!(
            panicked.is_empty(),
            "panicked with (offset, byte) {panicked:?}"
        );
    }
}
