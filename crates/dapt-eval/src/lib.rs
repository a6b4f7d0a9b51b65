//! dapt-eval: what a trained dapt model knows, measured the same way for every model.
//!
//! - [`lm`]: per-domain language-modelling scores over token documents — mean token loss,
//!   perplexity and bits per byte (lm-evaluation-harness's definition: summed NLL of the text
//!   in bits over its UTF-8 bytes), long documents in rolling windows, short ones batched.
//! - [`probe`]: a linear probe (multinomial logistic regression on standardised frozen
//!   features, L2, deterministic accelerated full-batch gradient descent) in plain Rust.
//! - [`metrics`]: accuracy, macro-F1 and the majority-class baseline.
//! - [`sentiment`]: a labelled sentiment task scored three ways: probe on pooled features,
//!   zero-shot label likelihood after a prompt (decoders), and the majority baseline.
//! - [`sample`]: deterministic, seed-keyed sampling of documents by id.
//! - [`masked`]: an encoder's per-domain masked-token loss (the same seeded masks for every
//!   model) and pseudo-perplexity.
//! - [`span`]: an encoder-decoder's per-domain span-corruption loss (the same seeded spans
//!   for every model).

pub mod lm;
pub mod masked;
pub mod metrics;
pub mod probe;
pub mod sample;
pub mod sentiment;
pub mod span;

pub use lm::{LmEvalConfig, LmScore, score_documents};
pub use masked::{MaskedLmConfig, MaskedScore, masked_progress_total, score_masked};
pub use metrics::{Metrics, classification_metrics, majority_class};
pub use probe::{LinearProbe, ProbeConfig};
pub use sample::{hash_order, take_until_tokens};
pub use sentiment::{
    SentimentConfig, SentimentExample, SentimentScores, SentimentTask, evaluate_sentiment,
    sentiment_progress_total, zero_shot_prompt, zero_shot_scores,
};
pub use span::{SpanEvalConfig, SpanScore, score_span};
