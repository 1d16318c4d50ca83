//! The crate's error type and the one table from error kinds to the documented exit codes.
//!
//! An [`Error`] is something that stopped a command: its [`Display`](std::fmt::Display) is one
//! line naming the file concerned; [`Error::kind`], [`Error::evidence`] and [`Error::hint`] give
//! the same as data for `--json`. Results that have an exit code of their own (conflicts,
//! reverted, mismatches) are not errors: they are [`crate::outcome::Outcome`]s.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

/// Exit codes, the contract documented in README.md.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error: bad input, an unreadable file, an incompatible transplant.
    pub const ERROR: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
    /// Config conflicts await `transplant --continue`.
    pub const CONFLICTS: u8 = 3;
    /// The pack was reverted.
    pub const REVERTED: u8 = 4;
    /// Verification found mismatches.
    pub const MISMATCH: u8 = 5;
    /// Refused: a server runs on the pack, or another carryover holds its lock.
    pub const REFUSED: u8 = 6;
    /// Interrupted by SIGINT (128 + 2).
    pub const SIGINT: u8 = 130;
    /// Interrupted by SIGTERM or SIGHUP (128 + 15).
    pub const SIGTERM: u8 = 143;
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A manifest that does not validate: file:line:column: problem.
    #[error("{file}:{line}:{column}: {message}")]
    Manifest {
        /// The manifest (a path, or `built-in NAME`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The problem.
        message: String,
    },
    /// The directory is not a pack carryover recognises.
    #[error("{path}: not a recognised WSO2 pack: {reason}")]
    NotAPack {
        /// The directory given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// No built-in manifest covers the detected product/version.
    #[error("{path}: no manifest covers {product} {version}; pass --manifest FILE")]
    NoManifest {
        /// The pack.
        path: PathBuf,
        /// Its product id.
        product: String,
        /// Its version.
        version: String,
    },
    /// Refused: a server runs on the pack or a lock is held.
    #[error("{path}: refused: {reason}")]
    Refused {
        /// The pack.
        path: PathBuf,
        /// The evidence, in words.
        reason: String,
    },
    /// A file whose content is damaged (archive, index, database).
    #[error("{path}: {message}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Verification found mismatches (details in the report).
    #[error("{path}: verification found {count} problem(s)")]
    Mismatch {
        /// The archive.
        path: PathBuf,
        /// How many problems.
        count: usize,
    },
    /// A transplant that cannot proceed for a reason found before any write.
    #[error("{path}: {message}")]
    Incompatible {
        /// The new pack.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Bad input from the user or a file (archive entry, journal...).
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or argument) concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Conflicts await resolution with `--continue`.
    #[error("{path}: {count} conflict(s) await resolution; resolve and run `carryover transplant --continue`")]
    Conflicts {
        /// The pack.
        path: PathBuf,
        /// How many files.
        count: usize,
    },
    /// `--continue` cannot proceed: a `.final` is missing or does not parse.
    #[error("{path}: conflicts not resolved: {problems}")]
    Unresolved {
        /// The pack.
        path: PathBuf,
        /// Each unresolved file and why.
        problems: String,
    },
    /// The catalog database failed.
    #[error("catalog {path}: {message}")]
    Catalog {
        /// The catalog file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The command line is wrong.
    #[error("{message}")]
    Usage {
        /// What is wrong, as clap or the command put it.
        message: String,
    },
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

/// What kind of error, as `--json` names it (`kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Reading or writing a file failed.
    Io,
    /// A manifest does not validate.
    Manifest,
    /// Not a pack carryover recognises.
    NotAPack,
    /// No manifest covers the pack.
    NoManifest,
    /// A server runs or a lock is held.
    Refused,
    /// A damaged file.
    Corrupt,
    /// Verification found mismatches.
    Mismatch,
    /// The transplant is not possible.
    Incompatible,
    /// Bad input.
    Invalid,
    /// Conflicts await `--continue`.
    Conflicts,
    /// `--continue` found unresolved conflicts.
    Unresolved,
    /// The catalog failed.
    Catalog,
    /// The command line is wrong.
    Usage,
    /// Interrupted by a signal.
    Interrupted,
}

impl ErrorKind {
    /// The one table from error kinds to exit codes (`signal`: the one that interrupted, if any).
    pub fn exit_code(self, signal: Option<i32>) -> u8 {
        match self {
            ErrorKind::Refused => exit::REFUSED,
            ErrorKind::Mismatch => exit::MISMATCH,
            ErrorKind::Conflicts | ErrorKind::Unresolved => exit::CONFLICTS,
            ErrorKind::Usage => exit::USAGE,
            ErrorKind::Interrupted => match signal {
                Some(libc::SIGTERM) | Some(libc::SIGHUP) => exit::SIGTERM,
                _ => exit::SIGINT,
            },
            ErrorKind::Io
            | ErrorKind::Manifest
            | ErrorKind::NotAPack
            | ErrorKind::NoManifest
            | ErrorKind::Corrupt
            | ErrorKind::Incompatible
            | ErrorKind::Invalid
            | ErrorKind::Catalog => exit::ERROR,
        }
    }
}

impl Error {
    /// The kind, for the exit code and `--json`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Manifest { .. } => ErrorKind::Manifest,
            Error::NotAPack { .. } => ErrorKind::NotAPack,
            Error::NoManifest { .. } => ErrorKind::NoManifest,
            Error::Refused { .. } => ErrorKind::Refused,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Mismatch { .. } => ErrorKind::Mismatch,
            Error::Incompatible { .. } => ErrorKind::Incompatible,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Conflicts { .. } => ErrorKind::Conflicts,
            Error::Unresolved { .. } => ErrorKind::Unresolved,
            Error::Catalog { .. } => ErrorKind::Catalog,
            Error::Usage { .. } => ErrorKind::Usage,
            Error::Interrupted => ErrorKind::Interrupted,
        }
    }

    /// The documented exit code (an interruption counts as SIGINT; see [`ErrorKind::exit_code`]).
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code(None)
    }

    /// The facts behind the error, as data: the path concerned and what was found there.
    pub fn evidence(&self) -> Value {
        match self {
            Error::Io { path, source } => json!({
                "path": path,
                "os_error": source.raw_os_error(),
                "io_kind": format!("{:?}", source.kind()),
            }),
            Error::Manifest {
                file, line, column, ..
            } => json!({ "file": file, "line": line, "column": column }),
            Error::NotAPack { path, reason } => json!({ "path": path, "reason": reason }),
            Error::NoManifest {
                path,
                product,
                version,
            } => json!({ "path": path, "product": product, "version": version }),
            Error::Refused { path, reason } => json!({ "path": path, "reason": reason }),
            Error::Mismatch { path, count } | Error::Conflicts { path, count } => {
                json!({ "path": path, "count": count })
            }
            Error::Unresolved { path, problems } => json!({ "path": path, "problems": problems }),
            Error::Corrupt { path, .. }
            | Error::Incompatible { path, .. }
            | Error::Invalid { path, .. }
            | Error::Catalog { path, .. } => json!({ "path": path }),
            Error::Usage { .. } | Error::Interrupted => json!({}),
        }
    }

    /// What the operator can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::Io { .. } => "check that the path exists and that you may read (or write) it",
            Error::Manifest { .. } => "fix the manifest at that line; the format is in manifests/README.md",
            Error::NotAPack { .. } => "point at the pack's root: the directory holding bin/ and repository/",
            Error::NoManifest { .. } => "write a manifest for this line (manifests/README.md) and pass --manifest FILE",
            Error::Refused { .. } => "stop the server (or wait for the other carryover command) and run again",
            Error::Corrupt { .. } => "use another copy of the file; `carryover verify` names every damaged entry",
            Error::Mismatch { .. } => "the report names every mismatch; take a fresh snapshot or investigate the change",
            Error::Incompatible { .. } => "`carryover transplant --dry-run` shows the whole plan and why",
            Error::Invalid { .. } => return None,
            Error::Conflicts { .. } | Error::Unresolved { .. } => {
                "write each FILE.final, then run `carryover transplant --continue NEW_PACK` (or --revert)"
            }
            Error::Catalog { .. } => "pass --catalog FILE or set CARRYOVER_CATALOG to a writable place",
            Error::Usage { .. } => "see `carryover help` and `carryover COMMAND --help`",
            Error::Interrupted => {
                "nothing was changed, or the next carryover command on the pack repairs it (`transplant --recover`)"
            }
        })
    }

    /// The error as one JSON document: `kind`, `message`, `evidence`, `hint`, `exit_code`
    /// (and `error`, the message, as earlier versions printed it).
    pub fn to_json(&self, exit_code: u8) -> Value {
        let message = self.to_string().replace('\n', " ");
        json!({
            "error": message,
            "kind": self.kind(),
            "message": message,
            "evidence": self.evidence(),
            "hint": self.hint(),
            "exit_code": exit_code,
        })
    }

    /// An [`Error::Invalid`] on `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Corrupt`] on `path`.
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] naming `path`.
    ///
    /// # Errors
    /// The original error, with the path.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_codes() {
        let refused = Error::Refused {
            path: "p".into(),
            reason: "r".into(),
        };
        assert_eq!(refused.exit_code(), 6);
        assert_eq!(Error::invalid("p", "m").exit_code(), 1);
        let usage = Error::Usage {
            message: "bad".into(),
        };
        assert_eq!(usage.exit_code(), 2);
        assert_eq!(ErrorKind::Interrupted.exit_code(Some(libc::SIGINT)), 130);
        assert_eq!(ErrorKind::Interrupted.exit_code(Some(libc::SIGTERM)), 143);
        assert_eq!(ErrorKind::Interrupted.exit_code(Some(libc::SIGHUP)), 143);
        let j = refused.to_json(6);
        assert_eq!(j["kind"], "refused");
        assert_eq!(j["evidence"]["path"], "p");
        assert_eq!(j["exit_code"], 6);
        assert!(j["hint"].as_str().unwrap().contains("stop the server"));
    }
}
