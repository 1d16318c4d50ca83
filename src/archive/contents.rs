//! What reading an archive found: the archive's own record of each path ([`Seen`]), what the
//! streamed `index.json` and `SHA256SUMS` said about it ([`IndexMark`], [`IndexInfo`],
//! [`SumsInfo`]), and [`ArchiveContents`], which gathers them for verify and transplant.
//!
//! Plain records only: the reader (reader.rs) and the record checks (index_check.rs,
//! sums_check.rs) fill them in; verify judges them. Nothing here reads or writes.

use std::collections::{BTreeMap, HashSet};

use super::format::{CorruptRecord, EntryType, IndexEntry, SnapshotMeta};
use crate::digest::Sha;

/// What the archive actually holds for one path, from its tar header and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// File, directory or symlink.
    pub kind: EntryType,
    /// Content length (0 for directories and symlinks).
    pub size: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The content's digest. Kept as bytes: one of these per archive entry stays in memory
    /// until the index arrives.
    pub sha256: Option<Sha>,
    /// A symlink's target, byte for byte.
    pub link: Option<String>,
    /// Owner as recorded in the tar header.
    pub uid: u64,
    /// Group as recorded in the tar header.
    pub gid: u64,
    /// What index.json said about this path (None: not listed, or no readable index).
    pub index: Option<IndexMark>,
}

impl Seen {
    /// The content digest as lowercase hex.
    pub fn sha_hex(&self) -> Option<String> {
        self.sha256.map(hex::encode)
    }
}

/// What the index said about a path the archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMark {
    /// Index into [`IndexInfo::rules`].
    pub rule: u16,
    /// The index's digest, kept only when it differs from the archive's.
    pub sha256: Option<String>,
    /// The index lists it as a regular file.
    pub is_file: bool,
    /// SHA256SUMS lists it.
    pub listed: bool,
}

/// The kind of an entry-level disagreement between index.json and the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// In the index, not in the archive.
    Missing,
    /// Listed twice in the index.
    Duplicate,
    /// The archive's entry differs from the index's.
    Changed,
}

/// One disagreement found while index.json streamed.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What kind of disagreement.
    pub kind: FindingKind,
    /// The entry's path.
    pub path: String,
    /// Index into [`IndexInfo::rules`].
    pub rule: u16,
    /// What differs, for the report.
    pub detail: String,
}

/// The index, digested.
#[derive(Debug, Clone, Default)]
pub struct IndexInfo {
    /// The index's `format` field.
    pub format: u32,
    /// Paths the snapshot saw change while it read them (`--allow-running`).
    pub changed_while_reading: Vec<String>,
    /// Files recorded as damaged (`--allow-corrupt`).
    pub corrupt: Vec<CorruptRecord>,
    /// Rule names, interned.
    pub rules: Vec<String>,
    /// Entries per rule (same order as `rules`).
    pub counts: Vec<u64>,
    /// Regular files per rule, as the index lists them.
    pub files: Vec<u64>,
    /// Their bytes per rule.
    pub bytes: Vec<u64>,
    /// Problems found while the index streamed, in index order.
    pub findings: Vec<Finding>,
    /// Index entries the archive does not hold (kept whole; normally none).
    pub missing: Vec<IndexEntry>,
}

impl IndexInfo {
    /// The name of an interned rule ("" when out of range).
    pub fn rule_name(&self, rule: u16) -> &str {
        self.rules
            .get(rule as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A disagreement between SHA256SUMS and the index.
#[derive(Debug, Clone)]
pub struct SumsProblem {
    /// The path the line names (or the SHA256SUMS record itself).
    pub path: String,
    /// The rule of the indexed entry, when there is one.
    pub rule: Option<String>,
    /// What is wrong, for the report.
    pub detail: String,
}

/// SHA256SUMS, checked line by line against the index as it streamed.
#[derive(Debug, Clone, Default)]
pub struct SumsInfo {
    /// Every disagreement, in line order.
    pub problems: Vec<SumsProblem>,
    /// Index entries missing from the archive that SHA256SUMS lists.
    pub listed_missing: HashSet<String>,
}

/// The archive's contents as read, plus stream-level problems.
#[derive(Debug, Default)]
pub struct ArchiveContents {
    /// snapshot.json (None: absent or unreadable).
    pub meta: Option<SnapshotMeta>,
    /// index.json, checked against the entries as it streamed (None: absent or unreadable).
    pub index: Option<IndexInfo>,
    /// SHA256SUMS, checked against the index as it streamed (None: absent).
    pub sums: Option<SumsInfo>,
    /// Data entries by path (`.carryover/*` excluded).
    pub seen: BTreeMap<String, Seen>,
    /// Paths that appear more than once in the archive.
    pub duplicates: Vec<String>,
    /// Records under `.carryover/` above their size cap (path, declared size): not read.
    pub oversized: Vec<(String, u64)>,
    /// Entries no restore may write (path, why): not a plain relative path, a trailing-slash
    /// game, a path through a symlink of the archive, a symlink out of the pack.
    pub unsafe_entries: Vec<(String, String)>,
    /// The on-disk format each H2 file's own header shows (path, format).
    pub h2_headers: Vec<(String, crate::pack::H2Format)>,
    /// Layout problems (path, what): snapshot.json not first, a record twice, data after the
    /// index.
    pub layout: Vec<(String, String)>,
    /// Entries read so far.
    pub(super) entries_read: u64,
    /// Record names read so far, in order.
    pub(super) records_read: Vec<String>,
    /// Symlinks that point outside the pack (`path -> target`): restored as links by default.
    pub external_links: Vec<String>,
    /// The archive's symlinks so far (to find entries that go through one).
    pub(super) links: std::collections::BTreeSet<String>,
    /// File entries in the order their content was hashed (emptied once digests are filled in).
    pub(super) file_order: Vec<String>,
    /// How many of `file_order` already have their digest.
    pub(super) filled: usize,
    /// The stream could not be read to its end: corrupt or truncated (first error).
    pub stream_error: Option<String>,
    /// The file is a zstd stream that failed an integrity check (a damaged block, the frame
    /// checksum, a garbled tar record) rather than one that ends early or is not zstd at all:
    /// a finding about the archive even when nothing could be read from it.
    pub damaged: bool,
    /// SHA-256 of the archive file's bytes (None if reading stopped early).
    pub archive_sha256: Option<String>,
    /// Size of the archive file as read.
    pub compressed_bytes: u64,
}

impl ArchiveContents {
    /// Gives the next files in hashing order their digests.
    pub(super) fn apply_digests(&mut self, digests: &[Sha]) {
        for d in digests {
            let Some(p) = self.file_order.get(self.filled) else {
                break;
            };
            if let Some(seen) = self.seen.get_mut(p) {
                seen.sha256 = Some(*d);
            }
            self.filled += 1;
        }
        if self.filled == self.file_order.len() {
            // Every file so far has its digest: the paths are no longer needed.
            self.file_order = Vec::new();
            self.filled = 0;
        }
    }
}
