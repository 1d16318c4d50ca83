#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc)]
//! carryover: carry the persistent state of a WSO2 server pack into a freshly updated pack.
//!
//! Every command reads a pack in three steps, each its own module:
//!
//! ```text
//! detect (pack)  ->  select (manifest + plan)  ->  act (archive, verify, transplant)
//! ```
//!
//! The library never prints; it returns typed, serialisable reports that `src/cli` renders.

pub mod error;
pub mod manifest;
pub mod pack;
pub mod plan;

pub use error::{Error, Result};
pub mod access;
pub mod archive;
pub mod catalog;
pub mod digest;
pub mod fsutil;
pub mod integrity;
pub mod lock;
pub mod merge;
pub mod outcome;
pub mod progress;
pub mod relpath;
pub mod snapshot;
pub mod transplant;
pub mod verify;
pub mod version;
