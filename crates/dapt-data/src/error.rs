//! Errors: [`FileError`] for a problem with one input file as a whole,
//! [`DataError`] for everything a caller of this crate sees.

use std::path::PathBuf;

/// A file that cannot be read as a whole. Per-record problems are not errors:
/// they become [`crate::Rejected`] records.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("I/O error: {0} (a truncated .gz/.zst shows up here as an unexpected end of file)")]
    Io(#[from] std::io::Error),
    #[error("looks binary (NUL byte at decompressed offset {offset}); this reader expects text")]
    Binary { offset: usize },
    #[error("line {line}: {message}")]
    Parse { line: u64, message: String },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Invalid(String),
}

impl FileError {
    /// Short machine-readable kind, used as the `reason` of a quarantined file.
    pub fn reason(&self) -> &'static str {
        match self {
            FileError::Io(_) => "file_error:io",
            FileError::Binary { .. } => "file_error:binary",
            FileError::Parse { .. } => "file_error:parse",
            FileError::Parquet(_) => "file_error:parquet",
            FileError::Invalid(_) => "file_error:invalid",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("corpus `{corpus}`: {message}")]
    Config { corpus: String, message: String },
    #[error("glob `{glob}` (under {root}) matched no file; check the path or the data root")]
    NoMatch { glob: String, root: PathBuf },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("shard {}: {message}", path.display())]
    Shard { path: PathBuf, message: String },
}
