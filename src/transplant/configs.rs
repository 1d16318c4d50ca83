//! Config rules with strategy `merge` inside a transplant. At plan time, [`MergeSetup`] loads
//! each file's base (pristine file of the old pack's version, see [`super::base`]) and theirs
//! (the new pack's). Given ours (the operator's: from the source for a dry run's preview, from
//! the staged copy in a real run), [`MergeSetup::decide`] gives each file its fate, the same way
//! for both, and updates its rule's decision; [`MergeSetup::apply`] then changes staging:
//! merged text replaces the staged file, a conflict adds the in-place update tool's
//! `.old`/`.updated`/`.merged` beside the operator's version, and "take new" takes the file out.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::base::Base;
use crate::archive::format::{EntryType, SnapshotMeta};
use crate::digest::sha256_hex;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{ConfigFormat, Kind, Manifest, RuleKind, Strategy};
use crate::merge::{self, Fate};
use crate::transplant::plan::{Action, Decision, RuleDecision};
use crate::transplant::record::{Conflict, Unit};
use crate::transplant::stage::Staged;

/// The files a conflict leaves beside the operator's version: pristine base, the update's
/// version, the diff3-marked attempt.
pub const SIDE_SUFFIXES: [&str; 3] = [".old", ".updated", ".merged"];

/// A config file's fate as reported (the JSON strings are the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigFate {
    /// Yours and the update's are identical: nothing to do.
    #[serde(rename = "unchanged")]
    Unchanged,
    /// You never changed it: the new pack's (the update's) file stays.
    #[serde(rename = "take new")]
    TakeNew,
    /// The update did not change it, or the new pack has none: your file is carried.
    #[serde(rename = "keep yours")]
    KeepYours,
    /// Both changed it in different places: the clean merge is installed.
    #[serde(rename = "merged")]
    Merged,
    /// Both changed the same lines (or no base, or the merge does not parse): your file is in
    /// place and the side files wait for `FILE.final`.
    #[serde(rename = "conflict")]
    Conflict,
    /// The source has no such file: the new pack's file stays (as [`Action::Keep`]).
    #[serde(rename = "keep")]
    Keep,
}

impl ConfigFate {
    /// The reported word, as in JSON.
    pub fn label(self) -> &'static str {
        match self {
            ConfigFate::Unchanged => "unchanged",
            ConfigFate::TakeNew => "take new",
            ConfigFate::KeepYours => "keep yours",
            ConfigFate::Merged => "merged",
            ConfigFate::Conflict => "conflict",
            ConfigFate::Keep => "keep",
        }
    }

    fn of(fate: &Fate) -> ConfigFate {
        match fate {
            Fate::Unchanged => ConfigFate::Unchanged,
            Fate::TakeNew => ConfigFate::TakeNew,
            Fate::KeepYours => ConfigFate::KeepYours,
            Fate::Merged { .. } => ConfigFate::Merged,
            Fate::Conflict { .. } => ConfigFate::Conflict,
        }
    }
}

impl fmt::Display for ConfigFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// One config file's outcome, as reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigOutcome {
    /// The rule.
    pub rule: String,
    /// Pack-relative path.
    pub path: String,
    /// What happens to it.
    pub fate: ConfigFate,
    /// Why, for the operator.
    pub reason: String,
    /// The base merged against, when there was one.
    pub base: Option<String>,
    /// Unified diff from the new pack's file to the result (`-v`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// One merge-strategy config rule of a transplant, with theirs loaded.
pub struct MergeItem {
    /// Index of its rule in the decisions.
    pub rule: usize,
    /// Its rule's name.
    pub rule_name: String,
    /// Path in the source.
    pub src: String,
    /// Path in the new pack.
    pub dst: String,
    /// The syntax a merge must still parse as.
    pub format: ConfigFormat,
    /// The new pack's file (None: it has none).
    pub theirs: Option<Vec<u8>>,
}

/// One merge item decided.
pub struct ConfigDecision {
    /// Index into [`MergeSetup::items`].
    pub item: usize,
    /// What the merge gives.
    pub fate: Fate,
    /// As reported.
    pub outcome: ConfigOutcome,
}

/// Staging as the config merges change it.
pub struct Staging<'a> {
    /// The stage directory.
    pub root: &'a Path,
    /// What was staged (merged files are updated, side files added, "take new" removed).
    pub staged: Vec<Staged>,
    /// The side files' swap units.
    pub side_units: Vec<Unit>,
    /// The conflicts, in item order.
    pub conflicts: Vec<Conflict>,
}

