//! Unit tests of manifest validation (end-to-end ones are in tests/cli/manifests.rs).

use super::*;

fn err(text: &str) -> String {
    parse(text, Origin::File("m.toml".into()))
        .unwrap_err()
        .to_string()
}

const HEAD: &str = "[manifest]\nname = \"t\"\nproduct = \"wso2am\"\nmin_version = \"4.0.0\"\n";

fn one_rule(kind: &str, path: &str) -> String {
    format!("{HEAD}[[rule]]\nname = \"a\"\nkind = \"{kind}\"\npath = \"{path}\"\n")
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("ab", 0), (1, 1));
}

#[test]
fn unknown_key_is_located() {
    let e = err(&format!(
        "{HEAD}\n[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"x\"\nbogus = 1\n"
    ));
    assert!(e.starts_with("m.toml:10:1: "), "{e}");
    assert!(e.contains("unknown field `bogus`"), "{e}");
}

#[test]
fn nested_claims_are_rejected() {
    let e = err(&format!(
        "{HEAD}[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\n\
         [[rule]]\nname = \"b\"\nkind = \"file\"\npath = \"repository/data/x\"\n"
    ));
    assert!(e.starts_with("m.toml:12:8: "), "{e}");
    assert!(e.contains("both claim"), "{e}");
}

#[test]
fn shipped_content_and_carryover_are_rejected() {
    for p in [
        "repository/components/plugins",
        "bin",
        "bin/wso2server.sh",
        ".carryover",
        ".carryover/txn",
        "repository/components/patches/x",
    ] {
        let e = err(&one_rule("dir", p));
        assert!(e.contains("shipped content"), "{p}: {e}");
        assert!(e.starts_with("m.toml:8:8: "), "{p}: {e}");
    }
}

#[test]
fn dot_segments_and_slashes_are_rejected() {
    for p in [
        "repository/./data",
        "repository//data",
        "repository/data/",
        "./repository",
        "a/../b",
        "/etc",
    ] {
        let e = err(&one_rule("dir", p));
        assert!(e.contains("must be relative"), "{p}: {e}");
    }
    assert!(parse(
        &one_rule("dir", "repository/data"),
        Origin::File("m".into())
    )
    .is_ok());
}

#[test]
fn merge_needs_config() {
    let e = err(&format!(
        "{HEAD}[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"x\"\nstrategy = \"merge\"\n"
    ));
    assert!(e.contains("config rules only"), "{e}");
}
