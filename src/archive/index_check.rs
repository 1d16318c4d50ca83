//! `index.json` checked as it streams: each entry is compared with what the archive held for its
//! path and then dropped, so verification memory does not hold the index (the largest record).
//! What later checks need (the entry's rule, its digest when it disagrees) is kept on the
//! archive's own record of the path ([`Seen::index`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use super::contents::{Finding, FindingKind, IndexInfo, IndexMark, Seen};
use super::format::{EntryType, IndexEntry};
use crate::digest::from_hex;

/// Differences between what the archive held and what the index says.
fn diff(s: &Seen, e: &IndexEntry) -> Vec<String> {
    let mut diffs = Vec::new();
    if s.kind != e.kind {
        diffs.push(format!("type {:?} vs index {:?}", s.kind, e.kind));
    }
    if s.size != e.size {
        diffs.push(format!("size {} vs index {}", s.size, e.size));
    }
    if s.sha256 != from_hex(e.sha256.as_deref()) {
        diffs.push("content sha256 differs from index".to_string());
    }
    if s.mode != e.mode {
        diffs.push(format!("mode {:o} vs index {:o}", s.mode, e.mode));
    }
    if s.mtime != e.mtime.max(0) {
        diffs.push(format!("mtime {} vs index {}", s.mtime, e.mtime));
    }
    if s.link != e.link {
        diffs.push("symlink target differs from index".to_string());
    }
    diffs
}

struct State<'a> {
    seen: &'a mut BTreeMap<String, Seen>,
    info: IndexInfo,
    ids: HashMap<String, u16>,
}

impl State<'_> {
    fn rule_id(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.info.rules.len() as u16;
        self.info.rules.push(name.to_string());
        self.info.counts.push(0);
        self.info.files.push(0);
        self.info.bytes.push(0);
        self.ids.insert(name.to_string(), id);
        id
    }

    fn entry(&mut self, e: IndexEntry) {
        let rule = self.rule_id(&e.rule);
        self.info.counts[rule as usize] += 1;
        if e.kind == EntryType::File {
            self.info.files[rule as usize] += 1;
            self.info.bytes[rule as usize] += e.size;
        }
        let finding = |kind, detail: String| Finding {
            kind,
            path: e.path.clone(),
            rule,
            detail,
        };
        match self.seen.get_mut(&e.path) {
            None => {
                if self.info.missing.iter().any(|m| m.path == e.path) {
                    let f = finding(FindingKind::Duplicate, "listed twice in index.json".into());
                    self.info.findings.push(f);
                } else {
                    let f = finding(
                        FindingKind::Missing,
                        "in index.json but not in the archive".into(),
                    );
                    self.info.findings.push(f);
                    self.info.missing.push(e);
                }
            }
            Some(s) => {
                if s.index.is_some() {
                    let f = finding(FindingKind::Duplicate, "listed twice in index.json".into());
                    self.info.findings.push(f);
                    return;
                }
                let diffs = diff(s, &e);
                s.index = Some(IndexMark {
                    rule,
                    sha256: if s.sha256 != from_hex(e.sha256.as_deref()) {
                        e.sha256.clone()
                    } else {
                        None
                    },
                    is_file: e.kind == EntryType::File,
                    listed: false,
                });
                if !diffs.is_empty() {
                    let f = finding(FindingKind::Changed, diffs.join("; "));
                    self.info.findings.push(f);
                }
            }
        }
    }
}

/// Parses `index.json` from `reader`, checking each entry against `seen` as it arrives.
pub fn check_streaming<R: std::io::Read>(
    reader: R,
    seen: &mut BTreeMap<String, Seen>,
) -> Option<IndexInfo> {
    let mut state = State {
        seen,
        info: IndexInfo::default(),
        ids: HashMap::new(),
    };
    let reader = super::limits::JsonStringLimit::new(reader, super::limits::MAX_JSON_STRING);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let ok = de.deserialize_map(TopVisitor { state: &mut state }).is_ok() && de.end().is_ok();
    if !ok {
        // A broken index: forget what it marked, so the report says it is unreadable rather
        // than half-checked.
        for s in state.seen.values_mut() {
            s.index = None;
        }
        return None;
    }
    Some(state.info)
}

struct TopVisitor<'a, 'b> {
    state: &'a mut State<'b>,
}

impl<'de> Visitor<'de> for TopVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the index.json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut saw_entries = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => self.state.info.format = map.next_value()?,
                "entries" => {
                    map.next_value_seed(EntriesSeed { state: self.state })?;
                    saw_entries = true;
                }
                "changed_while_reading" => {
                    self.state.info.changed_while_reading = map.next_value()?
                }
                "corrupt" => self.state.info.corrupt = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !saw_entries {
            return Err(serde::de::Error::missing_field("entries"));
        }
        Ok(())
    }
}

struct EntriesSeed<'a, 'b> {
    state: &'a mut State<'b>,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of index entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(e) = seq.next_element::<IndexEntry>()? {
            self.state.entry(e);
        }
        Ok(())
    }
}
