//! Staging: the source's carried entries materialised under `NEW/.carryover/txn/<id>/stage/`
//! (same filesystem as the pack, so the swap is a rename), hashed while written. Every archive
//! entry is validated first: no absolute paths, no `..`, nothing through a symlink, no link
//! pointing outside the pack, no duplicates, no hard links, devices or fifos.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::decide::RuleDecision;
use crate::archive::format::EntryType;
use crate::archive::{Seen, Visitor};
use crate::error::{Error, IoContext, Result};
use crate::plan::{EntryKind, Plan};
use crate::progress::{Cancel, Progress};

/// One entry placed in staging: what the pack must hold at `dst` after the swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    pub dst: String,
    pub kind: EntryType,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub sha256: Option<String>,
    pub link: Option<String>,
    /// Index into the decisions.
    pub rule: usize,
}

/// Maps source paths to the decision that carries them and to their place in the new pack.
pub struct Router<'a> {
    decisions: &'a [RuleDecision],
}

impl<'a> Router<'a> {
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

/// Rejects paths that could escape the pack.
pub fn check_rel(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    let p = Path::new(path);
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::CurDir => return Err("path contains `.`".into()),
        }
    }
    Ok(())
}

/// A symlink at `at` (pack-relative) pointing to `target` must stay inside the pack.
pub fn check_link(at: &str, target: &str) -> std::result::Result<(), String> {
    let t = Path::new(target);
    if t.is_absolute() {
        return Err(format!(
            "symlink to absolute path {target} points outside the pack"
        ));
    }
    let mut depth: Vec<&std::ffi::OsStr> = Path::new(at)
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for c in t.components() {
        match c {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return Err(format!("symlink to {target} points outside the pack"));
                }
            }
            _ => return Err(format!("symlink to {target} points outside the pack")),
        }
    }
    Ok(())
}

/// Shared bookkeeping of a staging run.
pub struct StageState {
    pub root: PathBuf,
    pub staged: Vec<Staged>,
    dirs: Vec<(PathBuf, u32, i64, u32)>,
    links: BTreeSet<String>,
    seen: BTreeSet<String>,
    as_root: bool,
}

impl StageState {
    pub fn new(root: PathBuf) -> StageState {
        StageState {
            root,
            staged: Vec::new(),
            dirs: Vec::new(),
            links: BTreeSet::new(),
            seen: BTreeSet::new(),
            // SAFETY: geteuid has no preconditions.
            as_root: unsafe { libc::geteuid() } == 0,
        }
    }

    /// Validates one source entry; errors name the entry and what is wrong.
    fn admit(
        &mut self,
        origin: &Path,
        path: &str,
        kind: EntryType,
        link: Option<&str>,
    ) -> Result<()> {
        let bad = |m: String| Error::invalid(origin, format!("entry {path:?} refused: {m}"));
        check_rel(path).map_err(bad)?;
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

    fn make_parents(&self, dst: &Path) -> Result<()> {
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        Ok(())
    }

    fn chown(&self, p: &Path, uid: u64, gid: u64) -> Result<()> {
        if self.as_root {
            std::os::unix::fs::lchown(p, Some(uid as u32), Some(gid as u32)).at(p)?;
        }
        Ok(())
    }

    /// Directory modes and mtimes last, deepest first: creating children changes a dir's mtime,
    /// and a read-only mode would stop them being created.
    pub fn finish_dirs(&mut self) -> Result<()> {
        self.dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (p, mode, mtime, nsec) in &self.dirs {
            fs::set_permissions(p, fs::Permissions::from_mode(*mode)).at(p)?;
            crate::fsutil::set_mtime_ns(p, *mtime, *nsec)?;
        }
        Ok(())
    }
}

/// Stages entries from a snapshot archive while it streams.
pub struct ArchiveStager<'a> {
    pub state: StageState,
    router: Router<'a>,
    origin: PathBuf,
    cur: Option<(File, PathBuf, Staged, u64, u64)>,
}

impl<'a> ArchiveStager<'a> {
    pub fn new(root: PathBuf, decisions: &'a [RuleDecision], origin: &Path) -> ArchiveStager<'a> {
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
            dst: dst.clone(),
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
                self.state.dirs.push((abs, e.mode, e.mtime, 0));
                self.state.staged.push(staged);
            }
            EntryType::Symlink => {
                let t = e.link.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(t, &abs).at(&abs)?;
                self.state.chown(&abs, e.uid, e.gid)?;
                crate::fsutil::set_mtime(&abs, e.mtime)?;
                self.state.staged.push(staged);
            }
            EntryType::File => {
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&abs)
                    .at(&abs)?;
                self.cur = Some((f, abs, staged, e.uid, e.gid));
            }
        }
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some((f, p, _, _, _)) = self.cur.as_mut() {
            f.write_all(bytes).at(p)?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if let Some((f, p, staged, uid, gid)) = self.cur.take() {
            drop(f);
            self.state.chown(&p, uid, gid)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(staged.mode)).at(&p)?;
            crate::fsutil::set_mtime(&p, staged.mtime)?;
            self.state.staged.push(staged);
        }
        Ok(())
    }
}

