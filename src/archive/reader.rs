//! Reading a snapshot in one streaming pass: every entry's content is hashed as it is
//! decompressed, the archive's own digest is computed on the compressed bytes as they are read,
//! and the records (`snapshot.json`, `index.json`, `SHA256SUMS`) are collected for cross-checks.
//! An optional visitor receives each entry (used by transplant to stage files while reading).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::format::*;
use crate::error::{Error, IoContext, Result};
use crate::report::{Cancel, Progress};

/// What the archive actually holds for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub kind: EntryType,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub sha256: Option<String>,
    pub link: Option<String>,
}

/// The archive's contents as read, plus stream-level problems.
#[derive(Debug, Default)]
pub struct ArchiveContents {
    pub meta: Option<SnapshotMeta>,
    pub index: Option<Index>,
    pub sums: Option<String>,
    /// Data entries in archive order (`.carryover/*` excluded).
    pub seen: BTreeMap<String, Seen>,
    pub duplicates: Vec<String>,
    /// The stream could not be read to its end: corrupt or truncated (first error).
    pub stream_error: Option<String>,
    /// SHA-256 of the archive file's bytes (None if reading stopped early).
    pub archive_sha256: Option<String>,
    pub compressed_bytes: u64,
}

/// A reader that hashes the raw (compressed) bytes it passes on.
struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Called for each data entry while it streams past; may read its content (the reader is
/// hashed whatever the visitor does with it).
pub trait Visitor {
    fn entry(
        &mut self,
        path: &str,
        entry: &Seen,
        content: &mut dyn Read,
        link: Option<&Path>,
    ) -> Result<()>;
}

/// Reads and hashes everything; `visitor` sees each data entry as it passes.
pub fn read_archive(
    path: &Path,
    mut visitor: Option<&mut dyn Visitor>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<ArchiveContents> {
    let file = File::open(path).at(path)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    progress.begin(total, 0);
    let raw = HashReader {
        inner: file,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut out = ArchiveContents::default();
    let mut dec = match zstd::stream::Decoder::with_buffer(BufReader::with_capacity(1 << 20, raw)) {
        Ok(d) => d,
        Err(e) => {
            out.stream_error = Some(format!("not a zstd stream: {e}"));
            return Ok(out);
        }
    };
    let walk = {
        let mut ar = tar::Archive::new(&mut dec);
        read_entries(&mut ar, &mut out, &mut visitor, progress, cancel)
    };
    match walk {
        Ok(()) => {}
        // A damaged stream is a finding, not a failure of the reader.
        Err(Error::Corrupt { message, .. }) => out.stream_error = Some(message),
        Err(other) => return Err(other),
    }
    if out.stream_error.is_none() {
        // Drain: the zstd frame checksum is only verified at the end of the frame.
        if let Err(e) = io::copy(&mut dec, &mut io::sink()) {
            out.stream_error = Some(format!("compressed stream: {e}"));
        }
    }
    let mut raw = dec.finish().into_inner();
    // Hash whatever trailing bytes the decoder did not need.
    if let Err(e) = io::copy(&mut raw, &mut io::sink()) {
        out.stream_error
            .get_or_insert_with(|| format!("reading {}: {e}", path.display()));
    }
    out.compressed_bytes = raw.count;
    out.archive_sha256 = Some(hex::encode(raw.hasher.finalize()));
    progress.finish();
    Ok(out)
}

fn read_entries<R: Read>(
    ar: &mut tar::Archive<R>,
    out: &mut ArchiveContents,
    visitor: &mut Option<&mut dyn Visitor>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<()> {
    let stream = |e: io::Error| {
        Error::corrupt(
            PathBuf::from("archive"),
            format!("corrupt or truncated stream: {e}"),
        )
    };
    let entries = ar.entries().map_err(stream)?;
    let mut buf = vec![0u8; 1 << 20];
    for entry in entries {
        cancel.check()?;
        let mut entry = entry.map_err(stream)?;
        let path_bytes = entry.path_bytes().into_owned();
        let path = String::from_utf8(path_bytes).map_err(|_| {
            Error::corrupt(PathBuf::from("archive"), "entry name is not valid UTF-8")
        })?;
        let path = path.trim_end_matches('/').to_string();
        let h = entry.header();
        let et = h.entry_type();
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let size = entry.size();
        if path.starts_with(META_DIR) && et.is_file() {
            let mut data = Vec::with_capacity(size.min(1 << 26) as usize);
            entry.read_to_end(&mut data).map_err(stream)?;
            match path.as_str() {
                SNAPSHOT_JSON => out.meta = serde_json::from_slice(&data).ok(),
                INDEX_JSON => out.index = serde_json::from_slice(&data).ok(),
                SHA256SUMS => out.sums = Some(String::from_utf8_lossy(&data).into_owned()),
                _ => {}
            }
            if path == SNAPSHOT_JSON && out.meta.is_none() {
                return Err(Error::corrupt(
                    PathBuf::from(SNAPSHOT_JSON),
                    "snapshot.json is not valid",
                ));
            }
            continue;
        }
        let (kind, link) = if et.is_dir() {
            (EntryType::Dir, None)
        } else if et.is_symlink() {
            let l = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            (EntryType::Symlink, l)
        } else if et.is_file() {
            (EntryType::File, None)
        } else {
            // hard links, devices, fifos: never written by carryover
            return Err(Error::corrupt(
                PathBuf::from(&path),
                format!("{path}: archive entry of unsupported type {et:?} (carryover writes files, dirs and symlinks only)"),
            ));
        };
        let mut seen = Seen {
            kind,
            size: if kind == EntryType::File { size } else { 0 },
            mode,
            mtime,
            sha256: None,
            link,
        };
        if kind == EntryType::File {
            let mut hr = EntryHasher {
                inner: &mut entry,
                hasher: Sha256::new(),
                progress,
            };
            if let Some(v) = visitor.as_deref_mut() {
                let s = seen.clone();
                v.entry(&path, &s, &mut hr, None)?;
            }
            // Whatever the visitor left unread is hashed here.
            loop {
                let n = hr.read(&mut buf).map_err(stream)?;
                if n == 0 {
                    break;
                }
            }
            seen.sha256 = Some(hex::encode(hr.hasher.finalize()));
        } else if let Some(v) = visitor.as_deref_mut() {
            let l = seen.link.clone().map(PathBuf::from);
            v.entry(&path, &seen.clone(), &mut io::empty(), l.as_deref())?;
        }
        if out.seen.insert(path.clone(), seen).is_some() {
            out.duplicates.push(path);
        }
    }
    Ok(())
}

struct EntryHasher<'a, R> {
    inner: &'a mut R,
    hasher: Sha256,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for EntryHasher<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}
