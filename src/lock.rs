//! The pack lock: one writer per pack, an exclusive `flock` on `PACK/.carryover/lock`, taken
//! without waiting.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Held for the life of a writing command; released on drop (or when the process dies).
pub struct PackLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// `PACK/.carryover`: carryover's own records in a pack.
pub fn carryover_dir(pack: &Path) -> PathBuf {
    pack.join(".carryover")
}

impl PackLock {
    /// Takes the pack's exclusive lock without waiting.
    ///
    /// # Errors
    /// [`Error::Refused`] (exit 6) when another carryover holds it; I/O errors creating it.
    pub fn acquire(pack: &Path) -> Result<PackLock> {
        let dir = carryover_dir(pack);
        if !dir.is_dir() {
            // Creating .carryover touches the pack root's mtime; put it back so carryover's own
            // bookkeeping never shows up as a change to the pack.
            let root_mtime = fs::metadata(pack)
                .ok()
                .map(|m| filetime::FileTime::from_last_modification_time(&m));
            fs::create_dir_all(&dir).at(&dir)?;
            if let Some(t) = root_mtime {
                filetime::set_file_mtime(pack, t).at(pack)?;
            }
        }
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        // SAFETY: a valid open fd.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::Refused {
                path: pack.to_path_buf(),
                reason: format!(
                    "another carryover is writing this pack{} (lock {})",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                    path.display()
                ),
            });
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(PackLock { _file: file, path })
    }
}
