//! Crash safety with the compiled-in crash points (`--features failpoints`):
//! `CARRYOVER_FAILPOINT=<name>` makes the binary abort() there. After every crash, the next
//! carryover command on the pack (`transplant --recover`, `inspect`, or a new `transplant`)
//! must leave it exactly "before" (not committed: rolled back) or exactly "after" (committed),
//! and the pack must take a normal transplant and revert afterwards. A crash in the middle of a
//! revert is finished by recovery, never undone.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::common::{pack_digest, PackDigest, Ran, TestEnv};
use crate::transplant::{assert_no_txn, assert_same, keep_base, recover, revert, txn_dirs, Fx};

/// A clean transplant of `source` into a fresh NEW copy: the trees before and after, and the
/// units of its transaction (from `plan.json`), with those that moved something aside first
/// (from the journal's `backup` records).
struct Reference {
    before: PackDigest,
    after: PackDigest,
    units: usize,
    backed_up: BTreeSet<usize>,
}

fn base_args(env: &TestEnv) -> Vec<String> {
    vec![
        "--base".into(),
        keep_base(env).to_string_lossy().into_owned(),
    ]
}

fn run_transplant(
    fx: &Fx,
    source: &Path,
    target: &Path,
    failpoint: Option<&str>,
) -> std::process::Output {
    let mut cmd = fx.env.cmd();
    if let Some(fp) = failpoint {
        cmd.env("CARRYOVER_FAILPOINT", fp);
    }
    cmd.arg("transplant")
        .arg("-q")
        .arg("--force")
        .args(base_args(&fx.env))
        .arg(source)
        .arg(target)
        .output()
        .expect("run carryover")
}

fn reference(fx: &Fx, source: &Path, name: &str) -> Reference {
    let t = fx.new_pack(name);
    let before = pack_digest(&t);
    let out = run_transplant(fx, source, &t, None);
    assert!(out.status.success(), "{}", Ran::from_output(out));
    let after = pack_digest(&t);
    assert_ne!(after, before);
    let dirs = txn_dirs(&t);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let plan: serde_json::Value =
        serde_json::from_slice(&fs::read(dirs[0].join("plan.json")).unwrap()).unwrap();
    let units = plan["units"].as_array().expect("plan.json units").len();
    let journal = fs::read_to_string(dirs[0].join("journal")).unwrap();
    let backed_up = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["op"] == "backup")
        .map(|r| r["unit"].as_u64().unwrap() as usize)
        .collect();
    Reference {
        before,
        after,
        units,
        backed_up,
    }
}

/// Every crash point a transplant of the example passes, in order.
fn transplant_failpoints(r: &Reference) -> Vec<String> {
    let mut v = vec!["after-begin".to_string(), "after-stage".to_string()];
    for i in 0..r.units {
        if r.backed_up.contains(&i) {
            v.push(format!("before-backup-{i}"));
            v.push(format!("after-backup-{i}"));
        }
        v.push(format!("after-install-{i}"));
    }
    v.extend(["after-swapped", "after-verify", "after-commit"].map(String::from));
    v
}

#[track_caller]
fn assert_aborted(out: std::process::Output, what: &str) {
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{what}: expected an abort at the crash point, got {}",
        Ran::from_output(out)
    );
}

/// How the pack is brought back after a crash.
#[derive(Clone, Copy, Debug)]
enum Repair {
    Recover,
    Inspect,
}

/// Repairs the pack; `pending`: whether there was something to roll back or finish, which the
/// command must then report.
fn repair(fx: &Fx, target: &Path, how: Repair, pending: bool) {
    let (r, reported) = match how {
        Repair::Recover => {
            let r = recover(&fx.env, target);
            let reported = !r.stdout.contains("nothing to recover");
            (r, reported)
        }
        Repair::Inspect => {
            let r = fx.env.run(["inspect".as_ref(), target.as_os_str()]);
            assert_eq!(r.code, Some(0), "inspect after a crash: {r}");
            let reported = r.stderr.contains("carryover: recovered");
            (r, reported)
        }
    };
    assert_eq!(reported, pending, "{how:?} after a crash: {r}");
}

