//! Crash points for the crash tests: built with `--features failpoints`, the binary aborts at
//! the point named by `CARRYOVER_FAILPOINT`; without the feature, [`failpoint`] does nothing.

/// Aborts the process here when `CARRYOVER_FAILPOINT=<name>` (failpoints builds only).
pub fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("CARRYOVER_FAILPOINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
    let _ = name;
}
