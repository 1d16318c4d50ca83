//! Moving entries between the pack and its transaction directory, durably, and keeping the
//! pack's directory mtimes exactly "before" or "after": what the swap, the rollback, the revert
//! and `--continue` share. Every move is a rename on one filesystem followed by an fsync of the
//! pack-side directory; a failed fsync is an error like any other.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::transplant::record::{Record, Unit};

/// Whether anything (a dangling symlink included) is at `p`.
pub fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Renames `from` to `to`, creating `to`'s parents first.
///
/// # Errors
/// The parents cannot be created or the rename failed (the message names both paths).
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    fs::rename(from, to).map_err(|e| Error::Io {
        path: from.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("moving to {}: {e}", to.display())),
    })
}

/// Fsyncs the directory holding `p`, so that a rename there is durable.
///
/// # Errors
/// The directory cannot be opened or its fsync failed.
pub fn sync_parent(p: &Path) -> Result<()> {
    match p.parent() {
        Some(parent) => fsutil::fsync_dir(parent),
        None => Ok(()),
    }
}

/// Moves `from` to `to` and makes it durable in the directory of `pack_side` (the pack's end
/// of the move).
///
/// # Errors
/// See [`rename`] and [`sync_parent`].
pub fn move_synced(from: &Path, to: &Path, pack_side: &Path) -> Result<()> {
    rename(from, to)?;
    sync_parent(pack_side)
}

/// Moves `from` back to `to` when `from` exists and `to` does not: the idempotent step of every
/// undo (after a crash either may already have happened).
///
/// # Errors
/// See [`move_synced`].
pub fn move_back(from: &Path, to: &Path, pack_side: &Path) -> Result<()> {
    if exists(from) && !exists(to) {
        move_synced(from, to, pack_side)?;
    }
    Ok(())
}

/// The mtime (seconds, nanoseconds) of `p`, not following symlinks.
pub fn mtime_of(p: &Path) -> Option<(i64, u32)> {
    fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec() as u32))
}

/// Sets the mtime of `p` exactly.
///
/// # Errors
/// It cannot be set.
pub fn set_mtime_exact(p: &Path, t: (i64, u32)) -> Result<()> {
    fsutil::set_mtime_ns(p, t.0, t.1)
}

/// The nearest existing ancestor directory of `rel` in the pack (relative; "" is the root).
pub fn nearest_existing_parent(pack: &Path, rel: &str) -> String {
    let mut cur = Path::new(rel).parent();
    while let Some(c) = cur {
        if c.as_os_str().is_empty() || pack.join(c).is_dir() {
            return c.to_string_lossy().into_owned();
        }
        cur = c.parent();
    }
    String::new()
}

/// The directories a swap of `units` modifies, with their mtimes now.
pub fn parents_of(pack: &Path, units: &[Unit]) -> Vec<(String, i64, u32)> {
    let mut m: BTreeMap<String, (i64, u32)> = BTreeMap::new();
    for u in units {
        for rel in std::iter::once(&u.dst).chain(u.also_remove.iter()) {
            let p = nearest_existing_parent(pack, rel);
            if let Some(t) = mtime_of(&pack.join(&p)) {
                m.insert(p, t);
            }
        }
    }
    m.into_iter().map(|(k, (s, n))| (k, s, n)).collect()
}

/// Gives the directories of [`parents_of`] their recorded mtimes back (EPERM, a directory the
/// caller does not own, is skipped: not worth failing over).
///
/// # Errors
/// An mtime cannot be set.
pub fn restore_parents(pack: &Path, parents: &[(String, i64, u32)]) -> Result<()> {
    for (rel, s, n) in parents {
        let p = pack.join(rel);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            match set_mtime_exact(&p, (*s, *n)) {
                // Not the directory's owner: it keeps its mtime (a warning, not a failure).
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// Removes the directories the journal says the swap created, deepest (latest) first.
///
/// # Errors
/// A created directory cannot be removed (not empty, say): the pack would not be exactly as
/// before, so this is reported, naming the directory.
pub fn remove_created_dirs(pack: &Path, records: &[Record]) -> Result<()> {
    for r in records.iter().rev() {
        if let Record::Mkdir { rel } = r {
            let p = pack.join(rel);
            if p.is_dir() {
                fs::remove_dir(&p).map_err(|e| Error::Io {
                    path: p.clone(),
                    source: std::io::Error::new(
                        e.kind(),
                        format!("cannot remove the directory the transplant created: {e}"),
                    ),
                })?;
            }
        }
    }
    Ok(())
}
