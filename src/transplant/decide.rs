//! The transplant plan: for each rule of the source, carry (replace/create), keep or drop, and
//! why. Decided entirely before the first write; gates that refuse return errors from here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::format::{RuleRecord, SnapshotMeta};
use crate::error::{Error, Result};
use crate::manifest::{Kind, Strategy};
use crate::pack::{H2Format, Location, Pack};
use crate::plan::Status;
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The source's state replaces the new pack's.
    Replace,
    /// The new pack has nothing there; the source's state is created.
    Create,
    /// Nothing is carried; the new pack's state stays.
    Keep,
    /// Deliberately not carried.
    Drop,
}

/// What happens to one rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleDecision {
    pub rule: String,
    pub kind: Kind,
    pub action: Action,
    pub reason: String,
    pub files: u64,
    pub bytes: u64,
    /// Path in the source (archive path or old-pack relative path).
    pub src: Option<String>,
    /// Path in the new pack.
    pub dst: Option<String>,
    /// Other paths in the new pack moved aside with this rule (`X.h2.db` when `X.mv.db` arrives).
    pub also_remove: Vec<String>,
}

impl RuleDecision {
    pub fn carried(&self) -> bool {
        matches!(self.action, Action::Replace | Action::Create)
    }
}

/// The whole decision, with advice for after the transplant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub rules: Vec<RuleDecision>,
    pub advice: Vec<String>,
}

/// Decides every rule of `meta` (the source) against the detected `target`.
pub fn decide(meta: &SnapshotMeta, target: &Pack, skip_db: &[String]) -> Result<Decision> {
    let tid = &target.identity;
    if meta.product != tid.product {
        return Err(Error::Incompatible {
            path: target.root.clone(),
            message: format!(
                "the source is {} {}, the new pack is {} {}: carryover only carries state between packs of the same product",
                meta.product, meta.version, tid.product, tid.version
            ),
        });
    }
    if let Some(sv) = Version::parse(&meta.version) {
        if sv > tid.version {
            return Err(Error::Incompatible {
                path: target.root.clone(),
                message: format!(
                    "the source is {} {}, newer than the new pack ({}); carryover does not downgrade",
                    meta.product, meta.version, tid.version
                ),
            });
        }
    }
    for s in skip_db {
        if !meta.rules.iter().any(|r| {
            r.h2_database
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(s))
        }) {
            return Err(Error::invalid(
                PathBuf::from(s),
                "--skip-db names no database of the source (see `carryover inspect`)",
            ));
        }
    }
    let target_engine = target.engines.h2.as_ref().map(|j| j.version.clone());
    let target_lucene = target.engines.lucene_major();
    let mut refusals = Vec::new();
    let mut advice = Vec::new();
    let mut rules: Vec<RuleDecision> = Vec::new();
    for r in &meta.rules {
        let mut d = RuleDecision {
            rule: r.name.clone(),
            kind: r.kind,
            action: Action::Keep,
            reason: String::new(),
            files: r.files,
            bytes: r.bytes,
            src: r.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
            dst: r.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
            also_remove: Vec::new(),
        };
        match r.status {
            Status::Missing => {
                d.reason = "nothing in the source; the new pack's state stays".into();
                rules.push(d);
                continue;
            }
            Status::External => {
                d.action = Action::Drop;
                d.reason = "configured outside the old pack; not carried".into();
                rules.push(d);
                continue;
            }
            Status::Found => {}
        }
        match r.kind {
            Kind::H2 => decide_h2(
                r,
                &mut d,
                target,
                target_engine.as_ref(),
                skip_db,
                &mut refusals,
            ),
            Kind::Lucene => match (meta.lucene_major, target_lucene) {
                (Some(a), Some(b)) if a == b => {
                    carry(&mut d, target, format!("same Lucene major ({a})"))
                }
                (a, b) => {
                    d.action = Action::Drop;
                    d.reason = format!(
                        "Lucene {} in the source, {} in the new pack: the index cannot be read; the product will re-index",
                        a.map(|m| m.to_string()).unwrap_or_else(|| "unknown".into()),
                        b.map(|m| m.to_string()).unwrap_or_else(|| "unknown".into())
                    );
                }
            },
            Kind::Config if r.strategy == Strategy::Merge => carry(
                &mut d,
                target,
                "your version is carried; the new pack's version is kept in the transaction backup"
                    .into(),
            ),
            _ => carry(&mut d, target, "state of the old pack".into()),
        }
        rules.push(d);
    }
    if !refusals.is_empty() {
        return Err(Error::Incompatible {
            path: target.root.clone(),
            message: refusals.join("; "),
        });
    }
    // travels_with: a rule goes only where its partner goes.
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
    for (i, r) in rules.iter().enumerate() {
        if let Some(partner) = meta.rules[i].travels_with.as_deref() {
            let p = rules.iter().find(|x| x.rule == partner);
            if r.action == Action::Drop && r.kind == Kind::Lucene && p.is_some_and(|p| p.carried())
            {
                advice.push(format!(
                    "{} was not carried but {partner} was: raise `[indexing] re_indexing` in repository/conf/deployment.toml \
                     so that the product rebuilds the search index (otherwise it believes the index is current)",
                    r.dst.as_deref().unwrap_or(&r.rule)
                ));
            } else if r.action == Action::Drop && r.kind == Kind::Lucene {
                advice.push(format!(
                    "{} was not carried: the product rebuilds the index on start",
                    r.dst.as_deref().unwrap_or(&r.rule)
                ));
            }
        }
        let skipped = meta.rules[i]
            .h2_database
            .as_deref()
            .is_some_and(|db| skip_db.iter().any(|s| s.eq_ignore_ascii_case(db)));
        if r.action == Action::Drop && r.kind == Kind::H2 && skipped {
            advice.push(format!(
                "{}: left behind on purpose (--skip-db); the new pack keeps its own",
                r.rule
            ));
        }
    }
    if target.profile.is_profiled() {
        advice.push(
            "the new pack carries profile-optimisation leftovers: re-run bin/profileSetup.sh -Dprofile=<profile> \
             with --skipConfigOptimization so your deployment.toml is kept"
                .into(),
        );
    } else if meta.profiled {
        advice.push(
            "the old pack was profile-optimised: after the update re-run bin/profileSetup.sh -Dprofile=<profile> \
             --skipConfigOptimization (updates restore files the optimisation removed)"
                .into(),
        );
    }
    Ok(Decision { rules, advice })
}

