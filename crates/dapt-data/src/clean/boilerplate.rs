//! Source boilerplate that carries no language: Project Gutenberg licence
//! blocks, the Reuters ` Reuter` sign-off, and Usenet headers, quoted
//! replies, signatures, PGP armour and uuencoded attachments.

/// The text between Project Gutenberg `*** START OF ... ***` and
/// `*** END OF ... ***` marker lines; the whole text when a marker is absent.
pub fn strip_gutenberg_licence(text: &str) -> &str {
    let is_marker = |line: &str, word: &str| {
        let line = line.trim();
        line.starts_with("***")
            && line.ends_with("***")
            && line.to_ascii_uppercase().contains(&format!("{word} OF"))
            && line.to_ascii_uppercase().contains("GUTENBERG")
    };
    let mut start = 0;
    let mut end = text.len();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if start == 0 && is_marker(line, "START") {
            start = offset + line.len();
        } else if is_marker(line, "END") {
            end = offset;
            break;
        }
        offset += line.len();
    }
    if start <= end {
        &text[start..end]
    } else {
        text
    }
}

/// Removes a final line reading `Reuter` / `REUTER` (the wire sign-off).
pub fn strip_reuters_signoff(text: &str) -> Option<String> {
    let body = text.trim_end();
    let (rest, last) = body.rsplit_once('\n')?;
    matches!(last.trim(), "Reuter" | "REUTER").then(|| rest.trim_end().to_owned())
}

/// Whether `line` is an RFC 822 style header (`Name: value`).
fn is_header_line(line: &str) -> bool {
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') // `Article-I.D.:`
}

/// For a Usenet post (a leading header block with `From:` or `Subject:`),
/// the body without headers, attribution and quoted lines, PGP armour,
/// uuencoded blocks and the signature (`-- ` and after). `None` when the text
/// does not start with a header block: nothing else is touched.
pub fn strip_usenet(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let mut saw_sender_or_subject = false;
    let mut header_lines = 0;
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        let continuation = line.starts_with([' ', '\t']) && header_lines > 0;
        if !continuation && !is_header_line(line) {
            return None;
        }
        saw_sender_or_subject |= line.starts_with("From:") || line.starts_with("Subject:");
        header_lines += 1;
    }
    if header_lines == 0 || !saw_sender_or_subject {
        return None;
    }
    let body: Vec<&str> = lines.collect();
    let signature = body.iter().rposition(|l| matches!(*l, "-- " | "--"));
    let mut kept = Vec::with_capacity(body.len());
    let mut skipping_until: Option<&str> = None;
    for line in &body[..signature.unwrap_or(body.len())] {
        let trimmed = line.trim();
        if let Some(end) = skipping_until {
            if trimmed.starts_with(end) {
                skipping_until = None;
            }
            continue;
        }
        if trimmed.starts_with("-----BEGIN PGP SIGNATURE")
            || trimmed.starts_with("-----BEGIN PGP PUBLIC KEY")
        {
            skipping_until = Some("-----END PGP");
        } else if is_uuencode_begin(trimmed) {
            skipping_until = Some("end");
        } else if trimmed.starts_with("-----BEGIN PGP SIGNED MESSAGE")
            || trimmed.starts_with("Hash:")
        {
            // Armour header lines; the signed text itself is kept.
        } else if is_quote_or_attribution(line) {
        } else {
            kept.push(*line);
        }
    }
    Some(kept.join("\n"))
}

/// `begin 644 file.zip`: the start of a uuencoded attachment.
fn is_uuencode_begin(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    parts.next() == Some("begin")
        && parts
            .next()
            .is_some_and(|mode| mode.len() == 3 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        && parts.next().is_some()
}

/// Quoted reply lines (`>`, `|>`) and attribution lines ("… writes:").
fn is_quote_or_attribution(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with('>')
        || trimmed.starts_with("|>")
        || (trimmed.starts_with("In article")
            && (trimmed.ends_with("writes:") || trimmed.ends_with("wrote:")))
        || (trimmed.ends_with(" writes:") && trimmed.len() < 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gutenberg_markers_are_cut() {
        let text = "*** START OF THE PROJECT GUTENBERG EBOOK 2701 ***\nCall me Ishmael.\n*** END OF THE PROJECT GUTENBERG EBOOK 2701 ***\n";
        assert_eq!(strip_gutenberg_licence(text), "Call me Ishmael.\n");
        assert_eq!(strip_gutenberg_licence("no markers"), "no markers");
    }

    #[test]
    fn reuters_signoff_is_cut() {
        assert_eq!(
            strip_reuters_signoff("Prices rose.\n Reuter\n").as_deref(),
            Some("Prices rose.")
        );
        assert_eq!(strip_reuters_signoff("Reuters said so."), None);
    }

    #[test]
    fn usenet_post_keeps_only_the_authors_words() {
        let post = "From: a@b.c (A)\nSubject: Re: q\nArticle-I.D.: x.1\nLines: 9\n\nIn article <x@y> b@c writes:\n> quoted\nMy answer.\nbegin 644 f.zip\nM86%A\nend\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\nMore.\n-- \nA, sig\n";
        assert_eq!(strip_usenet(post).as_deref(), Some("My answer.\nMore."));
        assert_eq!(strip_usenet("Note: not a post\nbody"), None);
    }
}
