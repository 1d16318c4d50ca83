//! `carryover transplant`: the real engines read what was carried, revert gives back the exact
//! tree, sources never change, every gate refuses before the first write (H2 format, Lucene
//! major, product, running server, a second writer), hostile archives never leave staging, a
//! full disk fails cleanly, and SIGKILL at random moments leaves the pack "before" or "after".
//!
//! Trees are compared with [`pack_digest`]: content, type, mode, mtime with nanoseconds and
//! symlink targets of every path (directories included), carryover's own `.carryover/` excluded.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    engines, example, file_fingerprint, fixtures, pack_digest, sha256_file, tar_member,
    tree_digest_all, write_random_file, HeldDb, PackDigest, Ran, Rng, Spawned, TestEnv,
};

// ---------------------------------------------------------------------------------------------
// fixtures and helpers (also used by crash.rs)
// ---------------------------------------------------------------------------------------------

/// The example OLD pack (with the empty `solr/data/tlog` git drops) and its snapshot, in a
/// fresh env; copies of the example NEW pack on demand.
pub struct Fx {
    pub env: TestEnv,
    pub old: PathBuf,
    pub archive: PathBuf,
}

impl Fx {
    pub fn new() -> Fx {
        Fx::with_old(|_| {})
    }

    /// Like [`Fx::new`], with `edit` applied to the OLD copy before it is snapshotted.
    pub fn with_old(edit: impl FnOnce(&Path)) -> Fx {
        let env = TestEnv::new();
        let old = env.copy_example("wso2am-4.2.0-old");
        fs::create_dir_all(old.join("solr/data/tlog")).unwrap();
        edit(&old);
        let archive = env.path().join("old.tar.zst");
        snapshot(&env, &old, &archive);
        Fx { env, old, archive }
    }

    /// A fresh copy of the example NEW pack at `<tmp>/NAME`.
    pub fn new_pack(&self, name: &str) -> PathBuf {
        self.env.copy_tree(&example("wso2am-4.2.0-new"), name)
    }

    /// `carryover transplant EXTRA... SOURCE TARGET`.
    pub fn transplant(&self, source: &Path, target: &Path, extra: &[&str]) -> Ran {
        transplant(&self.env, source, target, extra)
    }

    /// Everything about the sources that must never change: the OLD tree (`.carryover/`
    /// included), the archive and its sidecar.
    pub fn sources(&self) -> Sources {
        Sources::of(&self.old, &self.archive)
    }
}

