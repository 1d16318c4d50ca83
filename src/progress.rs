//! Progress reporting and cancellation, from library to front end. The library calls a
//! [`Progress`]; the CLI implements it with indicatif on a terminal and [`NoProgress`] otherwise.
//! A [`Cancel`] is raised by the front end on SIGINT, SIGTERM or SIGHUP and polled by long
//! operations. No terminal code here.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Receives progress events from long operations.
pub trait Progress: Sync {
    /// The work starts: its size when known (0 when not).
    fn begin(&self, _total_bytes: u64, _total_files: u64) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
    /// One more file is done.
    fn file_done(&self) {}
    /// The work is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// A cancellation flag, and the signal that raised it.
#[derive(Debug, Default, Clone)]
pub struct Cancel {
    /// Set when the operation must stop.
    pub flag: Arc<AtomicBool>,
    /// The signal number that set it (0: none, or set by hand).
    pub signal: Arc<AtomicUsize>,
}

impl Cancel {
    /// Whether the operation must stop.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The signal that interrupted, if a signal did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            s => i32::try_from(s).ok(),
        }
    }

    /// `Err(Interrupted)` once the flag is set.
    ///
    /// # Errors
    /// [`crate::Error::Interrupted`] when cancelled.
    pub fn check(&self) -> crate::Result<()> {
        if self.is_set() {
            Err(crate::Error::Interrupted)
        } else {
            Ok(())
        }
    }
}