/// Runs `job` for every item on a few threads (each run mostly waits on fsync).
fn parallel<T: Sync>(items: &[T], job: impl Fn(usize, &T) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(k) else { break };
                job(k, item);
            });
        }
    });
}

/// Crashes a transplant of `source` at every point, repairs, checks the tree, then checks that
/// the pack takes a normal transplant (and, every few points, a revert).
fn crash_everywhere(
    fx: &Fx,
    source: &Path,
    tag: &str,
    only: Option<&(dyn Fn(&str) -> bool + Sync)>,
) {
    let r = reference(fx, source, &format!("{tag}-ref"));
    assert!(r.units >= 10, "only {} units", r.units);
    assert!(
        r.backed_up.len() < r.units,
        "every unit replaced something: the create path is not exercised"
    );
    let names: Vec<String> = transplant_failpoints(&r)
        .into_iter()
        .filter(|n| only.map_or(true, |f| f(n)))
        .collect();
    assert!(names.iter().any(|n| n == "after-commit"));
    parallel(&names, |k, name| {
        let t = fx.new_pack(&format!("{tag}-{k}"));
        assert_same("a fresh copy", &pack_digest(&t), &r.before);
        assert_aborted(run_transplant(fx, source, &t, Some(name)), name);

        let how = if k % 3 == 2 {
            Repair::Inspect
        } else {
            Repair::Recover
        };
        let committed = name == "after-commit";
        repair(fx, &t, how, !committed);
        let got = pack_digest(&t);
        let (want, label) = if committed {
            (&r.after, "after")
        } else {
            (&r.before, "before")
        };
        assert!(
            got == *want,
            "{name} then {how:?}: the tree is not \"{label}\":\n{}\n(vs the other state:\n{})",
            want.diff(&got),
            if committed { &r.before } else { &r.after }.diff(&got)
        );
        if committed {
            assert_eq!(txn_dirs(&t).len(), 1, "{name}: the committed txn stays");
        } else {
            assert_no_txn(&t);
        }

        // The pack works normally afterwards.
        let out = run_transplant(fx, source, &t, None);
        assert!(out.status.success(), "{name}: {}", Ran::from_output(out));
        assert_same(
            &format!("{name}: transplant after"),
            &pack_digest(&t),
            &r.after,
        );
        if committed || k % 4 == 0 {
            let rv = revert(&fx.env, &t);
            assert_eq!(rv.code, Some(4), "{name}: {rv}");
            // Only the newest transplant is revertible: after a committed crash, that is the
            // second one, so the revert leads back to the first one's result.
            let want = if committed { &r.after } else { &r.before };
            assert_same(&format!("{name}: revert"), &pack_digest(&t), want);
        }
        fs::remove_dir_all(&t).unwrap();
    });
    eprintln!("{tag}: {} crash points, {} units", names.len(), r.units);
}

#[test]
fn a_crash_at_any_point_of_an_archive_transplant_leaves_before_or_after() {
    let fx = Fx::new();
    let source = fx.archive.clone();
    crash_everywhere(&fx, &source, "archive", None);
}

#[test]
fn a_crash_at_any_point_of_a_pack_transplant_leaves_before_or_after() {
    let fx = Fx::new();
    let source = fx.old.clone();
    // The per-unit points of every third unit, and every other point.
    let pick = |name: &str| -> bool {
        name.rsplit_once('-')
            .and_then(|(_, i)| i.parse::<usize>().ok())
            .map_or(true, |i| i % 3 == 0)
    };
    crash_everywhere(&fx, &source, "pack", Some(&pick));
}

