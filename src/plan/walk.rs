//! Walking a rule's tree: every entry under its path (symlinks never followed), with its
//! metadata as seen when selected, minus the rule's excludes (and, for glob rules, only matches).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::model::{Entry, EntryKind, RootLink};
use crate::error::{IoContext, Result};
use crate::manifest::Rule;

impl Entry {
    /// An entry from its metadata (a symlink's target is read).
    ///
    /// # Errors
    /// Not a file, directory or symlink (devices, fifos, sockets); the link cannot be read.
    pub fn from_meta(rel: PathBuf, meta: &fs::Metadata, abs: &Path, rule: usize) -> Result<Entry> {
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            EntryKind::Symlink {
                target: fs::read_link(abs).at(abs)?,
            }
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File { size: meta.len() }
        } else {
            return Err(crate::Error::invalid(
                abs,
                "not a regular file, directory or symlink; refusing to carry it",
            ));
        };
        Ok(Entry {
            rel,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            mtime: meta.mtime(),
            rule,
        })
    }

    /// Bytes of a regular file; 0 otherwise.
    pub fn size(&self) -> u64 {
        match self.kind {
            EntryKind::File { size } => size,
            _ => 0,
        }
    }
}

/// The first symlink on the way to `rel` (the rule's root itself or one of its ancestors inside
/// the pack): operators move `repository/data` or `solr/data` to a bigger disk and leave a link.
pub(super) fn root_link(root: &Path, rel: &Path) -> Option<RootLink> {
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        prefix.push(c);
        let abs = root.join(&prefix);
        if fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(RootLink {
                link: prefix,
                target: fs::read_link(&abs).unwrap_or_default(),
                resolved: fs::canonicalize(&abs).ok(),
            });
        }
    }
    None
}

/// Walks `rel` under `root`, applying the rule's excludes and, for glob rules, its includes. The
/// root path itself is an entry when it is a directory. A symlink at the rule's root (or above
/// it) is followed, so the state it points to is carried; symlinks below it never are.
pub(super) fn walk(
    root: &Path,
    rel: &Path,
    rule: &Rule,
    idx: usize,
    include: Option<&globset::GlobSet>,
) -> Result<Vec<Entry>> {
    let base = root.join(rel);
    let mut out = Vec::new();
    let Ok(meta) = fs::metadata(&base).or_else(|_| fs::symlink_metadata(&base)) else {
        return Ok(out);
    };
    if !meta.is_dir() {
        if include.is_none() {
            out.push(Entry::from_meta(rel.to_path_buf(), &meta, &base, idx)?);
        }
        return Ok(out);
    }
    let mut it = walkdir::WalkDir::new(&base)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(ent) = it.next() {
        let ent = ent.map_err(|e| {
            let p = e.path().unwrap_or(&base).to_path_buf();
            crate::Error::Io {
                path: p,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            }
        })?;
        let inner = ent
            .path()
            .strip_prefix(&base)
            .expect("walkdir yields children of base");
        if !inner.as_os_str().is_empty() && rule.is_excluded(inner) {
            if ent.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if let Some(inc) = include {
            // glob rules carry matching files (and links), not directories
            if ent.file_type().is_dir() || !inc.is_match(inner) {
                continue;
            }
        }
        // The root's own link is followed (see above); walkdir reports the link itself.
        let meta = if inner.as_os_str().is_empty() {
            Ok(meta.clone())
        } else {
            ent.metadata()
        };
        let meta = meta.map_err(|e| crate::Error::Io {
            path: ent.path().to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("metadata")),
        })?;
        let rel_path = if inner.as_os_str().is_empty() {
            rel.to_path_buf()
        } else {
            rel.join(inner)
        };
        out.push(Entry::from_meta(rel_path, &meta, ent.path(), idx)?);
    }
    Ok(out)
}
