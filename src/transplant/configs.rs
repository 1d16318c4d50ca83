//! Config rules with strategy `merge` inside a transplant: base (pristine file of the old pack's
//! version) from `--base` (a pristine pack, the product's distribution .zip, or a baseline
//! snapshot) or from the catalog's baseline snapshot; ours from the source; theirs from the new
//! pack. Conflicts leave the in-place update tool's files beside the operator's version.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::decide::{Action, RuleDecision};
use super::stage::Staged;
use super::txn::Unit;
use crate::archive::format::EntryType;
use crate::archive::{read_archive, Seen, Visitor};
use crate::error::{Error, IoContext, Result};
use crate::manifest::ConfigFormat;
use crate::merge::{self, Fate};
use crate::progress::{Cancel, NoProgress};

/// Where the pristine base files come from.
#[derive(Debug, Clone)]
pub enum Base {
    Dir(PathBuf),
    Zip(PathBuf),
    Archive(PathBuf),
}

impl Base {
    pub fn from_path(p: &Path) -> Result<Base> {
        let meta = fs::metadata(p).at(p)?;
        Ok(if meta.is_dir() {
            Base::Dir(p.to_path_buf())
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
            Base::Zip(p.to_path_buf())
        } else {
            Base::Archive(p.to_path_buf())
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Base::Dir(p) => format!("pristine pack {}", p.display()),
            Base::Zip(p) => format!("distribution {}", p.display()),
            Base::Archive(p) => format!("baseline snapshot {}", p.display()),
        }
    }

    /// The product version the base is of, when it says (pack detection, snapshot.json, or the
    /// zip's `wso2am-4.2.0/` top directory).
    pub fn version(&self) -> Option<String> {
        match self {
            Base::Dir(d) => crate::pack::Identity::detect(d)
                .ok()
                .map(|i| i.version.to_string()),
            Base::Archive(a) => crate::archive::read_meta(a).ok().map(|m| m.version),
            Base::Zip(z) => {
                let f = fs::File::open(z).ok()?;
                let mut zip = zip::ZipArchive::new(f).ok()?;
                let first = zip.by_index(0).ok()?.name().to_string();
                let top = first.split('/').next()?;
                let v = top.rsplit_once('-')?.1;
                crate::version::Version::parse(v).map(|v| v.to_string())
            }
        }
    }

    /// The base content of each wanted pack-relative path that the base has.
    pub fn read(&self, wanted: &[String]) -> Result<HashMap<String, Vec<u8>>> {
        let mut out = HashMap::new();
        match self {
            Base::Dir(d) => {
                for w in wanted {
                    if let Ok(b) = fs::read(d.join(w)) {
                        out.insert(w.clone(), b);
                    }
                }
            }
            Base::Zip(z) => {
                let f = fs::File::open(z).at(z)?;
                let mut zip = zip::ZipArchive::new(f)
                    .map_err(|e| Error::invalid(z, format!("not a readable zip: {e}")))?;
                for i in 0..zip.len() {
                    let mut ent = zip
                        .by_index(i)
                        .map_err(|e| Error::invalid(z, format!("zip entry {i}: {e}")))?;
                    // Distribution zips hold one top directory (wso2am-4.2.0/...).
                    let name = ent.name().to_string();
                    let rel = name.split_once('/').map(|(_, r)| r).unwrap_or(&name);
                    if wanted.iter().any(|w| w == rel) {
                        let mut b = Vec::new();
                        ent.read_to_end(&mut b)
                            .map_err(|e| Error::invalid(z, format!("{name}: {e}")))?;
                        out.insert(rel.to_string(), b);
                    }
                }
            }
            Base::Archive(a) => out = collect_from_archive(a, wanted)?,
        }
        Ok(out)
    }
}

/// Collects the content of a few (small) entries while an archive streams past.
struct Collector<'a> {
    wanted: &'a BTreeSet<String>,
    cur: Option<(String, Vec<u8>)>,
    out: HashMap<String, Vec<u8>>,
}

impl Visitor for Collector<'_> {
    fn begin(&mut self, path: &str, e: &Seen) -> Result<()> {
        if e.kind == EntryType::File && self.wanted.contains(path) {
            self.cur = Some((path.to_string(), Vec::new()));
        }
        Ok(())
    }
    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some((_, b)) = self.cur.as_mut() {
            b.extend_from_slice(bytes);
        }
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        if let Some((p, b)) = self.cur.take() {
            self.out.insert(p, b);
        }
        Ok(())
    }
}

pub fn collect_from_archive(archive: &Path, wanted: &[String]) -> Result<HashMap<String, Vec<u8>>> {
    let set: BTreeSet<String> = wanted.iter().cloned().collect();
    let mut c = Collector {
        wanted: &set,
        cur: None,
        out: HashMap::new(),
    };
    let contents = read_archive(archive, Some(&mut c), &NoProgress, &Cancel::default())?;
    if let Some(e) = contents.stream_error {
        return Err(Error::corrupt(archive, e));
    }
    Ok(c.out)
}

/// One config file's outcome, as reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigOutcome {
    pub rule: String,
    pub path: String,
    pub fate: String,
    pub reason: String,
    pub base: Option<String>,
    /// Unified diff from the new pack's file to the result (`-v`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// A conflict waiting for `FILE.final`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conflict {
    pub path: String,
    pub format: ConfigFormat,
}

pub const SIDE_SUFFIXES: [&str; 3] = [".old", ".updated", ".merged"];

