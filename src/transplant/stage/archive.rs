//! Staging from a snapshot archive: the carried entries are written into staging while the
//! archive streams past once; the archive's own check (index, digests, sidecar) must pass before
//! anything staged counts, and each staged file takes the digest the reader computed. A dry run
//! is the same pass with every write left out, so it refuses exactly what the real run refuses.
//! Facts are checked, not believed: each entry's declared size counts against its rule's
//! recorded bytes as it streams, the total against the free space before the first write, and an
//! H2 database's own header (not snapshot.json's claim) against the new pack's engine.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::state::{Router, StageState, Staged};
use crate::archive::format::EntryType;
use crate::archive::{read_archive, Seen, Visitor};
use crate::error::{Error, IoContext, Result};
use crate::manifest::Kind;
use crate::pack::H2Format;
use crate::progress::{Cancel, Progress};
use crate::transplant::plan::RuleDecision;
use crate::version::Version;

/// Where and against what an archive is staged.
pub struct StageTarget<'a> {
    /// The stage directory (it exists); `None` for a dry run, which writes nothing.
    pub stage: Option<&'a Path>,
    /// The new pack (free space is measured on its filesystem in a dry run).
    pub pack: &'a Path,
    /// The new pack's H2 engine.
    pub h2_engine: Option<&'a Version>,
}

/// Stages the carried entries of `archive` (see [`StageTarget`]).
///
/// # Errors
/// A refused entry (see [`StageState::admit`]); more bytes than recorded or than the disk holds;
/// the archive fails its check (`Invalid`, naming the first problems; nothing in the pack has
/// changed); an H2 database the new engine cannot open (`Incompatible`); an I/O error in staging;
/// cancelled.
pub fn stage_from_archive(
    archive: &Path,
    decisions: &[RuleDecision],
    target: &StageTarget,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<Staged>> {
    check_space(decisions, target.stage.unwrap_or(target.pack))?;
    let mut stager = ArchiveStager {
        state: StageState::new(target.stage)?,
        router: Router::new(decisions),
        decisions,
        counted: vec![0; decisions.len()],
        origin: archive.to_path_buf(),
        cur: None,
        heads: Vec::new(),
    };
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
    check_h2_heads(archive, &stager.heads, target.h2_engine)?;
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

/// Refuses before the first write when the carried rules' recorded bytes exceed the free space
/// where they would be staged.
fn check_space(decisions: &[RuleDecision], at: &Path) -> Result<()> {
    let need: u64 = decisions
        .iter()
        .filter(|d| d.carried())
        .map(|d| d.bytes)
        .fold(0, u64::saturating_add);
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(at.as_os_str()))
        .map_err(|_| Error::invalid(at, "path contains a NUL byte"))?;
    // SAFETY: statvfs into a zeroed struct, with a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).at(at);
    }
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    if need > free {
        let why = format!(
            "No space left on device (ENOSPC): the carried state is recorded as {need} bytes, \
             {free} bytes are free here; nothing was changed"
        );
        return Err(Error::Io {
            path: at.to_path_buf(),
            source: std::io::Error::other(why),
        });
    }
    Ok(())
}

/// Each staged H2 database's own header must be a format the new engine opens.
fn check_h2_heads(
    archive: &Path,
    heads: &[(String, Vec<u8>)],
    engine: Option<&Version>,
) -> Result<()> {
    for (dst, head) in heads {
        let fmt = H2Format::of_header(head);
        let opened = engine.and_then(|e| fmt.opened_by(e));
        if opened != Some(true) || !fmt.is_clean() {
            let eng = engine.map_or("(none found)".to_string(), |e| e.to_string());
            return Err(Error::Incompatible {
                path: archive.to_path_buf(),
                message: format!(
                    "{dst}: the file's own header says {fmt}, which the new pack's H2 {eng} does not open cleanly (whatever snapshot.json records); nothing was changed"
                ),
            });
        }
    }
    Ok(())
}

/// The file being written (or, in a dry run, only read past): what it becomes, and its owner.
struct OpenFile {
    file: Option<File>,
    path: PathBuf,
    staged: Staged,
    uid: u64,
    gid: u64,
    /// Collecting the first block of an H2 database file.
    head: Option<Vec<u8>>,
}

