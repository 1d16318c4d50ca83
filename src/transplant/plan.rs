//! The per-rule decisions of a transplant: for each rule of the source, carry it (replace or
//! create), keep the new pack's state, or drop the source's, and why. Decided entirely before
//! the first write, from the source's snapshot metadata and the detected new pack; the gates
//! that refuse (another product, a downgrade, an H2 database the new engine cannot open) return
//! errors from here. Reads the new pack, writes nothing.
//!
//! Vocabulary: "keep" always means *the new pack's state stays* ([`Action::Keep`], and the
//! config fates "keep" and "take new"); "drop" means *the source has state that is left behind
//! on purpose*; the config fate "keep yours" is the one phrase where the operator's file is
//! carried (its rule's action is then replace or create).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::format::{CorruptRecord, RuleRecord, SnapshotMeta};
use crate::error::{Error, Result};
use crate::manifest::{Kind, Strategy};
use crate::pack::{H2Format, Location, Pack};
use crate::plan::Status;
use crate::transplant::rules;
use crate::version::Version;

/// What a transplant does with one rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The source's state replaces the new pack's.
    Replace,
    /// The new pack has nothing there; the source's state is created.
    Create,
    /// Nothing is carried and the new pack's state stays: the source has nothing there, or
    /// (config merges) the new pack's file is already the right one.
    Keep,
    /// The source's state is deliberately left behind (outside the pack, unreadable by the new
    /// pack, `--skip-db`, or its `travels_with` partner is not carried).
    Drop,
}

/// What happens to one rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleDecision {
    /// The rule's name in the manifest.
    pub rule: String,
    /// The rule's kind.
    pub kind: Kind,
    /// What is done with it.
    pub action: Action,
    /// Why, for the operator.
    pub reason: String,
    /// Files the source holds for it.
    pub files: u64,
    /// Bytes the source holds for it.
    pub bytes: u64,
    /// Path in the source (archive path or old-pack relative path).
    pub src: Option<String>,
    /// Path in the new pack.
    pub dst: Option<String>,
    /// Other paths in the new pack moved aside with this rule (`X.h2.db` when `X.mv.db` arrives).
    pub also_remove: Vec<String>,
}

impl RuleDecision {
    /// Whether the source's state goes into the new pack (replace or create).
    pub fn carried(&self) -> bool {
        matches!(self.action, Action::Replace | Action::Create)
    }
}

/// The whole decision, with advice for after the transplant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// One per rule of the source, in the source's order.
    pub rules: Vec<RuleDecision>,
    /// What the operator should do after the transplant.
    pub advice: Vec<String>,
}

/// What the operator allowed or asked for, as the gates see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gates<'a> {
    /// H2 databases left behind on purpose (`--skip-db`).
    pub skip_db: &'a [String],
    /// `--allow-version-change`: carry state between different product versions.
    pub allow_version_change: bool,
    /// Files the source records as damaged (`--allow-corrupt` snapshots).
    pub corrupt: &'a [CorruptRecord],
    /// `--allow-damaged-db`: carry an H2 database recorded as damaged.
    pub allow_damaged_db: bool,
}

/// Decides every rule of `meta` (the source) against the detected `target`.
///
/// # Errors
/// `Incompatible` when the products differ, the source is newer than the new pack, the
/// versions differ without `--allow-version-change`, or an H2 database cannot be carried (every
/// such database is named at once); `Invalid` when a `--skip-db` names no database of the
/// source.
pub fn decide(meta: &SnapshotMeta, target: &Pack, gates: &Gates) -> Result<Decision> {
    let skip_db = gates.skip_db;
    rules::check_compatible(meta, target)?;
    rules::check_version_change(meta, target, gates.allow_version_change)?;
    check_skip_db(meta, skip_db)?;
    let engine = target.engines.h2.as_ref().map(|j| j.version.clone());
    let ctx = Context {
        meta,
        target,
        engine: engine.as_ref(),
        skip_db,
        gates,
    };
    let mut refusals = Vec::new();
    let mut rules: Vec<RuleDecision> = meta
        .rules
        .iter()
        .map(|r| ctx.decide_rule(r, &mut refusals))
        .collect();
    if !refusals.is_empty() {
        return Err(Error::Incompatible {
            path: target.root.clone(),
            message: refusals.join("; "),
        });
    }
    follow_partners(meta, &mut rules);
    let mut advice = ctx.advice(&rules);
    advice.extend(rules::lower_update_level(meta, target));
    Ok(Decision { rules, advice })
}

/// Every `--skip-db` must name a database of the source.
fn check_skip_db(meta: &SnapshotMeta, skip_db: &[String]) -> Result<()> {
    for s in skip_db {
        if !meta.rules.iter().any(|r| db_is(r, s)) {
            return Err(Error::invalid(
                PathBuf::from(s),
                "--skip-db names no database of the source (see `carryover inspect`)",
            ));
        }
    }
    Ok(())
}

