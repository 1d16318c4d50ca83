//! What every command gets: the global flags, the printer, the cancellation flag, the catalog.

use std::path::PathBuf;

use carryover::catalog::{self, Catalog};
use carryover::error::{Error, Result};
use carryover::progress::Cancel;

use super::output::Printer;

#[derive(Debug, clap::Args, Clone)]
pub struct Global {
    /// One JSON document on stdout (errors as JSON on stderr); no progress bar.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar and no summary, only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More detail (diffs in plans, every entry in reports).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Catalog database (default $CARRYOVER_CATALOG, else $XDG_DATA_HOME/carryover/catalog.db).
    #[arg(long, global = true, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// What every command gets: the global flags, the printer, the cancellation flag.
pub struct Ctx {
    pub global: Global,
    pub out: Printer,
    pub cancel: Cancel,
}

impl Ctx {
    /// The catalog this invocation uses.
    pub fn catalog(&self) -> Result<Catalog> {
        Catalog::open(&catalog::default_path(self.global.catalog.as_deref()))
    }
}

/// A usage error found by a command after clap parsed the line (exit 2).
pub fn usage(message: &str) -> Error {
    Error::Usage {
        message: message.to_string(),
    }
}
