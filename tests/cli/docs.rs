//! Shell completions and man pages are generated from the clap tree; each is checked by the real
//! tool that reads it (bash/zsh/fish parse the scripts, groff renders the pages without warnings).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::TestEnv;

/// Runs `tool args...` with `input` on stdin; (success, stderr).
fn feed(tool: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e} (scripts/setup installs it)"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_parse_in_their_shells() {
    let env = TestEnv::new();
    for (shell, tool, args) in [
        ("bash", "bash", &["-n"][..]),
        ("zsh", "zsh", &["-n"][..]),
        ("fish", "fish", &["--no-execute"][..]),
    ] {
        let r = env.run(["completions", shell]);
        assert_eq!(r.code, Some(0), "{shell}: {r}");
        for sub in [
            "inspect",
            "snapshot",
            "verify",
            "transplant",
            "allow-missing",
        ] {
            assert!(r.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
        let (ok, err) = feed(tool, args, r.stdout.as_bytes());
        assert!(ok, "{shell} does not parse the completion script: {err}");
    }
    let r = env.run(["completions", "tcsh"]);
    assert_eq!(r.code, Some(2), "{r}");
}

#[test]
fn man_pages_render_without_warnings() {
    let env = TestEnv::new();
    for cmd in [
        None,
        Some("inspect"),
        Some("snapshot"),
        Some("verify"),
        Some("transplant"),
    ] {
        let r = match cmd {
            None => env.run(["man"]),
            Some(c) => env.run(["man", c]),
        };
        assert_eq!(r.code, Some(0), "{cmd:?}: {r}");
        assert!(
            r.stdout.starts_with(".ie") || r.stdout.contains(".TH"),
            "{cmd:?}: not roff"
        );
        let (ok, err) = feed(
            "groff",
            &["-man", "-Tutf8", "-ww", "-z"],
            r.stdout.as_bytes(),
        );
        assert!(ok && err.trim().is_empty(), "{cmd:?}: groff: {err}");
        if let Some(c) = cmd {
            assert!(r.stdout.contains(&format!("carryover\\-{c}")), "{cmd:?}");
        }
    }
    let r = env.run(["man", "transplant"]);
    for flag in ["dry\\-run", "revert", "continue", "base"] {
        assert!(r.stdout.contains(flag), "transplant page lacks {flag}");
    }
    let r = env.run(["man", "nope"]);
    assert_eq!(r.code, Some(2), "{r}");
}
