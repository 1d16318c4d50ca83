//! Bounds on what an (untrusted) archive can make carryover hold in memory: every record under
//! `.carryover/` has a size cap, every JSON string in `index.json` a length cap, every
//! `SHA256SUMS` line a length cap. Above a cap the record is refused (reported as unreadable),
//! never allocated.

use std::io::{self, BufRead, Read};

/// The largest `snapshot.json` (or other small record) carryover reads: 16 MiB.
pub const MAX_SMALL_RECORD: u64 = 16 << 20;
/// The largest `index.json` or `SHA256SUMS` carryover reads: 1 GiB (about 4 million entries).
pub const MAX_LARGE_RECORD: u64 = 1 << 30;
/// The longest JSON string in `index.json` (a path is at most 4 KiB, escaped at most 6 times
/// that): 64 KiB.
pub const MAX_JSON_STRING: usize = 64 << 10;
/// The longest `SHA256SUMS` line: 64 KiB.
pub const MAX_SUMS_LINE: usize = 64 << 10;

/// A reader that fails with `InvalidData` as soon as a JSON string grows past `max` bytes, so a
/// deserializer never allocates one (it tracks quotes and escapes on the raw bytes).
pub struct JsonStringLimit<R> {
    inner: R,
    max: usize,
    in_string: bool,
    escaped: bool,
    len: usize,
}

impl<R: Read> JsonStringLimit<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, max: usize) -> Self {
        JsonStringLimit {
            inner,
            max,
            in_string: false,
            escaped: false,
            len: 0,
        }
    }
}

impl<R: Read> Read for JsonStringLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if !self.in_string {
                if b == b'"' {
                    self.in_string = true;
                    self.len = 0;
                }
                continue;
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                continue;
            }
            self.len += 1;
            if self.len > self.max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a JSON string longer than {} bytes", self.max),
                ));
            }
        }
        Ok(n)
    }
}

/// Reads the next `\n`-terminated line (without the newline) into `line`; `Ok(false)` at the
/// end. A line longer than `max` is an `InvalidData` error, and is never held whole.
///
/// # Errors
/// The reader failed, or the line is too long.
pub fn read_line_bounded<R: BufRead>(
    r: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    line.clear();
    let got = r.take(max as u64 + 1).read_until(b'\n', line)?;
    if got == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line longer than {max} bytes"),
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_json_strings_are_refused_short_ones_pass() {
        let ok = br#"{"a":"x\"y","b":["p/q"]}"#;
        let mut s = String::new();
        JsonStringLimit::new(&ok[..], 8)
            .read_to_string(&mut s)
            .unwrap();
        let long = format!("{{\"a\":\"{}\"}}", "z".repeat(100));
        let mut r = JsonStringLimit::new(long.as_bytes(), 64);
        assert_eq!(
            r.read_to_end(&mut Vec::new()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn lines_are_bounded() {
        let text = b"short\nalso short\n".to_vec();
        let mut r = &text[..];
        let mut l = Vec::new();
        assert!(read_line_bounded(&mut r, &mut l, 16).unwrap());
        assert_eq!(l, b"short");
        assert!(read_line_bounded(&mut r, &mut l, 16).unwrap());
        assert!(!read_line_bounded(&mut r, &mut l, 16).unwrap());
        let long = [b'x'; 100];
        let mut r = &long[..];
        assert!(read_line_bounded(&mut r, &mut l, 16).is_err());
    }
}
