//! `carryover inspect`: detection, manifest selection, H2 resolution and formats, the
//! running-server gate, and the warnings, end to end through the binary.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::common::{
    evidence, fixtures, h2_rule, rule, warning, warning_codes, write, HeldDb, Spawned, TestEnv,
};

// ---------------------------------------------------------------------------------------------
// 1. every API Manager line, generated with mkpack
// ---------------------------------------------------------------------------------------------

/// What mkpack writes for one product line (its LINES table) and what inspect must report.
struct Line {
    version: &'static str,
    manifest: &'static str,
    /// (database, where the pack's config declares it) for every database mkpack writes;
    /// None: not declared, so resolved to the default location.
    dbs: &'static [(&'static str, Option<&'static str>)],
    ext: &'static str,
    /// The reported format of every database.
    format: Value,
    h2_engine: &'static str,
    lucene_major: u64,
    update_level: Value,
}

const TOML: &str = "repository/conf/deployment.toml [database.";
const XML: &str = "repository/conf/datasources/master-datasources.xml <datasource>";
/// 2.x: master-datasources.xml declares the carbon, AM and MB databases; metrics is elsewhere.
const DBS_2X: &[(&str, Option<&str>)] = &[
    ("WSO2CARBON_DB", Some(XML)),
    ("WSO2METRICS_DB", None),
    ("WSO2AM_DB", Some(XML)),
    ("WSO2MB_DB", Some(XML)),
];
/// 3.x/4.x: deployment.toml declares the carbon, AM and shared databases (and wins over the
/// master-datasources.xml it is rendered into); the MB store is only in master-datasources.xml.
const DBS_3X_4X: &[(&str, Option<&str>)] = &[
    ("WSO2CARBON_DB", Some(TOML)),
    ("WSO2METRICS_DB", None),
    ("WSO2AM_DB", Some(TOML)),
    ("WSO2SHARED_DB", Some(TOML)),
    ("WSO2MB_DB", Some(XML)),
];

