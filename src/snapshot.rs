//! The `snapshot` command: a pack's state into a self-describing `.tar.zst`.
//!
//! Owns the command around the archive: the refusal while a server runs, the temp file beside
//! the target (removed on any error), the hashing sink that computes the archive's digest on
//! the compressed bytes as they are written, fsync + rename, the `NAME.sha256` sidecar, and
//! the [`SnapshotSummary`]. The bytes inside are `crate::archive`'s (writer.rs and below).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempPath};

use crate::archive::format::{
    now_rfc3339, sha256sum_line, sidecar_path, CorruptRecord, ManifestRecord, RuleRecord,
    SnapshotMeta, FORMAT_VERSION,
};
use crate::archive::writer::{ArchiveWriter, WriteStats};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::plan::{Plan, RulePlan};
use crate::progress::{Cancel, Progress};

/// How to write a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// The archive to create (it must not exist).
    pub output: PathBuf,
    /// zstd level (1..=19).
    pub level: i32,
    /// zstd worker threads (0 = one per core).
    pub threads: u32,
    /// Take the snapshot even though a server runs on the pack (recorded in the archive).
    pub allow_running: bool,
    /// Record damaged index/database files instead of failing.
    pub allow_corrupt: bool,
    /// Mark the snapshot as the pristine baseline of its version.
    pub baseline: bool,
}

/// What a snapshot wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSummary {
    /// The archive written.
    pub archive: PathBuf,
    /// Its `NAME.sha256` sidecar.
    pub sidecar: PathBuf,
    /// SHA-256 of the archive file.
    pub archive_sha256: String,
    /// Product id of the pack.
    pub product: String,
    /// Product version of the pack.
    pub version: String,
    /// The manifest used.
    pub manifest: String,
    /// Regular files carried.
    pub files: u64,
    /// Directories carried.
    pub dirs: u64,
    /// Symlinks carried.
    pub symlinks: u64,
    /// Content bytes read from the pack.
    pub bytes_in: u64,
    /// Size of the archive.
    pub bytes_out: u64,
    /// `bytes_in / bytes_out`.
    pub ratio: f64,
    /// Wall time of the write.
    pub seconds: f64,
    /// Read throughput.
    pub mib_per_s: f64,
    /// Taken while a server ran (`--allow-running` was needed).
    pub allow_running: bool,
    /// Marked as the baseline of its version.
    pub baseline: bool,
    /// Files that changed while read (`--allow-running`).
    pub changed_while_reading: Vec<String>,
    /// Files recorded as damaged (`--allow-corrupt`).
    pub corrupt: Vec<CorruptRecord>,
    /// Warnings to read before trusting the archive.
    pub warnings: Vec<String>,
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

/// Writes the snapshot of `plan` to `opts.output` and its sidecar beside it.
///
/// # Errors
/// [`Error::Refused`] when a server runs on the pack without `allow_running`;
/// [`Error::Invalid`] when the output exists; any error of the archive writer (I/O, a file
/// that changed or is damaged, [`Error::Interrupted`]). No archive or temp file is left behind
/// on error.
pub fn write_snapshot(
    plan: &Plan,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<SnapshotSummary> {
    refuse_if_running(plan, opts.allow_running)?;
    let out = &opts.output;
    if fs::symlink_metadata(out).is_ok() {
        return Err(Error::invalid(
            out,
            "already exists; refusing to overwrite an archive",
        ));
    }
    let started = Instant::now();
    // From here on an error drops the temp file's owner (`tmp`, then the sink), which deletes it.
    let stale = remove_stale_temps(fsutil::parent_of(out));
    let tmp = temp_beside(out)?;
    let tmp_path = tmp.path().to_path_buf();
    let mut meta = meta_of(plan, opts.allow_running);
    meta.baseline = opts.baseline;
    meta.allow_corrupt = Some(opts.allow_corrupt);
    let writer = ArchiveWriter {
        plan,
        output: out,
        level: opts.level,
        threads: opts.threads,
        allow_changed: opts.allow_running,
        allow_corrupt: opts.allow_corrupt,
        progress,
        cancel,
    };
    let (sink, stats) = writer.write(&meta, HashSink::new(tmp)).inspect_err(|e| {
        if matches!(e, Error::Interrupted) {
            // The writer let go of the temp file without dropping it (see there).
            let _ = fs::remove_file(&tmp_path);
        }
    })?;
    let (digest, bytes_out) = sink.persist(out)?;
    write_sidecar(out, &digest)?;
    fsutil::fsync_dir(fsutil::parent_of(out))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut s = summary(plan, opts, digest, bytes_out, stats, seconds);
    s.warnings.extend(stale);
    Ok(s)
}

/// The `snapshot.json` record of `plan` (not a baseline; the caller sets that).
pub fn meta_of(plan: &Plan, allow_running: bool) -> SnapshotMeta {
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
        rules: plan.rules.iter().map(rule_record).collect(),
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
        allow_corrupt: None,
    }
}

fn rule_record(r: &RulePlan) -> RuleRecord {
    RuleRecord {
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
    }
}

