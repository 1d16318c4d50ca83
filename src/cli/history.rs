//! `carryover list` and `carryover show ID|FILE`: the catalog's history.

use std::fmt::Write as _;

use carryover::error::{Error, Result};
use carryover::outcome::Outcome;

use super::ctx::Ctx;

#[derive(Debug, clap::Args)]
pub struct ListArgs {}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A record id from `list` (s1, v2, t3) or a snapshot archive's path.
    pub id: String,
}

pub fn list(ctx: &Ctx, _args: ListArgs) -> Result<Outcome> {
    let rows = ctx.catalog()?.list()?;
    ctx.out.report(&rows, false, || {
        let mut s = String::new();
        for r in &rows {
            let _ = writeln!(
                s,
                "{:<5} {:<10} {}  {}  {}",
                r.id, r.kind, r.time, r.subject, r.summary
            );
        }
        if rows.is_empty() {
            s.push_str("the catalog is empty\n");
        }
        s
    })?;
    Ok(Outcome::Ok)
}

pub fn show(ctx: &Ctx, args: ShowArgs) -> Result<Outcome> {
    let Some(rec) = ctx.catalog()?.show(&args.id)? else {
        return Err(Error::invalid(&args.id, "no such record in the catalog"));
    };
    ctx.out.report(&rec, false, || {
        let mut s = format!(
            "{} {} {}\n{}\n{}\n",
            rec.id, rec.kind, rec.time, rec.subject, rec.summary
        );
        if let Some(d) = &rec.detail {
            s.push_str(&serde_json::to_string_pretty(d).unwrap_or_default());
            s.push('\n');
        }
        s
    })?;
    Ok(Outcome::Ok)
}
