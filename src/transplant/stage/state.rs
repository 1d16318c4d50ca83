//! What staging shares between its two sources: the [`Staged`] record of each placed entry,
//! the [`Router`] from source paths to new-pack paths, the validation of every source entry (no
//! absolute paths, no `..`, nothing through a symlink, no link pointing outside the pack, no
//! duplicates) and the bookkeeping of a run ([`StageState`]: directories get their modes and
//! mtimes last).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::beneath::Beneath;
use crate::archive::format::EntryType;
use crate::error::{Error, Result};
use crate::transplant::plan::RuleDecision;

/// One entry placed in staging: what the pack must hold at `dst` after the swap. Recorded in
/// `plan.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    /// Path in the new pack.
    pub dst: String,
    /// File, directory or symlink.
    pub kind: EntryType,
    /// Size in bytes (files).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Content digest (files), lowercase hex.
    pub sha256: Option<String>,
    /// Symlink target.
    pub link: Option<String>,
    /// Index into the decisions.
    pub rule: usize,
}

/// Maps source paths to the decision that carries them and to their place in the new pack.
pub struct Router<'a> {
    decisions: &'a [RuleDecision],
}

impl<'a> Router<'a> {
    /// A router over the carried rules of `decisions`.
    pub fn new(decisions: &'a [RuleDecision]) -> Router<'a> {
        Router { decisions }
    }

    /// (decision index, destination) for a source path carried by some rule.
    pub fn route(&self, path: &str) -> Option<(usize, String)> {
        for (i, d) in self.decisions.iter().enumerate() {
            if !d.carried() {
                continue;
            }
            let (Some(src), Some(dst)) = (&d.src, &d.dst) else {
                continue;
            };
            if path == src {
                return Some((i, dst.clone()));
            }
            if let Some(rest) = path
                .strip_prefix(src.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                return Some((i, format!("{dst}/{rest}")));
            }
        }
        None
    }
}

/// A symlink at `at` (pack-relative) pointing to `target` must stay inside the pack (judged
/// by [`crate::relpath::link_stays_inside`]).
///
/// # Errors
/// Why the link is refused: absolute, or climbing above the pack's root.
pub fn check_link(at: &str, target: &str) -> std::result::Result<(), String> {
    let t = Path::new(target);
    if t.is_absolute() {
        return Err(format!(
            "symlink to absolute path {target} points outside the pack"
        ));
    }
    if !crate::relpath::link_stays_inside(Path::new(at), t) {
        return Err(format!("symlink to {target} points outside the pack"));
    }
    Ok(())
}

/// A staged directory whose mode and mtime are set once everything below it exists.
struct PendingDir {
    rel: String,
    mode: u32,
    mtime: i64,
    nsec: u32,
}

/// Shared bookkeeping of a staging run.
pub struct StageState {
    /// The stage directory.
    pub root: PathBuf,
    /// Where every write goes (None: a dry run, which checks and writes nothing).
    pub dir: Option<Beneath>,
    /// Every entry placed so far.
    pub staged: Vec<Staged>,
    dirs: Vec<PendingDir>,
    links: BTreeSet<String>,
    seen: BTreeSet<String>,
    /// Running as root: ownership is restored too.
    pub as_root: bool,
}

impl StageState {
    /// A run staging into `root` (which must exist), or, for `None`, a dry run that checks
    /// every entry and writes nothing.
    ///
    /// # Errors
    /// `root` cannot be opened.
    pub fn new(root: Option<&Path>) -> Result<StageState> {
        Ok(StageState {
            root: root.map(Path::to_path_buf).unwrap_or_default(),
            dir: root.map(Beneath::open_cached).transpose()?,
            staged: Vec::new(),
            dirs: Vec::new(),
            links: BTreeSet::new(),
            seen: BTreeSet::new(),
            // SAFETY: geteuid has no preconditions.
            as_root: unsafe { libc::geteuid() } == 0,
        })
    }

    /// Validates one source entry (`origin` is the archive or old pack, for the message).
    ///
    /// # Errors
    /// `Invalid`, naming the entry and what is wrong with it.
    pub fn admit(
        &mut self,
        origin: &Path,
        path: &str,
        kind: EntryType,
        link: Option<&str>,
    ) -> Result<()> {
        let bad = |m: String| Error::invalid(origin, format!("entry {path:?} refused: {m}"));
        crate::relpath::check(path.as_bytes()).map_err(bad)?;
        if !self.seen.insert(path.to_string()) {
            return Err(bad("duplicate entry".into()));
        }
        let mut anc = Path::new(path).parent();
        while let Some(a) = anc.filter(|a| !a.as_os_str().is_empty()) {
            if self.links.contains(a.to_string_lossy().as_ref()) {
                return Err(bad(format!(
                    "path goes through the symlink {}",
                    a.display()
                )));
            }
            anc = a.parent();
        }
        if kind == EntryType::Symlink {
            let t = link.ok_or_else(|| bad("symlink without a target".into()))?;
            check_link(path, t).map_err(bad)?;
            self.links.insert(path.to_string());
        }
        Ok(())
    }

    /// The writer (a dry run has none).
    ///
    /// # Errors
    /// `Invalid` in a dry run (a bug: a dry run must not write).
    pub fn dir(&self) -> Result<&Beneath> {
        self.dir
            .as_ref()
            .ok_or_else(|| Error::invalid(&self.root, "a dry run writes nothing"))
    }

    /// Restores ownership of `rel` when running as root.
    ///
    /// # Errors
    /// `lchown` failed.
    pub fn chown(&self, rel: &str, uid: u64, gid: u64) -> Result<()> {
        if self.as_root {
            self.dir()?.chown(rel, uid as u32, gid as u32)?;
        }
        Ok(())
    }

    /// Records a staged directory (already created), whose mode and mtime are set by
    /// [`StageState::finish_dirs`].
    pub fn add_dir(&mut self, staged: Staged, nsec: u32) {
        self.dirs.push(PendingDir {
            rel: staged.dst.clone(),
            mode: staged.mode,
            mtime: staged.mtime,
            nsec,
        });
        self.staged.push(staged);
    }

    /// Directory modes and mtimes last, deepest first: creating children changes a dir's mtime,
    /// and a read-only mode would stop them being created.
    ///
    /// # Errors
    /// A mode or mtime cannot be set.
    pub fn finish_dirs(&mut self) -> Result<()> {
        self.dirs.sort_by(|a, b| b.rel.cmp(&a.rel));
        let Some(dir) = self.dir.as_ref() else {
            return Ok(());
        };
        for d in &self.dirs {
            dir.chmod(&d.rel, d.mode)?;
            dir.set_mtime(&d.rel, d.mtime, d.nsec)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_links() {
        assert!(check_link("solr/data/current", "index").is_ok());
        assert!(check_link("a/b/l", "../c").is_ok());
        assert!(check_link("a/l", "../../x").is_err());
        assert!(check_link("a/l", "/etc").is_err());
    }
}
