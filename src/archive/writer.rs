//! Writing a snapshot: one pass over the plan's entries into a zstd-compressed tar. Each file is
//! read once; the same bytes feed SHA-256, the engine-level integrity checks and the compressor.
//! The archive is written to a temp file beside the target, fsync'd and renamed; its own digest
//! (computed on the compressed bytes as they are written) goes to the `NAME.sha256` sidecar.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::format::*;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::integrity::{Check, Checker};
use crate::manifest::Kind;
use crate::plan::{EntryKind, Plan};
use crate::progress::{Cancel, Progress};

/// How to write a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    pub output: PathBuf,
    /// zstd level (1..=19).
    pub level: i32,
    /// zstd worker threads (0 = one per core).
    pub threads: u32,
    pub allow_running: bool,
    pub allow_corrupt: bool,
    pub baseline: bool,
}

/// What a snapshot wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSummary {
    pub archive: PathBuf,
    pub sidecar: PathBuf,
    pub archive_sha256: String,
    pub product: String,
    pub version: String,
    pub manifest: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub ratio: f64,
    pub seconds: f64,
    pub mib_per_s: f64,
    pub allow_running: bool,
    pub baseline: bool,
    pub changed_while_reading: Vec<String>,
    pub corrupt: Vec<CorruptRecord>,
    pub warnings: Vec<String>,
}

/// A writer that hashes what passes through it and counts bytes.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
    /// The archive's fd and how far write-back has been started: flushing as we go leaves the
    /// final fsync almost nothing to wait for.
    fd: std::os::unix::io::RawFd,
    flushed: u64,
}