/// Stages the carried entries of an old pack directory: two threads copy files, hashing what
/// they read in the same pass.
pub fn stage_from_pack(
    plan: &Plan,
    decisions: &[RuleDecision],
    root: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<Staged>> {
    let router = Router::new(decisions);
    let mut state = StageState::new(root.to_path_buf());
    let mut files: Vec<(PathBuf, PathBuf, Staged)> = Vec::new();
    let total: u64 = plan.entries().map(|e| e.size()).sum();
    progress.begin(total, 0);
    for e in plan.entries() {
        let path = e.rel.to_str().ok_or_else(|| {
            Error::invalid(plan.pack.root.join(&e.rel), "file name is not valid UTF-8")
        })?;
        let (kind, link) = match &e.kind {
            EntryKind::File { .. } => (EntryType::File, None),
            EntryKind::Dir => (EntryType::Dir, None),
            EntryKind::Symlink { target } => (
                EntryType::Symlink,
                Some(
                    target
                        .to_str()
                        .ok_or_else(|| {
                            Error::invalid(
                                plan.pack.root.join(&e.rel),
                                "symlink target is not valid UTF-8",
                            )
                        })?
                        .to_string(),
                ),
            ),
        };
        state.admit(&plan.pack.root, path, kind, link.as_deref())?;
        let Some((rule, dst)) = router.route(path) else {
            continue;
        };
        let src = plan.pack.root.join(&e.rel);
        let abs = root.join(&dst);
        state.make_parents(&abs)?;
        let meta = fs::symlink_metadata(&src).at(&src)?;
        let staged = Staged {
            dst,
            kind,
            size: e.size(),
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
            sha256: None,
            link: link.clone(),
            rule,
        };
        match kind {
            EntryType::Dir => {
                fs::create_dir_all(&abs).at(&abs)?;
                state.chown(&abs, meta.uid() as u64, meta.gid() as u64)?;
                state
                    .dirs
                    .push((abs, staged.mode, staged.mtime, meta.mtime_nsec() as u32));
                state.staged.push(staged);
            }
            EntryType::Symlink => {
                std::os::unix::fs::symlink(link.as_deref().unwrap_or_default(), &abs).at(&abs)?;
                state.chown(&abs, meta.uid() as u64, meta.gid() as u64)?;
                crate::fsutil::set_mtime_ns(&abs, staged.mtime, meta.mtime_nsec() as u32)?;
                state.staged.push(staged);
            }
            EntryType::File => files.push((src, abs, staged)),
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Staged>> = Mutex::new(Vec::with_capacity(files.len()));
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let as_root = state.as_root;
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((src, dst, staged)) = files.get(i) else {
                        break;
                    };
                    if cancel.is_set() || first_err.lock().map(|e| e.is_some()).unwrap_or(true) {
                        break;
                    }
                    match copy_one(src, dst, staged, &mut buf, as_root, progress) {
                        Ok(st) => results.lock().expect("not poisoned").push(st),
                        Err(e) => {
                            let mut g = first_err.lock().expect("not poisoned");
                            g.get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    cancel.check()?;
    if let Some(e) = first_err.into_inner().expect("not poisoned") {
        return Err(e);
    }
    state
        .staged
        .extend(results.into_inner().expect("not poisoned"));
    state.finish_dirs()?;
    progress.finish();
    Ok(state.staged)
}

fn copy_one(
    src: &Path,
    dst: &Path,
    staged: &Staged,
    buf: &mut [u8],
    as_root: bool,
    progress: &dyn Progress,
) -> Result<Staged> {
    let mut inp = File::open(src).at(src)?;
    let before = inp.metadata().at(src)?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .at(dst)?;
    let mut h = Sha256::new();
    let mut n_total = 0u64;
    loop {
        let n = inp.read(buf).at(src)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).at(dst)?;
        n_total += n as u64;
        progress.advance(n as u64);
    }
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
    drop(out);
    if as_root {
        std::os::unix::fs::lchown(dst, Some(before.uid()), Some(before.gid())).at(dst)?;
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(staged.mode)).at(dst)?;
    crate::fsutil::set_mtime_ns(dst, before.mtime(), before.mtime_nsec() as u32)?;
    let mut st = staged.clone();
    st.size = n_total;
    st.mtime = before.mtime();
    st.sha256 = Some(hex::encode(h.finalize()));
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_links() {
        assert!(check_rel("a/b").is_ok());
        assert!(check_rel("/etc/passwd").is_err());
        assert!(check_rel("a/../../x").is_err());
        assert!(check_link("solr/data/current", "index").is_ok());
        assert!(check_link("a/b/l", "../c").is_ok());
        assert!(check_link("a/l", "../../x").is_err());
        assert!(check_link("a/l", "/etc").is_err());
    }
}
