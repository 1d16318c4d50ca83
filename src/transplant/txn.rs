//! The transaction on the new pack: swap staged units in (backing up what they replace),
//! verify, commit; roll back, revert and recover. Every step is journaled before it is taken and
//! every undo is idempotent (it checks what exists), so a crash at any point can be repaired.
//!
//! Layout: `NEW/.carryover/txn/<id>/{journal, plan.json, stage/, backup/, removed/}`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::decide::RuleDecision;
use super::journal::{Journal, Record};
use super::stage::Staged;
use crate::archive::format::EntryType;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// One swap unit: a path of the new pack replaced as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unit {
    pub dst: String,
    /// Other paths moved aside with it (`X.h2.db` when `X.mv.db` arrives).
    pub also_remove: Vec<String>,
    pub rule: String,
}

/// What the transaction will do, written to `plan.json` before the first swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxnPlan {
    pub id: String,
    pub source: String,
    pub units: Vec<Unit>,
    pub staged: Vec<Staged>,
    /// mtimes of the directories the swap modifies, restored afterwards so the pack's tree is
    /// exactly "before" or "after".
    pub parents: Vec<(String, i64, u32)>,
    pub decisions: Vec<RuleDecision>,
    /// Config files whose merge conflicted: they wait for `FILE.final` and `--continue`.
    #[serde(default)]
    pub conflicts: Vec<super::configs::Conflict>,
}

pub struct Txn {
    pub pack: PathBuf,
    pub dir: PathBuf,
    pub journal: Journal,
}

pub fn txn_root(pack: &Path) -> PathBuf {
    pack.join(".carryover/txn")
}

impl Txn {
    pub fn begin(pack: &Path, source: &str) -> Result<Txn> {
        let now = time::OffsetDateTime::now_utc();
        let id = format!(
            "{}-{}",
            now.unix_timestamp_nanos() / 1_000_000,
            std::process::id()
        );
        let dir = txn_root(pack).join(&id);
        fs::create_dir_all(dir.join("stage")).at(&dir)?;
        fs::create_dir_all(dir.join("backup")).at(&dir)?;
        let mut journal = Journal::create(&dir.join("journal"))?;
        journal.log(&Record::Begin {
            id,
            source: source.to_string(),
            time: crate::archive::format::now_rfc3339(),
        })?;
        Ok(Txn {
            pack: pack.to_path_buf(),
            dir,
            journal,
        })
    }

    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn stage_dir(&self) -> PathBuf {
        self.dir.join("stage")
    }
}

/// Crash points for tests (`--features failpoints`, `CARRYOVER_FAILPOINT=<name>` aborts there).
pub fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("CARRYOVER_FAILPOINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
    let _ = name;
}

/// Units from the decisions and what was staged: a whole directory per dir/lucene rule, one per
/// file for glob rules, the database file for h2 rules.
pub fn units(decisions: &[RuleDecision], staged: &[Staged]) -> Vec<Unit> {
    let mut out = Vec::new();
    for (i, d) in decisions.iter().enumerate() {
        if !d.carried() {
            continue;
        }
        let mine: Vec<&Staged> = staged.iter().filter(|s| s.rule == i).collect();
        if mine.is_empty() {
            continue;
        }
        if d.kind == crate::manifest::Kind::Glob {
            for s in mine.iter().filter(|s| s.kind != EntryType::Dir) {
                out.push(Unit {
                    dst: s.dst.clone(),
                    also_remove: Vec::new(),
                    rule: d.rule.clone(),
                });
            }
        } else if let Some(dst) = &d.dst {
            out.push(Unit {
                dst: dst.clone(),
                also_remove: d.also_remove.clone(),
                rule: d.rule.clone(),
            });
        }
    }
    out
}

fn mtime_of(p: &Path) -> Option<(i64, u32)> {
    fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec() as u32))
}

fn set_mtime_exact(p: &Path, t: (i64, u32)) -> Result<()> {
    fsutil::set_mtime_ns(p, t.0, t.1)
}

