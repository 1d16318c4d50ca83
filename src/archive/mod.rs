//! The snapshot archive: format records, the one-pass writer and the streaming reader.

pub mod format;
pub mod index_check;
pub mod reader;
pub mod writer;

pub use format::{IndexEntry, SnapshotMeta};
pub use reader::{read_archive, read_meta, ArchiveContents, Seen, Visitor};
pub use writer::{default_name, sidecar_path, write_snapshot, SnapshotOptions, SnapshotSummary};
