//! Plain text: one document per file (`unit = "file"`, default) or per
//! non-blank line (`unit = "line"`; blank lines are separators, not records).
//! Project Gutenberg licence header/footer are cut when their markers exist.

use std::path::Path;

use serde_json::Map;

use super::{ReadCtx, Reader, for_each_line, whole_file_text};
use crate::clean::boilerplate::strip_gutenberg_licence;
use crate::config::Unit;
use crate::document::Record;
use crate::error::FileError;

pub struct Txt;

impl Reader for Txt {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        match ctx.config.unit.unwrap_or(Unit::File) {
            Unit::File => {
                if let Some(decoded) = whole_file_text(file, ctx, sink)? {
                    let text = strip_gutenberg_licence(&decoded.text).to_owned();
                    sink(Record::Doc(ctx.doc(
                        text,
                        decoded.fell_back_to_latin1,
                        Map::new(),
                    )));
                }
                Ok(())
            }
            Unit::Line => for_each_line(file, ctx, sink, |_, line, fell_back, sink| {
                if !line.trim().is_empty() {
                    sink(Record::Doc(ctx.doc(line, fell_back, Map::new())));
                }
            }),
        }
    }
}
