//! Decontamination: an index of every word n-gram of the evaluation documents.
//!
//! A training document that shares one n-gram (13 words by default, as in GPT-3)
//! with an evaluation document is contaminated. Evaluation documents shorter than
//! n words (a sentiment sentence, a tweet) decontaminate only by exact normalised
//! match: a training document is contaminated by one only when its whole text, after
//! normalisation, is that sentence. Matching them as a run of words anywhere would
//! reject every training text that happens to say "profit rose sharply".
//!
//! Optionally, n-grams found in more than `max_eval_docs` distinct evaluation
//! documents are ignored: such n-grams are templates and legal boilerplate (the
//! safe-harbour paragraph of every earnings call), not leaked test text.

use std::collections::HashMap;

use crate::text::{ngram_hash, word_hashes};

pub struct NgramIndex {
    n: usize,
    /// n-gram hash -> (first evaluation document holding it, number of evaluation
    /// documents holding it).
    grams: HashMap<u64, (u32, u32)>,
    max_eval_docs: Option<u32>,
    /// Whole-text hash of each evaluation document shorter than n words -> the first
    /// such document.
    short: HashMap<u64, u32>,
}

impl NgramIndex {
    /// An index of word `n`-grams; with `max_eval_docs`, n-grams held by more
    /// evaluation documents than that are not matched.
    pub fn new(n: usize, max_eval_docs: Option<u32>) -> Self {
        NgramIndex {
            n: n.max(1),
            grams: HashMap::new(),
            max_eval_docs,
            short: HashMap::new(),
        }
    }

    /// Indexes evaluation document number `doc`.
    pub fn add(&mut self, doc: u32, text: &str) {
        let words = word_hashes(text);
        if words.is_empty() {
            return;
        }
        if words.len() < self.n {
            self.short.entry(ngram_hash(&words)).or_insert(doc);
            return;
        }
        let mut grams: Vec<u64> = words.windows(self.n).map(ngram_hash).collect();
        grams.sort_unstable();
        grams.dedup();
        for gram in grams {
            self.grams.entry(gram).or_insert((doc, 0)).1 += 1;
        }
    }

    /// n-grams ignored as boilerplate (held by more than `max_eval_docs` documents).
    pub fn boilerplate(&self) -> usize {
        self.max_eval_docs.map_or(0, |max| {
            self.grams.values().filter(|(_, df)| *df > max).count()
        })
    }

    /// n-grams and whole short documents indexed.
    pub fn len(&self) -> usize {
        self.grams.len() + self.short.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first evaluation document `text` shares an n-gram with, or, for a text
    /// shorter than n words, the short evaluation document it equals after
    /// normalisation.
    pub fn first_match(&self, text: &str) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        let words = word_hashes(text);
        if words.len() < self.n {
            return self.short.get(&ngram_hash(&words)).copied();
        }
        words
            .windows(self.n)
            .find_map(|g| match self.grams.get(&ngram_hash(g)) {
                Some(&(doc, df)) if self.max_eval_docs.is_none_or(|max| df <= max) => Some(doc),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_13_gram_or_an_exact_short_eval_text_is_found() {
        let mut index = NgramIndex::new(13, None);
        let eval =
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
        index.add(0, eval);
        index.add(1, "Profit rose sharply.");
        let leaked = format!("Intro words here. {} and more", &eval[4..]); // 13 of its words
        assert_eq!(index.first_match(&leaked), Some(0));
        // A short evaluation text contaminates only by exact normalised match.
        assert_eq!(index.first_match("PROFIT rose  sharply!"), Some(1));
        assert_eq!(
            index.first_match("The report said profit ROSE sharply, again."),
            None
        );
        assert_eq!(
            index.first_match("one two three four five six seven eight nine ten eleven twelve"),
            None
        );
        assert_eq!(index.first_match("profit rose"), None);
    }

    #[test]
    fn ngrams_shared_by_many_evaluation_documents_are_boilerplate() {
        let disclaimer = "actual results may differ materially from those expressed in these forward looking statements today";
        let mut index = NgramIndex::new(13, Some(2));
        for doc in 0..3 {
            index.add(doc, &format!("call number {doc} begins. {disclaimer}"));
        }
        index.add(3, "a unique test sentence about the quarterly margin of the bakery division that nobody else wrote");
        assert_eq!(
            index.first_match(&format!("Our own filing: {disclaimer}.")),
            None
        );
        assert!(index.boilerplate() > 0);
        let leak = "the quarterly margin of the bakery division that nobody else wrote";
        assert_eq!(
            index.first_match(&format!("we copied: a unique test sentence about {leak}")),
            Some(3)
        );
    }
}
