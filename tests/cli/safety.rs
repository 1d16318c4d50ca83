//! Issue 9, the items about locking, access and ordinary layouts: each test failed on the
//! commit before the fix.

use std::fs;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::common::{pack_digest, tree_digest_all, Spawned, TestEnv};

/// A process holding a `flock` on the pack's root directory, as carryover's writer does.
fn hold_flock(dir: &std::path::Path, exclusive: bool) -> Spawned {
    let op = if exclusive { "LOCK_EX" } else { "LOCK_SH" };
    let mut child = Spawned::new(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDONLY); \
                 fcntl.flock(fd, fcntl.{op}); print('held', flush=True); time.sleep(60)"
            ))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    child
}

/// Item 9: a reader (snapshot) is refused while a writer holds the pack, and a writer
/// (transplant) is refused while a reader does; inspect still reports, with a warning. Readers
/// create nothing in a pack.
#[test]
fn readers_and_writers_of_one_pack_exclude_each_other() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    let before = tree_digest_all(&old);
    env.snapshot(&old, &archive, &[]);
    assert_eq!(tree_digest_all(&old), before, "a snapshot changed its pack");
    assert!(
        !old.join(".carryover").exists(),
        "a reader created .carryover"
    );

    let writer = hold_flock(&old, true);
    let r = env.run([
        "snapshot".as_ref(),
        old.as_os_str(),
        "-o".as_ref(),
        env.path().join("during.tar.zst").as_os_str(),
    ]);
    assert_eq!(r.code, Some(6), "{r}");
    assert!(
        r.stderr.contains("another carryover is writing this pack"),
        "{r}"
    );
    assert!(!env.path().join("during.tar.zst").exists());
    let r = env.run(["inspect".as_ref(), old.as_os_str()]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("writing this pack"),
        "{r}"
    );
    let r = env.run([
        "verify".as_ref(),
        archive.as_os_str(),
        "--against".as_ref(),
        old.as_os_str(),
    ]);
    assert_eq!(
        r.code,
        Some(6),
        "verify --against takes the shared lock: {r}"
    );
    drop(writer);

    let reader = hold_flock(&new, false);
    let before_new = pack_digest(&new);
    let r = env.run(["transplant".as_ref(), archive.as_os_str(), new.as_os_str()]);
    assert_eq!(r.code, Some(6), "{r}");
    assert!(
        r.stderr.contains("another carryover is reading this pack"),
        "{r}"
    );
    assert_eq!(pack_digest(&new), before_new);
    let r = env.run([
        "verify".as_ref(),
        archive.as_os_str(),
        "--against".as_ref(),
        old.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "readers share: {r}");
    drop(reader);
}

/// Item 21: carryover's own tree in a pack is private: `.carryover` 0700 whatever the umask, the
/// catalog 0600.
#[test]
fn carryover_records_are_private() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let r = env.run([
        "transplant".as_ref(),
        archive.as_os_str(),
        new.as_os_str(),
        "--base".as_ref(),
        crate::common::example("pristine-4.2.0").as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&new.join(".carryover")), 0o700);
    assert_eq!(mode(&env.catalog()), 0o600);
}