fn check_line(line: Line) {
    let env = TestEnv::new();
    let pack = env.mkpack(line.version, 0.01);
    let doc = env.inspect_json(&pack);
    let v = line.version;

    assert_eq!(doc["pack"]["product"], "wso2am", "{v}");
    assert_eq!(doc["pack"]["version"], v);
    assert_eq!(doc["pack"]["update_level"], line.update_level, "{v}");
    assert_eq!(doc["manifest"], line.manifest, "{v}");
    assert_eq!(
        doc["manifest_origin"],
        format!("built-in {}.toml", line.manifest)
    );
    assert_eq!(
        doc["pack"]["engines"]["h2"]["version"], line.h2_engine,
        "{v}"
    );
    assert_eq!(doc["lucene_major"], line.lucene_major, "{v}");

    for &(db, declared) in line.dbs {
        let r = h2_rule(&doc, db);
        let file = format!("repository/database/{db}{}", line.ext);
        assert_eq!(r["status"], "found", "{v} {db}: {r}");
        assert_eq!(r["path"], file.as_str(), "{v} {db}");
        assert_eq!(r["files"], 1, "{v} {db}");
        let size = fs::metadata(pack.join(&file)).unwrap().len();
        assert_eq!(r["bytes"], size, "{v} {db}");
        let h2 = &r["h2"];
        assert_eq!(h2["file"], file.as_str(), "{v} {db}");
        assert_eq!(h2["format"], line.format, "{v} {db}");
        assert_eq!(h2["opened_by_pack_engine"], true, "{v} {db}");
        assert_eq!(h2["unclean"], false, "{v} {db}");
        assert_eq!(h2["both_extensions"], false, "{v} {db}");
        let from = h2["resolved_from"].as_str().unwrap();
        if let Some(config) = declared {
            assert!(from.starts_with(config), "{v} {db}: {from}");
            assert!(
                from.contains(&format!("jdbc:h2:./repository/database/{db};")),
                "{v} {db}: {from}"
            );
        } else {
            assert!(from.starts_with("default location"), "{v} {db}: {from}");
        }
    }
    // the databases the line does not have are reported missing, not invented
    if line.version == "2.6.0" {
        assert!(doc["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["h2"]["database"] != "WSO2SHARED_DB"));
    }

    for name in ["solr-data", "repository-data", "tenants", "keystores"] {
        let r = rule(&doc, name);
        assert_eq!(r["status"], "found", "{v} {name}: {r}");
        assert!(r["files"].as_u64().unwrap() > 0, "{v} {name}: {r}");
        assert!(r["bytes"].as_u64().unwrap() > 0, "{v} {name}: {r}");
    }
    assert_eq!(rule(&doc, "solr-data")["travels_with"], "carbon-db");

    // mkpack leaves a stale pid file: evidence, but not running
    assert_eq!(doc["liveness"]["running"], false, "{v}");
    let stale = evidence(&doc, "stale-pid-file");
    assert_eq!(stale.len(), 1, "{v}: {}", doc["liveness"]);
    assert_eq!(stale[0]["pid"], 4194301);

    assert!(
        doc["warnings"].as_array().unwrap().is_empty(),
        "{v}: a healthy stopped pack has no warnings: {}",
        doc["warnings"]
    );

    // the human view names the manifest and the product
    let out = env.cmd().arg("inspect").arg(&pack).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(line.manifest), "{v}:\n{text}");
    assert!(
        text.contains(&format!("WSO2 API Manager (wso2am) {v}")),
        "{text}"
    );
    assert!(text.contains("not running"), "{text}");
}

#[test]
fn mkpack_2_6_0() {
    check_line(Line {
        version: "2.6.0",
        manifest: "wso2am-2.x",
        dbs: DBS_2X,
        ext: ".h2.db",
        format: json!({"kind": "page-store"}),
        h2_engine: "1.3.175",
        lucene_major: 5,
        update_level: Value::Null,
    });
}

#[test]
fn mkpack_3_2_0() {
    check_line(Line {
        version: "3.2.0",
        manifest: "wso2am-3.x",
        dbs: DBS_3X_4X,
        ext: ".mv.db",
        format: json!({"kind": "mv-store", "format": 1, "clean": true}),
        h2_engine: "1.4.199",
        lucene_major: 5,
        update_level: json!(12),
    });
}

#[test]
fn mkpack_4_0_0() {
    check_line(Line {
        version: "4.0.0",
        manifest: "wso2am-4.0",
        dbs: DBS_3X_4X,
        ext: ".mv.db",
        format: json!({"kind": "mv-store", "format": 1, "clean": true}),
        h2_engine: "1.4.199",
        lucene_major: 5,
        update_level: json!(12),
    });
}

#[test]
fn mkpack_4_2_0() {
    check_line(Line {
        version: "4.2.0",
        manifest: "wso2am-4.1-4.2",
        dbs: DBS_3X_4X,
        ext: ".mv.db",
        format: json!({"kind": "mv-store", "format": 2, "clean": true}),
        h2_engine: "2.1.210",
        lucene_major: 8,
        update_level: json!(12),
    });
}

#[test]
fn mkpack_4_4_0() {
    check_line(Line {
        version: "4.4.0",
        manifest: "wso2am-4.3-4.4",
        dbs: DBS_3X_4X,
        ext: ".mv.db",
        format: json!({"kind": "mv-store", "format": 3, "clean": true}),
        h2_engine: "2.3.232",
        lucene_major: 9,
        update_level: json!(12),
    });
}

// ---------------------------------------------------------------------------------------------
// the example pack
// ---------------------------------------------------------------------------------------------

#[test]
fn example_pack_baseline() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let doc = env.inspect_json(&pack);
    assert_eq!(
        doc["pack"]["root"],
        fs::canonicalize(&pack).unwrap().to_str().unwrap()
    );
    assert_eq!(doc["pack"]["update_level"], 5);
    assert_eq!(doc["manifest"], "wso2am-4.1-4.2");
    for (db, declared) in [
        ("WSO2CARBON_DB", true),
        ("WSO2AM_DB", true),
        ("WSO2SHARED_DB", true),
        ("WSO2MB_DB", false),
        ("WSO2METRICS_DB", false),
    ] {
        let r = h2_rule(&doc, db);
        assert_eq!(r["status"], "found", "{db}");
        assert_eq!(
            r["h2"]["format"],
            json!({"kind": "mv-store", "format": 2, "clean": true}),
            "{db}"
        );
        assert_eq!(r["h2"]["opened_by_pack_engine"], true, "{db}");
        assert_eq!(
            r["h2"]["resolved_from"].as_str().unwrap().starts_with(TOML),
            declared,
            "{db}"
        );
    }
    // the symlink current.jks -> apim-custom.jks is carried as a link, and counts as no file
    let ks = rule(&doc, "keystores");
    assert_eq!(ks["status"], "found");
    assert_eq!(ks["files"], 3, "{ks}");
    assert_eq!(rule(&doc, "userstores")["status"], "found");
    assert_eq!(rule(&doc, "password-persist")["status"], "missing");
    assert_eq!(doc["liveness"]["running"], false);
    assert_eq!(evidence(&doc, "stale-pid-file").len(), 1);
    assert_eq!(warning_codes(&doc), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// 2. H2 format detection on real files written by every engine
// ---------------------------------------------------------------------------------------------

/// Expected carbon-db report for each sample in tests/fixtures/h2-samples, against a pack
/// shipping H2 2.1.210 (MVStore format 2).
fn sample_expectation(dir: &str) -> (Value, bool, bool) {
    // (format, opened by the 2.1.210 engine, unclean)
    let page = json!({"kind": "page-store"});
    let mv = |f: u32, clean: bool| json!({"kind": "mv-store", "format": f, "clean": clean});
    match dir {
        "h2-1.2.140-pagestore" | "h2-1.3.175-pagestore" | "h2-1.4.200-pagestore" => {
            (page, false, false)
        }
        "h2-1.4.200-mvstore-format1" => (mv(1, true), false, false),
        "h2-2.1.214-mvstore-format2" => (mv(2, true), true, false),
        "h2-2.1.214-copied-while-open" => (mv(2, false), true, true),
        "h2-2.3.232-mvstore-format3" => (mv(3, true), false, false),
        other => panic!("new h2 sample {other}: add its expectation here"),
    }
}

#[test]
fn h2_samples_formats() {
    let env = TestEnv::new();
    let samples = fixtures().join("h2-samples");
    let mut dirs: Vec<_> = fs::read_dir(&samples)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 7, "{dirs:?}");
    for dir in &dirs {
        let pack = env.minimal_pack(dir, "wso2am-4.2.0", Some("h2-engine_2.1.210.wso2v1.jar"));
        let mut copied = Vec::new();
        for f in fs::read_dir(samples.join(dir)).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("WSO2CARBON_DB.") {
                fs::copy(f.path(), pack.join("repository/database").join(&name)).unwrap();
                copied.push(name);
            }
        }
        assert_eq!(copied.len(), 1, "{dir}: {copied:?}");
        let doc = env.inspect_json(&pack);
        assert_eq!(doc["manifest"], "wso2am-4.1-4.2", "{dir}");
        let (format, opened, unclean) = sample_expectation(dir);
        let r = rule(&doc, "carbon-db");
        let file = format!("repository/database/{}", copied[0]);
        assert_eq!(r["status"], "found", "{dir}: {r}");
        assert_eq!(r["path"], file.as_str(), "{dir}");
        let from = r["h2"]["resolved_from"].as_str().unwrap();
        assert!(from.starts_with("default location"), "{dir}: {from}");
        assert_eq!(r["h2"]["format"], format, "{dir}");
        assert_eq!(r["h2"]["opened_by_pack_engine"], opened, "{dir}");
        assert_eq!(r["h2"]["unclean"], unclean, "{dir}");

        let mismatch = warning(&doc, "h2-format-mismatch");
        assert_eq!(mismatch.is_some(), !opened, "{dir}: {}", doc["warnings"]);
        if let Some(w) = mismatch {
            let msg = w["message"].as_str().unwrap();
            assert!(
                msg.contains(&file) && msg.contains("2.1.210"),
                "{dir}: {msg}"
            );
        }
        let unclean_w = warning(&doc, "h2-unclean");
        assert_eq!(unclean_w.is_some(), unclean, "{dir}: {}", doc["warnings"]);
        if let Some(w) = unclean_w {
            assert!(
                w["message"].as_str().unwrap().contains("WSO2CARBON_DB"),
                "{w}"
            );
        }
    }
}

