//! The crate's error type and the mapping from error kinds to the documented exit codes.
//!
//! Every error names the file it concerns; the CLI prints `Display` as one line and exits with
//! [`Error::exit_code`].

use std::io;
use std::path::{Path, PathBuf};

/// Exit codes, the contract documented in README.md.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONFLICTS: u8 = 3;
    pub const REVERTED: u8 = 4;
    pub const MISMATCH: u8 = 5;
    pub const REFUSED: u8 = 6;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A manifest that does not validate: file:line:column: problem.
    #[error("{file}:{line}:{column}: {message}")]
    Manifest {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The directory is not a pack carryover recognises.
    #[error("{path}: not a recognised WSO2 pack: {reason}")]
    NotAPack { path: PathBuf, reason: String },
    /// No built-in manifest covers the detected product/version.
    #[error("{path}: no manifest covers {product} {version}; pass --manifest FILE")]
    NoManifest {
        path: PathBuf,
        product: String,
        version: String,
    },
    /// Refused: a server runs on the pack or a lock is held.
    #[error("{path}: refused: {reason}")]
    Refused { path: PathBuf, reason: String },
    /// A file whose content is damaged (archive, index, database).
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// Verification found mismatches (details in the report).
    #[error("{path}: verification found {count} problem(s)")]
    Mismatch { path: PathBuf, count: usize },
    /// A transplant that cannot proceed for a reason found before any write.
    #[error("{path}: {message}")]
    Incompatible { path: PathBuf, message: String },
    /// Bad input from the user or a file (archive entry, journal...).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Conflicts await resolution with `--continue`.
    #[error("{path}: {count} conflict(s) await resolution; resolve and run `carryover transplant --continue`")]
    Conflicts { path: PathBuf, count: usize },
    /// `--continue` cannot proceed: a `.final` is missing or does not parse.
    #[error("{path}: conflicts not resolved: {problems}")]
    Unresolved { path: PathBuf, problems: String },
    /// The catalog database failed.
    #[error("catalog {path}: {message}")]
    Catalog { path: PathBuf, message: String },
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Refused { .. } => exit::REFUSED,
            Error::Mismatch { .. } => exit::MISMATCH,
            Error::Conflicts { .. } | Error::Unresolved { .. } => exit::CONFLICTS,
            _ => exit::ERROR,
        }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
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
