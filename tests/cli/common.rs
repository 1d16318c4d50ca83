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

/// `--allow-missing` for every required rule of the 4.x built-in manifests: the flags a snapshot of
/// a deliberately partial pack ([`TestEnv::minimal_pack`]) needs.
pub const PARTIAL: [&str; 10] = [
    "--allow-missing",
    "carbon-db",
    "--allow-missing",
    "am-db",
    "--allow-missing",
    "shared-db",
    "--allow-missing",
    "mb-db",
    "--allow-missing",
    "deployment-toml",
];

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
        Command::from_std(self.std_cmd())
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

    /// Waits until the process's command line holds `needle` (it has finished starting).
    pub fn wait_for_cmdline(&self, needle: &str) {
        let path = format!("/proc/{}/cmdline", self.pid());
        for _ in 0..500 {
            if std::fs::read(&path).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{path} never held {needle:?}");
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

// ---------------------------------------------------------------------------------------------
// snapshot / verify helpers
// ---------------------------------------------------------------------------------------------

/// A finished command: exit code (None when killed by a signal), stdout, stderr.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn from_output(out: std::process::Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout then stderr, for messages and "names the problem" checks.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl TestEnv {
    /// Runs `carryover ARGS...` in the hermetic environment.
    pub fn run<I, S>(&self, args: I) -> Ran
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Ran::from_output(self.cmd().args(args).output().expect("run carryover"))
    }

    /// `carryover snapshot --json -o OUT EXTRA... PACK`, which must exit 0; the summary, parsed.
    pub fn snapshot(&self, pack: &Path, out: &Path, extra: &[&str]) -> Value {
        let mut args: Vec<std::ffi::OsString> = vec!["snapshot".into(), "--json".into()];
        args.push("-o".into());
        args.push(out.into());
        args.extend(extra.iter().map(Into::into));
        args.push(pack.into());
        let r = self.run(&args);
        assert_eq!(r.code, Some(0), "snapshot {}: {r}", pack.display());
        r.json()
    }

    /// The `carryover` binary as a plain `std::process::Command` (for spawning and signalling),
    /// with the same hermetic environment as [`TestEnv::cmd`].
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("carryover"));
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
}

/// Runs a helper tool, asserting it exits 0; its stdout.
pub fn tool(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} exited {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `tar --zstd -tf ARCHIVE` (GNU tar): the member names in archive order, one per line
/// (names holding a newline are shown escaped by tar; do not use for those).
pub fn tar_list(archive: &Path) -> Vec<String> {
    let out = tool(
        std::process::Command::new("tar")
            .arg("--zstd")
            .arg("-tf")
            .arg(archive),
    );
    String::from_utf8(out)
        .expect("tar -t prints UTF-8 here")
        .lines()
        .map(str::to_string)
        .collect()
}

/// `tar --zstd -xpf ARCHIVE -C INTO` (GNU tar; `-p` so the result does not depend on the umask).
pub fn tar_extract(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    tool(
        std::process::Command::new("tar")
            .arg("--zstd")
            .arg("-xpf")
            .arg(archive)
            .arg("-C")
            .arg(into),
    );
}

/// One member's bytes: `tar --zstd -xOf ARCHIVE NAME`.
pub fn tar_member(archive: &Path, name: &str) -> Vec<u8> {
    tool(
        std::process::Command::new("tar")
            .arg("--zstd")
            .arg("-xOf")
            .arg(archive)
            .arg(name),
    )
}

/// `.carryover/NAME.json` of an archive, parsed.
pub fn archive_json(archive: &Path, name: &str) -> Value {
    serde_json::from_slice(&tar_member(archive, name))
        .unwrap_or_else(|e| panic!("{name} in {} is not JSON: {e}", archive.display()))
}

/// Builds `out` with GNU tar from `dir`, holding exactly `names` (as `tar -t` lists them, dirs
/// with a trailing `/`) in that order.
pub fn tar_create(dir: &Path, names: &[String], out: &Path) {
    tool(
        std::process::Command::new("tar")
            .arg("--zstd")
            .arg("-cf")
            .arg(out)
            .arg("-C")
            .arg(dir)
            .arg("--no-recursion")
            .arg("--")
            .args(names),
    );
}

/// `sha256sum -c FILE` run in `dir`; the finished command.
pub fn sha256sum_check(dir: &Path, file: &str) -> Ran {
    Ran::from_output(
        std::process::Command::new("sha256sum")
            .arg("-c")
            .arg(file)
            .current_dir(dir)
            .output()
            .expect("run sha256sum"),
    )
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}

/// Writes `ARCHIVE.sha256` afresh for the archive as it now is (`HEX  NAME`).
pub fn write_sidecar(archive: &Path) {
    let name = archive.file_name().unwrap().to_str().unwrap();
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    fs::write(
        PathBuf::from(s),
        format!("{}  {name}\n", sha256_file(archive)),
    )
    .unwrap();
}

/// XORs the byte at `offset` of `path` with `mask` (non-zero), in place.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) {
    use std::io::{Read, Seek, SeekFrom, Write};
    assert_ne!(mask, 0);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= mask;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
}

