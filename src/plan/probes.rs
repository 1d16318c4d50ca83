//! The files whose OS lock or freshness says a server holds the pack: every H2 file and lock file
//! under `repository/database`, each rule's database and side files, Lucene `write.lock`s.

use std::fs;
use std::path::PathBuf;

use super::model::RulePlan;
use crate::manifest::Kind;
use crate::pack::Pack;

/// Files whose OS lock or freshness says a server holds the pack.
pub(super) fn lock_probes(pack: &Pack, rules: &[RulePlan]) -> Vec<PathBuf> {
    let mut probes = Vec::new();
    let db_dir = pack.root.join("repository/database");
    if let Ok(rd) = fs::read_dir(&db_dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".mv.db") || n.ends_with(".h2.db") || n.ends_with(".lock.db") {
                probes.push(e.path());
            }
        }
    }
    for r in rules {
        if let Some(h2) = &r.h2 {
            if let Some(f) = &h2.file {
                probes.push(pack.root.join(f));
            }
            probes.extend(h2.side_files.iter().map(|s| pack.root.join(s)));
        }
        if r.kind == Kind::Lucene {
            if let Some(p) = &r.path {
                probes.extend(
                    r.entries
                        .iter()
                        .filter(|e| e.rel.file_name().is_some_and(|n| n == "write.lock"))
                        .map(|e| pack.root.join(&e.rel)),
                );
                probes.push(pack.root.join(p).join("index/write.lock"));
            }
        }
    }
    probes.sort();
    probes.dedup();
    probes
}
