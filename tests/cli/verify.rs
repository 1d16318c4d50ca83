//! `carryover verify`: a clean archive passes; every kind of damage (a flipped byte, truncation,
//! edited SHA256SUMS or index.json, a wrong sidecar) is named and exits 5 (1 when nothing is
//! readable); `--against PACK` names changed, missing and extra files per rule, in text, JSON
//! and JUnit XML.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{
    dir_names, flip_byte, sha256_file, tar_create, tar_extract, tar_list, write, write_sidecar,
    Ran, Rng, TestEnv,
};

/// A copy of the old example pack and a snapshot of it at `<tmp>/snap/NAME`.
fn example_archive(env: &TestEnv, name: &str) -> (PathBuf, PathBuf) {
    let pack = env.copy_example("wso2am-4.2.0-old");
    let dir = env.path().join("snap");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join(name);
    env.snapshot(&pack, &archive, &[]);
    (pack, archive)
}

fn verify(env: &TestEnv, archive: &Path, extra: &[&str]) -> Ran {
    let mut args: Vec<std::ffi::OsString> = vec!["verify".into()];
    args.extend(extra.iter().map(Into::into));
    args.push(archive.into());
    env.run(&args)
}

/// The (kind, path, rule) of every problem in a `verify --json` document.
fn problems(doc: &Value) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = doc["problems"]
        .as_array()
        .expect("problems is an array")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
                p["rule"].as_str().map(str::to_string),
            )
        })
        .collect();
    v.sort();
    v
}

/// Copies `archive` and its sidecar into `<tmp>/NAME/` (same file names).
fn copy_pair(env: &TestEnv, archive: &Path, name: &str) -> PathBuf {
    let dir = env.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    let file = archive.file_name().unwrap();
    let copy = dir.join(file);
    fs::copy(archive, &copy).unwrap();
    let mut side = file.to_owned();
    side.push(".sha256");
    fs::copy(archive.with_file_name(&side), dir.join(&side)).unwrap();
    copy
}

