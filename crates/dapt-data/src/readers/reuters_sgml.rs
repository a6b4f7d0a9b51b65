//! Reuters-21578 SGML (not XML): `<REUTERS ...>` elements with no root.
//! Text = title + body (title alone for BRIEF items, the raw text for UNPROC
//! tables); LEWISSPLIT → split; TOPICS/PLACES/PEOPLE/ORGS/EXCHANGES/COMPANIES
//! lists, NEWID and DATELINE → meta. Numeric character references to control
//! characters (`&#2;`, `&#3;`, …) are dropped; `&lt;` `&gt;` `&amp;` decoded.
//! Documents with no text at all are still emitted (`clean` filters them), so
//! the reader's counts equal the source's.

use std::path::Path;

use serde_json::{Map, Value};

use super::{ReadCtx, Reader, tag_attr, whole_file_text};
use crate::config::SplitFrom;
use crate::document::Record;
use crate::error::FileError;

pub struct ReutersSgml;

const OPEN: &str = "<REUTERS";
const CLOSE: &str = "</REUTERS>";
const LISTS: [(&str, &str); 6] = [
    ("TOPICS", "topics"),
    ("PLACES", "places"),
    ("PEOPLE", "people"),
    ("ORGS", "orgs"),
    ("EXCHANGES", "exchanges"),
    ("COMPANIES", "companies"),
];

/// The content of the first `<NAME ...>…</NAME>` element in `sgml`.
fn element<'s>(sgml: &'s str, name: &str) -> Option<&'s str> {
    let open = format!("<{name}");
    let mut from = 0;
    // Skip longer tag names sharing the prefix (none in Reuters, but cheap).
    let start = loop {
        let at = from + sgml[from..].find(&open)?;
        let after = at + open.len();
        match sgml.as_bytes().get(after) {
            Some(b'>') | Some(b' ') => break after,
            _ => from = after,
        }
    };
    let content = start + sgml[start..].find('>')? + 1;
    let end = content + sgml[content..].find(&format!("</{name}>"))?;
    Some(&sgml[content..end])
}

/// Decodes SGML entities; numeric references to control characters (wire
/// codes like `&#3;`) are dropped, except newline and tab.
pub fn unescape_sgml(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest
            .find(';')
            .filter(|&end| end <= 8)
            .map(|end| (&rest[1..end], end));
        let decoded = entity.and_then(|(name, end)| {
            let ch = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                _ => name
                    .strip_prefix('#')?
                    .parse()
                    .ok()
                    .and_then(char::from_u32),
            }?;
            Some((ch, end))
        });
        match decoded {
            Some((ch, end)) => {
                if !ch.is_control() || ch == '\n' || ch == '\t' {
                    out.push(ch);
                }
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn clean_field(raw: &str) -> Option<String> {
    let text = unescape_sgml(raw);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn parse_document(block: &str, ctx: &ReadCtx) -> Record {
    let tag = &block[..block.find('>').unwrap_or(block.len())];
    let children = &block[tag.len()..];
    let mut meta = Map::new();
    for (attr, key) in [
        ("NEWID", "newid"),
        ("LEWISSPLIT", "lewissplit"),
        ("TOPICS", "has_topics"),
    ] {
        if let Some(value) = tag_attr(tag, attr) {
            meta.insert(key.into(), value.into());
        }
    }
    for (name, key) in LISTS {
        let items: Vec<Value> = element(children, name)
            .map(|list| {
                list.split("<D>")
                    .filter_map(|d| d.split("</D>").next())
                    .filter_map(clean_field)
                    .map(Value::from)
                    .collect()
            })
            .unwrap_or_default();
        meta.insert(key.into(), items.into());
    }
    let text_element = element(children, "TEXT").unwrap_or("");
    if let Some(kind) = children
        .find("<TEXT TYPE=\"")
        .and_then(|at| tag_attr(&children[at..], "TYPE"))
    {
        meta.insert("text_type".into(), kind.into());
    }
    if let Some(dateline) = element(text_element, "DATELINE").and_then(clean_field) {
        meta.insert("dateline".into(), dateline.into());
    }
    let title = element(text_element, "TITLE").and_then(clean_field);
    let body = element(text_element, "BODY").and_then(clean_field);
    let text = match (&title, body) {
        (Some(title), Some(body)) => format!("{title}\n\n{body}"),
        (None, Some(body)) => body,
        (Some(title), None) => title.clone(),
        (None, None) => clean_field(text_element).unwrap_or_default(),
    };
    let mut doc = ctx.doc(text, false, meta);
    doc.title = title;
    doc.date = element(children, "DATE").and_then(clean_field);
    if ctx.config.split_from() == Some(SplitFrom::Lewissplit) {
        doc.split = match tag_attr(tag, "LEWISSPLIT") {
            Some("TRAIN") => Some("train".into()),
            Some("TEST") => Some("test".into()),
            Some("NOT-USED") => Some("validation".into()),
            _ => None,
        };
    }
    Record::Doc(doc)
}

impl Reader for ReutersSgml {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let Some(decoded) = whole_file_text(file, ctx, sink)? else {
            return Ok(());
        };
        let sgml = decoded.text.as_str();
        let (mut pos, mut line, mut counted_to) = (0, 1u64, 0);
        while let Some(found) = sgml[pos..].find(OPEN) {
            let start = pos + found;
            line += memchr::memchr_iter(b'\n', &sgml.as_bytes()[counted_to..start]).count() as u64;
            counted_to = start;
            let after_open = start + OPEN.len();
            let close = sgml[after_open..].find(CLOSE).map(|i| after_open + i);
            let next_open = sgml[after_open..].find(OPEN).map(|i| after_open + i);
            match close {
                Some(end) if next_open.is_none_or(|next| end < next) => {
                    sink(parse_document(&sgml[start..end], ctx));
                    pos = end + CLOSE.len();
                }
                _ => {
                    let until = if next_open.is_some() {
                        "the next <REUTERS>"
                    } else {
                        "the end of the file"
                    };
                    let detail = format!(
                        "{}: <REUTERS> not closed by </REUTERS> before {until}",
                        ctx.at(line)
                    );
                    let stop = next_open.unwrap_or(sgml.len());
                    sink(ctx.reject("parse_error", detail, Some(sgml[start..stop].to_owned())));
                    pos = stop;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_drops_control_references_and_decodes_named_ones() {
        assert_eq!(unescape_sgml("&#2;&lt;IBM> &amp; co&#3;"), "<IBM> & co");
        assert_eq!(unescape_sgml("AT&T R&D;"), "AT&T R&D;");
        assert_eq!(unescape_sgml("a&#10;b"), "a\nb");
    }

    #[test]
    fn element_finds_typed_text() {
        let sgml = "<TEXT TYPE=\"BRIEF\">&#2;\n<TITLE>X</TITLE></TEXT>";
        assert_eq!(element(sgml, "TEXT"), Some("&#2;\n<TITLE>X</TITLE>"));
        assert_eq!(element(sgml, "TITLE"), Some("X"));
    }
}
