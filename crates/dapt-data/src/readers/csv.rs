//! CSV with a header row (RFC 4180 quoting, LF or CRLF): `text_field`
//! (default `text`) and an optional `label_field` column. A row whose field
//! count differs from the header is rejected with `file:line`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use serde_json::Map;

use super::{ReadCtx, Reader};
use crate::document::Record;
use crate::error::FileError;
use crate::input;

pub struct Csv;

/// Records the offsets of the `\n` bytes flowing into the csv parser, so a
/// record's start byte can be turned into a line number. (The csv crate's own
/// line count is one short after CRLF terminators: it places a record's start
/// on the `\n` of the previous `\r\n`.)
struct NewlineTap<R> {
    inner: R,
    offset: u64,
    newlines: Rc<RefCell<VecDeque<u64>>>,
}

impl<R: Read> Read for NewlineTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut newlines = self.newlines.borrow_mut();
        newlines.extend(memchr::memchr_iter(b'\n', &buf[..n]).map(|i| self.offset + i as u64));
        self.offset += n as u64;
        Ok(n)
    }
}

/// 1-based line numbers of increasing byte offsets, forgetting passed newlines.
struct LineIndex {
    newlines: Rc<RefCell<VecDeque<u64>>>,
    passed: u64,
}

impl LineIndex {
    /// The line of the record starting at `byte` (a start on a newline byte
    /// means the record begins just after it).
    fn line_of(&mut self, byte: u64) -> u64 {
        let mut newlines = self.newlines.borrow_mut();
        while newlines.front().is_some_and(|&at| at <= byte) {
            newlines.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

fn column(headers: &[String], name: &str, key: &str) -> Result<usize, FileError> {
    headers.iter().position(|h| h == name).ok_or_else(|| {
        FileError::Invalid(format!(
            "column `{name}` not in the header {headers:?}; set {key} to one of them"
        ))
    })
}

impl Reader for Csv {
    fn read(
        &self,
        file: &Path,
        ctx: &ReadCtx,
        sink: &mut dyn FnMut(Record),
    ) -> Result<(), FileError> {
        let config = ctx.config;
        let newlines = Rc::new(RefCell::new(VecDeque::new()));
        let mut lines = LineIndex {
            newlines: newlines.clone(),
            passed: 0,
        };
        let tap = NewlineTap {
            inner: input::open_text(file)?,
            offset: 0,
            newlines,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(tap);
        let headers: Vec<String> = reader
            .byte_headers()
            .map_err(csv_error)?
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .to_owned()
            })
            .collect();
        let text_col = column(&headers, config.text_field(), "text_field")?;
        let label_col = match &config.label_field {
            Some(name) => Some(column(&headers, name, "label_field")?),
            None => None,
        };
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(csv_error(e)),
                Err(e) => {
                    let line = e.position().map_or(0, |p| lines.line_of(p.byte()));
                    sink(ctx.reject("parse_error", format!("{}: {e}", ctx.at(line)), None));
                    continue;
                }
            }
            let line = record.position().map_or(0, |p| lines.line_of(p.byte()));
            if record.len() != headers.len() {
                let detail = format!(
                    "{}: row has {} fields, the header has {}",
                    ctx.at(line),
                    record.len(),
                    headers.len()
                );
                let fields: Vec<_> = record.iter().map(String::from_utf8_lossy).collect();
                let raw = fields.join(",");
                sink(ctx.reject("wrong_arity", detail, Some(raw)));
                continue;
            }
            let decode = |col: usize| input::decode(record[col].to_vec(), config.encoding());
            match (decode(text_col), label_col.map(decode).transpose()) {
                (Ok(text), Ok(label)) => {
                    let fell_back = text.fell_back_to_latin1
                        || label.as_ref().is_some_and(|l| l.fell_back_to_latin1);
                    let mut doc = ctx.doc(text.text, fell_back, Map::new());
                    doc.label = label.map(|l| l.text);
                    sink(Record::Doc(doc));
                }
                (Err(e), _) | (_, Err(e)) => {
                    sink(ctx.reject(e.reason(), e.detail(&ctx.relative, line), None))
                }
            }
        }
    }
}

fn csv_error(e: csv::Error) -> FileError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => FileError::Io(io),
        other => FileError::Invalid(format!("{other:?}")),
    }
}