fn refuse_if_running(plan: &Plan, allow_running: bool) -> Result<()> {
    if plan.liveness.running && !allow_running {
        return Err(Error::Refused {
            path: plan.pack.root.clone(),
            reason: format!(
                "the pack is in use: {}; stop the server first (or --allow-running to take it anyway)",
                plan.liveness.summary()
            ),
        });
    }
    Ok(())
}

/// `.NAME.XXXXXX.tmp` beside `out`, mode 0600; deleted when dropped unless persisted.
/// The temp file's name is `.NAME.carryover-PID.RANDOM.tmp`: the pid tells a later snapshot
/// whether its writer is gone.
fn temp_beside(out: &Path) -> Result<NamedTempFile> {
    let dir = fsutil::parent_of(out);
    tempfile::Builder::new()
        .prefix(&format!(
            ".{}.carryover-{}.",
            file_name(out),
            std::process::id()
        ))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .at(dir)
}

/// Removes temp files of carryover's own naming in `dir` whose snapshot process is gone (killed
/// by SIGKILL or a crash); names each one removed.
fn remove_stale_temps(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = stale_pid(&name) else {
            continue;
        };
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive && fs::remove_file(e.path()).is_ok() {
            removed.push(format!(
                "removed {}, left by an interrupted snapshot (pid {pid})",
                e.path().display()
            ));
        }
    }
    removed
}

/// The pid in `.NAME.carryover-PID.RANDOM.tmp`.
fn stale_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = rest.rsplit_once(".carryover-")?;
    let (pid, _random) = tail.split_once('.')?;
    pid.parse().ok().filter(|&p| p > 0)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes the sidecar; on failure removes the archive too, so there is never a half-made pair.
fn write_sidecar(out: &Path, digest: &str) -> Result<()> {
    let line = sha256sum_line(digest, &file_name(out));
    let res = fsutil::write_atomic(&sidecar_path(out), line.as_bytes(), 0o600);
    if res.is_err() {
        let _ = fs::remove_file(out);
    }
    res
}

fn summary(
    plan: &Plan,
    opts: &SnapshotOptions,
    digest: String,
    bytes_out: u64,
    stats: WriteStats,
    seconds: f64,
) -> SnapshotSummary {
    let running = plan.liveness.running;
    let mut warnings: Vec<String> = plan.warnings.iter().map(|w| w.message.clone()).collect();
    if opts.allow_running && running {
        warnings.insert(
            0,
            format!(
                "taken while the pack was in use (--allow-running): {}",
                plan.liveness.summary()
            ),
        );
    }
    for d in &stats.dirs_changed {
        warnings.push(format!(
            "{d} changed while the snapshot ran: entries added or removed since it was read are not in the archive (stop the server and snapshot again)"
        ));
    }
    let id = &plan.pack.identity;
    let out = &opts.output;
    SnapshotSummary {
        archive: out.clone(),
        sidecar: sidecar_path(out),
        archive_sha256: digest,
        product: id.product.clone(),
        version: id.version.to_string(),
        manifest: plan.manifest.clone(),
        files: stats.files,
        dirs: stats.dirs,
        symlinks: stats.symlinks,
        bytes_in: stats.bytes_in,
        bytes_out,
        ratio: if bytes_out > 0 {
            stats.bytes_in as f64 / bytes_out as f64
        } else {
            0.0
        },
        seconds,
        mib_per_s: stats.bytes_in as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        allow_running: opts.allow_running && running,
        baseline: opts.baseline,
        changed_while_reading: stats.changed,
        corrupt: stats.corrupt,
        warnings,
    }
}

/// How far ahead of the final fsync write-back is started, in steps of this size.
const WRITEBACK_STEP: u64 = 32 << 20;

/// The archive's sink: a buffered temp file that hashes and counts the compressed bytes as
/// they pass, and starts write-back as the archive grows so the final fsync is short. Dropping
/// it deletes the temp file.
struct HashSink {
    inner: BufWriter<File>,
    temp: TempPath,
    hasher: Sha256,
    count: u64,
    /// The temp file's fd and how far write-back has been started.
    fd: RawFd,
    flushed: u64,
}

impl HashSink {
    fn new(tmp: NamedTempFile) -> HashSink {
        let (file, temp) = tmp.into_parts();
        HashSink {
            fd: file.as_raw_fd(),
            inner: BufWriter::with_capacity(1 << 20, file),
            temp,
            hasher: Sha256::new(),
            count: 0,
            flushed: 0,
        }
    }

    /// Flushes, fsyncs and renames the temp file to `out`: (digest as hex, bytes written).
    fn persist(self, out: &Path) -> Result<(String, u64)> {
        let file = self
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .at(out)?;
        file.sync_all().at(out)?;
        drop(file);
        self.temp.persist(out).map_err(|e| e.error).at(out)?;
        Ok((hex::encode(self.hasher.finalize()), self.count))
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count - self.flushed >= 2 * WRITEBACK_STEP {
            // Start write-back of a range already handed to the kernel (the BufWriter above the
            // file holds at most 1 MiB); errors surface at the final fsync.
            // SAFETY: a valid fd, owned by `inner` for the life of `self`.
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
