//! `transplant`: the old pack's state (from a snapshot archive or the old pack's directory)
//! carried into a fresh updated pack, revertible, and recoverable after a crash at any step.
//!
//! This file only orchestrates. [`fn@plan`] does everything before the first write: it opens the
//! new pack for writing (lock, recovery), runs the gates, decides every rule ([`mod@plan`]) and
//! loads the config merges ([`configs`]), and returns a [`TransplantPlan`]. [`execute`] acts on
//! that plan: stage ([`stage`]), merge configs on the staged copy, record the transaction
//! ([`record`]), swap and verify ([`swap`]), commit; on any error it rolls back
//! ([`mod@recover`]). `--dry-run` is [`fn@plan`] without [`execute`]. `--revert` is
//! [`fn@revert`], `--continue` is [`continue_txn`] ([`resume`]), `--recover` is [`fn@recover`].
//!
//! Modules, each importing only those before it: [`pool`], [`mod@failpoint`] · [`mod@plan`] (the
//! decisions), [`rules`] (carryover's own rules) · [`stage`] · [`record`] (the journal and `plan.json`) · [`moves`] · [`base`],
//! [`configs`] · [`swap`] · [`mod@revert`] · [`mod@recover`] · [`resume`] · [`report`] ·
//! [`open`] (the gates); this file uses them all and none uses it.

pub mod base;
pub mod configs;
pub mod failpoint;
pub mod moves;
pub mod open;
pub mod plan;
pub mod pool;
pub mod record;
pub mod recover;
pub mod report;
pub mod resume;
pub mod revert;
pub mod rules;
pub mod stage;
pub mod swap;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::lock::PackLock;
pub use configs::{ConfigFate, ConfigOutcome};
pub use plan::{Action, Decision, RuleDecision};
pub use recover::{pending, Recovery};
pub use report::{AwaitingContinue, SourceKind, TransplantReport, TransplantResult, Transplanted};
pub use resume::{ContinueReport, FinalProblem, Unresolved};
pub use revert::RevertReport;

use crate::access::open_for_write;
use crate::archive::format::SnapshotMeta;
use crate::error::{Error, Result};
use crate::pack::Pack;
use crate::progress::{Cancel, Progress};
use configs::{MergeSetup, Staging};
use failpoint::failpoint;
use open::Source;
use record::{Record, Txn, TxnPlan};

/// What to transplant where.
#[derive(Debug, Clone)]
pub struct TransplantOptions {
    /// A snapshot archive or the old pack's directory.
    pub source: PathBuf,
    /// The new pack.
    pub target: PathBuf,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// H2 databases left behind on purpose.
    pub skip_db: Vec<String>,
    /// The rules that apply to the source (default: the built-in for its product and version).
    pub manifest: Option<PathBuf>,
    /// Pristine base for config merges: a pack directory, a distribution .zip or a baseline
    /// snapshot of the old pack's version.
    pub base: Option<PathBuf>,
    /// Transplant into a pack that already holds a committed transplant.
    pub force: bool,
    /// Carry state between different product versions (a migration in WSO2's terms).
    pub allow_version_change: bool,
    /// Carry an H2 database the archive records as damaged.
    pub allow_damaged_db: bool,
}

/// Everything a transplant decided before its first write. Holds the new pack's lock until it
/// is executed or dropped.
pub struct TransplantPlan {
    _lock: PackLock,
    started: Instant,
    opts: TransplantOptions,
    source: Source,
    target: Pack,
    meta: SnapshotMeta,
    decision: Decision,
    merges: MergeSetup,
    /// The config fates as previewed from the source (`--dry-run` only: a real run decides them
    /// on the staged copy, the same way, instead of reading an archive twice).
    preview: Vec<ConfigOutcome>,
    recovered: Recovery,
}

/// What [`fn@plan`] found.
pub enum Planned {
    /// A plan, ready to execute.
    Ready(Box<TransplantPlan>),
    /// The previous transplant's conflicts await `--continue`: nothing may start.
    Awaiting(AwaitingContinue),
}