pub struct MergeInput<'a> {
    pub rule: &'a str,
    pub path: &'a str,
    pub format: ConfigFormat,
    pub ours: Option<Vec<u8>>,
    pub theirs: Option<Vec<u8>>,
    pub base: Option<Vec<u8>>,
}

fn format_of(kind_format: Option<&str>, path: &str) -> ConfigFormat {
    match kind_format {
        Some("toml") => ConfigFormat::Toml,
        Some("xml") => ConfigFormat::Xml,
        Some("text") => ConfigFormat::Text,
        _ if path.ends_with(".toml") => ConfigFormat::Toml,
        _ if path.ends_with(".xml") => ConfigFormat::Xml,
        _ => ConfigFormat::Text,
    }
}

pub fn format_for(manifest: &crate::manifest::Manifest, rule: &str, path: &str) -> ConfigFormat {
    match manifest.rule(rule).map(|r| &r.kind) {
        Some(crate::manifest::RuleKind::Config { format, .. }) => *format,
        _ => format_of(None, path),
    }
}

/// Decides a file's fate and updates its decision.
pub fn outcome(
    input: &MergeInput,
    d: &mut RuleDecision,
    base_desc: Option<&str>,
) -> (Fate, ConfigOutcome) {
    let Some(ours) = input.ours.as_deref() else {
        let o = ConfigOutcome {
            rule: input.rule.into(),
            path: input.path.into(),
            fate: "keep".into(),
            reason: "nothing in the source".into(),
            base: None,
            diff: None,
        };
        return (Fate::TakeNew, o);
    };
    let fate = merge::decide(
        input.format,
        input.base.as_deref(),
        ours,
        input.theirs.as_deref(),
    );
    let (reason, result): (String, Option<&[u8]>) = match &fate {
        Fate::Unchanged => ("yours and the update's are identical".into(), None),
        Fate::TakeNew => (
            "you never changed it: the update's version stays".into(),
            None,
        ),
        Fate::KeepYours => (
            if input.theirs.is_none() {
                "the new pack has none: yours is carried".into()
            } else {
                "the update did not change it: yours is carried".into()
            },
            Some(ours),
        ),
        Fate::Merged { text } => (
            "merged your changes with the update's".into(),
            Some(text.as_slice()),
        ),
        Fate::Conflict { reason, .. } => (format!("conflict: {reason}"), Some(ours)),
    };
    match &fate {
        Fate::Unchanged | Fate::TakeNew => d.action = Action::Keep,
        _ => {
            d.action = if input.theirs.is_some() {
                Action::Replace
            } else {
                Action::Create
            };
        }
    }
    d.reason = reason.clone();
    let diff = match (result, input.theirs.as_deref()) {
        (Some(r), Some(t)) => Some(merge::unified_diff(t, r)),
        _ => None,
    };
    (
        fate.clone(),
        ConfigOutcome {
            rule: input.rule.into(),
            path: input.path.into(),
            fate: fate.label().into(),
            reason,
            base: input.base.as_ref().and(base_desc.map(str::to_string)),
            diff,
        },
    )
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Applies a fate to staging after the source was staged: merged text replaces the staged file;
/// a conflict adds `.old`/`.updated`/`.merged` beside it; "take new" removes it from staging.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    fate: &Fate,
    rule_idx: usize,
    path: &str,
    format: ConfigFormat,
    base: Option<&[u8]>,
    theirs: Option<&[u8]>,
    stage: &Path,
    staged: &mut Vec<Staged>,
    extra_units: &mut Vec<Unit>,
    conflicts: &mut Vec<Conflict>,
    rule_name: &str,
) -> Result<()> {
    let file = stage.join(path);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let Some(pos) = staged.iter().position(|s| s.dst == path) else {
        return Ok(());
    };
    match fate {
        Fate::Unchanged | Fate::TakeNew => {
            staged.remove(pos);
            let _ = fs::remove_file(&file);
        }
        Fate::KeepYours => {}
        Fate::Merged { text } => {
            write_staged(&file, text, staged[pos].mode, now)?;
            let s = &mut staged[pos];
            s.size = text.len() as u64;
            s.sha256 = Some(sha(text));
            s.mtime = now;
        }
        Fate::Conflict { attempt, .. } => {
            let mode = staged[pos].mode;
            let mut sides: Vec<(&str, &[u8])> = Vec::new();
            if let Some(b) = base {
                sides.push((".old", b));
            }
            if let Some(t) = theirs {
                sides.push((".updated", t));
            }
            sides.push((".merged", attempt.as_slice()));
            for (suffix, bytes) in sides {
                let dst = format!("{path}{suffix}");
                write_staged(&stage.join(&dst), bytes, mode, now)?;
                staged.push(Staged {
                    dst: dst.clone(),
                    kind: EntryType::File,
                    size: bytes.len() as u64,
                    mode,
                    mtime: now,
                    sha256: Some(sha(bytes)),
                    link: None,
                    rule: rule_idx,
                });
                extra_units.push(Unit {
                    dst,
                    also_remove: Vec::new(),
                    rule: rule_name.to_string(),
                });
            }
            conflicts.push(Conflict {
                path: path.to_string(),
                format,
            });
        }
    }
    Ok(())
}

fn write_staged(p: &Path, bytes: &[u8], mode: u32, mtime: i64) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    fs::write(p, bytes).at(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).at(p)?;
    crate::fsutil::set_mtime(p, mtime)
}
