//! The stage kinds this binary knows: one module per kind, plus the document-shard
//! plumbing the data kinds share.

mod clean;
mod command;
mod continued;
mod dedup;
mod docs;
mod evaluate;
mod ingest;
mod model;
pub mod model_card;
mod pretrain;
mod report;
mod split;
mod tokenize;
mod tokenizer;
pub mod training;

use dapt_dag::Registry;

pub use docs::param_error;
pub use tokenizer::TOKENIZER_FILE;

/// Every stage kind, registered, with the corpus schema.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(command::CommandKind)
        .register(ingest::IngestKind)
        .register(clean::CleanKind)
        .register(split::SplitKind)
        .register(dedup::DedupKind)
        .register(tokenizer::TokenizerKind)
        .register(tokenize::TokenizeKind)
        .register(pretrain::PretrainKind)
        .register(continued::ContinueKind)
        .register(model::ModelKind)
        .register(evaluate::EvaluateKind)
        .register(report::ReportKind)
        .set_corpus_check(ingest::check_corpus);
    registry
}
