//! Product versions: dotted numeric versions such as `4.2.0`, compared numerically.

use std::fmt;

/// A dotted numeric version such as `4.2.0`, compared numerically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(Vec<u32>);

impl Version {
    /// Parses `4.2.0`, `4.2` or `4`; trailing zero parts are ignored (`4.2` == `4.2.0`).
    pub fn parse(s: &str) -> Option<Version> {
        let parts: Option<Vec<u32>> = s.trim().split('.').map(|p| p.parse().ok()).collect();
        let mut parts = parts?;
        if parts.is_empty() {
            return None;
        }
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(Version(parts))
    }

    /// The first part (`4` of `4.2.0`).
    pub fn major(&self) -> u32 {
        self.0[0]
    }

    /// The second part (`2` of `4.2.0`; 0 when absent).
    pub fn minor(&self) -> u32 {
        self.0.get(1).copied().unwrap_or(0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        while parts.len() < 3 {
            parts.push("0".into());
        }
        write!(f, "{}", parts.join("."))
    }
}
