//! The running-server gate: is a server (or anything else) using this pack right now?
//!
//! Evidence that counts: a live pid in `wso2carbon.pid` whose command line holds
//! `-Dcarbon.home=<pack>`; an fcntl lock held on a database file or on a Lucene `write.lock`
//! (probed with `F_GETLK`, never taken); a `*.lock.db` written in the last seconds. A stale pid
//! file or a leftover `write.lock` alone means nothing.

use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// A `*.lock.db` written this recently belongs to a database being opened right now. H2 does not
/// refresh the file while it holds it (its watchdog only rewrites it when another process touches
/// it), so an older one is judged by the server port it names, if any.
const FRESH_LOCK_DB: Duration = Duration::from_secs(30);

/// One finding about whether a server holds the pack.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// `wso2carbon.pid` names a live process running this pack.
    LiveServer {
        /// The process.
        pid: i32,
        /// The pid file.
        pid_file: PathBuf,
    },
    /// `wso2carbon.pid` names a process that is gone, or one running something else.
    StalePidFile {
        /// The pid it names.
        pid: i32,
        /// The pid file.
        pid_file: PathBuf,
        /// What was found instead.
        note: String,
    },
    /// Another process holds an OS lock on a file of the pack.
    LockHeld {
        /// The locked file.
        path: PathBuf,
        /// The holder, when the OS says.
        pid: Option<i32>,
    },
    /// A lock file H2 keeps fresh while the database is open.
    FreshLockDb {
        /// The `*.lock.db`.
        path: PathBuf,
        /// How old it is.
        age_secs: u64,
    },
    /// An H2 `AUTO_SERVER` lock file names a server port that accepts connections.
    LockDbServer {
        /// The `*.lock.db`.
        path: PathBuf,
        /// The `host:port` that answered.
        server: String,
    },
    /// A live process whose command line says `-Dcarbon.home=<this pack>` (no pid file needed).
    LiveProcess {
        /// The process.
        pid: i32,
    },
    /// A file whose lock could not be probed: whether it is locked is unknown.
    LockUnknown {
        /// The file.
        path: PathBuf,
        /// Why it could not be probed.
        error: String,
    },
}

impl Evidence {
    /// Whether this evidence says a server is running (a stale pid file does not).
    pub fn counts(&self) -> bool {
        !matches!(
            self,
            Evidence::StalePidFile { .. } | Evidence::LockUnknown { .. }
        )
    }
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::LiveServer { pid, pid_file } => {
                write!(
                    f,
                    "{} names live process {pid} running this pack",
                    pid_file.display()
                )
            }
            Evidence::StalePidFile {
                pid,
                pid_file,
                note,
            } => {
                write!(
                    f,
                    "{} names pid {pid}: {note} (stale, ignored)",
                    pid_file.display()
                )
            }
            Evidence::LiveProcess { pid } => {
                write!(f, "process {pid} runs this pack (-Dcarbon.home)")
            }
            Evidence::LockUnknown { path, error } => {
                write!(
                    f,
                    "cannot tell whether {} is locked: {error}",
                    path.display()
                )
            }
            Evidence::LockHeld { path, pid: Some(p) } => {
                write!(f, "{} is locked by process {p}", path.display())
            }
            Evidence::LockHeld { path, pid: None } => {
                write!(f, "{} is locked by another process", path.display())
            }
            Evidence::LockDbServer { path, server } => {
                write!(
                    f,
                    "{} names H2 server {server}, which accepts connections",
                    path.display()
                )
            }
            Evidence::FreshLockDb { path, age_secs } => {
                write!(
                    f,
                    "{} was written {age_secs}s ago (H2 holds it open)",
                    path.display()
                )
            }
        }
    }
}

/// Whether a server runs on a pack, with the evidence either way.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Liveness {
    /// A server holds the pack.
    pub running: bool,
    /// Everything found, counting or not.
    pub evidence: Vec<Evidence>,
}

