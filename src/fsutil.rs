//! Filesystem helpers shared by every writer: temp-beside-target + fsync + rename, directory
//! fsync, and restoring mode/mtime/ownership on created entries.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Fsyncs a directory so that renames and creations in it are durable.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync the directory.
///
/// # Errors
/// Creating, writing, syncing or renaming the temp file failed (the target is untouched).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".carryover-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(tmp.path())?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .at(tmp.path())?;
    tmp.as_file().sync_all().at(tmp.path())?;
    tmp.persist(path).map_err(|e| e.error).at(path)?;
    fsync_dir(dir)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Sets mtime (seconds) without following symlinks.
///
/// # Errors
/// The OS refused (the error names the path).
pub fn set_mtime(path: &Path, mtime: i64) -> Result<()> {
    set_mtime_ns(path, mtime, 0)
}

/// Sets mtime (and atime) to `secs` + `nsec` without following symlinks.
///
/// # Errors
/// The OS refused (the error names the path).
pub fn set_mtime_ns(path: &Path, secs: i64, nsec: u32) -> Result<()> {
    let t = filetime::FileTime::from_unix_time(secs, nsec);
    filetime::set_symlink_file_times(path, t, t).at(path)
}

/// Flushes the whole filesystem holding `path` (one call instead of an fsync per staged file).
///
/// # Errors
/// The path cannot be opened or the filesystem synced.
pub fn syncfs(path: &Path) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    let f = File::open(path).at(path)?;
    // SAFETY: a valid open fd.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).at(path);
    }
    Ok(())
}
