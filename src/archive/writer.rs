//! Writing an archive: one pass over a plan's entries into the tar stream (tar_writer.rs).
//! Each file is read once; the same bytes feed SHA-256, the engine-level integrity checks and
//! the compressor (source.rs). Layout: `snapshot.json` first, then every entry, then
//! `index.json` and `SHA256SUMS` from the spool (spool.rs).
//!
//! This module writes into any sink; where the archive goes, how it is made durable and what
//! the command reports is `crate::snapshot`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::format::{
    CorruptRecord, EntryType, IndexEntry, SnapshotMeta, INDEX_JSON, SHA256SUMS, SNAPSHOT_JSON,
};
use super::source::Source;
use super::spool::Spool;
use super::tar_writer::{header, TarWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::integrity::Check;
use crate::manifest::Kind;
use crate::plan::{Entry, EntryKind, Plan, RulePlan};
use crate::progress::{Cancel, Progress};

/// Read buffer for file content: one large block per read.
const READ_BLOCK: usize = 1 << 20;

/// Everything one archive write needs.
pub struct ArchiveWriter<'a> {
    /// What to carry.
    pub plan: &'a Plan,
    /// The archive being written: it names errors, and the spool lives beside it.
    pub output: &'a Path,
    /// zstd level (1..=19).
    pub level: i32,
    /// zstd worker threads (0 = one per core).
    pub threads: u32,
    /// Record files that change while read instead of failing (`--allow-running`).
    pub allow_changed: bool,
    /// Record damaged index/database files instead of failing (`--allow-corrupt`).
    pub allow_corrupt: bool,
    /// Receives bytes and files as they are written.
    pub progress: &'a dyn Progress,
    /// Polled between blocks.
    pub cancel: &'a Cancel,
}

/// What the pass wrote.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Regular files written.
    pub files: u64,
    /// Directories written.
    pub dirs: u64,
    /// Symlinks written.
    pub symlinks: u64,
    /// Content bytes read from the pack.
    pub bytes_in: u64,
    /// Files that changed while read (only with `allow_changed`).
    pub changed: Vec<String>,
    /// Files found damaged (only with `allow_corrupt`).
    pub corrupt: Vec<CorruptRecord>,
    /// Directories whose entries changed while the snapshot ran (files added or removed then
    /// are not in it).
    pub dirs_changed: Vec<String>,
}

/// The state of one pass.
struct Pass<'a, W: Write> {
    job: &'a ArchiveWriter<'a>,
    tar: TarWriter<W>,
    spool: Spool,
    stats: WriteStats,
    buf: Vec<u8>,
    /// Each directory written, with its mtime then (to find the ones that changed).
    dir_times: Vec<(PathBuf, String, i64, i64)>,
}

impl ArchiveWriter<'_> {
    /// Writes the archive of the plan into `sink`, `meta` as its snapshot.json; returns the
    /// sink (the whole zstd frame written to it) and what was written.
    ///
    /// # Errors
    /// Reading the pack or writing the sink failed; a file changed while read (unless
    /// `allow_changed`) or failed its integrity check (unless `allow_corrupt`); a name or link
    /// target is not UTF-8; `cancel` was set ([`Error::Interrupted`]).
    pub fn write<W: Write>(&self, meta: &SnapshotMeta, sink: W) -> Result<(W, WriteStats)> {
        let out = self.output;
        let mut tar = TarWriter::new(sink, self.level, self.threads).at(out)?;
        let meta_bytes = serde_json::to_vec_pretty(meta).expect("serialisable");
        tar.append_record(SNAPSHOT_JSON, meta_bytes.len() as u64, &meta_bytes[..])
            .at(out)?;
        let plan = self.plan;
        let total: u64 = plan.entries().map(|e| e.size()).sum();
        self.progress.begin(total, plan.entries().count() as u64);
        let mut pass = Pass {
            job: self,
            tar,
            spool: Spool::new(fsutil::parent_of(out))?,
            stats: WriteStats::default(),
            buf: vec![0u8; READ_BLOCK],
            dir_times: Vec::new(),
        };
        let walked = plan.entries().try_for_each(|entry| {
            self.cancel.check()?;
            pass.entry(entry)
        });
        if let Err(e) = walked {
            if matches!(e, Error::Interrupted) || self.cancel.is_set() {
                // Dropping the encoder waits for its worker threads to finish their jobs (seconds
                // at high levels): on a signal, leave them to the process's exit instead. The
                // caller removes the temp file by name.
                let Pass { tar, .. } = pass;
                std::mem::forget(tar);
                return Err(Error::Interrupted);
            }
            return Err(e);
        }
        let Pass {
            mut tar,
            spool,
            mut stats,
            dir_times,
            ..
        } = pass;
        for (abs, name, secs, nsec) in dir_times {
            let now = fs::symlink_metadata(&abs).map(|m| (m.mtime(), m.mtime_nsec()));
            if now.ok() != Some((secs, nsec)) {
                stats.dirs_changed.push(name);
            }
        }
        let ((index, index_len), (sums, sums_len)) =
            spool.finish(&stats.changed, &stats.corrupt)?;
        tar.append_record(INDEX_JSON, index_len, index).at(out)?;
        tar.append_record(SHA256SUMS, sums_len, sums).at(out)?;
        let sink = tar.finish().at(out)?;
        self.progress.finish();
        Ok((sink, stats))
    }
}

