//! Recovery: bringing a pack whose transplant was interrupted back to a consistent state.
//! Uncommitted transactions are rolled back from their journals, interrupted reverts are
//! finished, finished transaction directories are removed. Every undo checks what exists, so a
//! crash during recovery is repaired by the next one. A transaction whose `plan.json` cannot be
//! read after the pack was touched is never rolled back blindly: recovery stops with an error
//! and the transaction directory (its backups included) stays.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::transplant::moves::{exists, move_back, remove_created_dirs, restore_parents};
use crate::transplant::record::{
    journal_path, list_txns, plan_path, read_plan, remove_txn_dir, state_of, txn_id, Journal,
    Record, TxnPlan, TxnState,
};
use crate::transplant::revert::revert_txn;

/// What recovery did.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// Ids of the transactions rolled back.
    pub rolled_back: Vec<String>,
    /// Ids of the transactions whose interrupted revert was finished.
    pub reverts_finished: Vec<String>,
}

impl Recovery {
    /// Whether there was nothing to do.
    pub fn is_empty(&self) -> bool {
        self.rolled_back.is_empty() && self.reverts_finished.is_empty()
    }
}

/// Brings the pack to a consistent state: uncommitted transactions are rolled back, interrupted
/// reverts finished. The caller holds the pack lock.
///
/// # Errors
/// A rollback or revert failed (see [`rollback`]); the pack stays as the failure left it and the
/// transaction stays to be recovered again.
pub fn recover(pack: &Path) -> Result<Recovery> {
    let mut rec = Recovery {
        rolled_back: Vec::new(),
        reverts_finished: Vec::new(),
    };
    for dir in list_txns(pack) {
        match state_of(&dir) {
            TxnState::Pending => {
                rollback(pack, &dir)?;
                rec.rolled_back.push(txn_id(&dir));
            }
            TxnState::Reverting => {
                revert_txn(pack, &dir)?;
                rec.reverts_finished.push(txn_id(&dir));
            }
            TxnState::Done => remove_txn_dir(&dir),
            TxnState::Committed | TxnState::Awaiting => {
                // Staging left by a crash after the swap: clutter only.
                let _ = std::fs::remove_dir_all(dir.join("stage"));
            }
        }
    }
    Ok(rec)
}

/// Whether a transaction of the pack is pending (to roll back) or a revert unfinished: what a
/// reading command must recover first.
pub fn pending(pack_root: &Path) -> bool {
    list_txns(pack_root)
        .iter()
        .any(|d| matches!(state_of(d), TxnState::Pending | TxnState::Reverting))
}

/// Undoes an uncommitted transaction from its journal, newest step first; idempotent. The
/// transaction directory is removed only once the pack is back as it was.
///
/// # Errors
/// The journal cannot be read; `plan.json` is damaged, or missing although the journal shows
/// the pack was changed (`Corrupt`: nothing is undone or removed); a move, fsync or mtime
/// failed; a directory the swap created cannot be removed.
pub fn rollback(pack: &Path, dir: &Path) -> Result<()> {
    let journal = journal_path(dir);
    if !exists(&journal) {
        // A crash between creating the directory and its journal: the pack was not touched
        // (the journal exists before the first change), so only the directory goes.
        remove_txn_dir(dir);
        return Ok(());
    }
    let records = Journal::read(&journal)?;
    let plan = plan_for_rollback(dir, &records)?;
    for r in records.iter().rev() {
        match r {
            Record::Install { unit } => {
                let u = plan
                    .as_ref()
                    .and_then(|p| p.units.get(*unit))
                    .ok_or_else(|| {
                        refuse(
                            dir,
                            format!("has no unit {unit}, which the journal installed"),
                        )
                    })?;
                let live = pack.join(&u.dst);
                move_back(&live, &dir.join("stage").join(&u.dst), &live)?;
            }
            Record::Backup { rel, .. } => {
                let live = pack.join(rel);
                move_back(&dir.join("backup").join(rel), &live, &live)?;
            }
            _ => {}
        }
    }
    remove_created_dirs(pack, &records)?;
    if let Some(p) = &plan {
        restore_parents(pack, &p.parents)?;
    }
    Journal::open(&journal)?.log(&Record::RolledBack)?;
    remove_txn_dir(dir);
    Ok(())
}

/// The plan a rollback needs: none is fine only while the journal shows no change to the pack.
fn plan_for_rollback(dir: &Path, records: &[Record]) -> Result<Option<TxnPlan>> {
    let touched = records.iter().any(Record::touches_pack);
    match read_plan(dir) {
        Ok(Some(p)) => Ok(Some(p)),
        Ok(None) if !touched => Ok(None),
        Ok(None) => Err(refuse(
            dir,
            "is missing, but the journal shows the pack was changed".into(),
        )),
        Err(e) => Err(refuse(dir, format!("cannot be read ({e})"))),
    }
}

/// The error that stops a rollback without its plan.
fn refuse(dir: &Path, why: String) -> Error {
    Error::corrupt(
        plan_path(dir),
        format!(
            "{why}: not rolling back; the transaction directory {} and its backups are kept \
             (restore plan.json, then run `carryover transplant --recover`)",
            dir.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction that backed up `conf/a` and installed unit 0, with a damaged plan.json.
    fn crashed_with_damaged_plan(pack: &Path) -> std::path::PathBuf {
        let dir = crate::transplant::record::txn_root(pack).join("1-1");
        std::fs::create_dir_all(dir.join("backup/conf")).unwrap();
        std::fs::write(dir.join("backup/conf/a"), b"old").unwrap();
        std::fs::create_dir_all(pack.join("conf")).unwrap();
        std::fs::write(pack.join("conf/a"), b"new").unwrap();
        let mut j = Journal::create(&journal_path(&dir)).unwrap();
        for r in [
            Record::Backup {
                unit: 0,
                rel: "conf/a".into(),
            },
            Record::Install { unit: 0 },
        ] {
            j.log(&r).unwrap();
        }
        std::fs::write(plan_path(&dir), b"{\"id\": \"1-1\", \"units\": [").unwrap();
        dir
    }

    #[test]
    fn a_damaged_plan_stops_rollback_and_keeps_the_backups() {
        let pack = tempfile::tempdir().unwrap();
        let dir = crashed_with_damaged_plan(pack.path());
        let err = recover(pack.path()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("plan.json"), "{err}");
        assert_eq!(std::fs::read(dir.join("backup/conf/a")).unwrap(), b"old");
        assert_eq!(std::fs::read(pack.path().join("conf/a")).unwrap(), b"new");
        assert_eq!(state_of(&dir), TxnState::Pending);
        // A missing plan after the pack was touched stops it too.
        std::fs::remove_file(plan_path(&dir)).unwrap();
        assert!(rollback(pack.path(), &dir).is_err());
        assert!(dir.join("backup/conf/a").exists());
    }

    #[test]
    fn without_changes_to_the_pack_a_missing_plan_is_fine() {
        let pack = tempfile::tempdir().unwrap();
        let dir = crate::transplant::record::txn_root(pack.path()).join("1-1");
        std::fs::create_dir_all(&dir).unwrap();
        Journal::create(&journal_path(&dir))
            .unwrap()
            .log(&Record::Staged)
            .unwrap();
        let rec = recover(pack.path()).unwrap();
        assert_eq!(rec.rolled_back, vec!["1-1".to_string()]);
        assert!(!dir.exists());
    }
}
