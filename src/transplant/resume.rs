//! `transplant --continue`: the transaction whose config conflicts await resolution is
//! finished. Every conflict's `FILE.final` must exist and parse before anything changes; then
//! each is installed (journaled first, so a crash is finished by the next `--continue`), the
//! side files are removed, everything else is verified unchanged and the transaction commits.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::merge;
use crate::outcome::Outcome;
use crate::transplant::configs::SIDE_SUFFIXES;
use crate::transplant::failpoint::failpoint;
use crate::transplant::moves::{exists, move_synced, restore_parents};
use crate::transplant::record::{
    awaiting, journal_path, remove_older_txns, require_plan, Journal, Record, TxnPlan,
};
use crate::transplant::stage::Staged;
use crate::transplant::swap::verify_target;

/// Why a `FILE.final` cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalProblem {
    /// It does not exist yet.
    Missing,
    /// It does not parse as the file's format (why).
    Invalid(String),
}

/// A conflict whose resolution is not (yet) installable.
#[derive(Debug, Clone, Serialize)]
pub struct Unresolved {
    /// The `FILE.final` path.
    pub file: PathBuf,
    /// What is wrong with it.
    pub problem: FinalProblem,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            FinalProblem::Missing => write!(
                f,
                "{}: missing; write your resolution there",
                self.file.display()
            ),
            FinalProblem::Invalid(why) => write!(f, "{}: {why}", self.file.display()),
        }
    }
}

/// What `--continue` did.
#[derive(Debug, Clone, Serialize)]
pub struct ContinueReport {
    /// The pack's root.
    pub pack: PathBuf,
    /// Config files installed from their `FILE.final` (all of them once committed).
    pub resolved: Vec<String>,
    /// Resolutions still missing or invalid: nothing was changed.
    pub unresolved: Vec<Unresolved>,
}

impl ContinueReport {
    /// [`Outcome::Conflicts`] (exit 3) while resolutions are missing or invalid, else
    /// [`Outcome::Ok`] (committed).
    pub fn outcome(&self) -> Outcome {
        if self.unresolved.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Conflicts
        }
    }

    /// Every unresolved `FILE.final` and why, in one line (`; ` between them), when there are
    /// any.
    pub fn unresolved_problems(&self) -> Option<String> {
        if self.unresolved.is_empty() {
            return None;
        }
        let problems: Vec<String> = self.unresolved.iter().map(|u| u.to_string()).collect();
        Some(problems.join("; "))
    }
}

/// Finishes the transaction of the pack at `pack_root` that awaits `--continue`. The caller
/// holds the pack lock.
///
/// # Errors
/// `Invalid` when no transplant awaits `--continue`, `plan.json` is missing or unreadable, or
/// the pack changed since the transplant; an I/O or journal error.
pub fn continue_txn(pack_root: &Path) -> Result<ContinueReport> {
    let Some(dir) = awaiting(pack_root) else {
        return Err(Error::invalid(pack_root, "no transplant awaits --continue"));
    };
    let plan = require_plan(&dir, "")?;
    let records = Journal::read(&journal_path(&dir))?;
    let done: Vec<&str> = records
        .iter()
        .filter_map(|r| match r {
            Record::Resolved { path } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let mut report = ContinueReport {
        pack: pack_root.to_path_buf(),
        resolved: Vec::new(),
        unresolved: check_finals(pack_root, &plan, &done),
    };
    if !report.unresolved.is_empty() {
        return Ok(report);
    }
    let mut journal = Journal::open(&journal_path(&dir))?;
    if !records.contains(&Record::ContinueBegin) {
        journal.log(&Record::ContinueBegin)?;
    }
    report.resolved = install_finals(pack_root, &plan, &done, &mut journal)?;
    restore_parents(pack_root, &plan.parents)?;
    verify_rest(pack_root, &plan)?;
    journal.log(&Record::Committed)?;
    remove_older_txns(pack_root, &dir);
    Ok(report)
}

/// The `FILE.final` of a conflict.
fn final_of(pack: &Path, path: &str) -> PathBuf {
    pack.join(format!("{path}.final"))
}

/// Every conflict not yet installed must have a `FILE.final` that parses.
fn check_finals(pack: &Path, plan: &TxnPlan, done: &[&str]) -> Vec<Unresolved> {
    let mut out = Vec::new();
    for c in plan
        .conflicts
        .iter()
        .filter(|c| !done.contains(&c.path.as_str()))
    {
        let file = final_of(pack, &c.path);
        let problem = match std::fs::read(&file) {
            Err(_) => Some(FinalProblem::Missing),
            Ok(b) => conflict_marker(&b)
                .or_else(|| merge::parses(c.format, &b).err())
                .map(FinalProblem::Invalid),
        };
        if let Some(problem) = problem {
            out.push(Unresolved { file, problem });
        }
    }
    out
}

/// The first line that is a diff3 conflict marker (`<<<<<<< `, `=======`, `>>>>>>> ` at line
/// start, as git and ucf refuse them), in any format: the resolution is not finished.
fn conflict_marker(bytes: &[u8]) -> Option<String> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .find_map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let marker = line.starts_with(b"<<<<<<< ")
                || line == b"<<<<<<<"
                || line.starts_with(b">>>>>>> ")
                || line == b">>>>>>>"
                || line == b"=======";
            marker.then(|| {
                format!(
                    "line {}: a conflict marker ({}) is still there; finish the resolution",
                    i + 1,
                    String::from_utf8_lossy(&line[..line.len().min(7)])
                )
            })
        })
}

/// Installs every `FILE.final` (journaled before the rename; one logged by a run that crashed
/// before its rename is finished) and removes the side files; returns the files.
fn install_finals(
    pack: &Path,
    plan: &TxnPlan,
    done: &[&str],
    journal: &mut Journal,
) -> Result<Vec<String>> {
    let mut resolved = Vec::new();
    for c in &plan.conflicts {
        let live = pack.join(&c.path);
        let fin = final_of(pack, &c.path);
        if !done.contains(&c.path.as_str()) {
            journal.log(&Record::Resolved {
                path: c.path.clone(),
            })?;
            failpoint("continue-after-resolved");
            move_synced(&fin, &live, &live)?;
        } else if exists(&fin) {
            move_synced(&fin, &live, &live)?;
        }
        for suffix in SIDE_SUFFIXES {
            let side = pack.join(format!("{}{suffix}", c.path));
            if exists(&side) {
                std::fs::remove_file(&side).at(&side)?;
            }
        }
        resolved.push(c.path.clone());
    }
    Ok(resolved)
}

/// Everything but the conflicts and their side files must still be exactly what was carried.
fn verify_rest(pack: &Path, plan: &TxnPlan) -> Result<()> {
    let conflict_paths: Vec<String> = plan
        .conflicts
        .iter()
        .flat_map(|c| {
            std::iter::once(c.path.clone())
                .chain(SIDE_SUFFIXES.iter().map(move |s| format!("{}{s}", c.path)))
        })
        .collect();
    let rest: Vec<Staged> = plan
        .staged
        .iter()
        .filter(|s| !conflict_paths.contains(&s.dst))
        .cloned()
        .collect();
    let problems = verify_target(pack, &rest)?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        pack,
        format!(
            "the pack changed since the transplant: {}",
            problems.join("; ")
        ),
    ))
}