/// What a tree holds at one path, as compared by the snapshot round-trip tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { content: Vec<u8> },
    Dir,
    Symlink { target: PathBuf },
}

/// One path of a tree: its kind/content, permission bits and mtime (seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub node: Node,
    pub mode: u32,
    pub mtime: i64,
}

/// `path`'s stat, never following a symlink.
pub fn stat(path: &Path) -> Stat {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let node = if m.file_type().is_symlink() {
        Node::Symlink {
            target: fs::read_link(path).unwrap(),
        }
    } else if m.is_dir() {
        Node::Dir
    } else {
        Node::File {
            content: fs::read(path).unwrap(),
        }
    };
    Stat {
        node,
        mode: m.mode() & 0o7777,
        mtime: m.mtime(),
    }
}

/// Every path under `root` (relative, root itself excluded), symlinks not followed.
pub fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, Stat> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                stat(e.path()),
            )
        })
        .collect()
}

/// The files of `dir` (not recursive), sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A tiny deterministic generator (splitmix64) for seeded test data: offsets, trees, bytes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (hi exclusive, hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.range(0, den) < num
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }

    /// `n` bytes: random, or (half the time) compressible text.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        if self.chance(1, 2) {
            while v.len() < n {
                v.extend_from_slice(&self.next_u64().to_le_bytes());
            }
        } else {
            let mut i = self.next_u64() % 1000;
            while v.len() < n {
                v.extend_from_slice(format!("line {i} of some state\n").as_bytes());
                i += 1;
            }
        }
        v.truncate(n);
        v
    }
}

// ---------------------------------------------------------------------------------------------
// transplant helpers: tree digests, big random files
// ---------------------------------------------------------------------------------------------

/// A pack tree as carryover must leave it: one line per path (the root included as `.`) with
/// type, permission bits, mtime in nanoseconds, and content (SHA-256) or symlink target.
/// Directory mtimes count. Two trees are "the same" when their digests are equal.
#[derive(Debug, Clone)]
pub struct PackDigest {
    pub lines: std::collections::BTreeMap<String, String>,
    pub digest: String,
}

impl PartialEq for PackDigest {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for PackDigest {}

impl PackDigest {
    /// The first few paths that differ, for assertion messages.
    pub fn diff(&self, other: &PackDigest) -> String {
        let mut out = Vec::new();
        let keys: std::collections::BTreeSet<&String> =
            self.lines.keys().chain(other.lines.keys()).collect();
        for k in keys {
            let (a, b) = (self.lines.get(k), other.lines.get(k));
            if a != b {
                out.push(format!(
                    "  {k}:\n    {}\n    {}",
                    a.map(String::as_str).unwrap_or("(absent)"),
                    b.map(String::as_str).unwrap_or("(absent)")
                ));
            }
            if out.len() >= 12 {
                out.push("  ...".into());
                break;
            }
        }
        out.join("\n")
    }
}

/// The digest of a pack, excluding carryover's own `.carryover/` at its root.
pub fn pack_digest(root: &Path) -> PackDigest {
    digest_tree(root, true)
}

/// The digest of a whole tree, `.carryover/` included (for sources, which must not change at all).
pub fn tree_digest_all(root: &Path) -> PackDigest {
    digest_tree(root, false)
}

fn digest_tree(root: &Path, skip_carryover: bool) -> PackDigest {
    use sha2::Digest;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut lines = std::collections::BTreeMap::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(skip_carryover && e.depth() == 1 && e.file_name() == ".carryover"));
    let mut buf = vec![0u8; 1 << 20];
    for e in walk {
        let e = e.unwrap_or_else(|err| panic!("walk {}: {err}", root.display()));
        let rel = e.path().strip_prefix(root).unwrap();
        let rel = if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            rel.to_string_lossy().into_owned()
        };
        let m = fs::symlink_metadata(e.path()).unwrap();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link -> {}", fs::read_link(e.path()).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            let mut h = sha2::Sha256::new();
            let mut f = fs::File::open(e.path()).unwrap();
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            format!("file {} {}", m.len(), hex::encode(h.finalize()))
        } else {
            format!("special {:o}", m.mode() & 0o170000)
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        lines.insert(
            rel,
            format!("{mode:o} {}.{:09} {what}", m.mtime(), m.mtime_nsec()),
        );
    }
    let mut h = sha2::Sha256::new();
    for (k, v) in &lines {
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    PackDigest {
        lines,
        digest: hex::encode(h.finalize()),
    }
}

/// A file's identity for "the source did not change": SHA-256 of its bytes plus its mtime.
pub fn file_fingerprint(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!(
        "{} {}.{:09} {:o}",
        sha256_file(path),
        m.mtime(),
        m.mtime_nsec(),
        m.mode()
    )
}

/// Writes `len` seeded pseudo-random (incompressible) bytes to `path`, quickly.
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let mut s = seed | 1;
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            w.copy_from_slice(&s.to_le_bytes());
        }
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}