/// Plans the transplant of `opts.source` into `opts.target`: opens the new pack for writing
/// (lock, recovery), refuses a running server, decides every rule, loads the config merges.
/// Nothing is written (but recovery of an interrupted transplant).
///
/// # Errors
/// Not a pack; a server runs on either pack or the lock is held (`Refused`); the source is
/// unreadable, of another product or newer (`Incompatible`); another version without
/// `--allow-version-change`; a rule or entry outside carryover's own manifest; a committed
/// transplant already in the pack without `--force` (`Invalid`); an H2 database cannot be
/// carried (or is recorded damaged without `--allow-damaged-db`); a bad `--skip-db`,
/// `--manifest` or `--base`.
pub fn plan(opts: &TransplantOptions) -> Result<Planned> {
    let started = Instant::now();
    let w = open_for_write(&opts.target)?;
    let target = open::gate_target(w.pack, opts.manifest.as_deref())?;
    if let Some(dir) = record::awaiting(&target.root) {
        let conflicts = record::read_plan(&dir)
            .ok()
            .flatten()
            .map_or(0, |p| p.conflicts.len());
        return Ok(Planned::Awaiting(AwaitingContinue {
            pack: target.root.clone(),
            conflicts,
        }));
    }
    revert::refuse_second(&target.root, opts.force)?;
    let (source, meta) = open::open_source(&opts.source, opts.manifest.as_deref(), &target)?;
    // The rules that apply are carryover's own for the source's product and version, never
    // the archive's.
    rules::check_compatible(&meta, &target)?;
    let source_manifest = rules::own_manifest(&meta, &opts.source, opts.manifest.as_deref())?;
    rules::check_rules(&meta, &source_manifest, &opts.source)?;
    // Only an archive taken with --allow-corrupt (or one too old to say) can record damage:
    // read it first for that; staging refuses entries under no rule in every case.
    let corrupt = match &source {
        Source::Archive(a) if meta.allow_corrupt != Some(false) => rules::recorded_damage(a)?,
        _ => Vec::new(),
    };
    let gates = plan::Gates {
        skip_db: &opts.skip_db,
        allow_version_change: opts.allow_version_change,
        corrupt: &corrupt,
        allow_damaged_db: opts.allow_damaged_db,
    };
    let mut decision = plan::decide(&meta, &target, &gates)?;
    open::check_writable(&target.root, &decision.rules)?;
    let merges = MergeSetup::new(
        &meta,
        &decision,
        &source_manifest,
        &target.root,
        opts.base.as_deref(),
    )?;
    let preview = if opts.dry_run {
        source.preview_configs(&merges, &mut decision.rules)?
    } else {
        Vec::new()
    };
    Ok(Planned::Ready(Box::new(TransplantPlan {
        _lock: w.lock,
        started,
        opts: opts.clone(),
        source,
        target,
        meta,
        decision,
        merges,
        preview,
        recovered: w.recovered,
    })))
}

impl TransplantPlan {
    /// Where an archive source is staged (`None`: a dry run), with the new pack's engine.
    fn stage_target<'a>(&'a self, stage: Option<&'a Path>) -> stage::archive::StageTarget<'a> {
        stage::archive::StageTarget {
            stage,
            pack: &self.target.root,
            h2_engine: self.target.engines.h2.as_ref().map(|j| &j.version),
        }
    }

    /// The dry run's pass over an archive source: the real run's staging with every write left
    /// out, so that it refuses exactly what the real run would (entries, sizes, the archive's
    /// check, H2 headers); for an old pack, every entry through the same admission as staging.
    ///
    /// # Errors
    /// What staging the archive would refuse; cancelled.
    pub fn dry_check(&self, progress: &dyn Progress, cancel: &Cancel) -> Result<()> {
        match &self.source {
            Source::Archive(a) => {
                let target = self.stage_target(None);
                stage::stage_from_archive(a, &self.decision.rules, &target, progress, cancel)?;
            }
            Source::Pack(sp) => stage::pack::check_pack(sp)?,
        }
        Ok(())
    }