/// `carryover snapshot -q -o ARCHIVE PACK`, which must exit 0.
pub fn snapshot(env: &TestEnv, pack: &Path, archive: &Path) {
    let r = env.run([
        "snapshot".as_ref(),
        "-q".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        pack.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "snapshot {}: {r}", pack.display());
}

/// The pristine `deployment.toml` of 4.2.0: the base of the three-way config merge.
pub fn pristine() -> PathBuf {
    example("pristine-4.2.0")
}

/// A base for the config merge in which the update left `deployment.toml` alone (NEW's own file):
/// the operator's file is carried as it is, mtime included, so "after" trees are reproducible
/// (a merged file gets the time of the merge). Created in the env on first use.
pub fn keep_base(env: &TestEnv) -> PathBuf {
    let base = env.path().join("base-keep");
    let toml = base.join("repository/conf/deployment.toml");
    if !toml.exists() {
        fs::create_dir_all(toml.parent().unwrap()).unwrap();
        fs::copy(
            example("wso2am-4.2.0-new").join("repository/conf/deployment.toml"),
            &toml,
        )
        .unwrap();
    }
    base
}

/// `carryover transplant EXTRA... SOURCE TARGET`, with `--base examples/pristine-4.2.0` unless
/// EXTRA names a base (without a base, deployment.toml conflicts and the transplant exits 3).
pub fn transplant(env: &TestEnv, source: &Path, target: &Path, extra: &[&str]) -> Ran {
    let mut args: Vec<std::ffi::OsString> = vec!["transplant".into()];
    if !extra.contains(&"--base") {
        args.push("--base".into());
        args.push(pristine().into());
    }
    args.extend(extra.iter().map(Into::into));
    args.push(source.into());
    args.push(target.into());
    env.run(&args)
}

/// `carryover transplant --revert TARGET`.
pub fn revert(env: &TestEnv, target: &Path) -> Ran {
    env.run([
        "transplant".as_ref(),
        "--revert".as_ref(),
        target.as_os_str(),
    ])
}

/// `carryover transplant --recover TARGET`, which must exit 0.
pub fn recover(env: &TestEnv, target: &Path) -> Ran {
    let r = env.run([
        "transplant".as_ref(),
        "--recover".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "--recover {}: {r}", target.display());
    r
}

/// Transaction directories under `PACK/.carryover/txn`.
pub fn txn_dirs(pack: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(pack.join(".carryover/txn"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[track_caller]
pub fn assert_no_txn(pack: &Path) {
    let left = txn_dirs(pack);
    assert!(left.is_empty(), "transaction dirs left behind: {left:?}");
}

#[track_caller]
pub fn assert_same(what: &str, got: &PackDigest, want: &PackDigest) {
    assert!(got == want, "{what}: the tree differs:\n{}", want.diff(got));
}

/// The sources' state: OLD tree digest, archive and sidecar fingerprints.
#[derive(Debug, PartialEq, Eq)]
pub struct Sources {
    old: String,
    files: Vec<(PathBuf, String)>,
}

impl Sources {
    pub fn of(old: &Path, archive: &Path) -> Sources {
        let sidecar = PathBuf::from(format!("{}.sha256", archive.display()));
        Sources {
            old: tree_digest_all(old).digest,
            files: [archive.to_path_buf(), sidecar]
                .into_iter()
                .map(|p| {
                    let f = file_fingerprint(&p);
                    (p, f)
                })
                .collect(),
        }
    }
}

/// The one `carryover: error:` line of a failed command.
#[track_caller]
fn error_line(r: &Ran) -> String {
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("carryover: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line: {r}");
    lines[0].to_string()
}

/// The databases of the example OLD pack and their row counts.
const OLD_DBS: &[(&str, u32)] = &[
    ("WSO2CARBON_DB", 120),
    ("WSO2AM_DB", 80),
    ("WSO2SHARED_DB", 60),
    ("WSO2MB_DB", 10),
    ("WSO2METRICS_DB", 5),
];

/// Runs the real-engine checks in parallel; each must exit 0 and print `OK`.
fn engine_checks(checks: Vec<(String, std::process::Command)>) {
    let kids: Vec<(String, std::process::Child)> = checks
        .into_iter()
        .map(|(what, mut c)| {
            let child = c
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            (what, child)
        })
        .collect();
    for (what, child) in kids {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with("OK"),
            "{what}: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn h2_check(db_base: &Path, rows: u32) -> (String, std::process::Command) {
    let mut c = std::process::Command::new(engines().join("check-h2-db.sh"));
    c.arg(db_base).arg(rows.to_string());
    (format!("check-h2-db.sh {} {rows}", db_base.display()), c)
}

/// The OLD pack's databases (real H2) and Lucene index (real Lucene 8) read back from `new`.
fn check_old_state_in(new: &Path) {
    let mut checks: Vec<_> = OLD_DBS
        .iter()
        .map(|(db, rows)| h2_check(&new.join("repository/database").join(db), *rows))
        .collect();
    let mut c = std::process::Command::new(engines().join("check-lucene-index.sh"));
    c.env("LUCENE_MAJOR", "8")
        .arg(new.join("solr/data/index"))
        .arg("40");
    checks.push(("check-lucene-index.sh solr/data/index 40".into(), c));
    engine_checks(checks);
}

/// Replaces the plugins jar `from` of `pack` by a 22-byte empty-zip placeholder named `to`.
fn swap_jar(pack: &Path, from: Option<&str>, to: &str) {
    let plugins = pack.join("repository/components/plugins");
    if let Some(f) = from {
        fs::remove_file(plugins.join(f)).unwrap();
    }
    let mut empty_zip = b"PK\x05\x06".to_vec();
    empty_zip.resize(22, 0);
    fs::write(plugins.join(to), empty_zip).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. real engines read what was carried
// ---------------------------------------------------------------------------------------------

#[test]
fn archive_source_carries_databases_and_index_the_real_engines_read() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    let src = fx.sources();
    let before = pack_digest(&new);

    // A base where the update left deployment.toml alone: everything is carried as it is in the
    // archive (a merged deployment.toml would differ from it, and verify --against says so).
    let base = keep_base(&fx.env);
    let r = fx.transplant(&fx.archive, &new, &["--base", base.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("committed"), "{r}");
    assert_ne!(pack_digest(&new), before, "the transplant changed nothing");
    check_old_state_in(&new);

    let v = fx.env.run([
        "verify".as_ref(),
        fx.archive.as_os_str(),
        "--against".as_ref(),
        new.as_os_str(),
    ]);
    assert_eq!(
        v.code,
        Some(0),
        "verify --against after the transplant: {v}"
    );
    assert_eq!(fx.sources(), src, "the archive or OLD changed");
}

#[test]
fn pack_source_carries_databases_and_index_the_real_engines_read() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    let src = fx.sources();

    let r = fx.transplant(&fx.old, &new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("pack"), "{r}");
    check_old_state_in(&new);
    assert_eq!(fx.sources(), src, "the OLD pack changed");
    assert!(
        !fx.old.join(".carryover").exists(),
        "transplant wrote into the source pack"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. revert gives back the exact tree; sources stay byte-identical
// ---------------------------------------------------------------------------------------------

#[test]
fn revert_restores_the_exact_tree_and_sources_never_change() {
    let fx = Fx::new();
    let src = fx.sources();
    for (i, source) in [fx.archive.clone(), fx.old.clone()].iter().enumerate() {
        let new = fx.new_pack(&format!("new-{i}"));
        let before = pack_digest(&new);
        let r = fx.transplant(source, &new, &[]);
        assert_eq!(r.code, Some(0), "{r}");
        let after = pack_digest(&new);
        assert_ne!(after, before, "the transplant changed nothing");
        assert_eq!(fx.sources(), src, "a source changed during the transplant");

        let rv = revert(&fx.env, &new);
        assert_eq!(rv.code, Some(4), "--revert exits 4: {rv}");
        assert!(rv.stdout.contains("reverted"), "{rv}");
        assert_same("after --revert", &pack_digest(&new), &before);
        assert_no_txn(&new);

        // Nothing left to revert: refused, and the pack stays as it is.
        let again = revert(&fx.env, &new);
        assert_eq!(again.code, Some(1), "{again}");
        assert!(again.stderr.contains("no transplant to revert"), "{again}");
        assert_same("after a second --revert", &pack_digest(&new), &before);
    }

    // Two transplants in a row: revert undoes only the last one.
    let new = fx.new_pack("new-twice");
    assert_eq!(fx.transplant(&fx.archive, &new, &[]).code, Some(0));
    let first = pack_digest(&new);
    assert_eq!(fx.transplant(&fx.old, &new, &["--force"]).code, Some(0));
    assert_eq!(revert(&fx.env, &new).code, Some(4));
    assert_same("revert after two transplants", &pack_digest(&new), &first);
    assert_eq!(fx.sources(), src);
}

#[test]
fn directories_the_swap_creates_get_a_deterministic_mtime() {
    // A new pack without repository/resources/security: the keystore glob creates it and
    // installs four files into it, one unit each. Two runs into identical copies (a while apart)
    // must give identical trees, and revert must remove the created directory again.
    let fx = Fx::new();
    let mut digests = Vec::new();
    for name in ["a", "b"] {
        let new = fx.new_pack(name);
        fs::remove_dir_all(new.join("repository/resources/security")).unwrap();
        let t = filetime::FileTime::from_unix_time(1_704_067_200, 0);
        filetime::set_file_mtime(new.join("repository/resources"), t).unwrap();
        let before = pack_digest(&new);
        // (a merged deployment.toml would carry the time of the merge)
        let base = keep_base(&fx.env);
        let r = fx.transplant(&fx.archive, &new, &["--base", base.to_str().unwrap()]);
        assert_eq!(r.code, Some(0), "{r}");
        assert!(new
            .join("repository/resources/security/current.jks")
            .is_symlink());
        digests.push(pack_digest(&new));
        assert_eq!(revert(&fx.env, &new).code, Some(4));
        assert_same("revert", &pack_digest(&new), &before);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_same("two identical transplants", &digests[1], &digests[0]);
}

// ---------------------------------------------------------------------------------------------
// 13. --dry-run
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_changes_nothing_and_lists_every_rule_action() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    let before = pack_digest(&new);
    for source in [&fx.archive, &fx.old] {
        let r = fx.transplant(source, &new, &["--dry-run", "--skip-db", "WSO2METRICS_DB"]);
        assert_eq!(r.code, Some(0), "{r}");
        for (rule, action) in [
            ("carbon-db", "replace"),
            ("repository-data", "replace"),
            ("solr-data", "create"),
            ("password-persist", "keep"),
            ("metrics-db", "drop"),
        ] {
            assert!(
                r.stdout.lines().any(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w.first() == Some(&rule) && w.get(1) == Some(&action)
                }),
                "no `{rule} {action}` line:\n{r}"
            );
        }
        assert!(r.stdout.contains("nothing was changed"), "{r}");
        assert_same("after --dry-run", &pack_digest(&new), &before);
        assert_no_txn(&new);

        let j = fx.transplant(source, &new, &["--dry-run", "--json"]);
        assert_eq!(j.code, Some(0), "{j}");
        let doc = j.json();
        assert_eq!(doc["dry_run"], true);
        assert_eq!(doc["result"], "planned");
        let carbon = doc["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == "carbon-db")
            .unwrap();
        assert_eq!(carbon["action"], "replace", "{carbon}");
        assert_same("after --dry-run --json", &pack_digest(&new), &before);
    }
}

// ---------------------------------------------------------------------------------------------
// 10. catalog, 11. advice
// ---------------------------------------------------------------------------------------------

#[test]
fn the_catalog_records_the_committed_transplant() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    assert_eq!(fx.transplant(&fx.archive, &new, &[]).code, Some(0));
    let l = fx.env.run(["list", "--json"]);
    assert_eq!(l.code, Some(0), "{l}");
    let doc = l.json();
    let entries = doc.as_array().expect("list --json is an array");
    let t = entries
        .iter()
        .find(|e| e["kind"] == "transplant")
        .unwrap_or_else(|| panic!("no transplant in the catalog: {doc}"));
    assert_eq!(t["subject"], new.to_str().unwrap(), "{t}");
    assert!(t["summary"].as_str().unwrap().contains("committed"), "{t}");
    let s = fx.env.run(["show", t["id"].as_str().unwrap(), "--json"]);
    assert_eq!(s.code, Some(0), "{s}");
    let d = s.json();
    assert_eq!(d["detail"]["result"], "committed", "{d}");
    assert_eq!(
        fs::canonicalize(d["detail"]["target"].as_str().unwrap()).unwrap(),
        fs::canonicalize(&new).unwrap()
    );
}

#[test]
fn a_profile_optimised_new_pack_gets_profile_setup_advice() {
    let fx = Fx::new();
    let plain = fx.new_pack("plain");
    let r = fx.transplant(&fx.archive, &plain, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(!r.stdout.contains("profileSetup.sh"), "{r}");

    let new = fx.new_pack("new");
    fs::copy(
        new.join("repository/conf/deployment.toml"),
        new.join("repository/conf/deployment.toml.backup"),
    )
    .unwrap();
    let r = fx.transplant(&fx.archive, &new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let advice: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("advice:"))
        .collect();
    assert!(
        advice
            .iter()
            .any(|l| l.contains("profileSetup.sh") && l.contains("--skipConfigOptimization")),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. one writer per pack, 12. running servers
// ---------------------------------------------------------------------------------------------

#[test]
fn a_second_writer_is_refused_at_once() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    fs::create_dir_all(new.join(".carryover")).unwrap();
    let lock = new.join(".carryover/lock");
    // The holder execs into sleep keeping fd 9, so killing its pid releases the lock.
    let mut holder = Spawned::new(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec 9>>"$1"; flock -x 9; echo locked; exec sleep 30"#)
            .arg("sh")
            .arg(&lock)
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let before = pack_digest(&new);
    let src = fx.sources();

    for source in [&fx.archive, &fx.old] {
        let t = Instant::now();
        let r = fx.transplant(source, &new, &[]);
        assert_eq!(r.code, Some(6), "{r}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}: it waited for the lock",
            t.elapsed()
        );
        assert!(
            r.stderr.contains("another carryover is writing this pack"),
            "{r}"
        );
        assert_same("refused by the lock", &pack_digest(&new), &before);
        assert_no_txn(&new);
    }
    for args in [&["--revert"][..], &["--recover"][..]] {
        let mut a: Vec<&std::ffi::OsStr> = vec!["transplant".as_ref()];
        a.extend(args.iter().map(|s| s.as_ref() as &std::ffi::OsStr));
        a.push(new.as_os_str());
        let r = fx.env.run(a);
        assert_eq!(r.code, Some(6), "{args:?}: {r}");
    }
    assert_eq!(fx.sources(), src);
    drop(holder);
    let r = fx.transplant(&fx.archive, &new, &[]);
    assert_eq!(r.code, Some(0), "after the lock was released: {r}");
}

#[test]
fn a_running_server_on_either_pack_is_refused() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    {
        let held = HeldDb::start(&new.join("repository/database/WSO2AM_DB"));
        let before = pack_digest(&new);
        for source in [&fx.archive, &fx.old] {
            let r = fx.transplant(source, &new, &[]);
            assert_eq!(r.code, Some(6), "{r}");
            assert!(r.stderr.contains("new pack is in use"), "{r}");
            assert!(r.stderr.contains("WSO2AM_DB"), "names the database: {r}");
            assert_same("refused: server running", &pack_digest(&new), &before);
            assert_no_txn(&new);
        }
        held.release();
    }
    // The OLD pack (a directory source) held open: refused too.
    let new2 = fx.new_pack("new2");
    let before = pack_digest(&new2);
    let held = HeldDb::start(&fx.old.join("repository/database/WSO2CARBON_DB"));
    let r = fx.transplant(&fx.old, &new2, &[]);
    assert_eq!(r.code, Some(6), "{r}");
    assert!(r.stderr.contains("old pack is in use"), "{r}");
    assert_same("refused: old server running", &pack_digest(&new2), &before);
    assert_no_txn(&new2);
    held.release();
}

// ---------------------------------------------------------------------------------------------
// 6. H2 format gate
// ---------------------------------------------------------------------------------------------

#[test]
fn a_format_3_engine_refuses_format_2_databases_before_any_write() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    swap_jar(
        &new,
        Some("h2-engine_2.1.210.wso2v1.jar"),
        "h2-engine_2.3.232.wso2v1.jar",
    );
    let before = pack_digest(&new);
    let src = fx.sources();
    for source in [&fx.archive, &fx.old] {
        let r = fx.transplant(source, &new, &[]);
        assert_eq!(r.code, Some(1), "{r}");
        let msg = error_line(&r);
        for want in [
            "WSO2CARBON_DB",
            "MVStore format 2",
            "2.3.232",
            "MVStore format 3",
            "SCRIPT TO",
            "RUNSCRIPT",
        ] {
            assert!(msg.contains(want), "message lacks {want:?}: {msg}");
        }
        assert_same("refused by the format gate", &pack_digest(&new), &before);
        assert!(
            !new.join(".carryover/txn").exists(),
            "a transaction was started before the gate"
        );
    }
    assert_eq!(fx.sources(), src);
}

/// A copy of OLD whose WSO2CARBON_DB is the h2-samples file of `sample`.
fn old_with_sample(env: &TestEnv, sample: &str) -> PathBuf {
    let old = env.copy_tree(&example("wso2am-4.2.0-old"), &format!("old-{sample}"));
    fs::create_dir_all(old.join("solr/data/tlog")).unwrap();
    fs::remove_file(old.join("repository/database/WSO2CARBON_DB.mv.db")).unwrap();
    let dir = fixtures().join("h2-samples").join(sample);
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        fs::copy(
            e.path(),
            old.join("repository/database").join(e.file_name()),
        )
        .unwrap();
    }
    old
}

#[test]
fn page_store_and_format_1_sources_are_refused_by_a_2_1_engine() {
    let env = TestEnv::new();
    let new = env.copy_tree(&example("wso2am-4.2.0-new"), "new");
    let before = pack_digest(&new);
    for (sample, fmt) in [
        ("h2-1.2.140-pagestore", "PageStore"),
        ("h2-1.3.175-pagestore", "PageStore"),
        ("h2-1.4.200-pagestore", "PageStore"),
        ("h2-1.4.200-mvstore-format1", "MVStore format 1"),
    ] {
        let old = old_with_sample(&env, sample);
        let archive = env.path().join(format!("{sample}.tar.zst"));
        snapshot(&env, &old, &archive);
        let src = Sources::of(&old, &archive);
        for source in [&old, &archive] {
            let r = transplant(&env, source, &new, &[]);
            assert_eq!(r.code, Some(1), "{sample}: {r}");
            let msg = error_line(&r);
            for want in [
                "WSO2CARBON_DB",
                fmt,
                "2.1.210",
                "MVStore format 2",
                "--skip-db",
            ] {
                assert!(
                    msg.contains(want),
                    "{sample}: message lacks {want:?}: {msg}"
                );
            }
            // Only the carbon database is refused: the others are format 2.
            assert!(!msg.contains("WSO2AM_DB"), "{sample}: {msg}");
            assert_same(sample, &pack_digest(&new), &before);
            assert!(!new.join(".carryover/txn").exists(), "{sample}");
        }
        assert_eq!(
            Sources::of(&old, &archive),
            src,
            "{sample}: a source changed"
        );
    }

    // --skip-db lets it through and leaves the new pack's own WSO2CARBON_DB.
    let old = env.path().join("old-h2-1.3.175-pagestore");
    let archive = env.path().join("h2-1.3.175-pagestore.tar.zst");
    let carbon = new.join("repository/database/WSO2CARBON_DB.mv.db");
    let carbon_before = file_fingerprint(&carbon);
    for (i, source) in [&old, &archive].into_iter().enumerate() {
        let target = env.copy_tree(&example("wso2am-4.2.0-new"), &format!("skip-{i}"));
        let r = transplant(&env, source, &target, &["--skip-db", "WSO2CARBON_DB"]);
        assert_eq!(r.code, Some(0), "{r}");
        let db = target.join("repository/database");
        assert_eq!(
            file_fingerprint(&db.join("WSO2CARBON_DB.mv.db")),
            carbon_before
        );
        assert!(!db.join("WSO2CARBON_DB.h2.db").exists());
        assert_eq!(
            sha256_file(&db.join("WSO2AM_DB.mv.db")),
            sha256_file(&old.join("repository/database/WSO2AM_DB.mv.db")),
            "the other databases are carried"
        );
        // solr/data travels with WSO2CARBON_DB: left behind with it.
        assert!(!target.join("solr").exists(), "{r}");
        assert!(r.stdout.contains("--skip-db"), "{r}");
        if i == 0 {
            engine_checks(vec![
                h2_check(&db.join("WSO2CARBON_DB"), 3),
                h2_check(&db.join("WSO2AM_DB"), 80),
            ]);
        }
    }
}

#[track_caller]
fn assert_no_h2_beside_mv(pack: &Path) {
    let db = pack.join("repository/database");
    for e in fs::read_dir(&db).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".h2.db") {
            assert!(
                !db.join(format!("{base}.mv.db")).exists(),
                "{name} beside {base}.mv.db in {}",
                pack.display()
            );
        }
    }
}

#[test]
fn a_page_store_carried_into_a_1_4_engine_replaces_the_mv_db() {
    let env = TestEnv::new();
    let old = old_with_sample(&env, "h2-1.3.175-pagestore");
    let new = env.copy_tree(&example("wso2am-4.2.0-new"), "new");
    swap_jar(
        &new,
        Some("h2-engine_2.1.210.wso2v1.jar"),
        "h2_1.4.199.wso2v1.jar",
    );
    let before = pack_digest(&new);
    let skip = [
        "--skip-db",
        "WSO2AM_DB",
        "--skip-db",
        "WSO2SHARED_DB",
        "--skip-db",
        "WSO2MB_DB",
        "--skip-db",
        "WSO2METRICS_DB",
    ];
    let r = transplant(&env, &old, &new, &skip);
    assert_eq!(r.code, Some(0), "{r}");
    let db = new.join("repository/database");
    assert_eq!(
        sha256_file(&db.join("WSO2CARBON_DB.h2.db")),
        sha256_file(&old.join("repository/database/WSO2CARBON_DB.h2.db"))
    );
    assert!(!db.join("WSO2CARBON_DB.mv.db").exists(), "{r}");
    assert_no_h2_beside_mv(&new);

    assert_eq!(revert(&env, &new).code, Some(4));
    assert_same("revert", &pack_digest(&new), &before);
    assert!(db.join("WSO2CARBON_DB.mv.db").exists());
}

#[test]
fn an_mv_db_carried_into_a_pack_holding_both_files_removes_the_h2_db() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    let db = new.join("repository/database");
    fs::copy(
        fixtures().join("h2-samples/h2-1.4.200-pagestore/WSO2CARBON_DB.h2.db"),
        db.join("WSO2CARBON_DB.h2.db"),
    )
    .unwrap();
    let before = pack_digest(&new);
    let r = fx.transplant(&fx.archive, &new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(!db.join("WSO2CARBON_DB.h2.db").exists(), "{r}");
    assert_eq!(
        sha256_file(&db.join("WSO2CARBON_DB.mv.db")),
        sha256_file(&fx.old.join("repository/database/WSO2CARBON_DB.mv.db"))
    );
    assert_no_h2_beside_mv(&new);
    assert_eq!(revert(&fx.env, &new).code, Some(4));
    assert_same("revert", &pack_digest(&new), &before);
}

// ---------------------------------------------------------------------------------------------
// 7. Lucene major differs
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lucene_major_change_drops_the_index_and_advises_re_indexing() {
    let fx = Fx::new();
    for (i, source) in [&fx.old, &fx.archive].into_iter().enumerate() {
        let new = fx.new_pack(&format!("new-{i}"));
        swap_jar(
            &new,
            Some("lucene_8.11.1.wso2v1.jar"),
            "lucene-core_9.9.2.wso2v1.jar",
        );
        let r = fx.transplant(source, &new, &[]);
        assert_eq!(r.code, Some(0), "{r}");
        let solr = r
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("solr-data"))
            .unwrap_or_else(|| panic!("no solr-data line: {r}"));
        assert!(solr.contains("drop") && solr.contains("re-index"), "{solr}");
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("advice:") && l.contains("re_indexing")),
            "{r}"
        );
        assert!(!new.join("solr/data").exists(), "the index was carried");
        assert_eq!(
            sha256_file(&new.join("repository/database/WSO2CARBON_DB.mv.db")),
            sha256_file(&fx.old.join("repository/database/WSO2CARBON_DB.mv.db")),
            "carbon-db is still carried"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. hostile archives
// ---------------------------------------------------------------------------------------------

/// Builds a tar with python3's tarfile: `.carryover/snapshot.json` (the file given) first, then
/// the entries of one hostile case.
const HOSTILE_PY: &str = r#"
import io, sys, tarfile
out, snap, case, evil_abs = sys.argv[1:5]
T = 1704067200
def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, T, link
    if kind == tarfile.CHRTYPE:
        ti.devmajor, ti.devminor = 1, 3
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
D = "repository/data/"
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    add(t, ".carryover/snapshot.json", data=open(snap, "rb").read(), mode=0o600)
    add(t, D, tarfile.DIRTYPE, mode=0o755)
    add(t, D + "ok.txt", data=b"fine\n")
    if case == "dotdot":
        add(t, "../evil", data=b"evil\n")
    elif case == "absolute":
        add(t, evil_abs, data=b"evil\n")
    elif case == "through-symlink":
        add(t, D + "sub", tarfile.DIRTYPE, mode=0o755)
        add(t, D + "l", tarfile.SYMTYPE, link="sub")
        add(t, D + "l/x", data=b"evil\n")
    elif case == "link-absolute":
        add(t, D + "out", tarfile.SYMTYPE, link="/etc")
    elif case == "link-up":
        add(t, D + "out", tarfile.SYMTYPE, link="../../../../x")
    elif case == "hardlink":
        add(t, D + "h", tarfile.LNKTYPE, link=D + "ok.txt")
    elif case == "chardev":
        add(t, D + "dev", tarfile.CHRTYPE)
    elif case == "fifo":
        add(t, D + "fifo", tarfile.FIFOTYPE)
    elif case == "duplicate":
        add(t, D + "dup.txt", data=b"one\n")
        add(t, D + "dup.txt", data=b"two\n")
    else:
        sys.exit("unknown case " + case)
"#;

fn zstd(tar: &Path, out: &Path) {
    crate::common::tool(
        std::process::Command::new("zstd")
            .arg("-q")
            .arg("-f")
            .arg(tar)
            .arg("-o")
            .arg(out),
    );
}

#[test]
fn hostile_archives_are_refused_before_anything_leaves_staging() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    let snap = fx.env.path().join("snapshot.json");
    fs::write(&snap, tar_member(&fx.archive, ".carryover/snapshot.json")).unwrap();
    let evil_abs = format!("/tmp/carryover-evil-{}", std::process::id());
    let before = pack_digest(&new);
    let cases: &[(&str, &[&str])] = &[
        ("dotdot", &["../evil", "`..`"]),
        ("absolute", &[&evil_abs, "absolute"]),
        ("through-symlink", &["repository/data/l/x", "symlink"]),
        ("link-absolute", &["repository/data/out", "/etc", "outside"]),
        (
            "link-up",
            &["repository/data/out", "../../../../x", "outside"],
        ),
        ("hardlink", &["repository/data/h", "unsupported type"]),
        ("chardev", &["repository/data/dev", "unsupported type"]),
        ("fifo", &["repository/data/fifo", "unsupported type"]),
        ("duplicate", &["repository/data/dup.txt", "duplicate"]),
    ];
    for (case, wants) in cases {
        let tar = fx.env.path().join(format!("{case}.tar"));
        crate::common::tool(
            std::process::Command::new("python3")
                .arg("-c")
                .arg(HOSTILE_PY)
                .arg(&tar)
                .arg(&snap)
                .arg(case)
                .arg(&evil_abs),
        );
        let archive = fx.env.path().join(format!("{case}.tar.zst"));
        zstd(&tar, &archive);
        let fp = file_fingerprint(&archive);

        let r = fx.transplant(&archive, &new, &[]);
        assert_eq!(r.code, Some(1), "{case}: {r}");
        let msg = error_line(&r);
        for w in *wants {
            assert!(msg.contains(w), "{case}: message lacks {w:?}: {msg}");
        }
        assert_same(case, &pack_digest(&new), &before);
        assert_no_txn(&new);
        assert_eq!(
            file_fingerprint(&archive),
            fp,
            "{case}: the archive changed"
        );
        assert!(!fx.env.path().join("evil").exists(), "{case}");
        assert!(!Path::new(&evil_abs).exists(), "{case}");
    }
    assert!(!new.join("repository/data/ok.txt").exists());
}

#[test]
fn a_snapshot_of_another_product_is_refused() {
    let fx = Fx::new();
    let new = fx.new_pack("new");
    let before = pack_digest(&new);
    // The real archive with only snapshot.json's product changed.
    let tar = fx.env.path().join("wso2is.tar");
    crate::common::tool(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(
                r#"
import io, json, subprocess, sys, tarfile
src, out = sys.argv[1:3]
raw = subprocess.run(["zstd", "-dc", src], check=True, capture_output=True).stdout
with tarfile.open(fileobj=io.BytesIO(raw)) as i, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as o:
    for m in i.getmembers():
        data = i.extractfile(m).read() if m.isfile() else None
        if m.name == ".carryover/snapshot.json":
            meta = json.loads(data)
            meta["product"] = "wso2is"
            data = json.dumps(meta).encode()
            m.size = len(data)
        o.addfile(m, io.BytesIO(data) if data is not None else None)
"#,
            )
            .arg(&fx.archive)
            .arg(&tar),
    );
    let archive = fx.env.path().join("wso2is.tar.zst");
    zstd(&tar, &archive);
    let r = fx.transplant(&archive, &new, &[]);
    assert_eq!(r.code, Some(1), "{r}");
    let msg = error_line(&r);
    assert!(
        msg.contains("wso2is") && msg.contains("same product"),
        "{msg}"
    );
    assert_same("another product", &pack_digest(&new), &before);
    assert!(!new.join(".carryover/txn").exists());
}

// ---------------------------------------------------------------------------------------------
// 5. full disk
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted at a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        crate::common::tool(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size}"))
                .arg("tmpfs")
                .arg(dir),
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_full_disk_fails_cleanly_and_leaves_the_pack_as_it_was() {
    if !is_root() {
        eprintln!("SKIPPED a_full_disk_fails_cleanly_and_leaves_the_pack_as_it_was: needs root to mount a tmpfs");
        return;
    }
    let fx = Fx::with_old(|old| {
        write_random_file(&old.join("repository/data/big.bin"), 5 << 20, 0xf011);
    });
    let src = fx.sources();
    let mnt = fx.env.path().join("small");
    let _tmpfs = Tmpfs::mount(&mnt, "3m");
    let new = fx.env.copy_tree(&example("wso2am-4.2.0-new"), "small/new");
    let before = pack_digest(&new);
    for source in [&fx.old, &fx.archive] {
        let r = fx.transplant(source, &new, &[]);
        assert_eq!(r.code, Some(1), "{r}");
        let msg = error_line(&r);
        assert!(
            msg.contains("No space left") || msg.contains("ENOSPC"),
            "{msg}"
        );
        // Names the file it could not write (two threads copy, so not necessarily big.bin).
        assert!(
            msg.contains(new.to_str().unwrap()),
            "the message names the file: {msg}"
        );
        assert!(!msg.contains("rolling back failed"), "{msg}");
        assert_same("after ENOSPC", &pack_digest(&new), &before);
        assert_no_txn(&new);
    }
    assert_eq!(fx.sources(), src);
    // Nothing was left taking space: a transplant that fits still works.
    let small = fx.env.copy_tree(&example("wso2am-4.2.0-old"), "small-old");
    let r = fx.transplant(&small, &new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
}

// ---------------------------------------------------------------------------------------------
// 4. kill -9 at random moments
// ---------------------------------------------------------------------------------------------

#[test]
fn sigkill_at_random_moments_leaves_the_pack_before_or_after() {
    let mut rng = Rng(0x5eed_c0de_2024);
    let fx = Fx::with_old(|old| {
        for i in 0..3 {
            let mib = rng.range(30, 46) as usize;
            write_random_file(
                &old.join(format!("repository/data/blob-{i}.bin")),
                mib << 20,
                rng.next_u64(),
            );
        }
        write_random_file(
            &old.join("solr/data/index/_9.fdt"),
            72 << 20,
            rng.next_u64(),
        );
    });
    let started = Instant::now();
    let src = fx.sources();
    let sources = [fx.archive.clone(), fx.old.clone()];
    let base = keep_base(&fx.env);
    let base_args = ["--base", base.to_str().unwrap(), "-q", "--force"];

    // Clean runs: the "after" tree and the duration of each kind of source.
    let before = pack_digest(&fx.new_pack("ref-before"));
    let mut after = Vec::new();
    let mut took = Vec::new();
    for (k, source) in sources.iter().enumerate() {
        let t = fx.new_pack(&format!("ref-{k}"));
        let t0 = Instant::now();
        let r = fx.transplant(source, &t, &base_args);
        took.push(t0.elapsed());
        assert_eq!(r.code, Some(0), "{r}");
        after.push(pack_digest(&t));
        fs::remove_dir_all(&t).unwrap();
    }

    let (mut killed, mut outcome_before, mut outcome_after) = (0, 0, 0);
    let mut phases: std::collections::BTreeMap<String, u32> = Default::default();
    let mut i = 0;
    while killed < 24 {
        assert!(i < 80, "only {killed} of {i} runs were killed in flight");
        let k = i % 2;
        let target = fx.new_pack(&format!("kill-{i}"));
        // Uniform over the whole run; every third run over its second half only, where the
        // swap and the verification happen (staging dominates the first half).
        let d_us = took[k].as_micros() as u64 + 1;
        let lo = if i % 3 == 2 { d_us / 2 } else { 0 };
        let delay = Duration::from_micros(rng.range(lo, d_us));
        let mut child = fx
            .env
            .std_cmd()
            .arg("transplant")
            .args(base_args)
            .arg(&sources[k])
            .arg(&target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(libc::SIGKILL) {
            killed += 1;
        } else {
            assert!(status.success(), "run {i}: {status}");
        }
        // Where the kill landed: the last journal record of the interrupted transaction.
        let phase = txn_dirs(&target)
            .first()
            .map(|d| {
                fs::read_to_string(d.join("journal"))
                    .ok()
                    .and_then(|j| {
                        j.lines()
                            .rev()
                            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                            .map(|r| r["op"].as_str().unwrap_or("?").to_string())
                    })
                    .unwrap_or_else(|| "no journal".into())
            })
            .unwrap_or_else(|| "no txn".into());
        *phases.entry(phase).or_insert(0) += 1;
        recover(&fx.env, &target);
        let d = pack_digest(&target);
        if d == before {
            outcome_before += 1;
        } else if d == after[k] {
            outcome_after += 1;
        } else {
            panic!(
                "run {i} (source {}, killed after {delay:?}): neither before nor after:\nvs before:\n{}\nvs after:\n{}",
                sources[k].display(),
                before.diff(&d),
                after[k].diff(&d)
            );
        }
        if i % 8 == 0 {
            // The pack takes a normal transplant afterwards.
            let r = fx.transplant(&sources[k], &target, &base_args);
            assert_eq!(r.code, Some(0), "run {i}: {r}");
            assert_same("transplant after a kill", &pack_digest(&target), &after[k]);
        }
        fs::remove_dir_all(&target).unwrap();
        i += 1;
    }
    assert_eq!(fx.sources(), src, "a source changed");
    eprintln!(
        "sigkill: {killed} kills in {i} runs ({outcome_before} before, {outcome_after} after; last journal record {phases:?}); clean runs {took:?}; {:?} in all",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// recovery of a crash between creating the transaction dir and its journal
// ---------------------------------------------------------------------------------------------

#[test]
fn a_transaction_dir_without_journal_does_not_block_the_pack() {
    let fx = Fx::new();
    for (i, how) in ["recover", "inspect", "transplant"].iter().enumerate() {
        let new = fx.new_pack(&format!("new-{i}"));
        // What a crash inside Txn::begin leaves: the directory, no journal yet.
        for sub in ["stage", "backup"] {
            fs::create_dir_all(new.join(".carryover/txn/1700000000000-1").join(sub)).unwrap();
        }
        let before = pack_digest(&new);
        let r = match *how {
            "recover" => recover(&fx.env, &new),
            "inspect" => fx.env.run(["inspect".as_ref(), new.as_os_str()]),
            _ => fx.transplant(&fx.archive, &new, &[]),
        };
        assert_eq!(r.code, Some(0), "{how}: {r}");
        if *how != "transplant" {
            assert_same(how, &pack_digest(&new), &before);
            assert_no_txn(&new);
        }
    }
}
