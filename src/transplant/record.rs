//! The transaction's records on disk, and nothing that changes the pack:
//! `NEW/.carryover/txn/<id>/{journal, plan.json, stage/, backup/, removed/}`.
//!
//! The journal holds one JSON [`Record`] per line, appended and fsync'd *before* the step it
//! names is taken, so that recovery can undo or finish whatever a crash interrupted; a torn last
//! line is ignored. `plan.json` ([`TxnPlan`]) is written atomically before the first change to
//! the pack and says what the swap does. The [`TxnState`] of a transaction directory is read
//! from its journal alone.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::manifest::ConfigFormat;
use crate::transplant::plan::RuleDecision;
use crate::transplant::stage::Staged;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Record {
    /// The transaction exists; nothing in the pack has changed yet.
    Begin {
        /// The transaction's id (its directory name).
        id: String,
        /// The source, as given.
        source: String,
        /// When it began (RFC 3339).
        time: String,
    },
    /// Staging finished and was verified against the source index.
    Staged,
    /// About to create a missing directory in the pack.
    Mkdir {
        /// Pack-relative path of the directory.
        rel: String,
    },
    /// About to move the pack's `rel` into the backup area (unit `unit`).
    Backup {
        /// Index into [`TxnPlan::units`].
        unit: usize,
        /// Pack-relative path moved aside.
        rel: String,
    },
    /// About to move the staged unit into the pack.
    Install {
        /// Index into [`TxnPlan::units`].
        unit: usize,
    },
    /// Every unit is in place.
    Swapped,
    /// Swapped and verified, but config conflicts await `--continue`.
    Conflicts {
        /// Pack-relative paths of the conflicting files.
        files: Vec<String>,
    },
    /// `--continue` started.
    ContinueBegin,
    /// About to install `path.final` as `path`.
    Resolved {
        /// Pack-relative path of the resolved file.
        path: String,
    },
    /// The pack matches the source; the transaction holds.
    Committed,
    /// Rolled back after a failure; the pack is as it was.
    RolledBack,
    /// A revert of this (committed) transaction started.
    RevertBegin,
    /// About to move the installed unit out of the pack.
    RevertRemove {
        /// Index into [`TxnPlan::units`].
        unit: usize,
    },
    /// About to move the unit's backups back.
    RevertRestore {
        /// Index into [`TxnPlan::units`].
        unit: usize,
    },
    /// The pack is back to its state before the transaction.
    Reverted,
}

impl Record {
    /// Whether the step this record announces changes the pack's tree.
    pub fn touches_pack(&self) -> bool {
        matches!(
            self,
            Record::Mkdir { .. } | Record::Backup { .. } | Record::Install { .. }
        )
    }
}

/// An open journal, appended to.
pub struct Journal {
    file: File,
    /// Where it is.
    pub path: PathBuf,
}

impl Journal {
    /// Creates a new journal (it must not exist).
    ///
    /// # Errors
    /// It exists or cannot be created.
    pub fn create(path: &Path) -> Result<Journal> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .at(path)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing journal for appending.
    ///
    /// # Errors
    /// It cannot be opened.
    pub fn open(path: &Path) -> Result<Journal> {
        let file = OpenOptions::new().append(true).open(path).at(path)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends a record and makes it durable.
    ///
    /// # Errors
    /// The write or the fsync failed.
    pub fn log(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_string(r).expect("serialisable");
        line.push('\n');
        self.file.write_all(line.as_bytes()).at(&self.path)?;
        self.file.sync_data().at(&self.path)
    }

    /// Every complete record; a torn last line (crash mid-write) is ignored.
    ///
    /// # Errors
    /// The journal cannot be read.
    pub fn read(path: &Path) -> Result<Vec<Record>> {
        let f = File::open(path).at(path)?;
        let mut out = Vec::new();
        for line in BufReader::new(f).lines() {
            let line = line.at(path)?;
            match serde_json::from_str(&line) {
                Ok(r) => out.push(r),
                Err(_) => break,
            }
        }
        Ok(out)
    }
}

/// One swap unit: a path of the new pack replaced as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unit {
    /// Pack-relative path installed from staging.
    pub dst: String,
    /// Other paths moved aside with it (`X.h2.db` when `X.mv.db` arrives).
    pub also_remove: Vec<String>,
    /// The rule it belongs to.
    pub rule: String,
}

/// A config file whose merge conflicted: it waits for `FILE.final` and `--continue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conflict {
    /// Pack-relative path of the file (the operator's version is in place).
    pub path: String,
    /// The syntax `FILE.final` must parse as.
    pub format: ConfigFormat,
}