/// The merge-strategy config rules of a transplant, with their base and theirs loaded.
pub struct MergeSetup {
    items: Vec<MergeItem>,
    base: HashMap<String, Vec<u8>>,
    base_desc: Option<String>,
}

impl MergeSetup {
    /// The carried merge-strategy config rules of `decision`, with theirs read from `target`
    /// and the base from `base` (when given).
    ///
    /// # Errors
    /// The base cannot be read, or is of another version than the old pack (`Invalid`: it would
    /// silently merge the wrong changes in).
    pub fn new(
        meta: &SnapshotMeta,
        decision: &Decision,
        manifest: &Manifest,
        target: &Path,
        base: Option<&Path>,
    ) -> Result<MergeSetup> {
        let mut items = Vec::new();
        for (i, (r, d)) in meta.rules.iter().zip(&decision.rules).enumerate() {
            if r.kind != Kind::Config || r.strategy != Strategy::Merge || !d.carried() {
                continue;
            }
            let (Some(src), Some(dst)) = (d.src.clone(), d.dst.clone()) else {
                continue;
            };
            items.push(MergeItem {
                rule: i,
                rule_name: d.rule.clone(),
                format: format_for(manifest, &d.rule, &dst),
                theirs: fs::read(target.join(&dst)).ok(),
                src,
                dst,
            });
        }
        let mut setup = MergeSetup {
            items,
            base: HashMap::new(),
            base_desc: None,
        };
        if let Some(p) = base.filter(|_| !setup.items.is_empty()) {
            setup.load_base(p, &meta.version)?;
        }
        Ok(setup)
    }

    /// Reads every item's base from `p`, which must be of the old pack's `version`.
    fn load_base(&mut self, p: &Path, version: &str) -> Result<()> {
        let b = Base::from_path(p)?;
        if let Some(v) = b.version() {
            let want = crate::version::Version::parse(version).map(|v| v.to_string());
            if want.is_some_and(|w| w != v) {
                return Err(Error::invalid(
                    p,
                    format!(
                        "--base is {} {v}, but the old pack is {version}: the base must be the pristine old version",
                        b.describe(),
                    ),
                ));
            }
        }
        self.base = b.read(&self.wanted())?;
        self.base_desc = Some(b.describe());
        Ok(())
    }

    /// The merge items, in rule order.
    pub fn items(&self) -> &[MergeItem] {
        &self.items
    }

    /// The source paths of the items (what "ours" is read from).
    pub fn wanted(&self) -> Vec<String> {
        self.items.iter().map(|m| m.src.clone()).collect()
    }

    /// Decides every item, with ours from `ours`, and updates its rule's decision in `rules`.
    pub fn decide(
        &self,
        rules: &mut [RuleDecision],
        mut ours: impl FnMut(&MergeItem) -> Option<Vec<u8>>,
    ) -> Vec<ConfigDecision> {
        self.items
            .iter()
            .enumerate()
            .map(|(item, m)| {
                let (fate, outcome) = self.decide_one(m, ours(m), &mut rules[m.rule]);
                ConfigDecision {
                    item,
                    fate,
                    outcome,
                }
            })
            .collect()
    }

    fn decide_one(
        &self,
        m: &MergeItem,
        ours: Option<Vec<u8>>,
        d: &mut RuleDecision,
    ) -> (Fate, ConfigOutcome) {
        let mut outcome = ConfigOutcome {
            rule: m.rule_name.clone(),
            path: m.dst.clone(),
            fate: ConfigFate::Keep,
            reason: "nothing in the source".into(),
            base: None,
            diff: None,
        };
        let Some(ours) = ours else {
            d.action = Action::Keep;
            d.reason = outcome.reason.clone();
            return (Fate::TakeNew, outcome);
        };
        let base = self.base.get(&m.src);
        let theirs = m.theirs.as_deref();
        let fate = merge::decide(m.format, base.map(Vec::as_slice), &ours, theirs);
        let (reason, result) = explain(&fate, &ours, theirs.is_some());
        d.action = match (&fate, theirs) {
            (Fate::Unchanged | Fate::TakeNew, _) => Action::Keep,
            (_, Some(_)) => Action::Replace,
            (_, None) => Action::Create,
        };
        d.reason = reason.clone();
        outcome.fate = ConfigFate::of(&fate);
        outcome.reason = reason;
        outcome.base = base.and(self.base_desc.clone());
        outcome.diff = result.zip(theirs).map(|(r, t)| merge::unified_diff(t, r));
        (fate, outcome)
    }

