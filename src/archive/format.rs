//! Snapshot archive format v1: the records carryover writes inside the tar and the
//! `SHA256SUMS` / sidecar text formats (compatible with GNU `sha256sum -c`).
//!
//! Layout: `.carryover/snapshot.json` first, then every carried entry at its pack-relative path,
//! then `.carryover/index.json` and `.carryover/SHA256SUMS`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::{Kind, Strategy};
use crate::pack::H2Format;
use crate::plan::Status;

pub const FORMAT_VERSION: u32 = 1;
pub const META_DIR: &str = ".carryover";
pub const SNAPSHOT_JSON: &str = ".carryover/snapshot.json";
pub const INDEX_JSON: &str = ".carryover/index.json";
pub const SHA256SUMS: &str = ".carryover/SHA256SUMS";

/// `.carryover/snapshot.json`: everything needed to understand the archive without carryover's
/// help, written before any data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub format: u32,
    pub tool: String,
    pub created: String,
    pub host: String,
    pub source: PathBuf,
    pub product: String,
    pub product_name: String,
    pub version: String,
    pub update_level: Option<i64>,
    pub flavour: Option<String>,
    pub h2_engine: Option<String>,
    pub lucene_major: Option<u32>,
    pub manifest: ManifestRecord,
    pub rules: Vec<RuleRecord>,
    /// Taken with --allow-running: the evidence that a server was running.
    pub allow_running: bool,
    pub running_evidence: Vec<String>,
    /// A baseline: the pristine pack right after install, the base for config merges.
    #[serde(default)]
    pub baseline: bool,
    /// The old pack carried profile-optimisation leftovers (it must be re-optimised after the
    /// update).
    #[serde(default)]
    pub profiled: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub name: String,
    pub origin: String,
    pub text: String,
}

/// A rule as resolved when the snapshot was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleRecord {
    pub name: String,
    pub kind: Kind,
    pub strategy: Strategy,
    pub required: bool,
    pub travels_with: Option<String>,
    pub path: Option<PathBuf>,
    pub status: Status,
    pub files: u64,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_format: Option<H2Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryType {
    File,
    Dir,
    Symlink,
}

/// One entry of `.carryover/index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_format: Option<H2Format>,
}

// `.carryover/index.json`, written after the data it describes, is
// `{"format": 1, "entries": [IndexEntry...], "changed_while_reading": [path...],
//   "corrupt": [CorruptRecord...]}`. It is never held whole: the writer spools it entry by entry
// (writer.rs, `Spool`) and verify checks it as it streams (index_check.rs).

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptRecord {
    pub path: String,
    pub problem: String,
}

/// One line of `sha256sum` output; GNU escapes names holding `\n` or `\\` with a leading `\`.
pub fn sha256sum_line(hex: &str, name: &str) -> String {
    if name.contains('\n') || name.contains('\\') || name.contains('\r') {
        let esc = name
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{hex}  {esc}\n")
    } else {
        format!("{hex}  {name}\n")
    }
}

/// Parses `sha256sum` text into (hex, name) pairs; None for a malformed line.
pub fn parse_sha256sums(text: &str) -> impl Iterator<Item = Option<(String, String)>> + '_ {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(parse_sha256sum_line)
}

/// One `sha256sum` line into (lowercase hex, name); None when malformed.
pub fn parse_sha256sum_line(line: &str) -> Option<(String, String)> {
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (hex, name) = line.split_once("  ").or_else(|| line.split_once(" *"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = if escaped {
        unescape(name)?
    } else {
        name.to_string()
    };
    Some((hex.to_ascii_lowercase(), name))
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_round_trip_with_escapes() {
        let hex = "a".repeat(64);
        for name in ["plain.txt", "new\nline", "back\\slash", "sp ace", "ünï"] {
            let line = sha256sum_line(&hex, name);
            let parsed: Vec<_> = parse_sha256sums(&line).collect();
            assert_eq!(
                parsed,
                vec![Some((hex.clone(), name.to_string()))],
                "{name:?}"
            );
        }
        assert_eq!(parse_sha256sums("zz  x\n").collect::<Vec<_>>(), vec![None]);
    }
}
