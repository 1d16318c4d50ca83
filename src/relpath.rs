//! Pack-relative paths as carryover accepts them: plain relative paths with no empty, `.` or
//! `..` segment, no trailing slash, of a sane length, checked on the bytes (so `a/./b`, `a//b`
//! and `a/b` can never pass as different paths); and whether a symlink stays inside the pack.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// The longest path carryover accepts (Linux's PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// The longest path segment carryover accepts (Linux's NAME_MAX).
pub const MAX_SEGMENT: usize = 255;

/// Checks that `path` is a plain relative path; the problem in words when it is not.
///
/// # Errors
/// Empty, absolute, a `.`/`..`/empty segment, a trailing slash, a NUL byte, or too long.
pub fn check(path: &[u8]) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH {
        return Err(format!("path longer than {MAX_PATH} bytes"));
    }
    if path.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    if path[0] == b'/' {
        return Err("absolute path".into());
    }
    if path.ends_with(b"/") {
        return Err("path ends with `/`".into());
    }
    for seg in path.split(|b| *b == b'/') {
        match seg {
            b"" => return Err("path contains an empty segment (`//`)".into()),
            b"." => return Err("path contains `.`".into()),
            b".." => return Err("path contains `..`".into()),
            s if s.len() > MAX_SEGMENT => {
                return Err(format!("a path segment is longer than {MAX_SEGMENT} bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`check`] for a [`Path`].
///
/// # Errors
/// As [`check`].
pub fn check_path(path: &Path) -> Result<(), String> {
    check(path.as_os_str().as_bytes())
}

/// Whether a symlink at `at` (pack-relative) pointing to `target` resolves inside the pack,
/// judged on the text alone (the link is never followed): not absolute, and never climbing
/// above the pack root.
pub fn link_stays_inside(at: &Path, target: &Path) -> bool {
    if target.is_absolute() || target.as_os_str().is_empty() {
        return false;
    }
    let mut depth: Vec<&OsStr> = at
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in ["a", "a/b", "repository/data/x.db", "é/ü"] {
            assert!(check(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            "", "/etc", "a/./b", "a//b", "a/", "./a", "a/..", "../a", "a/\0b", ".",
        ] {
            assert!(check(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(check(&[b'a'; 300]).is_err());
        assert!(check(&b"x/".repeat(3000)).is_err());
        assert!(check(b"\xff\xfe/name").is_ok(), "any bytes but / and NUL");
    }

    #[test]
    fn links_inside_and_out() {
        let ok = |a: &str, t: &str| link_stays_inside(Path::new(a), Path::new(t));
        assert!(ok("solr/data/current", "index"));
        assert!(ok("a/b/l", "../c"));
        assert!(ok("a/b/l", "./c/../d"));
        assert!(!ok("a/l", "../../x"));
        assert!(!ok("a/l", "/etc"));
        assert!(!ok("l", ".."));
        assert!(!ok("a/l", ""));
    }
}
