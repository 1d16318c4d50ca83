//! Staging from a snapshot archive: the carried entries are written into staging while the
//! archive streams past once; the archive's own check (index, digests, sidecar) must pass before
//! anything staged counts, and each staged file takes the digest the reader computed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::state::{Router, StageState, Staged};
use crate::archive::format::EntryType;
use crate::archive::{read_archive, Seen, Visitor};
use crate::error::{Error, IoContext, Result};
use crate::progress::{Cancel, Progress};
use crate::transplant::plan::RuleDecision;

/// Stages the carried entries of `archive` into `root`.
///
/// # Errors
/// A refused entry (see [`StageState::admit`]); the archive fails its check (`Invalid`, naming
/// the first problems; nothing in the pack has changed); an I/O error in staging; cancelled.
pub fn stage_from_archive(
    archive: &Path,
    decisions: &[RuleDecision],
    root: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<Staged>> {
    let mut stager = ArchiveStager::new(root.to_path_buf(), decisions, archive);
    let contents = read_archive(archive, Some(&mut stager), progress, cancel)?;
    let report = crate::verify::check_contents(archive, &contents);
    // A missing sidecar is not a reason to refuse; anything else in the archive is.
    if !report.ok {
        let first = report
            .problems
            .iter()
            .take(3)
            .map(|p| format!("{}: {}", p.path, p.detail))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::invalid(
            archive,
            format!(
                "the archive failed verification ({} problem(s): {first}); nothing was changed",
                report.problems.len()
            ),
        ));
    }
    let mut state = stager.state;
    state.finish_dirs()?;
    let mut staged = state.staged;
    let at: HashMap<String, usize> = staged
        .iter()
        .enumerate()
        .map(|(i, s)| (s.dst.clone(), i))
        .collect();
    let router = Router::new(decisions);
    for (path, seen) in &contents.seen {
        if let Some(i) = router
            .route(path)
            .and_then(|(_, dst)| at.get(&dst).copied())
        {
            staged[i].sha256 = seen.sha_hex();
        }
    }
    Ok(staged)
}

/// The file being written: where, what it becomes, and its owner.
struct OpenFile {
    file: File,
    path: PathBuf,
    staged: Staged,
    uid: u64,
    gid: u64,
}

/// Stages entries from a snapshot archive while it streams.
struct ArchiveStager<'a> {
    state: StageState,
    router: Router<'a>,
    origin: PathBuf,
    cur: Option<OpenFile>,
}

impl<'a> ArchiveStager<'a> {
    fn new(root: PathBuf, decisions: &'a [RuleDecision], origin: &Path) -> ArchiveStager<'a> {
        ArchiveStager {
            state: StageState::new(root),
            router: Router::new(decisions),
            origin: origin.to_path_buf(),
            cur: None,
        }
    }
}

impl Visitor for ArchiveStager<'_> {
    fn begin(&mut self, path: &str, e: &Seen) -> Result<()> {
        self.state
            .admit(&self.origin, path, e.kind, e.link.as_deref())?;
        let Some((rule, dst)) = self.router.route(path) else {
            return Ok(());
        };
        let abs = self.state.root.join(&dst);
        self.state.make_parents(&abs)?;
        let staged = Staged {
            dst,
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            mtime: e.mtime,
            sha256: None,
            link: e.link.clone(),
            rule,
        };
        match e.kind {
            EntryType::Dir => {
                match fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && abs.is_dir() => {
                    }
                    Err(err) => return Err(err).at(&abs),
                }
                self.state.chown(&abs, e.uid, e.gid)?;
                self.state.add_dir(staged, abs, 0);
            }
            EntryType::Symlink => {
                let t = e.link.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(t, &abs).at(&abs)?;
                self.state.chown(&abs, e.uid, e.gid)?;
                crate::fsutil::set_mtime(&abs, e.mtime)?;
                self.state.staged.push(staged);
            }
            EntryType::File => {
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&abs)
                    .at(&abs)?;
                self.cur = Some(OpenFile {
                    file,
                    path: abs,
                    staged,
                    uid: e.uid,
                    gid: e.gid,
                });
            }
        }
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(f) = self.cur.as_mut() {
            f.file.write_all(bytes).at(&f.path)?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if let Some(f) = self.cur.take() {
            drop(f.file);
            let p = &f.path;
            self.state.chown(p, f.uid, f.gid)?;
            fs::set_permissions(p, fs::Permissions::from_mode(f.staged.mode)).at(p)?;
            crate::fsutil::set_mtime(p, f.staged.mtime)?;
            self.state.staged.push(f.staged);
        }
        Ok(())
    }
}
