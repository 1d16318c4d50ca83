//! `carryover snapshot`: the archive is a plain `tar --zstd` that GNU tar and `sha256sum -c`
//! accept and that restores the pack's state byte for byte (content, mode, mtime, symlinks,
//! empty dirs); default name, `--json`, engine-level integrity (Lucene, H2), the running-server
//! gate, interruption, refusing to overwrite, and the catalog, end to end through the binary.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use filetime::FileTime;
use serde_json::Value;

use crate::common::{
    archive_json, dir_names, engines, fixtures, flip_byte, sha256_file, sha256sum_check, stat,
    tar_extract, tar_list, tar_member, tree, HeldDb, Rng, Spawned, TestEnv, PARTIAL,
};

const SNAPSHOT_JSON: &str = ".carryover/snapshot.json";
const INDEX_JSON: &str = ".carryover/index.json";
const SUMS: &str = ".carryover/SHA256SUMS";

fn set_mtime(path: &Path, secs: i64) {
    let t = FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The entries of an archive's index.json.
fn index_entries(archive: &Path) -> Vec<Value> {
    archive_json(archive, INDEX_JSON)["entries"]
        .as_array()
        .expect("index.json has entries")
        .clone()
}

// ---------------------------------------------------------------------------------------------
// 1. interop with GNU tar and sha256sum
// ---------------------------------------------------------------------------------------------

/// Snapshots `pack` into `<tmp>/out/snap.tar.zst` and checks everything a user of plain GNU
/// tools relies on. `subtrees` are directory rules carried whole: after extraction each must be
/// identical to the pack's, path for path.
fn check_interop(env: &TestEnv, pack: &Path, subtrees: &[&str]) -> PathBuf {
    let out_dir = env.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let archive = out_dir.join("snap.tar.zst");
    let summary = env.snapshot(pack, &archive, &[]);

    // only the archive and its sidecar are left in the output dir (no temp file)
    assert_eq!(
        dir_names(&out_dir),
        ["snap.tar.zst", "snap.tar.zst.sha256"],
        "output dir"
    );
    // mode 0600: it holds credentials and keys
    let mode = fs::metadata(&archive).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "archive mode {mode:o}");
    // the sidecar checks with sha256sum -c in the archive's directory
    let side = sha256sum_check(&out_dir, "snap.tar.zst.sha256");
    assert_eq!(side.code, Some(0), "sha256sum -c sidecar: {side}");
    assert_eq!(side.stdout, "snap.tar.zst: OK\n");
    assert_eq!(summary["archive_sha256"], sha256_file(&archive));

    // GNU tar lists it: records first and last
    let names = tar_list(&archive);
    assert!(names.len() > 3, "{names:?}");
    assert_eq!(names[0], SNAPSHOT_JSON, "first entry");
    assert_eq!(
        names[names.len() - 2..],
        [INDEX_JSON.to_string(), SUMS.to_string()],
        "last entries"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with(".carryover/"))
            .count(),
        3,
        "{names:?}"
    );

    // GNU tar extracts it and sha256sum -c accepts its SHA256SUMS
    let x = env.path().join("extracted");
    tar_extract(&archive, &x);
    let sums = sha256sum_check(&x, SUMS);
    assert_eq!(sums.code, Some(0), "sha256sum -c {SUMS}: {sums}");
    let ok_lines = sums.stdout.lines().filter(|l| l.ends_with(": OK")).count();
    assert_eq!(
        ok_lines as u64,
        summary["files"].as_u64().unwrap(),
        "{sums}"
    );

    // every indexed entry is byte-identical to the pack's: content, mode, mtime, link target
    let entries = index_entries(&archive);
    assert_eq!(
        entries.len() as u64,
        summary["files"].as_u64().unwrap()
            + summary["dirs"].as_u64().unwrap()
            + summary["symlinks"].as_u64().unwrap()
    );
    let mut indexed = BTreeSet::new();
    for e in &entries {
        let rel = e["path"].as_str().unwrap();
        let want = stat(&pack.join(rel));
        let got = stat(&x.join(rel));
        assert_eq!(got, want, "{rel}: extracted differs from the pack");
        assert_eq!(e["mode"], want.mode, "{rel}: index mode");
        assert_eq!(e["mtime"], want.mtime, "{rel}: index mtime");
        indexed.insert(PathBuf::from(rel));
    }
    // ... and nothing else was extracted but their parent directories and the records
    for (rel, _) in tree(&x) {
        if rel.starts_with(".carryover") || indexed.contains(&rel) {
            continue;
        }
        assert!(
            indexed.iter().any(|i| i.starts_with(&rel)),
            "{} extracted but not indexed",
            rel.display()
        );
    }
    // directory rules come back whole
    for sub in subtrees {
        assert_eq!(
            stat(&x.join(sub)),
            stat(&pack.join(sub)),
            "{sub} (the dir itself)"
        );
        let (want, got) = (tree(&pack.join(sub)), tree(&x.join(sub)));
        assert!(!want.is_empty(), "{sub} is empty in the pack");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{sub}: paths"
        );
        assert_eq!(got, want, "{sub}: content/mode/mtime/links");
    }
    // shipped content is never carried
    for e in &entries {
        let p = e["path"].as_str().unwrap();
        assert!(
            !p.starts_with("repository/components/") && !p.starts_with("bin/"),
            "{p} is shipped content"
        );
    }
    archive
}

