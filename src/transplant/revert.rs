//! `transplant --revert`: a committed transaction (or one whose conflicts await `--continue`)
//! undone, so that the pack is exactly as it was before it. Only the newest such transaction is
//! kept, so it is the one reverted. A revert is journaled like the swap and finished by
//! recovery when interrupted, never undone.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::transplant::failpoint::failpoint;
use crate::transplant::moves::{move_back, remove_created_dirs, restore_parents};
use crate::transplant::record::{
    journal_path, list_txns, remove_txn_dir, require_plan, state_of, txn_id, Journal, Record,
    TxnState,
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
