//! The one printer every command uses: JSON documents or text reports, one-line errors (JSON
//! with `kind`, `message`, `evidence`, `hint`, `exit_code` under --json), warnings, byte
//! formatting, the progress bar (indicatif, only on a terminal, never with --json or --quiet) and
//! the signal-raised cancellation flag.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use carryover::error::{Error, IoContext, Result};
use carryover::progress::{Cancel, Progress};

/// Where every command's output goes: one JSON document with `--json`, else text unless
/// `--quiet`; errors and warnings on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool, verbose: bool) -> Printer {
        Printer {
            json,
            quiet,
            verbose,
        }
    }

    /// A command's report: `value` as JSON, or `human()` as text unless `--quiet` (a report that
    /// needs the operator's attention passes `always`).
    pub fn report<T: Serialize>(
        &self,
        value: &T,
        always: bool,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json {
            json(value)
        } else {
            if !self.quiet || always {
                text(&human());
            }
            Ok(())
        }
    }

    /// A warning on stderr (never on stdout, so JSON stays one document).
    pub fn warn(&self, msg: &str) {
        eprintln!("carryover: warning: {msg}");
    }

    /// An error as one line (or one JSON object with --json) on stderr.
    pub fn error(&self, err: &Error, code: u8) {
        if self.json {
            eprintln!("{}", err.to_json(code));
        } else {
            eprintln!("carryover: error: {}", err.to_string().replace('\n', " "));
        }
    }

    /// A progress bar for `what` when stderr is a terminal and the user wants one.
    pub fn bar(&self, what: &str) -> Bar {
        Bar::new(
            if self.json || self.quiet || !std::io::stderr().is_terminal() {
                None
            } else {
                Some(new_bar(what))
            },
        )
    }
}

/// Writes one JSON document to stdout; a closed pipe (`| head`) is not an error.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let r = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
        .and_then(|_| out.flush());
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.at(std::path::Path::new("<stdout>")),
    }
}

/// Prints text to stdout, ignoring a closed pipe.
pub fn text(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn new_bar(what: &str) -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// indicatif behind the library's Progress trait.
pub struct Bar(pub Option<ProgressBar>, pub std::sync::atomic::AtomicU64);

impl Bar {
    pub fn new(pb: Option<ProgressBar>) -> Bar {
        Bar(pb, Default::default())
    }
}

impl Progress for Bar {
    fn begin(&self, total_bytes: u64, _total_files: u64) {
        if let Some(b) = &self.0 {
            if total_bytes == 0 {
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} {spinner} {bytes} {bytes_per_sec} {elapsed}",
                ) {
                    b.set_style(style);
                }
            } else {
                b.set_length(total_bytes);
            }
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }
    fn file_done(&self) {
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Some(b) = &self.0 {
            if n % 64 == 0 {
                b.set_message(format!("{n} files"));
            }
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A cancellation flag raised by SIGINT, SIGTERM and SIGHUP (a closed SSH session), so writers
/// clean up before exiting; it remembers which signal, for the exit code (130 or 143).
pub fn cancel_on_signals() -> Cancel {
    let c = Cancel::default();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register_usize(sig, c.signal.clone(), sig as usize);
        let _ = signal_hook::flag::register(sig, c.flag.clone());
    }
    c
}
