//! Rendering shared by every command: JSON documents, one-line errors, byte and path formatting,
//! and the progress bar (indicatif, only on a terminal, never with --json or --quiet).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Writes one JSON document to stdout; a closed pipe (`| head`) is not an error.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let r = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
        .and_then(|_| out.flush());
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Prints text to stdout, ignoring a closed pipe.
pub fn text(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Prints an error as one line (or one JSON object with --json) on stderr.
pub fn error(json: bool, err: &anyhow::Error, code: u8) {
    // carryover's errors already name their cause; other errors get their chain.
    let msg = if err.downcast_ref::<carryover::Error>().is_some() {
        err.to_string()
    } else {
        err.chain()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ")
    }
    .replace('\n', " ");
    if json {
        let doc = serde_json::json!({ "error": msg, "exit_code": code });
        eprintln!("{doc}");
    } else {
        eprintln!("carryover: error: {msg}");
    }
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

/// A byte-count progress bar when stderr is a terminal and the user wants one.
pub fn progress(global: &super::Global, total: u64, what: &str) -> Option<ProgressBar> {
    if global.json || global.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {pos_files} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "pos_files",
            |_s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str("");
            },
        )
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    Some(pb)
}

/// indicatif behind the library's Progress trait.
pub struct Bar(pub Option<ProgressBar>, pub std::sync::atomic::AtomicU64);

impl Bar {
    pub fn new(pb: Option<ProgressBar>) -> Bar {
        Bar(pb, Default::default())
    }
}

impl carryover::progress::Progress for Bar {
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

/// A cancellation flag raised by SIGINT/SIGTERM, so writers can clean up before exiting.
pub fn cancel_on_signals() -> carryover::progress::Cancel {
    let c = carryover::progress::Cancel::default();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, c.0.clone());
    }
    c
}