    /// The plan as reported: what a dry run prints, and what a real run starts from.
    pub fn report(&self) -> TransplantReport {
        let (files, bytes) = self
            .decision
            .rules
            .iter()
            .filter(|d| d.carried())
            .fold((0, 0), |(f, b), d| (f + d.files, b + d.bytes));
        TransplantReport {
            source: self.opts.source.clone(),
            source_kind: self.source.kind(),
            target: self.target.root.clone(),
            product: self.meta.product.clone(),
            from_version: self.meta.version.clone(),
            to_version: self.target.identity.version.to_string(),
            dry_run: self.opts.dry_run,
            txn: None,
            result: TransplantResult::Planned,
            rules: self.decision.rules.clone(),
            configs: self.preview.clone(),
            conflicts: Vec::new(),
            advice: self.decision.advice.clone(),
            files,
            bytes,
            seconds: self.started.elapsed().as_secs_f64(),
            recovered: (!self.recovered.is_empty()).then(|| self.recovered.clone()),
        }
    }
}

/// Carries out `plan`: stage, merge configs, record, swap, verify, commit. On an error the pack
/// is rolled back to its state before.
///
/// # Errors
/// Staging, the archive's check, the swap or the verification after it failed (the pack is as
/// it was); cancelled; and if the rollback failed too, an error that says so and names
/// `--recover`.
pub fn execute(
    mut plan: TransplantPlan,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<TransplantReport> {
    let root = plan.target.root.clone();
    let mut txn = Txn::begin(&root, &plan.opts.source.to_string_lossy())?;
    failpoint("after-begin");
    let configs = match act(&mut txn, &mut plan, progress, cancel) {
        Ok(configs) => configs,
        Err(e) => return Err(rolled_back(e, &root, &txn.dir)),
    };
    let mut report = plan.report();
    report.txn = Some(txn.id());
    report.conflicts = configs
        .iter()
        .filter(|o| o.fate == ConfigFate::Conflict)
        .map(|o| o.path.clone())
        .collect();
    report.configs = configs;
    report.result = if report.conflicts.is_empty() {
        // Committed transactions stay: the undo stack.
        record::remove_older_txns(&root, &txn.dir);
        TransplantResult::Committed
    } else {
        TransplantResult::Conflicts
    };
    report.seconds = plan.started.elapsed().as_secs_f64();
    Ok(report)
}

/// The error of a failed transplant, after putting the pack back as it was.
fn rolled_back(e: Error, root: &Path, dir: &Path) -> Error {
    match recover::rollback(root, dir) {
        // The original error is what the user needs.
        Ok(()) => e,
        Err(rb) => Error::invalid(
            root,
            format!(
                "{e}; and rolling back failed: {rb}; run `carryover transplant --recover {}`",
                root.display()
            ),
        ),
    }
}

/// The steps of [`execute`] that roll back on failure; returns the config outcomes.
fn act(
    txn: &mut Txn,
    plan: &mut TransplantPlan,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Vec<ConfigOutcome>> {
    let stage = txn.stage_dir();
    let rules = &plan.decision.rules;
    let staged = match &plan.source {
        Source::Pack(sp) => stage::stage_from_pack(sp, rules, &stage, progress, cancel)?,
        Source::Archive(a) => {
            std::fs::create_dir_all(&stage).map_err(|e| Error::Io {
                path: stage.clone(),
                source: e,
            })?;
            let target = plan.stage_target(Some(&stage));
            stage::stage_from_archive(a, rules, &target, progress, cancel)?
        }
    };
    cancel.check()?;
    crate::fsutil::syncfs(&stage)?;
    txn.journal.log(&Record::Staged)?;
    failpoint("after-stage");
    // Config merges, decided on the staged copy of the operator's file.
    let decided = plan.merges.decide(&mut plan.decision.rules, |m| {
        std::fs::read(stage.join(&m.dst)).ok()
    });
    let mut staging = Staging {
        root: &stage,
        staged,
        side_units: Vec::new(),
        conflicts: Vec::new(),
    };
    plan.merges.apply(&decided, &mut staging)?;
    let txn_plan = txn_plan(txn, plan, staging);
    record::write_plan(&txn.dir, &txn_plan)?;
    cancel.check()?;
    swap::swap(txn, &txn_plan)?;
    let problems = swap::verify_target(&txn.pack, &txn_plan.staged)?;
    if !problems.is_empty() {
        return Err(Error::invalid(
            &txn.pack,
            format!(
                "the pack does not match the source after the swap: {}",
                problems.join("; ")
            ),
        ));
    }
    failpoint("after-verify");
    // Only clutter if it stays.
    let _ = std::fs::remove_dir_all(&stage);
    commit(txn, &txn_plan)?;
    Ok(decided.into_iter().map(|d| d.outcome).collect())
}

/// What the transaction does, for `plan.json`.
fn txn_plan(txn: &Txn, plan: &TransplantPlan, staging: Staging) -> TxnPlan {
    let mut units = swap::units(&plan.decision.rules, &staging.staged);
    units.extend(staging.side_units);
    TxnPlan {
        id: txn.id(),
        source: plan.opts.source.to_string_lossy().into_owned(),
        parents: moves::parents_of(&txn.pack, &units),
        units,
        staged: staging.staged,
        decisions: plan.decision.rules.clone(),
        conflicts: staging.conflicts,
    }
}

/// Commits, or records that conflicts await `--continue`.
fn commit(txn: &mut Txn, txn_plan: &TxnPlan) -> Result<()> {
    if !txn_plan.conflicts.is_empty() {
        return txn.journal.log(&Record::Conflicts {
            files: txn_plan.conflicts.iter().map(|c| c.path.clone()).collect(),
        });
    }
    txn.journal.log(&Record::Committed)?;
    failpoint("after-commit");
    Ok(())
}

/// `carryover transplant SOURCE NEW_PACK [--dry-run]`: [`fn@plan`], then (unless a dry run)
/// [`execute`].
///
/// # Errors
/// See [`fn@plan`] and [`execute`].
pub fn transplant(
    opts: &TransplantOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Transplanted> {
    let plan = match plan(opts)? {
        Planned::Awaiting(a) => return Ok(Transplanted::Awaiting(a)),
        Planned::Ready(p) => *p,
    };
    let report = if opts.dry_run {
        plan.dry_check(progress, cancel)?;
        plan.report()
    } else {
        execute(plan, progress, cancel)?
    };
    Ok(Transplanted::Report(Box::new(report)))
}

/// `transplant --continue NEW_PACK`: opens the pack for writing and finishes the transplant
/// whose conflicts await resolution ([`resume`]).
///
/// # Errors
/// See [`crate::access::open_for_write`] and [`resume::continue_txn`].
pub fn continue_txn(target: &Path) -> Result<ContinueReport> {
    let w = open_for_write(target)?;
    resume::continue_txn(&w.pack.root)
}

/// `transplant --revert NEW_PACK`: opens the pack for writing and reverts its last transplant
/// ([`mod@revert`]).
///
/// # Errors
/// See [`crate::access::open_for_write`] and [`revert::revert_last`].
pub fn revert(target: &Path) -> Result<RevertReport> {
    let w = open_for_write(target)?;
    revert::revert_last(&w.pack.root)
}

/// `transplant --forget NEW_PACK`: opens the pack for writing and drops its committed
/// transactions' backups ([`revert::forget`]).
///
/// # Errors
/// See [`crate::access::open_for_write`] and [`revert::forget`].
pub fn forget(target: &Path) -> Result<revert::Forgotten> {
    let w = open_for_write(target)?;
    revert::forget(&w.pack.root)
}

/// `transplant --recover NEW_PACK`: finish or undo whatever a crash interrupted (opening the
/// pack for writing does exactly that).
///
/// # Errors
/// See [`crate::access::open_for_write`].
pub fn recover(target: &Path) -> Result<Recovery> {
    Ok(open_for_write(target)?.recovered)
}
