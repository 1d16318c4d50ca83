//! Progress reporting from library to front end. The library calls a [`Progress`]; the CLI
//! implements it with indicatif on a terminal and [`NoProgress`] otherwise. No terminal code here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Receives progress events from long operations.
pub trait Progress: Sync {
    fn begin(&self, _total_bytes: u64, _total_files: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn file_done(&self) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// A cancellation flag, set by the front end on SIGINT/SIGTERM and polled by long operations.
#[derive(Debug, Default)]
pub struct Cancel(pub Arc<AtomicBool>);

impl Cancel {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn check(&self) -> crate::Result<()> {
        if self.is_set() {
            Err(crate::Error::Interrupted)
        } else {
            Ok(())
        }
    }
}
