//! Text normalisers: Unicode NFC and whitespace.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// NFC, skipping the allocation when the text is already normalised (most are).
pub fn nfc(text: &str) -> Option<String> {
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => None,
        _ => {
            let normalised: String = text.nfc().collect();
            (normalised != text).then_some(normalised)
        }
    }
}

/// Collapses runs of spaces/tabs to one space, trims every line, keeps at
/// most one blank line in a row, trims the text, and drops control
/// characters (CR, backspace, form feed, …) other than newline.
pub fn whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.split('\n') {
        let mut words = line
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .peekable();
        if words.peek().is_none() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        for (i, word) in words.enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_collapses_and_trims() {
        let text = "  a \t b  \r\n\n\n\n c\x08d \n\n";
        assert_eq!(whitespace(text), "a b\n\nc d");
    }

    #[test]
    fn nfc_composes() {
        assert_eq!(nfc("e\u{301}").as_deref(), Some("é"));
        assert_eq!(nfc("plain"), None);
    }
}