impl<W: Write> Pass<'_, W> {
    fn entry(&mut self, entry: &Entry) -> Result<()> {
        let name = path_str(&entry.rel)?;
        let abs = self.job.plan.pack.root.join(&entry.rel);
        let rule = &self.job.plan.rules[entry.rule];
        match &entry.kind {
            EntryKind::Dir => self.dir(entry, name, &abs, rule),
            EntryKind::Symlink { target } => {
                let link = target
                    .to_str()
                    .ok_or_else(|| Error::invalid(&abs, "symlink target is not valid UTF-8"))?;
                self.symlink(entry, name, link, &abs, rule)
            }
            EntryKind::File { .. } => self.file(entry, name, &abs, rule),
        }
    }

    fn dir(&mut self, entry: &Entry, name: &str, abs: &Path, rule: &RulePlan) -> Result<()> {
        let meta = fs::symlink_metadata(abs).at(abs)?;
        let h = header(tar::EntryType::Directory, &meta, entry.mode, 0);
        self.tar
            .append(h, &format!("{name}/"), None, io::empty())
            .at(self.job.output)?;
        self.stats.dirs += 1;
        let mtime = meta.mtime();
        self.dir_times.push((
            abs.to_path_buf(),
            name.to_string(),
            mtime,
            meta.mtime_nsec(),
        ));
        self.spool
            .entry(&index_entry(name, EntryType::Dir, entry.mode, mtime, rule))
    }

    fn symlink(
        &mut self,
        entry: &Entry,
        name: &str,
        link: &str,
        abs: &Path,
        rule: &RulePlan,
    ) -> Result<()> {
        let meta = fs::symlink_metadata(abs).at(abs)?;
        let h = header(tar::EntryType::Symlink, &meta, entry.mode, 0);
        self.tar
            .append(h, name, Some(link), io::empty())
            .at(self.job.output)?;
        self.stats.symlinks += 1;
        let mtime = meta.mtime();
        self.spool.entry(&IndexEntry {
            link: Some(link.to_string()),
            ..index_entry(name, EntryType::Symlink, entry.mode, mtime, rule)
        })
    }

    fn file(&mut self, entry: &Entry, name: &str, abs: &Path, rule: &RulePlan) -> Result<()> {
        let job = self.job;
        let mut file = File::open(abs).at(abs)?;
        let before = file.metadata().at(abs)?;
        let (size, mode) = (before.len(), before.mode() & 0o7777);
        let h = header(tar::EntryType::Regular, &before, mode, size);
        let check = match rule.kind {
            Kind::Lucene => Check::Lucene,
            Kind::H2 => Check::MvStore,
            _ => Check::None,
        };
        let mut src = Source::new(
            &mut file,
            size,
            check,
            &mut self.buf,
            job.progress,
            job.cancel,
        );
        if let Err(e) = self.tar.append(h, name, None, &mut src) {
            // A full disk is the output's problem, not the pack file's being read.
            let at = if src.read_failed() { abs } else { job.output };
            return Err(io_err(at, e, job.cancel));
        }
        let read = src.finish();
        let after = file.metadata().at(abs)?;
        // A same-size rewrite that restores the mtime (cp -p, rsync -t) still moves the ctime;
        // a file replaced by rename is another inode at the path.
        let replaced =
            fs::metadata(abs).map_or(true, |m| m.ino() != before.ino() || m.dev() != before.dev());
        let changed = read.short
            || replaced
            || after.len() != size
            || after.mtime() != before.mtime()
            || after.mtime_nsec() != before.mtime_nsec()
            || after.ctime() != before.ctime()
            || after.ctime_nsec() != before.ctime_nsec();
        if changed {
            self.changed(name, abs)?;
        }
        if let Some(problem) = read.problem {
            self.corrupt(name, abs, problem)?;
        }
        let digest = hex::encode(read.sha256);
        self.spool.sum(&digest, name)?;
        self.stats.files += 1;
        self.stats.bytes_in += size;
        job.progress.file_done();
        let h2_format = rule
            .h2
            .as_ref()
            .filter(|h| h.file.as_deref() == Some(entry.rel.as_path()))
            .and_then(|h| h.format);
        self.spool.entry(&IndexEntry {
            size,
            sha256: Some(digest),
            h2_format,
            ..index_entry(name, EntryType::File, mode, before.mtime(), rule)
        })
    }

    /// A file changed while it was read: recorded with `allow_changed`, an error without.
    fn changed(&mut self, name: &str, abs: &Path) -> Result<()> {
        if !self.job.allow_changed {
            return Err(Error::invalid(
                abs,
                "changed while it was read (size, mtime, ctime or inode); is a server running? \
                 stop it, or take the snapshot with --allow-running",
            ));
        }
        self.stats.changed.push(name.to_string());
        Ok(())
    }

    /// A file failed its integrity check: recorded with `allow_corrupt`, an error without.
    fn corrupt(&mut self, name: &str, abs: &Path, problem: String) -> Result<()> {
        if !self.job.allow_corrupt {
            return Err(Error::corrupt(
                abs,
                format!("{problem}; the file is damaged (--allow-corrupt records it instead)"),
            ));
        }
        self.stats.corrupt.push(CorruptRecord {
            path: name.to_string(),
            problem,
        });
        Ok(())
    }
}

/// The index record of an entry without content (fields for files are added by the caller).
fn index_entry(name: &str, kind: EntryType, mode: u32, mtime: i64, rule: &RulePlan) -> IndexEntry {
    IndexEntry {
        path: name.to_string(),
        kind,
        size: 0,
        mode,
        mtime,
        sha256: None,
        link: None,
        rule: rule.name.clone(),
        h2_format: None,
    }
}

fn path_str(rel: &Path) -> Result<&str> {
    rel.to_str().ok_or_else(|| {
        Error::invalid(
            rel,
            "file name is not valid UTF-8; carryover cannot index it",
        )
    })
}

/// An I/O error while a file's content streamed: the file's, or an interruption.
fn io_err(path: &Path, e: io::Error, cancel: &Cancel) -> Error {
    if cancel.is_set() {
        Error::Interrupted
    } else {
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}
