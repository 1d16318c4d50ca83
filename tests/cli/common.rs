//! Shared test harness: a [`TestEnv`] owning a temp dir and a hermetic environment for the
//! `carryover` binary, pack builders (mkpack, example copies, minimal packs), JSON helpers, and
//! guards for child processes (a real H2 engine holding a database, a fake server process).
//!
//! Nothing here reads or writes the developer's real HOME, XDG dirs or catalog: every command
//! gets `CARRYOVER_CATALOG`, `XDG_DATA_HOME` and `HOME` inside the temp dir, `TZ=UTC`, and no
//! inherited `CARRYOVER_*` variable. The environment is not cleared wholesale because the engine
//! scripts need `PATH`, `JAVA_HOME` and friends.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use assert_cmd::Command;
use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/engines`: the real-engine helper scripts.
pub fn engines() -> PathBuf {
    repo().join("tests/fixtures/engines")
}

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// `examples/NAME` (read-only: copy it with [`TestEnv::copy_example`] before touching it).
pub fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

/// A temp dir plus a hermetic environment for the binary.
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("carryover-test-")
            .tempdir()
            .expect("create temp dir");
        for sub in ["xdg", "home"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create env dirs");
        }
        TestEnv { dir }
    }

    /// The temp dir (not canonicalised).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The catalog every command of this env uses.
    pub fn catalog(&self) -> PathBuf {
        self.path().join("catalog.db")
    }

    /// The `carryover` binary with the hermetic environment, run in the temp dir.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("carryover").expect("the carryover binary is built");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CARRYOVER_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("CARRYOVER_CATALOG", self.catalog())
            .env("XDG_DATA_HOME", self.path().join("xdg"))
            .env("HOME", self.path().join("home"))
            .env("TZ", "UTC")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .current_dir(self.path());
        cmd
    }

    /// Generates a synthetic pack with `tests/fixtures/mkpack.py` into `<tmp>/wso2am-VERSION`.
    pub fn mkpack(&self, version: &str, scale: f64) -> PathBuf {
        let out = self.path().join(format!("wso2am-{version}"));
        let st = std::process::Command::new("python3")
            .arg(fixtures().join("mkpack.py"))
            .arg(&out)
            .arg("--scale")
            .arg(scale.to_string())
            .arg("--version")
            .arg(version)
            .stdout(Stdio::null())
            .status()
            .expect("run python3 tests/fixtures/mkpack.py");
        assert!(st.success(), "mkpack.py --version {version} failed: {st}");
        out
    }

    /// Copies the tree `src` (with `cp -a`: modes, mtimes, symlinks) to `<tmp>/NAME`.
    pub fn copy_tree(&self, src: &Path, name: &str) -> PathBuf {
        let dst = self.path().join(name);
        assert!(!dst.exists(), "{} already exists", dst.display());
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(&dst)
            .status()
            .expect("run cp -a");
        assert!(
            st.success(),
            "cp -a {} {} failed",
            src.display(),
            dst.display()
        );
        dst
    }

    /// A writable copy of `examples/NAME` at `<tmp>/NAME`.
    pub fn copy_example(&self, name: &str) -> PathBuf {
        self.copy_tree(&example(name), name)
    }

    /// A minimal pack at `<tmp>/NAME`: only what detection reads (`updates/product.txt`,
    /// `bin/version.txt`) and, if given, one engine jar (a 22-byte empty-zip placeholder) in
    /// `repository/components/plugins`. `product` is the product.txt text, e.g. `wso2am-4.2.0`.
    pub fn minimal_pack(&self, name: &str, product: &str, h2_jar: Option<&str>) -> PathBuf {
        let root = self.path().join(name);
        let version = product.rsplit_once('-').map(|(_, v)| v).unwrap_or(product);
        write(&root.join("updates/product.txt"), product);
        write(
            &root.join("bin/version.txt"),
            &format!("WSO2 API Manager v{version}\n"),
        );
        fs::create_dir_all(root.join("repository/database")).unwrap();
        if let Some(jar) = h2_jar {
            let mut empty_zip = b"PK\x05\x06".to_vec();
            empty_zip.resize(22, 0);
            let p = root.join("repository/components/plugins").join(jar);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, empty_zip).unwrap();
        }
        root
    }

    /// `carryover inspect --json PACK` (must exit 0), parsed.
    pub fn inspect_json(&self, pack: &Path) -> Value {
        self.inspect_json_with(pack, &[])
    }

    /// `carryover inspect --json EXTRA... PACK` (must exit 0), parsed.
    pub fn inspect_json_with(&self, pack: &Path, extra: &[&str]) -> Value {
        let out = self
            .cmd()
            .arg("inspect")
            .arg("--json")
            .args(extra)
            .arg(pack)
            .output()
            .expect("run carryover");
        assert!(
            out.status.success(),
            "carryover inspect --json {} exited {:?}\nstderr: {}",
            pack.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "inspect --json printed no JSON document ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// Writes `text` to `path`, creating parent directories.
pub fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("path has a parent")).unwrap();
    fs::write(path, text).unwrap();
}

/// The rule named `name` of an inspect document.
pub fn rule<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["rules"]
        .as_array()
        .expect("rules is an array")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no rule {name:?} in {}", doc["rules"]))
}

/// The h2 rule whose database is `database`.
pub fn h2_rule<'a>(doc: &'a Value, database: &str) -> &'a Value {
    doc["rules"]
        .as_array()
        .expect("rules is an array")
        .iter()
        .find(|r| r["kind"] == "h2" && r["h2"]["database"] == database)
        .unwrap_or_else(|| panic!("no h2 rule for {database} in {}", doc["rules"]))
}

/// The warning codes of an inspect document, in order.
pub fn warning_codes(doc: &Value) -> Vec<String> {
    doc["warnings"]
        .as_array()
        .expect("warnings is an array")
        .iter()
        .map(|w| w["code"].as_str().expect("code is a string").to_string())
        .collect()
}

/// The first warning with `code`, if any.
pub fn warning<'a>(doc: &'a Value, code: &str) -> Option<&'a Value> {
    doc["warnings"]
        .as_array()
        .expect("warnings is an array")
        .iter()
        .find(|w| w["code"] == code)
}

/// The liveness evidence entries of `kind` (`lock-held`, `live-server`, ...).
pub fn evidence<'a>(doc: &'a Value, kind: &str) -> Vec<&'a Value> {
    doc["liveness"]["evidence"]
        .as_array()
        .expect("evidence is an array")
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// A child process killed (by its own pid) and reaped when dropped, so a failing test leaves
/// nothing running.
pub struct Spawned {
    pub child: Child,
}

impl Spawned {
    pub fn new(cmd: &mut std::process::Command) -> Spawned {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Spawned { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A real H2 engine holding a database open read-write, as a running server would
/// (`tests/fixtures/engines/hold-h2-db.sh`): the OS lock on the `.mv.db` is held until
/// [`HeldDb::release`] closes its stdin.
pub struct HeldDb {
    proc: Spawned,
    stdin: Option<ChildStdin>,
    /// The pid of the Java process holding the lock.
    pub pid: i32,
}

impl HeldDb {
    /// Opens `db_base` (the path without `.mv.db`) and waits for `READY <pid>`.
    pub fn start(db_base: &Path) -> HeldDb {
        HeldDb::start_with(db_base, "")
    }

    /// Like [`HeldDb::start`], with extra `;KEY=VALUE` URL options (e.g. `;AUTO_SERVER=TRUE`,
    /// as API Manager opens WSO2AM_DB).
    pub fn start_with(db_base: &Path, url_options: &str) -> HeldDb {
        let mut proc = Spawned::new(
            std::process::Command::new(engines().join("hold-h2-db.sh"))
                .arg(db_base)
                .env("H2_URL_OPTIONS", url_options)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let stdin = proc.child.stdin.take();
        let stdout = proc.child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read hold-h2-db.sh stdout");
        let pid = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "hold-h2-db.sh {} did not print READY <pid> (got {line:?}; status {:?})",
                    db_base.display(),
                    proc.child.try_wait()
                )
            });
        HeldDb { proc, stdin, pid }
    }

    /// Closes stdin (the engine closes the database and releases the lock) and waits for a
    /// clean exit.
    pub fn release(mut self) {
        drop(self.stdin.take());
        let st = self.proc.child.wait().expect("wait for hold-h2-db.sh");
        assert!(st.success(), "hold-h2-db.sh exited {st}");
    }
}
