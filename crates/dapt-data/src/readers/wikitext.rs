//! WikiText (tokenized): one document per article. An article starts at a
//! top-level heading line ` = Title = `; ` = = Section = = ` lines stay inside
//! it. Lines are kept verbatim (the benchmark's tokenisation matters for
//! perplexity); only leading/trailing blank lines of an article are dropped.

use std::path::Path;

use serde_json::Map;

use super::{ReadCtx, Reader, for_each_line};
use crate::document::Record;
use crate::error::FileError;

pub struct Wikitext;

/// The title of a top-level heading line, `None` for any other line.
fn top_level_title(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix("= ")?.strip_suffix(" =")?;
    (!inner.starts_with('=')).then(|| inner.trim())
}

#[derive(Default)]
struct Article {
    title: Option<String>,
    lines: Vec<String>,
    any_latin1: bool,
}

impl Article {
    fn flush(&mut self, ctx: &ReadCtx, sink: &mut dyn FnMut(Record)) {
        let article = std::mem::take(self);
        let is_blank = |l: &String| l.trim().is_empty();
        let first = article.lines.iter().position(|l| !is_blank(l));
        let last = article.lines.iter().rposition(|l| !is_blank(l));
        if let (Some(first), Some(last)) = (first, last) {
            let text = article.lines[first..=last].join("\n");
            let mut doc = ctx.doc(text, article.any_latin1, Map::new());
            doc.title = article.title;
            sink(Record::Doc(doc));
        }
    }
}

impl Reader for Wikitext {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let mut article = Article::default();
        for_each_line(file, ctx, sink, |_, line, fell_back, sink| {
            if let Some(title) = top_level_title(&line) {
                article.flush(ctx, sink);
                article.title = Some(title.to_owned());
            }
            article.any_latin1 |= fell_back;
            article.lines.push(line);
        })?;
        article.flush(ctx, sink);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::top_level_title;

    #[test]
    fn only_single_equals_headings_start_articles() {
        assert_eq!(
            top_level_title(" = Homarus gammarus = "),
            Some("Homarus gammarus")
        );
        assert_eq!(top_level_title(" = = Description = = "), None);
        assert_eq!(top_level_title(" a = b = c "), None);
    }
}