#[test]
fn example_pack_archive_is_plain_tar_zstd() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let data = pack.join("repository/data");
    // state whose mode and mtime an extraction cannot get right by accident
    let empty = data.join("empty-dir");
    fs::create_dir(&empty).unwrap();
    chmod(&empty, 0o700);
    let notes = data.join("org.example/notes.txt");
    chmod(&notes, 0o640);
    set_mtime(&notes, 1_234_567_890);
    let tool = data.join("org.example/tool.sh");
    fs::write(&tool, "#!/bin/sh\necho hi\n").unwrap();
    chmod(&tool, 0o755);
    set_mtime(&tool, 1_000_000_001);
    let link = pack.join("repository/resources/security/current.jks");
    set_mtime(&link, 1_111_111_111);
    let tlog = pack.join("solr/data/tlog");
    fs::create_dir_all(&tlog).unwrap(); // git does not keep it
    set_mtime(&empty, 1_000_000_000);
    set_mtime(&data.join("org.example"), 1_222_222_222);
    set_mtime(&tlog, 1_333_333_333);

    let archive = check_interop(
        &env,
        &pack,
        &[
            "repository/data",
            "repository/tenants",
            "solr/data",
            "repository/deployment/server/userstores",
        ],
    );
    let x = env.path().join("extracted");
    // the specific things that are easy to lose
    let e = stat(&x.join("repository/data/empty-dir"));
    assert_eq!((e.mode, e.mtime), (0o700, 1_000_000_000));
    assert!(fs::read_dir(x.join("repository/data/empty-dir"))
        .unwrap()
        .next()
        .is_none());
    let t = stat(&x.join("solr/data/tlog"));
    assert_eq!(t.mtime, 1_333_333_333, "empty tlog dir");
    let n = stat(&x.join("repository/data/org.example/notes.txt"));
    assert_eq!((n.mode, n.mtime), (0o640, 1_234_567_890));
    assert_eq!(
        stat(&x.join("repository/data/org.example/tool.sh")).mode,
        0o755
    );
    let l = stat(&x.join("repository/resources/security/current.jks"));
    assert_eq!(
        l.node,
        crate::common::Node::Symlink {
            target: "apim-custom.jks".into()
        },
        "a link, not a copy"
    );
    assert_eq!(l.mtime, 1_111_111_111);
    for db in [
        "WSO2CARBON_DB",
        "WSO2AM_DB",
        "WSO2SHARED_DB",
        "WSO2MB_DB",
        "WSO2METRICS_DB",
    ] {
        let rel = format!("repository/database/{db}.mv.db");
        assert_eq!(
            fs::read(x.join(&rel)).unwrap(),
            fs::read(pack.join(&rel)).unwrap(),
            "{rel}"
        );
    }
    // the pid file, logs and tmp are not state
    let names = tar_list(&archive);
    for not in [
        "wso2carbon.pid",
        "repository/logs/wso2carbon.log",
        "tmp/README.txt",
    ] {
        assert!(!names.iter().any(|n| n == not), "{not} carried");
    }
}

