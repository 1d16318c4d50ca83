//! The index spool: `index.json` and `SHA256SUMS` written to unlinked temp files beside the
//! archive as entries are written, so memory does not grow with the number of files in the
//! pack. At the end both are rewound and appended to the archive (after the data they
//! describe).

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use super::format::{sha256sum_line, CorruptRecord, IndexEntry, FORMAT_VERSION};
use crate::error::{IoContext, Result};

/// `index.json` and `SHA256SUMS` being spooled.
pub struct Spool {
    dir: PathBuf,
    index: BufWriter<File>,
    sums: BufWriter<File>,
    first: bool,
}

/// A finished spool file, rewound, and its length.
pub type Spooled = (File, u64);

impl Spool {
    /// Opens both spool files in `dir` and starts `index.json`.
    ///
    /// # Errors
    /// The temp files cannot be created or written in `dir`.
    pub fn new(dir: &Path) -> Result<Spool> {
        let index = tempfile::tempfile_in(dir).at(dir)?;
        let sums = tempfile::tempfile_in(dir).at(dir)?;
        let mut s = Spool {
            dir: dir.to_path_buf(),
            index: BufWriter::new(index),
            sums: BufWriter::new(sums),
            first: true,
        };
        write!(s.index, "{{\"format\":{FORMAT_VERSION},\"entries\":[").at(dir)?;
        Ok(s)
    }

    /// Adds one entry to `index.json`.
    ///
    /// # Errors
    /// Writing the spool file failed.
    pub fn entry(&mut self, e: &IndexEntry) -> Result<()> {
        let sep = if self.first { "\n" } else { ",\n" };
        self.first = false;
        self.index.write_all(sep.as_bytes()).at(&self.dir)?;
        serde_json::to_writer(&mut self.index, e)
            .map_err(std::io::Error::from)
            .at(&self.dir)
    }

    /// Adds one file's line to `SHA256SUMS`.
    ///
    /// # Errors
    /// Writing the spool file failed.
    pub fn sum(&mut self, hex: &str, name: &str) -> Result<()> {
        self.sums
            .write_all(sha256sum_line(hex, name).as_bytes())
            .at(&self.dir)
    }

    /// Closes index.json with the run's findings and rewinds both files: (index, sums).
    ///
    /// # Errors
    /// Writing, flushing or rewinding a spool file failed.
    pub fn finish(
        mut self,
        changed: &[String],
        corrupt: &[CorruptRecord],
    ) -> Result<(Spooled, Spooled)> {
        let dir = self.dir.clone();
        let tail = format!(
            "\n],\"changed_while_reading\":{},\"corrupt\":{}}}\n",
            serde_json::to_string(changed).expect("serialisable"),
            serde_json::to_string(corrupt).expect("serialisable")
        );
        self.index.write_all(tail.as_bytes()).at(&dir)?;
        let rewind = |w: BufWriter<File>| -> Result<Spooled> {
            let mut f = w.into_inner().map_err(|e| e.into_error()).at(&dir)?;
            let len = f.stream_position().at(&dir)?;
            f.rewind().at(&dir)?;
            Ok((f, len))
        };
        Ok((rewind(self.index)?, rewind(self.sums)?))
    }
}