const WRITEBACK_STEP: u64 = 32 << 20;

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count - self.flushed >= 2 * WRITEBACK_STEP {
            // Start write-back of a range already handed to the kernel (the BufWriter above the
            // file holds at most 1 MiB); errors surface at the final fsync.
            // SAFETY: a valid fd owned by the BufWriter for the life of this writer.
            unsafe {
                libc::sync_file_range(
                    self.fd,
                    self.flushed as libc::off64_t,
                    WRITEBACK_STEP as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.flushed += WRITEBACK_STEP;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One regular file's content streamed into the archive: read in large blocks, each block fed
/// to SHA-256, the integrity checker and the compressor. Zero-pads if the file shrank.
struct FileCopy {
    hasher: Sha256,
    checker: Checker,
    short: bool,
}

const BLOCK: u64 = 512;
const JOB_SIZE: u32 = 4 << 20;

fn pad_to_block<W: Write>(w: &mut W, len: u64) -> io::Result<()> {
    let rem = (BLOCK - len % BLOCK) % BLOCK;
    w.write_all(&[0u8; BLOCK as usize][..rem as usize])
}

/// Writes `header` for `name`, preceded by a GNU long-name record when the name does not fit.
fn write_header<W: Write>(w: &mut W, header: &mut tar::Header, name: &str) -> io::Result<()> {
    if header.set_path(name).is_err() {
        let bytes = name.as_bytes();
        write_long_record(w, tar::EntryType::GNULongName, bytes)?;
        let field = &mut header.as_old_mut().name;
        let k = bytes.len().min(field.len());
        field.fill(0);
        field[..k].copy_from_slice(&bytes[..k]);
    }
    header.set_cksum();
    w.write_all(header.as_bytes())
}

/// A GNU `././@LongLink` record carrying a name (`L`) or a link target (`K`) too long for the
/// header that follows it.
fn write_long_record<W: Write>(w: &mut W, kind: tar::EntryType, bytes: &[u8]) -> io::Result<()> {
    let mut long = tar::Header::new_gnu();
    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long.set_mode(0o644);
    long.set_mtime(0);
    long.set_size(bytes.len() as u64 + 1);
    long.set_entry_type(kind);
    long.set_cksum();
    w.write_all(long.as_bytes())?;
    w.write_all(bytes)?;
    w.write_all(&[0])?;
    pad_to_block(w, bytes.len() as u64 + 1)
}

/// Sets a symlink's target byte for byte (tar's `append_link` would normalise `a//b`, `x/./y`
/// and `/`), preceded by a GNU long-link record when it does not fit the header.
fn set_link_target<W: Write>(w: &mut W, header: &mut tar::Header, link: &str) -> io::Result<()> {
    let bytes = link.as_bytes();
    if header.set_link_name_literal(bytes).is_err() {
        write_long_record(w, tar::EntryType::GNULongLink, bytes)?;
        let field = &mut header.as_old_mut().linkname;
        let k = bytes.len().min(field.len());
        field.fill(0);
        field[..k].copy_from_slice(&bytes[..k]);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn copy_file<W: Write>(
    w: &mut W,
    file: &mut File,
    size: u64,
    check: Check,
    buf: &mut [u8],
    cancel: &Cancel,
    progress: &dyn Progress,
    abs: &Path,
) -> Result<FileCopy> {
    let mut fc = FileCopy {
        hasher: Sha256::new(),
        checker: Checker::new(check, size),
        short: false,
    };
    let mut remaining = size;
    while remaining > 0 {
        cancel.check()?;
        let want = (buf.len() as u64).min(remaining) as usize;
        let n = if fc.short {
            0
        } else {
            file.read(&mut buf[..want]).at(abs)?
        };
        let n = if n == 0 {
            // The file shrank while being read: keep the tar well-formed, flag the entry.
            fc.short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        fc.hasher.update(&buf[..n]);
        fc.checker.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| io_err(abs, e, cancel))?;
        remaining -= n as u64;
        progress.advance(n as u64);
    }
    pad_to_block(w, size).map_err(|e| io_err(abs, e, cancel))?;
    Ok(fc)
}

/// `<product>-<version>-<UTC time>.tar.zst`.
pub fn default_name(plan: &Plan) -> String {
    let id = &plan.pack.identity;
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "{}-{}-{}.tar.zst",
        id.product,
        id.version,
        now.format(&fmt).unwrap_or_else(|_| "now".into())
    )
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes the snapshot of `plan` to `opts.output`.
pub fn write_snapshot(
    plan: &Plan,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<SnapshotSummary> {
    if plan.liveness.running && !opts.allow_running {
        return Err(Error::Refused {
            path: plan.pack.root.clone(),
            reason: format!(
                "the pack is in use: {}; stop the server first (or --allow-running to take it anyway)",
                plan.liveness.summary()
            ),
        });
    }
    let out = &opts.output;
    if fs::symlink_metadata(out).is_ok() {
        return Err(Error::invalid(
            out,
            "already exists; refusing to overwrite an archive",
        ));
    }
    let dir = fsutil::parent_of(out);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            out.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .at(dir)?;
    // From here on an error drops `tmp`, which deletes the temp file.
    let started = Instant::now();
    let (file, tmp_path) = tmp.into_parts();
    let guard = TempGuard(Some(tmp_path));
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
    let sink = HashWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        count: 0,
        fd,
        flushed: 0,
    };
    let result = write_body(plan, opts, sink, progress, cancel);
    // On error `guard` is dropped, which removes the temp file.
    let (sink, stats) = result?;
    let HashWriter {
        inner,
        hasher,
        count,
        ..
    } = sink;
    let file = inner.into_inner().map_err(|e| e.into_error()).at(out)?;
    file.sync_all().at(out)?;
    drop(file);
    let digest = hex::encode(hasher.finalize());
    let tmp_path = guard.path();
    fs::rename(&tmp_path, out).at(out)?;
    guard.disarm();
    let sidecar = sidecar_path(out);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let side_res = fsutil::write_atomic(&sidecar, sha256sum_line(&digest, &name).as_bytes(), 0o600);
    if let Err(e) = side_res {
        // No half-made pair: an archive without its sidecar is removed with the error.
        let _ = fs::remove_file(out);
        return Err(e);
    }
    fsutil::fsync_dir(dir)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut warnings: Vec<String> = plan.warnings.iter().map(|w| w.message.clone()).collect();
    if opts.allow_running && plan.liveness.running {
        warnings.insert(
            0,
            format!(
                "taken while the pack was in use (--allow-running): {}",
                plan.liveness.summary()
            ),
        );
    }
    let id = &plan.pack.identity;
    Ok(SnapshotSummary {
        archive: out.clone(),
        sidecar,
        archive_sha256: digest,
        product: id.product.clone(),
        version: id.version.to_string(),
        manifest: plan.manifest.clone(),
        files: stats.files,
        dirs: stats.dirs,
        symlinks: stats.symlinks,
        bytes_in: stats.bytes_in,
        bytes_out: count,
        ratio: if count > 0 {
            stats.bytes_in as f64 / count as f64
        } else {
            0.0
        },
        seconds,
        mib_per_s: stats.bytes_in as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        allow_running: opts.allow_running && plan.liveness.running,
        baseline: opts.baseline,
        changed_while_reading: stats.changed,
        corrupt: stats.corrupt,
        warnings,
    })
}

pub fn sidecar_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Removes the temp file unless disarmed.
struct TempGuard(Option<tempfile::TempPath>);

impl TempGuard {
    fn path(&self) -> PathBuf {
        self.0.as_ref().map(|p| p.to_path_buf()).unwrap_or_default()
    }
    fn disarm(mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.keep();
        }
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        // TempPath deletes its file when dropped.
        self.0.take();
    }
}

#[derive(Default)]
struct Stats {
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes_in: u64,
    changed: Vec<String>,
    corrupt: Vec<CorruptRecord>,
}

pub(crate) fn snapshot_meta(plan: &Plan, allow_running: bool) -> SnapshotMeta {
    let id = &plan.pack.identity;
    SnapshotMeta {
        format: FORMAT_VERSION,
        tool: format!("carryover {}", env!("CARGO_PKG_VERSION")),
        created: now_rfc3339(),
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        source: plan.pack.root.clone(),
        product: id.product.clone(),
        product_name: id.product_name.clone(),
        version: id.version.to_string(),
        update_level: id.update_level,
        flavour: id.flavour.clone(),
        h2_engine: plan.pack.engines.h2.as_ref().map(|j| j.version.to_string()),
        lucene_major: plan.lucene_major,
        manifest: ManifestRecord {
            name: plan.manifest_full.name.clone(),
            origin: plan.manifest_origin.clone(),
            text: plan.manifest_full.text.clone(),
        },
        rules: plan
            .rules
            .iter()
            .map(|r| RuleRecord {
                name: r.name.clone(),
                kind: r.kind,
                strategy: r.strategy,
                required: r.required,
                travels_with: r.travels_with.clone(),
                path: r.path.clone(),
                status: r.status,
                files: r.files,
                bytes: r.bytes,
                h2_database: r.h2.as_ref().map(|h| h.database.clone()),
                h2_format: r.h2.as_ref().and_then(|h| h.format),
            })
            .collect(),
        allow_running: allow_running && plan.liveness.running,
        running_evidence: plan
            .liveness
            .evidence
            .iter()
            .filter(|e| e.counts())
            .map(|e| e.to_string())
            .collect(),
        warnings: plan.warnings.iter().map(|w| w.message.clone()).collect(),
        baseline: false,
        profiled: plan.pack.profile.is_profiled(),
    }
}

fn meta_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    h
}

fn path_str(rel: &Path) -> Result<&str> {
    rel.to_str().ok_or_else(|| {
        Error::invalid(
            rel,
            "file name is not valid UTF-8; carryover cannot index it",
        )
    })
}

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

fn write_body<W: Write>(
    plan: &Plan,
    opts: &SnapshotOptions,
    sink: W,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(W, Stats)> {
    let out = &opts.output;
    let mut enc = zstd::stream::Encoder::new(sink, opts.level).at(out)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    } else {
        opts.threads
    };
    enc.include_checksum(true).at(out)?;
    // Compression runs in worker threads even with one worker, so reading and hashing in this
    // thread overlap with it. Smaller jobs keep memory flat (about 100 MiB at 2 workers).
    enc.multithread(threads.max(1)).at(out)?;
    enc.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))
        .at(out)?;
    let mut tar = tar::Builder::new(enc);
    tar.mode(tar::HeaderMode::Complete);

    let mut meta = snapshot_meta(plan, opts.allow_running);
    meta.baseline = opts.baseline;
    let meta_bytes = serde_json::to_vec_pretty(&meta).expect("serialisable");
    tar.append_data(
        &mut meta_header(meta_bytes.len() as u64),
        SNAPSHOT_JSON,
        &meta_bytes[..],
    )
    .at(out)?;

    let total: u64 = plan.entries().map(|e| e.size()).sum();
    progress.begin(total, plan.entries().count() as u64);
    let mut stats = Stats::default();
    let mut spool = Spool::new(fsutil::parent_of(out))?;
    let root = &plan.pack.root;
    let mut buf = vec![0u8; 1 << 20];
    for entry in plan.entries() {
        cancel.check()?;
        let rel = &entry.rel;
        let name = path_str(rel)?;
        let abs = root.join(rel);
        let rule = &plan.rules[entry.rule];
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        match &entry.kind {
            EntryKind::Dir => {
                let meta = fs::symlink_metadata(&abs).at(&abs)?;
                set_owner(&mut header, &meta);
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mtime(meta.mtime().max(0) as u64);
                tar.append_data(&mut header, format!("{name}/"), io::empty())
                    .at(out)?;
                stats.dirs += 1;
                spool.entry(&IndexEntry {
                    path: name.to_string(),
                    kind: EntryType::Dir,
                    size: 0,
                    mode: entry.mode,
                    mtime: meta.mtime(),
                    sha256: None,
                    link: None,
                    rule: rule.name.clone(),
                    h2_format: None,
                })?;
            }
            EntryKind::Symlink { target } => {
                let meta = fs::symlink_metadata(&abs).at(&abs)?;
                set_owner(&mut header, &meta);
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mtime(meta.mtime().max(0) as u64);
                let link = target
                    .to_str()
                    .ok_or_else(|| Error::invalid(&abs, "symlink target is not valid UTF-8"))?;
                set_link_target(tar.get_mut(), &mut header, link).at(out)?;
                write_header(tar.get_mut(), &mut header, name).at(out)?;
                stats.symlinks += 1;
                spool.entry(&IndexEntry {
                    path: name.to_string(),
                    kind: EntryType::Symlink,
                    size: 0,
                    mode: entry.mode,
                    mtime: meta.mtime(),
                    sha256: None,
                    link: Some(link.to_string()),
                    rule: rule.name.clone(),
                    h2_format: None,
                })?;
            }
            EntryKind::File { .. } => {
                let file = File::open(&abs).at(&abs)?;
                let before = file.metadata().at(&abs)?;
                let size = before.len();
                set_owner(&mut header, &before);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                header.set_mode(before.mode() & 0o7777);
                header.set_mtime(before.mtime().max(0) as u64);
                let check = match rule.kind {
                    Kind::Lucene => Check::Lucene,
                    Kind::H2 => Check::MvStore,
                    _ => Check::None,
                };
                let mut file = file;
                write_header(tar.get_mut(), &mut header, name).at(out)?;
                let src = copy_file(
                    tar.get_mut(),
                    &mut file,
                    size,
                    check,
                    &mut buf,
                    cancel,
                    progress,
                    &abs,
                )?;
                let after = file.metadata().at(&abs)?;
                let changed = src.short
                    || after.len() != size
                    || after.mtime() != before.mtime()
                    || after.mtime_nsec() != before.mtime_nsec();
                if changed {
                    if !opts.allow_running {
                        return Err(Error::Invalid {
                            path: abs,
                            message:
                                "changed while it was read (size or mtime); is a server running? \
                                      stop it, or take the snapshot with --allow-running"
                                    .into(),
                        });
                    }
                    stats.changed.push(name.to_string());
                }
                if let Some(problem) = src.checker.finish() {
                    if !opts.allow_corrupt {
                        return Err(Error::Corrupt {
                            path: abs,
                            message: format!("{problem}; the file is damaged (--allow-corrupt records it instead)"),
                        });
                    }
                    stats.corrupt.push(CorruptRecord {
                        path: name.to_string(),
                        problem,
                    });
                }
                let digest = hex::encode(src.hasher.finalize());
                spool.sum(&digest, name)?;
                stats.files += 1;
                stats.bytes_in += size;
                progress.file_done();
                spool.entry(&IndexEntry {
                    path: name.to_string(),
                    kind: EntryType::File,
                    size,
                    mode: before.mode() & 0o7777,
                    mtime: before.mtime(),
                    sha256: Some(digest),
                    link: None,
                    rule: rule.name.clone(),
                    h2_format: rule
                        .h2
                        .as_ref()
                        .filter(|h| h.file.as_deref() == Some(rel.as_path()))
                        .and_then(|h| h.format),
                })?;
            }
        }
    }
    let ((index, index_len), (sums, sums_len)) = spool.finish(&stats.changed, &stats.corrupt)?;
    tar.append_data(&mut meta_header(index_len), INDEX_JSON, index)
        .at(out)?;
    tar.append_data(&mut meta_header(sums_len), SHA256SUMS, sums)
        .at(out)?;
    let enc = tar.into_inner().at(out)?;
    let sink = enc.finish().at(out)?;
    progress.finish();
    Ok((sink, stats))
}

/// `index.json` and `SHA256SUMS` spooled to unlinked temp files beside the archive as entries
/// are written, so memory does not grow with the number of files in the pack.
struct Spool {
    dir: PathBuf,
    index: BufWriter<File>,
    sums: BufWriter<File>,
    first: bool,
}

impl Spool {
    fn new(dir: &Path) -> Result<Spool> {
        let index = tempfile::tempfile_in(dir).at(dir)?;
        let sums = tempfile::tempfile_in(dir).at(dir)?;
        let mut s = Spool {
            dir: dir.to_path_buf(),
            index: BufWriter::new(index),
            sums: BufWriter::new(sums),
            first: true,
        };
        write!(s.index, "{{\"format\":{FORMAT_VERSION},\"entries\":[").at(dir)?;
        Ok(s)
    }

    fn entry(&mut self, e: &IndexEntry) -> Result<()> {
        let sep = if self.first { "\n" } else { ",\n" };
        self.first = false;
        self.index.write_all(sep.as_bytes()).at(&self.dir)?;
        serde_json::to_writer(&mut self.index, e)
            .map_err(std::io::Error::from)
            .at(&self.dir)
    }

    fn sum(&mut self, hex: &str, name: &str) -> Result<()> {
        self.sums
            .write_all(sha256sum_line(hex, name).as_bytes())
            .at(&self.dir)
    }

    /// Closes index.json and rewinds both files: (file, length) each.
    fn finish(
        mut self,
        changed: &[String],
        corrupt: &[CorruptRecord],
    ) -> Result<((File, u64), (File, u64))> {
        let dir = self.dir.clone();
        let tail = format!(
            "\n],\"changed_while_reading\":{},\"corrupt\":{}}}\n",
            serde_json::to_string(changed).expect("serialisable"),
            serde_json::to_string(corrupt).expect("serialisable")
        );
        self.index.write_all(tail.as_bytes()).at(&dir)?;
        let rewind = |w: BufWriter<File>| -> Result<(File, u64)> {
            let mut f = w.into_inner().map_err(|e| e.into_error()).at(&dir)?;
            let len = f.stream_position().at(&dir)?;
            f.rewind().at(&dir)?;
            Ok((f, len))
        };
        Ok((rewind(self.index)?, rewind(self.sums)?))
    }
}

fn set_owner(h: &mut tar::Header, meta: &fs::Metadata) {
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
}
