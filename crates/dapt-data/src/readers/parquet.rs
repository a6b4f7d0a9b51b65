//! Parquet: `text_field` (default `text`), optional `label_field` and
//! `id_field` string (or integer) columns, read in batches of 1,024 rows with
//! only those columns projected. A null text is rejected with its row number.

use std::fs::File;
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
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(file)?)?;
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
        let batches = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()?;
        let mut row = 0u64;
        for batch in batches {
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