/// The nearest existing ancestor directory of `rel` in the pack (relative; "" is the root).
fn nearest_existing_parent(pack: &Path, rel: &str) -> String {
    let mut cur = Path::new(rel).parent();
    while let Some(c) = cur {
        if c.as_os_str().is_empty() || pack.join(c).is_dir() {
            return c.to_string_lossy().into_owned();
        }
        cur = c.parent();
    }
    String::new()
}

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

pub fn restore_parents(pack: &Path, parents: &[(String, i64, u32)]) -> Result<()> {
    for (rel, s, n) in parents {
        let p = pack.join(rel);
        if p.is_dir() {
            set_mtime_exact(&p, (*s, *n))?;
        }
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    fs::rename(from, to).map_err(|e| Error::Io {
        path: from.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("moving to {}: {e}", to.display())),
    })
}

fn sync_parent(p: &Path) {
    if let Some(parent) = p.parent() {
        let _ = fsutil::fsync_dir(parent);
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Moves every staged unit into the pack, backing up what it replaces.
pub fn swap(txn: &mut Txn, plan: &TxnPlan) -> Result<()> {
    let pack = txn.pack.clone();
    // Directories the swap creates, with the mtime they get (their anchor's before the swap).
    let mut created: Vec<(String, (i64, u32))> = Vec::new();
    for (i, u) in plan.units.iter().enumerate() {
        let dst = pack.join(&u.dst);
        // Create missing parents, each journaled so a rollback removes it.
        let anchor = nearest_existing_parent(&pack, &u.dst);
        // The anchor's mtime before the swap: earlier units may have touched it since.
        let anchor_mtime = created
            .iter()
            .find(|(r, _)| *r == anchor)
            .map(|(_, t)| *t)
            .or_else(|| {
                plan.parents
                    .iter()
                    .find(|(r, _, _)| *r == anchor)
                    .map(|(_, s, n)| (*s, *n))
            })
            .or_else(|| mtime_of(&pack.join(&anchor)))
            .unwrap_or((0, 0));
        let mut missing = Vec::new();
        let mut cur = Path::new(&u.dst).parent();
        while let Some(c) = cur.filter(|c| !c.as_os_str().is_empty() && !pack.join(c).is_dir()) {
            missing.push(c.to_path_buf());
            cur = c.parent();
        }
        for m in missing.iter().rev() {
            txn.journal.log(&Record::Mkdir {
                rel: m.to_string_lossy().into_owned(),
            })?;
            let abs = pack.join(m);
            fs::create_dir(&abs).at(&abs)?;
            fs::set_permissions(&abs, fs::Permissions::from_mode(0o755)).at(&abs)?;
        }
        for rel in std::iter::once(&u.dst).chain(u.also_remove.iter()) {
            let p = pack.join(rel);
            if exists(&p) {
                failpoint(&format!("before-backup-{i}"));
                txn.journal.log(&Record::Backup {
                    unit: i,
                    rel: rel.clone(),
                })?;
                rename(&p, &txn.dir.join("backup").join(rel))?;
                sync_parent(&p);
                failpoint(&format!("after-backup-{i}"));
            }
        }
        txn.journal.log(&Record::Install { unit: i })?;
        rename(&txn.stage_dir().join(&u.dst), &dst)?;
        sync_parent(&dst);
        // Created directories get their anchor's old mtime: deterministic "after" state.
        for m in &missing {
            set_mtime_exact(&pack.join(m), anchor_mtime)?;
            created.push((m.to_string_lossy().into_owned(), anchor_mtime));
        }
        failpoint(&format!("after-install-{i}"));
    }
    // Later units installed into a created directory changed its mtime again.
    for (rel, t) in &created {
        set_mtime_exact(&pack.join(rel), *t)?;
    }
    restore_parents(&pack, &plan.parents)?;
    txn.journal.log(&Record::Swapped)?;
    failpoint("after-swapped");
    Ok(())
}

/// Undoes an uncommitted transaction from its journal; idempotent.
pub fn rollback(pack: &Path, dir: &Path) -> Result<()> {
    if !exists(&dir.join("journal")) {
        // A crash between creating the directory and its journal: the pack was not touched
        // (the journal exists before the first change), so only the directory goes.
        remove_txn_dir(dir);
        return Ok(());
    }
    let records = Journal::read(&dir.join("journal"))?;
    let plan: Option<TxnPlan> = read_plan(dir);
    let units = plan.as_ref().map(|p| p.units.clone()).unwrap_or_default();
    for r in records.iter().rev() {
        match r {
            Record::Install { unit } => {
                if let Some(u) = units.get(*unit) {
                    let staged = dir.join("stage").join(&u.dst);
                    let live = pack.join(&u.dst);
                    if exists(&live) && !exists(&staged) {
                        rename(&live, &staged)?;
                        sync_parent(&live);
                    }
                }
            }
            Record::Backup { rel, .. } => {
                let b = dir.join("backup").join(rel);
                let live = pack.join(rel);
                if exists(&b) && !exists(&live) {
                    rename(&b, &live)?;
                    sync_parent(&live);
                }
            }
            Record::Mkdir { rel } => {
                let p = pack.join(rel);
                if p.is_dir() {
                    let _ = fs::remove_dir(&p);
                }
            }
            _ => {}
        }
    }
    if let Some(p) = &plan {
        restore_parents(pack, &p.parents)?;
    }
    Journal::open(&dir.join("journal"))?.log(&Record::RolledBack)?;
    remove_txn_dir(dir);
    Ok(())
}

/// Reverts a committed transaction: the pack returns exactly to its state before it.
pub fn revert(pack: &Path, dir: &Path) -> Result<()> {
    let plan = read_plan(dir).ok_or_else(|| {
        Error::invalid(
            dir.join("plan.json"),
            "missing or unreadable; cannot revert",
        )
    })?;
    let records = Journal::read(&dir.join("journal"))?;
    let mut journal = Journal::open(&dir.join("journal"))?;
    if !records.contains(&Record::RevertBegin) {
        journal.log(&Record::RevertBegin)?;
    }
    let backups: Vec<(usize, String)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Backup { unit, rel } => Some((*unit, rel.clone())),
            _ => None,
        })
        .collect();
    for (i, u) in plan.units.iter().enumerate().rev() {
        journal.log(&Record::RevertRemove { unit: i })?;
        let live = pack.join(&u.dst);
        let removed = dir.join("removed").join(&u.dst);
        if exists(&live) && !exists(&removed) {
            rename(&live, &removed)?;
            sync_parent(&live);
        }
        failpoint(&format!("revert-after-remove-{i}"));
        journal.log(&Record::RevertRestore { unit: i })?;
        for (_, rel) in backups.iter().filter(|(k, _)| *k == i) {
            let b = dir.join("backup").join(rel);
            let live = pack.join(rel);
            if exists(&b) && !exists(&live) {
                rename(&b, &live)?;
                sync_parent(&live);
            }
        }
    }
    for r in records.iter().rev() {
        if let Record::Mkdir { rel } = r {
            let p = pack.join(rel);
            if p.is_dir() {
                let _ = fs::remove_dir(&p);
            }
        }
    }
    restore_parents(pack, &plan.parents)?;
    journal.log(&Record::Reverted)?;
    remove_txn_dir(dir);
    Ok(())
}

