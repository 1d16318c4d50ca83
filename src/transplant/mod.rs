//! `transplant`: the old pack's state (from a snapshot archive or the old pack's directory)
//! carried into a fresh updated pack. Gates and decisions first, then stage, journal, swap,
//! verify, commit; revertible; recoverable after a crash at any step.

pub mod configs;
pub mod decide;
pub mod journal;

pub mod stage;
pub mod txn;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use crate::lock::PackLock;
pub use decide::{Action, Decision, RuleDecision};
pub use txn::Recovery;

use crate::archive::format::{SnapshotMeta, SNAPSHOT_JSON};
use crate::archive::{read_archive, read_meta};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Manifest, Origin, Selection};
use crate::merge;
use crate::pack::Pack;
use crate::plan::Plan;
use crate::progress::{Cancel, Progress};
use journal::Record;
use txn::{Txn, TxnPlan};

#[derive(Debug, Clone)]
pub struct TransplantOptions {
    pub source: PathBuf,
    pub target: PathBuf,
    pub dry_run: bool,
    pub skip_db: Vec<String>,
    /// Manifest for an old-pack source (default: the built-in for its line).
    pub manifest: Option<PathBuf>,
    /// Pristine base for config merges: a pack directory, a distribution .zip or a baseline
    /// snapshot of the old pack's version.
    pub base: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransplantReport {
    pub source: PathBuf,
    pub source_kind: &'static str,
    pub target: PathBuf,
    pub product: String,
    pub from_version: String,
    pub to_version: String,
    pub dry_run: bool,
    pub txn: Option<String>,
    pub result: &'static str,
    pub rules: Vec<RuleDecision>,
    pub configs: Vec<configs::ConfigOutcome>,
    /// Config files waiting for `FILE.final` and `transplant --continue` (exit 3).
    pub conflicts: Vec<String>,
    pub advice: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<Recovery>,
}

/// Opens and plans a pack for writing: lock, recover interrupted transactions, detect, gate.
pub fn open_target(path: &Path) -> Result<(PackLock, Recovery, Pack)> {
    let w = crate::access::open_for_write(path)?;
    Ok((w.lock, w.recovered, w.pack))
}

fn refuse_running(plan: &Plan, what: &str) -> Result<()> {
    if plan.liveness.running {
        return Err(Error::Refused {
            path: plan.pack.root.clone(),
            reason: format!(
                "the {what} is in use: {}; stop its server first",
                plan.liveness.summary()
            ),
        });
    }
    Ok(())
}

pub fn transplant(
    opts: &TransplantOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<TransplantReport> {
    let started = Instant::now();
    let (_lock, recovered, target) = open_target(&opts.target)?;
    // Gates, all before the first write.
    let target_manifest = manifest::select(
        &target.root,
        &target.identity.product,
        &target.identity.version,
        None,
    )
    .map(|s| s.manifest)
    .ok();
    let target_plan = match target_manifest {
        Some(m) => Plan::build(
            target,
            Selection {
                manifest: m,
                reason: String::new(),
            },
        )?,
        None => Plan::for_pack(target, opts.manifest.as_deref())?,
    };
    refuse_running(&target_plan, "new pack")?;
    let target = target_plan.pack.clone();
    if let Some(dir) = txn::list_txns(&target.root)
        .into_iter()
        .find(|d| txn::state_of(d) == txn::TxnState::Awaiting)
    {
        return Err(Error::Conflicts {
            path: target.root.clone(),
            count: txn::read_plan(&dir).map(|p| p.conflicts.len()).unwrap_or(0),
        });
    }
    let source_meta = std::fs::symlink_metadata(&opts.source).at(&opts.source)?;
    let (meta, source_plan, source_kind) = if source_meta.is_dir() {
        let sp = Plan::for_pack(Pack::open(&opts.source)?, opts.manifest.as_deref())?;
        refuse_running(&sp, "old pack")?;
        if sp.pack.root == target.root {
            return Err(Error::invalid(
                &opts.source,
                "source and new pack are the same directory",
            ));
        }
        (crate::snapshot::meta_of(&sp, false), Some(sp), "pack")
    } else {
        (read_meta(&opts.source)?, None, "archive")
    };
    // The recorded manifest must still validate: it decides what the archive's paths mean.
    let source_manifest = Manifest::parse(
        &meta.manifest.text,
        Origin::File(opts.source.join(SNAPSHOT_JSON)),
    )?;
    let mut decision = decide::decide(&meta, &target, &opts.skip_db)?;
    let merges = MergeSetup::new(
        &meta,
        &decision,
        &source_manifest,
        &target.root,
        opts.base.as_deref(),
    )?;
    let mut config_outcomes = Vec::new();
    if opts.dry_run && !merges.items.is_empty() {
        let wanted: Vec<String> = merges.items.iter().map(|m| m.src.clone()).collect();
        let ours = match &source_plan {
            Some(sp) => wanted
                .iter()
                .filter_map(|w| {
                    std::fs::read(sp.pack.root.join(w))
                        .ok()
                        .map(|b| (w.clone(), b))
                })
                .collect(),
            None => configs::collect_from_archive(&opts.source, &wanted)?,
        };
        for m in &merges.items {
            let (_, o) = merges.outcome(m, ours.get(&m.src).cloned(), &mut decision.rules[m.rule]);
            config_outcomes.push(o);
        }
    }
    let carried: Vec<&RuleDecision> = decision.rules.iter().filter(|d| d.carried()).collect();
    let mut report = TransplantReport {
        source: opts.source.clone(),
        source_kind,
        target: target.root.clone(),
        product: meta.product.clone(),
        from_version: meta.version.clone(),
        to_version: target.identity.version.to_string(),
        dry_run: opts.dry_run,
        txn: None,
        result: "planned",
        files: carried.iter().map(|d| d.files).sum(),
        bytes: carried.iter().map(|d| d.bytes).sum(),
        rules: decision.rules.clone(),
        configs: config_outcomes,
        conflicts: Vec::new(),
        advice: decision.advice.clone(),
        seconds: 0.0,
        recovered: (!recovered.is_empty()).then_some(recovered),
    };
    if opts.dry_run {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let mut txn = Txn::begin(&target.root, &opts.source.to_string_lossy())?;
    report.txn = Some(txn.id());
    txn::failpoint("after-begin");
    let result = run(
        &mut txn,
        &opts.source,
        source_plan.as_ref(),
        &mut decision,
        &merges,
        progress,
        cancel,
    );
    match result {
        Ok(outcomes) => {
            report.rules = decision.rules.clone();
            // Config merges may have turned a rule into "keep": count what was carried.
            let carried = decision.rules.iter().filter(|d| d.carried());
            (report.files, report.bytes) =
                carried.fold((0, 0), |(f, b), d| (f + d.files, b + d.bytes));
            report.conflicts = outcomes
                .iter()
                .filter(|o| o.fate == "conflict")
                .map(|o| o.path.clone())
                .collect();
            report.configs = outcomes;
            if !report.conflicts.is_empty() {
                report.result = "conflicts";
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            // Only the newest committed transaction stays revertible.
            for old in txn::list_txns(&target.root) {
                if old != txn.dir {
                    txn::remove_txn_dir(&old);
                }
            }
            report.result = "committed";
            report.seconds = started.elapsed().as_secs_f64();
            Ok(report)
        }
        Err(e) => {
            // Put the pack back as it was; the original error is what the user needs.
            if let Err(rb) = txn::rollback(&target.root, &txn.dir) {
                return Err(Error::invalid(
                    &target.root,
                    format!("{e}; and rolling back failed: {rb}; run `carryover transplant --recover {}`", target.root.display()),
                ));
            }
            Err(e)
        }
    }
}

/// The merge-strategy config rules of a transplant, with their base and theirs loaded.
pub struct MergeSetup {
    pub items: Vec<MergeItem>,
    base: HashMap<String, Vec<u8>>,
    base_desc: Option<String>,
}

pub struct MergeItem {
    pub rule: usize,
    pub rule_name: String,
    pub src: String,
    pub dst: String,
    pub format: crate::manifest::ConfigFormat,
    pub theirs: Option<Vec<u8>>,
}

impl MergeSetup {
    fn new(
        meta: &SnapshotMeta,
        decision: &Decision,
        manifest: &Manifest,
        target: &Path,
        base: Option<&Path>,
    ) -> Result<MergeSetup> {
        let mut items = Vec::new();
        for (i, (r, d)) in meta.rules.iter().zip(&decision.rules).enumerate() {
            if r.kind != crate::manifest::Kind::Config
                || r.strategy != crate::manifest::Strategy::Merge
                || !d.carried()
            {
                continue;
            }
            let (Some(src), Some(dst)) = (d.src.clone(), d.dst.clone()) else {
                continue;
            };
            items.push(MergeItem {
                rule: i,
                rule_name: d.rule.clone(),
                format: configs::format_for(manifest, &d.rule, &dst),
                theirs: std::fs::read(target.join(&dst)).ok(),
                src,
                dst,
            });
        }
        let (base, base_desc) = match base {
            Some(p) if !items.is_empty() => {
                let b = configs::Base::from_path(p)?;
                // A base of another version would merge the wrong changes in silently.
                if let Some(v) = b.version() {
                    let want = crate::version::Version::parse(&meta.version).map(|v| v.to_string());
                    if want.is_some_and(|w| w != v) {
                        return Err(Error::invalid(
                            p,
                            format!(
                                "--base is {} {v}, but the old pack is {}: the base must be the pristine old version",
                                b.describe(),
                                meta.version
                            ),
                        ));
                    }
                }
                let wanted: Vec<String> = items.iter().map(|m| m.src.clone()).collect();
                (b.read(&wanted)?, Some(b.describe()))
            }
            _ => (HashMap::new(), None),
        };
        Ok(MergeSetup {
            items,
            base,
            base_desc,
        })
    }

    fn outcome(
        &self,
        m: &MergeItem,
        ours: Option<Vec<u8>>,
        d: &mut RuleDecision,
    ) -> (merge::Fate, configs::ConfigOutcome) {
        let input = configs::MergeInput {
            rule: &m.rule_name,
            path: &m.dst,
            format: m.format,
            ours,
            theirs: m.theirs.clone(),
            base: self.base.get(&m.src).cloned(),
        };
        configs::outcome(&input, d, self.base_desc.as_deref())
    }
}

fn run(
    txn: &mut Txn,
    source: &Path,
    source_plan: Option<&Plan>,
    decision: &mut Decision,
    merges: &MergeSetup,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<configs::ConfigOutcome>> {
    let stage = txn.stage_dir();
    let staged = match source_plan {
        Some(sp) => stage::stage_from_pack(sp, &decision.rules, &stage, progress, cancel)?,
        None => {
            let mut stager = stage::ArchiveStager::new(stage.clone(), &decision.rules, source);
            let contents = read_archive(source, Some(&mut stager), progress, cancel)?;
            let report = crate::verify::check_contents(source, &contents);
            // A missing sidecar is not a reason to refuse; anything else in the archive is.
            if !report.ok {
                let first = report
                    .problems
                    .iter()
                    .take(3)
                    .map(|p| format!("{}: {}", p.path, p.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Error::invalid(
                    source,
                    format!(
                        "the archive failed verification ({} problem(s): {first}); nothing was changed",
                        report.problems.len()
                    ),
                ));
            }
            let mut state = stager.state;
            state.finish_dirs()?;
            let mut staged = state.staged;
            let at: std::collections::HashMap<String, usize> = staged
                .iter()
                .enumerate()
                .map(|(i, s)| (s.dst.clone(), i))
                .collect();
            let router = stage::Router::new(&decision.rules);
            for (path, seen) in &contents.seen {
                if let Some(i) = router
                    .route(path)
                    .and_then(|(_, dst)| at.get(&dst).copied())
                {
                    staged[i].sha256 = seen.sha_hex();
                }
            }
            staged
        }
    };
    cancel.check()?;
    crate::fsutil::syncfs(&stage)?;
    txn.journal.log(&Record::Staged)?;
    txn::failpoint("after-stage");
    // Config merges, decided on the staged copy of the operator's file.
    let mut staged = staged;
    let mut extra_units = Vec::new();
    let mut conflicts = Vec::new();
    let mut outcomes = Vec::new();
    for m in &merges.items {
        let ours = std::fs::read(stage.join(&m.dst)).ok();
        let (fate, o) = merges.outcome(m, ours, &mut decision.rules[m.rule]);
        configs::apply(
            &fate,
            m.rule,
            &m.dst,
            m.format,
            merges.base.get(&m.src).map(Vec::as_slice),
            m.theirs.as_deref(),
            &stage,
            &mut staged,
            &mut extra_units,
            &mut conflicts,
            &m.rule_name,
        )?;
        outcomes.push(o);
    }
    let mut units = txn::units(&decision.rules, &staged);
    units.extend(extra_units);
    let plan = TxnPlan {
        id: txn.id(),
        source: source.to_string_lossy().into_owned(),
        parents: txn::parents_of(&txn.pack, &units),
        units,
        staged,
        decisions: decision.rules.clone(),
        conflicts: conflicts.clone(),
    };
    txn::write_plan(&txn.dir, &plan)?;
    cancel.check()?;
    txn::swap(txn, &plan)?;
    let problems = txn::verify_target(&txn.pack, &plan.staged)?;
    if !problems.is_empty() {
        return Err(Error::invalid(
            &txn.pack,
            format!(
                "the pack does not match the source after the swap: {}",
                problems.join("; ")
            ),
        ));
    }
    txn::failpoint("after-verify");
    let _ = std::fs::remove_dir_all(&stage);
    if !conflicts.is_empty() {
        txn.journal.log(&Record::Conflicts {
            files: conflicts.iter().map(|c| c.path.clone()).collect(),
        })?;
        return Ok(outcomes);
    }
    txn.journal.log(&Record::Committed)?;
    txn::failpoint("after-commit");
    Ok(outcomes)
}

/// `transplant --continue`: every conflict's `FILE.final` is installed (it must parse), the
/// conflict files are removed, the transaction is verified and committed.
pub fn continue_txn(target: &Path) -> Result<Vec<String>> {
    let (_lock, _rec, pack) = open_target(target)?;
    let Some(dir) = txn::list_txns(&pack.root)
        .into_iter()
        .find(|d| txn::state_of(d) == txn::TxnState::Awaiting)
    else {
        return Err(Error::invalid(
            &pack.root,
            "no transplant awaits --continue",
        ));
    };
    let plan = txn::read_plan(&dir)
        .ok_or_else(|| Error::invalid(dir.join("plan.json"), "missing or unreadable"))?;
    let records = journal::Journal::read(&dir.join("journal"))?;
    let done: Vec<&str> = records
        .iter()
        .filter_map(|r| match r {
            Record::Resolved { path } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    for c in plan
        .conflicts
        .iter()
        .filter(|c| !done.contains(&c.path.as_str()))
    {
        let fin = pack.root.join(format!("{}.final", c.path));
        match std::fs::read(&fin) {
            Err(_) => problems.push(format!(
                "{}: missing; write your resolution there",
                fin.display()
            )),
            Ok(b) => {
                if let Err(why) = merge::parses(c.format, &b) {
                    problems.push(format!("{}: {why}", fin.display()));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Unresolved {
            path: pack.root.clone(),
            problems: problems.join("; "),
        });
    }
    let mut journal = journal::Journal::open(&dir.join("journal"))?;
    if !records.contains(&Record::ContinueBegin) {
        journal.log(&Record::ContinueBegin)?;
    }
    let mut resolved = Vec::new();
    for c in &plan.conflicts {
        let live = pack.root.join(&c.path);
        let fin = pack.root.join(format!("{}.final", c.path));
        if !done.contains(&c.path.as_str()) {
            journal.log(&Record::Resolved {
                path: c.path.clone(),
            })?;
            txn::failpoint("continue-after-resolved");
            std::fs::rename(&fin, &live).at(&fin)?;
        } else if fin.exists() {
            // Logged as resolved but a crash came before the rename: finish it.
            std::fs::rename(&fin, &live).at(&fin)?;
        }
        for suffix in configs::SIDE_SUFFIXES {
            let side = pack.root.join(format!("{}{suffix}", c.path));
            if side.exists() {
                std::fs::remove_file(&side).at(&side)?;
            }
        }
        resolved.push(c.path.clone());
    }
    txn::restore_parents(&pack.root, &plan.parents)?;
    // Everything else must still be exactly what was carried.
    let conflict_paths: Vec<String> = plan
        .conflicts
        .iter()
        .flat_map(|c| {
            std::iter::once(c.path.clone()).chain(
                configs::SIDE_SUFFIXES
                    .iter()
                    .map(move |s| format!("{}{s}", c.path)),
            )
        })
        .collect();
    let rest: Vec<stage::Staged> = plan
        .staged
        .iter()
        .filter(|s| !conflict_paths.contains(&s.dst))
        .cloned()
        .collect();
    let problems = txn::verify_target(&pack.root, &rest)?;
    if !problems.is_empty() {
        return Err(Error::invalid(
            &pack.root,
            format!(
                "the pack changed since the transplant: {}",
                problems.join("; ")
            ),
        ));
    }
    journal.log(&Record::Committed)?;
    for old in txn::list_txns(&pack.root) {
        if old != dir {
            txn::remove_txn_dir(&old);
        }
    }
    Ok(resolved)
}

/// `transplant --revert`: the pack back to its state before the last transplant.
pub fn revert(target: &Path) -> Result<String> {
    let (_lock, _rec, pack) = open_target(target)?;
    let committed: Vec<PathBuf> = txn::list_txns(&pack.root)
        .into_iter()
        .filter(|d| {
            matches!(
                txn::state_of(d),
                txn::TxnState::Committed | txn::TxnState::Awaiting
            )
        })
        .collect();
    let Some(dir) = committed.last() else {
        return Err(Error::invalid(
            &pack.root,
            "no transplant to revert (none committed, or already reverted)",
        ));
    };
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    txn::revert(&pack.root, dir)?;
    Ok(id)
}

/// `transplant --recover`: finish or undo whatever a crash interrupted.
pub fn recover(target: &Path) -> Result<Recovery> {
    let (_lock, rec, _pack) = open_target(target)?;
    Ok(rec)
}

/// Whether a transaction of the pack is pending (to roll back) or a revert unfinished.
pub fn pending(pack_root: &Path) -> bool {
    txn::list_txns(pack_root).iter().any(|d| {
        matches!(
            txn::state_of(d),
            txn::TxnState::Pending | txn::TxnState::Reverting
        )
    })
}
