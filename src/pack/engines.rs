//! Storage engines: the H2 on-disk format read from a database file's header, the H2 engine and
//! Lucene major a pack ships (from its plugin jars), and which formats an engine opens.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::version::Version;

/// The on-disk format of an H2 database file, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum H2Format {
    /// `-- H2 0.5/B --`: the PageStore of H2 1.x (`.h2.db`).
    PageStore,
    /// MVStore (`.mv.db`) with its `format:N` (absent means 1) and whether `clean:1` is set.
    MvStore {
        /// The `format:N` number.
        format: u32,
        /// `clean:1` is set.
        clean: bool,
    },
    /// `H2encrypt`: an encrypted file; the format cannot be read without the key.
    Encrypted,
    /// Neither header: empty, damaged or not an H2 file.
    Unknown,
}

impl fmt::Display for H2Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H2Format::PageStore => write!(f, "PageStore (H2 1.x)"),
            H2Format::MvStore {
                format,
                clean: true,
            } => write!(f, "MVStore format {format}"),
            H2Format::MvStore {
                format,
                clean: false,
            } => {
                write!(f, "MVStore format {format}, not cleanly closed")
            }
            H2Format::Encrypted => write!(f, "encrypted"),
            H2Format::Unknown => write!(f, "unknown (no H2 header)"),
        }
    }
}

impl H2Format {
    /// Reads the format from the first block of `path`.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn of_file(path: &Path) -> std::io::Result<H2Format> {
        let mut buf = vec![0u8; 4096];
        let mut f = File::open(path)?;
        let mut n = 0;
        while n < buf.len() {
            let k = f.read(&mut buf[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        Ok(H2Format::of_header(&buf[..n]))
    }

    /// Reads the format from the first bytes of a database file.
    pub fn of_header(head: &[u8]) -> H2Format {
        if head.starts_with(b"-- H2 0.5/B --") {
            return H2Format::PageStore;
        }
        if head.starts_with(b"H2encrypt") || head.starts_with(b"-- H2 0.5/E --") {
            return H2Format::Encrypted;
        }
        match MvHeader::parse(head) {
            Some(h) => H2Format::MvStore {
                format: h.format,
                clean: h.clean,
            },
            None => H2Format::Unknown,
        }
    }

    /// Whether `engine` (the H2 version a pack ships) opens a file of this format.
    /// H2 1.x reads PageStore and format 1; 2.0/2.1 format 2; 2.2 and later format 3.
    pub fn opened_by(&self, engine: &Version) -> Option<bool> {
        let want = engine_mv_format(engine);
        match self {
            H2Format::PageStore => Some(engine.major() < 2),
            H2Format::MvStore { format, .. } => Some(*format == want),
            H2Format::Encrypted | H2Format::Unknown => None,
        }
    }

    /// Whether the file says it was closed cleanly (PageStore files cannot tell: true).
    pub fn is_clean(&self) -> bool {
        !matches!(self, H2Format::MvStore { clean: false, .. })
    }
}

/// The MVStore format an H2 engine version writes and reads.
pub fn engine_mv_format(engine: &Version) -> u32 {
    match (engine.major(), engine.minor()) {
        (0 | 1, _) => 1,
        (2, 0 | 1) => 2,
        _ => 3,
    }
}

/// The parsed first line of an MVStore file header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MvHeader {
    /// The MVStore format number.
    pub format: u32,
    /// `clean:1`: closed cleanly.
    pub clean: bool,
    /// Whether the stored fletcher checksum matches the header bytes (None if absent).
    pub checksum_ok: Option<bool>,
}

impl MvHeader {
    /// Parses an MVStore header block (checksum checked); None when it is not one.
    pub fn parse(block: &[u8]) -> Option<MvHeader> {
        if !block.starts_with(b"H:2,") {
            return None;
        }
        let end = block
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .unwrap_or(block.len().min(1024));
        let line = std::str::from_utf8(&block[..end]).ok()?;
        let mut format = 1;
        let mut clean = false;
        let mut checksum_ok = None;
        for field in line.split(',') {
            let (k, v) = field.split_once(':')?;
            match k {
                "format" => format = u32::from_str_radix(v, 16).ok()?,
                "clean" => clean = v == "1",
                "fletcher" => {
                    let stored = u32::from_str_radix(v, 16).ok()?;
                    let body = line.find(",fletcher:").map(|i| &line.as_bytes()[..i])?;
                    checksum_ok = Some(fletcher32(body) == stored);
                }
                _ => {}
            }
        }
        Some(MvHeader {
            format,
            clean,
            checksum_ok,
        })
    }
}

/// H2's `DataUtils.getFletcher32`, which guards the MVStore file header.
pub fn fletcher32(b: &[u8]) -> u32 {
    let (mut s1, mut s2): (u32, u32) = (0xffff, 0xffff);
    let n = b.len() & !1;
    let mut i = 0;
    while i < n {
        let end = (i + 720).min(n);
        while i < end {
            s1 += ((b[i] as u32) << 8) | b[i + 1] as u32;
            s2 += s1;
            i += 2;
        }
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    if b.len() & 1 == 1 {
        s1 += (b[i] as u32) << 8;
        s2 += s1;
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    (s2 << 16) | s1
}

/// An engine jar found in `repository/components/plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct EngineJar {
    /// The jar's file name.
    pub jar: String,
    #[serde(serialize_with = "ser_version")]
    /// Its version, from the file name.
    pub version: Version,
}

fn ser_version<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// The engines a pack ships, read from its plugin jar names.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Engines {
    /// The H2 engine.
    pub h2: Option<EngineJar>,
    /// Lucene core.
    pub lucene: Option<EngineJar>,
    /// Solr core.
    pub solr: Option<EngineJar>,
}

impl Engines {
    /// Finds the engine jars in `repository/components/plugins`.
    pub fn detect(pack: &Path) -> Engines {
        let dir = pack.join("repository/components/plugins");
        let mut e = Engines::default();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return e;
        };
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".jar") else {
                continue;
            };
            let (prefix, version) = match split_jar(stem) {
                Some(x) => x,
                None => continue,
            };
            let slot = match prefix {
                // the kernel bundles: h2_1.3.175, h2_1.4.199, h2_2.1.210, h2-engine_2.x
                "h2" | "h2-engine" => &mut e.h2,
                // the legacy 1.2.140 orbit bundle also ships in 2.x; the kernel one wins
                "h2-database-engine" => {
                    if e.h2.is_none() {
                        &mut e.h2
                    } else {
                        continue;
                    }
                }
                "lucene" | "lucene-core" => &mut e.lucene,
                "solr" | "solr-core" => &mut e.solr,
                _ => continue,
            };
            let better = match slot {
                None => true,
                Some(cur) => cur.jar.starts_with("h2-database-engine") || version > cur.version,
            };
            if better {
                *slot = Some(EngineJar {
                    jar: name.clone(),
                    version,
                });
            }
        }
        e
    }

    /// The Lucene major: from the Lucene jar, else the Solr jar (Solr 9 ships Lucene 9, 8 ships 8, 5 ships 5).
    pub fn lucene_major(&self) -> Option<u32> {
        self.lucene
            .as_ref()
            .or(self.solr.as_ref())
            .map(|j| j.version.major())
    }
}

