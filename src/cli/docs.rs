//! `carryover completions SHELL` and `carryover man [COMMAND]`: shell completions and man pages,
//! generated from the clap tree so they never drift from the flags.

use std::io::Write;

use carryover::error::{IoContext, Result};
use carryover::outcome::Outcome;

use super::ctx::{usage, Ctx};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// A subcommand's page (`carryover man transplant`); the main page without one.
    pub command: Option<String>,
}

/// `cmd`: the whole clap tree (passed in, so this file does not import the one that defines it).
pub fn completions(_ctx: &Ctx, mut cmd: clap::Command, args: CompletionsArgs) -> Result<Outcome> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "carryover", &mut out);
    write_stdout(&out)?;
    Ok(Outcome::Ok)
}

/// `cmd`: the whole clap tree.
pub fn man(_ctx: &Ctx, cmd: clap::Command, args: ManArgs) -> Result<Outcome> {
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .get_subcommands()
                .find(|s| s.get_name() == name)
                .cloned()
                .ok_or_else(|| usage(&format!("man: no command named {name:?}")))?;
            sub.name(format!("carryover-{name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .at(std::path::Path::new("<stdout>"))?;
    write_stdout(&out)?;
    Ok(Outcome::Ok)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut so = std::io::stdout().lock();
    match so.write_all(bytes).and_then(|_| so.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.at(std::path::Path::new("<stdout>")),
    }
}
