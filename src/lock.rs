//! The pack lock: one writer or many readers per pack. Readers and writers `flock` the pack's
//! root directory itself (shared or exclusive), so a reader never has to create anything in a
//! pack to lock it; a writer first takes an exclusive `flock` on `PACK/.carryover/lock` (the
//! writers' lock of earlier versions) and records its pid there for the refusal message. Never
//! waits: a held lock is a refusal (exit 6).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Held for the life of a command; released on drop (or when the process dies).
#[derive(Debug)]
pub struct PackLock {
    dir: File,
    /// `.carryover/lock`, held by a writer.
    _writer: Option<File>,
    /// The pack's root directory.
    pub pack: PathBuf,
    /// Exclusive (a writer) or shared (a reader).
    pub exclusive: bool,
}

/// `PACK/.carryover`: carryover's own records in a pack.
pub fn carryover_dir(pack: &Path) -> PathBuf {
    pack.join(".carryover")
}

/// Creates `PACK/.carryover` (mode 0700: it holds backups of databases and keystores) without
/// changing the pack root's mtime, so carryover's bookkeeping never shows as a change to the pack.
///
/// # Errors
/// The directory cannot be created, or the root's mtime cannot be put back.
pub fn ensure_carryover_dir(pack: &Path) -> Result<PathBuf> {
    let dir = carryover_dir(pack);
    if !dir.is_dir() {
        let root_mtime = fs::metadata(pack)
            .ok()
            .map(|m| filetime::FileTime::from_last_modification_time(&m));
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .at(&dir)?;
        if let Some(t) = root_mtime {
            filetime::set_file_mtime(pack, t).at(pack)?;
        }
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).at(&dir)?;
    Ok(dir)
}

impl PackLock {
    /// Takes the pack's exclusive lock without waiting (a writing command).
    ///
    /// # Errors
    /// [`Error::Refused`] (exit 6) when another carryover reads or writes the pack; I/O errors.
    pub fn acquire(pack: &Path) -> Result<PackLock> {
        let path = ensure_carryover_dir(pack)?.join("lock");
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                return Err(Error::Refused {
                    path: pack.to_path_buf(),
                    reason: holder_message(pack, "writing"),
                })
            }
            Err(e) => return Err(e).at(&path),
        }
        let mut lock = PackLock::take(pack, true)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).at(&path)?;
        let _ = f.set_len(0);
        let _ = writeln!(f, "{}", std::process::id());
        lock._writer = Some(f);
        Ok(lock)
    }

    /// Takes the pack's shared lock without waiting (a reading command): many readers at once,
    /// none while a writer holds it. Creates nothing in the pack.
    ///
    /// # Errors
    /// [`Error::Refused`] (exit 6) when a writer holds the pack; I/O errors opening its root.
    pub fn shared(pack: &Path) -> Result<PackLock> {
        PackLock::take(pack, false)
    }

    /// Turns a held exclusive lock into a shared one (after recovery, before reading).
    ///
    /// # Errors
    /// The OS refused the conversion.
    pub fn downgrade(&mut self) -> Result<()> {
        flock(&self.dir, libc::LOCK_SH).at(&self.pack)?;
        self.exclusive = false;
        Ok(())
    }

    fn take(pack: &Path, exclusive: bool) -> Result<PackLock> {
        let dir = File::open(pack).at(pack)?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        match flock(&dir, op | libc::LOCK_NB) {
            Ok(()) => Ok(PackLock {
                dir,
                _writer: None,
                pack: pack.to_path_buf(),
                exclusive,
            }),
            // Wanting to write, a held root means readers; wanting to read, a writer.
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Err(Error::Refused {
                path: pack.to_path_buf(),
                reason: holder_message(pack, if exclusive { "reading" } else { "writing" }),
            }),
            Err(e) => Err(e).at(pack),
        }
    }
}

fn flock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a valid open fd.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Who holds the lock: `doing` is what the holder does; a writer's pid comes from its file.
fn holder_message(pack: &Path, doing: &str) -> String {
    let path = carryover_dir(pack).join("lock");
    let pid = fs::read_to_string(&path).unwrap_or_default();
    let pid = pid.trim();
    let who = if pid.is_empty() || doing != "writing" {
        String::new()
    } else {
        format!(" (pid {pid})")
    };
    format!(
        "another carryover is {doing} this pack{who} (lock {})",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writers_exclude() {
        let d = tempfile::tempdir().unwrap();
        let r1 = PackLock::shared(d.path()).unwrap();
        let r2 = PackLock::shared(d.path()).unwrap();
        assert!(
            !carryover_dir(d.path()).exists(),
            "a reader creates nothing"
        );
        let e = PackLock::acquire(d.path()).unwrap_err();
        assert_eq!(e.exit_code(), 6, "{e}");
        assert!(e.to_string().contains("reading this pack"), "{e}");
        drop((r1, r2));
        let w = PackLock::acquire(d.path()).unwrap();
        let mode = fs::metadata(carryover_dir(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let e = PackLock::shared(d.path()).unwrap_err();
        assert!(e.to_string().contains("writing this pack"), "{e}");
        assert!(
            e.to_string().contains(&std::process::id().to_string()),
            "{e}"
        );
        let mut w = w;
        w.downgrade().unwrap();
        let _r = PackLock::shared(d.path()).unwrap();
    }
}
