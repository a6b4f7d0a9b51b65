//! One run at a time per work directory.
//!
//! The lock is an OS advisory lock (`flock`) on `WORKDIR/lock`, which also records
//! who holds it. The kernel drops the lock when its holder dies, however it dies, so
//! a lock file left by a killed run is simply taken over (and reported as such).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct WorkdirLock {
    _file: File,
    /// The holder recorded by a previous run that died without releasing it.
    pub taken_over_from: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another dapt run holds the lock on {path} ({holder}); wait for it to finish, or stop that process"
    )]
    Held { path: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WorkdirLock {
    pub fn acquire(workdir: &Path) -> Result<WorkdirLock, LockError> {
        let path = workdir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(workdir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut previous = String::new();
        // An unreadable holder record only degrades the message.
        let _ = file.read_to_string(&mut previous);
        let previous = previous.trim().to_string();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    path,
                    holder: if previous.is_empty() {
                        "holder unknown".into()
                    } else {
                        previous
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        crate::fault::hit("lock-handover", "");
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(
            file,
            "pid {} since {}",
            std::process::id(),
            crate::manifest::now_stamp()
        )
        .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(WorkdirLock {
            _file: file,
            taken_over_from: (!previous.is_empty()).then_some(previous),
        })
    }
}

/// A blocking exclusive `flock` on a file, for short critical sections between the
/// tasks of one stage on a cluster (they share the stage's `partial/`); released on drop.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn exclusive(path: &Path) -> std::io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        file.lock().map_err(|e| {
            std::io::Error::new(e.kind(), format!("locking {}: {e}", path.display()))
        })?;
        Ok(FileLock { _file: file })
    }
}

impl Drop for WorkdirLock {
    fn drop(&mut self) {
        // An empty record tells the next run that nobody died holding the lock.
        let _ = self._file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_lock_is_clean() {
        let dir = std::env::temp_dir().join(format!("dapt-lock-{}", std::process::id()));
        let first = WorkdirLock::acquire(&dir).unwrap();
        assert!(first.taken_over_from.is_none());
        let err = WorkdirLock::acquire(&dir).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = WorkdirLock::acquire(&dir).unwrap();
        assert!(again.taken_over_from.is_none());
        drop(again);
        std::fs::write(dir.join("lock"), "pid 999999999 since 0\n").unwrap();
        let taken = WorkdirLock::acquire(&dir).unwrap();
        assert_eq!(
            taken.taken_over_from.as_deref(),
            Some("pid 999999999 since 0")
        );
        drop(taken);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
