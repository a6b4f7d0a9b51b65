//! Financial PhraseBank: `sentence@label` per line (Latin-1 by default),
//! split on the last `@`. Mojibake in the source is kept as it is.

use std::path::Path;

use serde_json::Map;

use super::{ReadCtx, Reader, for_each_line};
use crate::document::Record;
use crate::error::FileError;

pub struct Phrasebank;

impl Reader for Phrasebank {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        for_each_line(file, ctx, sink, |line_no, line, fell_back, sink| {
            if line.trim().is_empty() {
                return;
            }
            match line.rsplit_once('@') {
                Some((sentence, label)) if !label.trim().is_empty() => {
                    let mut doc = ctx.doc(sentence.to_owned(), fell_back, Map::new());
                    doc.label = Some(label.trim().to_owned());
                    sink(Record::Doc(doc));
                }
                _ => sink(ctx.reject(
                    "parse_error",
                    format!("{}: expected `sentence@label`", ctx.at(line_no)),
                    Some(line),
                )),
            }
        })
    }
}