pub fn read_plan(dir: &Path) -> Option<TxnPlan> {
    let bytes = fs::read(dir.join("plan.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn write_plan(dir: &Path, plan: &TxnPlan) -> Result<()> {
    let bytes = serde_json::to_vec(plan).expect("serialisable");
    fsutil::write_atomic(&dir.join("plan.json"), &bytes, 0o600)
}

/// Removes a finished transaction's directory; a failure here leaves only clutter.
pub fn remove_txn_dir(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
}

/// State of one transaction directory, from its journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Not committed: to be rolled back.
    Pending,
    /// Committed; revertible.
    Committed,
    /// Swapped and verified; config conflicts await `--continue` (or `--revert`).
    Awaiting,
    /// A revert started and did not finish: to be finished.
    Reverting,
    /// Finished (rolled back or reverted): only its directory is left.
    Done,
}

pub fn state_of(dir: &Path) -> TxnState {
    let records = Journal::read(&dir.join("journal")).unwrap_or_default();
    let has = |r: &Record| records.contains(r);
    if has(&Record::Reverted) || has(&Record::RolledBack) {
        TxnState::Done
    } else if has(&Record::RevertBegin) {
        TxnState::Reverting
    } else if has(&Record::Committed) {
        TxnState::Committed
    } else if records
        .iter()
        .any(|r| matches!(r, Record::Conflicts { .. }))
    {
        TxnState::Awaiting
    } else {
        TxnState::Pending
    }
}

/// Transaction directories of a pack, oldest first.
pub fn list_txns(pack: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(txn_root(pack))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What recovery did.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub rolled_back: Vec<String>,
    pub reverts_finished: Vec<String>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.rolled_back.is_empty() && self.reverts_finished.is_empty()
    }
}

