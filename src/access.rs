//! Opening a pack: the one way every command gets at a pack directory. A writing command takes
//! the pack's exclusive lock and repairs an interrupted transplant first; a reading command takes
//! the shared lock (so no transplant swaps the pack under it) and repairs the same way when
//! something is pending.

use std::path::Path;

use crate::error::Result;
use crate::lock::PackLock;
use crate::pack::Pack;
use crate::transplant::recover::{pending, recover, Recovery};

/// A pack opened for writing: detected, locked, recovered.
pub struct Writable {
    /// Held until dropped.
    pub lock: PackLock,
    /// What recovery did before the command starts.
    pub recovered: Recovery,
    /// The detected pack.
    pub pack: Pack,
}

/// A pack opened for reading: detected, share-locked, recovered if something was pending.
pub struct Readable {
    /// Held until dropped: no writer can change the pack meanwhile.
    pub lock: PackLock,
    /// What recovery did, when something was pending.
    pub recovered: Option<Recovery>,
    /// The detected pack.
    pub pack: Pack,
}

/// Detects the pack at `path`, takes its exclusive lock and rolls back or finishes whatever a
/// crash interrupted.
///
/// # Errors
/// Not a pack; another carryover holds the lock (`Refused`, exit 6); recovery failed.
pub fn open_for_write(path: &Path) -> Result<Writable> {
    let pack = Pack::open(path)?;
    let lock = PackLock::acquire(&pack.root)?;
    let recovered = recover(&pack.root)?;
    Ok(Writable {
        lock,
        recovered,
        pack,
    })
}

/// Detects the pack at `path` for reading under its shared lock; a pending transaction is
/// recovered first (under the exclusive lock, then downgraded).
///
/// # Errors
/// Not a pack; a writer holds the lock (`Refused`, exit 6); recovery failed.
pub fn open_for_read(path: &Path) -> Result<Readable> {
    let pack = Pack::open(path)?;
    if !pending(&pack.root) {
        let lock = PackLock::shared(&pack.root)?;
        // A transaction may have started between the check and the lock: look again.
        if !pending(&pack.root) {
            return Ok(Readable {
                lock,
                recovered: None,
                pack,
            });
        }
    }
    let mut lock = PackLock::acquire(&pack.root)?;
    let recovered = recover(&pack.root)?;
    lock.downgrade()?;
    Ok(Readable {
        lock,
        recovered: Some(recovered),
        pack,
    })
}
