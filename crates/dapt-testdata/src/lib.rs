//! Locates the corpus mirror for tests, the same way for every crate.
//!
//! `cargo test` runs each test binary in its own crate's directory, so a relative
//! `DAPT_DATA_MIRROR` (CI sets `../shared/data`, relative to the checkout) must be
//! resolved against the workspace root, not the working directory. Tests need the
//! real corpora: a missing mirror is a failure, never a silent skip.

use std::path::{Path, PathBuf};

pub mod fuzz;

/// The workspace root (the folder holding `pipeline.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// `$DAPT_DATA_MIRROR` (relative paths taken from the workspace root), else
/// `<workspace>/../shared/data`; canonical. Panics with what to do when the folder
/// does not hold the corpora.
pub fn mirror() -> PathBuf {
    let root = workspace_root();
    let dir = match std::env::var_os("DAPT_DATA_MIRROR") {
        Some(dir) => root.join(dir),
        None => root.join("../shared/data"),
    };
    assert!(
        dir.join("MANIFEST.sha256").is_file(),
        "no corpus mirror at {} (no MANIFEST.sha256); set DAPT_DATA_MIRROR to the folder \
         holding financial/ and general/ (absolute, or relative to the workspace root)",
        dir.display()
    );
    dir.canonicalize().expect("the mirror folder exists")
}
