//! The transaction journal: one JSON record per line, appended and fsync'd *before* the step it
//! names is taken, so that recovery can undo or finish whatever a crash interrupted.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Record {
    /// The transaction exists; nothing in the pack has changed yet.
    Begin {
        id: String,
        source: String,
        time: String,
    },
    /// Staging finished and was verified against the source index.
    Staged,
    /// About to create a missing directory in the pack.
    Mkdir { rel: String },
    /// About to move the pack's `rel` into the backup area (unit `unit`).
    Backup { unit: usize, rel: String },
    /// About to move the staged unit into the pack.
    Install { unit: usize },
    /// Every unit is in place.
    Swapped,
    /// Swapped and verified, but config conflicts await `--continue`.
    Conflicts { files: Vec<String> },
    /// `--continue` started.
    ContinueBegin,
    /// About to install `path.final` as `path`.
    Resolved { path: String },
    /// The pack matches the source; the transaction holds.
    Committed,
    /// Rolled back after a failure; the pack is as it was.
    RolledBack,
    /// A revert of this (committed) transaction started.
    RevertBegin,
    /// About to move the installed unit out of the pack.
    RevertRemove { unit: usize },
    /// About to move the unit's backups back.
    RevertRestore { unit: usize },
    /// The pack is back to its state before the transaction.
    Reverted,
}

pub struct Journal {
    file: File,
    pub path: PathBuf,
}

impl Journal {
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

    pub fn open(path: &Path) -> Result<Journal> {
        let file = OpenOptions::new().append(true).open(path).at(path)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends a record and makes it durable.
    pub fn log(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_string(r).expect("serialisable");
        line.push('\n');
        self.file.write_all(line.as_bytes()).at(&self.path)?;
        self.file.sync_data().at(&self.path)
    }

    /// Every complete record; a torn last line (crash mid-write) is ignored.
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
}
