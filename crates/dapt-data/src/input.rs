//! Opening inputs (transparent .gz/.zst), bounded reads and explicit decoding.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::config::Encoding;
use crate::error::FileError;

/// How many decompressed bytes are sniffed for NUL to detect binary files.
const SNIFF_BYTES: usize = 8 << 10;

/// Opens `path` for reading, decompressing `.gz` (all members) and `.zst` by
/// extension. Fails with [`FileError::Binary`] when the first kilobytes hold a
/// NUL byte: no text format read here contains one.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>, FileError> {
    let file = File::open(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let raw: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(64 << 10, raw);
    let head = reader.fill_buf()?;
    if let Some(offset) = memchr::memchr(0, &head[..head.len().min(SNIFF_BYTES)]) {
        return Err(FileError::Binary { offset });
    }
    Ok(Box::new(reader))
}

/// What reading one record with a size bound produced.
pub enum Bounded {
    /// The record's bytes (line terminator removed for lines).
    Complete(Vec<u8>),
    /// The record was larger than the bound; it was skipped without being kept
    /// in memory. Holds its full size in bytes.
    TooLarge(usize),
}

/// Reads the whole (decompressed) input, but never more than `max` bytes into memory.
pub fn read_all_bounded(reader: &mut dyn BufRead, max: usize) -> Result<Bounded, FileError> {
    let mut bytes = Vec::new();
    reader.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() <= max {
        return Ok(Bounded::Complete(bytes));
    }
    let rest = io::copy(reader, &mut io::sink())? as usize;
    Ok(Bounded::TooLarge(bytes.len() + rest))
}

/// Streams lines (split on `\n`, a trailing `\r` removed) with 1-based line
/// numbers; a line longer than `max` bytes is skipped in constant memory and
/// reported as [`Bounded::TooLarge`].
pub struct Lines<'a> {
    reader: &'a mut dyn BufRead,
    max: usize,
    line_no: u64,
}

impl<'a> Lines<'a> {
    pub fn new(reader: &'a mut dyn BufRead, max: usize) -> Self {
        Lines {
            reader,
            max,
            line_no: 0,
        }
    }

    /// The next line and its number, or `None` at end of input.
    pub fn next_line(&mut self) -> Result<Option<(u64, Bounded)>, FileError> {
        let mut line = Vec::new();
        let mut total = 0usize;
        let mut saw_any = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            saw_any = true;
            let (chunk, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            total += chunk.len();
            if total <= self.max {
                line.extend_from_slice(chunk);
            } else if !line.is_empty() {
                // Over the bound: stop holding the line, keep only counting.
                line = Vec::new();
            }
            let consumed = done.unwrap_or(chunk.len());
            self.reader.consume(consumed);
            if done.is_some() {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.line_no += 1;
        if total > self.max {
            return Ok(Some((self.line_no, Bounded::TooLarge(total))));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some((self.line_no, Bounded::Complete(line))))
    }
}

/// Why a unit of bytes could not become text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not valid UTF-8; `line` is the 1-based line inside the unit, `offset`
    /// the byte offset of the first bad byte inside the unit.
    InvalidUtf8 { line: u64, offset: usize },
    /// Holds a NUL byte at this offset.
    Binary { offset: usize },
}

impl DecodeError {
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::Binary { .. } => "binary_data",
        }
    }

    /// Describes the error at `file:first_line` (the unit's first line in the file).
    pub fn detail(&self, file: &str, first_line: u64) -> String {
        match self {
            DecodeError::InvalidUtf8 { line, offset } => format!(
                "{file}:{}: invalid UTF-8 at byte {offset} of the record; if the source is \
                 Latin-1 set encoding = \"latin-1\" (or \"utf-8-or-latin-1\")",
                first_line + line - 1
            ),
            DecodeError::Binary { offset } => {
                format!(
                    "{file}:{first_line}: NUL byte at byte {offset} of the record (binary data)"
                )
            }
        }
    }
}

/// Decoded text and whether the Latin-1 fallback was used.
pub struct Decoded {
    pub text: String,
    pub fell_back_to_latin1: bool,
}

/// Decodes one unit (a file or a line) with the declared encoding; never guesses.
pub fn decode(bytes: Vec<u8>, encoding: Encoding) -> Result<Decoded, DecodeError> {
    if let Some(offset) = memchr::memchr(0, &bytes) {
        return Err(DecodeError::Binary { offset });
    }
    let latin1 = |bytes: &[u8]| bytes.iter().map(|&b| b as char).collect::<String>();
    match encoding {
        Encoding::Latin1 => Ok(Decoded {
            text: latin1(&bytes),
            fell_back_to_latin1: false,
        }),
        Encoding::Utf8 | Encoding::Utf8OrLatin1 => match String::from_utf8(bytes) {
            Ok(text) => Ok(Decoded {
                text,
                fell_back_to_latin1: false,
            }),
            Err(e) if encoding == Encoding::Utf8OrLatin1 => Ok(Decoded {
                text: latin1(e.as_bytes()),
                fell_back_to_latin1: true,
            }),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let bytes = e.as_bytes();
                let line = 1 + memchr::memchr_iter(b'\n', &bytes[..offset]).count() as u64;
                Err(DecodeError::InvalidUtf8 { line, offset })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        let decoded = decode(vec![b'M', 0xFC, b'n'], Encoding::Latin1).unwrap();
        assert_eq!(decoded.text, "Mün");
    }

    #[test]
    fn strict_utf8_reports_line_and_offset() {
        let err = decode(b"ok\nbad \xA3 here".to_vec(), Encoding::Utf8)
            .err()
            .unwrap();
        assert_eq!(err, DecodeError::InvalidUtf8 { line: 2, offset: 7 });
        assert!(
            err.detail("f.txt", 10)
                .starts_with("f.txt:11: invalid UTF-8")
        );
    }

    #[test]
    fn fallback_marks_latin1() {
        let decoded = decode(b"\xA3 5".to_vec(), Encoding::Utf8OrLatin1).unwrap();
        assert_eq!(decoded.text, "£ 5");
        assert!(decoded.fell_back_to_latin1);
    }

    #[test]
    fn lines_skip_oversized_line_in_bounded_memory() {
        let data = format!("short\n{}\nlast", "x".repeat(100));
        let mut reader: &[u8] = data.as_bytes();
        let mut lines = Lines::new(&mut reader, 10);
        let mut seen = Vec::new();
        while let Some((no, line)) = lines.next_line().unwrap() {
            seen.push(match line {
                Bounded::Complete(b) => format!("{no}:{}", String::from_utf8(b).unwrap()),
                Bounded::TooLarge(n) => format!("{no}:too large {n}"),
            });
        }
        assert_eq!(seen, ["1:short", "2:too large 100", "3:last"]);
    }
}
