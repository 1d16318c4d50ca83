//! Manifest validation through the binary: every malformed manifest is refused with exit 1 and
//! `FILE:LINE:COLUMN: problem` pointing at the offending token; every built-in manifest parses.

use std::fs;
use std::path::PathBuf;

use crate::common::{repo, write, TestEnv};

/// Lines 1-4 of every test manifest; rules start on line 6.
const HEAD: &str = "[manifest]\nname = \"bad\"\nproduct = \"wso2am\"\nmin_version = \"4.0.0\"\n\n";

/// Writes `text` as `<tmp>/BAD.toml`, runs `inspect --manifest BAD.toml <example pack copy>`,
/// asserts exit 1, nothing on stdout and one stderr line starting `BAD.toml:LINE:COL: `, and
/// returns that line.
fn refused(text: &str, line: usize, col: usize) -> String {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let bad: PathBuf = env.path().join("BAD.toml");
    write(&bad, text);
    let out = env
        .cmd()
        .arg("inspect")
        .arg("--manifest")
        .arg(&bad)
        .arg(&pack)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let want = format!("carryover: error: {}:{line}:{col}: ", bad.display());
    assert!(err.starts_with(&want), "want {want:?}\ngot  {err:?}");
    err
}

fn rule(body: &str) -> String {
    format!("{HEAD}[[rule]]\n{body}")
}

#[test]
fn unknown_key_in_a_rule() {
    // line 10 col 1: the key itself
    let e = refused(
        &rule("name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\ncolour = \"red\"\n"),
        10,
        1,
    );
    assert!(e.contains("unknown field `colour`"), "{e}");
    assert!(
        e.contains("expected one of"),
        "the known keys are listed: {e}"
    );
}

#[test]
fn unknown_key_in_the_head() {
    let e = refused(
        "[manifest]\nname = \"bad\"\nvendor = \"wso2\"\nproduct = \"wso2am\"\nmin_version = \"4.0.0\"\n",
        3,
        1,
    );
    assert!(e.contains("unknown field `vendor`"), "{e}");
}

#[test]
fn wrong_type() {
    // `required = "yes"`: the value, at col 12
    let e = refused(
        &rule("name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\nrequired = \"yes\"\n"),
        10,
        12,
    );
    assert!(
        e.contains("invalid type: string \"yes\", expected a boolean"),
        "{e}"
    );
}

#[test]
fn bad_glob() {
    // the second pattern of `include = ["*.jks", "[z-a]"]` starts at col 21
    let e = refused(
        &rule(
            "name = \"ks\"\nkind = \"glob\"\npath = \"repository/resources/security\"\n\
             include = [\"*.jks\", \"[z-a]\"]\n",
        ),
        10,
        21,
    );
    assert!(e.contains("bad glob \"[z-a]\""), "{e}");
    assert!(e.contains("invalid range"), "{e}");
}

#[test]
fn bad_exclude_glob() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\nexclude = [\"a/**/[\"]\n"),
        10,
        12,
    );
    assert!(e.contains("bad glob \"a/**/[\""), "{e}");
}

#[test]
fn rule_without_kind() {
    let e = refused(&rule("name = \"a\"\npath = \"repository/data\"\n"), 6, 1);
    assert!(e.contains("missing field `kind`"), "{e}");
}

#[test]
fn head_without_product() {
    let e = refused(
        "[manifest]\nname = \"bad\"\nmin_version = \"4.0.0\"\n\n[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"x\"\n",
        1,
        1,
    );
    assert!(e.contains("missing field `product`"), "{e}");
}

#[test]
fn manifest_without_rules() {
    let e = refused(HEAD, 1, 1);
    assert!(e.contains("at least one [[rule]]"), "{e}");
}

#[test]
fn bad_min_version() {
    let e = refused(
        "[manifest]\nname = \"bad\"\nproduct = \"wso2am\"\nmin_version = \"4.x\"\n",
        4,
        15,
    );
    assert!(e.contains("min_version is not a version"), "{e}");
}

#[test]
fn two_rules_claim_the_same_path() {
    // the second rule's path value, line 14 col 8
    let e = refused(
        &rule(
            "name = \"a\"\nkind = \"dir\"\npath = \"repository/tenants\"\n\n\
             [[rule]]\nname = \"b\"\nkind = \"dir\"\npath = \"repository/tenants\"\n",
        ),
        14,
        8,
    );
    assert!(e.contains("rules \"a\" and \"b\" both claim"), "{e}");
}

