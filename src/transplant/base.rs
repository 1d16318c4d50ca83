//! Where the pristine base of a three-way config merge comes from: `--base` names an unpacked
//! pack of the old version, its distribution `.zip`, or a baseline snapshot (the CLI falls back
//! to the catalog's baseline snapshot). Also reads a few small files out of an archive, for the
//! base and for the dry run's preview of the operator's files. Reads only.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::archive::format::EntryType;
use crate::archive::{read_archive, Seen, Visitor};
use crate::error::{Error, IoContext, Result};
use crate::progress::{Cancel, NoProgress};

/// Where the pristine base files come from.
#[derive(Debug, Clone)]
pub enum Base {
    /// An unpacked pack of the old version.
    Dir(PathBuf),
    /// The product's distribution zip (one top directory, `wso2am-4.2.0/`).
    Zip(PathBuf),
    /// A baseline snapshot archive.
    Archive(PathBuf),
}

impl Base {
    /// The kind of base at `p`: a directory, a `.zip`, or else an archive.
    ///
    /// # Errors
    /// `p` cannot be stat'ed.
    pub fn from_path(p: &Path) -> Result<Base> {
        let meta = fs::metadata(p).at(p)?;
        Ok(if meta.is_dir() {
            Base::Dir(p.to_path_buf())
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
            Base::Zip(p.to_path_buf())
        } else {
            Base::Archive(p.to_path_buf())
        })
    }

    /// The base as the report names it.
    pub fn describe(&self) -> String {
        match self {
            Base::Dir(p) => format!("pristine pack {}", p.display()),
            Base::Zip(p) => format!("distribution {}", p.display()),
            Base::Archive(p) => format!("baseline snapshot {}", p.display()),
        }
    }

    /// The product version the base is of, when it says (pack detection, snapshot.json, or the
    /// zip's `wso2am-4.2.0/` top directory).
    pub fn version(&self) -> Option<String> {
        match self {
            Base::Dir(d) => crate::pack::Identity::detect(d)
                .ok()
                .map(|i| i.version.to_string()),
            Base::Archive(a) => crate::archive::read_meta(a).ok().map(|m| m.version),
            Base::Zip(z) => {
                let f = fs::File::open(z).ok()?;
                let mut zip = zip::ZipArchive::new(f).ok()?;
                let first = zip.by_index(0).ok()?.name().to_string();
                let top = first.split('/').next()?;
                let v = top.rsplit_once('-')?.1;
                crate::version::Version::parse(v).map(|v| v.to_string())
            }
        }
    }

    /// The base content of each wanted pack-relative path that the base has.
    ///
    /// # Errors
    /// The zip or archive cannot be read.
    pub fn read(&self, wanted: &[String]) -> Result<HashMap<String, Vec<u8>>> {
        match self {
            Base::Dir(d) => Ok(wanted
                .iter()
                .filter_map(|w| fs::read(d.join(w)).ok().map(|b| (w.clone(), b)))
                .collect()),
            Base::Zip(z) => read_from_zip(z, wanted),
            Base::Archive(a) => collect_from_archive(a, wanted),
        }
    }
}

/// The wanted files of a distribution zip, by their path below its top directory.
fn read_from_zip(z: &Path, wanted: &[String]) -> Result<HashMap<String, Vec<u8>>> {
    let mut out = HashMap::new();
    let f = fs::File::open(z).at(z)?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| Error::invalid(z, format!("not a readable zip: {e}")))?;
    for i in 0..zip.len() {
        let mut ent = zip
            .by_index(i)
            .map_err(|e| Error::invalid(z, format!("zip entry {i}: {e}")))?;
        // Distribution zips hold one top directory (wso2am-4.2.0/...).
        let name = ent.name().to_string();
        let rel = name.split_once('/').map(|(_, r)| r).unwrap_or(&name);
        if wanted.iter().any(|w| w == rel) {
            let mut b = Vec::new();
            ent.read_to_end(&mut b)
                .map_err(|e| Error::invalid(z, format!("{name}: {e}")))?;
            out.insert(rel.to_string(), b);
        }
    }
    Ok(out)
}

/// Collects the content of a few (small) entries while an archive streams past.
struct Collector<'a> {
    wanted: &'a BTreeSet<String>,
    cur: Option<(String, Vec<u8>)>,
    out: HashMap<String, Vec<u8>>,
}

impl Visitor for Collector<'_> {
    fn begin(&mut self, path: &str, e: &Seen) -> Result<()> {
        if e.kind == EntryType::File && self.wanted.contains(path) {
            self.cur = Some((path.to_string(), Vec::new()));
        }
        Ok(())
    }
    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some((_, b)) = self.cur.as_mut() {
            b.extend_from_slice(bytes);
        }
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        if let Some((p, b)) = self.cur.take() {
            self.out.insert(p, b);
        }
        Ok(())
    }
}

/// The content of the wanted files of `archive` (one pass over it).
///
/// # Errors
/// The archive cannot be opened, or its stream is damaged (`Corrupt`).
pub fn collect_from_archive(archive: &Path, wanted: &[String]) -> Result<HashMap<String, Vec<u8>>> {
    let set: BTreeSet<String> = wanted.iter().cloned().collect();
    let mut c = Collector {
        wanted: &set,
        cur: None,
        out: HashMap::new(),
    };
    let contents = read_archive(archive, Some(&mut c), &NoProgress, &Cancel::default())?;
    if let Some(e) = contents.stream_error {
        return Err(Error::corrupt(archive, e));
    }
    Ok(c.out)
}
