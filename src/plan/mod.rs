//! The select step: a manifest's rules resolved against a detected pack into concrete entries,
//! with per-rule status, H2 details, liveness and warnings. Reads only.
//!
//! `inspect`, `snapshot`, `verify --against` and `transplant` all start from a [`Plan`].
//! The walk of a rule's tree is in `walk.rs`, H2 resolution in `h2.rs`, the files that tell
//! whether a server holds the pack in `probes.rs`.

mod h2;
mod probes;
mod walk;

pub use h2::H2Info;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::manifest::{Kind, Manifest, Rule, RuleKind, Selection, Strategy};
use crate::pack::{Liveness, Location, Pack};

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
    #[serde(skip)]
    /// Every entry found, in walk order.
    pub entries: Vec<Entry>,
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

impl Plan {
    /// Resolves every rule of `selection` against `pack` and probes liveness.
    pub fn build(pack: Pack, selection: Selection) -> Result<Plan> {
        let Selection { manifest, reason } = selection;
        let mut rules = Vec::new();
        let mut warnings = Vec::new();
        for (i, rule) in manifest.rules.iter().enumerate() {
            let rp = resolve_rule(&pack, rule, i, &mut warnings)?;
            if rule.required && rp.status == Status::Missing {
                warnings.push(Warning {
                    code: WarningCode::RequiredMissing,
                    message: format!(
                        "required rule {} found nothing at {}",
                        rule.name,
                        rp.path
                            .as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "its location".into())
                    ),
                });
            }
            rules.push(rp);
        }
        if pack.profile.is_profiled() {
            let what: Vec<String> = pack
                .profile
                .backups
                .iter()
                .map(|p| p.display().to_string())
                .chain(
                    pack.profile
                        .profile
                        .iter()
                        .map(|p| format!("deployment.toml equals the {p} profile template")),
                )
                .collect();
            warnings.push(Warning {
                code: WarningCode::ProfileLeftovers,
                message: format!(
                    "profile optimisation leftovers: {}; re-run profileSetup.sh with --skipConfigOptimization after an update",
                    what.join(", ")
                ),
            });
        }
        let probes = probes::lock_probes(&pack, &rules);
        let liveness = Liveness::probe(&pack.root, &probes);
        Ok(Plan {
            lucene_major: pack.engines.lucene_major(),
            manifest: manifest.name.clone(),
            manifest_origin: manifest.origin.to_string(),
            manifest_reason: reason,
            manifest_full: manifest,
            liveness,
            rules,
            warnings,
            pack,
        })
    }

    /// Selects the manifest for `pack` (the user's, else the built-in for its line) and plans.
    pub fn for_pack(pack: Pack, manifest: Option<&Path>) -> Result<Plan> {
        let id = &pack.identity;
        let sel = crate::manifest::select(&pack.root, &id.product, &id.version, manifest)?;
        Plan::build(pack, sel)
    }

    /// Every entry of every rule, in rule order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.rules.iter().flat_map(|r| r.entries.iter())
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&RulePlan> {
        self.rules.iter().find(|r| r.name == name)
    }
}

fn resolve_rule(
    pack: &Pack,
    rule: &Rule,
    idx: usize,
    warnings: &mut Vec<Warning>,
) -> Result<RulePlan> {
    let mut rp = RulePlan {
        name: rule.name.clone(),
        kind: rule.kind.kind(),
        required: rule.required,
        strategy: rule.strategy,
        travels_with: rule.travels_with.clone(),
        path: rule.kind.path().map(Path::to_path_buf),
        status: Status::Missing,
        files: 0,
        bytes: 0,
        h2: None,
        entries: Vec::new(),
    };
    match &rule.kind {
        RuleKind::Dir { path } | RuleKind::Lucene { path } => {
            rp.entries = walk::walk(&pack.root, path, rule, idx, None)?;
        }
        RuleKind::Glob { path, include, .. } => {
            rp.entries = walk::walk(&pack.root, path, rule, idx, Some(include))?;
        }
        RuleKind::File { path } | RuleKind::Config { path, .. } => {
            let abs = pack.root.join(path);
            if let Ok(meta) = fs::symlink_metadata(&abs) {
                if !meta.is_dir() {
                    rp.entries
                        .push(Entry::from_meta(path.clone(), &meta, &abs, idx)?);
                }
            }
        }
        RuleKind::H2 { database } => {
            let info = h2::resolve(pack, database, warnings);
            match (&info.location, &info.file) {
                (Location::InPack(_), Some(f)) => {
                    let abs = pack.root.join(f);
                    let meta = fs::symlink_metadata(&abs).at(&abs)?;
                    rp.entries
                        .push(Entry::from_meta(f.clone(), &meta, &abs, idx)?);
                    // 1.x PageStore LOB storage travels with its database.
                    let lobs = abs.with_file_name(format!("{database}.lobs.db"));
                    if f.to_string_lossy().ends_with(".h2.db") && lobs.is_dir() {
                        let rel = f.with_file_name(format!("{database}.lobs.db"));
                        rp.entries
                            .extend(walk::walk(&pack.root, &rel, rule, idx, None)?);
                    }
                }
                (Location::External(p), _) => {
                    rp.status = Status::External;
                    warnings.push(Warning {
                        code: WarningCode::ExternalDatabase,
                        message: format!(
                            "{database} is configured outside the pack ({}, from {}); carryover does not carry it",
                            p.display(),
                            info.resolved_from
                        ),
                    });
                }
                _ => {}
            }
            rp.path = info.file.clone();
            rp.h2 = Some(info);
        }
    }
    if rp.status != Status::External && !rp.entries.is_empty() {
        rp.status = Status::Found;
    }
    for e in &rp.entries {
        if let EntryKind::File { size } = e.kind {
            rp.files += 1;
            rp.bytes += size;
        }
    }
    Ok(rp)
}
