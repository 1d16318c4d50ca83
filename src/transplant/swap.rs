//! The swap: staged units moved into the pack one by one, each replaced path moved into the
//! transaction's backup first, every step journaled before it is taken; then the post-swap check
//! that the pack holds exactly what was staged. Units come from the decisions and what was
//! staged ([`units`]).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::archive::format::EntryType;
use crate::error::{Error, IoContext, Result};
use crate::manifest::Kind;
use crate::transplant::failpoint::failpoint;
use crate::transplant::moves::{mtime_of, nearest_existing_parent, restore_parents};
use crate::transplant::plan::RuleDecision;
use crate::transplant::pool;
use crate::transplant::record::{Record, Txn, TxnPlan, Unit};
use crate::transplant::stage::beneath::Beneath;
use crate::transplant::stage::Staged;

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
        if d.kind == Kind::Glob {
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

/// A directory the swap created, with the mtime it gets (its anchor's before the swap).
type Created = (String, (i64, u32));

/// Moves every staged unit into the pack, backing up what it replaces.
///
/// # Errors
/// A journal write, rename, directory creation, fsync or mtime failed; the caller rolls back.
pub fn swap(txn: &mut Txn, plan: &TxnPlan) -> Result<()> {
    let pack = txn.pack.clone();
    // Every write into the pack goes through this handle: no symlink is followed.
    let b = Beneath::open(&pack)?;
    let txn_rel = rel_to(&pack, &txn.dir)?;
    let mut created: Vec<Created> = Vec::new();
    for (i, u) in plan.units.iter().enumerate() {
        // The anchor's mtime before the swap: earlier units may have touched it since.
        let anchor_mtime = anchor_mtime(&pack, &u.dst, &created, plan);
        let missing = make_missing_parents(txn, &b, &u.dst)?;
        back_up(txn, &b, &txn_rel, i, u)?;
        txn.journal.log(&Record::Install { unit: i })?;
        b.rename(&format!("{txn_rel}/stage/{}", u.dst), &u.dst, &u.dst)?;
        // Created directories get their anchor's old mtime: deterministic "after" state.
        for m in missing {
            set_dir_mtime(&b, &m, anchor_mtime)?;
            created.push((m, anchor_mtime));
        }
        failpoint(&format!("after-install-{i}"));
    }
    // Later units installed into a created directory changed its mtime again.
    for (rel, t) in &created {
        set_dir_mtime(&b, rel, *t)?;
    }
    for (rel, s, n) in &plan.parents {
        if rel.is_empty() {
            // The pack root itself: set through its own path (it is the handle's root).
            restore_parents(&pack, std::slice::from_ref(&(rel.clone(), *s, *n)))?;
        } else if b.is_dir(rel) {
            set_dir_mtime(&b, rel, (*s, *n))?;
        }
    }
    txn.journal.log(&Record::Swapped)?;
    failpoint("after-swapped");
    Ok(())
}

/// The mtime before the swap of the nearest existing directory above `dst`.
fn anchor_mtime(pack: &Path, dst: &str, created: &[Created], plan: &TxnPlan) -> (i64, u32) {
    let anchor = nearest_existing_parent(pack, dst);
    created
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
        .unwrap_or((0, 0))
}

/// Creates the missing parents of `dst` in the pack, outermost first, each journaled so that a
/// rollback removes it; returns them (pack-relative).
fn make_missing_parents(txn: &mut Txn, b: &Beneath, dst: &str) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    let mut cur = Path::new(dst).parent();
    while let Some(c) = cur.filter(|c| !c.as_os_str().is_empty() && !b.is_dir(&c.to_string_lossy()))
    {
        missing.push(c.to_string_lossy().into_owned());
        cur = c.parent();
    }
    missing.reverse();
    for rel in &missing {
        txn.journal.log(&Record::Mkdir { rel: rel.clone() })?;
        b.mkdir(rel, 0o755)?;
        b.chmod(rel, 0o755)?;
    }
    Ok(missing)
}

/// Moves what unit `i` replaces (its destination and `also_remove`) into the backup area.
fn back_up(txn: &mut Txn, b: &Beneath, txn_rel: &str, i: usize, u: &Unit) -> Result<()> {
    for rel in std::iter::once(&u.dst).chain(u.also_remove.iter()) {
        if b.exists(rel) {
            failpoint(&format!("before-backup-{i}"));
            txn.journal.log(&Record::Backup {
                unit: i,
                rel: rel.clone(),
            })?;
            b.rename(rel, &format!("{txn_rel}/backup/{rel}"), rel)?;
            failpoint(&format!("after-backup-{i}"));
        }
    }
    Ok(())
}

/// `dir`'s path below `pack`, as text.
fn rel_to(pack: &Path, dir: &Path) -> Result<String> {
    dir.strip_prefix(pack)
        .ok()
        .and_then(|r| r.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(dir, "the transaction directory is not inside the pack"))
}

/// Sets a directory's mtime in the pack; a directory the caller may not change the times of
/// (EPERM: not its owner) keeps its own, which is not worth failing a transplant over.
fn set_dir_mtime(b: &Beneath, rel: &str, t: (i64, u32)) -> Result<()> {
    match b.set_mtime(rel, t.0, t.1) {
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => Ok(()),
        r => r,
    }
}

/// Compares the pack with what was staged: type, size, mode, mtime, link and content; returns
/// the differences, sorted.
///
/// # Errors
/// A file or link cannot be read.
pub fn verify_target(pack: &Path, staged: &[Staged]) -> Result<Vec<String>> {
    let found = pool::parallel_each(staged, pool::threads(), || (), |_, st| check_one(pack, st))?;
    let mut problems: Vec<String> = found.into_iter().flatten().collect();
    problems.sort();
    Ok(problems)
}

/// One staged entry against the pack: `None` when it matches.
fn check_one(pack: &Path, st: &Staged) -> Result<Option<String>> {
    let p: PathBuf = pack.join(&st.dst);
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
        EntryType::File if meta.len() != st.size => Ok(Some(format!(
            "{}: size {}, expected {}",
            st.dst,
            meta.len(),
            st.size
        ))),
        EntryType::File => {
            let h = crate::digest::sha256_file(&p)?;
            Ok((Some(&h) != st.sha256.as_ref())
                .then(|| format!("{}: content differs from the source", st.dst)))
        }
        EntryType::Symlink => {
            let t = fs::read_link(&p).at(&p)?;
            Ok((t.to_str() != st.link.as_deref())
                .then(|| format!("{}: symlink target differs", st.dst)))
        }
        EntryType::Dir => Ok(None),
    }
}
