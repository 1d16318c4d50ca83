//! Unit tests of the liveness probes.

use super::*;

#[test]
fn pid_file_parsing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("wso2carbon.pid");
    let mut bytes = b"12345\n".to_vec();
    bytes.resize(100, 0);
    fs::write(&p, bytes).unwrap();
    assert_eq!(read_pid(&p), Some(12345));
    fs::write(&p, b"garbage").unwrap();
    assert_eq!(read_pid(&p), None);
}

#[test]
fn lock_probe_tells_absent_unlocked_and_held_apart() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.mv.db");
    assert_eq!(lock_holder(&p), LockProbe::Absent);
    fs::write(&p, b"data").unwrap();
    assert_eq!(lock_holder(&p), LockProbe::Unlocked);
    // A lock held by another process (a child holding an fcntl lock on the file).
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg("import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('ok', flush=True); time.sleep(30)")
        .arg(&p)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let probe = lock_holder(&p);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(probe, LockProbe::Held(Some(child.id() as i32)));
}

#[test]
fn stale_pid_is_not_running() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("wso2carbon.pid"), b"4194301\n").unwrap();
    let l = Liveness::probe(d.path(), &[]);
    assert!(!l.running);
    assert!(matches!(l.evidence[0], Evidence::StalePidFile { .. }));
}

#[test]
fn own_pid_without_carbon_home_is_not_running() {
    let d = tempfile::tempdir().unwrap();
    fs::write(
        d.path().join("wso2carbon.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    assert!(!Liveness::probe(d.path(), &[]).running);
}

#[test]
fn lock_db_naming_a_listening_server_is_running() {
    let d = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = d.path().join("WSO2AM_DB.lock.db");
    fs::write(
        &p,
        format!("#FileLock\nid=1\nmethod=file\nserver=127.0.0.1\\:{port}\n"),
    )
    .unwrap();
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(&p, old).unwrap();
    assert!(Liveness::probe(d.path(), std::slice::from_ref(&p)).running);
    drop(listener);
    assert!(!Liveness::probe(d.path(), &[p]).running);
}

#[test]
fn old_lock_db_is_not_fresh() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("X.lock.db");
    fs::write(&p, b"x").unwrap();
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(&p, old).unwrap();
    assert!(!Liveness::probe(d.path(), std::slice::from_ref(&p)).running);
    filetime::set_file_mtime(&p, filetime::FileTime::now()).unwrap();
    assert!(Liveness::probe(d.path(), &[p]).running);
}
