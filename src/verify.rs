//! Verification: an archive against its own records (stream, index, SHA256SUMS, sidecar), or a
//! pack's current state against an archive. Produces a [`VerifyReport`] naming every problem.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::archive::format::{parse_sha256sums, EntryType, IndexEntry};
use crate::archive::index_check::FindingKind;
use crate::archive::{read_archive, sidecar_path, ArchiveContents};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{Kind, Manifest, Origin, Selection, Strategy};
use crate::pack::Pack;
use crate::plan::{EntryKind, Plan};
use crate::progress::{Cancel, Progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The compressed stream or tar structure is damaged or truncated.
    CorruptStream,
    /// snapshot.json / index.json / SHA256SUMS absent or unreadable.
    MissingRecord,
    /// Listed in the index (or snapshot) but not present.
    Missing,
    /// Present but not listed in the index (or snapshot).
    Extra,
    /// Content, size, type, mode, mtime or link differ.
    Changed,
    /// SHA256SUMS disagrees with the index or is malformed.
    Sums,
    /// The NAME.sha256 sidecar disagrees with the archive.
    Sidecar,
    /// The same path twice in the archive.
    Duplicate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    pub name: String,
    pub checked: u64,
    pub problems: u64,
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<PathBuf>,
    pub ok: bool,
    /// False when nothing could be read (exit 1 rather than 5).
    pub readable: bool,
    pub archive_sha256: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    pub rules: Vec<RuleResult>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

impl VerifyReport {
    pub fn problem_paths_for_rule(&self, rule: &str) -> impl Iterator<Item = &Problem> {
        let rule = rule.to_string();
        self.problems
            .iter()
            .filter(move |p| p.rule.as_deref() == Some(rule.as_str()))
    }
}

fn p(kind: ProblemKind, path: &str, rule: Option<&str>, detail: impl Into<String>) -> Problem {
    Problem {
        kind,
        path: path.to_string(),
        rule: rule.map(str::to_string),
        detail: detail.into(),
    }
}

/// Verifies an archive against its own records and its sidecar.
pub fn verify_archive(
    archive: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let contents = read_archive(archive, None, progress, cancel)?;
    let mut report = check_contents(archive, &contents);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Cross-checks what was read against the records; shared by verify and transplant.
pub fn check_contents(archive: &Path, c: &ArchiveContents) -> VerifyReport {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if let Some(e) = &c.stream_error {
        problems.push(p(
            ProblemKind::CorruptStream,
            &archive.display().to_string(),
            None,
            e.clone(),
        ));
    }
    if c.meta.is_none() {
        problems.push(p(
            ProblemKind::MissingRecord,
            ".carryover/snapshot.json",
            None,
            "absent or unreadable",
        ));
    }
    // A damaged zstd stream is a finding (exit 5) even when its first block is the damaged one;
    // only a file that is not zstd, or ends before anything could be read, is unreadable.
    let readable = c.meta.is_some() || !c.seen.is_empty() || c.damaged;
    if c.index.is_none() {
        problems.push(p(
            ProblemKind::MissingRecord,
            ".carryover/index.json",
            None,
            "absent or unreadable",
        ));
    }
    for d in &c.duplicates {
        problems.push(p(
            ProblemKind::Duplicate,
            d,
            None,
            "entry appears more than once",
        ));
    }
    let mut rules: BTreeMap<String, RuleResult> = BTreeMap::new();
    if let Some(m) = &c.meta {
        for r in &m.rules {
            rules.insert(
                r.name.clone(),
                RuleResult {
                    name: r.name.clone(),
                    checked: 0,
                    problems: 0,
                },
            );
        }
    }
    if let Some(ix) = &c.index {
        for (i, name) in ix.rules.iter().enumerate() {
            if let Some(r) = rules.get_mut(name) {
                r.checked += ix.counts[i];
            }
        }
        // Entry-level findings were made while index.json streamed (it is never held whole).
        for f in &ix.findings {
            let kind = match f.kind {
                FindingKind::Missing => ProblemKind::Missing,
                FindingKind::Duplicate => ProblemKind::Duplicate,
                FindingKind::Changed => ProblemKind::Changed,
            };
            problems.push(p(
                kind,
                &f.path,
                Some(ix.rule_name(f.rule)),
                f.detail.clone(),
            ));
        }
        for (path, s) in &c.seen {
            if s.index.is_none() {
                problems.push(p(
                    ProblemKind::Extra,
                    path,
                    None,
                    "in the archive but not in index.json",
                ));
            }
        }
        // SHA256SUMS must agree with the index, line for line.
        match &c.sums {
            None => problems.push(p(
                ProblemKind::MissingRecord,
                ".carryover/SHA256SUMS",
                None,
                "absent",
            )),
            Some(sums) => {
                for sp in &sums.problems {
                    problems.push(p(
                        ProblemKind::Sums,
                        &sp.path,
                        sp.rule.as_deref(),
                        sp.detail.clone(),
                    ));
                }
                for (path, s) in &c.seen {
                    if let Some(m) = s.index.as_ref().filter(|m| m.is_file && !m.listed) {
                        problems.push(p(
                            ProblemKind::Sums,
                            path,
                            Some(ix.rule_name(m.rule)),
                            "file missing from SHA256SUMS",
                        ));
                    }
                }
                for e in ix.missing.iter().filter(|e| e.kind == EntryType::File) {
                    if !sums.listed_missing.contains(&e.path) {
                        problems.push(p(
                            ProblemKind::Sums,
                            &e.path,
                            Some(&e.rule),
                            "file missing from SHA256SUMS",
                        ));
                    }
                }
            }
        }
        for ch in &ix.changed_while_reading {
            warnings.push(format!(
                "{ch} changed while the snapshot read it (taken with --allow-running)"
            ));
        }
        for co in &ix.corrupt {
            warnings.push(format!(
                "{} was damaged when snapshotted: {} (--allow-corrupt)",
                co.path, co.problem
            ));
        }
    }
    // The sidecar: `HEX  NAME` for this archive.
    let sidecar = sidecar_path(archive);
    match std::fs::read_to_string(&sidecar) {
        Err(_) => warnings.push(format!(
            "no sidecar {} to check the archive's own digest against",
            sidecar.display()
        )),
        Ok(text) => {
            let name = archive
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let lines: Vec<_> = parse_sha256sums(&text).collect();
            let side = sidecar.display().to_string();
            match lines.as_slice() {
                [Some((hex, n))] => {
                    if n != &name {
                        problems.push(p(
                            ProblemKind::Sidecar,
                            &side,
                            None,
                            format!("names {n:?}, not {name:?}"),
                        ));
                    }
                    if c.archive_sha256.as_deref() != Some(hex.as_str()) {
                        problems.push(p(
                            ProblemKind::Sidecar,
                            &side,
                            None,
                            format!(
                                "digest {hex} does not match the archive's {}",
                                c.archive_sha256.as_deref().unwrap_or("(unreadable)")
                            ),
                        ));
                    }
                }
                _ => problems.push(p(
                    ProblemKind::Sidecar,
                    &side,
                    None,
                    "not a single `sha256sum` line",
                )),
            }
        }
    }
    for pr in &problems {
        if let Some(r) = pr.rule.as_ref().and_then(|n| rules.get_mut(n)) {
            r.problems += 1;
        }
    }
    let files = c
        .seen
        .values()
        .filter(|s| s.kind == EntryType::File)
        .count() as u64;
    let bytes = c.seen.values().map(|s| s.size).sum();
    VerifyReport {
        archive: archive.to_path_buf(),
        against: None,
        ok: problems.is_empty() && readable,
        readable,
        archive_sha256: c.archive_sha256.clone(),
        product: c.meta.as_ref().map(|m| m.product.clone()),
        version: c.meta.as_ref().map(|m| m.version.clone()),
        entries: c.seen.len() as u64,
        files,
        bytes,
        rules: rules.into_values().collect(),
        problems,
        warnings,
        seconds: 0.0,
    }
}

/// Verifies the archive, then compares `pack`'s current state for the snapshot's rules with it.
pub fn verify_against(
    archive: &Path,
    pack: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let contents = read_archive(archive, None, progress, cancel)?;
    let mut report = check_contents(archive, &contents);
    report.against = Some(pack.to_path_buf());
    let (Some(meta), Some(index)) = (&contents.meta, &contents.index) else {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    };
    let manifest = Manifest::parse(
        &meta.manifest.text,
        Origin::File(PathBuf::from(format!(
            "{}:snapshot.json",
            archive.display()
        ))),
    )?;
    let pack = Pack::open(pack)?;
    let plan = Plan::build(
        pack,
        Selection {
            manifest,
            reason: "the manifest recorded in the snapshot".into(),
        },
    )?;
    let current: BTreeMap<String, (&crate::plan::Entry, &str)> = plan
        .entries()
        .filter_map(|e| {
            Some((
                e.rel.to_str()?.to_string(),
                (e, plan.rules[e.rule].name.as_str()),
            ))
        })
        .collect();
    let merged: BTreeSet<&str> = meta
        .rules
        .iter()
        .filter(|r| r.kind == Kind::Config && r.strategy == Strategy::Merge)
        .map(|r| r.name.as_str())
        .collect();
    // What the snapshot holds, as the index described it.
    let listed: Vec<IndexEntry> = contents
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
        .collect();
    let mut problems = Vec::new();
    for e in &listed {
        let Some((cur, _)) = current.get(&e.path) else {
            problems.push(p(
                ProblemKind::Missing,
                &e.path,
                Some(&e.rule),
                "in the snapshot but not in the pack",
            ));
            continue;
        };
        cancel.check()?;
        let abs = plan.pack.root.join(&cur.rel);
        let diff = match (&cur.kind, e.kind) {
            (EntryKind::File { size }, EntryType::File) => {
                if *size != e.size {
                    Some(format!("size {} vs snapshot {}", size, e.size))
                } else if Some(hash_file(&abs)?) != e.sha256 {
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
        };
        if let Some(d) = diff {
            if merged.contains(e.rule.as_str()) && matches!(cur.kind, EntryKind::File { .. }) {
                // Merge-strategy config: after a transplant it holds the update's changes too.
                report.warnings.push(format!(
                    "{}: {d} (config merged by transplant; not counted as a mismatch)",
                    e.path
                ));
            } else {
                problems.push(p(ProblemKind::Changed, &e.path, Some(&e.rule), d));
            }
        }
    }
    let in_index: BTreeSet<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    for (path, (_, rule)) in &current {
        if !in_index.contains(path.as_str()) {
            problems.push(p(
                ProblemKind::Extra,
                path,
                Some(rule),
                "in the pack but not in the snapshot",
            ));
        }
    }
    for r in report.rules.iter_mut() {
        r.problems += problems
            .iter()
            .filter(|x| x.rule.as_deref() == Some(r.name.as_str()))
            .count() as u64;
    }
    report.problems.extend(problems);
    report.ok = report.problems.is_empty() && report.readable;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn kind_name(k: &EntryKind) -> &'static str {
    match k {
        EntryKind::File { .. } => "file",
        EntryKind::Dir => "directory",
        EntryKind::Symlink { .. } => "symlink",
    }
}

/// SHA-256 of a file, streamed.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Turns a report into the library's result: Ok when clean, Mismatch (exit 5) or, when nothing
/// was readable, a Corrupt error (exit 1).
pub fn outcome(report: &VerifyReport) -> Result<()> {
    if report.ok {
        Ok(())
    } else if !report.readable {
        Err(Error::corrupt(
            &report.archive,
            report
                .problems
                .first()
                .map(|p| p.detail.clone())
                .unwrap_or_else(|| "unreadable".into()),
        ))
    } else {
        Err(Error::Mismatch {
            path: report.archive.clone(),
            count: report.problems.len(),
        })
    }
}
