//! Engine-level integrity checks that run on bytes as they stream past, at no extra pass:
//! Lucene codec footers (magic + CRC32 of every byte before the checksum) and MVStore header
//! fletcher checksums. Files that are not codec files are not judged.
//!
//! Used by the snapshot writer (`archive::source`) on every file of a lucene or h2 rule; the
//! checker only looks at bytes and returns a verdict, what to do with it is the caller's.

use crate::pack::engines::MvHeader;

/// Lucene `CodecUtil.CODEC_MAGIC`; the footer magic is its bitwise complement.
const CODEC_MAGIC: u32 = 0x3FD7_6C17;
const FOOTER_MAGIC: u32 = !CODEC_MAGIC;
const FOOTER_LEN: u64 = 16;
const MV_BLOCK: usize = 4096;

/// What to check a file as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not judged.
    None,
    /// A Lucene index file: codec footer magic and CRC32.
    Lucene,
    /// An H2 MVStore database: its two header blocks' fletcher checksums.
    MvStore,
}

/// Incremental checker fed with a file's bytes in order.
pub struct Checker {
    check: Check,
    size: u64,
    seen: u64,
    /// First bytes (codec magic / MVStore header blocks).
    head: Vec<u8>,
    head_cap: usize,
    crc: crc32fast::Hasher,
    /// Last 16 bytes (the Lucene footer).
    tail: [u8; 16],
}

impl Checker {
    /// A checker for a file of `size` bytes, to be judged as `check`.
    pub fn new(check: Check, size: u64) -> Checker {
        let head_cap = match check {
            Check::None => 0,
            Check::Lucene => 4,
            Check::MvStore => 2 * MV_BLOCK,
        };
        Checker {
            check,
            size,
            seen: 0,
            head: Vec::with_capacity(head_cap),
            head_cap,
            crc: crc32fast::Hasher::new(),
            tail: [0; 16],
        }
    }

    /// Feeds the file's next bytes.
    pub fn update(&mut self, buf: &[u8]) {
        if self.check == Check::None {
            return;
        }
        if self.head.len() < self.head_cap {
            let n = (self.head_cap - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..n]);
        }
        if self.check == Check::Lucene {
            // CRC covers everything but the last 8 bytes (the stored checksum itself).
            let crc_end = self.size.saturating_sub(8);
            if self.seen < crc_end {
                let n = ((crc_end - self.seen) as usize).min(buf.len());
                self.crc.update(&buf[..n]);
            }
            let tail_start = self.size.saturating_sub(FOOTER_LEN);
            let end = self.seen + buf.len() as u64;
            if end > tail_start {
                let from = tail_start.max(self.seen);
                for off in from..end {
                    let idx = (off - tail_start) as usize;
                    if idx < 16 {
                        self.tail[idx] = buf[(off - self.seen) as usize];
                    }
                }
            }
        }
        self.seen += buf.len() as u64;
    }

    /// None when the file is sound or not judged; Some(problem) when damaged.
    pub fn finish(self) -> Option<String> {
        match self.check {
            Check::None => None,
            Check::Lucene => self.lucene_problem(),
            Check::MvStore => self.mvstore_problem(),
        }
    }

    fn lucene_problem(self) -> Option<String> {
        if self.head.len() < 4
            || u32::from_be_bytes([self.head[0], self.head[1], self.head[2], self.head[3]])
                != CODEC_MAGIC
        {
            return None; // not a codec file (write.lock, tlog, segments.gen)
        }
        if self.size < FOOTER_LEN + 4 {
            return Some(format!(
                "Lucene codec file too short for a footer ({} bytes)",
                self.size
            ));
        }
        let t = &self.tail;
        let magic = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        if magic != FOOTER_MAGIC {
            return Some(format!(
                "Lucene codec footer magic is {magic:#010x}, expected {FOOTER_MAGIC:#010x}"
            ));
        }
        let algo = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        if algo != 0 {
            return Some(format!(
                "Lucene codec footer has unknown checksum algorithm {algo}"
            ));
        }
        let stored = u64::from_be_bytes([t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]]);
        let actual = self.crc.finalize() as u64;
        if stored != actual {
            return Some(format!(
                "Lucene checksum mismatch: footer says {stored:#010x}, content is {actual:#010x}"
            ));
        }
        None
    }

    fn mvstore_problem(self) -> Option<String> {
        // Per header block: sound or not. A block that starts like an MVStore header but does
        // not parse (a garbled field or checksum) is as damaged as a bad checksum.
        let headers: Vec<bool> = self
            .head
            .chunks(MV_BLOCK)
            .filter(|b| b.starts_with(b"H:2,"))
            .map(|b| MvHeader::parse(b).is_some_and(|h| h.checksum_ok != Some(false)))
            .collect();
        if headers.is_empty() {
            return None; // not an MVStore file (encrypted or PageStore): not judged
        }
        // H2 survives one damaged header block; both damaged means it cannot open the file.
        if !headers.iter().any(|ok| *ok) {
            return Some("MVStore file header fletcher checksum mismatch".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lucene_file(body: &[u8]) -> Vec<u8> {
        let mut v = CODEC_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v.extend_from_slice(&FOOTER_MAGIC.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&v);
        v.extend_from_slice(&(crc as u64).to_be_bytes());
        v
    }

    fn run(check: Check, data: &[u8], chunk: usize) -> Option<String> {
        let mut c = Checker::new(check, data.len() as u64);
        for part in data.chunks(chunk.max(1)) {
            c.update(part);
        }
        c.finish()
    }

    #[test]
    fn lucene_footer_in_any_chunking() {
        let f = lucene_file(b"segment payload bytes, some of them");
        for chunk in [1, 3, 7, 16, 1000] {
            assert_eq!(run(Check::Lucene, &f, chunk), None, "chunk {chunk}");
        }
        let mut bad = f.clone();
        bad[10] ^= 0x40;
        assert!(run(Check::Lucene, &bad, 5)
            .unwrap()
            .contains("checksum mismatch"));
        let mut badmagic = f.clone();
        let n = badmagic.len();
        badmagic[n - 14] ^= 1;
        assert!(run(Check::Lucene, &badmagic, 4)
            .unwrap()
            .contains("footer magic"));
    }

    #[test]
    fn non_codec_files_are_not_judged() {
        assert_eq!(run(Check::Lucene, b"", 1), None);
        assert_eq!(run(Check::Lucene, b"tlog entry bytes", 3), None);
    }

    #[test]
    fn mvstore_header() {
        let h = b"H:2,block:3,blockSize:1000,chunk:2,clean:1,created:1a2048f159c,format:3,version:2,fletcher:2f9b410f\n";
        let mut block = h.to_vec();
        block.resize(MV_BLOCK, 0);
        let mut file = block.clone();
        file.extend_from_slice(&block);
        assert_eq!(run(Check::MvStore, &file, 1000), None);
        let mut bad = file.clone();
        bad[20] ^= 1;
        assert_eq!(
            run(Check::MvStore, &bad, 1000),
            None,
            "one good header block is enough"
        );
        bad[MV_BLOCK + 20] ^= 1;
        assert!(run(Check::MvStore, &bad, 1000).is_some());
        // a checksum field that no longer parses counts as a damaged header
        let mut garbled = file.clone();
        let at = h.windows(9).position(|w| w == b"fletcher:").unwrap() + 9;
        garbled[at] = b'%';
        assert_eq!(run(Check::MvStore, &garbled, 1000), None, "one block left");
        garbled[MV_BLOCK + at] = b'%';
        assert!(run(Check::MvStore, &garbled, 1000).is_some());
    }
}