#[test]
fn clean_archive_verifies() {
    let env = TestEnv::new();
    let (_, archive) = example_archive(&env, "clean.tar.zst");
    let r = verify(&env, &archive, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.starts_with("OK "), "{r}");
    assert_eq!(r.stderr, "", "{r}");

    let r = verify(&env, &archive, &["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let doc = r.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert_eq!(doc["archive_sha256"], sha256_file(&archive));
    assert_eq!(doc["product"], "wso2am");
    assert!(doc["files"].as_u64().unwrap() > 10, "{doc}");
    let rules: Vec<&str> = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "carbon-db",
        "am-db",
        "solr-data",
        "repository-data",
        "keystores",
    ] {
        assert!(rules.contains(&want), "{want} in {rules:?}");
    }

    // without a sidecar the archive still verifies, with a warning saying so
    let copy = env.path().join("lone.tar.zst");
    fs::copy(&archive, &copy).unwrap();
    let r = verify(&env, &copy, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("no sidecar"), "{r}");
}

#[test]
fn flipped_byte_in_the_payload_is_a_mismatch() {
    let env = TestEnv::new();
    let (_, archive) = example_archive(&env, "flip.tar.zst");
    let len = fs::metadata(&archive).unwrap().len();
    assert!(len > 1000, "{len}");
    let mut rng = Rng(0x5eed_f11b);
    for i in 0..5 {
        let offset = rng.range(100, len - 100);
        let mask = rng.range(1, 256) as u8;
        let copy = copy_pair(&env, &archive, &format!("flip-{i}"));
        flip_byte(&copy, offset, mask);
        let r = verify(&env, &copy, &[]);
        let what = format!("byte {offset} ^ {mask:#04x}");
        assert_eq!(r.code, Some(5), "{what}: {r}");
        assert!(r.stdout.starts_with("FAILED "), "{what}: {r}");
        let out = r.both();
        assert!(
            ["corrupt-stream", "changed", "sidecar"]
                .iter()
                .any(|k| out.contains(&format!("  {k}: "))),
            "{what}: names no problem: {r}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{what}: {r}");
        assert!(r.stderr.contains("verification found"), "{what}: {r}");
        // the sidecar always catches it: the archive's digest changed
        let doc = verify(&env, &copy, &["--json"]).json();
        assert_eq!(doc["ok"], false);
        assert!(
            problems(&doc).iter().any(|(k, _, _)| k == "sidecar"),
            "{what}: {doc}"
        );
    }
}

#[test]
fn truncated_archives_are_reported_deterministically() {
    let env = TestEnv::new();
    let (_, small) = example_archive(&env, "small.tar.zst");
    let pack = env.mkpack("4.2.0", 0.01);
    let big = env.path().join("snap/big.tar.zst");
    env.snapshot(&pack, &big, &[]);

    let cut = |archive: &Path, dir: &str, keep: u64| -> PathBuf {
        let copy = copy_pair(&env, archive, dir);
        let f = fs::OpenOptions::new().write(true).open(&copy).unwrap();
        f.set_len(keep).unwrap();
        copy
    };
    // the report without its timing ("... problem(s) in 0.14 s")
    let untimed = |r: &Ran| -> String {
        r.stdout
            .lines()
            .map(|l| match (l.starts_with("FAILED "), l.rfind(" in ")) {
                (true, Some(i)) => &l[..i],
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let twice = |archive: &Path| -> Ran {
        let a = verify(&env, archive, &[]);
        let b = verify(&env, archive, &[]);
        assert_eq!(
            (a.code, untimed(&a), &a.stderr),
            (b.code, untimed(&b), &b.stderr),
            "not deterministic"
        );
        a
    };

    // The small archive's first zstd block spans its middle: cut there, nothing decodes, so
    // there are no records to verify against: unreadable, exit 1.
    let len = fs::metadata(&small).unwrap().len();
    let half = cut(&small, "half-small", len / 2);
    let r = twice(&half);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("truncated"), "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");

    // A multi-block archive cut in half: what was read is checked, the cut is named: exit 5.
    let len = fs::metadata(&big).unwrap().len();
    let half = cut(&big, "half-big", len / 2);
    let r = twice(&half);
    assert_eq!(r.code, Some(5), "{r}");
    assert!(
        r.stdout.contains("corrupt-stream: ") && r.stdout.contains("truncated"),
        "{r}"
    );
    assert!(
        r.stdout.contains("missing-record: .carryover/index.json"),
        "{r}"
    );

    // 10 bytes: not an archive any more, exit 1 with a one-line error
    let stub = cut(&small, "ten", 10);
    let r = twice(&stub);
    assert_eq!(r.code, Some(1), "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(r.stderr.starts_with("carryover: error: "), "{r}");
    assert!(r.stderr.contains("ten/small.tar.zst"), "{r}");
}

/// Extracts `archive` with GNU tar, lets `edit` change the extracted tree, and re-creates the
/// archive with GNU tar in the original member order, with a fresh sidecar (so that only the
/// edit can be found).
fn repack(env: &TestEnv, archive: &Path, tag: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let names = tar_list(archive);
    let tree = env.path().join(format!("{tag}-tree"));
    tar_extract(archive, &tree);
    edit(&tree);
    let dir = env.path().join(tag);
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join("re.tar.zst");
    tar_create(&tree, &names, &out);
    assert_eq!(tar_list(&out), names, "re-packed in the same order");
    write_sidecar(&out);
    out
}

/// Rewrites the digest of `name` in SHA256SUMS text to another valid one.
fn edit_sums_line(text: &str, name: &str) -> String {
    let mut hit = false;
    let out: String = text
        .lines()
        .map(|l| {
            if l.ends_with(&format!("  {name}")) {
                hit = true;
                let (hex, rest) = l.split_at(64);
                let first = if hex.starts_with('0') { "1" } else { "0" };
                format!("{first}{}{rest}\n", &hex[1..])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(hit, "{name} not in SHA256SUMS:\n{text}");
    out
}

#[test]
fn repacked_archive_with_edited_records_is_a_mismatch() {
    let env = TestEnv::new();
    let (_, archive) = example_archive(&env, "orig.tar.zst");
    let target = "repository/data/org.example/state.json";

    // control: a GNU tar re-pack with no edit verifies clean
    let same = repack(&env, &archive, "same", |_| {});
    let r = verify(&env, &same, &[]);
    assert_eq!(r.code, Some(0), "re-pack alone must verify: {r}");

    // one digest edited in SHA256SUMS: exactly one sums problem, on that file
    let sums = repack(&env, &archive, "sums", |t| {
        let p = t.join(".carryover/SHA256SUMS");
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, edit_sums_line(&text, target)).unwrap();
    });
    let r = verify(&env, &sums, &["--json"]);
    assert_eq!(r.code, Some(5), "{r}");
    assert_eq!(
        problems(&r.json()),
        [(
            "sums".to_string(),
            target.to_string(),
            Some("repository-data".to_string())
        )]
    );
    let r = verify(&env, &sums, &[]);
    assert_eq!(r.code, Some(5), "{r}");
    assert!(
        r.stdout.contains(&format!(
            "  sums: {target} [repository-data]: SHA256SUMS digest"
        )),
        "{r}"
    );

    // one sha256 edited in index.json: the entry no longer matches its content (and SHA256SUMS
    // no longer matches the index)
    let index = repack(&env, &archive, "index", |t| {
        let p = t.join(".carryover/index.json");
        let mut doc: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        let e = doc["entries"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["path"] == target)
            .expect("indexed");
        e["sha256"] = Value::String("ab".repeat(32));
        fs::write(&p, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    });
    let r = verify(&env, &index, &["--json"]);
    assert_eq!(r.code, Some(5), "{r}");
    let rd = Some("repository-data".to_string());
    assert_eq!(
        problems(&r.json()),
        [
            ("changed".to_string(), target.to_string(), rd.clone()),
            ("sums".to_string(), target.to_string(), rd)
        ]
    );
    let r = verify(&env, &index, &[]);
    assert!(
        r.stdout.contains(&format!(
            "  changed: {target} [repository-data]: content sha256 differs from index"
        )),
        "{r}"
    );
}

#[test]
fn wrong_sidecar_is_a_mismatch() {
    let env = TestEnv::new();
    let (_, archive) = example_archive(&env, "side.tar.zst");
    let sidecar = archive.with_file_name("side.tar.zst.sha256");
    let good = fs::read_to_string(&sidecar).unwrap();
    assert_eq!(good, format!("{}  side.tar.zst\n", sha256_file(&archive)));

    // a digit of the digest edited
    let first = if good.starts_with('0') { "1" } else { "0" };
    fs::write(&sidecar, format!("{first}{}", &good[1..])).unwrap();
    let r = verify(&env, &archive, &["--json"]);
    assert_eq!(r.code, Some(5), "{r}");
    let side = sidecar.to_str().unwrap().to_string();
    assert_eq!(
        problems(&r.json()),
        [("sidecar".to_string(), side.clone(), None)]
    );
    let r = verify(&env, &archive, &[]);
    assert!(
        r.stdout.contains(&format!("  sidecar: {side}: digest")),
        "names the sidecar: {r}"
    );

    // the right digest, but naming another file: an archive renamed with its sidecar is a
    // warning (issue 9 item 17), not a mismatch
    fs::write(
        &sidecar,
        format!("{}  other.tar.zst\n", sha256_file(&archive)),
    )
    .unwrap();
    let r = verify(&env, &archive, &["--json"]);
    assert_eq!(r.code, Some(0), "{r}");
    let doc = r.json();
    assert_eq!(problems(&doc), []);
    assert!(
        doc["warnings"].to_string().contains("other.tar.zst"),
        "{doc}"
    );
    // another name and a wrong digest: a mismatch naming both
    fs::write(
        &sidecar,
        format!("{first}{}  other.tar.zst\n", &good[1..64]),
    )
    .unwrap();
    let r = verify(&env, &archive, &["--json"]);
    assert_eq!(r.code, Some(5), "{r}");
    let doc = r.json();
    assert!(
        doc["problems"].to_string().contains("other.tar.zst"),
        "{doc}"
    );
    assert!(
        doc["problems"].to_string().contains("does not match"),
        "{doc}"
    );
    let _ = side;

    // not a sha256sum line at all
    fs::write(&sidecar, "garbage\n").unwrap();
    let r = verify(&env, &archive, &[]);
    assert_eq!(r.code, Some(5), "{r}");
    assert!(r.stdout.contains("  sidecar: "), "{r}");
}

#[test]
fn nonexistent_archive_is_an_error() {
    let env = TestEnv::new();
    let r = env.run(["verify", "no-such.tar.zst"]);
    assert_eq!(r.code, Some(1), "{r}");
    assert_eq!(r.stdout, "", "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(
        r.stderr.starts_with("carryover: error: no-such.tar.zst: "),
        "{r}"
    );
    let r = env.run(["verify", "--json", "no-such.tar.zst"]);
    assert_eq!(r.code, Some(1), "{r}");
    let err: Value = serde_json::from_str(r.stderr.trim()).expect("error as JSON");
    assert_eq!(err["exit_code"], 1);
    assert!(err["error"].as_str().unwrap().contains("no-such.tar.zst"));
}

// ---------------------------------------------------------------------------------------------
// verify --against PACK
// ---------------------------------------------------------------------------------------------

const CHANGED: &str = "repository/data/org.example/notes.txt";
const MISSING: &str = "repository/tenants/1/synapse-configs/default/api/tenant1--Pets_v1.0.xml";
const EXTRA: &str = "repository/deployment/server/userstores/SECONDARY.xml";

#[test]
fn against_the_pack_names_changed_missing_and_extra_per_rule() {
    let env = TestEnv::new();
    let (pack, archive) = example_archive(&env, "against.tar.zst");
    let r = verify(&env, &archive, &["--against", pack.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "unchanged pack: {r}");

    // one file changed in place (same size), one deleted, one added
    let changed = pack.join(CHANGED);
    let len = fs::metadata(&changed).unwrap().len();
    flip_byte(&changed, len / 2, 0x01);
    fs::remove_file(pack.join(MISSING)).unwrap();
    write(&pack.join(EXTRA), "<UserStoreManager/>\n");

    let against = ["--against", pack.to_str().unwrap()];
    let r = verify(&env, &archive, &[&["--json"], &against[..]].concat());
    assert_eq!(r.code, Some(5), "{r}");
    let doc = r.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["against"], pack.to_str().unwrap());
    let s = |x: &str| x.to_string();
    assert_eq!(
        problems(&doc),
        [
            (s("changed"), s(CHANGED), Some(s("repository-data"))),
            (s("extra"), s(EXTRA), Some(s("userstores"))),
            (s("missing"), s(MISSING), Some(s("tenants"))),
        ]
    );
    for rule in doc["rules"].as_array().unwrap() {
        let want = match rule["name"].as_str().unwrap() {
            "repository-data" | "userstores" | "tenants" => 1,
            _ => 0,
        };
        assert_eq!(rule["problems"], want, "{rule}");
    }

    // text: each problem with its kind and rule, a one-line error
    let junit = env.path().join("report.xml");
    let r = verify(
        &env,
        &archive,
        &[&against[..], &["--junit", junit.to_str().unwrap()]].concat(),
    );
    assert_eq!(r.code, Some(5), "{r}");
    for line in [
        format!("  changed: {CHANGED} [repository-data]: content differs from the snapshot"),
        format!("  missing: {MISSING} [tenants]: in the snapshot but not in the pack"),
        format!("  extra: {EXTRA} [userstores]: in the pack but not in the snapshot"),
    ] {
        assert!(r.stdout.contains(&line), "{line:?} in {r}");
    }
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(r.stderr.contains("verification found 3 problem(s)"), "{r}");

    // JUnit: a testcase per rule (plus the archive's), a failure per bad file, in its rule
    let xml = fs::read_to_string(&junit).unwrap();
    let doc_xml = roxmltree::Document::parse(&xml).expect("well-formed JUnit XML");
    let cases: Vec<roxmltree::Node> = doc_xml
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let rules = doc["rules"].as_array().unwrap();
    assert_eq!(cases.len(), rules.len() + 1, "{xml}");
    for rule in rules {
        let name = format!("rule {}", rule["name"].as_str().unwrap());
        assert!(
            cases.iter().any(|c| c.attribute("name") == Some(&name)),
            "no testcase {name:?}: {xml}"
        );
    }
    let failures: Vec<(String, String)> = doc_xml
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|f| {
            let case = f.parent().unwrap().attribute("name").unwrap().to_string();
            (case, f.text().unwrap_or_default().to_string())
        })
        .collect();
    assert_eq!(failures.len(), 3, "{xml}");
    let mut failures = failures;
    failures.sort();
    assert_eq!(
        failures,
        [
            (s("rule repository-data"), s(CHANGED)),
            (s("rule tenants"), s(MISSING)),
            (s("rule userstores"), s(EXTRA)),
        ]
    );
    let suite = doc_xml
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("3"));
    assert_eq!(
        suite.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );
}

#[test]
fn junit_of_a_clean_verify_has_no_failures() {
    let env = TestEnv::new();
    let (pack, archive) = example_archive(&env, "j.tar.zst");
    let junit = env.path().join("ok.xml");
    let r = verify(
        &env,
        &archive,
        &[
            "--against",
            pack.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, Some(0), "{r}");
    let xml = fs::read_to_string(&junit).unwrap();
    let d = roxmltree::Document::parse(&xml).unwrap();
    assert!(
        d.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count()
            > 5
    );
    assert_eq!(
        d.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0,
        "{xml}"
    );
    assert!(dir_names(env.path()).contains(&"ok.xml".to_string()));
}