#[test]
fn h2_side_files_mark_unclean_and_are_listed() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let db = pack.join("repository/database");
    fs::write(db.join("WSO2AM_DB.trace.db"), "trace").unwrap();
    fs::write(db.join("WSO2AM_DB.temp.db"), "temp").unwrap();
    let doc = env.inspect_json(&pack);
    let h2 = &h2_rule(&doc, "WSO2AM_DB")["h2"];
    assert_eq!(
        h2["side_files"],
        json!([
            "repository/database/WSO2AM_DB.temp.db",
            "repository/database/WSO2AM_DB.trace.db"
        ])
    );
    assert_eq!(h2["unclean"], true, "a .temp.db means an unclean shutdown");
    assert!(warning(&doc, "h2-unclean").is_some(), "{}", doc["warnings"]);
    // side files are never carried
    assert_eq!(h2_rule(&doc, "WSO2AM_DB")["files"], 1);
}

// ---------------------------------------------------------------------------------------------
// 3. the running-server gate
// ---------------------------------------------------------------------------------------------

#[test]
fn running_h2_engine_holds_the_pack() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let held = HeldDb::start(&pack.join("repository/database/WSO2AM_DB"));

    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], true, "{}", doc["liveness"]);
    let locks = evidence(&doc, "lock-held");
    assert!(
        locks.iter().any(|e| **e
            == json!({
                "kind": "lock-held",
                "path": "repository/database/WSO2AM_DB.mv.db",
                "pid": held.pid
            })),
        "{}",
        doc["liveness"]
    );
    // only the held database is reported locked
    assert_eq!(locks.len(), 1, "{}", doc["liveness"]);
    let text = env.cmd().arg("inspect").arg(&pack).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("RUNNING"), "{text}");
    assert!(
        text.contains(&format!(
            "repository/database/WSO2AM_DB.mv.db is locked by process {}",
            held.pid
        )),
        "{text}"
    );

    held.release();
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], false, "{}", doc["liveness"]);
    assert!(evidence(&doc, "lock-held").is_empty());
}

