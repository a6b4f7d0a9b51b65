//! WikiExtractor "document format": `<doc id=".." url=".." title="..">`,
//! the article body, `</doc>`. One document per block; meta keeps the wiki
//! page id and url. Unclosed blocks and text outside blocks are rejected.

use std::path::Path;

use serde_json::Map;

use super::{ReadCtx, Reader, for_each_line, tag_attr};
use crate::document::Record;
use crate::error::FileError;

pub struct Wikiextractor;

struct OpenDoc {
    start_line: u64,
    meta: Map<String, serde_json::Value>,
    title: Option<String>,
    body: String,
    any_latin1: bool,
}

fn open_doc(tag: &str, start_line: u64) -> OpenDoc {
    let mut meta = Map::new();
    for key in ["id", "url"] {
        if let Some(value) = tag_attr(tag, key) {
            meta.insert(
                if key == "id" { "wiki_id" } else { key }.into(),
                value.into(),
            );
        }
    }
    OpenDoc {
        start_line,
        meta,
        title: tag_attr(tag, "title").map(str::to_owned),
        body: String::new(),
        any_latin1: false,
    }
}

fn unclosed(ctx: &ReadCtx, doc: OpenDoc, until: &str) -> Record {
    ctx.reject(
        "parse_error",
        format!(
            "{}: <doc> not closed by </doc> before {until}",
            ctx.at(doc.start_line)
        ),
        Some(doc.body),
    )
}

impl Reader for Wikiextractor {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let mut open: Option<OpenDoc> = None;
        for_each_line(file, ctx, sink, |line_no, line, fell_back, sink| {
            if line.starts_with("<doc ") {
                if let Some(doc) = open.take() {
                    sink(unclosed(ctx, doc, &format!("line {line_no}")));
                }
                open = Some(open_doc(&line, line_no));
            } else if line.trim_end() == "</doc>" {
                match open.take() {
                    Some(doc) => {
                        let body = doc.body.trim_end_matches('\n').to_owned();
                        let mut out = ctx.doc(body, doc.any_latin1, doc.meta);
                        out.title = doc.title;
                        sink(Record::Doc(out));
                    }
                    None => sink(ctx.reject(
                        "parse_error",
                        format!("{}: </doc> without an opening <doc>", ctx.at(line_no)),
                        None,
                    )),
                }
            } else if let Some(doc) = open.as_mut() {
                doc.body.push_str(&line);
                doc.body.push('\n');
                doc.any_latin1 |= fell_back;
            } else if !line.trim().is_empty() {
                sink(ctx.reject(
                    "parse_error",
                    format!("{}: text outside any <doc> block", ctx.at(line_no)),
                    Some(line),
                ));
            }
        })?;
        if let Some(doc) = open {
            sink(unclosed(ctx, doc, "the end of the file"));
        }
        Ok(())
    }
}
