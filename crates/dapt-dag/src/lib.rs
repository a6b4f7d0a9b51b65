//! dapt-dag: the pipeline engine. It owns `pipeline.toml` (schema and validation),
//! the stage graph, fingerprints and manifests, the work-directory lock and the
//! scheduler. It knows nothing of text, tokens or models: those live in stage
//! kinds, which implement [`StageKind`] and are registered by the binary.
//!
//! Start with [`fingerprint`] for what makes a stage stale, and [`runner`] for how
//! an attempt runs and commits its outputs.

pub mod config;
pub mod fault;
pub mod fingerprint;
pub mod fsutil;
pub mod graph;
pub mod kind;
pub mod lock;
pub mod manifest;
pub mod panics;
pub mod runner;
pub mod slurm;

pub use config::{ConfigErrors, Pipeline, StageSpec};
pub use kind::{
    Observer, ParamError, Rank, Registry, RunReport, ShardStats, ShardsPending, StageContext,
    StageKind, parse_params,
};
pub use manifest::{Conservation, Manifest};
pub use runner::{Engine, Outcome, RunError, RunOptions, RunSummary, State, TaskOutcome};
