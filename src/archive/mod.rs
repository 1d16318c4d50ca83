//! The snapshot archive: its format records (format.rs), the writing pass over a plan
//! (writer.rs) with its byte format (tar_writer.rs), file source (source.rs) and index spool
//! (spool.rs), and the streaming reader (reader.rs) with its hashing threads (hash_pipe.rs),
//! record checks (index_check.rs, sums_check.rs) and findings (contents.rs).
//!
//! Dependencies run one way: reader -> {hash_pipe, index_check, sums_check} -> contents ->
//! format, and writer -> {tar_writer, source, spool} -> format. The snapshot command around
//! the writer is `crate::snapshot`; judging what the reader found is `crate::verify`.

pub mod contents;
mod entry_check;
pub mod format;
mod hash_pipe;
mod index_check;
pub mod limits;
pub mod reader;
mod source;
mod spool;
mod sums_check;
mod tar_writer;
pub mod writer;

pub use contents::{ArchiveContents, Seen};
pub use format::{sidecar_path, IndexEntry, SnapshotMeta};
pub use reader::{read_archive, read_meta, Visitor};