#[test]
fn pid_file_of_a_dead_process_is_stale() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id() as i32;
    gone.wait().unwrap();
    fs::write(pack.join("wso2carbon.pid"), format!("{pid}\n")).unwrap();

    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], false);
    assert_eq!(
        doc["liveness"]["evidence"],
        json!([{
            "kind": "stale-pid-file",
            "pid": pid,
            "pid_file": "wso2carbon.pid",
            "note": "no such process"
        }])
    );
}

#[test]
fn pid_file_of_a_live_server_on_this_pack() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let canon = fs::canonicalize(&pack).unwrap();

    // a live process that does not run this pack: still stale
    let other = Spawned::new(
        std::process::Command::new("python3")
            .args([
                "-c",
                "import time; time.sleep(30)",
                "-Dcarbon.home=/elsewhere",
            ])
            .stdin(Stdio::null()),
    );
    fs::write(pack.join("wso2carbon.pid"), format!("{}\n", other.pid())).unwrap();
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], false, "{}", doc["liveness"]);
    let stale = evidence(&doc, "stale-pid-file");
    assert_eq!(stale.len(), 1, "{}", doc["liveness"]);
    assert_eq!(stale[0]["pid"], other.pid());
    assert_eq!(stale[0]["note"], "that process does not run this pack");
    drop(other);

    // a live process whose command line says -Dcarbon.home=<this pack>
    let server = Spawned::new(
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import time; time.sleep(30)")
            .arg(format!("-Dcarbon.home={}", canon.display()))
            .stdin(Stdio::null()),
    );
    server.wait_for_cmdline("carbon.home");
    // the pid file holds digits, a newline and NUL padding
    let mut bytes = format!("{}\n", server.pid()).into_bytes();
    bytes.resize(64, 0);
    fs::write(pack.join("wso2carbon.pid"), bytes).unwrap();
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], true, "{}", doc["liveness"]);
    assert_eq!(
        doc["liveness"]["evidence"],
        json!([{"kind": "live-server", "pid": server.pid(), "pid_file": "wso2carbon.pid"}])
    );
}

