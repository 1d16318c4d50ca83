//! The archive self-check: what the reader found (`ArchiveContents`) against the archive's own
//! records (stream, snapshot.json, index.json, SHA256SUMS) and its `NAME.sha256` sidecar. The
//! one check both `verify` and `transplant` (before it stages anything) use.
//!
//! Entry-level findings were made while the records streamed (`archive::index_check`,
//! `archive::sums_check`); this module turns them and the rest into [`Problem`]s.

use std::collections::BTreeMap;
use std::path::Path;

use super::report::{Problem, ProblemKind, RuleResult, VerifyReport};
use crate::archive::contents::{ArchiveContents, FindingKind, IndexInfo, SumsInfo};
use crate::archive::format::INDEX_JSON;
use crate::archive::format::{
    parse_sha256sums, sidecar_path, EntryType, SHA256SUMS, SNAPSHOT_JSON,
};
use crate::archive::reader::read_archive;
use crate::error::Result;
use crate::progress::{Cancel, Progress};

/// Verifies an archive against its own records and its sidecar.
///
/// # Errors
/// The archive cannot be opened or read (a damaged stream is a problem in the report, not an
/// error), or `cancel` was set.
pub fn verify_archive(
    archive: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<VerifyReport> {
    Ok(read_checked(archive, progress, cancel)?.1)
}

/// Reads `archive` and checks it against its records: what was read, and the report.
pub(super) fn read_checked(
    archive: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(ArchiveContents, VerifyReport)> {
    let started = std::time::Instant::now();
    let contents = read_archive(archive, None, progress, cancel)?;
    let mut report = check_contents(archive, &contents);
    report.seconds = started.elapsed().as_secs_f64();
    Ok((contents, report))
}

/// Problems and warnings, in the order they are found.
#[derive(Default)]
struct Found {
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Found {
    fn push(
        &mut self,
        kind: ProblemKind,
        path: &str,
        rule: Option<&str>,
        detail: impl Into<String>,
    ) {
        self.problems.push(Problem::new(kind, path, rule, detail));
    }
}

/// Cross-checks what was read against the records; shared by verify and transplant.
pub fn check_contents(archive: &Path, c: &ArchiveContents) -> VerifyReport {
    let mut found = Found::default();
    records(archive, c, &mut found);
    if let Some(ix) = &c.index {
        index_findings(c, ix, &mut found);
        match &c.sums {
            None => found.push(ProblemKind::MissingRecord, SHA256SUMS, None, "absent"),
            Some(sums) => sums_findings(c, ix, sums, &mut found),
        }
        snapshot_warnings(ix, &mut found);
    }
    sidecar(archive, c, &mut found);
    // A damaged zstd stream is a finding (exit 5) even when its first block is the damaged one;
    // only a file that is not zstd, or ends before anything could be read, is unreadable.
    let readable = c.meta.is_some() || !c.seen.is_empty() || c.damaged;
    let files = c
        .seen
        .values()
        .filter(|s| s.kind == EntryType::File)
        .count() as u64;
    VerifyReport {
        archive: archive.to_path_buf(),
        against: None,
        ok: found.problems.is_empty() && readable,
        readable,
        archive_sha256: c.archive_sha256.clone(),
        product: c.meta.as_ref().map(|m| m.product.clone()),
        version: c.meta.as_ref().map(|m| m.version.clone()),
        entries: c.seen.len() as u64,
        files,
        bytes: c.seen.values().map(|s| s.size).sum(),
        rules: rule_results(c, &found.problems),
        problems: found.problems,
        warnings: found.warnings,
        seconds: 0.0,
    }
}

/// The stream and the presence of each record; paths the archive holds twice.
fn records(archive: &Path, c: &ArchiveContents, found: &mut Found) {
    if let Some(e) = &c.stream_error {
        let path = archive.display().to_string();
        found.push(ProblemKind::CorruptStream, &path, None, e.clone());
    }
    let absent = "absent or unreadable";
    if c.meta.is_none() {
        found.push(ProblemKind::MissingRecord, SNAPSHOT_JSON, None, absent);
    }
    if c.index.is_none() {
        found.push(ProblemKind::MissingRecord, INDEX_JSON, None, absent);
    }
    for d in &c.duplicates {
        found.push(
            ProblemKind::Duplicate,
            d,
            None,
            "entry appears more than once",
        );
    }
    for (path, size) in &c.oversized {
        let detail = format!("{size} bytes, above the size carryover reads for it; not read");
        found.push(ProblemKind::Oversized, path, None, detail);
    }
    for (path, why) in &c.unsafe_entries {
        found.push(ProblemKind::Unsafe, path, None, why.clone());
    }
    for (path, why) in &c.layout {
        found.push(ProblemKind::Layout, path, None, why.clone());
    }
    rule_totals(c, found);
    recorded_rules(archive, c, found);
    if let (Some(m), Some(ix)) = (&c.meta, &c.index) {
        if m.allow_corrupt == Some(false) && !ix.corrupt.is_empty() {
            let detail = "index.json records damaged files, but snapshot.json says the snapshot was not taken with --allow-corrupt";
            found.push(ProblemKind::Changed, INDEX_JSON, None, detail);
        }
    }
    if !c.external_links.is_empty() {
        found.warnings.push(format!(
            "{} symlink(s) point outside the pack ({}); a transplant recreates them as links and never writes through them (--external-links skip leaves them out)",
            c.external_links.len(),
            c.external_links.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    // A symlink placed after entries below it: they would be written through it.
    for (link, _) in c.seen.iter().filter(|(_, s)| s.kind == EntryType::Symlink) {
        let prefix = format!("{link}/");
        let flagged = |p: &str| c.unsafe_entries.iter().any(|(u, _)| u == p);
        if let Some((below, _)) = c
            .seen
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .find(|(p, _)| !flagged(p))
        {
            let detail = format!("lies below the archive's symlink {link}");
            found.push(ProblemKind::Unsafe, below, None, detail);
        }
    }
}

/// snapshot.json's rules against carryover's own for the archive's line (the ones a transplant
/// applies), and each H2 rule's recorded format against its file's own header.
fn recorded_rules(archive: &Path, c: &ArchiveContents, found: &mut Found) {
    let Some(meta) = &c.meta else {
        return;
    };
    for r in &meta.rules {
        let Some(p) = r.path.as_deref().and_then(|p| p.to_str()) else {
            continue;
        };
        let head = c.h2_headers.iter().find(|(h, _)| h == p).map(|(_, f)| *f);
        if let (Some(rec), Some(head)) = (r.h2_format, head) {
            if rec != head {
                let detail =
                    format!("snapshot.json records {rec}, the file's own header says {head}");
                found.push(ProblemKind::Changed, p, Some(&r.name), detail);
            }
        }
    }
    if !meta.manifest.origin.starts_with("built-in") {
        found.warnings.push(format!(
            "the snapshot was taken with the manifest {}; a transplant applies it only when you pass it with --manifest",
            meta.manifest.origin
        ));
        return;
    }
    match crate::transplant::rules::own_manifest(meta, archive, None) {
        Ok(own) => {
            if let Err(e) = crate::transplant::rules::check_rules(meta, &own, archive) {
                found.push(ProblemKind::Changed, SNAPSHOT_JSON, None, e.to_string());
            }
        }
        Err(e) => found.warnings.push(e.to_string()),
    }
}

/// snapshot.json's per-rule totals (what a transplant budgets and reports) against the index's.
fn rule_totals(c: &ArchiveContents, found: &mut Found) {
    let (Some(meta), Some(ix)) = (&c.meta, &c.index) else {
        return;
    };
    for r in &meta.rules {
        let i = ix.rules.iter().position(|n| n == &r.name);
        let (files, bytes) = i.map_or((0, 0), |i| (ix.files[i], ix.bytes[i]));
        if (files, bytes) == (r.files, r.bytes) {
            continue;
        }
        let detail = format!(
            "snapshot.json records {} file(s), {} bytes; index.json lists {files}, {bytes}",
            r.files, r.bytes
        );
        if meta.allow_running {
            // Files grow while a running server writes them: expected, and said.
            found.warnings.push(format!(
                "rule {}: {detail} (taken with --allow-running)",
                r.name
            ));
        } else {
            found.push(ProblemKind::Changed, SNAPSHOT_JSON, Some(&r.name), detail);
        }
    }
}

/// What index.json's stream found, and the archive's entries it does not list.
fn index_findings(c: &ArchiveContents, ix: &IndexInfo, found: &mut Found) {
    for f in &ix.findings {
        let kind = match f.kind {
            FindingKind::Missing => ProblemKind::Missing,
            FindingKind::Duplicate => ProblemKind::Duplicate,
            FindingKind::Changed => ProblemKind::Changed,
        };
        found.push(kind, &f.path, Some(ix.rule_name(f.rule)), f.detail.clone());
    }
    for (path, s) in &c.seen {
        if s.index.is_none() {
            let detail = "in the archive but not in index.json";
            found.push(ProblemKind::Extra, path, None, detail);
        }
    }
}

/// SHA256SUMS must agree with the index, line for line, and list every file.
fn sums_findings(c: &ArchiveContents, ix: &IndexInfo, sums: &SumsInfo, found: &mut Found) {
    for sp in &sums.problems {
        found.push(
            ProblemKind::Sums,
            &sp.path,
            sp.rule.as_deref(),
            sp.detail.clone(),
        );
    }
    let unlisted = "file missing from SHA256SUMS";
    for (path, s) in &c.seen {
        if let Some(m) = s.index.as_ref().filter(|m| m.is_file && !m.listed) {
            found.push(
                ProblemKind::Sums,
                path,
                Some(ix.rule_name(m.rule)),
                unlisted,
            );
        }
    }
    for e in ix.missing.iter().filter(|e| e.kind == EntryType::File) {
        if !sums.listed_missing.contains(&e.path) {
            found.push(ProblemKind::Sums, &e.path, Some(&e.rule), unlisted);
        }
    }
}

/// What the snapshot itself recorded: files that changed while read, files found damaged.
fn snapshot_warnings(ix: &IndexInfo, found: &mut Found) {
    for ch in &ix.changed_while_reading {
        found.warnings.push(format!(
            "{ch} changed while the snapshot read it (taken with --allow-running)"
        ));
    }
    for co in &ix.corrupt {
        found.warnings.push(format!(
            "{} was damaged when snapshotted: {} (--allow-corrupt)",
            co.path, co.problem
        ));
    }
}

/// The sidecar: one `HEX  NAME` line for this archive.
fn sidecar(archive: &Path, c: &ArchiveContents, found: &mut Found) {
    let sidecar = sidecar_path(archive);
    let Ok(text) = std::fs::read_to_string(&sidecar) else {
        found.warnings.push(format!(
            "no sidecar {} to check the archive's own digest against",
            sidecar.display()
        ));
        return;
    };
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lines: Vec<_> = parse_sha256sums(&text).collect();
    let side = sidecar.display().to_string();
    let [Some((hex, n))] = lines.as_slice() else {
        let detail = "not a single `sha256sum` line";
        found.push(ProblemKind::Sidecar, &side, None, detail);
        return;
    };
    let digest_ok = c.archive_sha256.as_deref() == Some(hex.as_str());
    if n != &name && digest_ok {
        // An archive renamed together with its sidecar: the digest still vouches for it.
        found.warnings.push(format!(
            "{side} names {n:?}, not {name:?}, but its digest matches: the archive was renamed with its sidecar"
        ));
    } else if n != &name {
        let detail = format!("names {n:?}, not {name:?}");
        found.push(ProblemKind::Sidecar, &side, None, detail);
    }
    if !digest_ok {
        let actual = c.archive_sha256.as_deref().unwrap_or("(unreadable)");
        let detail = format!("digest {hex} does not match the archive's {actual}");
        found.push(ProblemKind::Sidecar, &side, None, detail);
    }
}

/// A row per rule of the snapshot: entries the index lists for it, problems attributed to it.
fn rule_results(c: &ArchiveContents, problems: &[Problem]) -> Vec<RuleResult> {
    let mut rules: BTreeMap<String, RuleResult> = BTreeMap::new();
    for r in c.meta.iter().flat_map(|m| &m.rules) {
        let row = RuleResult {
            name: r.name.clone(),
            checked: 0,
            problems: 0,
        };
        rules.insert(r.name.clone(), row);
    }
    if let Some(ix) = &c.index {
        for (i, name) in ix.rules.iter().enumerate() {
            if let Some(r) = rules.get_mut(name) {
                r.checked += ix.counts[i];
            }
        }
    }
    for pr in problems {
        if let Some(r) = pr.rule.as_ref().and_then(|n| rules.get_mut(n)) {
            r.problems += 1;
        }
    }
    rules.into_values().collect()
}
