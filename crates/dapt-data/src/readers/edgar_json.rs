//! EDGAR-CRAWLER 10-K JSON: one pretty-printed object per filing. The text is
//! the non-empty `item_*` sections in document order (item_1, item_1A, item_1B,
//! item_2, …, item_16 — natural, not lexicographic), joined by blank lines.

use std::path::Path;

use serde_json::{Map, Value};

use super::{ReadCtx, Reader, whole_file_text};
use crate::document::Record;
use crate::error::FileError;

pub struct EdgarJson;

/// Filing fields copied into meta when present.
const META_KEYS: [&str; 7] = [
    "cik",
    "company",
    "filing_type",
    "filing_date",
    "period_of_report",
    "sic",
    "filename",
];

/// Sort key of an `item_<number><suffix>` name: `item_1B` → (1, "B").
fn item_order(key: &str) -> Option<(u32, &str)> {
    let rest = key.strip_prefix("item_")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((rest[..digits].parse().ok()?, &rest[digits..]))
}

impl Reader for EdgarJson {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let Some(decoded) = whole_file_text(file, ctx, sink)? else {
            return Ok(());
        };
        let filing: Map<String, Value> = match serde_json::from_str(&decoded.text) {
            Ok(filing) => filing,
            Err(e) => {
                let detail = format!(
                    "{}:{}: malformed filing JSON: {e}",
                    ctx.at(e.line() as u64),
                    e.column()
                );
                sink(ctx.reject("parse_error", detail, None));
                return Ok(());
            }
        };
        let mut items: Vec<(u32, &str, &str, &str)> = Vec::new();
        for (key, value) in &filing {
            let Some((number, suffix)) = item_order(key) else {
                continue;
            };
            match value {
                Value::String(section) if !section.trim().is_empty() => {
                    items.push((number, suffix, key, section.trim()))
                }
                Value::String(_) | Value::Null => {}
                other => {
                    let detail =
                        format!("{}: `{key}` is {other:?}, expected a string", ctx.relative);
                    sink(ctx.reject("parse_error", detail, None));
                    return Ok(());
                }
            }
        }
        items.sort_by_key(|&(number, suffix, _, _)| (number, suffix.to_ascii_uppercase()));
        let text = items
            .iter()
            .map(|item| item.3)
            .collect::<Vec<_>>()
            .join("\n\n");
        let field = |key: &str| filing.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut meta = Map::new();
        for key in META_KEYS {
            if let Some(value) = field(key) {
                meta.insert(key.into(), value.into());
            }
        }
        if let Some(year) = field("filing_date").and_then(|d| d.get(..4).map(str::to_owned)) {
            meta.insert("year".into(), year.into());
        }
        meta.insert(
            "items".into(),
            items.iter().map(|item| Value::from(item.2)).collect(),
        );
        let mut doc = ctx.doc(text, decoded.fell_back_to_latin1, meta);
        doc.title = field("company");
        doc.date = field("filing_date");
        sink(Record::Doc(doc));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::item_order;

    #[test]
    fn items_sort_naturally() {
        let mut keys = [
            "item_10", "item_1B", "item_2", "item_1", "item_1A", "item_9A",
        ];
        keys.sort_by_key(|k| item_order(k).unwrap());
        assert_eq!(
            keys,
            [
                "item_1", "item_1A", "item_1B", "item_2", "item_9A", "item_10"
            ]
        );
    }
}