/// A server whose pid file is gone (or was never written) is still found by its command line
/// (issue 9 item 20): inspect says running, snapshot refuses with exit 6.
#[test]
fn a_server_without_a_pid_file_is_found_by_its_command_line() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let canon = fs::canonicalize(&pack).unwrap();
    let _ = fs::remove_file(pack.join("wso2carbon.pid"));
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], false, "{}", doc["liveness"]);
    let server = Spawned::new(
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import time; time.sleep(30)")
            .arg(format!("-Dcarbon.home={}", canon.display()))
            .stdin(Stdio::null()),
    );
    server.wait_for_cmdline("carbon.home");
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], true, "{}", doc["liveness"]);
    // `python3` may be a shell shim (pyenv) whose transient forks share its command line:
    // every one of them is a live process naming the pack, and the server is among them.
    let ev = doc["liveness"]["evidence"].as_array().unwrap();
    assert!(
        ev.iter().all(|e| e["kind"] == "live-process"),
        "{}",
        doc["liveness"]
    );
    assert!(
        ev.contains(&json!({"kind": "live-process", "pid": server.pid()})),
        "{}",
        doc["liveness"]
    );
    let r = env.run([
        "snapshot".as_ref(),
        pack.as_os_str(),
        "-o".as_ref(),
        env.path().join("s.tar.zst").as_os_str(),
    ]);
    assert_eq!(r.code, Some(6), "{r}");
    assert!(
        r.stderr
            .contains(&format!("process {} runs this pack", server.pid())),
        "{r}"
    );
}

/// The start scripts compute CARBON_HOME with a logical `pwd`, so a server started through a
/// symlink (`/opt/wso2am -> /opt/wso2am-4.2.0`) has `-Dcarbon.home=/opt/wso2am`.
#[test]
fn pid_file_of_a_server_started_through_a_symlink() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let link = env.path().join("wso2am");
    std::os::unix::fs::symlink(&pack, &link).unwrap();
    let server = Spawned::new(
        std::process::Command::new("python3")
            .arg("-c")
            .arg("import time; time.sleep(30)")
            .arg(format!("-Dcarbon.home={}/", link.display()))
            .stdin(Stdio::null()),
    );
    server.wait_for_cmdline("carbon.home");
    fs::write(pack.join("wso2carbon.pid"), format!("{}\n", server.pid())).unwrap();
    for path in [&pack, &link] {
        let doc = env.inspect_json(path);
        let cmdline = fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap_or_default();
        let cwd = fs::read_link(format!("/proc/{}/cwd", server.pid()));
        assert_eq!(
            doc["liveness"]["running"],
            true,
            "{} cmdline={:?} cwd={cwd:?} link={} canon={:?}",
            doc["liveness"],
            String::from_utf8_lossy(&cmdline),
            link.display(),
            fs::canonicalize(&link)
        );
        assert_eq!(evidence(&doc, "live-server").len(), 1);
    }
}

/// How API Manager opens WSO2AM_DB (`AUTO_SERVER=TRUE`): H2 writes a `.lock.db` (method file,
/// with the server address) and still holds the OS lock on the `.mv.db`.
#[test]
fn running_h2_engine_in_auto_server_mode_holds_the_pack() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let held = HeldDb::start_with(
        &pack.join("repository/database/WSO2AM_DB"),
        ";AUTO_SERVER=TRUE",
    );
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], true, "{}", doc["liveness"]);
    assert!(
        evidence(&doc, "lock-held")
            .iter()
            .any(|e| e["path"] == "repository/database/WSO2AM_DB.mv.db" && e["pid"] == held.pid),
        "{}",
        doc["liveness"]
    );
    let fresh = evidence(&doc, "fresh-lock-db");
    assert_eq!(fresh.len(), 1, "{}", doc["liveness"]);
    assert_eq!(fresh[0]["path"], "repository/database/WSO2AM_DB.lock.db");
    let am = &h2_rule(&doc, "WSO2AM_DB")["h2"];
    assert_eq!(
        am["side_files"],
        json!(["repository/database/WSO2AM_DB.lock.db"])
    );
    // a lock file alone is not an unclean shutdown
    assert_eq!(am["unclean"], false);

    held.release();
    assert!(!pack.join("repository/database/WSO2AM_DB.lock.db").exists());
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], false, "{}", doc["liveness"]);
}

#[test]
fn fresh_lock_db_means_running_and_old_one_does_not() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let lock = pack.join("repository/database/X.lock.db");
    fs::write(&lock, "#FileLock\nid=1\nmethod=file\n").unwrap();

    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], true, "{}", doc["liveness"]);
    let fresh = evidence(&doc, "fresh-lock-db");
    assert_eq!(fresh.len(), 1, "{}", doc["liveness"]);
    assert_eq!(fresh[0]["path"], "repository/database/X.lock.db");

    let t2020 = filetime::FileTime::from_unix_time(1_577_836_800, 0);
    filetime::set_file_mtime(&lock, t2020).unwrap();
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["liveness"]["running"], false, "{}", doc["liveness"]);
    assert!(evidence(&doc, "fresh-lock-db").is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. not a pack
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_dir_is_not_a_pack() {
    let env = TestEnv::new();
    let dir = env.path().join("empty");
    fs::create_dir(&dir).unwrap();
    let out = env.cmd().arg("inspect").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains("updates/product.txt"), "{err}");
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert!(err.contains("not a recognised WSO2 pack"), "{err}");

    // with --json the error is one JSON object on stderr
    let out = env
        .cmd()
        .args(["inspect", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["exit_code"], 1);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("updates/product.txt"));
}

