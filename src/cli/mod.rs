//! Command line: the clap tree, global flags, dispatch, and the one place where outcomes and
//! errors become exit codes (the contract in README.md). Each subcommand is its file's `Args`
//! and one `run` function over the shared [`Ctx`]; the library does the work, `output` prints.

mod ctx;
mod docs;
mod history;
mod inspect;
mod output;
mod snapshot;
mod transplant;
mod verify;

use std::process::ExitCode;

pub use ctx::{usage, Ctx, Global};

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff) of carryover or of one command to stdout.
    Man(docs::ManArgs),
}

pub fn run() -> ExitCode {
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return clap_error(&e, json),
    };
    let ctx = Ctx {
        out: output::Printer::new(cli.global.json, cli.global.quiet, cli.global.verbose > 0),
        global: cli.global,
        cancel: output::cancel_on_signals(),
    };
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(&ctx, a),
        Command::Snapshot(a) => snapshot::run(&ctx, a),
        Command::Verify(a) => verify::run(&ctx, a),
        Command::Transplant(a) => transplant::run(&ctx, a),
        Command::List(a) => history::list(&ctx, a),
        Command::Show(a) => history::show(&ctx, a),
        Command::Completions(a) => docs::completions(&ctx, Cli::command(), a),
        Command::Man(a) => docs::man(&ctx, Cli::command(), a),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            let code = err.kind().exit_code(ctx.cancel.signal());
            ctx.out.error(&err, code);
            ExitCode::from(code)
        }
    }
}

/// `--help` and `--version` exit 0; anything else clap refuses is a usage error (exit 2), as
/// JSON on stderr under --json.
fn clap_error(e: &clap::Error, json: bool) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::from(exit::OK);
    }
    if json {
        let err = usage(e.to_string().lines().next().unwrap_or("usage error"));
        eprintln!("{}", err.to_json(exit::USAGE));
    } else {
        let _ = e.print();
    }
    ExitCode::from(exit::USAGE)
}