    /// Applies the decided fates to staging (after the source was staged).
    ///
    /// # Errors
    /// A staged file cannot be rewritten or removed, or a side file cannot be written.
    pub fn apply(&self, decided: &[ConfigDecision], staging: &mut Staging) -> Result<()> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for d in decided {
            let m = &self.items[d.item];
            let file = staging.root.join(&m.dst);
            let Some(pos) = staging.staged.iter().position(|s| s.dst == m.dst) else {
                continue;
            };
            match &d.fate {
                Fate::Unchanged | Fate::TakeNew => {
                    staging.staged.remove(pos);
                    fs::remove_file(&file).at(&file)?;
                }
                Fate::KeepYours => {}
                Fate::Merged { text } => {
                    let s = &mut staging.staged[pos];
                    write_staged(&file, text, s.mode, now)?;
                    s.size = text.len() as u64;
                    s.sha256 = Some(sha256_hex(text));
                    s.mtime = now;
                }
                Fate::Conflict { attempt, .. } => {
                    let mode = staging.staged[pos].mode;
                    self.add_sides(m, attempt, mode, now, staging)?;
                }
            }
        }
        Ok(())
    }

    /// A conflict: `.old` (the base, when there is one), `.updated` (theirs, when the new pack
    /// has one) and `.merged` (the attempt) staged beside the operator's file.
    fn add_sides(
        &self,
        m: &MergeItem,
        attempt: &[u8],
        mode: u32,
        now: i64,
        staging: &mut Staging,
    ) -> Result<()> {
        let mut sides: Vec<(&str, &[u8])> = Vec::new();
        if let Some(b) = self.base.get(&m.src) {
            sides.push((SIDE_SUFFIXES[0], b));
        }
        if let Some(t) = &m.theirs {
            sides.push((SIDE_SUFFIXES[1], t));
        }
        sides.push((SIDE_SUFFIXES[2], attempt));
        for (suffix, bytes) in sides {
            let dst = format!("{}{suffix}", m.dst);
            write_staged(&staging.root.join(&dst), bytes, mode, now)?;
            staging.staged.push(Staged {
                dst: dst.clone(),
                kind: EntryType::File,
                size: bytes.len() as u64,
                mode,
                mtime: now,
                sha256: Some(sha256_hex(bytes)),
                link: None,
                rule: m.rule,
            });
            staging.side_units.push(Unit {
                dst,
                also_remove: Vec::new(),
                rule: m.rule_name.clone(),
            });
        }
        staging.conflicts.push(Conflict {
            path: m.dst.clone(),
            format: m.format,
        });
        Ok(())
    }
}

/// Why a fate, for the operator, and the resulting content when it differs from theirs.
fn explain<'a>(fate: &'a Fate, ours: &'a [u8], theirs: bool) -> (String, Option<&'a [u8]>) {
    match fate {
        Fate::Unchanged => ("yours and the update's are identical".into(), None),
        Fate::TakeNew => (
            "you never changed it: the update's version stays".into(),
            None,
        ),
        Fate::KeepYours if theirs => (
            "the update did not change it: yours is carried".into(),
            Some(ours),
        ),
        Fate::KeepYours => ("the new pack has none: yours is carried".into(), Some(ours)),
        Fate::Merged { text } => (
            "merged your changes with the update's".into(),
            Some(text.as_slice()),
        ),
        Fate::Conflict { reason, .. } => (format!("conflict: {reason}"), Some(ours)),
    }
}

/// The syntax of a config rule: the manifest's, else from the file's extension.
fn format_for(manifest: &Manifest, rule: &str, path: &str) -> ConfigFormat {
    match manifest.rule(rule).map(|r| &r.kind) {
        Some(RuleKind::Config { format, .. }) => *format,
        _ if path.ends_with(".toml") => ConfigFormat::Toml,
        _ if path.ends_with(".xml") => ConfigFormat::Xml,
        _ => ConfigFormat::Text,
    }
}

fn write_staged(p: &Path, bytes: &[u8], mode: u32, mtime: i64) -> Result<()> {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    fs::write(p, bytes).at(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).at(p)?;
    crate::fsutil::set_mtime(p, mtime)
}
