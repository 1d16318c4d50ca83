//! The verification report: every problem found, per-rule tallies, and what the result means
//! as an [`Outcome`] (clean, mismatches) or an error (nothing readable). Produced by check.rs
//! and against.rs; rendered by the CLI.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::outcome::Outcome;

/// The kind of a verification problem (kebab-case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The compressed stream or tar structure is damaged or truncated.
    CorruptStream,
    /// snapshot.json / index.json / SHA256SUMS absent or unreadable.
    MissingRecord,
    /// Listed in the index (or snapshot) but not present.
    Missing,
    /// Present but not listed in the index (or snapshot).
    Extra,
    /// Content, size, type, mode, mtime or link differ.
    Changed,
    /// SHA256SUMS disagrees with the index or is malformed.
    Sums,
    /// The NAME.sha256 sidecar disagrees with the archive.
    Sidecar,
    /// The same path twice in the archive.
    Duplicate,
    /// An entry no restore may write: not a plain relative path, through a symlink, a symlink
    /// out of the pack.
    Unsafe,
    /// A record above the size carryover reads (not read).
    Oversized,
    /// Same content, but the mode or mtime differ.
    Metadata,
    /// The archive's records out of place: snapshot.json not first, one twice, data after
    /// the index.
    Layout,
}

/// One problem: what, where, under which rule.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The path concerned (an entry, a record, the archive or its sidecar).
    pub path: String,
    /// The rule of the entry, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What is wrong.
    pub detail: String,
}

impl Problem {
    /// A problem of `kind` at `path`.
    pub fn new(
        kind: ProblemKind,
        path: &str,
        rule: Option<&str>,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            kind,
            path: path.to_string(),
            rule: rule.map(str::to_string),
            detail: detail.into(),
        }
    }
}

/// How one rule fared.
#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    /// Rule name.
    pub name: String,
    /// Entries of the rule checked.
    pub checked: u64,
    /// Problems attributed to the rule.
    pub problems: u64,
}

/// The result of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The archive verified.
    pub archive: PathBuf,
    /// The pack compared with it (`--against`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<PathBuf>,
    /// No problems, and readable.
    pub ok: bool,
    /// False when nothing could be read (exit 1 rather than 5).
    pub readable: bool,
    /// SHA-256 of the archive file.
    pub archive_sha256: Option<String>,
    /// Product id from snapshot.json.
    pub product: Option<String>,
    /// Product version from snapshot.json.
    pub version: Option<String>,
    /// Data entries in the archive.
    pub entries: u64,
    /// Regular files in the archive.
    pub files: u64,
    /// Content bytes in the archive.
    pub bytes: u64,
    /// Per-rule tallies.
    pub rules: Vec<RuleResult>,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
    /// Things to know that are not problems.
    pub warnings: Vec<String>,
    /// Wall time of the verification.
    pub seconds: f64,
}

impl VerifyReport {
    /// The problems attributed to `rule`.
    pub fn problem_paths_for_rule(&self, rule: &str) -> impl Iterator<Item = &Problem> {
        let rule = rule.to_string();
        self.problems
            .iter()
            .filter(move |p| p.rule.as_deref() == Some(rule.as_str()))
    }

    /// What the report means: [`Outcome::Ok`] when clean, [`Outcome::Mismatch`] (exit 5) when
    /// it lists problems.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (exit 1) when nothing could be read from the archive, with the first
    /// problem's detail.
    pub fn outcome(&self) -> Result<Outcome> {
        if self.ok {
            Ok(Outcome::Ok)
        } else if self.readable {
            Ok(Outcome::Mismatch)
        } else {
            Err(Error::corrupt(
                &self.archive,
                self.problems
                    .first()
                    .map(|p| p.detail.clone())
                    .unwrap_or_else(|| "unreadable".into()),
            ))
        }
    }
}
