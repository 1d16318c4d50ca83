//! `carryover snapshot PACK`: the pack's state into a self-describing `.tar.zst`.

use std::fmt::Write as _;
use std::path::PathBuf;

use carryover::outcome::Outcome;
use carryover::snapshot::{default_name, write_snapshot, SnapshotOptions, SnapshotSummary};
use carryover::Result;

use super::ctx::{usage, Ctx};
use super::inspect::plan_for;
use super::output;

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// The pack directory.
    pub pack: PathBuf,
    /// Archive to write (default `<product>-<version>-<UTC time>.tar.zst` in the current directory).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Use this manifest instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// zstd compression level.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// zstd worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Take the snapshot even though a server runs on the pack (recorded in the archive).
    #[arg(long)]
    pub allow_running: bool,
    /// Record damaged index/database files instead of failing.
    #[arg(long)]
    pub allow_corrupt: bool,
    /// Take the snapshot even though this required rule found nothing (repeatable).
    #[arg(long, value_name = "RULE")]
    pub allow_missing: Vec<String>,
    /// Mark this snapshot as the pristine baseline of its version (take it right after
    /// install): transplant uses it as the base of three-way config merges.
    #[arg(long)]
    pub baseline: bool,
}

pub fn run(ctx: &Ctx, args: SnapshotArgs) -> Result<Outcome> {
    let (_lock, plan) = plan_for(&args.pack, args.manifest.as_deref())?;
    for a in &args.allow_missing {
        if plan.rule(a).is_none() {
            return Err(usage(&format!(
                "--allow-missing {a}: the manifest {} has no such rule",
                plan.manifest
            )));
        }
    }
    plan.check_required(&args.allow_missing)?;
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from(default_name(&plan)));
    let opts = SnapshotOptions {
        output,
        level: args.level,
        threads: args.threads,
        allow_running: args.allow_running,
        allow_corrupt: args.allow_corrupt,
        baseline: args.baseline,
    };
    let bar = ctx.out.bar("snapshot");
    let summary = write_snapshot(&plan, &opts, &bar, &ctx.cancel)?;
    let catalog_id = match ctx
        .catalog()
        .and_then(|c| c.record_snapshot(&plan.pack.root, &summary))
    {
        Ok(id) => Some(id),
        Err(e) => {
            ctx.out
                .warn(&format!("{e}; the snapshot itself is complete"));
            None
        }
    };
    let mut doc = serde_json::to_value(&summary).unwrap_or_default();
    doc["catalog_id"] = serde_json::json!(catalog_id);
    ctx.out
        .report(&doc, false, || render(&summary, catalog_id.as_deref()))?;
    Ok(Outcome::Ok)
}

fn render(s: &SnapshotSummary, id: Option<&str>) -> String {
    let warn = if s.allow_running {
        "WARNING (taken while running) "
    } else {
        ""
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{warn}snapshot {} ({} {}, manifest {})",
        s.archive.display(),
        s.product,
        s.version,
        s.manifest
    );
    let _ = writeln!(
        out,
        "{warn}files {}, dirs {}, symlinks {}; {} in, {} out, ratio {:.2}; {:.2} s, {:.0} MiB/s",
        s.files,
        s.dirs,
        s.symlinks,
        output::bytes(s.bytes_in),
        output::bytes(s.bytes_out),
        s.ratio,
        s.seconds,
        s.mib_per_s
    );
    let _ = writeln!(
        out,
        "{warn}sha256 {} (sidecar {})",
        s.archive_sha256,
        s.sidecar.display()
    );
    if let Some(id) = id {
        let _ = writeln!(out, "{warn}catalog id {id}");
    }
    for c in &s.changed_while_reading {
        let _ = writeln!(out, "{warn}changed while read: {c}");
    }
    for c in &s.corrupt {
        let _ = writeln!(out, "{warn}damaged: {}: {}", c.path, c.problem);
    }
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
