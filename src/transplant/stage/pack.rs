//! Staging from an old pack's directory: the plan's entries are admitted and routed in order,
//! directories and symlinks made at once, and the files copied by the worker pool, each hashed
//! in the same pass and refused when it changes while it is copied (a running server).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::beneath::Beneath;
use super::state::{Router, StageState, Staged};
use crate::archive::format::EntryType;
use crate::error::{Error, IoContext, Result};
use crate::plan::{Entry, EntryKind, Plan};
use crate::progress::{Cancel, Progress};
use crate::transplant::plan::RuleDecision;
use crate::transplant::pool;

/// One file to copy: from the old pack to staging.
struct Copy {
    src: PathBuf,
    staged: Staged,
}

/// Stages the carried entries of the old pack `plan` into `root`.
///
/// # Errors
/// A refused entry or a name that is not UTF-8 (`Invalid`); a file that changed while it was
/// copied (`Invalid`); an I/O error (naming the file); cancelled.
pub fn stage_from_pack(
    plan: &Plan,
    decisions: &[RuleDecision],
    root: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<Staged>> {
    let router = Router::new(decisions);
    let mut state = StageState::new(Some(root))?;
    let mut files = Vec::new();
    let total: u64 = plan.entries().map(|e| e.size()).sum();
    progress.begin(total, 0);
    for e in plan.entries() {
        if let Some(c) = place(plan, e, &router, &mut state)? {
            files.push(c);
        }
    }
    let as_root = state.as_root;
    let dir = state.dir()?;
    let copied = pool::parallel_each(
        &files,
        pool::threads(),
        || vec![0u8; 1 << 20],
        |buf, c| {
            cancel.check()?;
            copy_one(dir, c, buf, as_root, progress)
        },
    );
    cancel.check()?;
    state.staged.extend(copied?);
    state.finish_dirs()?;
    progress.finish();
    Ok(state.staged)
}

/// The dry run's pass over an old pack: every entry admitted by the real run's checks, nothing
/// written.
///
/// # Errors
/// A refused entry or a name that is not UTF-8 (`Invalid`).
pub fn check_pack(plan: &Plan) -> Result<()> {
    let mut state = StageState::new(None)?;
    for e in plan.entries() {
        admit(plan, e, &mut state)?;
    }
    Ok(())
}

/// Admits one entry: its path, type and link target.
fn admit(
    plan: &Plan,
    e: &Entry,
    state: &mut StageState,
) -> Result<(String, EntryType, Option<String>)> {
    let src = plan.pack.root.join(&e.rel);
    let utf8 = |p: &Path, what: &str| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::invalid(&src, format!("{what} is not valid UTF-8")))
    };
    let path = utf8(&e.rel, "file name")?;
    let (kind, link) = match &e.kind {
        EntryKind::File { .. } => (EntryType::File, None),
        EntryKind::Dir => (EntryType::Dir, None),
        EntryKind::Symlink { target } => {
            (EntryType::Symlink, Some(utf8(target, "symlink target")?))
        }
    };
    state.admit(&plan.pack.root, &path, kind, link.as_deref())?;
    Ok((path, kind, link))
}

/// Admits and routes one entry: a directory or symlink is made in staging at once, a file is
/// returned for the pool to copy; an entry no rule carries is skipped.
fn place(plan: &Plan, e: &Entry, router: &Router, state: &mut StageState) -> Result<Option<Copy>> {
    let src = plan.pack.root.join(&e.rel);
    let (path, kind, link) = admit(plan, e, state)?;
    let Some((rule, dst)) = router.route(&path) else {
        return Ok(None);
    };
    state.dir()?.make_parents(&dst)?;
    let meta = fs::symlink_metadata(&src).at(&src)?;
    let staged = Staged {
        dst,
        kind,
        size: e.size(),
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        sha256: None,
        link,
        rule,
    };
    let nsec = meta.mtime_nsec() as u32;
    match kind {
        EntryType::Dir => {
            state.dir()?.mkdir(&staged.dst, 0o700)?;
            state.chown(&staged.dst, meta.uid() as u64, meta.gid() as u64)?;
            state.add_dir(staged, nsec);
        }
        EntryType::Symlink => {
            state
                .dir()?
                .symlink(&staged.dst, staged.link.as_deref().unwrap_or_default())?;
            state.chown(&staged.dst, meta.uid() as u64, meta.gid() as u64)?;
            state.dir()?.set_mtime(&staged.dst, staged.mtime, nsec)?;
            state.staged.push(staged);
        }
        EntryType::File => return Ok(Some(Copy { src, staged })),
    }
    Ok(None)
}

/// Copies one file into staging, hashing it as it passes; the copy takes the source's mode,
/// mtime (and owner, as root).
fn copy_one(
    dir: &Beneath,
    c: &Copy,
    buf: &mut [u8],
    as_root: bool,
    progress: &dyn Progress,
) -> Result<Staged> {
    let src = &c.src;
    let rel = c.staged.dst.as_str();
    let dst = &dir.root().join(rel);
    let inp = File::open(src).at(src)?;
    let before = inp.metadata().at(src)?;
    let mut out = dir.create_file(rel)?;
    // A write error belongs to the copy, a read error to the source.
    let mut write_err = None;
    let read = crate::digest::hash_stream(&inp, buf, |b| {
        out.write_all(b).map_err(|e| {
            let kind = e.kind();
            write_err = Some(e);
            io::Error::from(kind)
        })?;
        progress.advance(b.len() as u64);
        Ok(())
    });
    if let Some(e) = write_err {
        return Err(e).at(dst);
    }
    let (sha, n_total) = read.at(src)?;
    let after = inp.metadata().at(src)?;
    if n_total != before.len()
        || after.len() != before.len()
        || after.mtime_nsec() != before.mtime_nsec()
        || after.mtime() != before.mtime()
    {
        return Err(Error::invalid(
            src,
            "changed while it was copied; is the old server running?",
        ));
    }
    if as_root {
        std::os::unix::fs::fchown(&out, Some(before.uid()), Some(before.gid())).at(dst)?;
    }
    out.set_permissions(fs::Permissions::from_mode(c.staged.mode))
        .at(dst)?;
    drop(out);
    dir.set_mtime(rel, before.mtime(), before.mtime_nsec() as u32)?;
    let mut st = c.staged.clone();
    st.size = n_total;
    st.mtime = before.mtime();
    st.sha256 = Some(hex::encode(sha));
    Ok(st)
}
