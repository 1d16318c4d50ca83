//! Reading a snapshot in one streaming pass: every entry's content is hashed as it is
//! decompressed (hash_pipe.rs), the archive's own digest is computed on the compressed bytes as
//! they are read, and the records (`snapshot.json`, `index.json`, `SHA256SUMS`) are checked as
//! they stream (index_check.rs, sums_check.rs). An optional [`Visitor`] receives each entry
//! (transplant stages files while reading).
//!
//! The result is an [`ArchiveContents`]: what the archive holds, not a verdict on it (that is
//! `crate::verify`). GNU long-name records (before pax headers) and pax headers read the same.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::contents::{ArchiveContents, Seen, SumsInfo};
use super::format::{EntryType, SnapshotMeta, INDEX_JSON, META_DIR, SHA256SUMS, SNAPSHOT_JSON};
use super::hash_pipe::{self, hash_raw_file, HashPipe, CHUNK};
use super::index_check::check_streaming;
use super::limits::{MAX_LARGE_RECORD, MAX_SMALL_RECORD};
use super::sums_check::check_sums_streaming;
use crate::error::{Error, IoContext, Result};
use crate::progress::{Cancel, Progress};

/// The zstd frame magic number, little-endian on disk.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Read buffer for the streamed records (index.json, SHA256SUMS).
const RECORD_BUF: usize = 1 << 16;

/// Reads only `.carryover/snapshot.json`, the archive's first entry.
///
/// # Errors
/// The file cannot be opened, is not zstd/tar, or its first entry is not a valid snapshot.json.
pub fn read_meta(archive: &Path) -> Result<SnapshotMeta> {
    let f = File::open(archive).at(archive)?;
    let dec = zstd::stream::Decoder::new(f)
        .map_err(|e| Error::corrupt(archive, format!("not a zstd stream: {e}")))?;
    let mut ar = tar::Archive::new(dec);
    let bad = |m: String| Error::corrupt(archive, m);
    let mut entries = ar
        .entries()
        .map_err(|e| bad(format!("corrupt archive: {e}")))?;
    let mut first = entries
        .next()
        .ok_or_else(|| bad("empty archive".into()))?
        .map_err(|e| bad(format!("corrupt archive: {e}")))?;
    let path = first.path_bytes().into_owned();
    if path != SNAPSHOT_JSON.as_bytes() {
        return Err(bad(format!(
            "first entry is not {SNAPSHOT_JSON}: not a carryover snapshot"
        )));
    }
    // Capped like every record: a hostile size is refused, never allocated.
    let size = first.header().entry_size().unwrap_or(u64::MAX);
    if size > MAX_SMALL_RECORD {
        return Err(bad(format!(
            "snapshot.json is {size} bytes, more than the {MAX_SMALL_RECORD} carryover reads"
        )));
    }
    let mut data = Vec::new();
    (&mut first)
        .take(MAX_SMALL_RECORD)
        .read_to_end(&mut data)
        .map_err(|e| bad(format!("corrupt archive: {e}")))?;
    serde_json::from_slice(&data).map_err(|e| bad(format!("{SNAPSHOT_JSON}: {e}")))
}

/// Receives each data entry as it streams past. Content arrives in order through `data`.
pub trait Visitor {
    /// A new entry starts (before any of its content).
    ///
    /// # Errors
    /// Any error stops the read and is returned by [`read_archive`].
    fn begin(&mut self, path: &str, entry: &Seen) -> Result<()>;
    /// The next block of the current file's content.
    ///
    /// # Errors
    /// Any error stops the read and is returned by [`read_archive`].
    fn data(&mut self, bytes: &[u8]) -> Result<()>;
    /// The current entry is complete.
    ///
    /// # Errors
    /// Any error stops the read and is returned by [`read_archive`].
    fn end(&mut self) -> Result<()>;
}

/// Reads and hashes everything; `visitor` sees each data entry as it passes.
///
/// A damaged or truncated stream is not an error: it is reported in
/// [`ArchiveContents::stream_error`] with whatever could be read before it.
///
/// # Errors
/// The archive cannot be opened or read, a hashing thread failed, the visitor failed, an entry
/// has a type carryover never writes or a name that is not UTF-8, or `cancel` was set.
pub fn read_archive(
    path: &Path,
    visitor: Option<&mut dyn Visitor>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<ArchiveContents> {
    let file = File::open(path).at(path)?;
    // The uncompressed size is only known at the end (index.json): progress counts bytes read.
    progress.begin(0, 0);
    let (pipe, hasher) = hash_pipe::pipe();
    let mut out = ArchiveContents::default();
    let (walk, digests, raw) = std::thread::scope(|scope| {
        let hasher = scope.spawn(move || hasher.run());
        let raw_hasher = scope.spawn(|| hash_raw_file(path));
        let walk = Walk {
            out: &mut out,
            visitor,
            pipe: &pipe,
            progress,
            cancel,
            eof: Cell::new(false),
        }
        .decode(file, path);
        drop(pipe);
        (walk, hasher.join(), raw_hasher.join())
    });
    let failed = |_| Error::invalid(path, "hashing thread failed");
    let digests = digests.map_err(failed)?;
    let raw = raw.map_err(failed)?.at(path)?;
    walk?;
    out.apply_digests(&digests);
    out.file_order = Vec::new();
    out.archive_sha256 = Some(raw.0);
    out.compressed_bytes = raw.1;
    progress.finish();
    Ok(out)
}

/// One pass over the decompressed stream: what it found goes to `out`.
struct Walk<'a, 'v> {
    out: &'a mut ArchiveContents,
    visitor: Option<&'a mut (dyn Visitor + 'v)>,
    pipe: &'a HashPipe,
    progress: &'a dyn Progress,
    cancel: &'a Cancel,
    /// Set when the stream ended early (truncation), as opposed to failing a check.
    eof: Cell<bool>,
}

