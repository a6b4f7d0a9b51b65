//! dapt-dedup: finding duplicated and contaminated text.
//!
//! - [`text`]: the normalisation every comparison shares (case, punctuation and
//!   whitespace folded) and the exact-duplicate key.
//! - [`minhash`]: MinHash signatures over word n-gram shingles and LSH band keys.
//! - [`clusters`]: union-find over LSH buckets and exact keys, and the deterministic
//!   choice of which document of a cluster survives.
//! - [`external`]: the same clusters beyond one process's memory: exact keys and band
//!   keys sorted in bounded runs on disk, buckets merged into candidate pairs.
//! - [`decontam`]: an n-gram index of evaluation text, to find training documents
//!   that share an n-gram with it.
//! - [`store`]: the compact signature file between the two passes of the stage.
//! - [`quality`]: LSH decisions against exact Jaccard similarity, for precision and
//!   recall at the threshold.

pub mod clusters;
pub mod decontam;
pub mod external;
pub mod minhash;
pub mod quality;
pub mod store;
pub mod text;

pub use clusters::{Cluster, Clusters, Decision, Member, decisions, resolve, resolve_roots};
pub use decontam::NgramIndex;
pub use minhash::{MinHashConfig, MinHasher, Signature};
