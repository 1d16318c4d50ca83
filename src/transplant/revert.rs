//! `transplant --revert`: a committed transaction (or one whose conflicts await `--continue`)
//! undone, so that the pack is exactly as it was before it. Committed transactions are
//! kept as an undo stack: `--revert` undoes the newest, the next one the one before it;
//! [`forget`] drops them on purpose, and a second transplant is refused without `--force`
//! ([`refuse_second`]). A revert is journaled like the swap and finished by
//! recovery when interrupted, never undone.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::outcome::Outcome;
use crate::transplant::failpoint::failpoint;
use crate::transplant::moves::{move_back, remove_created_dirs, restore_parents};
use crate::transplant::record::{
    committed_txns, journal_path, list_txns, remove_txn_dir, require_plan, state_of, txn_id,
    Journal, Record, TxnState,
};

/// What `--revert` did.
#[derive(Debug, Clone, Serialize)]
pub struct RevertReport {
    /// The id of the reverted transaction.
    pub txn: String,
}

impl RevertReport {
    /// Always [`Outcome::Reverted`] (exit 4).
    pub fn outcome(&self) -> Outcome {
        Outcome::Reverted
    }
}

/// Reverts the newest committed (or awaiting) transaction of the pack at `pack_root`. The
/// caller holds the pack lock.
///
/// # Errors
/// `Invalid` when there is nothing to revert; see [`revert_txn`].
pub fn revert_last(pack_root: &Path) -> Result<RevertReport> {
    let last = list_txns(pack_root)
        .into_iter()
        .rfind(|d| matches!(state_of(d), TxnState::Committed | TxnState::Awaiting));
    let Some(dir) = last else {
        return Err(Error::invalid(
            pack_root,
            "no transplant to revert (none committed, or already reverted)",
        ));
    };
    revert_txn(pack_root, &dir)?;
    Ok(RevertReport { txn: txn_id(&dir) })
}

/// Reverts the transaction in `dir`: every unit moved out of the pack (newest first), its
/// backups moved back, the directories it created removed, the parents' mtimes restored.
/// Idempotent, so recovery finishes an interrupted revert by running it again.
///
/// # Errors
/// `plan.json` is missing or unreadable (`Invalid`: nothing is changed); the journal cannot be
/// read or written; a move, fsync or mtime failed; a created directory cannot be removed.
pub fn revert_txn(pack: &Path, dir: &Path) -> Result<()> {
    let plan = require_plan(dir, "; cannot revert")?;
    let records = Journal::read(&journal_path(dir))?;
    let mut journal = Journal::open(&journal_path(dir))?;
    if !records.contains(&Record::RevertBegin) {
        journal.log(&Record::RevertBegin)?;
    }
    for (i, u) in plan.units.iter().enumerate().rev() {
        journal.log(&Record::RevertRemove { unit: i })?;
        let live = pack.join(&u.dst);
        move_back(&live, &dir.join("removed").join(&u.dst), &live)?;
        failpoint(&format!("revert-after-remove-{i}"));
        journal.log(&Record::RevertRestore { unit: i })?;
        for r in &records {
            if let Record::Backup { unit, rel } = r {
                if *unit == i {
                    let live = pack.join(rel);
                    move_back(&dir.join("backup").join(rel), &live, &live)?;
                }
            }
        }
    }
    remove_created_dirs(pack, &records)?;
    restore_parents(pack, &plan.parents)?;
    journal.log(&Record::Reverted)?;
    remove_txn_dir(dir);
    Ok(())
}

/// A second transplant into a pack that holds a committed one is refused unless `force`: it
/// would overwrite what the new server wrote since.
///
/// # Errors
/// `Invalid` (exit 1) naming the newest committed transaction and what `--force`, `--revert`
/// and `--forget` do.
pub fn refuse_second(pack: &Path, force: bool) -> Result<()> {
    let Some(last) = committed_txns(pack).pop().filter(|_| !force) else {
        return Ok(());
    };
    Err(Error::invalid(
        pack,
        format!(
            "the pack already holds committed transplant {} (from {}): another transplant would overwrite \
             what its server wrote since; --force transplants on top (both stay revertible, newest first), \
             `carryover transplant --revert {p}` undoes the last one, `carryover transplant --forget {p}` \
             drops the committed backups",
            txn_id(&last),
            source_of(&last).unwrap_or_else(|| "?".into()),
            p = pack.display()
        ),
    ))
}

/// The source a transaction recorded in its `begin` record.
fn source_of(dir: &Path) -> Option<String> {
    Journal::read(&journal_path(dir))
        .ok()?
        .into_iter()
        .find_map(|r| match r {
            Record::Begin { source, .. } => Some(source),
            _ => None,
        })
}

/// What `--forget` dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Forgotten {
    /// The ids of the committed transactions whose backups were removed.
    pub txns: Vec<String>,
    /// Bytes freed.
    pub bytes: u64,
}

/// Removes every committed (and finished) transaction directory of the pack: its backups,
/// which hold databases and keystores, are gone, and nothing is revertible any more. The
/// caller holds the pack lock.
///
/// # Errors
/// A directory cannot be removed.
pub fn forget(pack: &Path) -> Result<Forgotten> {
    let mut out = Forgotten {
        txns: Vec::new(),
        bytes: 0,
    };
    for dir in list_txns(pack) {
        let state = state_of(&dir);
        if !matches!(state, TxnState::Committed | TxnState::Done) {
            continue;
        }
        out.bytes += du(&dir);
        std::fs::remove_dir_all(&dir).at(&dir)?;
        if state == TxnState::Committed {
            out.txns.push(txn_id(&dir));
        }
    }
    Ok(out)
}

/// Bytes held by the regular files under `dir` (links not followed).
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