#[test]
fn mkpack_pack_archive_is_plain_tar_zstd() {
    let env = TestEnv::new();
    let pack = env.mkpack("4.2.0", 0.01);
    check_interop(
        &env,
        &pack,
        &["repository/data", "repository/tenants", "solr/data"],
    );
}

#[test]
fn default_name_is_product_version_utc_time_in_cwd() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let now = || time::OffsetDateTime::now_utc().format(&fmt).unwrap();
    let before = now();
    let r = env.run(["snapshot".as_ref(), pack.as_os_str()]);
    let after = now();
    assert_eq!(r.code, Some(0), "{r}");
    let archives: Vec<String> = dir_names(env.path())
        .into_iter()
        .filter(|n| n.ends_with(".tar.zst"))
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    let name = &archives[0];
    let stamp = name
        .strip_prefix("wso2am-4.2.0-")
        .and_then(|s| s.strip_suffix(".tar.zst"))
        .unwrap_or_else(|| panic!("{name} is not wso2am-4.2.0-<time>.tar.zst"));
    let b = stamp.as_bytes();
    assert!(
        b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit),
        "{stamp} is not YYYYMMDDTHHMMSSZ"
    );
    assert!(
        before.as_str() <= stamp && stamp <= after.as_str(),
        "{before} <= {stamp} <= {after}"
    );
    assert!(env.path().join(format!("{name}.sha256")).is_file());
    assert!(r.stdout.contains(name.as_str()), "{r}");
}

