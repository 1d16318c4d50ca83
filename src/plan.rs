//! The select step: a manifest's rules resolved against a detected pack into concrete entries,
//! with per-rule status, H2 details, liveness and warnings. Reads only.
//!
//! `inspect`, `snapshot`, `verify --against` and `transplant` all start from a [`Plan`].

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::manifest::{Kind, Manifest, Rule, RuleKind, Selection, Strategy};
use crate::pack::{engines::engine_mv_format, H2Format, Liveness, Location, Pack};

/// What a path in the pack is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EntryKind {
    File { size: u64 },
    Dir,
    Symlink { target: PathBuf },
}

/// One concrete path a rule carries, with the metadata seen when it was selected.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Relative to the pack root.
    pub rel: PathBuf,
    #[serde(flatten)]
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime: i64,
    /// Index of the rule in the plan.
    #[serde(skip)]
    pub rule: usize,
}

impl Entry {
    pub fn from_meta(rel: PathBuf, meta: &fs::Metadata, abs: &Path, rule: usize) -> Result<Entry> {
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            EntryKind::Symlink {
                target: fs::read_link(abs).at(abs)?,
            }
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File { size: meta.len() }
        } else {
            return Err(crate::Error::invalid(
                abs,
                "not a regular file, directory or symlink; refusing to carry it",
            ));
        };
        Ok(Entry {
            rel,
            kind,
            mode: meta.permissions().mode() & 0o7777,
            mtime: meta.mtime(),
            rule,
        })
    }

    pub fn size(&self) -> u64 {
        match self.kind {
            EntryKind::File { size } => size,
            _ => 0,
        }
    }
}

/// Whether a rule found its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Found,
    Missing,
    /// Declared outside the pack (an H2 URL pointing elsewhere): reported, not carried.
    External,
}

/// H2 details of an `h2` rule.
#[derive(Debug, Clone, Serialize)]
pub struct H2Info {
    pub database: String,
    /// `deployment.toml [database.local]`, or `default location` when not declared.
    pub resolved_from: String,
    pub location: Location,
    /// The database file, relative to the pack (None when missing or external).
    pub file: Option<PathBuf>,
    pub format: Option<H2Format>,
    /// Whether this pack's own H2 engine opens that format (None when unknown).
    pub opened_by_pack_engine: Option<bool>,
    /// Side files found next to the database (never carried).
    pub side_files: Vec<PathBuf>,
    /// Both `X.h2.db` and `X.mv.db` exist.
    pub both_extensions: bool,
    /// A temp/compaction file or a missing `clean:1` says it was not closed cleanly.
    pub unclean: bool,
}

/// One rule resolved against the pack.
#[derive(Debug, Clone, Serialize)]
pub struct RulePlan {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
    pub strategy: Strategy,
    pub travels_with: Option<String>,
    /// Pack-relative path the rule resolved to (the database file for h2 rules).
    pub path: Option<PathBuf>,
    pub status: Status,
    pub files: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2: Option<H2Info>,
    #[serde(skip)]
    pub entries: Vec<Entry>,
}

/// A warning the user should read before trusting the result.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

/// The manifest resolved against a pack.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub pack: Pack,
    pub manifest: String,
    pub manifest_origin: String,
    pub manifest_reason: String,
    pub lucene_major: Option<u32>,
    pub liveness: Liveness,
    pub rules: Vec<RulePlan>,
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    pub manifest_full: Manifest,
}

impl Plan {
    /// Resolves every rule of `selection` against `pack` and probes liveness.
    pub fn build(pack: Pack, selection: Selection) -> Result<Plan> {
        let Selection { manifest, reason } = selection;
        let mut rules = Vec::new();
        let mut warnings = Vec::new();
        for (i, rule) in manifest.rules.iter().enumerate() {
            let rp = resolve_rule(&pack, rule, i, &mut warnings)?;
            if rule.required && rp.status == Status::Missing {
                warnings.push(Warning {
                    code: "required-missing",
                    message: format!(
                        "required rule {} found nothing at {}",
                        rule.name,
                        rp.path
                            .as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "its location".into())
                    ),
                });
            }
            rules.push(rp);
        }
        if pack.profile.is_profiled() {
            let what: Vec<String> = pack
                .profile
                .backups
                .iter()
                .map(|p| p.display().to_string())
                .chain(
                    pack.profile
                        .profile
                        .iter()
                        .map(|p| format!("deployment.toml equals the {p} profile template")),
                )
                .collect();
            warnings.push(Warning {
                code: "profile-leftovers",
                message: format!(
                    "profile optimisation leftovers: {}; re-run profileSetup.sh with --skipConfigOptimization after an update",
                    what.join(", ")
                ),
            });
        }
        let probes = lock_probes(&pack, &rules);
        let liveness = Liveness::probe(&pack.root, &probes);
        Ok(Plan {
            lucene_major: pack.engines.lucene_major(),
            manifest: manifest.name.clone(),
            manifest_origin: manifest.origin.to_string(),
            manifest_reason: reason,
            manifest_full: manifest,
            liveness,
            rules,
            warnings,
            pack,
        })
    }

    /// Selects the manifest for `pack` (the user's, else the built-in for its line) and plans.
    pub fn for_pack(pack: Pack, manifest: Option<&Path>) -> Result<Plan> {
        let id = &pack.identity;
        let sel = crate::manifest::select(&pack.root, &id.product, &id.version, manifest)?;
        Plan::build(pack, sel)
    }

    /// Every entry of every rule, in rule order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.rules.iter().flat_map(|r| r.entries.iter())
    }

    pub fn rule(&self, name: &str) -> Option<&RulePlan> {
        self.rules.iter().find(|r| r.name == name)
    }
}