#[test]
fn a_file_is_not_a_pack() {
    let env = TestEnv::new();
    let file = env.path().join("wso2am-4.2.0.zip");
    fs::write(&file, "PK").unwrap();
    let out = env.cmd().arg("inspect").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("not a directory"), "{err}");

    let missing = env.path().join("no-such-pack");
    let out = env.cmd().arg("inspect").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
}

#[test]
fn unknown_version_needs_a_manifest() {
    let env = TestEnv::new();
    let pack = env.minimal_pack("wso2am-1.10.0", "wso2am-1.10.0", None);
    let out = env.cmd().arg("inspect").arg(&pack).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no manifest covers wso2am 1.10.0") && err.contains("--manifest"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. warnings
// ---------------------------------------------------------------------------------------------

#[test]
fn profile_backup_is_a_leftover() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    assert!(warning(&env.inspect_json(&pack), "profile-leftovers").is_none());
    fs::copy(
        pack.join("repository/conf/deployment.toml"),
        pack.join("repository/conf/deployment.toml.backup"),
    )
    .unwrap();
    let doc = env.inspect_json(&pack);
    let w = warning(&doc, "profile-leftovers").unwrap_or_else(|| panic!("{}", doc["warnings"]));
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("repository/conf/deployment.toml.backup"),
        "{msg}"
    );
    assert_eq!(
        doc["pack"]["profile"]["backups"],
        json!(["repository/conf/deployment.toml.backup"])
    );
}

#[test]
fn deployment_toml_equal_to_a_profile_template_is_a_leftover() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let tpl = pack.join("repository/resources/conf/deployment-templates/gateway-worker.toml");
    fs::create_dir_all(tpl.parent().unwrap()).unwrap();
    fs::copy(pack.join("repository/conf/deployment.toml"), &tpl).unwrap();
    let doc = env.inspect_json(&pack);
    assert_eq!(doc["pack"]["profile"]["profile"], "gateway-worker");
    let w = warning(&doc, "profile-leftovers").unwrap_or_else(|| panic!("{}", doc["warnings"]));
    assert!(
        w["message"].as_str().unwrap().contains("gateway-worker"),
        "{w}"
    );
}

#[test]
fn h2_db_beside_mv_db_is_warned() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    fs::copy(
        fixtures().join("h2-samples/h2-1.4.200-pagestore/WSO2CARBON_DB.h2.db"),
        pack.join("repository/database/WSO2CARBON_DB.h2.db"),
    )
    .unwrap();
    let doc = env.inspect_json(&pack);
    let w = warning(&doc, "h2-and-mv").unwrap_or_else(|| panic!("{}", doc["warnings"]));
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("repository/database/WSO2CARBON_DB.h2.db")
            && msg.contains("repository/database/WSO2CARBON_DB.mv.db"),
        "{msg}"
    );
    let r = h2_rule(&doc, "WSO2CARBON_DB");
    assert_eq!(r["h2"]["both_extensions"], true);
    // the pack ships H2 2.1.210, which opens the .mv.db and ignores the .h2.db
    assert_eq!(r["path"], "repository/database/WSO2CARBON_DB.mv.db");
    assert_eq!(r["h2"]["format"]["format"], 2);
    // the other databases are not affected
    assert_eq!(h2_rule(&doc, "WSO2AM_DB")["h2"]["both_extensions"], false);
}