/// Item 6: a rule root that is a symlink (state moved to a bigger disk) is followed: the
/// snapshot holds its files, not just the link; inspect says so; the transplant carries them.
#[test]
fn a_rule_root_that_is_a_symlink_is_carried_as_content() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let disk = env.path().join("bigdisk");
    fs::create_dir_all(&disk).unwrap();
    let data = old.join("repository/data");
    let moved = disk.join("data");
    assert!(std::process::Command::new("mv")
        .arg(&data)
        .arg(&moved)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink(&moved, &data).unwrap();
    let files_moved = walkdir::WalkDir::new(&moved)
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count();
    assert!(files_moved > 0);

    let doc = env.inspect_json(&old);
    let rule = crate::common::rule(&doc, "repository-data");
    assert_eq!(rule["files"], files_moved, "{rule}");
    assert_eq!(rule["root_link"]["link"], "repository/data", "{rule}");
    assert!(crate::common::warning_codes(&doc).contains(&"root-symlink".to_string()));

    let archive = env.path().join("old.tar.zst");
    let summary = env.snapshot(&old, &archive, &[]);
    assert!(summary["warnings"]
        .to_string()
        .contains("repository/data is a symlink"));
    let names = crate::common::tar_list(&archive);
    let carried = names
        .iter()
        .filter(|n| n.starts_with("repository/data/") && !n.ends_with('/'))
        .count();
    assert_eq!(carried, files_moved, "{names:?}");
    let r = env.run(["verify".as_ref(), archive.as_os_str()]);
    assert_eq!(r.code, Some(0), "{r}");
    let r = env.run([
        "transplant".as_ref(),
        archive.as_os_str(),
        new.as_os_str(),
        "--base".as_ref(),
        crate::common::example("pristine-4.2.0").as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let nd = new.join("repository/data");
    assert!(fs::symlink_metadata(&nd).unwrap().is_dir());
    for e in walkdir::WalkDir::new(&moved) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(&moved).unwrap();
            assert_eq!(fs::read(nd.join(rel)).unwrap(), fs::read(e.path()).unwrap());
        }
    }
}

/// Item 7: links inside state that point out of the pack are named by inspect and snapshot.
#[test]
fn links_out_of_the_pack_are_named_before_anything_is_written() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    std::os::unix::fs::symlink("/etc/passwd", old.join("repository/data/passwd-link")).unwrap();
    std::os::unix::fs::symlink("../../../outside", old.join("repository/data/up")).unwrap();
    let doc = env.inspect_json(&old);
    let w = crate::common::warning(&doc, "external-link").expect("external-link warning");
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("repository/data/passwd-link -> /etc/passwd"),
        "{msg}"
    );
    assert!(
        msg.contains("repository/data/up -> ../../../outside"),
        "{msg}"
    );
    assert!(msg.contains("2 symlink(s)"), "{msg}");
    let summary = env.snapshot(&old, &env.path().join("o.tar.zst"), &[]);
    assert!(
        summary["warnings"].to_string().contains("passwd-link"),
        "{summary}"
    );
}

/// Item 11: a required rule that finds nothing fails the snapshot, naming the rule and the path
/// looked at, unless the operator says `--allow-missing RULE`.
#[test]
fn required_state_missing_fails_the_snapshot_unless_allowed() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    fs::remove_file(old.join("repository/database/WSO2AM_DB.mv.db")).unwrap();
    let out = env.path().join("s.tar.zst");
    let r = env.run([
        "snapshot".as_ref(),
        old.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr
            .contains("am-db (looked at repository/database/WSO2AM_DB)"),
        "{r}"
    );
    assert!(r.stderr.contains("--allow-missing"), "{r}");
    assert!(!out.exists());
    let r = env.run([
        "snapshot".as_ref(),
        old.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--allow-missing".as_ref(),
        "no-such-rule".as_ref(),
    ]);
    assert_eq!(r.code, Some(2), "{r}");
    let doc = env.snapshot(&old, &out, &["--allow-missing", "am-db"]);
    assert!(
        doc["warnings"].to_string().contains("required rule am-db"),
        "{doc}"
    );
}

/// Item 19: SIGINT exits 130, SIGTERM and SIGHUP (a closed SSH session) 143, each within a second
/// even at zstd level 19, leaving neither archive nor temp file.
#[test]
fn signals_exit_130_and_143_within_a_second() {
    use std::time::{Duration, Instant};
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    // Enough incompressible data that level 19 runs for many seconds.
    crate::common::write_random_file(&pack.join("repository/data/big.bin"), 96 << 20, 7);
    for (sig, code) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 143),
    ] {
        let out = env.path().join(format!("out-{sig}"));
        fs::create_dir(&out).unwrap();
        let archive = out.join("s.tar.zst");
        let mut proc = Spawned::new(
            env.std_cmd()
                .arg("snapshot")
                .arg("--level")
                .arg("19")
                .arg("-o")
                .arg(&archive)
                .arg(&pack)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let started = Instant::now();
        while !fs::read_dir(&out)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        {
            assert!(started.elapsed() < Duration::from_secs(30), "no temp file");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            proc.child.try_wait().unwrap().is_none(),
            "finished too soon"
        );
        let sent = Instant::now();
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(proc.pid(), sig) }, 0);
        let status = proc.child.wait().unwrap();
        let took = sent.elapsed();
        let mut stderr = String::new();
        std::io::Read::read_to_string(proc.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}: {stderr}");
        assert!(took < Duration::from_secs(1), "signal {sig}: took {took:?}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "left files behind");
    }
}

