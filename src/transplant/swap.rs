//! The swap: staged units moved into the pack one by one, each replaced path moved into the
//! transaction's backup first, every step journaled before it is taken; then the post-swap check
//! that the pack holds exactly what was staged. Units come from the decisions and what was
//! staged ([`units`]).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::archive::format::EntryType;
use crate::error::{IoContext, Result};
use crate::manifest::Kind;
use crate::transplant::failpoint::failpoint;
use crate::transplant::moves::{
    exists, move_synced, mtime_of, nearest_existing_parent, restore_parents, set_mtime_exact,
};
use crate::transplant::plan::RuleDecision;
use crate::transplant::pool;
use crate::transplant::record::{Record, Txn, TxnPlan, Unit};
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
    let mut created: Vec<Created> = Vec::new();
    for (i, u) in plan.units.iter().enumerate() {
        // The anchor's mtime before the swap: earlier units may have touched it since.
        let anchor_mtime = anchor_mtime(&pack, &u.dst, &created, plan);
        let missing = make_missing_parents(txn, &u.dst)?;
        back_up(txn, i, u)?;
        txn.journal.log(&Record::Install { unit: i })?;
        let dst = pack.join(&u.dst);
        move_synced(&txn.stage_dir().join(&u.dst), &dst, &dst)?;
        // Created directories get their anchor's old mtime: deterministic "after" state.
        for m in missing {
            set_mtime_exact(&pack.join(&m), anchor_mtime)?;
            created.push((m, anchor_mtime));
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
fn make_missing_parents(txn: &mut Txn, dst: &str) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    let mut cur = Path::new(dst).parent();
    while let Some(c) = cur.filter(|c| !c.as_os_str().is_empty() && !txn.pack.join(c).is_dir()) {
        missing.push(c.to_string_lossy().into_owned());
        cur = c.parent();
    }
    missing.reverse();
    for rel in &missing {
        txn.journal.log(&Record::Mkdir { rel: rel.clone() })?;
        let abs = txn.pack.join(rel);
        fs::create_dir(&abs).at(&abs)?;
        fs::set_permissions(&abs, fs::Permissions::from_mode(0o755)).at(&abs)?;
    }
    Ok(missing)
}

/// Moves what unit `i` replaces (its destination and `also_remove`) into the backup area.
fn back_up(txn: &mut Txn, i: usize, u: &Unit) -> Result<()> {
    for rel in std::iter::once(&u.dst).chain(u.also_remove.iter()) {
        let p = txn.pack.join(rel);
        if exists(&p) {
            failpoint(&format!("before-backup-{i}"));
            txn.journal.log(&Record::Backup {
                unit: i,
                rel: rel.clone(),
            })?;
            move_synced(&p, &txn.dir.join("backup").join(rel), &p)?;
            failpoint(&format!("after-backup-{i}"));
        }
    }
    Ok(())
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
