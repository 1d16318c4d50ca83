//! `SHA256SUMS` checked line by line as it streams, against the index marks the index check
//! left on each path (index.json is written before it). Every listed entry is marked, so verify
//! can name the files the sums leave out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use super::contents::{IndexInfo, Seen, SumsInfo, SumsProblem};
use super::format::{parse_sha256sum_line, IndexEntry, SHA256SUMS};

/// Checks `SHA256SUMS` from `reader` against the index marks in `seen` (and the index entries
/// the archive lacks); marks each listed entry.
pub fn check_sums_streaming<R: BufRead>(
    reader: R,
    seen: &mut BTreeMap<String, Seen>,
    info: &IndexInfo,
) -> SumsInfo {
    let missing: HashMap<&str, &IndexEntry> =
        info.missing.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut out = SumsInfo::default();
    for (i, line) in reader.split(b'\n').enumerate() {
        let Ok(line) = line else {
            out.push(SHA256SUMS, None, format!("unreadable after line {i}"));
            break;
        };
        if line.is_empty() {
            continue;
        }
        let parsed = std::str::from_utf8(&line)
            .ok()
            .and_then(parse_sha256sum_line);
        let Some((hex, name)) = parsed else {
            out.push(SHA256SUMS, None, format!("line {} is malformed", i + 1));
            continue;
        };
        match indexed(seen, &missing, info, &name, &mut out.listed_missing) {
            Some((sha, _)) if sha.as_deref() == Some(hex.as_str()) => {}
            Some((_, rule)) => out.push(
                &name,
                Some(rule),
                "SHA256SUMS digest differs from index.json".into(),
            ),
            None => out.push(&name, None, "in SHA256SUMS but not in index.json".into()),
        }
    }
    out
}

/// What the index recorded for `name` (its digest and rule), marking the entry as listed.
fn indexed(
    seen: &mut BTreeMap<String, Seen>,
    missing: &HashMap<&str, &IndexEntry>,
    info: &IndexInfo,
    name: &str,
    listed_missing: &mut HashSet<String>,
) -> Option<(Option<String>, String)> {
    match seen.get_mut(name) {
        Some(s) => {
            let computed = s.sha256;
            s.index.as_mut().map(|m| {
                m.listed = true;
                let sha = m.sha256.clone().or_else(|| computed.map(hex::encode));
                (sha, info.rule_name(m.rule).to_string())
            })
        }
        None => missing.get(name).map(|e| {
            listed_missing.insert(e.path.clone());
            (e.sha256.clone(), e.rule.clone())
        }),
    }
}

impl SumsInfo {
    fn push(&mut self, path: &str, rule: Option<String>, detail: String) {
        self.problems.push(SumsProblem {
            path: path.to_string(),
            rule,
            detail,
        });
    }
}
