//! `carryover verify SNAPSHOT [--against PACK]`: prove an archive, or a pack, matches.
//! Text, `--json` or `--junit FILE` reports; exit 0 clean, 5 mismatches, 1 unreadable.

use std::fmt::Write as _;
use std::path::PathBuf;

use carryover::error::{IoContext, Result};
use carryover::outcome::Outcome;
use carryover::verify::{self, VerifyReport};

use super::ctx::Ctx;
use super::output;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The snapshot archive (.tar.zst).
    pub snapshot: PathBuf,
    /// Compare this pack's current state with the snapshot (changed, missing, extra per rule).
    #[arg(long, value_name = "PACK")]
    pub against: Option<PathBuf>,
    /// Also write a JUnit XML report (a testcase per rule, a failure per bad file).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<Outcome> {
    let bar = ctx.out.bar("verify");
    let report = match &args.against {
        None => verify::verify_archive(&args.snapshot, &bar, &ctx.cancel)?,
        Some(pack) => verify::verify_against(&args.snapshot, pack, &bar, &ctx.cancel)?,
    };
    if let Err(e) = ctx.catalog().and_then(|c| c.record_verify(&report)) {
        ctx.out.warn(&e.to_string());
    }
    if let Some(j) = &args.junit {
        std::fs::write(j, junit(&report)).at(j)?;
    }
    ctx.out
        .report(&report, !report.ok, || render(&report, ctx.out.verbose))?;
    let outcome = report.outcome()?;
    if outcome == Outcome::Mismatch {
        // One line on stderr for logs that only keep stderr (JSON under --json); the report
        // has the details.
        let note = carryover::Error::Mismatch {
            path: report.archive.clone(),
            count: report.problems.len(),
        };
        ctx.out.error(&note, outcome.exit_code());
    }
    Ok(outcome)
}

fn render(r: &VerifyReport, verbose: bool) -> String {
    let mut s = String::new();
    let what = match &r.against {
        Some(p) => format!("{} against {}", r.archive.display(), p.display()),
        None => r.archive.display().to_string(),
    };
    let _ = writeln!(
        s,
        "{} {what}: {} entries, {} files, {}; {} problem(s) in {:.2} s",
        if r.ok { "OK" } else { "FAILED" },
        r.entries,
        r.files,
        output::bytes(r.bytes),
        r.problems.len(),
        r.seconds
    );
    if verbose || !r.ok {
        for rule in &r.rules {
            let _ = writeln!(
                s,
                "  rule {:<24} {:>7} checked {:>5} problem(s)",
                rule.name, rule.checked, rule.problems
            );
        }
    }
    for p in &r.problems {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let rule = p
            .rule
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        let _ = writeln!(s, "  {kind}: {}{rule}: {}", p.path, p.detail);
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    s
}

fn xml_escape(s: &str) -> String {
    // XML 1.0 cannot carry most control characters, even as references.
    let s: String = s
        .chars()
        .map(|c| {
            if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// JUnit XML: a testcase per rule plus one for the archive itself; a failure per bad file.
fn junit(r: &VerifyReport) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut tests = 0;
    let mut case = |name: &str, probs: Vec<&verify::Problem>| {
        tests += 1;
        let _ = write!(
            cases,
            "    <testcase classname=\"carryover.verify\" name=\"{}\">",
            xml_escape(name)
        );
        if !probs.is_empty() {
            cases.push('\n');
        }
        for p in &probs {
            failures += 1;
            let kind = serde_json::to_value(p.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                cases,
                "      <failure type=\"{kind}\" message=\"{}: {}\">{}</failure>",
                xml_escape(&p.path),
                xml_escape(&p.detail),
                xml_escape(&p.path)
            );
        }
        let _ = writeln!(
            cases,
            "{}</testcase>",
            if probs.is_empty() { "" } else { "    " }
        );
    };
    case(
        "archive",
        r.problems.iter().filter(|p| p.rule.is_none()).collect(),
    );
    for rule in &r.rules {
        case(
            &format!("rule {}", rule.name),
            r.problem_paths_for_rule(&rule.name).collect(),
        );
    }
    let name = xml_escape(&r.archive.display().to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"carryover verify {name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">\n{cases}  </testsuite>\n</testsuites>\n",
        r.seconds
    )
}
