//! The detect step: what a pack directory is (product, version, update level, engines, profile
//! leftovers) and whether it is safe to touch. Reads only; never writes to the pack.

pub mod datasources;
pub mod detect;
pub mod engines;
pub mod gates;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use datasources::{Datasource, Location};
pub use detect::{Identity, ProfileLeftovers};
pub use engines::{Engines, H2Format};
pub use gates::{Evidence, Liveness};

use crate::error::{Error, IoContext, Result};

/// A detected pack.
#[derive(Debug, Clone, Serialize)]
pub struct Pack {
    /// The pack's directory, canonical.
    pub root: PathBuf,
    #[serde(flatten)]
    /// Product, version, update level.
    pub identity: Identity,
    /// The H2, Lucene and Solr jars it ships.
    pub engines: Engines,
    /// The H2 databases its config declares.
    pub datasources: Vec<Datasource>,
    /// What profile optimisation left behind.
    pub profile: ProfileLeftovers,
}

impl Pack {
    /// Detects the pack at `path` (which must be a directory).
    ///
    /// # Errors
    /// Not a directory or not a pack carryover recognises ([`Error::NotAPack`]); I/O errors.
    pub fn open(path: &Path) -> Result<Pack> {
        let meta = std::fs::metadata(path).at(path)?;
        if !meta.is_dir() {
            return Err(Error::NotAPack {
                path: path.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        let root = std::fs::canonicalize(path).at(path)?;
        let identity = Identity::detect(&root).map_err(|e| match e {
            Error::NotAPack { reason, .. } => Error::NotAPack {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })?;
        Ok(Pack {
            engines: Engines::detect(&root),
            datasources: datasources::declared(&root),
            profile: ProfileLeftovers::detect(&root),
            identity,
            root,
        })
    }

    /// The datasource declaring database `name`, matched on the URL's last path component.
    pub fn datasource_for(&self, name: &str) -> Option<&Datasource> {
        self.datasources.iter().find(|d| {
            d.location
                .base_name()
                .is_some_and(|b| b.eq_ignore_ascii_case(name))
        })
    }
}
