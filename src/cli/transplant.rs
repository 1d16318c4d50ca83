//! `carryover transplant SOURCE NEW_PACK`, `--dry-run`, `--revert NEW_PACK`, `--recover NEW_PACK`.

use std::fmt::Write as _;
use std::path::PathBuf;

use carryover::catalog::{self, Catalog};
use carryover::error::exit;
use carryover::transplant::{self, Action, TransplantOptions, TransplantReport, Transplanted};

use super::output;
use super::{Global, Outcome};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("mode").args(["revert", "recover", "continue_"]).multiple(false))]
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
    /// Manifest for an old-pack SOURCE (default: the built-in for its line).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Restore NEW_PACK exactly to its state before the last transplant (exit 4).
    #[arg(long)]
    pub revert: bool,
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

/// A usage error, printed as clap prints its own (exit 2), returned through the normal path.
fn usage(msg: &str) -> anyhow::Result<Outcome> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    let _ = cmd
        .error(clap::error::ErrorKind::WrongNumberOfValues, msg)
        .print();
    Ok(Outcome::Code(exit::USAGE))
}

/// An outcome that stops the command with an exit code of its own (3), printed on stderr the
/// way errors are.
fn stopped(global: &Global, message: String, outcome: carryover::outcome::Outcome) -> Outcome {
    let code = outcome.exit_code();
    output::error(global.json, &anyhow::anyhow!(message), code);
    Outcome::Code(code)
}

pub fn run(global: &Global, args: TransplantArgs) -> anyhow::Result<Outcome> {
    let cat = || Catalog::open(&catalog::default_path(global.catalog.as_deref()));
    if args.revert || args.recover || args.continue_ {
        let [target] = args.paths.as_slice() else {
            return usage("--revert, --recover and --continue take only NEW_PACK");
        };
        if args.continue_ {
            let report = transplant::continue_txn(target)?;
            if let Some(message) = report.unresolved_message() {
                return Ok(stopped(global, message, report.outcome()));
            }
            let resolved = report.resolved;
            let _ = cat().and_then(|c| {
                c.record_transplant(
                    target,
                    target,
                    "committed",
                    &serde_json::json!({ "continued": resolved }),
                )
            });
            if global.json {
                output::json(
                    &serde_json::json!({ "result": "committed", "resolved": resolved, "target": target }),
                )?;
            } else if !global.quiet {
                let mut s = String::new();
                for r in &resolved {
                    let _ = writeln!(s, "installed {r} from {r}.final");
                }
                let _ = writeln!(
                    s,
                    "committed: the transplant into {} is complete and verified",
                    target.display()
                );
                output::text(&s);
            }
            return Ok(Outcome::Ok);
        }
        if args.revert {
            let reverted = transplant::revert(target)?;
            let id = &reverted.txn;
            let _ = cat().and_then(|c| {
                c.record_transplant(
                    target,
                    target,
                    "reverted",
                    &serde_json::json!({ "txn": id }),
                )
            });
            if global.json {
                output::json(
                    &serde_json::json!({ "result": "reverted", "txn": id, "target": target }),
                )?;
            } else if !global.quiet {
                output::text(&format!(
                    "reverted transplant {id}: {} is back to its state before it\n",
                    target.display()
                ));
            }
            return Ok(Outcome::Code(reverted.outcome().exit_code()));
        }
        let rec = transplant::recover(target)?;
        if global.json {
            output::json(&rec)?;
        } else if !global.quiet {
            output::text(&if rec.is_empty() {
                format!("{}: nothing to recover\n", target.display())
            } else {
                format!(
                    "{}: rolled back {:?}, finished reverts {:?}\n",
                    target.display(),
                    rec.rolled_back,
                    rec.reverts_finished
                )
            });
        }
        return Ok(Outcome::Ok);
    }
    let [source, target] = args.paths.as_slice() else {
        return usage("transplant needs SOURCE and NEW_PACK");
    };
    let base = match args.base {
        Some(b) => Some(b),
        None => baseline_from_catalog(global, source),
    };
    let opts = TransplantOptions {
        base,
        source: source.clone(),
        target: target.clone(),
        dry_run: args.dry_run,
        skip_db: args.skip_db,
        manifest: args.manifest,
    };
    let cancel = output::cancel_on_signals();
    let bar = output::Bar::new(output::progress(global, 0, "transplant"));
    let result = transplant::transplant(&opts, &bar, &cancel);
    if !args.dry_run {
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
        if let Err(e) = cat().and_then(|c| c.record_transplant(source, target, res, &detail)) {
            eprintln!("carryover: warning: {e}");
        }
    }
    let report = match result? {
        Transplanted::Report(r) => r,
        Transplanted::Awaiting(a) => return Ok(stopped(global, a.to_string(), a.outcome())),
    };
    if global.json {
        output::json(&report)?;
    } else if !global.quiet || !report.conflicts.is_empty() {
        output::text(&render(&report, global.verbose > 0));
    }
    Ok(match report.outcome() {
        carryover::outcome::Outcome::Ok => Outcome::Ok,
        other => Outcome::Code(other.exit_code()),
    })
}

/// The catalog's baseline snapshot for the source's product and version, if one was taken.
fn baseline_from_catalog(global: &Global, source: &std::path::Path) -> Option<PathBuf> {
    let (product, version) = if source.is_dir() {
        let p = carryover::pack::Pack::open(source).ok()?;
        (p.identity.product, p.identity.version.to_string())
    } else {
        let m = carryover::archive::read_meta(source).ok()?;
        (m.product, m.version)
    };
    let cat = Catalog::open(&catalog::default_path(global.catalog.as_deref())).ok()?;
    cat.baseline(&product, &version).ok().flatten()
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
        if verbose {
            if let Some(d) = &c.diff {
                for line in d.lines() {
                    let _ = writeln!(s, "      {line}");
                }
            }
        }
    }
    if !r.conflicts.is_empty() {
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
