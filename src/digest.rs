//! SHA-256 of streams and files: the one read-and-hash loop every step uses (snapshot, staging,
//! post-swap verification, `verify --against`), so a file is read once and hashed as it passes.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

/// A SHA-256 digest.
pub type Sha = [u8; 32];

/// Reads `reader` to its end in `buf`-sized blocks, hashing every block and handing it to
/// `each` (a writer, a checker, a progress counter). Returns the digest and the byte count.
///
/// # Errors
/// The first error of the reader or of `each`.
pub fn hash_stream<R: Read>(
    mut reader: R,
    buf: &mut [u8],
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<(Sha, u64)> {
    let mut h = Sha256::new();
    let mut count = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        each(&buf[..n])?;
        count += n as u64;
    }
    Ok((h.finalize().into(), count))
}

/// SHA-256 of a file, streamed, as lowercase hex.
///
/// # Errors
/// The file cannot be opened or read (the error names it).
pub fn sha256_file(path: &Path) -> Result<String> {
    let f = File::open(path).at(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (d, _) = hash_stream(f, &mut buf, |_| Ok(())).at(path)?;
    Ok(hex::encode(d))
}

/// SHA-256 of bytes in memory, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A hex SHA-256 as bytes (None when absent or not 64 hex digits).
pub fn from_hex(hex: Option<&str>) -> Option<Sha> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex?, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_bytes_agree() {
        let data = vec![7u8; 3 << 20];
        let mut buf = vec![0u8; 1000];
        let mut seen = 0usize;
        let (d, n) = hash_stream(&data[..], &mut buf, |b| {
            seen += b.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(n as usize, data.len());
        assert_eq!(seen, data.len());
        assert_eq!(hex::encode(d), sha256_hex(&data));
        assert_eq!(from_hex(Some(&hex::encode(d))), Some(d));
        assert_eq!(from_hex(Some("zz")), None);
    }
}
