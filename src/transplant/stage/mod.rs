//! Staging: the source's carried entries materialised under `NEW/.carryover/txn/<id>/stage/`
//! (on the pack's filesystem, so the swap is a rename), with what each must be after the swap.
//! Two sources: a snapshot archive while it streams ([`archive`]) and an old pack's directory
//! ([`pack`]); both validate every entry and record it the same way ([`state`]). Staging writes
//! only below the stage directory.

pub mod archive;
pub mod beneath;
pub mod pack;
pub mod state;

pub use archive::stage_from_archive;
pub use pack::stage_from_pack;
pub use state::Staged;
