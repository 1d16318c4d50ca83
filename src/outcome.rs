//! What a command achieved: every result that has an exit code of its own (0, 3, 4, 5) is an
//! [`Outcome`], returned as `Ok`. Errors (exit 1, 2, 6, 130, 143) are [`crate::Error`]s. The one
//! table from both to exit codes is [`crate::error::exit`].

use serde::Serialize;

use crate::error::exit;

/// The result of a command that ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done; nothing awaits the operator (exit 0).
    Ok,
    /// Config conflicts await resolution and `transplant --continue` (exit 3).
    Conflicts,
    /// The pack was reverted to its state before the last transplant (exit 4).
    Reverted,
    /// Verification found mismatches (exit 5).
    Mismatch,
}

impl Outcome {
    /// The documented exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => exit::OK,
            Outcome::Conflicts => exit::CONFLICTS,
            Outcome::Reverted => exit::REVERTED,
            Outcome::Mismatch => exit::MISMATCH,
        }
    }
}
