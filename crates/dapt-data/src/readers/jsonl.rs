//! JSON Lines: one object per line; `text_field` (default `text`) must be a
//! string, `label_field` and `id_field` may be strings or numbers. The object's
//! other fields are kept as the document's metadata (so `split`'s `group_by` can
//! name them), as datatrove's JSONL reader does. Blank lines are skipped; a
//! malformed line is rejected with `file:line:column`.

use std::path::Path;

use serde_json::Value;

use super::{ReadCtx, Reader, for_each_line};
use crate::document::Record;
use crate::error::FileError;

pub struct Jsonl;

/// A scalar JSON value as text (strings unquoted); `None` for null/objects/arrays.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Reader for Jsonl {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let config = ctx.config;
        let text_field = config.text_field();
        for_each_line(file, ctx, sink, |line_no, line, fell_back, sink| {
            if line.trim().is_empty() {
                return;
            }
            let mut object = match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(object)) => object,
                Ok(_) => {
                    let detail = format!("{}: not a JSON object", ctx.at(line_no));
                    return sink(ctx.reject("parse_error", detail, Some(line)));
                }
                Err(e) => {
                    let detail = format!("{}:{}: malformed JSON: {e}", ctx.at(line_no), e.column());
                    return sink(ctx.reject("parse_error", detail, Some(line)));
                }
            };
            let Some(Value::String(text)) = object.remove(text_field) else {
                let detail = format!(
                    "{}: no string field `{text_field}`; set text_field to the key holding the text",
                    ctx.at(line_no)
                );
                return sink(ctx.reject("missing_field", detail, Some(line)));
            };
            // Label and id leave the object; what remains is the metadata.
            let mut take = |field: &Option<String>| {
                field
                    .as_ref()
                    .and_then(|f| object.remove(f))
                    .as_ref()
                    .and_then(scalar_text)
            };
            let label = take(&config.label_field);
            let id = take(&config.id_field);
            let mut doc = ctx.doc(text, fell_back, object);
            doc.label = label;
            if let Some(id) = id {
                doc.id = format!("{}/{id}", ctx.corpus);
            }
            sink(Record::Doc(doc));
        })
    }
}
