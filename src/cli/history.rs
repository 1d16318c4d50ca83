//! `carryover list` and `carryover show ID|FILE`: the catalog's history.

use std::fmt::Write as _;

use carryover::catalog::{self, Catalog};

use super::output;
use super::{Global, Outcome};

#[derive(Debug, clap::Args)]
pub struct ListArgs {}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A record id from `list` (s1, v2, t3) or a snapshot archive's path.
    pub id: String,
}

pub fn list(global: &Global, _args: ListArgs) -> anyhow::Result<Outcome> {
    let cat = Catalog::open(&catalog::default_path(global.catalog.as_deref()))?;
    let rows = cat.list()?;
    if global.json {
        output::json(&rows)?;
    } else {
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
        output::text(&s);
    }
    Ok(Outcome::Ok)
}

pub fn show(global: &Global, args: ShowArgs) -> anyhow::Result<Outcome> {
    let cat = Catalog::open(&catalog::default_path(global.catalog.as_deref()))?;
    let Some(rec) = cat.show(&args.id)? else {
        anyhow::bail!("{}: no such record in the catalog", args.id);
    };
    if global.json {
        output::json(&rec)?;
    } else {
        let mut s = format!(
            "{} {} {}\n{}\n{}\n",
            rec.id, rec.kind, rec.time, rec.subject, rec.summary
        );
        if let Some(d) = &rec.detail {
            s.push_str(&serde_json::to_string_pretty(d)?);
            s.push('\n');
        }
        output::text(&s);
    }
    Ok(Outcome::Ok)
}
