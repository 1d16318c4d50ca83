//! `carryover transplant SOURCE NEW_PACK`, `--dry-run`, `--revert NEW_PACK`, `--recover NEW_PACK`.

use std::fmt::Write as _;
use std::path::PathBuf;

use carryover::catalog::{self, Catalog};
use carryover::error::exit;
use carryover::transplant::{self, Action, TransplantOptions, TransplantReport};

use super::output;
use super::{Global, Outcome};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("mode").args(["revert", "recover"]).multiple(false))]
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
}

fn usage(msg: &str) -> ! {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    cmd.error(clap::error::ErrorKind::WrongNumberOfValues, msg)
        .exit()
}

pub fn run(global: &Global, args: TransplantArgs) -> anyhow::Result<Outcome> {
    let cat = || Catalog::open(&catalog::default_path(global.catalog.as_deref()));
    if args.revert || args.recover {
        let [target] = args.paths.as_slice() else {
            usage("--revert and --recover take only NEW_PACK");
        };
        if args.revert {
            let id = transplant::revert(target)?;
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
            return Ok(Outcome::Code(exit::REVERTED));
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
        usage("transplant needs SOURCE and NEW_PACK");
    };
    let opts = TransplantOptions {
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
            Ok(r) => (r.result, serde_json::to_value(r).unwrap_or_default()),
            Err(e) => ("failed", serde_json::json!({ "error": e.to_string() })),
        };
        if let Err(e) = cat().and_then(|c| c.record_transplant(source, target, res, &detail)) {
            eprintln!("carryover: warning: {e}");
        }
    }
    let report = result?;
    if global.json {
        output::json(&report)?;
    } else if !global.quiet {
        output::text(&render(&report, global.verbose > 0));
    }
    Ok(Outcome::Ok)
}

fn render(r: &TransplantReport, _verbose: bool) -> String {
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