impl Walk<'_, '_> {
    fn decode(mut self, mut file: File, path: &Path) -> Result<()> {
        let mut magic = [0u8; 4];
        let is_zstd = file.read_exact(&mut magic).is_ok() && magic == ZSTD_MAGIC;
        file.seek(SeekFrom::Start(0)).at(path)?;
        let mut dec =
            match zstd::stream::Decoder::with_buffer(BufReader::with_capacity(CHUNK, file)) {
                Ok(d) => d,
                Err(e) => {
                    self.out.stream_error = Some(format!("not a zstd stream: {e}"));
                    return Ok(());
                }
            };
        match self.entries(&mut tar::Archive::new(&mut dec)) {
            Ok(()) => {}
            // A damaged stream is a finding, not a failure of the reader.
            Err(Error::Corrupt { message, .. }) => self.out.stream_error = Some(message),
            Err(other) => return Err(other),
        }
        if self.out.stream_error.is_none() {
            // Drain: the zstd frame checksum is only verified at the end of the frame.
            if let Err(e) = io::copy(&mut dec, &mut io::sink()) {
                self.eof.set(e.kind() == io::ErrorKind::UnexpectedEof);
                self.out.stream_error = Some(format!("compressed stream: {e}"));
            }
        }
        self.out.damaged = is_zstd && self.out.stream_error.is_some() && !self.eof.get();
        let mut raw = dec.finish();
        // Read whatever trailing bytes the decoder did not need.
        if let Err(e) = io::copy(&mut raw, &mut io::sink()) {
            self.out
                .stream_error
                .get_or_insert_with(|| format!("reading {}: {e}", path.display()));
        }
        Ok(())
    }

    fn entries<R: Read>(&mut self, ar: &mut tar::Archive<R>) -> Result<()> {
        for entry in ar.entries().map_err(|e| stream_error(&self.eof, e))? {
            self.cancel.check()?;
            let mut entry = entry.map_err(|e| stream_error(&self.eof, e))?;
            let path = entry_path(&entry)?;
            self.out.check_layout(&path);
            if !path.starts_with(META_DIR) {
                let link = entry.link_name_bytes().map(|b| b.into_owned());
                let et = entry.header().entry_type();
                self.out
                    .check_entry(&entry.path_bytes(), et, link.as_deref(), &path);
            }
            if path.starts_with(META_DIR) && entry.header().entry_type().is_file() {
                self.record(&path, &mut entry)?;
            } else {
                self.data_entry(path, &mut entry)?;
            }
        }
        Ok(())
    }

    /// One of carryover's own records under `.carryover/`.
    fn record<R: Read>(&mut self, path: &str, entry: &mut tar::Entry<R>) -> Result<()> {
        let out = &mut *self.out;
        let cap = if path == INDEX_JSON || path == SHA256SUMS {
            MAX_LARGE_RECORD
        } else {
            MAX_SMALL_RECORD
        };
        if entry.size() > cap {
            // Refused unread: the record counts as absent (verify reports it), memory stays flat.
            out.oversized.push((path.to_string(), entry.size()));
            io::copy(&mut entry.take(entry.size()), &mut io::sink())
                .map_err(|e| stream_error(&self.eof, e))?;
            if path == SNAPSHOT_JSON {
                return Err(Error::corrupt(
                    PathBuf::from(SNAPSHOT_JSON),
                    format!("snapshot.json is {} bytes, more than the {MAX_SMALL_RECORD} carryover reads", entry.size()),
                ));
            }
            return Ok(());
        }
        if path == INDEX_JSON {
            // The largest record: checked entry by entry as it streams, never held. The digests
            // of the data before it are needed for that, so fetch them from the hasher first.
            out.apply_digests(&self.pipe.take_digests());
            let reader = BufReader::with_capacity(RECORD_BUF, entry);
            out.index = check_streaming(reader, &mut out.seen);
        } else if path == SHA256SUMS {
            // Checked line by line against the index (written before it), never held.
            let reader = BufReader::with_capacity(RECORD_BUF, entry);
            out.sums = Some(match &out.index {
                Some(info) => check_sums_streaming(reader, &mut out.seen, info),
                None => SumsInfo::default(),
            });
        } else {
            let mut data = Vec::with_capacity(entry.size().min(1 << 26) as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| stream_error(&self.eof, e))?;
            if path == SNAPSHOT_JSON {
                out.meta = serde_json::from_slice(&data).ok();
                if out.meta.is_none() {
                    return Err(Error::corrupt(
                        PathBuf::from(SNAPSHOT_JSON),
                        "snapshot.json is not valid",
                    ));
                }
            }
        }
        Ok(())
    }

