//! Golden output: `--help` of every command, and one human and one JSON report of each command
//! on the bundled example, compared with the files in `tests/golden/`. A change to what an
//! operator sees is a visible diff in review. Run with `GOLDEN_UPDATE=1` to rewrite the files.
//!
//! Run-to-run noise (temp paths, times, durations, digests of archives that embed a time, host
//! names, sizes of compressed output) is replaced by `<TMP>`, `<TIME>`, `<SECS>`, `<SHA>`...
//! before comparing; everything else must match byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::common::{repo, Ran, TestEnv};

fn golden_dir() -> PathBuf {
    repo().join("tests/golden")
}

/// Compares `actual` with `tests/golden/NAME` (or writes it under GOLDEN_UPDATE=1).
fn check(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run the test with GOLDEN_UPDATE=1 to create it",
            path.display()
        )
    });
    if want != actual {
        let diff = diffy_lines(&want, actual);
        panic!(
            "{} differs from the output (GOLDEN_UPDATE=1 rewrites it):\n{diff}",
            path.display()
        );
    }
}

/// A minimal line diff: each differing line pair.
fn diffy_lines(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            out.push_str(&format!(
                "line {}:\n- {}\n+ {}\n",
                i + 1,
                a.unwrap_or(&"<none>"),
                b.unwrap_or(&"<none>")
            ));
        }
    }
    out
}

/// Replaces run-to-run noise with placeholders.
fn normalise(env: &TestEnv, s: &str) -> String {
    let mut s = s.to_string();
    let tmp = env.path().to_string_lossy().into_owned();
    if let Ok(canon) = env.path().canonicalize() {
        s = s.replace(&*canon.to_string_lossy(), "<TMP>");
    }
    s = s.replace(&tmp, "<TMP>");
    s = s.replace(&*repo().to_string_lossy(), "<REPO>");
    let host = gethostname();
    let rules: &[(&str, &str)] = &[
        (r"[0-9a-f]{64}", "<SHA>"),
        (
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?",
            "<TIME>",
        ),
        (r"\d{8}T\d{6}Z", "<TIME>"),
        (r"\b\d{13}-\d+\b", "<TXN>"),
        (r#""(seconds|mib_per_s|ratio)": [0-9.e+-]+"#, "\"$1\": <N>"),
        (r#""(bytes_out|compressed_bytes)": \d+"#, "\"$1\": <N>"),
        (r#""(mtime|time)": \d+"#, "\"$1\": <N>"),
        (r"\d+\.\d+ s\b", "<SECS> s"),
        (r"\d+ MiB/s", "<RATE> MiB/s"),
        (r"ratio \d+\.\d+", "ratio <N>"),
        (r"[0-9.]+ (B|KiB|MiB) out", "<N> out"),
        (r"carryover \d+\.\d+\.\d+", "carryover <VERSION>"),
    ];
    for (pat, rep) in rules {
        s = Regex::new(pat).unwrap().replace_all(&s, *rep).into_owned();
    }
    if !host.is_empty() {
        s = s.replace(&format!("\"{host}\""), "\"<HOST>\"");
    }
    s
}

fn gethostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The output of a run as one golden text: exit code, stdout, stderr.
fn shown(env: &TestEnv, r: &Ran) -> String {
    normalise(
        env,
        &format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            r.code, r.stdout, r.stderr
        ),
    )
}

#[test]
fn help_of_every_command() {
    let env = TestEnv::new();
    let commands: &[&[&str]] = &[
        &[],
        &["inspect"],
        &["snapshot"],
        &["verify"],
        &["transplant"],
        &["list"],
        &["show"],
    ];
    for c in commands {
        let mut args: Vec<&str> = c.to_vec();
        args.push("--help");
        let r = env.run(&args);
        assert_eq!(r.code, Some(0), "{args:?}: {r}");
        let name = if c.is_empty() { "carryover" } else { c[0] };
        check(&format!("help/{name}.txt"), &normalise(&env, &r.stdout));
    }
}

/// The bundled example: old pack, new pack, pristine base, in the env's temp dir.
struct Example {
    env: TestEnv,
    old: PathBuf,
    new: PathBuf,
    base: PathBuf,
}

fn example() -> Example {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    fs::create_dir_all(old.join("solr/data/tlog")).unwrap();
    let new = env.copy_example("wso2am-4.2.0-new");
    let base = crate::common::example("pristine-4.2.0");
    Example {
        env,
        old,
        new,
        base,
    }
}

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn reports_of_every_command() {
    let ex = example();
    let env = &ex.env;
    let archive = env.path().join("old.tar.zst");
    let (a, old, new, base) = (arg(&archive), arg(&ex.old), arg(&ex.new), arg(&ex.base));
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("inspect.txt", vec!["inspect", &old]),
        ("inspect.json", vec!["inspect", "--json", &old]),
        ("snapshot.txt", vec!["snapshot", &old, "-o", &a]),
        ("verify.txt", vec!["verify", &a]),
        ("verify.json", vec!["verify", "--json", &a]),
        (
            "transplant-dry-run.txt",
            vec!["transplant", &a, &new, "--base", &base, "--dry-run"],
        ),
        (
            "transplant-dry-run.json",
            vec![
                "transplant",
                "--json",
                &a,
                &new,
                "--base",
                &base,
                "--dry-run",
            ],
        ),
        (
            "transplant.txt",
            vec!["transplant", &a, &new, "--base", &base],
        ),
        ("verify-against.txt", vec!["verify", &a, "--against", &new]),
        (
            "revert.json",
            vec!["transplant", "--json", "--revert", &new],
        ),
        (
            "transplant.json",
            vec!["transplant", "--json", &a, &new, "--base", &base],
        ),
        ("revert.txt", vec!["transplant", "--revert", &new]),
        ("recover.txt", vec!["transplant", "--recover", &new]),
        ("list.txt", vec!["list"]),
        ("error.txt", vec!["verify", "no-such.tar.zst"]),
        ("error.json", vec!["verify", "--json", "no-such.tar.zst"]),
        ("usage.txt", vec!["transplant", "--revert", &a, &new]),
        (
            "usage.json",
            vec!["transplant", "--json", "--revert", &a, &new],
        ),
    ];
    for (name, args) in &runs {
        let r = env.run(args);
        check(&format!("reports/{name}"), &shown(env, &r));
    }
    // A second snapshot, as JSON (the first one's archive exists: a new name).
    let a2 = arg(&env.path().join("again.tar.zst"));
    let r = env.run(["snapshot", "--json", &old, "-o", &a2]);
    check("reports/snapshot.json", &shown(env, &r));
    let r = env.run(["list", "--json"]);
    check("reports/list.json", &shown(env, &r));
}