/// Files whose OS lock or freshness says a server holds the pack.
fn lock_probes(pack: &Pack, rules: &[RulePlan]) -> Vec<PathBuf> {
    let mut probes = Vec::new();
    let db_dir = pack.root.join("repository/database");
    if let Ok(rd) = fs::read_dir(&db_dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".mv.db") || n.ends_with(".h2.db") || n.ends_with(".lock.db") {
                probes.push(e.path());
            }
        }
    }
    for r in rules {
        if let Some(h2) = &r.h2 {
            if let Some(f) = &h2.file {
                probes.push(pack.root.join(f));
            }
            probes.extend(h2.side_files.iter().map(|s| pack.root.join(s)));
        }
        if r.kind == Kind::Lucene {
            if let Some(p) = &r.path {
                probes.extend(
                    r.entries
                        .iter()
                        .filter(|e| e.rel.file_name().is_some_and(|n| n == "write.lock"))
                        .map(|e| pack.root.join(&e.rel)),
                );
                probes.push(pack.root.join(p).join("index/write.lock"));
            }
        }
    }
    probes.sort();
    probes.dedup();
    probes
}

fn resolve_rule(
    pack: &Pack,
    rule: &Rule,
    idx: usize,
    warnings: &mut Vec<Warning>,
) -> Result<RulePlan> {
    let mut rp = RulePlan {
        name: rule.name.clone(),
        kind: rule.kind.kind(),
        required: rule.required,
        strategy: rule.strategy,
        travels_with: rule.travels_with.clone(),
        path: rule.kind.path().map(Path::to_path_buf),
        status: Status::Missing,
        files: 0,
        bytes: 0,
        h2: None,
        entries: Vec::new(),
    };
    match &rule.kind {
        RuleKind::Dir { path } | RuleKind::Lucene { path } => {
            rp.entries = walk(&pack.root, path, rule, idx, None)?;
        }
        RuleKind::Glob { path, include, .. } => {
            rp.entries = walk(&pack.root, path, rule, idx, Some(include))?;
        }
        RuleKind::File { path } | RuleKind::Config { path, .. } => {
            let abs = pack.root.join(path);
            if let Ok(meta) = fs::symlink_metadata(&abs) {
                if !meta.is_dir() {
                    rp.entries
                        .push(Entry::from_meta(path.clone(), &meta, &abs, idx)?);
                }
            }
        }
        RuleKind::H2 { database } => {
            let info = resolve_h2(pack, database, warnings);
            match (&info.location, &info.file) {
                (Location::InPack(_), Some(f)) => {
                    let abs = pack.root.join(f);
                    let meta = fs::symlink_metadata(&abs).at(&abs)?;
                    rp.entries
                        .push(Entry::from_meta(f.clone(), &meta, &abs, idx)?);
                    // 1.x PageStore LOB storage travels with its database.
                    let lobs = abs.with_file_name(format!("{database}.lobs.db"));
                    if f.to_string_lossy().ends_with(".h2.db") && lobs.is_dir() {
                        let rel = f.with_file_name(format!("{database}.lobs.db"));
                        rp.entries.extend(walk(&pack.root, &rel, rule, idx, None)?);
                    }
                }
                (Location::External(p), _) => {
                    rp.status = Status::External;
                    warnings.push(Warning {
                        code: "external-database",
                        message: format!(
                            "{database} is configured outside the pack ({}, from {}); carryover does not carry it",
                            p.display(),
                            info.resolved_from
                        ),
                    });
                }
                _ => {}
            }
            rp.path = info.file.clone();
            rp.h2 = Some(info);
        }
    }
    if rp.status != Status::External && !rp.entries.is_empty() {
        rp.status = Status::Found;
    }
    for e in &rp.entries {
        if let EntryKind::File { size } = e.kind {
            rp.files += 1;
            rp.bytes += size;
        }
    }
    Ok(rp)
}

