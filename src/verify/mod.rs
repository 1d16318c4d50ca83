//! Verification: an archive against its own records (check.rs), or a pack's current state
//! against an archive (against.rs). Both produce a [`VerifyReport`] naming every problem
//! (report.rs); [`VerifyReport::outcome`] says what it means for the exit code.
//!
//! Dependencies run one way: against -> check -> report, all reading through
//! `crate::archive::reader`.

mod against;
mod check;
mod report;

pub use against::verify_against;
pub use check::{check_contents, verify_archive};
pub use report::{Problem, ProblemKind, RuleResult, VerifyReport};
