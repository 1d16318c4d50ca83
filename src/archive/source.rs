//! One regular file's content as the snapshot reads it: read once, in large blocks, each block
//! fed to SHA-256, the engine-level integrity checker and progress before it goes on to the
//! tar stream. A file that shrinks while it is read is zero-padded to the size its header
//! promised, so the tar stays well-formed, and flagged.
//!
//! It is a [`Read`] so the tar crate's builder can write the entry; it never judges what it
//! saw (that is the writer's job, from [`Source::finish`]).

use std::fs::File;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::digest::Sha;
use crate::integrity::{Check, Checker};
use crate::progress::{Cancel, Progress};

/// A file's content on its way into the archive.
pub struct Source<'a> {
    file: &'a mut File,
    /// One large block, read at once; served to the tar builder in the pieces it asks for.
    buf: &'a mut [u8],
    start: usize,
    end: usize,
    /// Bytes still owed to the archive (the header's size minus what was read).
    remaining: u64,
    hasher: Sha256,
    checker: Checker,
    short: bool,
    /// Reading the file failed (as opposed to writing the archive).
    read_failed: bool,
    progress: &'a dyn Progress,
    cancel: &'a Cancel,
}

/// What reading a file found.
pub struct SourceDigest {
    /// SHA-256 of the bytes written (the zero padding included when the file shrank).
    pub sha256: Sha,
    /// The integrity checker's verdict: None when sound or not judged.
    pub problem: Option<String>,
    /// The file ended before its recorded size.
    pub short: bool,
}

impl<'a> Source<'a> {
    /// Reads `size` bytes of `file` through `buf`, checking them as `check`.
    pub fn new(
        file: &'a mut File,
        size: u64,
        check: Check,
        buf: &'a mut [u8],
        progress: &'a dyn Progress,
        cancel: &'a Cancel,
    ) -> Source<'a> {
        Source {
            file,
            buf,
            start: 0,
            end: 0,
            remaining: size,
            hasher: Sha256::new(),
            checker: Checker::new(check, size),
            short: false,
            read_failed: false,
            progress,
            cancel,
        }
    }

    /// Whether an error came from reading the file (else it came from writing the archive).
    pub fn read_failed(&self) -> bool {
        self.read_failed
    }

    /// The digest and verdicts, once the content has been read.
    pub fn finish(self) -> SourceDigest {
        SourceDigest {
            sha256: self.hasher.finalize().into(),
            problem: self.checker.finish(),
            short: self.short,
        }
    }

    /// Reads the next block (zeros once the file has come up short) and feeds it to the checks.
    fn refill(&mut self) -> io::Result<()> {
        if self.cancel.is_set() {
            // Not ErrorKind::Interrupted, which io::copy would retry; the caller sees the flag.
            return Err(io::Error::other("interrupted"));
        }
        let want = (self.buf.len() as u64).min(self.remaining) as usize;
        let mut n = if self.short {
            0
        } else {
            // An EINTR surfaces as ErrorKind::Interrupted, which io::copy retries.
            self.file.read(&mut self.buf[..want]).inspect_err(|e| {
                self.read_failed = e.kind() != io::ErrorKind::Interrupted;
            })?
        };
        if n == 0 {
            // The file shrank while being read: keep the tar well-formed, flag the entry.
            self.short = true;
            self.buf[..want].fill(0);
            n = want;
        }
        let block = &self.buf[..n];
        self.hasher.update(block);
        self.checker.update(block);
        self.progress.advance(n as u64);
        self.remaining -= n as u64;
        self.start = 0;
        self.end = n;
        Ok(())
    }
}

impl Read for Source<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if self.remaining == 0 {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}
