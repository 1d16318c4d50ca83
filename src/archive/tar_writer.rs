//! The archive's byte format: a POSIX pax tar stream (ustar headers, plus a pax extended header
//! carrying `path` / `linkpath` when a name or a symlink target does not fit its ustar field)
//! into a multi-threaded zstd encoder with a frame checksum. GNU tar, bsdtar and the tar crate
//! read it.
//!
//! Names and link targets are stored byte for byte: a value goes into its ustar field only when
//! it reads back identical, otherwise into a pax record (the tar crate's `append_link` and
//! `set_link_name` would normalise `a//b`, `x/./y` and `/`). One exception: the tar crate's
//! reader (0.4.46) splits pax records at newlines, so it cannot read back a pax value holding
//! one (tar-rs#452). An entry with such a value gets GNU long-name/long-link records instead,
//! as all carryover archives had before pax; GNU tar and the tar crate read both.
//!
//! What goes into the stream, and in which order, is the caller's business (writer.rs).

use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;

use tar::{Builder, EntryType, Header};

/// zstd job size: compression runs in worker threads even with one worker, so reading and
/// hashing on the calling thread overlap with it. Smaller jobs keep memory flat (about 100 MiB
/// at 2 workers).
const JOB_SIZE: u32 = 4 << 20;

/// A tar stream being written into a zstd encoder over `W`.
pub struct TarWriter<W: Write> {
    tar: Builder<zstd::stream::Encoder<'static, W>>,
}

impl<W: Write> TarWriter<W> {
    /// Starts a stream at zstd `level` with `threads` workers (0: one per core).
    ///
    /// # Errors
    /// zstd rejects the level or the parameters.
    pub fn new(sink: W, level: i32, threads: u32) -> io::Result<TarWriter<W>> {
        let mut enc = zstd::stream::Encoder::new(sink, level)?;
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        enc.include_checksum(true)?;
        enc.multithread(threads.max(1))?;
        enc.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
        Ok(TarWriter {
            tar: Builder::new(enc),
        })
    }

    /// Appends one of carryover's own records (`.carryover/*`): `len` bytes from `data`.
    ///
    /// # Errors
    /// Reading `data` or writing the stream failed.
    pub fn append_record(&mut self, name: &str, len: u64, data: impl Read) -> io::Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_size(len);
        h.set_mode(0o600);
        h.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
        self.append(h, name, None, data)
    }

    /// Appends an entry: `header` (see [`header`]) under `name`, a symlink's `link` target,
    /// then the content from `data` (as many bytes as the header's size).
    ///
    /// # Errors
    /// Reading `data` or writing the stream failed.
    pub fn append(
        &mut self,
        mut header: Header,
        name: &str,
        link: Option<&str>,
        data: impl Read,
    ) -> io::Result<()> {
        // (pax key, GNU record type, value) of each value too long for its ustar field
        let mut long: Vec<(&str, EntryType, &str)> = Vec::new();
        if !set_name(&mut header, name) {
            long.push(("path", EntryType::GNULongName, name));
        }
        if let Some(link) = link.filter(|l| !set_link(&mut header, l)) {
            long.push(("linkpath", EntryType::GNULongLink, link));
        }
        if long.iter().any(|(_, _, value)| value.contains('\n')) {
            for (_, kind, value) in &long {
                self.append_gnu_long(*kind, value)?;
            }
        } else {
            let pax = long.iter().map(|(key, _, value)| (*key, value.as_bytes()));
            self.tar.append_pax_extensions(pax)?;
        }
        header.set_cksum();
        self.tar.append(&header, data)
    }

    /// A GNU `././@LongLink` record carrying the next entry's name (`L`) or link target (`K`).
    fn append_gnu_long(&mut self, kind: EntryType, value: &str) -> io::Result<()> {
        let mut h = Header::new_gnu();
        placeholder(&mut h.as_old_mut().name, "././@LongLink");
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(value.len() as u64 + 1);
        h.set_entry_type(kind);
        h.set_cksum();
        // NUL-terminated, as GNU tar writes it
        self.tar.append(&h, value.as_bytes().chain(&[0u8][..]))
    }

    /// Ends the tar stream and the zstd frame; returns the sink.
    ///
    /// # Errors
    /// Writing the end of the stream failed.
    pub fn finish(self) -> io::Result<W> {
        self.tar.into_inner()?.finish()
    }
}

