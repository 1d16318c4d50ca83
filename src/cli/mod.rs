//! Command line: the clap tree, global flags, dispatch, and the one place where results and
//! errors become exit codes (the contract in README.md).

mod history;
mod inspect;
mod output;
mod snapshot;
mod transplant;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use carryover::error::exit;

/// Carry the persistent state of a WSO2 server pack into a freshly updated pack.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 conflicts await `--continue`, 4 reverted,
/// 5 verification found mismatches, 6 refused (server running or lock held).
#[derive(Debug, Parser)]
#[command(name = "carryover", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what carryover sees in a pack: product, version, manifest, state, engines, liveness.
    Inspect(inspect::InspectArgs),
    /// Write the pack's state into a self-describing, checksummed .tar.zst archive.
    Snapshot(snapshot::SnapshotArgs),
    /// Prove an archive intact, or a pack identical to an archive (exit 5 on mismatches).
    Verify(verify::VerifyArgs),
    /// Carry the old pack's state (archive or directory) into a new pack: staged, journaled,
    /// verified, revertible.
    Transplant(transplant::TransplantArgs),
    /// List snapshots, verifications and transplants recorded in the catalog.
    List(history::ListArgs),
    /// Show one catalog record in full.
    Show(history::ShowArgs),
}

/// What a command achieved, mapped to an exit code.
pub enum Outcome {
    Ok,
    Code(u8),
}

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.global.json;
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(&cli.global, a),
        Command::Snapshot(a) => snapshot::run(&cli.global, a),
        Command::Verify(a) => verify::run(&cli.global, a),
        Command::Transplant(a) => transplant::run(&cli.global, a),
        Command::List(a) => history::list(&cli.global, a),
        Command::Show(a) => history::show(&cli.global, a),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::from(exit::OK),
        Ok(Outcome::Code(c)) => ExitCode::from(c),
        Err(err) => {
            let code = err
                .downcast_ref::<carryover::Error>()
                .map(|e| e.exit_code())
                .unwrap_or(exit::ERROR);
            output::error(json, &err, code);
            ExitCode::from(code)
        }
    }
}