fn carry(d: &mut RuleDecision, target: &Pack, reason: String) {
    let exists = d
        .dst
        .as_ref()
        .is_some_and(|p| std::fs::symlink_metadata(target.root.join(p)).is_ok());
    d.action = if exists {
        Action::Replace
    } else {
        Action::Create
    };
    d.reason = reason;
}

fn with_ext(base: &Path, ext: &str) -> String {
    format!("{}{ext}", base.to_string_lossy())
}

fn decide_h2(
    r: &RuleRecord,
    d: &mut RuleDecision,
    target: &Pack,
    engine: Option<&Version>,
    skip_db: &[String],
    refusals: &mut Vec<String>,
) {
    let db = r.h2_database.clone().unwrap_or_else(|| r.name.clone());
    if skip_db.iter().any(|s| s.eq_ignore_ascii_case(&db)) {
        d.action = Action::Drop;
        d.reason = "left behind on purpose (--skip-db)".into();
        return;
    }
    let src = d.src.clone().unwrap_or_default();
    let ext = if src.ends_with(".h2.db") {
        ".h2.db"
    } else {
        ".mv.db"
    };
    let base = match target.datasource_for(&db).map(|ds| &ds.location) {
        Some(Location::InPack(b)) => b.clone(),
        _ => PathBuf::from("repository/database").join(&db),
    };
    d.dst = Some(with_ext(&base, ext));
    let other = with_ext(&base, if ext == ".h2.db" { ".mv.db" } else { ".h2.db" });
    if target.root.join(&other).exists() {
        d.also_remove.push(other);
    }
    let fmt = r.h2_format.unwrap_or(H2Format::Unknown);
    let Some(engine) = engine else {
        refusals.push(format!(
            "{db}: cannot tell which H2 engine the new pack ships (no h2 jar in repository/components/plugins)"
        ));
        return;
    };
    if !fmt.is_clean() {
        refusals.push(format!(
            "{db} ({src}) was not closed cleanly: start and stop the old server once so H2 closes it, or leave it behind with --skip-db {db}"
        ));
        return;
    }
    match fmt.opened_by(engine) {
        Some(true) => carry(d, target, format!("{fmt}, opened by the new pack's H2 {engine}")),
        _ => refusals.push(format!(
            "{db} ({src}) is {fmt}, which the new pack's H2 {engine} cannot open (it reads {}); \
             export it with the old engine (SCRIPT TO 'db.sql') and import it with the new one (RUNSCRIPT FROM 'db.sql'), \
             or leave it behind with --skip-db {db}",
            if engine.major() < 2 {
                "PageStore and MVStore format 1".to_string()
            } else {
                format!("MVStore format {}", crate::pack::engines::engine_mv_format(engine))
            }
        )),
    }
}
