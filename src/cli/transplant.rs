//! `carryover transplant SOURCE NEW_PACK`, `--dry-run`, `--revert NEW_PACK`, `--recover NEW_PACK`,
//! `--forget NEW_PACK`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use carryover::outcome::Outcome;
use carryover::transplant::{self, Action, TransplantOptions, TransplantReport, Transplanted};
use carryover::{Error, Result};

use super::ctx::{usage, Ctx};
use super::output;

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("mode").args(["revert", "recover", "continue_", "forget"]).multiple(false))]
pub struct TransplantArgs {
    /// SOURCE (a snapshot archive or the old pack's directory) and NEW_PACK; only NEW_PACK with
    /// --revert or --recover.
    #[arg(value_name = "SOURCE NEW_PACK", num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the plan (per rule: replace, create, keep, drop, and why) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave this H2 database behind on purpose (repeatable), e.g. --skip-db WSO2METRICS_DB.
    #[arg(long, value_name = "NAME")]
    pub skip_db: Vec<String>,
    /// The rules that apply to SOURCE, an archive or an old pack (default: the built-in for its
    /// product and version; an archive's recorded rules are only compared with them).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Restore NEW_PACK exactly to its state before the last transplant (exit 4); again to walk
    /// back the one before it.
    #[arg(long)]
    pub revert: bool,
    /// Drop the committed transplants' backups of NEW_PACK (they hold databases and keystores):
    /// nothing is revertible afterwards.
    #[arg(long)]
    pub forget: bool,
    /// Transplant into a pack that already holds a committed transplant (both stay revertible,
    /// newest first).
    #[arg(long)]
    pub force: bool,
    /// Carry state between different product versions (WSO2 calls that a migration, with its
    /// own client): refused without this flag.
    #[arg(long)]
    pub allow_version_change: bool,
    /// Carry an H2 database that a snapshot taken with --allow-corrupt records as damaged
    /// (refused without this flag; a damaged Lucene index is always dropped for re-indexing).
    #[arg(long)]
    pub allow_damaged_db: bool,
    /// Finish or undo a transplant interrupted by a crash.
    #[arg(long)]
    pub recover: bool,
    /// After resolving conflicts (write each FILE.final): install them and commit.
    #[arg(long = "continue")]
    pub continue_: bool,
    /// Pristine base for three-way config merges: an unpacked pack of the old version, its
    /// distribution .zip, or a baseline snapshot (default: the catalog's baseline snapshot).
    #[arg(long, value_name = "PATH")]
    pub base: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: TransplantArgs) -> Result<Outcome> {
    if args.revert || args.recover || args.continue_ || args.forget {
        let [target] = args.paths.as_slice() else {
            return Err(usage(
                "--revert, --recover, --continue and --forget take only NEW_PACK",
            ));
        };
        return if args.continue_ {
            resume(ctx, target)
        } else if args.forget {
            forget(ctx, target)
        } else if args.revert {
            revert(ctx, target)
        } else {
            recover(ctx, target)
        };
    }
    let [source, target] = args.paths.as_slice() else {
        return Err(usage("transplant needs SOURCE and NEW_PACK"));
    };
    let base = match args.base {
        Some(b) => Some(b),
        None => baseline_from_catalog(ctx, source),
    };
    let opts = TransplantOptions {
        base,
        source: source.clone(),
        target: target.clone(),
        dry_run: args.dry_run,
        skip_db: args.skip_db,
        manifest: args.manifest,
        force: args.force,
        allow_version_change: args.allow_version_change,
        allow_damaged_db: args.allow_damaged_db,
    };
    let bar = ctx.out.bar("transplant");
    let result = transplant::transplant(&opts, &bar, &ctx.cancel);
    if !opts.dry_run {
        let (res, detail) = match &result {
            Ok(Transplanted::Report(r)) => (
                r.result.label(),
                serde_json::to_value(r).unwrap_or_default(),
            ),
            Ok(Transplanted::Awaiting(a)) => {
                ("failed", serde_json::json!({ "error": a.to_string() }))
            }
            Err(e) => ("failed", serde_json::json!({ "error": e.to_string() })),
        };
        if let Err(e) = ctx
            .catalog()
            .and_then(|c| c.record_transplant(source, target, res, &detail))
        {
            ctx.out.warn(&e.to_string());
        }
    }
    let report = match result? {
        Transplanted::Report(r) => r,
        Transplanted::Awaiting(a) => {
            let stop = Error::Conflicts {
                path: a.pack.clone(),
                count: a.conflicts,
            };
            return Ok(stopped(ctx, &stop, a.outcome()));
        }
    };
    let conflicts = !report.conflicts.is_empty();
    ctx.out
        .report(&report, conflicts, || render(&report, ctx.out.verbose))?;
    Ok(report.outcome())
}

