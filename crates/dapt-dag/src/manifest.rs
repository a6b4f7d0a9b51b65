//! Stage manifests and failure records: the only state that says a stage is done.
//!
//! Layout of a stage's directory, `WORKDIR/stages/NAME/`:
//!
//! | path            | written                                  | meaning                                   |
//! |-----------------|------------------------------------------|-------------------------------------------|
//! | `manifest.json` | last, atomically, after a successful run | the stage is complete (if it still matches) |
//! | `failed.json`   | when a run fails                          | the last attempt's error                  |
//! | `out/`          | renamed into place just before the manifest | the stage's managed outputs             |
//! | `partial/`      | during a run                             | work of an unfinished attempt: `fingerprint`, `out/`, `shards/PHASE/N.json` (each finished shard and its result) |
//!
//! Both JSON files are deleted when an attempt starts, so a killed run never leaves a
//! manifest that describes outputs it did not finish.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fingerprint::{FileStamp, Ingredients};
use crate::fsutil::atomic_write;

/// Paths of one stage's bookkeeping inside the work directory.
#[derive(Debug, Clone)]
pub struct StageDir {
    pub root: PathBuf,
}

impl StageDir {
    pub fn new(workdir: &Path, stage: &str) -> Self {
        StageDir {
            root: workdir.join("stages").join(stage),
        }
    }
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    pub fn failure(&self) -> PathBuf {
        self.root.join("failed.json")
    }
    /// Zeros written at the start of an attempt, so that `failed.json` can still be
    /// recorded on a full disk: it is written over them and renamed into place.
    fn failure_reserve(&self) -> PathBuf {
        self.partial().join("failure.reserve")
    }
    /// Writes [`Self::failure_reserve`] (best effort: a disk already full fails later,
    /// with its own error).
    pub fn reserve_failure_space(&self) {
        let _ = std::fs::write(self.failure_reserve(), [0u8; FAILURE_RESERVE]);
    }
    /// Managed outputs of the last successful run.
    pub fn out(&self) -> PathBuf {
        self.root.join("out")
    }
    /// Measurements of the last successful run (wall times, throughput): kept beside
    /// `out/`, not in it, so they are not part of the output digest and a rerun that
    /// reproduces the outputs leaves its dependents fresh.
    pub fn timing(&self) -> PathBuf {
        self.root.join("timing")
    }
    pub fn partial(&self) -> PathBuf {
        self.root.join("partial")
    }
    pub fn partial_timing(&self) -> PathBuf {
        self.partial().join("timing")
    }
    pub fn partial_out(&self) -> PathBuf {
        self.partial().join("out")
    }
    pub fn partial_fingerprint(&self) -> PathBuf {
        self.partial().join("fingerprint")
    }
    pub fn shard_marks(&self) -> PathBuf {
        self.partial().join("shards")
    }

    pub fn read_manifest(&self) -> io::Result<Option<Manifest>> {
        read_json(&self.manifest())
    }
    pub fn read_failure(&self) -> io::Result<Option<Failure>> {
        read_json(&self.failure())
    }
    /// Number of finished shards of an interrupted attempt, over all phases.
    pub fn finished_shards(&self) -> usize {
        let phases = std::fs::read_dir(self.shard_marks())
            .into_iter()
            .flatten()
            .flatten();
        phases.map(|p| count_marks(&p.path())).sum()
    }
}

/// Finished-shard records in `dir` (not the temporary files of one being written).
pub fn count_marks(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e} (delete it to rerun the stage)", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Counts every document-dropping stage reports: `input == kept + rejected` must hold.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Conservation {
    pub input: u64,
    pub kept: u64,
    pub rejected: u64,
}

impl Conservation {
    /// `Err` naming the difference unless every document read was written, kept or
    /// rejected. Kinds check each shard before it is marked finished (so a bad shard
    /// is redone, not resumed); the runner checks the stage's sum before committing.
    pub fn check(&self) -> Result<(), String> {
        let out = self.kept + self.rejected;
        if self.input == out {
            return Ok(());
        }
        Err(format!(
            "documents not accounted for: {} read but {} written ({} kept + {} rejected), {} {}",
            self.input,
            out,
            self.kept,
            self.rejected,
            self.input.abs_diff(out),
            if self.input > out { "lost" } else { "extra" }
        ))
    }
}

/// What a completed stage leaves behind, written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub dapt_version: String,
    pub stage: String,
    pub fingerprint: String,
    /// Everything the fingerprint was computed from, so `status` can say what changed.
    pub ingredients: Ingredients,
    pub outputs: Vec<FileStamp>,
    /// Digest of `outputs`; downstream fingerprints include it.
    pub output_digest: String,
    #[serde(default)]
    pub counts: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conservation: Option<Conservation>,
    pub started_at: String,
    pub seconds: f64,
    /// Peak resident memory of the dapt process when the stage finished (stages
    /// running in parallel share it), from `/proc/self/status`.
    #[serde(default)]
    pub peak_rss_mb: Option<f64>,
    /// Shards the stage was split into, and how many an interrupted attempt had finished.
    pub shards: usize,
    pub shards_resumed: usize,
}

impl Manifest {
    pub fn write(&self, dir: &StageDir) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        atomic_write(&dir.manifest(), &json)
    }
}

/// The error of a stage's last failed attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub stage: String,
    pub fingerprint: String,
    pub error: String,
    pub at: String,
}

/// Bytes kept for `failed.json` on a full disk (an error longer than this is cut).
const FAILURE_RESERVE: usize = 16 << 10;

impl Failure {
    /// Writes `failed.json`; on a full disk, over the space the attempt reserved.
    pub fn write(&self, dir: &StageDir) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let Err(full) = atomic_write(&dir.failure(), &json) else {
            return Ok(());
        };
        let mut record = self.clone();
        let json = loop {
            let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
            if json.len() <= FAILURE_RESERVE {
                break json;
            }
            let keep = record.error.floor_char_boundary(record.error.len() * 3 / 4);
            record.error.truncate(keep);
        };
        let reserve = dir.failure_reserve();
        let over_reserve = || -> io::Result<()> {
            use std::io::Write;
            // Overwriting allocated bytes and shrinking needs no new blocks.
            let mut file = std::fs::OpenOptions::new().write(true).open(&reserve)?;
            file.write_all(&json)?;
            file.set_len(json.len() as u64)?;
            file.sync_all()?;
            std::fs::rename(&reserve, dir.failure())
        };
        over_reserve().map_err(|_| full)
    }
}

/// Seconds since the Unix epoch, as text (no time-zone crate needed for a log stamp).
pub fn now_stamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Peak resident set size of this process in MB (Linux `VmHWM`), if known.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