/// Stages entries from a snapshot archive while it streams.
struct ArchiveStager<'a> {
    state: StageState,
    router: Router<'a>,
    decisions: &'a [RuleDecision],
    /// Declared bytes per decision so far.
    counted: Vec<u64>,
    origin: PathBuf,
    cur: Option<OpenFile>,
    /// The first block of each H2 database file, by destination.
    heads: Vec<(String, Vec<u8>)>,
}

impl ArchiveStager<'_> {
    /// An entry no carried rule takes must still lie under one of carryover's rules (or be a
    /// directory on the way to one): anything else is not the archive's to place.
    fn under_some_rule(&self, path: &str, kind: EntryType) -> Result<()> {
        let p = Path::new(path);
        let ok = self
            .decisions
            .iter()
            .filter_map(|d| d.src.as_deref())
            .any(|src| {
                let src = Path::new(src);
                p.starts_with(src) || (kind == EntryType::Dir && src.starts_with(p))
            });
        if ok {
            return Ok(());
        }
        Err(Error::Incompatible {
            path: self.origin.clone(),
            message: format!(
                "entry {path} lies under no rule of carryover's manifest; nothing was changed"
            ),
        })
    }

    /// Counts `e`'s declared size against `rule`'s recorded bytes.
    fn count(&mut self, path: &str, rule: usize, size: u64) -> Result<()> {
        let c = &mut self.counted[rule];
        *c = c.saturating_add(size);
        let d = &self.decisions[rule];
        if *c > d.bytes {
            return Err(Error::invalid(
                &self.origin,
                format!(
                    "entry {path:?} refused: rule {} holds more than the {} bytes snapshot.json records for it; nothing was changed",
                    d.rule, d.bytes
                ),
            ));
        }
        Ok(())
    }
}

fn is_h2_file(d: &RuleDecision, dst: &str) -> bool {
    d.kind == Kind::H2 && (dst.ends_with(".mv.db") || dst.ends_with(".h2.db"))
}

impl Visitor for ArchiveStager<'_> {
    fn begin(&mut self, path: &str, e: &Seen) -> Result<()> {
        self.state
            .admit(&self.origin, path, e.kind, e.link.as_deref())?;
        let Some((rule, dst)) = self.router.route(path) else {
            return self.under_some_rule(path, e.kind);
        };
        self.count(path, rule, e.size)?;
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
        let rel = staged.dst.clone();
        let path = self.state.root.join(&rel);
        let dir = self.state.dir.as_ref();
        if let Some(dir) = dir {
            dir.make_parents(&rel)?;
        }
        match e.kind {
            EntryType::Dir => {
                if let Some(dir) = dir {
                    dir.mkdir(&rel, 0o700)?;
                    self.state.chown(&rel, e.uid, e.gid)?;
                }
                self.state.add_dir(staged, 0);
            }
            EntryType::Symlink => {
                if let Some(dir) = dir {
                    dir.symlink(&rel, e.link.as_deref().unwrap_or_default())?;
                    self.state.chown(&rel, e.uid, e.gid)?;
                    dir.set_mtime(&rel, e.mtime, 0)?;
                }
                self.state.staged.push(staged);
            }
            EntryType::File => {
                let file = dir.map(|d| d.create_file(&rel)).transpose()?;
                let head = is_h2_file(&self.decisions[rule], &rel).then(Vec::new);
                self.cur = Some(OpenFile {
                    file,
                    path,
                    staged,
                    uid: e.uid,
                    gid: e.gid,
                    head,
                });
            }
        }
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(f) = self.cur.as_mut() {
            if let Some(h) = f.head.as_mut().filter(|h| h.len() < 4096) {
                h.extend_from_slice(&bytes[..bytes.len().min(4096 - h.len())]);
            }
            if let Some(file) = f.file.as_mut() {
                file.write_all(bytes).at(&f.path)?;
            }
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if let Some(f) = self.cur.take() {
            if let Some(h) = f.head {
                self.heads.push((f.staged.dst.clone(), h));
            }
            if let Some(file) = f.file {
                let p = &f.path;
                if self.state.as_root {
                    std::os::unix::fs::fchown(&file, Some(f.uid as u32), Some(f.gid as u32))
                        .at(p)?;
                }
                file.set_permissions(fs::Permissions::from_mode(f.staged.mode))
                    .at(p)?;
                drop(file);
                self.state
                    .dir()?
                    .set_mtime(&f.staged.dst, f.staged.mtime, 0)?;
            }
            self.state.staged.push(f.staged);
        }
        Ok(())
    }
}