/// `h2-engine_2.1.210.wso2v1` -> ("h2-engine", 2.1.210).
fn split_jar(stem: &str) -> Option<(&str, Version)> {
    let (prefix, rest) = stem.split_once('_')?;
    let numeric: Vec<&str> = rest
        .split('.')
        .take_while(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    if numeric.is_empty() {
        return None;
    }
    Some((prefix, Version::parse(&numeric.join("."))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            H2Format::of_header(b"-- H2 0.5/B -- \n"),
            H2Format::PageStore
        );
        let h = b"H:2,block:3,blockSize:1000,chunk:2,clean:1,created:1a2048f159c,format:3,version:2,fletcher:2f9b410f\n";
        assert_eq!(
            H2Format::of_header(h),
            H2Format::MvStore {
                format: 3,
                clean: true
            }
        );
        assert_eq!(MvHeader::parse(h).unwrap().checksum_ok, Some(true));
        let mut bad = h.to_vec();
        bad[10] = b'9';
        assert_eq!(MvHeader::parse(&bad).unwrap().checksum_ok, Some(false));
        assert_eq!(
            H2Format::of_header(
                b"H:2,block:5,blockSize:1000,chunk:3,created:1,version:3,fletcher:0"
            ),
            H2Format::MvStore {
                format: 1,
                clean: false
            }
        );
        assert_eq!(H2Format::of_header(b"H2encrypt\nxxxx"), H2Format::Encrypted);
        assert_eq!(H2Format::of_header(b""), H2Format::Unknown);
    }

    #[test]
    fn engine_compat() {
        let v = |s| Version::parse(s).unwrap();
        let f2 = H2Format::MvStore {
            format: 2,
            clean: true,
        };
        assert_eq!(f2.opened_by(&v("2.1.210")), Some(true));
        assert_eq!(f2.opened_by(&v("2.3.232")), Some(false));
        assert_eq!(H2Format::PageStore.opened_by(&v("1.4.199")), Some(true));
        assert_eq!(H2Format::PageStore.opened_by(&v("2.1.210")), Some(false));
    }

    #[test]
    fn jar_names() {
        assert_eq!(
            split_jar("h2-engine_2.1.210.wso2v1").unwrap().1,
            Version::parse("2.1.210").unwrap()
        );
        assert_eq!(
            split_jar("lucene-core_9.9.2.wso2v1").unwrap().0,
            "lucene-core"
        );
        assert!(split_jar("org.wso2.carbon.core").is_none());
    }
}