/// Brings the pack to a consistent state: uncommitted transactions are rolled back, interrupted
/// reverts finished. The caller holds the pack lock.
pub fn recover(pack: &Path) -> Result<Recovery> {
    let mut rec = Recovery {
        rolled_back: Vec::new(),
        reverts_finished: Vec::new(),
    };
    for dir in list_txns(pack) {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match state_of(&dir) {
            TxnState::Pending => {
                rollback(pack, &dir)?;
                rec.rolled_back.push(id);
            }
            TxnState::Reverting => {
                revert(pack, &dir)?;
                rec.reverts_finished.push(id);
            }
            TxnState::Done => remove_txn_dir(&dir),
            TxnState::Committed | TxnState::Awaiting => {
                let _ = fs::remove_dir_all(dir.join("stage"));
            }
        }
    }
    Ok(rec)
}

/// Compares the pack with what was staged: type, size, mode, mtime, link and content.
pub fn verify_target(pack: &Path, staged: &[Staged]) -> Result<Vec<String>> {
    let problems = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let err: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(st) = staged.get(i) else { break };
                match check_one(pack, st) {
                    Ok(Some(p)) => problems.lock().expect("not poisoned").push(p),
                    Ok(None) => {}
                    Err(e) => {
                        err.lock().expect("not poisoned").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = err.into_inner().expect("not poisoned") {
        return Err(e);
    }
    let mut p = problems.into_inner().expect("not poisoned");
    p.sort();
    Ok(p)
}

fn check_one(pack: &Path, st: &Staged) -> Result<Option<String>> {
    let p = pack.join(&st.dst);
    let Ok(meta) = fs::symlink_metadata(&p) else {
        return Ok(Some(format!("{}: missing after the swap", st.dst)));
    };
    let ft = meta.file_type();
    let kind_ok = match st.kind {
        EntryType::File => ft.is_file(),
        EntryType::Dir => ft.is_dir(),
        EntryType::Symlink => ft.is_symlink(),
    };
    if !kind_ok {
        return Ok(Some(format!("{}: wrong type after the swap", st.dst)));
    }
    if !ft.is_symlink() && meta.mode() & 0o7777 != st.mode {
        return Ok(Some(format!(
            "{}: mode {:o}, expected {:o}",
            st.dst,
            meta.mode() & 0o7777,
            st.mode
        )));
    }
    if meta.mtime() != st.mtime {
        return Ok(Some(format!(
            "{}: mtime {}, expected {}",
            st.dst,
            meta.mtime(),
            st.mtime
        )));
    }
    match st.kind {
        EntryType::File => {
            if meta.len() != st.size {
                return Ok(Some(format!(
                    "{}: size {}, expected {}",
                    st.dst,
                    meta.len(),
                    st.size
                )));
            }
            let h = crate::digest::sha256_file(&p)?;
            if Some(&h) != st.sha256.as_ref() {
                return Ok(Some(format!("{}: content differs from the source", st.dst)));
            }
        }
        EntryType::Symlink => {
            let t = fs::read_link(&p).at(&p)?;
            if t.to_str() != st.link.as_deref() {
                return Ok(Some(format!("{}: symlink target differs", st.dst)));
            }
        }
        EntryType::Dir => {}
    }
    Ok(None)
}