#[test]
fn two_rules_claim_nested_paths() {
    // the parent claimed after the child is rejected too
    let e = refused(
        &rule(
            "name = \"child\"\nkind = \"file\"\npath = \"repository/data/org.example/state.json\"\n\n\
             [[rule]]\nname = \"parent\"\nkind = \"dir\"\npath = \"repository/data\"\n",
        ),
        14,
        8,
    );
    assert!(
        e.contains("rules \"child\" and \"parent\" both claim"),
        "{e}"
    );
}

/// Nesting is by path component: `repository/data` and `repository/database` do not overlap.
#[test]
fn sibling_paths_sharing_a_prefix_are_accepted() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let m = env.path().join("ok.toml");
    write(
        &m,
        &rule(
            "name = \"data\"\nkind = \"dir\"\npath = \"repository/data\"\n\n\
             [[rule]]\nname = \"readme\"\nkind = \"file\"\npath = \"repository/database/README.txt\"\n",
        ),
    );
    let doc = env.inspect_json_with(&pack, &["--manifest", m.to_str().unwrap()]);
    assert_eq!(doc["manifest"], "bad");
    assert_eq!(doc["rules"][1]["status"], "found");
}

#[test]
fn two_rules_claim_one_database() {
    let e = refused(
        &rule(
            "name = \"a\"\nkind = \"h2\"\ndatabase = \"WSO2AM_DB\"\n\n\
             [[rule]]\nname = \"b\"\nkind = \"h2\"\ndatabase = \"wso2am_db\"\n",
        ),
        14,
        12,
    );
    assert!(e.contains("both claim database"), "{e}");
}

#[test]
fn two_rules_with_one_name() {
    let e = refused(
        &rule(
            "name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\n\n\
             [[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"repository/tenants\"\n",
        ),
        12,
        8,
    );
    assert!(e.contains("two rules are named \"a\""), "{e}");
}

#[test]
fn travels_with_names_no_rule() {
    let e = refused(
        &rule(
            "name = \"solr\"\nkind = \"lucene\"\npath = \"solr/data\"\ntravels_with = \"carbon-db\"\n",
        ),
        10,
        16,
    );
    assert!(
        e.contains("travels_with names no rule: \"carbon-db\""),
        "{e}"
    );
}

#[test]
fn travels_with_itself() {
    let e = refused(
        &rule(
            "name = \"solr\"\nkind = \"lucene\"\npath = \"solr/data\"\ntravels_with = \"solr\"\n",
        ),
        10,
        16,
    );
    assert!(e.contains("cannot travel with itself"), "{e}");
}

#[test]
fn unknown_kind() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"directory\"\npath = \"repository/data\"\n"),
        8,
        8,
    );
    assert!(e.contains("unknown kind \"directory\""), "{e}");
    assert!(e.contains("dir, file, glob, h2, lucene or config"), "{e}");
}

#[test]
fn merge_on_a_dir_rule() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\nstrategy = \"merge\"\n"),
        10,
        12,
    );
    assert!(
        e.contains("strategy \"merge\" applies to config rules only"),
        "{e}"
    );
}

#[test]
fn unknown_strategy() {
    let e = refused(
        &rule(
            "name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\nstrategy = \"overwrite\"\n",
        ),
        10,
        12,
    );
    assert!(e.contains("unknown strategy \"overwrite\""), "{e}");
}

#[test]
fn format_on_a_non_config_rule() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"file\"\npath = \"password-persist\"\nformat = \"text\"\n"),
        10,
        10,
    );
    assert!(e.contains("`format` applies to config rules only"), "{e}");
}

#[test]
fn database_on_a_non_h2_rule() {
    let e = refused(
        &rule(
            "name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\ndatabase = \"WSO2AM_DB\"\n",
        ),
        10,
        12,
    );
    assert!(e.contains("`database` applies to h2 rules only"), "{e}");
}

#[test]
fn include_on_a_non_glob_rule() {
    // reported at the rule's kind
    let e = refused(
        &rule("name = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\ninclude = [\"*.xml\"]\n"),
        8,
        8,
    );
    assert!(e.contains("`include` applies to glob rules only"), "{e}");
}

#[test]
fn h2_rule_with_a_path() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"h2\"\ndatabase = \"WSO2AM_DB\"\npath = \"repository/database\"\n"),
        10,
        8,
    );
    assert!(e.contains("an h2 rule takes `database`, not `path`"), "{e}");
}

