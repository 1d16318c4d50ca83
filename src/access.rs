//! Opening a pack: the one way every command gets at a pack directory. A writing command takes
//! the pack lock and repairs an interrupted transplant first; a reading command repairs the same
//! way when something is pending.

use std::path::Path;

use crate::error::Result;
use crate::lock::PackLock;
use crate::pack::Pack;
use crate::transplant::recover::{recover, recover_if_pending, Recovery};

/// A pack opened for writing: detected, locked, recovered.
pub struct Writable {
    /// Held until dropped.
    pub lock: PackLock,
    /// What recovery did before the command starts.
    pub recovered: Recovery,
    /// The detected pack.
    pub pack: Pack,
}

/// Detects the pack at `path`, takes its lock and rolls back or finishes whatever a crash
/// interrupted.
///
/// # Errors
/// Not a pack; the lock is held by another carryover (`Refused`, exit 6); recovery failed.
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

/// Detects the pack at `path` for reading; a pending transaction is recovered first (under the
/// lock), and what recovery did is returned with it.
///
/// # Errors
/// Not a pack; recovery needed but the lock is held; recovery failed.
pub fn open_for_read(path: &Path) -> Result<(Pack, Option<Recovery>)> {
    let pack = Pack::open(path)?;
    let rec = recover_if_pending(&pack.root)?;
    Ok((pack, rec))
}