/// What the transaction will do, written to `plan.json` before the first swap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxnPlan {
    /// The transaction's id.
    pub id: String,
    /// The source, as given.
    pub source: String,
    /// What the swap installs, in order.
    pub units: Vec<Unit>,
    /// What the pack must hold after the swap.
    pub staged: Vec<Staged>,
    /// mtimes of the directories the swap modifies, restored afterwards so the pack's tree is
    /// exactly "before" or "after".
    pub parents: Vec<(String, i64, u32)>,
    /// The decisions the transaction carried out.
    pub decisions: Vec<RuleDecision>,
    /// Config files whose merge conflicted: they wait for `FILE.final` and `--continue`.
    #[serde(default)]
    pub conflicts: Vec<Conflict>,
}

const JOURNAL: &str = "journal";
const PLAN: &str = "plan.json";

/// The journal of the transaction in `dir`.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join(JOURNAL)
}

/// The `plan.json` of the transaction in `dir`.
pub fn plan_path(dir: &Path) -> PathBuf {
    dir.join(PLAN)
}

/// The transaction's plan: `None` when `plan.json` was never written.
///
/// # Errors
/// `plan.json` exists but cannot be read (`Io`) or is not a plan (`Corrupt`).
pub fn read_plan(dir: &Path) -> Result<Option<TxnPlan>> {
    let path = plan_path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::corrupt(&path, format!("not a transaction plan: {e}")))
}

/// The transaction's plan, which must be there; `what` ends the message when it is not.
///
/// # Errors
/// `Invalid`: `plan.json` is missing or unreadable.
pub fn require_plan(dir: &Path, what: &str) -> Result<TxnPlan> {
    read_plan(dir)
        .ok()
        .flatten()
        .ok_or_else(|| Error::invalid(plan_path(dir), format!("missing or unreadable{what}")))
}

/// Writes `plan.json` atomically.
///
/// # Errors
/// The write, fsync or rename failed.
pub fn write_plan(dir: &Path, plan: &TxnPlan) -> Result<()> {
    let bytes = serde_json::to_vec(plan).expect("serialisable");
    crate::fsutil::write_atomic(&plan_path(dir), &bytes, 0o600)
}

/// An open transaction: its pack, its directory and its journal.
pub struct Txn {
    /// The pack's root.
    pub pack: PathBuf,
    /// `NEW/.carryover/txn/<id>`.
    pub dir: PathBuf,
    /// Its journal, open for appending.
    pub journal: Journal,
}

/// Where a pack's transactions live.
pub fn txn_root(pack: &Path) -> PathBuf {
    pack.join(".carryover/txn")
}

impl Txn {
    /// Creates a transaction directory with `stage/`, `backup/` and a journal that says
    /// `begin`; the pack is not touched.
    ///
    /// # Errors
    /// The directory or journal cannot be created.
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
        let mut journal = Journal::create(&journal_path(&dir))?;
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

    /// The transaction's id (its directory name).
    pub fn id(&self) -> String {
        txn_id(&self.dir)
    }

    /// Where staging goes.
    pub fn stage_dir(&self) -> PathBuf {
        self.dir.join("stage")
    }
}

/// The id of the transaction in `dir` (its directory name).
pub fn txn_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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

/// The state of the transaction in `dir` (an unreadable journal counts as empty: pending).
pub fn state_of(dir: &Path) -> TxnState {
    let records = Journal::read(&journal_path(dir)).unwrap_or_default();
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

/// The transaction whose conflicts await `--continue`, if any.
pub fn awaiting(pack: &Path) -> Option<PathBuf> {
    list_txns(pack)
        .into_iter()
        .find(|d| state_of(d) == TxnState::Awaiting)
}

/// Removes every finished (rolled back or reverted) transaction directory but `keep`. Committed
/// transactions stay: they are the undo stack `--revert` walks back, newest first, until
/// `--forget` drops them.
pub fn remove_older_txns(pack: &Path, keep: &Path) {
    for old in list_txns(pack) {
        if old != keep && state_of(&old) == TxnState::Done {
            remove_txn_dir(&old);
        }
    }
}

/// The committed transactions of a pack, oldest first.
pub fn committed_txns(pack: &Path) -> Vec<PathBuf> {
    list_txns(pack)
        .into_iter()
        .filter(|d| state_of(d) == TxnState::Committed)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_tail_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal");
        let mut j = Journal::create(&p).unwrap();
        let recs = vec![
            Record::Begin {
                id: "x".into(),
                source: "s".into(),
                time: "t".into(),
            },
            Record::Mkdir { rel: "a/b".into() },
            Record::Backup {
                unit: 0,
                rel: "a/b/c".into(),
            },
            Record::Install { unit: 0 },
        ];
        for r in &recs {
            j.log(r).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"op\":\"swa")
            .unwrap();
        assert_eq!(Journal::read(&p).unwrap(), recs);
    }

    #[test]
    fn a_missing_plan_is_none_a_damaged_one_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_plan(d.path()).unwrap().is_none());
        std::fs::write(plan_path(d.path()), b"{\"id\":").unwrap();
        assert!(matches!(read_plan(d.path()), Err(Error::Corrupt { .. })));
        assert!(require_plan(d.path(), "; cannot revert").is_err());
    }
}
