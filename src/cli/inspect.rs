//! `carryover inspect PACK`: what carryover sees, before anyone trusts it with data.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use carryover::access::{open_for_read, Readable};
use carryover::error::Error;
use carryover::lock::PackLock;
use carryover::pack::{Evidence, Pack};
use carryover::plan::{Plan, RulePlan, Status};

use carryover::outcome::Outcome;
use carryover::Result;

use super::ctx::Ctx;
use super::output;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The pack directory (e.g. wso2am-4.2.0).
    pub pack: PathBuf,
    /// Use this manifest instead of the built-in one for the pack's line.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: InspectArgs) -> Result<Outcome> {
    // inspect only looks: while a writer holds the pack it still reports, and says so.
    let plan = match plan_for(&args.pack, args.manifest.as_deref()) {
        Ok((_lock, plan)) => plan,
        Err(e @ Error::Refused { .. }) => {
            ctx.out
                .warn(&format!("{e}; what follows may change under you"));
            Plan::for_pack(Pack::open(&args.pack)?, args.manifest.as_deref())?
        }
        Err(e) => return Err(e),
    };
    ctx.out.report(&plan, false, || render(&plan))?;
    Ok(Outcome::Ok)
}

/// Detect + select for a pack under its shared lock (held as long as the returned lock lives):
/// shared by every command that reads one. The next carryover command on a pack repairs an
/// interrupted transplant first.
pub fn plan_for(pack: &Path, manifest: Option<&Path>) -> Result<(PackLock, Plan)> {
    let Readable {
        lock,
        recovered,
        pack,
    } = open_for_read(pack)?;
    if let Some(rec) = recovered.filter(|r| !r.is_empty()) {
        eprintln!(
            "carryover: recovered {}: rolled back {:?}, finished reverts {:?}",
            pack.root.display(),
            rec.rolled_back,
            rec.reverts_finished
        );
    }
    Ok((lock, Plan::for_pack(pack, manifest)?))
}

fn render(plan: &Plan) -> String {
    let mut s = String::new();
    render_identity(&mut s, plan);
    render_liveness(&mut s, plan);
    let _ = writeln!(s, "\nrules");
    for r in &plan.rules {
        render_rule(&mut s, r);
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(s, "\nwarnings");
        for w in &plan.warnings {
            let _ = writeln!(s, "  [{}] {}", w.code, w.message);
        }
    }
    s
}

fn render_identity(s: &mut String, plan: &Plan) {
    let p = &plan.pack;
    let id = &p.identity;
    let _ = writeln!(s, "pack       {}", p.root.display());
    let _ = writeln!(
        s,
        "product    {} ({}) {}",
        id.product_name, id.product, id.version
    );
    if let Some(f) = &id.flavour {
        let _ = writeln!(s, "flavour    {f}");
    }
    let _ = writeln!(
        s,
        "update     {}",
        id.update_level
            .map(|l| format!("level {l}"))
            .unwrap_or_else(|| "no U2 update level".into())
    );
    for e in &id.evidence {
        let _ = writeln!(s, "           from {e}");
    }
    let _ = writeln!(s, "manifest   {} ({})", plan.manifest, plan.manifest_origin);
    let _ = writeln!(s, "           why: {}", plan.manifest_reason);
    let eng = &p.engines;
    let _ = writeln!(
        s,
        "engines    H2 {}, Lucene {}",
        eng.h2
            .as_ref()
            .map(|j| format!("{} ({})", j.version, j.jar))
            .unwrap_or_else(|| "not found".into()),
        plan.lucene_major
            .map(|m| m.to_string())
            .unwrap_or_else(|| "not found".into()),
    );
}

fn render_liveness(s: &mut String, plan: &Plan) {
    let live = &plan.liveness;
    let _ = writeln!(
        s,
        "server     {}",
        if live.running {
            "RUNNING"
        } else {
            "not running"
        }
    );
    for e in &live.evidence {
        let mark = if matches!(e, Evidence::StalePidFile { .. }) {
            "  "
        } else {
            "! "
        };
        let _ = writeln!(s, "         {mark}{e}");
    }
}

fn render_rule(s: &mut String, r: &RulePlan) {
    let status = match r.status {
        Status::Found => "found",
        Status::Missing if r.required => "MISSING",
        Status::Missing => "missing",
        Status::External => "external",
    };
    let path = r
        .path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into());
    let _ = writeln!(
        s,
        "  {:<22} {:<7} {:<8} {:>10} {:>7} files  {}",
        r.name,
        r.kind,
        status,
        output::bytes(r.bytes),
        r.files,
        path
    );
    if let Some(h2) = &r.h2 {
        let fmt = h2
            .format
            .map(|f| f.to_string())
            .unwrap_or_else(|| "-".into());
        let opens = match h2.opened_by_pack_engine {
            Some(true) => "opened by this pack's H2",
            Some(false) => "NOT opened by this pack's H2",
            None => "engine compatibility unknown",
        };
        let _ = writeln!(s, "  {:<22} {} {fmt}; {opens}", "", h2.database);
        let _ = writeln!(s, "  {:<22} resolved from {}", "", h2.resolved_from);
    }
    if let Some(t) = &r.travels_with {
        let _ = writeln!(s, "  {:<22} travels with {t}", "");
    }
}
