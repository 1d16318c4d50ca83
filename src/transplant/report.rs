//! What a transplant reports: [`TransplantReport`] (the plan of a dry run, or what a real run
//! did), and [`AwaitingContinue`] when the pack's previous transplant still waits for
//! `--continue`. Both map to an [`Outcome`]; neither is an error.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::outcome::Outcome;
use crate::transplant::configs::ConfigOutcome;
use crate::transplant::plan::RuleDecision;
use crate::transplant::recover::Recovery;

/// Where the source's state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// The old pack's directory.
    Pack,
    /// A snapshot archive.
    Archive,
}

impl SourceKind {
    /// The reported word, as in JSON.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Pack => "pack",
            SourceKind::Archive => "archive",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// How far a transplant went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransplantResult {
    /// Planned only (`--dry-run`): nothing was changed.
    Planned,
    /// Swapped, verified and committed; revertible.
    Committed,
    /// Swapped and verified; config conflicts await `FILE.final` and `--continue`.
    Conflicts,
}

impl TransplantResult {
    /// The reported word, as in JSON and the catalog.
    pub fn label(self) -> &'static str {
        match self {
            TransplantResult::Planned => "planned",
            TransplantResult::Committed => "committed",
            TransplantResult::Conflicts => "conflicts",
        }
    }
}

impl fmt::Display for TransplantResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// The report of a transplant (or of its plan, with `--dry-run`).
#[derive(Debug, Clone, Serialize)]
pub struct TransplantReport {
    /// The source, as given.
    pub source: PathBuf,
    /// What the source is.
    pub source_kind: SourceKind,
    /// The new pack's root.
    pub target: PathBuf,
    /// The product.
    pub product: String,
    /// The source's version.
    pub from_version: String,
    /// The new pack's version.
    pub to_version: String,
    /// Planned only.
    pub dry_run: bool,
    /// The transaction's id (a real run).
    pub txn: Option<String>,
    /// How far it went.
    pub result: TransplantResult,
    /// Per rule: what was (or would be) done, and why.
    pub rules: Vec<RuleDecision>,
    /// Per merge-strategy config file: its fate.
    pub configs: Vec<ConfigOutcome>,
    /// Config files waiting for `FILE.final` and `transplant --continue` (exit 3).
    pub conflicts: Vec<String>,
    /// What to do after the transplant.
    pub advice: Vec<String>,
    /// Files carried.
    pub files: u64,
    /// Bytes carried.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// What recovery did first, when something was interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Recovery>,
}

impl TransplantReport {
    /// [`Outcome::Conflicts`] (exit 3) when conflicts await `--continue`, else [`Outcome::Ok`].
    pub fn outcome(&self) -> Outcome {
        match self.result {
            TransplantResult::Conflicts => Outcome::Conflicts,
            TransplantResult::Planned | TransplantResult::Committed => Outcome::Ok,
        }
    }
}

/// A transplant not started: the pack's previous transplant awaits `--continue` (or
/// `--revert`). Nothing was changed.
#[derive(Debug, Clone, Serialize)]
pub struct AwaitingContinue {
    /// The new pack's root.
    pub pack: PathBuf,
    /// How many conflicts await resolution.
    pub conflicts: usize,
}

impl AwaitingContinue {
    /// Always [`Outcome::Conflicts`] (exit 3).
    pub fn outcome(&self) -> Outcome {
        Outcome::Conflicts
    }
}

impl fmt::Display for AwaitingContinue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} conflict(s) await resolution; resolve and run `carryover transplant --continue`",
            self.pack.display(),
            self.conflicts
        )
    }
}

/// What [`crate::transplant::transplant`] returns.
#[derive(Debug, Clone)]
pub enum Transplanted {
    /// It ran (or was planned, with `--dry-run`).
    Report(Box<TransplantReport>),
    /// It did not start: conflicts of the previous transplant await `--continue`.
    Awaiting(AwaitingContinue),
}

impl Transplanted {
    /// The outcome (exit code) of the command.
    pub fn outcome(&self) -> Outcome {
        match self {
            Transplanted::Report(r) => r.outcome(),
            Transplanted::Awaiting(a) => a.outcome(),
        }
    }
}
