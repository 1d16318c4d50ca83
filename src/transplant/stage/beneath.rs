//! Writes that cannot leave their root: every path is walked one component at a time with
//! `openat(O_NOFOLLOW | O_DIRECTORY)` from a descriptor of the root, and the last component is
//! created, changed or timed through its parent's descriptor without following a symlink. No
//! symlink (the archive's own, or one already in the tree) is ever followed while writing.
//!
//! Plain `openat` per component rather than `openat2` (needs Linux 5.6 and a seccomp-friendly
//! libc path) or `cap-std` (a crate for what is fifty lines of libc): same guarantee, no new
//! dependency.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{IoContext, Result};

/// A directory that writes stay beneath.
pub struct Beneath {
    fd: OwnedFd,
    root: PathBuf,
    /// The last parent directory opened, by path (staging only, where nothing is renamed: one
    /// walk per directory instead of one per entry).
    last: Option<Mutex<Option<Cached>>>,
}

/// A remembered parent directory: its path and descriptor.
type Cached = (String, Arc<OwnedFd>);

/// A parent directory: `None` is the root itself.
type Parent = Option<Arc<OwnedFd>>;

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC)`.
fn open_at(dir: RawFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a valid fd and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    check(fd)?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir_at(dir: RawFd, name: &CString) -> io::Result<OwnedFd> {
    open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)
}

impl Beneath {
    /// Opens `root` (itself not a symlink).
    ///
    /// # Errors
    /// It cannot be opened as a directory.
    pub fn open(root: &Path) -> Result<Beneath> {
        let c = cstr(root.as_os_str().as_bytes()).at(root)?;
        let fd = open_dir_at(libc::AT_FDCWD, &c).at(root)?;
        Ok(Beneath {
            fd,
            root: root.to_path_buf(),
            last: None,
        })
    }

    /// [`Beneath::open`], remembering the last parent directory walked to (for a tree that is
    /// only ever added to, such as staging).
    ///
    /// # Errors
    /// See [`Beneath::open`].
    pub fn open_cached(root: &Path) -> Result<Beneath> {
        let mut b = Beneath::open(root)?;
        b.last = Some(Mutex::new(None));
        Ok(b)
    }

    /// The root's path, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The parent directory of `rel` (opened component by component, creating missing ones
    /// 0755 when `create`) and the last component's name.
    fn parent(&self, rel: &str, create: bool) -> Result<(Parent, CString)> {
        let at = self.root.join(rel);
        let dir_part = rel.rsplit_once('/').map(|(d, _)| d);
        let mut segs: Vec<&str> = rel.split('/').collect();
        let last = cstr(segs.pop().unwrap_or_default().as_bytes()).at(&at)?;
        if let (Some(cache), Some(d)) = (&self.last, dir_part) {
            let hit = cache.lock().ok().and_then(|c| {
                c.as_ref()
                    .filter(|(k, _)| k == d)
                    .map(|(_, fd)| Arc::clone(fd))
            });
            if let Some(fd) = hit {
                return Ok((Some(fd), last));
            }
        }
        let mut cur: Option<OwnedFd> = None;
        for s in segs {
            let name = cstr(s.as_bytes()).at(&at)?;
            let dir = cur.as_ref().map_or(self.fd.as_raw_fd(), |f| f.as_raw_fd());
            let next = match open_dir_at(dir, &name) {
                Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                    // SAFETY: a valid fd and name.
                    match check(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) }) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e).at(&at),
                        _ => open_dir_at(dir, &name),
                    }
                }
                r => r,
            }
            .at(&at)?;
            cur = Some(next);
        }
        let cur = cur.map(Arc::new);
        if let (Some(cache), Some(d), Some(fd)) = (&self.last, dir_part, &cur) {
            if let Ok(mut c) = cache.lock() {
                *c = Some((d.to_string(), Arc::clone(fd)));
            }
        }
        Ok((cur, last))
    }

    fn raw(&self, parent: &Parent) -> RawFd {
        parent
            .as_ref()
            .map_or(self.fd.as_raw_fd(), |f| f.as_raw_fd())
    }

    /// Creates the directory `rel` (and its missing parents); an existing directory is fine.
    ///
    /// # Errors
    /// A component is a symlink or not a directory; it cannot be created.
    pub fn mkdir(&self, rel: &str, mode: u32) -> Result<()> {
        let (p, name) = self.parent(rel, true)?;
        // SAFETY: a valid fd and name.
        match check(unsafe { libc::mkdirat(self.raw(&p), name.as_ptr(), mode as libc::mode_t) }) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => open_dir_at(self.raw(&p), &name)
                .map(drop)
                .at(&self.root.join(rel)),
            r => r.at(&self.root.join(rel)),
        }
    }

    /// Creates the parents of `rel`.
    ///
    /// # Errors
    /// See [`Beneath::mkdir`].
    pub fn make_parents(&self, rel: &str) -> Result<()> {
        self.parent(rel, true).map(drop)
    }

    /// Creates the new file `rel` (mode 0600; it must not exist), for writing.
    ///
    /// # Errors
    /// It exists, or a component is a symlink.
    pub fn create_file(&self, rel: &str) -> Result<File> {
        let (p, name) = self.parent(rel, false)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let fd = open_at(self.raw(&p), &name, flags).at(&self.root.join(rel))?;
        Ok(File::from(fd))
    }

    /// Creates the symlink `rel` pointing to `target`.
    ///
    /// # Errors
    /// It exists, or a component is a symlink.
    pub fn symlink(&self, rel: &str, target: &str) -> Result<()> {
        let at = self.root.join(rel);
        let (p, name) = self.parent(rel, false)?;
        let t = cstr(target.as_bytes()).at(&at)?;
        // SAFETY: valid names and fd.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.raw(&p), name.as_ptr()) }).at(&at)
    }

    /// Sets the owner of `rel`, not following a symlink.
    ///
    /// # Errors
    /// `fchownat` failed.
    pub fn chown(&self, rel: &str, uid: u32, gid: u32) -> Result<()> {
        let (p, name) = self.parent(rel, false)?;
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        // SAFETY: valid fd and name.
        check(unsafe { libc::fchownat(self.raw(&p), name.as_ptr(), uid, gid, flags) })
            .at(&self.root.join(rel))
    }

    /// Sets the mode of the file or directory `rel` (through a descriptor opened without
    /// following a symlink: `fchmodat` has no working no-follow flag on Linux).
    ///
    /// # Errors
    /// It is a symlink, or the mode cannot be set.
    pub fn chmod(&self, rel: &str, mode: u32) -> Result<()> {
        let at = self.root.join(rel);
        let (p, name) = self.parent(rel, false)?;
        let fd = open_at(self.raw(&p), &name, libc::O_PATH).at(&at)?;
        // An O_PATH fd cannot fchmod; its /proc alias can, and it names that very inode.
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        // SAFETY: fstat into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }).at(&at)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(io::Error::from_raw_os_error(libc::ELOOP)).at(&at);
        }
        let c = cstr(proc.as_bytes()).at(&at)?;
        // SAFETY: a valid name.
        check(unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) }).at(&at)
    }

    /// Sets the mtime (and atime) of `rel`, not following a symlink.
    ///
    /// # Errors
    /// `utimensat` failed.
    pub fn set_mtime(&self, rel: &str, secs: i64, nsec: u32) -> Result<()> {
        let (p, name) = self.parent(rel, false)?;
        let t = libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: nsec as libc::c_long,
        };
        let times = [t, t];
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        // SAFETY: valid fd, name and a two-element array.
        check(unsafe { libc::utimensat(self.raw(&p), name.as_ptr(), times.as_ptr(), flags) })
            .at(&self.root.join(rel))
    }

    /// Whether `rel` is a directory (not a symlink to one); false when it cannot be reached
    /// without following a symlink.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.lstat(rel)
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    /// Whether anything (a dangling symlink included) is at `rel`.
    pub fn exists(&self, rel: &str) -> bool {
        self.lstat(rel).is_some()
    }

    fn lstat(&self, rel: &str) -> Option<libc::stat> {
        let (p, name) = self.parent(rel, false).ok()?;
        // SAFETY: fstatat into a zeroed struct with a valid fd and name.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        let rc = unsafe { libc::fstatat(self.raw(&p), name.as_ptr(), &mut st, flags) };
        (rc == 0).then_some(st)
    }

    /// Renames `from` to `to` (both below the root; `to`'s parents are created), then fsyncs
    /// the directory `sync` names the parent of.
    ///
    /// # Errors
    /// A component is a symlink; the rename or the fsync failed (naming both paths).
    pub fn rename(&self, from: &str, to: &str, sync: &str) -> Result<()> {
        let (fp, fname) = self.parent(from, false)?;
        let (tp, tname) = self.parent(to, true)?;
        let (f, t) = (self.raw(&fp), self.raw(&tp));
        // SAFETY: valid fds and names.
        check(unsafe { libc::renameat(f, fname.as_ptr(), t, tname.as_ptr()) }).map_err(|e| {
            crate::error::Error::Io {
                path: self.root.join(from),
                source: io::Error::new(
                    e.kind(),
                    format!("moving to {}: {e}", self.root.join(to).display()),
                ),
            }
        })?;
        let (sp, _) = self.parent(sync, false)?;
        // SAFETY: a valid fd.
        check(unsafe { libc::fsync(self.raw(&sp)) }).at(&self.root.join(sync))
    }
}
