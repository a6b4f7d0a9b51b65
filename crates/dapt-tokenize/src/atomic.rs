//! Write-to-temporary-then-rename (the convention of dapt's document shards: `PATH.tmp`,
//! fsync, rename, fsync the folder), so a reader never sees a half-written file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The sibling a file is written to before it is renamed into place.
pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Creates `PATH.tmp` (and missing parent folders).
pub(crate) fn create_temporary(path: &Path) -> Result<(File, PathBuf)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    let temporary = temporary_path(path);
    let file = File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    Ok((file, temporary))
}

/// Makes `temporary` durable and moves it to `path`.
pub(crate) fn commit(file: &File, temporary: &Path, path: &Path) -> Result<()> {
    file.sync_all()
        .with_context(|| format!("cannot fsync {}", temporary.display()))?;
    std::fs::rename(temporary, path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            path.display()
        )
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Makes the rename itself durable; not every platform can open a folder.
        if let Ok(folder) = File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let (mut file, temporary) = create_temporary(path)?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    commit(&file, &temporary, path)
}