impl Liveness {
    /// Probes the pid file of `root` and each of `lock_probes` (absolute paths; missing ones skipped).
    pub fn probe(root: &Path, lock_probes: &[PathBuf]) -> Liveness {
        let mut evidence = Vec::new();
        let pid_file = root.join("wso2carbon.pid");
        if let Some(pid) = read_pid(&pid_file) {
            let rel = PathBuf::from("wso2carbon.pid");
            match process_runs_pack(pid, root) {
                PidState::RunsPack => evidence.push(Evidence::LiveServer { pid, pid_file: rel }),
                PidState::Gone => evidence.push(Evidence::StalePidFile {
                    pid,
                    pid_file: rel,
                    note: "no such process".into(),
                }),
                PidState::Other => evidence.push(Evidence::StalePidFile {
                    pid,
                    pid_file: rel,
                    note: "that process does not run this pack".into(),
                }),
            }
        }
        if !evidence
            .iter()
            .any(|e| matches!(e, Evidence::LiveServer { .. }))
        {
            evidence.extend(
                processes_running(root)
                    .into_iter()
                    .map(|pid| Evidence::LiveProcess { pid }),
            );
        }
        for p in lock_probes {
            match lock_holder(p) {
                LockProbe::Held(pid) => evidence.push(Evidence::LockHeld {
                    path: rel_to(root, p),
                    pid,
                }),
                LockProbe::Unknown(error) => evidence.push(Evidence::LockUnknown {
                    path: rel_to(root, p),
                    error,
                }),
                LockProbe::Unlocked | LockProbe::Absent => {}
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".lock.db") {
                if let Some(age) = age(p) {
                    if age < FRESH_LOCK_DB {
                        evidence.push(Evidence::FreshLockDb {
                            path: rel_to(root, p),
                            age_secs: age.as_secs(),
                        });
                    }
                }
                // H2 only rewrites the lock file when someone else touches it, so its age says
                // little; with AUTO_SERVER it names a port the holder listens on.
                if let Some(server) = lock_db_server(p) {
                    if server_listens(&server) {
                        evidence.push(Evidence::LockDbServer {
                            path: rel_to(root, p),
                            server,
                        });
                    }
                }
            }
        }
        let running = evidence.iter().any(Evidence::counts);
        Liveness { running, evidence }
    }

    /// One line naming the evidence that counts.
    pub fn summary(&self) -> String {
        self.evidence
            .iter()
            .filter(|e| e.counts())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn rel_to(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn age(p: &Path) -> Option<Duration> {
    let m = fs::metadata(p).ok()?.modified().ok()?;
    Some(
        SystemTime::now()
            .duration_since(m)
            .unwrap_or(Duration::ZERO),
    )
}

/// `server=host:port` from an H2 lock file (Java properties; `:` may be escaped as `\:`).
fn lock_db_server(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > 64 * 1024 {
        return None;
    }
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server="))
        .map(|v| v.replace("\\:", ":").replace("\\", ""))
        .filter(|v| !v.is_empty())
}

fn server_listens(server: &str) -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(addrs) = server.to_socket_addrs() else {
        return false;
    };
    addrs
        .take(2)
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// The pid file holds digits, a newline and NUL padding; parse the leading digits only.
fn read_pid(path: &Path) -> Option<i32> {
    let bytes = fs::read(path).ok()?;
    let digits: String = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    digits.parse().ok().filter(|&p| p > 0)
}

enum PidState {
    RunsPack,
    Gone,
    Other,
}

fn process_runs_pack(pid: i32, root: &Path) -> PidState {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return PidState::Gone;
    };
    let canon = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let wanted: Vec<String> = [root.to_path_buf(), canon.clone()]
        .iter()
        .map(|p| {
            format!(
                "-Dcarbon.home={}",
                p.to_string_lossy().trim_end_matches('/')
            )
        })
        .collect();
    let runs = cmdline.split(|&b| b == 0).any(|arg| {
        let arg = String::from_utf8_lossy(arg);
        let arg = arg.trim_end_matches('/');
        if wanted.iter().any(|w| arg == w) {
            return true;
        }
        // The start scripts set CARBON_HOME with a logical `pwd`, so a server started through a
        // symlink names the link: resolve it (relative to the process's cwd) before comparing.
        let Some(home) = arg.strip_prefix("-Dcarbon.home=").filter(|h| !h.is_empty()) else {
            return false;
        };
        let home = match fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) => cwd.join(home),
            Err(_) => PathBuf::from(home),
        };
        home.is_absolute() && fs::canonicalize(&home).is_ok_and(|h| h == canon)
    });
    if runs {
        PidState::RunsPack
    } else {
        PidState::Other
    }
}

/// Live processes (other than this one) whose command line names `root` as `carbon.home`: a
/// server started without writing a pid file, or whose pid file was removed.
fn processes_running(root: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| matches!(process_runs_pack(pid, root), PidState::RunsPack))
        .collect();
    pids.sort_unstable();
    pids
}

/// What probing a file's lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockProbe {
    /// The file does not exist.
    Absent,
    /// Nobody holds a lock on it.
    Unlocked,
    /// Another process holds one (its pid, None for an open-file-description lock).
    Held(Option<i32>),
    /// The probe failed (the file cannot be opened, or fcntl failed): unknown, not unlocked.
    Unknown(String),
}

/// Probes a POSIX record lock with `F_GETLK`.
pub fn lock_holder(path: &Path) -> LockProbe {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LockProbe::Absent,
        Err(e) => return LockProbe::Unknown(e.to_string()),
    };
    // SAFETY: flock is plain old data; zeroed is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: valid fd and a pointer to a live flock struct.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc != 0 {
        return LockProbe::Unknown(std::io::Error::last_os_error().to_string());
    }
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return LockProbe::Unlocked;
    }
    LockProbe::Held((fl.l_pid > 0).then_some(fl.l_pid))
}

#[cfg(test)]
#[path = "gates_tests.rs"]
mod tests;
