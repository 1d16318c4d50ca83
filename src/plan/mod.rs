//! The select step: a manifest's rules resolved against a detected pack into concrete entries,
//! with per-rule status, H2 details, liveness and warnings. Reads only.
//!
//! `inspect`, `snapshot`, `verify --against` and `transplant` all start from a [`Plan`].
//! The walk of a rule's tree is in `walk.rs`, H2 resolution in `h2.rs`, the files that tell
//! whether a server holds the pack in `probes.rs`.

mod h2;
mod model;
mod probes;
mod walk;

pub use model::{Entry, EntryKind, H2Info, Plan, RulePlan, Status, Warning, WarningCode};

use std::fs;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::manifest::{Rule, RuleKind, Selection};
use crate::pack::{Liveness, Location, Pack};

impl Plan {
    /// Resolves every rule of `selection` against `pack` and probes liveness.
    ///
    /// # Errors
    /// A rule's tree cannot be walked, or holds something that is not a file, directory or
    /// symlink.
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
    ///
    /// # Errors
    /// No manifest for the pack's line, or as [`Plan::build`].
    pub fn for_pack(pack: Pack, manifest: Option<&Path>) -> Result<Plan> {
        let id = &pack.identity;
        let sel = crate::manifest::select(&pack.root, &id.product, &id.version, manifest)?;
        Plan::build(pack, sel)
    }

    /// Refuses a plan whose required rules found nothing, unless each is in `allowed` (the
    /// operator's `--allow-missing RULE`): a snapshot without WSO2AM_DB is not a backup.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming every missing rule, the path looked at, and the flag.
    pub fn check_required(&self, allowed: &[String]) -> Result<()> {
        let missing: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.required && r.status == Status::Missing)
            .filter(|r| !allowed.iter().any(|a| a == &r.name))
            .map(|r| {
                let at = r
                    .path
                    .as_deref()
                    .or(r.h2.as_ref().and_then(|h| match &h.location {
                        Location::InPack(p) => Some(p.as_path()),
                        _ => None,
                    }))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "its location".into());
                format!("{} (looked at {at})", r.name)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(crate::Error::invalid(
            &self.pack.root,
            format!(
                "required state missing: {}; take the snapshot anyway with --allow-missing RULE for each",
                missing.join(", ")
            ),
        ))
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
        root_link: None,
        entries: Vec::new(),
    };
    if let Some(path) = rule.kind.path() {
        rp.root_link = walk::root_link(&pack.root, path);
    }
    match &rule.kind {
        RuleKind::Dir { path } | RuleKind::Lucene { path } => {
            rp.entries = walk::walk(&pack.root, path, rule, idx, None)?;
        }
        RuleKind::Glob { path, include, .. } => {
            rp.entries = walk::walk(&pack.root, path, rule, idx, Some(include))?;
        }
        RuleKind::File { path } | RuleKind::Config { path, .. } => {
            let abs = pack.root.join(path);
            if let Ok(meta) = fs::metadata(&abs).or_else(|_| fs::symlink_metadata(&abs)) {
                if !meta.is_dir() {
                    rp.entries
                        .push(Entry::from_meta(path.clone(), &meta, &abs, idx)?);
                }
            }
        }
        RuleKind::H2 { database } => {
            let info = h2::resolve(pack, database, warnings);
            h2_entries(pack, rule, idx, database, &info, &mut rp, warnings)?;
            rp.path = info.file.clone();
            rp.h2 = Some(info);
        }
    }
    if rp.status != Status::External && !rp.entries.is_empty() {
        rp.status = Status::Found;
    }
    link_warnings(&rp, warnings);
    for e in &rp.entries {
        if let EntryKind::File { size } = e.kind {
            rp.files += 1;
            rp.bytes += size;
        }
    }
    Ok(rp)
}

/// Warnings about links: a rule root reached through a symlink (carried as content; the new
/// pack gets a real directory), and links inside the state that point out of the pack.
fn link_warnings(rp: &RulePlan, warnings: &mut Vec<Warning>) {
    if let Some(l) = &rp.root_link {
        warnings.push(Warning {
            code: WarningCode::RootSymlink,
            message: format!(
                "{} is a symlink to {}: rule {} carries what it points to, not the link; \
                 after a transplant the new pack holds the content itself (recreate the link to keep the state on that disk)",
                l.link.display(),
                l.target.display(),
                rp.name
            ),
        });
    }
    let outside: Vec<String> = rp
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Symlink { target } if !crate::relpath::link_stays_inside(&e.rel, target) => {
                Some(format!("{} -> {}", e.rel.display(), target.display()))
            }
            _ => None,
        })
        .collect();
    if !outside.is_empty() {
        warnings.push(Warning {
            code: WarningCode::ExternalLink,
            message: format!(
                "rule {}: {} symlink(s) point outside the pack ({}); a transplant recreates each as a \
                 link and never writes through it (--external-links skip leaves them out)",
                rp.name,
                outside.len(),
                outside.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
}

/// The database file of an h2 rule (with 1.x LOB storage), or the external-database warning.
fn h2_entries(
    pack: &Pack,
    rule: &Rule,
    idx: usize,
    database: &str,
    info: &H2Info,
    rp: &mut RulePlan,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
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
    Ok(())
}