/// A ustar header of `kind` with `meta`'s owner and mtime, permission bits `mode` and `size`.
pub fn header(kind: EntryType, meta: &Metadata, mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h
}

/// Puts `name` into the header's name/prefix fields if it reads back byte for byte; otherwise
/// leaves a truncated placeholder there (the pax `path` record names the entry) and says so.
fn set_name(h: &mut Header, name: &str) -> bool {
    if h.set_path(name).is_ok() && h.path_bytes().as_ref() == name.as_bytes() {
        return true;
    }
    if let Some(ustar) = h.as_ustar_mut() {
        ustar.prefix.fill(0);
    }
    placeholder(&mut h.as_old_mut().name, name);
    false
}

/// Puts a symlink target into the linkname field if it fits; otherwise a truncated placeholder
/// (the pax `linkpath` record holds it) and says so.
fn set_link(h: &mut Header, link: &str) -> bool {
    if h.set_link_name_literal(link).is_ok() {
        return true;
    }
    placeholder(&mut h.as_old_mut().linkname, link);
    false
}

/// The longest prefix of `value` that fits `field`, cut at a character boundary.
fn placeholder(field: &mut [u8], value: &str) {
    let mut end = value.len().min(field.len());
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    field.fill(0);
    field[..end].copy_from_slice(&value.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes entries with `names`/`links` and reads them back with the tar crate.
    fn round_trip(entries: &[(&str, Option<&str>)]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let meta = std::fs::metadata(".").unwrap();
        let mut w = TarWriter::new(Vec::new(), 1, 1).unwrap();
        for (name, link) in entries {
            let kind = if link.is_some() {
                EntryType::Symlink
            } else {
                EntryType::Regular
            };
            w.append(header(kind, &meta, 0o644, 0), name, *link, io::empty())
                .unwrap();
        }
        let bytes = w.finish().unwrap();
        let dec = zstd::stream::Decoder::new(&bytes[..]).unwrap();
        let mut ar = tar::Archive::new(dec);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), link)
            })
            .collect()
    }

    #[test]
    fn names_and_targets_come_back_byte_for_byte() {
        let long_name = format!("d/{}", "é".repeat(150));
        let split_name = format!("{}/{}", "p".repeat(120), "n".repeat(90));
        let long_link = format!("{}./end", "seg//".repeat(30));
        let nl_name = format!("d/{}\nline", "n".repeat(120));
        let nl_link = format!("{}/ünïcode\nlink", "far/".repeat(40));
        let entries: Vec<(&str, Option<&str>)> = vec![
            ("short", None),
            (&long_name, None),
            (&split_name, None),
            ("dir/", None),
            ("l1", Some("a//b")),
            ("l2", Some("x/./y/")),
            ("l3", Some("/")),
            (&long_name, Some(&long_link)),
            (&long_name, Some("a//b")),
            (&long_name, Some("/")),
            ("short2", Some(&long_link)),
            ("l4", Some(&nl_link)),
            (&nl_name, None),
            (&nl_name, Some(&long_link)),
            (&long_name, Some(&nl_link)),
            ("l5", Some("a\nb")),
        ];
        let got = round_trip(&entries);
        assert_eq!(got.len(), entries.len());
        for ((name, link), (gn, gl)) in entries.iter().zip(&got) {
            assert_eq!(gn, name.as_bytes(), "{name}");
            assert_eq!(gl.as_deref(), link.map(str::as_bytes), "{name}");
        }
    }
}