#[test]
fn database_outside_the_pack_is_external() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let toml = pack.join("repository/conf/deployment.toml");
    let text = fs::read_to_string(&toml).unwrap();
    let old = "url = \"jdbc:h2:./repository/database/WSO2CARBON_DB;DB_CLOSE_ON_EXIT=FALSE\"";
    assert!(text.contains(old), "the example's [database.local] changed");
    fs::write(
        &toml,
        text.replace(old, "url = \"jdbc:h2:/somewhere/outside/WSO2CARBON_DB\""),
    )
    .unwrap();

    let doc = env.inspect_json(&pack);
    let r = rule(&doc, "carbon-db");
    assert_eq!(r["status"], "external", "{r}");
    assert_eq!(r["files"], 0);
    assert_eq!(r["path"], Value::Null);
    assert_eq!(
        r["h2"]["location"],
        json!({"kind": "external", "path": "/somewhere/outside/WSO2CARBON_DB"})
    );
    assert!(r["h2"]["resolved_from"]
        .as_str()
        .unwrap()
        .starts_with("repository/conf/deployment.toml [database.local]"));
    let w = warning(&doc, "external-database").unwrap_or_else(|| panic!("{}", doc["warnings"]));
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("WSO2CARBON_DB") && msg.contains("/somewhere/outside/WSO2CARBON_DB"),
        "{msg}"
    );
    // external is not "missing": no required-missing warning for it
    assert!(
        warning(&doc, "required-missing").is_none(),
        "{}",
        doc["warnings"]
    );
}

#[test]
fn required_rule_without_state_is_warned() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    fs::remove_file(pack.join("repository/database/WSO2SHARED_DB.mv.db")).unwrap();
    let doc = env.inspect_json(&pack);
    assert_eq!(rule(&doc, "shared-db")["status"], "missing");
    let w = warning(&doc, "required-missing").unwrap_or_else(|| panic!("{}", doc["warnings"]));
    assert!(w["message"].as_str().unwrap().contains("shared-db"), "{w}");
    // an optional rule finding nothing is not a warning
    fs::remove_file(pack.join("repository/database/WSO2METRICS_DB.mv.db")).unwrap();
    let doc = env.inspect_json(&pack);
    assert_eq!(warning_codes(&doc), vec!["required-missing"]);
}

// ---------------------------------------------------------------------------------------------
// 6. --manifest
// ---------------------------------------------------------------------------------------------

const CUSTOM: &str = r#"# a user's manifest
[manifest]
name = "custom-test"
description = "only tenants and the carbon database"
product = "wso2am"
min_version = "4.2.0"
below_version = "4.2.1"

[[rule]]
name = "only-tenants"
kind = "dir"
path = "repository/tenants"
required = true

[[rule]]
name = "carbon"
kind = "h2"
database = "WSO2CARBON_DB"
"#;

#[test]
fn custom_manifest_is_used() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let m = env.path().join("custom.toml");
    write(&m, CUSTOM);
    let doc = env.inspect_json_with(&pack, &["--manifest", m.to_str().unwrap()]);
    assert_eq!(doc["manifest"], "custom-test");
    assert_eq!(doc["manifest_origin"], m.to_str().unwrap());
    assert!(
        doc["manifest_reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("--manifest {}", m.display())),
        "{}",
        doc["manifest_reason"]
    );
    let names: Vec<&str> = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["only-tenants", "carbon"]);
    assert_eq!(rule(&doc, "only-tenants")["status"], "found");
    assert_eq!(
        rule(&doc, "carbon")["path"],
        "repository/database/WSO2CARBON_DB.mv.db"
    );

    let out = env
        .cmd()
        .arg("inspect")
        .arg("--manifest")
        .arg(&m)
        .arg(&pack)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("manifest   custom-test"), "{text}");
}

#[test]
fn custom_manifest_for_another_line_is_used_with_a_note() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let m = env.path().join("is.toml");
    write(
        &m,
        &CUSTOM
            .replace("product = \"wso2am\"", "product = \"wso2is\"")
            .replace("custom-test", "custom-is"),
    );
    let doc = env.inspect_json_with(&pack, &["--manifest", m.to_str().unwrap()]);
    assert_eq!(doc["manifest"], "custom-is");
    let why = doc["manifest_reason"].as_str().unwrap();
    assert!(why.contains("note:") && why.contains("wso2is"), "{why}");
}

/// The example pack is not modified by inspect (it reads only).
#[test]
fn inspect_writes_nothing() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let before = listing(&pack);
    env.inspect_json(&pack);
    let out = env.cmd().arg("inspect").arg(&pack).output().unwrap();
    assert!(out.status.success());
    assert_eq!(listing(&pack), before);
}

fn listing(root: &Path) -> Vec<(String, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .map(|e| {
            let m = e.path().symlink_metadata().unwrap();
            (
                e.path().display().to_string(),
                m.len(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            )
        })
        .collect();
    v.sort();
    v
}