/// An outcome that stops the command (exit 3 without a report): printed on stderr as errors
/// are, kind, evidence and hint included.
fn stopped(ctx: &Ctx, how: &Error, outcome: Outcome) -> Outcome {
    ctx.out.error(how, outcome.exit_code());
    outcome
}

/// `--continue`: install each FILE.final and commit.
fn resume(ctx: &Ctx, target: &Path) -> Result<Outcome> {
    let report = transplant::continue_txn(target)?;
    if let Some(problems) = report.unresolved_problems() {
        let stop = Error::Unresolved {
            path: report.pack.clone(),
            problems,
        };
        return Ok(stopped(ctx, &stop, report.outcome()));
    }
    let resolved = report.resolved;
    let detail = serde_json::json!({ "continued": resolved });
    if let Err(e) = ctx
        .catalog()
        .and_then(|c| c.record_transplant(target, target, "committed", &detail))
    {
        ctx.out.warn(&e.to_string());
    }
    let doc = serde_json::json!({ "result": "committed", "resolved": resolved, "target": target });
    ctx.out.report(&doc, false, || {
        let mut s = String::new();
        for r in &resolved {
            let _ = writeln!(s, "installed {r} from {r}.final");
        }
        let _ = writeln!(
            s,
            "committed: the transplant into {} is complete and verified",
            target.display()
        );
        s
    })?;
    Ok(Outcome::Ok)
}

/// `--revert`: the pack back to its state before the last transplant (exit 4).
fn revert(ctx: &Ctx, target: &Path) -> Result<Outcome> {
    let reverted = transplant::revert(target)?;
    let id = &reverted.txn;
    let detail = serde_json::json!({ "txn": id });
    if let Err(e) = ctx
        .catalog()
        .and_then(|c| c.record_transplant(target, target, "reverted", &detail))
    {
        ctx.out.warn(&e.to_string());
    }
    let doc = serde_json::json!({ "result": "reverted", "txn": id, "target": target });
    ctx.out.report(&doc, false, || {
        format!(
            "reverted transplant {id}: {} is back to its state before it\n",
            target.display()
        )
    })?;
    Ok(reverted.outcome())
}

/// `--forget`: drop the committed transplants' backups, saying how much that freed.
fn forget(ctx: &Ctx, target: &Path) -> Result<Outcome> {
    let f = transplant::forget(target)?;
    let doc = serde_json::json!({ "result": "forgotten", "txns": f.txns, "bytes": f.bytes, "target": target });
    ctx.out.report(&doc, false, || {
        if f.txns.is_empty() {
            format!(
                "{}: no committed transplant to forget (freed {})\n",
                target.display(),
                output::bytes(f.bytes)
            )
        } else {
            format!(
                "forgot {} committed transplant(s) ({}): freed {}; they can no longer be reverted\n",
                f.txns.len(),
                f.txns.join(", "),
                output::bytes(f.bytes)
            )
        }
    })?;
    Ok(Outcome::Ok)
}

