//! Snapshot archive format v1: the records carryover writes inside the tar, the
//! `SHA256SUMS` / sidecar text formats (compatible with GNU `sha256sum -c`), the sidecar's
//! name and the timestamp format of every record.
//!
//! Layout: `.carryover/snapshot.json` first, then every carried entry at its pack-relative path,
//! then `.carryover/index.json` and `.carryover/SHA256SUMS`. Entries are POSIX pax tar records
//! (tar_writer.rs); readers also accept GNU long-name records.
//!
//! Types and text formats only: nothing here reads or writes files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{Kind, Strategy};
use crate::pack::H2Format;
use crate::plan::Status;

/// The archive format version, in snapshot.json and index.json.
pub const FORMAT_VERSION: u32 = 1;
/// The directory of carryover's own records inside the archive.
pub const META_DIR: &str = ".carryover";
/// The archive's first entry: [`SnapshotMeta`].
pub const SNAPSHOT_JSON: &str = ".carryover/snapshot.json";
/// After the data: an [`IndexEntry`] per carried path.
pub const INDEX_JSON: &str = ".carryover/index.json";
/// Last: `sha256sum` lines for every carried file.
pub const SHA256SUMS: &str = ".carryover/SHA256SUMS";

/// `.carryover/snapshot.json`: everything needed to understand the archive without carryover's
/// help, written before any data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// `carryover VERSION`.
    pub tool: String,
    /// When the snapshot started (RFC 3339, UTC).
    pub created: String,
    /// The host it was taken on.
    pub host: String,
    /// The pack directory it was taken from.
    pub source: PathBuf,
    /// Product id (`wso2am`, ...).
    pub product: String,
    /// Product display name.
    pub product_name: String,
    /// Product version.
    pub version: String,
    /// The pack's update level, when known.
    pub update_level: Option<i64>,
    /// Distribution flavour, when the product has several.
    pub flavour: Option<String>,
    /// The pack's H2 engine version.
    pub h2_engine: Option<String>,
    /// The pack's Lucene major version.
    pub lucene_major: Option<u32>,
    /// The manifest used, in full.
    pub manifest: ManifestRecord,
    /// Every rule as resolved.
    pub rules: Vec<RuleRecord>,
    /// Taken with --allow-running while a server was running.
    pub allow_running: bool,
    /// The evidence that a server was running.
    pub running_evidence: Vec<String>,
    /// A baseline: the pristine pack right after install, the base for config merges.
    #[serde(default)]
    pub baseline: bool,
    /// The old pack carried profile-optimisation leftovers (it must be re-optimised after the
    /// update).
    #[serde(default)]
    pub profiled: bool,
    /// Taken with `--allow-corrupt` (None: an archive from before this was recorded). When
    /// false, index.json may not record damaged files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_corrupt: Option<bool>,
    /// The plan's warnings.
    pub warnings: Vec<String>,
}

/// The manifest a snapshot was taken with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Its name.
    pub name: String,
    /// Where it came from (built in, or a file).
    pub origin: String,
    /// Its full text, so the archive can be understood without carryover's built-ins.
    pub text: String,
}

/// A rule as resolved when the snapshot was taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleRecord {
    /// Rule name.
    pub name: String,
    /// What it carries.
    pub kind: Kind,
    /// How transplant applies it.
    pub strategy: Strategy,
    /// Whether its state must be found.
    pub required: bool,
    /// The rule it travels with, if any.
    pub travels_with: Option<String>,
    /// The pack-relative path it resolved to.
    pub path: Option<PathBuf>,
    /// Whether it found its state.
    pub status: Status,
    /// Regular files it carried.
    pub files: u64,
    /// Content bytes it carried.
    pub bytes: u64,
    /// For h2 rules: the database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_database: Option<String>,
    /// For h2 rules: the database file's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_format: Option<H2Format>,
}

/// What an archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// One entry of `.carryover/index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Pack-relative path.
    pub path: String,
    /// File, directory or symlink.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Content length (0 for directories and symlinks).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// A file's SHA-256 as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The rule that carried it.
    pub rule: String,
    /// For an h2 rule's database file: its format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_format: Option<H2Format>,
}

// `.carryover/index.json`, written after the data it describes, is
// `{"format": 1, "entries": [IndexEntry...], "changed_while_reading": [path...],
//   "corrupt": [CorruptRecord...]}`. It is never held whole: the writer spools it entry by entry
// (spool.rs) and verify checks it as it streams (index_check.rs).

/// A file recorded as damaged (`--allow-corrupt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptRecord {
    /// Pack-relative path.
    pub path: String,
    /// What the integrity check found.
    pub problem: String,
}

/// The sidecar of an archive: `ARCHIVE.sha256`, one `sha256sum` line naming the archive.
pub fn sidecar_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// The current UTC time as RFC 3339, the timestamp format of every record carryover writes.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
