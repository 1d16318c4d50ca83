//! The checks every restore needs, made on each entry as the archive streams: its raw name is a
//! plain relative path (a directory may end in one `/`), it is not below one of the archive's
//! symlinks, a symlink stays inside the pack (or is named as leading out); and the archive's
//! layout (snapshot.json first, each record once, no data after the index).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::contents::ArchiveContents;
use super::format::{INDEX_JSON, META_DIR, SNAPSHOT_JSON};
use crate::relpath;

impl ArchiveContents {
    /// The archive's layout: snapshot.json first, each record once, no data after index.json.
    pub(super) fn check_layout(&mut self, path: &str) {
        let out = self;
        let first = out.entries_read == 0;
        out.entries_read += 1;
        let problem = if first && path != SNAPSHOT_JSON {
            Some("the first entry is not .carryover/snapshot.json".to_string())
        } else if path.starts_with(META_DIR) && out.records_read.iter().any(|r| r == path) {
            Some("a record that appears twice".to_string())
        } else if !path.starts_with(META_DIR) && out.records_read.iter().any(|r| r == INDEX_JSON) {
            Some("a data entry after .carryover/index.json (no record describes it)".to_string())
        } else {
            None
        };
        if path.starts_with(META_DIR) {
            out.records_read.push(path.to_string());
        }
        if let Some(p) = problem {
            out.layout.push((path.to_string(), p));
        }
    }

    /// The checks every restore needs, on the raw name: a plain relative path (a directory may end
    /// in one `/`), not below one of the archive's symlinks, a symlink that stays inside the pack.
    pub(super) fn check_entry(
        &mut self,
        raw: &[u8],
        et: tar::EntryType,
        link: Option<&[u8]>,
        path: &str,
    ) {
        let bare = match raw.strip_suffix(b"/") {
            Some(r) if et.is_dir() => r,
            _ => raw,
        };
        let mut why = relpath::check(bare).err();
        if why.is_none() {
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                let anc = &path[..at + i];
                if self.links.contains(anc) {
                    why = Some(format!("goes through the archive's symlink {anc}"));
                    break;
                }
                at += i + 1;
            }
        }
        if et.is_symlink() {
            let target = Path::new(std::ffi::OsStr::from_bytes(link.unwrap_or_default()));
            if target.as_os_str().is_empty() {
                why.get_or_insert_with(|| "a symlink without a target".into());
            } else if why.is_none() && !relpath::link_stays_inside(Path::new(path), target) {
                // Restorable as a link (never written through): a policy for the restore.
                self.external_links
                    .push(format!("{path} -> {}", target.display()));
            }
            self.links.insert(path.to_string());
        }
        if let Some(w) = why {
            self.unsafe_entries
                .push((String::from_utf8_lossy(raw).into_owned(), w));
        }
    }
}
