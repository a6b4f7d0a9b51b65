//! One document per file, labelled with the name of the folder holding it
//! (BBC News: `business/001.txt` → label `business`). The first line becomes
//! the title when it is followed by a blank line (a headline layout).

use std::path::Path;

use serde_json::Map;

use super::{ReadCtx, Reader, whole_file_text};
use crate::document::Record;
use crate::error::FileError;

pub struct FolderLabels;

impl Reader for FolderLabels {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let Some(decoded) = whole_file_text(file, ctx, sink)? else {
            return Ok(());
        };
        let label = file
            .parent()
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned());
        let title = decoded
            .text
            .split_once("\n\n")
            .map(|(first, _)| first.trim())
            .filter(|first| !first.is_empty() && !first.contains('\n'))
            .map(str::to_owned);
        let mut doc = ctx.doc(decoded.text, decoded.fell_back_to_latin1, Map::new());
        doc.label = label;
        doc.title = title;
        sink(Record::Doc(doc));
        Ok(())
    }
}
