//! `verify --against PACK`: the archive's self-check, then the pack's current state for the
//! snapshot's rules compared with what the archive holds, entry by entry (changed, missing,
//! extra). The pack is selected with the manifest recorded in the snapshot, so the comparison
//! covers exactly what the snapshot carried.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::check::read_checked;
use super::report::{Problem, ProblemKind, VerifyReport};
use crate::archive::contents::{ArchiveContents, IndexInfo};
use crate::archive::format::{EntryType, IndexEntry, SnapshotMeta};
use crate::digest::sha256_file;
use crate::error::Result;
use crate::manifest::{Kind, Manifest, Origin, Selection, Strategy};
use crate::pack::Pack;
use crate::plan::{Entry, EntryKind, Plan};
use crate::progress::{Cancel, Progress};
use crate::transplant::record;

/// Verifies the archive, then compares `pack`'s current state for the snapshot's rules with it.
///
/// # Errors
/// The archive cannot be read, the recorded manifest does not parse, the pack cannot be opened
/// or planned, a pack file cannot be hashed, or `cancel` was set.
pub fn verify_against(
    archive: &Path,
    pack: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let (contents, mut report) = read_checked(archive, progress, cancel)?;
    report.against = Some(pack.to_path_buf());
    if let (Some(meta), Some(index)) = (&contents.meta, &contents.index) {
        // Shared lock for the comparison (no transplant swaps the pack under it), after
        // recovering an interrupted one, as every reading command does.
        let opened = crate::access::open_for_read(pack)?;
        if let Some(rec) = opened.recovered.as_ref().filter(|r| !r.is_empty()) {
            report.warnings.push(format!(
                "recovered {} first: rolled back {:?}, finished reverts {:?}",
                opened.pack.root.display(),
                rec.rolled_back,
                rec.reverts_finished
            ));
        }
        let _lock = opened.lock;
        let plan = current_plan(archive, meta, opened.pack)?;
        compare(&mut report, &plan, meta, &listed(&contents, index), cancel)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The pack planned with the manifest the snapshot recorded.
fn current_plan(archive: &Path, meta: &SnapshotMeta, pack: Pack) -> Result<Plan> {
    let origin = Origin::File(PathBuf::from(format!(
        "{}:snapshot.json",
        archive.display()
    )));
    let manifest = Manifest::parse(&meta.manifest.text, origin)?;
    let selection = Selection {
        manifest,
        reason: "the manifest recorded in the snapshot".into(),
    };
    Plan::build(pack, selection)
}

/// What the snapshot holds, as the index described it.
fn listed(contents: &ArchiveContents, index: &IndexInfo) -> Vec<IndexEntry> {
    contents
        .seen
        .iter()
        .filter_map(|(path, s)| {
            let m = s.index.as_ref()?;
            Some(IndexEntry {
                path: path.clone(),
                kind: s.kind,
                size: s.size,
                mode: s.mode,
                mtime: s.mtime,
                sha256: m.sha256.clone().or_else(|| s.sha_hex()),
                link: s.link.clone(),
                rule: index.rule_name(m.rule).to_string(),
                h2_format: None,
            })
        })
        .chain(index.missing.iter().cloned())
        .collect()
}

/// Adds the pack's differences from `listed` to the report.
fn compare(
    report: &mut VerifyReport,
    plan: &Plan,
    meta: &SnapshotMeta,
    listed: &[IndexEntry],
    cancel: &Cancel,
) -> Result<()> {
    let current: BTreeMap<String, (&Entry, &str)> = plan
        .entries()
        .filter_map(|e| {
            let rule = plan.rules[e.rule].name.as_str();
            Some((e.rel.to_str()?.to_string(), (e, rule)))
        })
        .collect();
    let merged: BTreeSet<&str> = meta
        .rules
        .iter()
        .filter(|r| r.kind == Kind::Config && r.strategy == Strategy::Merge)
        .map(|r| r.name.as_str())
        .collect();
    let installed = merged_by_transplant(&plan.pack.root, &report.archive, &merged);
    let mut problems = Vec::new();
    for e in listed {
        let Some((cur, _)) = current.get(&e.path) else {
            let detail = "in the snapshot but not in the pack";
            problems.push(Problem::new(
                ProblemKind::Missing,
                &e.path,
                Some(&e.rule),
                detail,
            ));
            continue;
        };
        cancel.check()?;
        if let Some(m) = installed.get(&e.path) {
            // Merged from this very snapshot by a transplant: it must be what that merge wrote.
            if let Some(p) = check_merged(&plan.pack.root, cur, e, m, report)? {
                problems.push(p);
            }
            continue;
        }
        match difference(&plan.pack.root, cur, e)? {
            Some(d) => problems.push(Problem::new(
                ProblemKind::Changed,
                &e.path,
                Some(&e.rule),
                d,
            )),
            None => {
                if let Some(d) = metadata_difference(cur, e.mode, e.mtime, e.kind) {
                    problems.push(Problem::new(
                        ProblemKind::Metadata,
                        &e.path,
                        Some(&e.rule),
                        d,
                    ));
                }
            }
        }
    }
    problems.extend(extras(&current, listed));
    for r in report.rules.iter_mut() {
        let of_rule = |x: &&Problem| x.rule.as_deref() == Some(r.name.as_str());
        r.problems += problems.iter().filter(of_rule).count() as u64;
    }
    report.problems.extend(problems);
    report.ok = report.problems.is_empty() && report.readable;
    Ok(())
}

/// What a transplant of this archive merged into the pack: path -> (digest, mode, mtime, txn),
/// from the newest committed transaction whose source is this archive. Only those files are
/// exempt from the snapshot's digest, and only if they still hold what the merge wrote.
fn merged_by_transplant(
    pack: &Path,
    archive: &Path,
    merged: &BTreeSet<&str>,
) -> BTreeMap<String, Installed> {
    let want = std::fs::canonicalize(archive).unwrap_or_else(|_| archive.to_path_buf());
    let mut out = BTreeMap::new();
    for dir in record::list_txns(pack).iter().rev() {
        if record::state_of(dir) != record::TxnState::Committed {
            continue;
        }
        let Ok(Some(txn)) = record::read_plan(dir) else {
            continue;
        };
        let src = Path::new(&txn.source);
        let src = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
        if src != want {
            continue;
        }
        for s in &txn.staged {
            let Some(d) = txn.decisions.get(s.rule) else {
                continue;
            };
            if merged.contains(d.rule.as_str()) && d.dst.as_deref() == Some(s.dst.as_str()) {
                // A conflict the operator resolved (`FILE.final`, `--continue`) holds their
                // resolution, which no record has a digest of.
                let resolved = txn.conflicts.iter().any(|c| c.path == s.dst);
                out.insert(
                    s.dst.clone(),
                    Installed {
                        sha256: s.sha256.clone(),
                        mode: s.mode,
                        mtime: s.mtime,
                        txn: txn.id.clone(),
                        resolved,
                    },
                );
            }
        }
        break;
    }
    out
}

/// A config file as a transplant's merge installed it.
struct Installed {
    sha256: Option<String>,
    mode: u32,
    mtime: i64,
    txn: String,
    resolved: bool,
}

/// A merged file against what the merge installed: a problem when it changed since.
fn check_merged(
    root: &Path,
    cur: &Entry,
    e: &IndexEntry,
    m: &Installed,
    report: &mut VerifyReport,
) -> Result<Option<Problem>> {
    if m.resolved {
        report.warnings.push(format!(
            "{}: a merge conflict of transplant {} resolved by hand (FILE.final, --continue); not compared",
            e.path, m.txn
        ));
        return Ok(None);
    }
    let now = match cur.kind {
        EntryKind::File { .. } => Some(sha256_file(&root.join(&cur.rel))?),
        _ => None,
    };
    if now != m.sha256 {
        let detail = format!(
            "differs from what transplant {} merged into the pack (edited since?)",
            m.txn
        );
        return Ok(Some(Problem::new(
            ProblemKind::Changed,
            &e.path,
            Some(&e.rule),
            detail,
        )));
    }
    if let Some(d) = metadata_difference(cur, m.mode, m.mtime, EntryType::File) {
        return Ok(Some(Problem::new(
            ProblemKind::Metadata,
            &e.path,
            Some(&e.rule),
            d,
        )));
    }
    if e.sha256 != m.sha256 {
        report.warnings.push(format!(
            "{}: merged by transplant {} (your changes and the update's); it holds what that merge wrote",
            e.path, m.txn
        ));
    }
    Ok(None)
}

/// Mode (and, for files and links, mtime) differences of an entry whose content is the same.
fn metadata_difference(cur: &Entry, mode: u32, mtime: i64, kind: EntryType) -> Option<String> {
    let mut d = Vec::new();
    if kind != EntryType::Symlink && cur.mode != mode {
        d.push(format!("mode {:o} vs snapshot {mode:o}", cur.mode));
    }
    if kind != EntryType::Dir && cur.mtime != mtime.max(0) {
        d.push(format!("mtime {} vs snapshot {mtime}", cur.mtime));
    }
    (!d.is_empty()).then(|| d.join("; "))
}

/// The pack's entries the snapshot does not hold.
fn extras(current: &BTreeMap<String, (&Entry, &str)>, listed: &[IndexEntry]) -> Vec<Problem> {
    let in_index: BTreeSet<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    let detail = "in the pack but not in the snapshot";
    current
        .iter()
        .filter(|(path, _)| !in_index.contains(path.as_str()))
        .map(|(path, (_, rule))| Problem::new(ProblemKind::Extra, path, Some(rule), detail))
        .collect()
}

/// How the pack's entry differs from the snapshot's (None: it does not).
fn difference(root: &Path, cur: &Entry, e: &IndexEntry) -> Result<Option<String>> {
    Ok(match (&cur.kind, e.kind) {
        (EntryKind::File { size }, EntryType::File) => {
            if *size != e.size {
                Some(format!("size {} vs snapshot {}", size, e.size))
            } else if Some(sha256_file(&root.join(&cur.rel))?) != e.sha256 {
                Some("content differs from the snapshot".into())
            } else {
                None
            }
        }
        (EntryKind::Symlink { target }, EntryType::Symlink) => (target.to_str()
            != e.link.as_deref())
        .then(|| format!("symlink points to {}", target.display())),
        (EntryKind::Dir, EntryType::Dir) => None,
        (k, t) => Some(format!(
            "is a {} in the pack, a {t:?} in the snapshot",
            kind_name(k)
        )),
    })
}

fn kind_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File { .. } => "file",
        EntryKind::Dir => "directory",
        EntryKind::Symlink { .. } => "symlink",
    }
}