#[test]
fn shipped_content_is_refused() {
    let e = refused(
        &rule("name = \"jars\"\nkind = \"dir\"\npath = \"repository/components/plugins\"\n"),
        9,
        8,
    );
    assert!(
        e.contains("would carry shipped content (repository/components/plugins)"),
        "{e}"
    );
}

#[test]
fn parent_of_shipped_content_is_refused() {
    // repository/components holds plugins/: claiming it would carry them
    let e = refused(
        &rule("name = \"comp\"\nkind = \"dir\"\npath = \"repository/components\"\n"),
        9,
        8,
    );
    assert!(
        e.contains("shipped content (repository/components/plugins)"),
        "{e}"
    );
}

#[test]
fn path_leaving_the_pack() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"dir\"\npath = \"repository/../../etc\"\n"),
        9,
        8,
    );
    assert!(e.contains("must be relative to the pack root"), "{e}");
    let e = refused(
        &rule("name = \"a\"\nkind = \"file\"\npath = \"/etc/passwd\"\n"),
        9,
        8,
    );
    assert!(e.contains("must be relative to the pack root"), "{e}");
}

#[test]
fn rule_kind_needs_its_field() {
    let e = refused(&rule("name = \"a\"\nkind = \"dir\"\n"), 8, 8);
    assert!(e.contains("needs `path`"), "{e}");
    let e = refused(&rule("name = \"a\"\nkind = \"h2\"\n"), 8, 8);
    assert!(e.contains("needs `database`"), "{e}");
    let e = refused(
        &rule("name = \"a\"\nkind = \"glob\"\npath = \"repository/resources/security\"\n"),
        8,
        8,
    );
    assert!(e.contains("needs `include`"), "{e}");
}

#[test]
fn h2_database_must_be_a_bare_name() {
    let e = refused(
        &rule("name = \"a\"\nkind = \"h2\"\ndatabase = \"WSO2AM_DB.mv.db\"\n"),
        9,
        12,
    );
    assert!(e.contains("must be a bare name"), "{e}");
}

#[test]
fn bad_rule_name() {
    let e = refused(
        &rule("name = \"a b\"\nkind = \"dir\"\npath = \"x\"\n"),
        7,
        8,
    );
    assert!(e.contains("must be non-empty [A-Za-z0-9_-]"), "{e}");
}

#[test]
fn toml_syntax_error_is_located() {
    // the unterminated string is reported where the line ends
    let e = refused(&rule("name = \"a\"\nkind = \"dir\npath = \"x\"\n"), 8, 12);
    assert!(e.contains("invalid basic string"), "{e}");
}

/// Every built-in manifest parses (through the binary), whatever pack it is used on, and its
/// `name` is its file name.
#[test]
fn every_builtin_manifest_parses() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let mut names = Vec::new();
    for e in fs::read_dir(repo().join("manifests")).unwrap().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".toml") else {
            continue;
        };
        let rel = format!("manifests/{file}");
        let out = env
            .cmd()
            .current_dir(repo())
            .args(["inspect", "--json", "--manifest", &rel])
            .arg(&pack)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["manifest"], stem, "{rel}");
        assert_eq!(doc["manifest_origin"], rel.as_str());
        assert!(!doc["rules"].as_array().unwrap().is_empty(), "{rel}");
        names.push(stem.to_string());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "wso2am-2.x",
            "wso2am-3.x",
            "wso2am-4.0",
            "wso2am-4.1-4.2",
            "wso2am-4.3-4.4",
            "wso2am-4.5+",
            "wso2am-acp-4.5+",
            "wso2am-tm-4.5+",
            "wso2am-universal-gw-4.5+",
            "wso2is-5.10+",
        ]
    );
}

/// The example in manifests/README.md is a valid manifest.
#[test]
fn readme_example_parses() {
    let readme = fs::read_to_string(repo().join("manifests/README.md")).unwrap();
    let example = readme
        .split_once("## Example")
        .and_then(|(_, rest)| rest.split_once("```toml\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(toml, _)| toml)
        .expect("manifests/README.md has a ```toml block under ## Example");
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let m = env.path().join("acme.toml");
    write(&m, example);
    let doc = env.inspect_json_with(&pack, &["--manifest", m.to_str().unwrap()]);
    assert_eq!(doc["manifest"], "acme-wso2am-4.2");
    assert!(
        doc["manifest_reason"]
            .as_str()
            .unwrap()
            .contains("covers wso2am"),
        "{}",
        doc["manifest_reason"]
    );
    let ks = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "keystores")
        .unwrap();
    assert_eq!(ks["status"], "found");
}