#[test]
fn the_next_transplant_repairs_a_crashed_one_first() {
    let fx = Fx::new();
    let r = reference(&fx, &fx.archive, "ref");
    for name in ["after-stage", "after-install-3", "after-swapped"] {
        let t = fx.new_pack(&format!("next-{name}"));
        assert_aborted(run_transplant(&fx, &fx.archive, &t, Some(name)), name);
        let out = fx
            .env
            .cmd()
            .arg("transplant")
            .args(base_args(&fx.env))
            .arg(&fx.archive)
            .arg(&t)
            .output()
            .unwrap();
        let ran = Ran::from_output(out);
        assert_eq!(ran.code, Some(0), "{name}: {ran}");
        assert!(ran.stdout.contains("recovered first"), "{name}: {ran}");
        assert_same(name, &pack_digest(&t), &r.after);
        assert_eq!(txn_dirs(&t).len(), 1);
        assert_eq!(revert(&fx.env, &t).code, Some(4));
        assert_same(name, &pack_digest(&t), &r.before);
    }
}

#[test]
fn a_crash_in_the_middle_of_a_revert_is_finished_by_recovery() {
    let fx = Fx::new();
    let r = reference(&fx, &fx.archive, "ref");
    let units: Vec<usize> = (0..r.units).collect();
    parallel(&units, |_, &i| {
        let t = fx.new_pack(&format!("rv-{i}"));
        let out = run_transplant(&fx, &fx.archive, &t, None);
        assert!(out.status.success(), "{}", Ran::from_output(out));
        assert_same("transplant", &pack_digest(&t), &r.after);

        let name = format!("revert-after-remove-{i}");
        let out = fx
            .env
            .cmd()
            .env("CARRYOVER_FAILPOINT", &name)
            .arg("transplant")
            .arg("--revert")
            .arg(&t)
            .output()
            .unwrap();
        assert_aborted(out, &name);
        // The tree is neither state now (units > i are reverted, unit i is out): recovery
        // finishes the revert.
        assert_ne!(pack_digest(&t), r.after, "{name}");
        let how = if i % 2 == 1 {
            Repair::Inspect
        } else {
            Repair::Recover
        };
        repair(&fx, &t, how, true);
        assert_same(&format!("{name} then {how:?}"), &pack_digest(&t), &r.before);
        assert_no_txn(&t);
        // Nothing left to revert; a new transplant works.
        assert_eq!(revert(&fx.env, &t).code, Some(1));
        let out = run_transplant(&fx, &fx.archive, &t, None);
        assert!(out.status.success(), "{name}: {}", Ran::from_output(out));
        assert_same(
            &format!("{name}: transplant after"),
            &pack_digest(&t),
            &r.after,
        );
        fs::remove_dir_all(&t).unwrap();
    });
}

#[test]
fn a_damaged_plan_json_stops_recovery_and_keeps_the_backups() {
    let fx = Fx::new();
    let r = reference(&fx, &fx.archive, "ref");
    let t = fx.new_pack("damaged-plan");
    let name = "after-install-3";
    assert_aborted(run_transplant(&fx, &fx.archive, &t, Some(name)), name);
    let dirs = txn_dirs(&t);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let plan = dirs[0].join("plan.json");
    let good = fs::read(&plan).unwrap();
    fs::write(&plan, &good[..good.len() / 2]).unwrap();
    let mid = pack_digest(&t);

    // Without its plan the journal's installs cannot be undone: nothing is rolled back, and
    // nothing of the transaction (its backups included) is deleted.
    let rec = fx
        .env
        .run(["transplant".as_ref(), "--recover".as_ref(), t.as_os_str()]);
    assert_eq!(rec.code, Some(1), "{rec}");
    assert!(rec.stderr.contains("plan.json"), "{rec}");
    assert_eq!(txn_dirs(&t), dirs, "the transaction directory must stay");
    assert!(dirs[0].join("journal").exists() && dirs[0].join("backup").is_dir());
    assert_same("after the refused recovery", &pack_digest(&t), &mid);

    // With plan.json restored, recovery rolls back to exactly "before".
    fs::write(&plan, &good).unwrap();
    recover(&fx.env, &t);
    assert_same("after recovery", &pack_digest(&t), &r.before);
    assert_no_txn(&t);
}