/// Whether `r` is the H2 database `name` (case-insensitive, as WSO2 names them).
fn db_is(r: &RuleRecord, name: &str) -> bool {
    r.h2_database
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case(name))
}

/// A rule travels only where its partner goes: drop it when the partner is not carried, until
/// nothing changes (partners can chain).
fn follow_partners(meta: &SnapshotMeta, rules: &mut [RuleDecision]) {
    loop {
        let mut changed = false;
        for i in 0..rules.len() {
            let Some(partner) = meta.rules[i].travels_with.as_deref() else {
                continue;
            };
            let Some(p) = rules.iter().find(|x| x.rule == partner) else {
                continue;
            };
            if rules[i].carried() && !p.carried() {
                let why = format!(
                    "travels with {partner}, which is not carried ({})",
                    p.reason
                );
                rules[i].action = Action::Drop;
                rules[i].reason = why;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// What every rule's decision looks at.
struct Context<'a> {
    meta: &'a SnapshotMeta,
    target: &'a Pack,
    /// The new pack's H2 engine, when it ships one.
    engine: Option<&'a Version>,
    skip_db: &'a [String],
    gates: &'a Gates<'a>,
}

impl Context<'_> {
    /// One rule's decision; an H2 database that cannot be carried adds to `refusals`.
    fn decide_rule(&self, r: &RuleRecord, refusals: &mut Vec<String>) -> RuleDecision {
        let path = r.path.as_ref().map(|p| p.to_string_lossy().into_owned());
        let mut d = RuleDecision {
            rule: r.name.clone(),
            kind: r.kind,
            action: Action::Keep,
            reason: String::new(),
            files: r.files,
            bytes: r.bytes,
            src: path.clone(),
            dst: path,
            also_remove: Vec::new(),
        };
        match r.status {
            Status::Missing => {
                d.reason = "nothing in the source; the new pack's state stays".into();
            }
            Status::External => {
                d.action = Action::Drop;
                d.reason = "configured outside the old pack; not carried".into();
            }
            Status::Found => match r.kind {
                Kind::H2 => self.decide_h2(r, &mut d, refusals),
                Kind::Lucene => match self.damage(&d) {
                    Some(why) => {
                        d.action = Action::Drop;
                        d.reason = format!(
                            "damaged in the source ({why}): the index is not carried; the product will re-index"
                        );
                    }
                    None => self.decide_lucene(&mut d),
                },
                Kind::Config if r.strategy == Strategy::Merge => self.carry(
                    &mut d,
                    "your version is carried; the new pack's version is kept in the transaction backup"
                        .into(),
                ),
                _ => self.carry(&mut d, "state of the old pack".into()),
            },
        }
        d
    }

    /// The first damaged file the source records under the rule's path, with what was found.
    fn damage(&self, d: &RuleDecision) -> Option<String> {
        let src = std::path::Path::new(d.src.as_deref()?);
        self.gates
            .corrupt
            .iter()
            .find(|c| std::path::Path::new(&c.path).starts_with(src))
            .map(|c| format!("{}: {}", c.path, c.problem))
    }

    /// Replace or create, depending on whether the new pack has something at `dst`.
    fn carry(&self, d: &mut RuleDecision, reason: String) {
        let exists = d
            .dst
            .as_ref()
            .is_some_and(|p| std::fs::symlink_metadata(self.target.root.join(p)).is_ok());
        d.action = if exists {
            Action::Replace
        } else {
            Action::Create
        };
        d.reason = reason;
    }

    /// A Lucene index is carried only between the same Lucene major.
    fn decide_lucene(&self, d: &mut RuleDecision) {
        match (self.meta.lucene_major, self.target.engines.lucene_major()) {
            (Some(a), Some(b)) if a == b => self.carry(d, format!("same Lucene major ({a})")),
            (a, b) => {
                let show = |m: Option<u32>| m.map_or_else(|| "unknown".into(), |m| m.to_string());
                d.action = Action::Drop;
                d.reason = format!(
                    "Lucene {} in the source, {} in the new pack: the index cannot be read; the product will re-index",
                    show(a),
                    show(b)
                );
            }
        }
    }

    /// An H2 database: left behind with `--skip-db`, carried when the new engine opens its
    /// format, refused otherwise.
    fn decide_h2(&self, r: &RuleRecord, d: &mut RuleDecision, refusals: &mut Vec<String>) {
        let db = r.h2_database.clone().unwrap_or_else(|| r.name.clone());
        if self.skip_db.iter().any(|s| s.eq_ignore_ascii_case(&db)) {
            d.action = Action::Drop;
            d.reason = "left behind on purpose (--skip-db)".into();
            return;
        }
        let src = d.src.clone().unwrap_or_default();
        let file = DbFile::of(&src);
        let base = match self.target.datasource_for(&db).map(|ds| &ds.location) {
            Some(Location::InPack(b)) => b.clone(),
            _ => PathBuf::from("repository/database").join(&db),
        };
        d.dst = Some(file.at(&base));
        let other = file.other().at(&base);
        if self.target.root.join(&other).exists() {
            d.also_remove.push(other);
        }
        let damaged = self.damage(d);
        match self.h2_refusal(&db, &src, r.h2_format.unwrap_or(H2Format::Unknown)) {
            Ok(why) => match damaged {
                None => self.carry(d, why),
                Some(dmg) if self.gates.allow_damaged_db => self.carry(
                    d,
                    format!("{why}; recorded damaged ({dmg}), carried because of --allow-damaged-db"),
                ),
                Some(dmg) => refusals.push(format!(
                    "{db} ({src}) was recorded damaged when snapshotted ({dmg}, --allow-corrupt): \
                     restore it from a backup, carry it anyway with --allow-damaged-db, or leave it behind with --skip-db {db}"
                )),
            },
            Err(refusal) => refusals.push(refusal),
        }
    }

    /// Why the new pack's engine opens the database, or why it cannot.
    fn h2_refusal(&self, db: &str, src: &str, fmt: H2Format) -> Result<String, String> {
        let Some(engine) = self.engine else {
            return Err(format!(
                "{db}: cannot tell which H2 engine the new pack ships (no h2 jar in repository/components/plugins)"
            ));
        };
        if !fmt.is_clean() {
            return Err(format!(
                "{db} ({src}) was not closed cleanly: start and stop the old server once so H2 closes it, or leave it behind with --skip-db {db}"
            ));
        }
        if fmt.opened_by(engine) == Some(true) {
            return Ok(format!("{fmt}, opened by the new pack's H2 {engine}"));
        }
        Err(format!(
            "{db} ({src}) is {fmt}, which the new pack's H2 {engine} cannot open (it reads {}); \
             export it with the old engine (SCRIPT TO 'db.sql') and import it with the new one (RUNSCRIPT FROM 'db.sql'), \
             or leave it behind with --skip-db {db}",
            if engine.major() < 2 {
                "PageStore and MVStore format 1".to_string()
            } else {
                format!("MVStore format {}", crate::pack::engines::engine_mv_format(engine))
            }
        ))
    }

    /// Advice for after the transplant: re-indexing, databases left behind, profiles.
    fn advice(&self, rules: &[RuleDecision]) -> Vec<String> {
        let mut advice = Vec::new();
        for (r, rec) in rules.iter().zip(&self.meta.rules) {
            if r.action != Action::Drop {
                continue;
            }
            if let (Kind::Lucene, Some(partner)) = (r.kind, rec.travels_with.as_deref()) {
                let shown = r.dst.as_deref().unwrap_or(&r.rule);
                if rules.iter().any(|x| x.rule == partner && x.carried()) {
                    advice.push(format!(
                        "{shown} was not carried but {partner} was: raise `[indexing] re_indexing` in repository/conf/deployment.toml \
                         so that the product rebuilds the search index (otherwise it believes the index is current)"
                    ));
                } else {
                    advice.push(format!(
                        "{shown} was not carried: the product rebuilds the index on start"
                    ));
                }
            }
            if r.kind == Kind::H2 && self.skip_db.iter().any(|s| db_is(rec, s)) {
                advice.push(format!(
                    "{}: left behind on purpose (--skip-db); the new pack keeps its own",
                    r.rule
                ));
            }
        }
        if self.target.profile.is_profiled() {
            advice.push(
                "the new pack carries profile-optimisation leftovers: re-run bin/profileSetup.sh -Dprofile=<profile> \
                 with --skipConfigOptimization so your deployment.toml is kept"
                    .into(),
            );
        } else if self.meta.profiled {
            advice.push(
                "the old pack was profile-optimised: after the update re-run bin/profileSetup.sh -Dprofile=<profile> \
                 --skipConfigOptimization (updates restore files the optimisation removed)"
                    .into(),
            );
        }
        advice
    }
}

/// The two files an H2 database can be: PageStore (`.h2.db`) or MVStore (`.mv.db`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbFile {
    /// H2 1.x PageStore: `X.h2.db`.
    PageStore,
    /// MVStore: `X.mv.db`.
    MvStore,
}

impl DbFile {
    /// The kind of file the source holds, from its name.
    fn of(src: &str) -> DbFile {
        if src.ends_with(DbFile::PageStore.ext()) {
            DbFile::PageStore
        } else {
            DbFile::MvStore
        }
    }

    fn ext(self) -> &'static str {
        match self {
            DbFile::PageStore => ".h2.db",
            DbFile::MvStore => ".mv.db",
        }
    }

    fn other(self) -> DbFile {
        match self {
            DbFile::PageStore => DbFile::MvStore,
            DbFile::MvStore => DbFile::PageStore,
        }
    }

    /// The file of this kind for the database `base` (a path without extension).
    fn at(self, base: &Path) -> String {
        format!("{}{}", base.to_string_lossy(), self.ext())
    }
}
