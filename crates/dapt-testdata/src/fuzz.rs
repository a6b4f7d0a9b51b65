//! What the fuzz tests of every crate share: how many cases and which seed
//! (`DAPT_FUZZ_CASES`, `DAPT_FUZZ_SEED`), the proptest configuration, and the
//! byte-level mutations of real files (flips, insertions of format tokens, cuts,
//! duplicated, dropped and swapped lines).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngSeed};

/// Cases per property: `DAPT_FUZZ_CASES`, else 400 (`just fuzz` sets tens of thousands).
pub fn cases() -> u32 {
    std::env::var("DAPT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

/// The fixed seed, or `DAPT_FUZZ_SEED` to draw other cases.
pub fn seed() -> u64 {
    std::env::var("DAPT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0da9_7f22)
}

/// A proptest configuration of `cases` cases from [`seed`], persisting nothing.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed()),
        ..Config::default()
    }
}

/// One edit of a file's bytes.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    DuplicateLine(Index),
    DropLine(Index),
    SwapLines(Index, Index),
}

/// Mutations whose insertions are mostly tokens of the format (`dict`: delimiters,
/// quotes, tags, keys), sometimes arbitrary bytes.
pub fn mutation(dict: Vec<Vec<u8>>) -> impl Strategy<Value = Mutation> {
    let payload = prop_oneof![
        4 => select(dict),
        1 => vec(any::<u8>(), 1..6),
    ];
    prop_oneof![
        3 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        4 => (any::<Index>(), payload).prop_map(|(i, p)| Mutation::Insert(i, p)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => any::<Index>().prop_map(Mutation::DuplicateLine),
        1 => any::<Index>().prop_map(Mutation::DropLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

/// `(start, end)` of every line, its `\n` included; a last line without one too.
pub fn line_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (at, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        spans.push((start, at + 1));
        start = at + 1;
    }
    if start < bytes.len() {
        spans.push((start, bytes.len()));
    }
    spans
}

/// `bytes` after `mutations`, in order.
pub fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let lines = line_spans(&bytes);
        match m {
            Mutation::Flip(i, x) if len > 0 => bytes[i.index(len)] ^= x,
            Mutation::Insert(i, payload) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, payload.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Mutation::DuplicateLine(i) if !lines.is_empty() => {
                let (s, e) = lines[i.index(lines.len())];
                let mut line = bytes[s..e].to_vec();
                if line.last() != Some(&b'\n') {
                    line.insert(0, b'\n');
                }
                bytes.splice(e..e, line);
            }
            Mutation::DropLine(i) if !lines.is_empty() => {
                let (s, e) = lines[i.index(lines.len())];
                bytes.drain(s..e);
            }
            Mutation::SwapLines(a, b) if !lines.is_empty() => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                let (a, b) = (lines[a.min(b)], lines[a.max(b)]);
                if a != b {
                    let mut out = bytes[..a.0].to_vec();
                    out.extend_from_slice(&bytes[b.0..b.1]);
                    out.extend_from_slice(&bytes[a.1..b.0]);
                    out.extend_from_slice(&bytes[a.0..a.1]);
                    out.extend_from_slice(&bytes[b.1..]);
                    bytes = out;
                }
            }
            _ => {}
        }
    }
    bytes
}