/// Walks `rel` under `root` (symlinks never followed), applying the rule's excludes and, for glob
/// rules, its includes. The root path itself is an entry when it is a directory.
fn walk(
    root: &Path,
    rel: &Path,
    rule: &Rule,
    idx: usize,
    include: Option<&globset::GlobSet>,
) -> Result<Vec<Entry>> {
    let base = root.join(rel);
    let mut out = Vec::new();
    let Ok(meta) = fs::symlink_metadata(&base) else {
        return Ok(out);
    };
    if !meta.is_dir() {
        if include.is_none() {
            out.push(Entry::from_meta(rel.to_path_buf(), &meta, &base, idx)?);
        }
        return Ok(out);
    }
    let mut it = walkdir::WalkDir::new(&base)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(ent) = it.next() {
        let ent = ent.map_err(|e| {
            let p = e.path().unwrap_or(&base).to_path_buf();
            crate::Error::Io {
                path: p,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            }
        })?;
        let inner = ent
            .path()
            .strip_prefix(&base)
            .expect("walkdir yields children of base");
        if !inner.as_os_str().is_empty() && rule.is_excluded(inner) {
            if ent.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if let Some(inc) = include {
            // glob rules carry matching files (and links), not directories
            if ent.file_type().is_dir() || !inc.is_match(inner) {
                continue;
            }
        }
        let meta = ent.metadata().map_err(|e| crate::Error::Io {
            path: ent.path().to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("metadata")),
        })?;
        let rel_path = if inner.as_os_str().is_empty() {
            rel.to_path_buf()
        } else {
            rel.join(inner)
        };
        out.push(Entry::from_meta(rel_path, &meta, ent.path(), idx)?);
    }
    Ok(out)
}

/// Resolves a logical H2 database to its file: the pack's config, else `repository/database/NAME`,
/// then whichever of `.mv.db`/`.h2.db` exists.
fn resolve_h2(pack: &Pack, database: &str, warnings: &mut Vec<Warning>) -> H2Info {
    let (location, resolved_from) = match pack.datasource_for(database) {
        Some(ds) => (
            ds.location.clone(),
            format!("{} ({})", ds.declared_in, ds.url),
        ),
        None => (
            Location::InPack(PathBuf::from("repository/database").join(database)),
            "default location (not declared in the pack's config)".to_string(),
        ),
    };
    let mut info = H2Info {
        database: database.to_string(),
        resolved_from,
        location: location.clone(),
        file: None,
        format: None,
        opened_by_pack_engine: None,
        side_files: Vec::new(),
        both_extensions: false,
        unclean: false,
    };
    let Location::InPack(base) = location else {
        return info;
    };
    let with = |ext: &str| {
        let mut s = base.clone().into_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    let mv = with(".mv.db");
    let h2 = with(".h2.db");
    let has_mv = pack.root.join(&mv).is_file();
    let has_h2 = pack.root.join(&h2).is_file();
    info.both_extensions = has_mv && has_h2;
    let engine_major = pack.engines.h2.as_ref().map(|j| j.version.major());
    info.file = match (has_mv, has_h2) {
        (true, true) => {
            // H2 1.x opens X.h2.db in preference to X.mv.db; 2.x ignores .h2.db.
            warnings.push(Warning {
                code: "h2-and-mv",
                message: format!(
                    "{} and {} both exist; H2 1.x opens the .h2.db, 2.x the .mv.db: remove the stale one",
                    h2.display(),
                    mv.display()
                ),
            });
            if engine_major.is_some_and(|m| m < 2) {
                Some(h2.clone())
            } else {
                Some(mv.clone())
            }
        }
        (true, false) => Some(mv.clone()),
        (false, true) => Some(h2.clone()),
        (false, false) => None,
    };
    if let Some(f) = &info.file {
        let fmt = H2Format::of_file(&pack.root.join(f)).unwrap_or(H2Format::Unknown);
        info.format = Some(fmt);
        if let Some(j) = &pack.engines.h2 {
            info.opened_by_pack_engine = fmt.opened_by(&j.version);
            if info.opened_by_pack_engine == Some(false) {
                warnings.push(Warning {
                    code: "h2-format-mismatch",
                    message: format!(
                        "{}: {fmt} is not opened by this pack's own H2 {} (it reads {})",
                        f.display(),
                        j.version,
                        if j.version.major() < 2 {
                            "PageStore and MVStore format 1".to_string()
                        } else {
                            format!("MVStore format {}", engine_mv_format(&j.version))
                        }
                    ),
                });
            }
        }
        if !fmt.is_clean() {
            info.unclean = true;
        }
    }
    // side files: never carried; temp/compaction files mean an unclean shutdown
    if let Some(dir) = pack.root.join(&base).parent() {
        let stem = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Ok(rd) = fs::read_dir(dir) {
            let mut sides: Vec<PathBuf> = rd
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let rest = n.strip_prefix(&stem)?.strip_prefix('.')?.to_string();
                    let side = matches!(rest.as_str(), "lock.db" | "trace.db" | "temp.db")
                        || rest.ends_with(".tempFile")
                        || rest.ends_with(".newFile");
                    side.then(|| base.with_file_name(&n))
                })
                .collect();
            sides.sort();
            if sides.iter().any(|s| {
                let n = s.to_string_lossy();
                n.ends_with(".temp.db") || n.ends_with(".tempFile") || n.ends_with(".newFile")
            }) {
                info.unclean = true;
            }
            info.side_files = sides;
        }
    }
    if info.unclean {
        warnings.push(Warning {
            code: "h2-unclean",
            message: format!(
                "{database} was not closed cleanly ({}); start and stop the old server once before carrying it",
                info.file.as_deref().map(|f| f.display().to_string()).unwrap_or_default()
            ),
        });
    }
    info
}
