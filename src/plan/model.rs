//! The plan's records: what a pack holds for each rule of its manifest, entry by entry, with H2
//! details, liveness and warnings. Built by [`super::Plan::build`]; read by every act step.

use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::{Kind, Manifest, Strategy};
use crate::pack::{H2Format, Liveness, Location, Pack};

/// What a path in the pack is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Its size when selected.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink {
        /// Its target, as stored.
        target: PathBuf,
    },
}

/// One concrete path a rule carries, with the metadata seen when it was selected.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Relative to the pack root.
    pub rel: PathBuf,
    #[serde(flatten)]
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Index of the rule in the plan.
    #[serde(skip)]
    pub rule: usize,
}

/// Whether a rule found its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The rule found state.
    Found,
    /// Nothing at the rule's path.
    Missing,
    /// Declared outside the pack (an H2 URL pointing elsewhere): reported, not carried.
    External,
}

/// One rule resolved against the pack.
#[derive(Debug, Clone, Serialize)]
pub struct RulePlan {
    /// The rule's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The manifest requires it.
    pub required: bool,
    /// How it is carried.
    pub strategy: Strategy,
    /// The rule it travels with.
    pub travels_with: Option<String>,
    /// Pack-relative path the rule resolved to (the database file for h2 rules).
    pub path: Option<PathBuf>,
    /// Found, missing or external.
    pub status: Status,
    /// Regular files found.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// H2 details (h2 rules).
    pub h2: Option<H2Info>,
    /// The rule's root is (or lies under) a symlink: its content is carried, not the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_link: Option<RootLink>,
    /// Every entry found, in walk order.
    #[serde(skip)]
    pub entries: Vec<Entry>,
}

/// A symlink on the way to a rule's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RootLink {
    /// The link (pack-relative): the rule's root or an ancestor of it.
    pub link: PathBuf,
    /// Its target as stored.
    pub target: PathBuf,
    /// Where it resolves (None when dangling).
    pub resolved: Option<PathBuf>,
}

/// What a warning is about (its `code` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningCode {
    /// A required rule found nothing.
    RequiredMissing,
    /// The pack was profile-optimised (profileSetup.sh leftovers).
    ProfileLeftovers,
    /// A database is configured outside the pack.
    ExternalDatabase,
    /// Both `X.h2.db` and `X.mv.db` exist.
    H2AndMv,
    /// The pack's own H2 cannot open a database's format.
    H2FormatMismatch,
    /// A database was not closed cleanly.
    H2Unclean,
    /// A rule's root is a symlink (or lies under one): the content is carried, not the link.
    RootSymlink,
    /// A symlink inside the state points outside the pack.
    ExternalLink,
}

impl WarningCode {
    /// The code as JSON spells it (`h2-unclean`).
    pub fn name(self) -> &'static str {
        match self {
            WarningCode::RequiredMissing => "required-missing",
            WarningCode::ProfileLeftovers => "profile-leftovers",
            WarningCode::ExternalDatabase => "external-database",
            WarningCode::H2AndMv => "h2-and-mv",
            WarningCode::H2FormatMismatch => "h2-format-mismatch",
            WarningCode::H2Unclean => "h2-unclean",
            WarningCode::RootSymlink => "root-symlink",
            WarningCode::ExternalLink => "external-link",
        }
    }
}

impl std::fmt::Display for WarningCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// A warning the user should read before trusting the result.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    /// What it is about.
    pub code: WarningCode,
    /// One line for the operator.
    pub message: String,
}

/// The manifest resolved against a pack.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The detected pack.
    pub pack: Pack,
    /// The manifest's name.
    pub manifest: String,
    /// Where it came from.
    pub manifest_origin: String,
    /// Why it was chosen.
    pub manifest_reason: String,
    /// The Lucene major of the pack's engine.
    pub lucene_major: Option<u32>,
    /// Whether a server holds the pack, with the evidence.
    pub liveness: Liveness,
    /// Every rule, resolved.
    pub rules: Vec<RulePlan>,
    /// What the operator should read first.
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    /// The manifest itself.
    pub manifest_full: Manifest,
}

/// H2 details of an `h2` rule.
#[derive(Debug, Clone, Serialize)]
pub struct H2Info {
    /// The database name.
    pub database: String,
    /// `deployment.toml [database.local]`, or `default location` when not declared.
    pub resolved_from: String,
    /// Where its URL points.
    pub location: Location,
    /// The database file, relative to the pack (None when missing or external).
    pub file: Option<PathBuf>,
    /// The on-disk format, from the file's own header.
    pub format: Option<H2Format>,
    /// Whether this pack's own H2 engine opens that format (None when unknown).
    pub opened_by_pack_engine: Option<bool>,
    /// Side files found next to the database (never carried).
    pub side_files: Vec<PathBuf>,
    /// Both `X.h2.db` and `X.mv.db` exist.
    pub both_extensions: bool,
    /// A temp/compaction file or a missing `clean:1` says it was not closed cleanly.
    pub unclean: bool,
}