/// Item 23: a snapshot onto a full disk names the output, not the pack file it was reading; a
/// snapshot killed by SIGKILL leaves a temp file that the next snapshot into that directory
/// removes, saying so.
#[test]
fn a_full_disk_names_the_output_and_stale_temp_files_are_removed() {
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    crate::common::write_random_file(&pack.join("repository/data/big.bin"), 4 << 20, 3);
    let small = env.path().join("small");
    fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount -t tmpfs (the tests run as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let out = small.join("s.tar.zst");
    let r = env.run([
        "snapshot".as_ref(),
        pack.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stderr.contains(&*out.to_string_lossy()),
        "names the output: {r}"
    );
    assert!(r.stderr.contains("No space left"), "{r}");
    assert!(!r.stderr.contains("big.bin"), "blames the pack file: {r}");
    assert_eq!(
        fs::read_dir(&small).unwrap().count(),
        0,
        "left files behind"
    );

    // A temp file of a snapshot that was killed (pid gone) is removed by the next one.
    let dir = env.path().join("out");
    fs::create_dir(&dir).unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let stale = dir.join(format!(".old.tar.zst.carryover-{pid}.AbC123.tmp"));
    fs::write(&stale, b"half an archive").unwrap();
    let other = dir.join(".unrelated.tmp");
    fs::write(&other, b"not ours").unwrap();
    let doc = env.snapshot(&pack, &dir.join("new.tar.zst"), &[]);
    assert!(!stale.exists(), "the stale temp file is still there");
    assert!(other.exists(), "removed a file that is not carryover's");
    assert!(
        doc["warnings"].to_string().contains(&format!("pid {pid}")),
        "{doc}"
    );
}

/// Item 24: a same-size rewrite that restores the mtime (cp -p / rsync -t style) while the file is
/// read is caught by its ctime.
#[test]
fn a_same_size_rewrite_with_the_mtime_restored_is_caught() {
    use std::time::{Duration, Instant};
    let env = TestEnv::new();
    let pack = env.copy_example("wso2am-4.2.0-old");
    let _ = fs::remove_file(pack.join("wso2carbon.pid"));
    let big = pack.join("repository/data/big.bin");
    crate::common::write_random_file(&big, 48 << 20, 5);
    let mtime = filetime::FileTime::from_last_modification_time(&fs::metadata(&big).unwrap());
    let out = env.path().join("s.tar.zst");
    let mut proc = Spawned::new(
        env.std_cmd()
            .args(["snapshot", "--level", "19", "-o"])
            .arg(&out)
            .arg(&pack)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    // Wait until the snapshot reads big.bin (its temp file grows), then rewrite it in place.
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "finished too soon"
    );
    let mut data = fs::read(&big).unwrap();
    data[1000] ^= 0xff;
    fs::write(&big, &data).unwrap();
    filetime::set_file_mtime(&big, mtime).unwrap();
    let status = proc.child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(proc.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "torn capture not caught ({:?}): {stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains("big.bin") && stderr.contains("changed while it was read"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// Item 10: `verify --against` counts drift in merged config files unless the pack's own
/// transaction record shows they were merged from this snapshot (and still hold that merge), and
/// reports mode/mtime changes as their own kind.
#[test]
fn verify_against_counts_config_drift_and_metadata_changes() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let against = |pack: &std::path::Path| {
        env.run([
            "verify".as_ref(),
            "--json".as_ref(),
            archive.as_os_str(),
            "--against".as_ref(),
            pack.as_os_str(),
        ])
    };
    assert_eq!(against(&old).code, Some(0));
    // A pack never transplanted: an edit of deployment.toml is drift.
    let toml = old.join("repository/conf/deployment.toml");
    let mut text = fs::read_to_string(&toml).unwrap();
    text.push_str("\n# edited after the snapshot\n");
    fs::write(&toml, text).unwrap();
    let r = against(&old);
    assert_eq!(r.code, Some(5), "{r}");
    assert!(
        r.stdout.contains("\"changed\"") && r.stdout.contains("deployment.toml"),
        "{r}"
    );

    // After a merged transplant: exempt while it holds what the merge wrote...
    let r = env.run([
        "transplant".as_ref(),
        archive.as_os_str(),
        new.as_os_str(),
        "--base".as_ref(),
        crate::common::example("pristine-4.2.0").as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let r = against(&new);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("merged by transplant"), "{r}");
    // ...drift once someone edits it.
    let merged = new.join("repository/conf/deployment.toml");
    let mut text = fs::read_to_string(&merged).unwrap();
    text.push_str("\n# edited after the transplant\n");
    fs::write(&merged, text).unwrap();
    let r = against(&new);
    assert_eq!(r.code, Some(5), "{r}");
    assert!(r.stdout.contains("differs from what transplant"), "{r}");

    // A chmod is a metadata change, its own kind.
    let f = new.join("repository/data/org.example/notes.txt");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let r = against(&new);
    assert!(r.stdout.contains("\"metadata\""), "{r}");
    assert!(r.stdout.contains("mode 600 vs snapshot 644"), "{r}");
}

// ---------------------------------------------------------------------------------------------
// Issue 9 items 1, 2, 3, 16, 18: writes that cannot leave the pack, the dry run's parity,
// facts checked, packs that cannot be written, a pack given as a symlink.
// ---------------------------------------------------------------------------------------------

/// `transplant [--dry-run] SOURCE NEW`.
fn transplant_run(
    env: &TestEnv,
    source: &std::path::Path,
    new: &std::path::Path,
    dry: bool,
) -> crate::common::Ran {
    let mut args: Vec<std::ffi::OsString> = vec!["transplant".into()];
    if dry {
        args.push("--dry-run".into());
    }
    args.push(source.into());
    args.push(new.into());
    env.run(&args)
}

/// The error line with the transaction's own directory taken out (it differs run to run).
fn refusal(r: &crate::common::Ran) -> String {
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or_default();
    let re = regex::Regex::new(r"/\.carryover/txn/[^/: ]+(/stage)?").unwrap();
    re.replace_all(line, "").into_owned()
}

/// Item 18: the old pack given as a symlink to its directory is a pack, not an archive.
#[test]
fn an_old_pack_given_as_a_symlink_is_a_pack() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let link = env.path().join("old-link");
    std::os::unix::fs::symlink(&old, &link).unwrap();
    let r = transplant_run(&env, &link, &new, true);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("(pack "), "{r}");
    // The example's deployment.toml has no base: a conflict (3) is this pack's ordinary outcome.
    let r = transplant_run(&env, &link, &new, false);
    assert_eq!(r.code, Some(3), "{r}");
    assert!(!r.stderr.contains("Is a directory"), "{r}");
}

/// Item 2: the dry run reads the whole archive with the real run's checks: a truncated archive
/// fails both, with the same exit code and the same refusal, and the pack is unchanged.
#[test]
fn the_dry_run_refuses_what_the_real_run_refuses() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let bytes = fs::read(&archive).unwrap();
    let cut = env.path().join("cut.tar.zst");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let before = pack_digest(&new);
    let dry = transplant_run(&env, &cut, &new, true);
    let real = transplant_run(&env, &cut, &new, false);
    assert_ne!(real.code, Some(0), "{real}");
    assert_eq!(dry.code, real.code, "dry: {dry}\nreal: {real}");
    assert_eq!(refusal(&dry), refusal(&real), "dry: {dry}\nreal: {real}");
    assert_eq!(pack_digest(&new), before);
}

/// Item 3: the rule totals snapshot.json records bound what staging accepts: a database
/// recorded as bigger than the free disk is refused before anything is staged, by the dry run
/// too (exit 1, ENOSPC named), and nothing is left in the pack.
#[test]
fn recorded_sizes_are_checked_against_free_space_before_staging() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let x = env.path().join("x");
    crate::common::tar_extract(&archive, &x);
    let meta_path = x.join(".carryover/snapshot.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
    for r in meta["rules"].as_array_mut().unwrap() {
        if r["kind"] == "h2" {
            r["bytes"] = serde_json::json!(1u64 << 50);
        }
    }
    fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let names = crate::common::tar_list(&archive);
    let forged = env.path().join("forged.tar.zst");
    crate::common::tar_create(&x, &names, &forged);
    let before = pack_digest(&new);
    for dry in [true, false] {
        let r = transplant_run(&env, &forged, &new, dry);
        assert_eq!(r.code, Some(1), "{r}");
        assert!(r.stderr.contains("No space left"), "{r}");
    }
    assert_eq!(pack_digest(&new), before);
    assert!(
        !new.join(".carryover/txn").exists()
            || fs::read_dir(new.join(".carryover/txn"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// Item 16: a path the transplant would replace that cannot be written (immutable here, so
/// that root is refused too) stops the dry run and the real run before anything is staged.
#[test]
fn an_unwritable_pack_is_refused_before_staging() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let dir = new.join("repository/database");
    let ok = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED an_unwritable_pack_is_refused_before_staging: chattr +i is not available here"
        );
        return;
    }
    let before = pack_digest(&new);
    let mut codes = Vec::new();
    for dry in [true, false] {
        let r = transplant_run(&env, &old, &new, dry);
        codes.push(r.code);
        assert!(r.stderr.contains("cannot be written"), "{r}");
    }
    std::process::Command::new("chattr")
        .arg("-i")
        .arg(&dir)
        .status()
        .unwrap();
    assert_eq!(codes, [Some(1), Some(1)]);
    assert_eq!(pack_digest(&new), before);
}

/// Item 1: a symlink already in the new pack's staging path is never followed: staging writes
/// through a handle that refuses symlinks on every component, so an entry whose parent the
/// archive made a link (`a -> .`, then `a/x`) is refused and nothing appears beside the pack.
#[test]
fn staging_never_follows_a_symlink() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let canary = env.path().join("canary");
    fs::create_dir(&canary).unwrap();
    fs::set_permissions(&canary, fs::Permissions::from_mode(0o755)).unwrap();
    // A link inside the old state that climbs out: refused, never written through.
    std::os::unix::fs::symlink("../../../canary", old.join("repository/data/out")).unwrap();
    for dry in [true, false] {
        let r = transplant_run(&env, &old, &new, dry);
        assert_eq!(r.code, Some(1), "{r}");
    }
    assert_eq!(fs::read_dir(&canary).unwrap().count(), 0);
    assert_eq!(
        fs::metadata(&canary).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

// ---------------------------------------------------------------------------------------------
// issue 9 items 8 and 14: a second transplant, the undo stack, --forget; versions
// ---------------------------------------------------------------------------------------------

/// `carryover transplant --base pristine-4.2.0 EXTRA... SOURCE TARGET`.
fn transplant_into(
    env: &TestEnv,
    source: &std::path::Path,
    target: &std::path::Path,
    extra: &[&str],
) -> crate::common::Ran {
    let mut args: Vec<std::ffi::OsString> = vec![
        "transplant".into(),
        "--base".into(),
        crate::common::example("pristine-4.2.0").into(),
    ];
    args.extend(extra.iter().map(Into::into));
    args.push(source.into());
    args.push(target.into());
    env.run(&args)
}

/// Item 8: a second transplant into a pack holding a committed one is refused without --force,
/// naming the transaction and the ways out; with --force both stay revertible and --revert
/// walks back one at a time, newest first.
#[test]
fn a_second_transplant_needs_force_and_revert_walks_back() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let pristine = pack_digest(&new);
    let first = transplant_into(&env, &archive, &new, &["--json"]);
    assert_eq!(first.code, Some(0), "{first}");
    let first_txn = first.json()["txn"].as_str().unwrap().to_string();
    // What the new server wrote since the first transplant.
    fs::write(
        new.join("repository/conf/written-since.txt"),
        "server state\n",
    )
    .unwrap();
    let after_first = pack_digest(&new);
    for extra in [&[][..], &["--dry-run"][..]] {
        let r = transplant_into(&env, &archive, &new, extra);
        assert_eq!(r.code, Some(1), "{extra:?}: {r}");
        for word in [first_txn.as_str(), "--force", "--revert", "--forget"] {
            assert!(r.stderr.contains(word), "{extra:?}: no {word}: {r}");
        }
        assert_eq!(pack_digest(&new), after_first, "a refusal changed the pack");
    }
    let second = transplant_into(&env, &archive, &new, &["--force", "--json"]);
    assert_eq!(second.code, Some(0), "{second}");
    let revert = |code| {
        let r = env.run(["transplant".as_ref(), "--revert".as_ref(), new.as_os_str()]);
        assert_eq!(r.code, Some(code), "{r}");
        r
    };
    revert(4);
    assert_eq!(pack_digest(&new), after_first, "the newest revert");
    fs::remove_file(new.join("repository/conf/written-since.txt")).unwrap();
    let r = revert(4);
    assert!(r.stdout.contains(&first_txn), "{r}");
    assert_eq!(pack_digest(&new), pristine, "the older revert");
    revert(1);
}

/// Item 8: --forget drops the committed backups, says what it freed; nothing is revertible
/// afterwards and a new transplant needs no --force.
#[test]
fn forget_drops_committed_backups_and_says_how_much() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let r = transplant_into(&env, &archive, &new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let txns = new.join(".carryover/txn");
    assert_eq!(fs::read_dir(&txns).unwrap().count(), 1);
    let after = pack_digest(&new);
    let f = env.run(["transplant".as_ref(), "--forget".as_ref(), new.as_os_str()]);
    assert_eq!(f.code, Some(0), "{f}");
    assert!(f.stdout.contains("forgot 1 committed transplant"), "{f}");
    assert!(f.stdout.contains("freed"), "{f}");
    assert_eq!(fs::read_dir(&txns).unwrap().count(), 0, "backups left");
    assert_eq!(
        pack_digest(&new),
        after,
        "--forget changed the pack's state"
    );
    let rv = env.run(["transplant".as_ref(), "--revert".as_ref(), new.as_os_str()]);
    assert_eq!(rv.code, Some(1), "{rv}");
    let again = transplant_into(&env, &archive, &new, &["--dry-run"]);
    assert_eq!(again.code, Some(0), "{again}");
}

/// Item 14: a version change (4.1.0 -> 4.2.0) is refused with the reason unless
/// --allow-version-change; a lower update level in the new pack is warned about.
#[test]
fn version_change_is_refused_and_a_lower_update_level_warned() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    // The new pack at update level 3, below the source's 5.
    let cfg = new.join("updates/config.json");
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"update-level\": 20", "\"update-level\": 3");
    fs::write(&cfg, text).unwrap();
    let r = transplant_into(&env, &old, &new, &["--dry-run"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.stdout
            .contains("update level 3, lower than the source's 5"),
        "{r}"
    );

    for (file, from, to) in [
        ("updates/product.txt", "wso2am-4.2.0", "wso2am-4.1.0"),
        ("bin/version.txt", "v4.2.0", "v4.1.0"),
        (
            "repository/conf/carbon.xml",
            "<Version>4.2.0<",
            "<Version>4.1.0<",
        ),
    ] {
        let p = old.join(file);
        let t = fs::read_to_string(&p).unwrap().replace(from, to);
        fs::write(&p, t).unwrap();
    }
    let before = pack_digest(&new);
    for extra in [&[][..], &["--dry-run"][..]] {
        let r = transplant_into(&env, &old, &new, extra);
        assert_eq!(r.code, Some(1), "{extra:?}: {r}");
        assert!(r.stderr.contains("4.1.0"), "{r}");
        assert!(r.stderr.contains("migration"), "{r}");
        assert!(r.stderr.contains("--allow-version-change"), "{r}");
        assert_eq!(pack_digest(&new), before, "a refusal changed the pack");
    }
    let r = transplant_into(&env, &old, &new, &["--dry-run", "--allow-version-change"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("4.1.0 -> 4.2.0"), "{r}");
}

/// `archive` with its snapshot.json rewritten by the Python statement `edit` (on `meta`).
fn forge_meta(
    env: &TestEnv,
    archive: &std::path::Path,
    name: &str,
    edit: &str,
) -> std::path::PathBuf {
    forge(env, archive, name, edit, false)
}

/// [`forge_meta`], and (`add_bin`) an entry `bin/wso2server.sh` that no record mentions.
fn forge(
    env: &TestEnv,
    archive: &std::path::Path,
    name: &str,
    edit: &str,
    add_bin: bool,
) -> std::path::PathBuf {
    let add_bin = if add_bin { "True" } else { "False" };
    let out = env.path().join(format!("{name}.tar.zst"));
    let script = format!(
        r#"
import io, json, subprocess, sys, tarfile
src, out = sys.argv[1:3]
raw = subprocess.run(["zstd", "-dc", src], check=True, capture_output=True).stdout
buf = io.BytesIO()
with tarfile.open(fileobj=io.BytesIO(raw)) as i, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as o:
    for m in i.getmembers():
        data = i.extractfile(m).read() if m.isfile() else None
        if m.name == ".carryover/snapshot.json":
            meta = json.loads(data)
            {edit}
            data = json.dumps(meta).encode()
            m.size = len(data)
        o.addfile(m, io.BytesIO(data) if data is not None else None)
    if {add_bin}:
        m = tarfile.TarInfo("bin/wso2server.sh")
        m.size, m.mode = 10, 0o755
        o.addfile(m, io.BytesIO(b"echo evil\n"))
subprocess.run(["zstd", "-q", "-f", "-o", out], input=buf.getvalue(), check=True)
"#
    );
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(archive)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// Item 2: the archive does not decide where its entries go. A rule carryover's manifest lacks
/// (`bin`), a known rule moved to another path, or one at an absolute path is refused by the
/// dry run and the real run alike, with the archive's rule and carryover's named.
#[test]
fn rules_outside_carryovers_manifest_are_refused_with_both_named() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let archive = env.path().join("old.tar.zst");
    env.snapshot(&old, &archive, &[]);
    let before = pack_digest(&new);
    let cases = [
        (
            "extra-bin",
            r#"meta["rules"].append(dict(meta["rules"][-1], name="bin", kind="dir", strategy="replace", path="bin", travels_with=None))"#,
            vec!["rule \"bin\"", "is not a rule of wso2am-4.1-4.2"],
        ),
        (
            "moved-tenants",
            r#"[r.update(path="repository/components/plugins") for r in meta["rules"] if r["name"] == "tenants"]"#,
            vec![
                "rule \"tenants\"",
                "repository/components/plugins",
                "repository/tenants",
            ],
        ),
        (
            "absolute-config",
            r#"[r.update(path="/etc/passwd") for r in meta["rules"] if r["kind"] == "config"]"#,
            vec!["/etc/passwd", "differs"],
        ),
    ];
    for (name, edit, words) in cases {
        let forged = forge_meta(&env, &archive, name, edit);
        for extra in [&["--dry-run", "-v"][..], &[][..]] {
            let r = transplant_into(&env, &forged, &new, extra);
            assert_eq!(r.code, Some(1), "{name} {extra:?}: {r}");
            for w in &words {
                assert!(r.stderr.contains(w), "{name} {extra:?}: no {w}: {r}");
            }
            assert!(
                !r.stdout.contains("root:"),
                "{name}: printed /etc/passwd: {r}"
            );
            assert_eq!(pack_digest(&new), before, "{name}: the pack changed");
        }
    }
    // An entry under no rule, records untouched: refused before anything is staged.
    let forged = forge(&env, &archive, "entry-bin", "pass", true);
    for extra in [&["--dry-run"][..], &[][..]] {
        let r = transplant_into(&env, &forged, &new, extra);
        assert_eq!(r.code, Some(1), "entry-bin {extra:?}: {r}");
        assert!(
            r.stderr.contains("bin/wso2server.sh") && r.stderr.contains("under no rule"),
            "{r}"
        );
        assert_eq!(pack_digest(&new), before, "entry-bin: the pack changed");
    }
    // The unforged archive still transplants.
    let r = transplant_into(&env, &archive, &new, &["--dry-run"]);
    assert_eq!(r.code, Some(0), "{r}");
}

/// Item 12: damage carried on. An archive taken with --allow-corrupt: its damaged Lucene index is
/// dropped with re-index advice, its damaged database refused unless --allow-damaged-db; the
/// plan says so.
#[test]
fn recorded_damage_drops_the_index_and_refuses_the_database() {
    let env = TestEnv::new();
    let old = env.copy_example("wso2am-4.2.0-old");
    let new = env.copy_example("wso2am-4.2.0-new");
    let seg = old.join("solr/data/index/_0.cfs");
    let len = fs::metadata(&seg).unwrap().len();
    crate::common::flip_byte(&seg, len / 2, 0x20);
    let archive = env.path().join("lucene.tar.zst");
    let doc = env.snapshot(&old, &archive, &["--allow-corrupt"]);
    assert_eq!(doc["corrupt"][0]["path"], "solr/data/index/_0.cfs", "{doc}");
    let before = pack_digest(&new);
    let r = transplant_into(&env, &archive, &new, &["--dry-run"]);
    assert_eq!(r.code, Some(0), "{r}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("solr-data "))
        .unwrap_or_else(|| panic!("no solr-data line: {r}"));
    assert!(
        line.contains(" drop ") && line.contains("damaged"),
        "{line}"
    );
    assert!(
        line.contains("_0.cfs") && line.contains("re-index"),
        "{line}"
    );
    assert!(
        r.stdout.contains("advice: ") && r.stdout.contains("re_indexing"),
        "{r}"
    );
    let r = transplant_into(&env, &archive, &new, &[]);
    assert_eq!(r.code, Some(0), "{r}");
    assert_eq!(
        fs::read(new.join("solr/data/index/_0.cfs")).ok(),
        fs::read(crate::common::example("wso2am-4.2.0-new").join("solr/data/index/_0.cfs")).ok(),
        "the damaged index was carried"
    );
    let rv = env.run(["transplant".as_ref(), "--revert".as_ref(), new.as_os_str()]);
    assert_eq!(rv.code, Some(4), "{rv}");
    assert_eq!(pack_digest(&new), before);

    // A damaged database: both MVStore header blocks.
    crate::common::flip_byte(&seg, len / 2, 0x20);
    let db = old.join("repository/database/WSO2CARBON_DB.mv.db");
    crate::common::flip_byte(&db, 10, 0x01);
    crate::common::flip_byte(&db, 4096 + 10, 0x01);
    let archive = env.path().join("db.tar.zst");
    let doc = env.snapshot(&old, &archive, &["--allow-corrupt"]);
    assert_eq!(
        doc["corrupt"][0]["path"], "repository/database/WSO2CARBON_DB.mv.db",
        "{doc}"
    );
    for extra in [&["--dry-run"][..], &[][..]] {
        let r = transplant_into(&env, &archive, &new, extra);
        assert_eq!(r.code, Some(1), "{extra:?}: {r}");
        for w in [
            "WSO2CARBON_DB",
            "damaged",
            "--allow-damaged-db",
            "--skip-db",
        ] {
            assert!(r.stderr.contains(w), "{extra:?}: no {w}: {r}");
        }
        assert_eq!(pack_digest(&new), before, "a refusal changed the pack");
    }
    let r = transplant_into(
        &env,
        &archive,
        &new,
        &["--dry-run", "--skip-db", "WSO2CARBON_DB"],
    );
    assert_eq!(r.code, Some(0), "{r}");
}