/// `--recover`: finish or undo whatever a crash interrupted.
fn recover(ctx: &Ctx, target: &Path) -> Result<Outcome> {
    let rec = transplant::recover(target)?;
    ctx.out.report(&rec, false, || {
        if rec.is_empty() {
            format!("{}: nothing to recover\n", target.display())
        } else {
            format!(
                "{}: rolled back {:?}, finished reverts {:?}\n",
                target.display(),
                rec.rolled_back,
                rec.reverts_finished
            )
        }
    })?;
    Ok(Outcome::Ok)
}

/// The catalog's baseline snapshot for the source's product and version, if one was taken.
fn baseline_from_catalog(ctx: &Ctx, source: &Path) -> Option<PathBuf> {
    let (product, version) = if source.is_dir() {
        let p = carryover::pack::Pack::open(source).ok()?;
        (p.identity.product, p.identity.version.to_string())
    } else {
        let m = carryover::archive::read_meta(source).ok()?;
        (m.product, m.version)
    };
    ctx.catalog()
        .ok()?
        .baseline(&product, &version)
        .ok()
        .flatten()
}

fn render(r: &TransplantReport, verbose: bool) -> String {
    let mut s = String::new();
    if let Some(rec) = &r.recovered {
        let _ = writeln!(
            s,
            "recovered first: rolled back {:?}, finished reverts {:?}",
            rec.rolled_back, rec.reverts_finished
        );
    }
    let _ = writeln!(
        s,
        "{} {} {} -> {} ({} {} into {})",
        if r.dry_run { "plan:" } else { "transplant:" },
        r.product,
        r.from_version,
        r.to_version,
        r.source_kind,
        r.source.display(),
        r.target.display()
    );
    render_rules(&mut s, r, verbose);
    if !r.conflicts.is_empty() {
        render_conflicts(&mut s, r);
        return s;
    }
    if r.dry_run {
        let _ = writeln!(
            s,
            "dry run: nothing was changed ({} files, {} would be carried)",
            r.files,
            output::bytes(r.bytes)
        );
    } else {
        let _ = writeln!(
            s,
            "{}: {} files, {} carried and verified in {:.2} s (transaction {}; undo with `carryover transplant --revert {}`)",
            r.result,
            r.files,
            output::bytes(r.bytes),
            r.seconds,
            r.txn.as_deref().unwrap_or("-"),
            r.target.display()
        );
    }
    for a in &r.advice {
        let _ = writeln!(s, "advice: {a}");
    }
    s
}

fn render_rules(s: &mut String, r: &TransplantReport, verbose: bool) {
    for d in &r.rules {
        let action = match d.action {
            Action::Replace => "replace",
            Action::Create => "create",
            Action::Keep => "keep",
            Action::Drop => "drop",
        };
        let _ = writeln!(
            s,
            "  {:<22} {:<8} {:>10} {:>7} files  {}  ({})",
            d.rule,
            action,
            output::bytes(if d.carried() { d.bytes } else { 0 }),
            if d.carried() { d.files } else { 0 },
            d.dst.as_deref().unwrap_or("-"),
            d.reason
        );
    }
    for c in &r.configs {
        let _ = writeln!(
            s,
            "  config {:<40} {:<10} {}{}",
            c.path,
            c.fate,
            c.reason,
            c.base
                .as_deref()
                .map(|b| format!(" (base: {b})"))
                .unwrap_or_default()
        );
        if let Some(d) = c.diff.as_ref().filter(|_| verbose) {
            for line in d.lines() {
                let _ = writeln!(s, "      {line}");
            }
        }
    }
}

fn render_conflicts(s: &mut String, r: &TransplantReport) {
    let _ = writeln!(
        s,
        "CONFLICTS: {} file(s) need your decision:",
        r.conflicts.len()
    );
    for c in &r.conflicts {
        let _ = writeln!(
            s,
            "  {c}: yours is in place; {c}.old = pristine base, {c}.updated = the update's version, \
             {c}.merged = a diff3-marked attempt. Write the result to {c}.final"
        );
    }
    let _ = writeln!(
        s,
        "then run `carryover transplant --continue {}` (or `--revert` to abandon)",
        r.target.display()
    );
}