#[test]
fn json_summary_is_one_document_and_no_progress_without_a_tty() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let archive = env.path().join("a.tar.zst");
    let r = env.run([
        "snapshot".as_ref(),
        "--json".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        pack.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.stderr, "", "nothing but the document: {r}");
    let doc = r.json(); // the whole of stdout is one document
    assert!(doc.is_object(), "{doc}");
    let entries = index_entries(&archive);
    let files: Vec<&Value> = entries.iter().filter(|e| e["type"] == "file").collect();
    assert_eq!(doc["files"], files.len() as u64);
    let bytes_in: u64 = files.iter().map(|e| e["size"].as_u64().unwrap()).sum();
    assert_eq!(doc["bytes_in"], bytes_in);
    assert_eq!(doc["bytes_out"], fs::metadata(&archive).unwrap().len());
    assert_eq!(doc["archive_sha256"], sha256_file(&archive));
    assert_eq!(doc["product"], "wso2am");
    assert_eq!(doc["version"], "4.2.0");
    assert_eq!(doc["catalog_id"], "s1");

    // text mode, stderr not a terminal: the summary only, no progress bar anywhere
    let archive2 = env.path().join("b.tar.zst");
    let r = env.run([
        "snapshot".as_ref(),
        "-o".as_ref(),
        archive2.as_os_str(),
        pack.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(r.stderr, "", "{r}");
    for bar in ["\r", "\x1b[", "ETA", "=>", "MiB/s ETA"] {
        assert!(!r.stdout.contains(bar), "progress bar text {bar:?}: {r}");
    }
    assert!(r.stdout.starts_with("snapshot "), "{r}");
    assert!(r.stdout.contains(&sha256_file(&archive2)), "{r}");
}

// ---------------------------------------------------------------------------------------------
// 4. property: random trees round-trip through the archive byte for byte
// ---------------------------------------------------------------------------------------------

/// Name shapes that break naive tar/sha256sum handling.
fn random_name(rng: &mut Rng, n: u64, long_ok: bool) -> String {
    let shapes = if long_ok { 12 } else { 11 };
    match rng.range(0, shapes) {
        0 => format!("plain-{n}.txt"),
        1 => format!("données-{n}"),
        2 => format!("日本語の名前{n}"),
        3 => format!("emoji-😀-{n}-e\u{301}"),
        4 => format!("שלום-{n}"),
        5 => format!(" spaced  name {n} "),
        6 => format!("new\nline-{n}"),
        7 => format!("back\\slash-{n}\\"),
        8 => format!("tab\tand\\n-literal-{n}"),
        9 => format!("-dash-{n}"),
        10 => format!(".hidden-{n}"),
        _ => {
            // exactly 255 bytes, multi-byte characters included
            let mut s = format!("long-{n}-");
            while s.len() + 2 <= 255 {
                s.push('é');
            }
            while s.len() < 255 {
                s.push('x');
            }
            s
        }
    }
}

/// Link targets that path normalisation would change.
const ODD_TARGETS: &[&str] = &["./x", "a//b", "x/./y/", "/", "..", ".", "//srv//x", "dir/"];

const FILE_MODES: &[u32] = &[0o644, 0o600, 0o640, 0o755, 0o444, 0o700];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o750, 0o775];

/// Builds a random tree under `root` from `seed`; returns how many regular files it holds.
fn random_tree(root: &Path, seed: u64) -> u64 {
    let mut rng = Rng(seed);
    let mut n = 0u64;
    let mut dirs: Vec<(PathBuf, u32)> = vec![(root.to_path_buf(), 0)];
    let mut files: Vec<PathBuf> = Vec::new();
    let mut large_left = 1;
    let mut medium_left = 2;
    // a deep chain: 20 levels
    if rng.chance(1, 2) {
        let mut p = root.to_path_buf();
        for level in 0..20 {
            n += 1;
            p = p.join(if level % 3 == 0 {
                format!("d{level}-ü")
            } else {
                format!("d{level}")
            });
            fs::create_dir(&p).unwrap();
            dirs.push((p.clone(), 3));
        }
        fs::write(p.join("bottom.txt"), b"deep").unwrap();
        files.push(p.join("bottom.txt"));
    }
    let items = rng.range(5, 40);
    for _ in 0..items {
        n += 1;
        let (parent, depth) = rng.pick(&dirs).clone();
        let name = random_name(&mut rng, n, depth < 3);
        let path = parent.join(&name);
        match rng.range(0, 10) {
            0..=1 => {
                fs::create_dir(&path).unwrap();
                dirs.push((path, depth + 1));
            }
            2..=7 => {
                let size = if large_left > 0 && rng.chance(1, 12) {
                    large_left -= 1;
                    rng.range(1 << 20, 3 << 20)
                } else if medium_left > 0 && rng.chance(1, 8) {
                    medium_left -= 1;
                    rng.range(64 << 10, 512 << 10)
                } else if rng.chance(1, 4) {
                    0
                } else {
                    rng.range(1, 5000)
                };
                fs::write(&path, rng.bytes(size as usize)).unwrap();
                files.push(path);
            }
            _ => {
                // relative link to an existing file, or dangling (relative / absolute / odd)
                let target: PathBuf = if !files.is_empty() && rng.chance(1, 2) {
                    let to = rng.pick(&files).clone();
                    let up = parent.strip_prefix(root).unwrap().components().count();
                    let mut t = PathBuf::new();
                    for _ in 0..up {
                        t.push("..");
                    }
                    t.join(to.strip_prefix(root).unwrap())
                } else {
                    match rng.range(0, 4) {
                        0 => format!("does/not/exist-{n}").into(),
                        1 => format!("/nonexistent/abs target-{n}").into(),
                        2 => format!("{}/ünïcode\nlink-{n}", "far/".repeat(40)).into(),
                        _ => (*rng.pick(ODD_TARGETS)).into(),
                    }
                };
                symlink(&target, &path).unwrap();
            }
        }
    }
    // modes and mtimes last, children before their parents so directory times stick
    let mut all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in &all {
        let ft = fs::symlink_metadata(p).unwrap().file_type();
        if ft.is_dir() {
            chmod(p, *rng.pick(DIR_MODES));
        } else if ft.is_file() {
            chmod(p, *rng.pick(FILE_MODES));
        }
        let mtime = if rng.chance(1, 16) {
            0
        } else {
            rng.range(1, 4_000_000_000) as i64
        };
        set_mtime(p, mtime);
    }
    files.len() as u64
}

fn round_trip(seed: u64) {
    let env = TestEnv::new();
    let pack = env.minimal_pack(
        "wso2am-4.2.0",
        "wso2am-4.2.0",
        Some("h2-engine_2.1.210.jar"),
    );
    let data = pack.join("repository/data");
    fs::create_dir_all(&data).unwrap();
    let files = random_tree(&data, seed);
    let want = tree(&data);
    let want_root = stat(&data);

    let archive = env.path().join("rt.tar.zst");
    let summary = env.snapshot(&pack, &archive, &PARTIAL);
    assert_eq!(summary["files"], files, "seed {seed}");

    let x = env.path().join("x");
    tar_extract(&archive, &x);
    let got = tree(&x.join("repository/data"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "seed {seed}: paths"
    );
    for (rel, w) in &want {
        assert_eq!(&got[rel], w, "seed {seed}: {rel:?}");
    }
    assert_eq!(stat(&x.join("repository/data")), want_root, "seed {seed}");

    let sums = sha256sum_check(&x, SUMS);
    assert_eq!(sums.code, Some(0), "seed {seed}: sha256sum -c: {sums}");
    let ok = sums.stdout.matches(": OK\n").count() as u64;
    assert_eq!(ok, files, "seed {seed}: {sums}");

    let v = env.run(["verify".as_ref(), archive.as_os_str()]);
    assert_eq!(v.code, Some(0), "seed {seed}: verify: {v}");
    let va = env.run([
        "verify".as_ref(),
        archive.as_os_str(),
        "--against".as_ref(),
        pack.as_os_str(),
    ]);
    assert_eq!(va.code, Some(0), "seed {seed}: verify --against: {va}");
}

#[test]
fn symlink_targets_are_kept_byte_for_byte() {
    let env = TestEnv::new();
    let pack = env.minimal_pack(
        "wso2am-4.2.0",
        "wso2am-4.2.0",
        Some("h2-engine_2.1.210.jar"),
    );
    let data = pack.join("repository/data");
    fs::create_dir_all(&data).unwrap();
    let long = format!("{}./end", "seg//".repeat(30));
    let mut targets: Vec<&str> = ODD_TARGETS.to_vec();
    targets.push(&long);
    for (i, t) in targets.iter().enumerate() {
        symlink(t, data.join(format!("link-{i}"))).unwrap();
    }
    let archive = env.path().join("links.tar.zst");
    let doc = env.snapshot(&pack, &archive, &PARTIAL);
    assert_eq!(doc["symlinks"], targets.len());
    let x = env.path().join("x");
    tar_extract(&archive, &x);
    for (i, t) in targets.iter().enumerate() {
        let got = fs::read_link(x.join(format!("repository/data/link-{i}"))).unwrap();
        assert_eq!(got, Path::new(t), "link-{i}");
    }
    let index = index_entries(&archive);
    for (i, t) in targets.iter().enumerate() {
        let e = index
            .iter()
            .find(|e| e["path"] == format!("repository/data/link-{i}"))
            .unwrap();
        assert_eq!(e["link"], *t, "index.json link-{i}");
    }
    let v = env.run(["verify".as_ref(), archive.as_os_str()]);
    assert_eq!(v.code, Some(0), "{v}");
}

#[test]
fn random_trees_round_trip_through_gnu_tar() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let config = Config {
        cases: 16,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    runner
        .run(&proptest::num::u64::ANY, |seed| {
            round_trip(seed);
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 5. engine-level integrity: Lucene codec footers, MVStore header checksums
// ---------------------------------------------------------------------------------------------

const CODEC_MAGIC: [u8; 4] = [0x3f, 0xd7, 0x6c, 0x17];

#[test]
fn lucene_segment_damage_is_caught_while_snapshotting() {
    let env = TestEnv::new();
    let pack = env.minimal_pack(
        "wso2am-4.2.0",
        "wso2am-4.2.0",
        Some("h2-engine_2.1.210.jar"),
    );
    let index = pack.join("solr/data/index");
    let st = std::process::Command::new(engines().join("make-lucene-index.sh"))
        .arg(&index)
        .arg("20")
        .env("LUCENE_MAJOR", "8")
        .stdout(Stdio::null())
        .status()
        .expect("run make-lucene-index.sh");
    assert!(st.success(), "make-lucene-index.sh: {st}");
    let out = env.path().join("out");
    fs::create_dir(&out).unwrap();

    // sound: fine
    env.snapshot(&pack, &out.join("good.tar.zst"), &PARTIAL);

    // the largest codec file, one byte flipped in its middle
    let mut codec: Vec<(u64, PathBuf)> = fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| fs::read(p).unwrap().starts_with(&CODEC_MAGIC))
        .map(|p| (fs::metadata(&p).unwrap().len(), p))
        .collect();
    codec.sort();
    let (len, seg) = codec.pop().expect("a codec file");
    assert!(len > 100, "{}", seg.display());
    let seg_name = seg.file_name().unwrap().to_str().unwrap().to_string();
    flip_byte(&seg, len / 2, 0x20);
    let before = dir_names(&out);
    let bad = out.join("bad.tar.zst");
    let mut args: Vec<&std::ffi::OsStr> = vec!["snapshot".as_ref(), "-o".as_ref(), bad.as_os_str()];
    args.extend(PARTIAL.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.push(pack.as_os_str());
    let r = env.run(&args);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr.contains(&format!("solr/data/index/{seg_name}")) && r.stderr.contains("checksum"),
        "names the file and the checksum: {r}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "one-line error: {r}");
    assert_eq!(dir_names(&out), before, "no archive, no temp file");

    // --allow-corrupt: taken, and the damage is recorded
    let doc = env.snapshot(&pack, &bad, &[&PARTIAL[..], &["--allow-corrupt"]].concat());
    let rel = format!("solr/data/index/{seg_name}");
    let corrupt = doc["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1, "{doc}");
    assert_eq!(corrupt[0]["path"], rel.as_str());
    assert!(corrupt[0]["problem"].as_str().unwrap().contains("checksum"));
    let idx = archive_json(&bad, INDEX_JSON);
    assert_eq!(idx["corrupt"], doc["corrupt"], "index.json records it");
    // the archive holds the damaged bytes as they are, and verifies (with a warning)
    assert_eq!(tar_member(&bad, &rel), fs::read(&seg).unwrap());
    let v = env.run(["verify".as_ref(), bad.as_os_str()]);
    assert_eq!(v.code, Some(0), "{v}");
    assert!(
        v.stdout.contains(&rel) && v.stdout.contains("--allow-corrupt"),
        "{v}"
    );

    // files that are not codec files are not judged: write.lock, tlog
    flip_byte(&seg, len / 2, 0x20); // repaired
    fs::write(index.join("write.lock"), b"lock bytes, then a flipped one").unwrap();
    flip_byte(&index.join("write.lock"), 5, 0x01);
    let tlog = pack.join("solr/data/tlog");
    fs::create_dir_all(&tlog).unwrap();
    let tlog_file = tlog.join("tlog.0000000000000000001");
    fs::write(&tlog_file, Rng(7).bytes(3000)).unwrap();
    flip_byte(&tlog_file, 1500, 0x80);
    let doc = env.snapshot(&pack, &out.join("again.tar.zst"), &PARTIAL);
    assert_eq!(doc["corrupt"], serde_json::json!([]), "{doc}");
}

#[test]
fn h2_header_blocks_are_checked_while_snapshotting() {
    let env = TestEnv::new();
    let pack = env.minimal_pack(
        "wso2am-4.2.0",
        "wso2am-4.2.0",
        Some("h2-engine_2.1.210.jar"),
    );
    let db = pack.join("repository/database/WSO2CARBON_DB.mv.db");
    fs::copy(
        fixtures().join("h2-samples/h2-2.1.214-mvstore-format2/WSO2CARBON_DB.mv.db"),
        &db,
    )
    .unwrap();
    let out = env.path().join("out");
    fs::create_dir(&out).unwrap();
    let doc = env.snapshot(&pack, &out.join("good.tar.zst"), &PARTIAL);
    assert_eq!(doc["files"], 1, "{doc}");

    // one damaged header block: H2 opens the file with the other, so does the snapshot
    // (offset 10 is the block number digit in `H:2,block:3,...`: still a parseable header)
    flip_byte(&db, 10, 0x01);
    let doc = env.snapshot(&pack, &out.join("one.tar.zst"), &PARTIAL);
    assert_eq!(doc["corrupt"], serde_json::json!([]), "{doc}");

    // both damaged: refused, naming the file
    flip_byte(&db, 4096 + 10, 0x01);
    let before = dir_names(&out);
    let bad = out.join("both.tar.zst");
    let mut args: Vec<&std::ffi::OsStr> = vec!["snapshot".as_ref(), "-o".as_ref(), bad.as_os_str()];
    args.extend(PARTIAL.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.push(pack.as_os_str());
    let r = env.run(&args);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr.contains("repository/database/WSO2CARBON_DB.mv.db")
            && r.stderr.contains("checksum"),
        "{r}"
    );
    assert_eq!(dir_names(&out), before, "no archive, no temp file");
    let doc = env.snapshot(&pack, &bad, &[&PARTIAL[..], &["--allow-corrupt"]].concat());
    assert_eq!(
        doc["corrupt"][0]["path"], "repository/database/WSO2CARBON_DB.mv.db",
        "{doc}"
    );

    // the checksum field itself garbled (no longer hex) in both blocks: damaged too
    fs::copy(
        fixtures().join("h2-samples/h2-2.1.214-mvstore-format2/WSO2CARBON_DB.mv.db"),
        &db,
    )
    .unwrap();
    let bytes = fs::read(&db).unwrap();
    let at = bytes
        .windows(9)
        .position(|w| w == b"fletcher:")
        .expect("a fletcher field")
        + 9;
    for block in [0, 4096] {
        let i = block + at;
        fs::write(&db, {
            let mut b = fs::read(&db).unwrap();
            b[i] = b'%';
            b
        })
        .unwrap();
    }
    let garbled = out.join("garbled.tar.zst");
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["snapshot".as_ref(), "-o".as_ref(), garbled.as_os_str()];
    args.extend(PARTIAL.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.push(pack.as_os_str());
    let r = env.run(&args);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("WSO2CARBON_DB.mv.db"), "{r}");
}

// ---------------------------------------------------------------------------------------------
// 6. the running-server gate
// ---------------------------------------------------------------------------------------------

#[test]
fn running_pack_is_refused_unless_allowed() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let out = env.path().join("out");
    fs::create_dir(&out).unwrap();
    let held = HeldDb::start(&pack.join("repository/database/WSO2AM_DB"));

    let archive = out.join("live.tar.zst");
    let r = env.run([
        "snapshot".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        pack.as_os_str(),
    ]);
    assert_eq!(r.code, Some(6), "{r}");
    assert!(
        r.stderr.contains("repository/database/WSO2AM_DB.mv.db")
            && r.stderr.contains(&held.pid.to_string()),
        "the evidence, with the lock holder's pid: {r}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(dir_names(&out).is_empty(), "no archive or temp file");

    let r = env.run([
        "snapshot".as_ref(),
        "--allow-running".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        pack.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.len() >= 3, "{r}");
    for l in &lines[..3] {
        assert!(
            l.starts_with("WARNING"),
            "summary line without WARNING: {l:?}\n{r}"
        );
    }
    assert!(
        r.stdout.contains("--allow-running") && r.stdout.contains(&held.pid.to_string()),
        "{r}"
    );
    let meta = archive_json(&archive, SNAPSHOT_JSON);
    assert_eq!(meta["allow_running"], true, "{meta}");
    let evidence = meta["running_evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e.as_str().unwrap().contains(&held.pid.to_string())),
        "{evidence:?}"
    );
    held.release();
}

// ---------------------------------------------------------------------------------------------
// 7. interruption and existing outputs
// ---------------------------------------------------------------------------------------------

#[test]
fn sigint_leaves_neither_archive_nor_temp_file() {
    let env = TestEnv::new();
    let pack = env.mkpack("4.2.0", 0.1);
    let out = env.path().join("out");
    fs::create_dir(&out).unwrap();
    let archive = out.join("big.tar.zst");
    let mut proc = Spawned::new(
        env.std_cmd()
            .arg("snapshot")
            .arg("-o")
            .arg(&archive)
            .arg(&pack)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // wait until the temp file exists (the write is under way), then a little more
    let started = Instant::now();
    let tmp_seen = loop {
        let names = dir_names(&out);
        if names
            .iter()
            .any(|n| n.starts_with(".big.tar.zst.") && n.ends_with(".tmp"))
        {
            break true;
        }
        if proc.child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(tmp_seen, "snapshot never wrote its temp file");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "the snapshot finished before the signal; make the pack bigger"
    );
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(proc.pid(), libc::SIGINT) };
    assert_eq!(rc, 0);
    let mut stderr = String::new();
    std::io::Read::read_to_string(proc.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = proc.child.wait().unwrap();
    // handled (an exit code, not death by the signal), reported, and cleaned up
    let code = status.code();
    assert!(matches!(code, Some(c) if c != 0), "{status}: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        dir_names(&out).is_empty(),
        "left behind: {:?}",
        dir_names(&out)
    );
}

#[test]
fn existing_output_is_refused_and_left_untouched() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let out = env.path().join("out");
    fs::create_dir(&out).unwrap();
    let archive = out.join("taken.tar.zst");
    fs::write(&archive, b"an older archive").unwrap();
    chmod(&archive, 0o644);
    set_mtime(&archive, 1_500_000_000);
    let before = stat(&archive);
    let r = env.run([
        "snapshot".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        pack.as_os_str(),
    ]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stderr.contains("already exists"), "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert_eq!(stat(&archive), before, "untouched");
    assert_eq!(
        dir_names(&out),
        ["taken.tar.zst"],
        "no sidecar, no temp file"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. the catalog
// ---------------------------------------------------------------------------------------------

#[test]
fn catalog_records_snapshots_and_verifications() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let archive = env.path().join("cat.tar.zst");
    let doc = env.snapshot(&pack, &archive, &[]);
    assert_eq!(doc["catalog_id"], "s1");
    let v = env.run(["verify".as_ref(), archive.as_os_str()]);
    assert_eq!(v.code, Some(0), "{v}");

    let list = env.run(["list", "--json"]);
    assert_eq!(list.code, Some(0), "{list}");
    let rows = list.json();
    let rows = rows.as_array().unwrap();
    let canon = fs::canonicalize(&archive).unwrap();
    let snap = rows
        .iter()
        .find(|r| r["kind"] == "snapshot")
        .unwrap_or_else(|| panic!("no snapshot record: {rows:?}"));
    assert_eq!(snap["id"], "s1");
    assert_eq!(snap["subject"], canon.to_str().unwrap());
    let ver = rows
        .iter()
        .find(|r| r["kind"] == "verify")
        .unwrap_or_else(|| panic!("no verify record: {rows:?}"));
    assert_eq!(ver["id"], "v1");
    assert_eq!(ver["subject"], canon.to_str().unwrap());
    assert!(ver["summary"].as_str().unwrap().starts_with("ok"), "{ver}");

    let show = env.run(["show", "s1", "--json"]);
    assert_eq!(show.code, Some(0), "{show}");
    let rec = show.json();
    assert_eq!(rec["id"], "s1");
    assert_eq!(rec["detail"]["archive_sha256"], sha256_file(&archive));
    assert_eq!(rec["detail"]["files"], doc["files"]);
    for key in [canon.to_str().unwrap(), "cat.tar.zst"] {
        let by_path = env.run(["show", key, "--json"]);
        assert_eq!(by_path.code, Some(0), "show {key}: {by_path}");
        assert_eq!(by_path.json()["id"], "s1", "show {key}");
    }
    let v1 = env.run(["show", "v1", "--json"]);
    assert_eq!(v1.json()["detail"]["ok"], true, "{v1}");

    // a catalog that cannot be written costs a warning, not the snapshot
    let blocker = env.path().join("regular-file");
    fs::write(&blocker, b"x").unwrap();
    let archive2 = env.path().join("uncatalogued.tar.zst");
    let out = env
        .cmd()
        .env("CARRYOVER_CATALOG", blocker.join("sub/catalog.db"))
        .args(["snapshot", "--json", "-o"])
        .arg(&archive2)
        .arg(&pack)
        .output()
        .unwrap();
    let r = crate::common::Ran::from_output(out);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("catalog"),
        "{r}"
    );
    assert_eq!(r.json()["catalog_id"], Value::Null);
    assert!(archive2.is_file());
}