    /// A carried file, directory or symlink: recorded, shown to the visitor, content hashed.
    fn data_entry<R: Read>(&mut self, path: String, entry: &mut tar::Entry<R>) -> Result<()> {
        let seen = seen_of(&path, entry)?;
        if let Some(v) = self.visitor.as_deref_mut() {
            v.begin(&path, &seen)?;
        }
        if seen.kind == EntryType::File {
            self.content(entry, seen.size, &path)?;
            self.out.file_order.push(path.clone());
        }
        if let Some(v) = self.visitor.as_deref_mut() {
            v.end()?;
        }
        if self.out.seen.insert(path.clone(), seen).is_some() {
            self.out.duplicates.push(path);
        }
        Ok(())
    }

    /// Streams a file's content to the visitor and the hasher in [`CHUNK`]s.
    fn content<R: Read>(&mut self, entry: &mut tar::Entry<R>, size: u64, path: &str) -> Result<()> {
        let mut remaining = size;
        let h2 = path.ends_with(".mv.db") || path.ends_with(".h2.db");
        while remaining > 0 {
            let mut buf = self.pipe.buffer();
            let n = remaining.min(CHUNK as u64) as usize;
            // A truncated entry is an UnexpectedEof, which `stream_error` reports as truncation.
            entry
                .read_exact(&mut buf[..n])
                .map_err(|e| stream_error(&self.eof, e))?;
            if h2 && remaining == size {
                // An H2 file's format is what its own header says, not what a record claims.
                let fmt = crate::pack::H2Format::of_header(&buf[..n.min(4096)]);
                self.out.h2_headers.push((path.to_string(), fmt));
            }
            remaining -= n as u64;
            if let Some(v) = self.visitor.as_deref_mut() {
                v.data(&buf[..n])?;
            }
            self.progress.advance(n as u64);
            self.pipe.data(buf, n);
        }
        self.pipe.end_file();
        Ok(())
    }
}

/// A read error of the tar/zstd stream, as the finding it is; notes a truncation in `eof`.
fn stream_error(eof: &Cell<bool>, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        eof.set(true);
    }
    Error::corrupt(
        PathBuf::from("archive"),
        format!("corrupt or truncated stream: {e}"),
    )
}

/// The entry's name (pax `path`, GNU long name or header name), without a trailing `/`.
fn entry_path<R: Read>(entry: &tar::Entry<R>) -> Result<String> {
    let bytes = entry.path_bytes().into_owned();
    let path = String::from_utf8(bytes)
        .map_err(|_| Error::corrupt(PathBuf::from("archive"), "entry name is not valid UTF-8"))?;
    Ok(path.trim_end_matches('/').to_string())
}

/// The archive's record of a data entry, from its header.
fn seen_of<R: Read>(path: &str, entry: &tar::Entry<R>) -> Result<Seen> {
    let h = entry.header();
    let et = h.entry_type();
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
            PathBuf::from(path),
            format!("{path}: archive entry of unsupported type {et:?} (carryover writes files, dirs and symlinks only)"),
        ));
    };
    Ok(Seen {
        kind,
        size: if kind == EntryType::File {
            entry.size()
        } else {
            0
        },
        mode: h.mode().unwrap_or(0) & 0o7777,
        mtime: h.mtime().unwrap_or(0) as i64,
        sha256: None,
        link,
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        index: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    /// Archives written before pax headers carry long names and link targets in GNU long
    /// records; they must read the same.
    #[test]
    fn reads_gnu_long_records() {
        let file_name = format!("data/{}", "n".repeat(150));
        let link_name = format!("data/{}", "l".repeat(150));
        let target = format!("{}target\nwith a newline", "far/".repeat(40));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(3);
        h.set_mode(0o640);
        b.append_data(&mut h, &file_name, &b"abc"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, &link_name, &target).unwrap();
        let tar = b.into_inner().unwrap();
        let archive = tempfile::NamedTempFile::new().unwrap();
        zstd::stream::copy_encode(&tar[..], archive.as_file(), 1).unwrap();

        let c = read_archive(archive.path(), None, &NoProgress, &Cancel::default()).unwrap();
        assert_eq!(c.stream_error, None);
        let f = &c.seen[&file_name];
        assert_eq!((f.kind, f.size, f.mode), (EntryType::File, 3, 0o640));
        assert_eq!(f.sha_hex(), Some(crate::digest::sha256_hex(b"abc")));
        let s = &c.seen[&link_name];
        assert_eq!(s.kind, EntryType::Symlink);
        assert_eq!(s.link.as_deref(), Some(target.as_str()));
    }
}
