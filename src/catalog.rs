//! The catalog: a local SQLite history of snapshots, verifications and transplants. Never the
//! source of truth (the archive is); a catalog that cannot be written costs a warning, never a
//! snapshot.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    pack TEXT NOT NULL,
    product TEXT NOT NULL,
    version TEXT NOT NULL,
    archive TEXT NOT NULL,
    archive_sha256 TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    archive TEXT NOT NULL,
    against TEXT,
    ok INTEGER NOT NULL,
    problems INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transplants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

/// One row of `carryover list`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// `s12`, `v3`, `t1`: kind letter + row id.
    pub id: String,
    /// `snapshot`, `verify` or `transplant`.
    pub kind: &'static str,
    /// When, RFC 3339.
    pub time: String,
    /// The archive or pack.
    pub subject: String,
    /// One line.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The full report (`show`).
    pub detail: Option<serde_json::Value>,
}

/// The catalog database (SQLite).
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Catalog {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// flag > $CARRYOVER_CATALOG > $XDG_DATA_HOME/carryover/catalog.db > ~/.local/share/carryover/catalog.db
pub fn default_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("CARRYOVER_CATALOG").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                .join(".local/share")
        });
    base.join("carryover/catalog.db")
}

impl Catalog {
    /// Opens (creating) the catalog at `path`.
    ///
    /// # Errors
    /// [`Error::Catalog`] when it cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Catalog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(path, e))?;
        }
        // The catalog names archives, packs and full reports: private to its owner.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(path, e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err(path, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| err(path, e))?;
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn now() -> String {
        crate::archive::format::now_rfc3339()
    }

    /// Records a snapshot; its id (`s1`).
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn record_snapshot(
        &self,
        pack: &Path,
        s: &crate::snapshot::SnapshotSummary,
    ) -> Result<String> {
        let detail = serde_json::to_string(s).map_err(|e| err(&self.path, e))?;
        self.conn
            .execute(
                "INSERT INTO snapshots (time, pack, product, version, archive, archive_sha256, files, bytes_in, bytes_out, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    Self::now(),
                    pack.to_string_lossy(),
                    s.product,
                    s.version,
                    abs(&s.archive).to_string_lossy(),
                    s.archive_sha256,
                    s.files as i64,
                    s.bytes_in as i64,
                    s.bytes_out as i64,
                    detail
                ],
            )
            .map_err(|e| err(&self.path, e))?;
        Ok(format!("s{}", self.conn.last_insert_rowid()))
    }

    /// Records a verification; its id (`v1`).
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn record_verify(&self, r: &crate::verify::VerifyReport) -> Result<String> {
        let detail = serde_json::to_string(r).map_err(|e| err(&self.path, e))?;
        self.conn
            .execute(
                "INSERT INTO verifications (time, archive, against, ok, problems, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    Self::now(),
                    abs(&r.archive).to_string_lossy(),
                    r.against.as_ref().map(|a| abs(a).to_string_lossy().into_owned()),
                    r.ok,
                    r.problems.len() as i64,
                    detail
                ],
            )
            .map_err(|e| err(&self.path, e))?;
        Ok(format!("v{}", self.conn.last_insert_rowid()))
    }

    /// Records a transplant; its id (`t1`).
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn record_transplant(
        &self,
        source: &Path,
        target: &Path,
        result: &str,
        detail: &serde_json::Value,
    ) -> Result<String> {
        self.conn
            .execute(
                "INSERT INTO transplants (time, source, target, result, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    Self::now(),
                    abs(source).to_string_lossy(),
                    abs(target).to_string_lossy(),
                    result,
                    detail.to_string()
                ],
            )
            .map_err(|e| err(&self.path, e))?;
        Ok(format!("t{}", self.conn.last_insert_rowid()))
    }

    /// The newest baseline snapshot of `product` `version` whose archive still exists.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn baseline(&self, product: &str, version: &str) -> Result<Option<PathBuf>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT archive FROM snapshots WHERE product = ?1 AND version = ?2
                 AND json_extract(detail, '$.baseline') = 1 ORDER BY id DESC",
            )
            .map_err(|e| err(&self.path, e))?;
        let rows = st
            .query_map(params![product, version], |r| r.get::<_, String>(0))
            .map_err(|e| err(&self.path, e))?;
        for r in rows {
            let p = PathBuf::from(r.map_err(|e| err(&self.path, e))?);
            if p.is_file() {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Every record, oldest first.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let q = |sql: &str,
                 f: &dyn Fn(&rusqlite::Row) -> rusqlite::Result<Record>|
         -> Result<Vec<Record>> {
            let mut st = self.conn.prepare(sql).map_err(|e| err(&self.path, e))?;
            let rows = st.query_map([], |r| f(r)).map_err(|e| err(&self.path, e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| err(&self.path, e))
        };
        out.extend(q(
            "SELECT id, time, archive, product, version, files, bytes_in, pack FROM snapshots",
            &|r| {
                Ok(Record {
                    id: format!("s{}", r.get::<_, i64>(0)?),
                    kind: "snapshot",
                    time: r.get(1)?,
                    subject: r.get(2)?,
                    summary: format!(
                        "{} {} from {}: {} files, {} bytes",
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?
                    ),
                    detail: None,
                })
            },
        )?);
        out.extend(q(
            "SELECT id, time, archive, against, ok, problems FROM verifications",
            &|r| {
                let against: Option<String> = r.get(3)?;
                Ok(Record {
                    id: format!("v{}", r.get::<_, i64>(0)?),
                    kind: "verify",
                    time: r.get(1)?,
                    subject: r.get(2)?,
                    summary: format!(
                        "{}{}",
                        if r.get::<_, bool>(4)? {
                            "ok".to_string()
                        } else {
                            format!("{} problem(s)", r.get::<_, i64>(5)?)
                        },
                        against.map(|a| format!(" against {a}")).unwrap_or_default()
                    ),
                    detail: None,
                })
            },
        )?);
        out.extend(q(
            "SELECT id, time, source, target, result FROM transplants",
            &|r| {
                Ok(Record {
                    id: format!("t{}", r.get::<_, i64>(0)?),
                    kind: "transplant",
                    time: r.get(1)?,
                    subject: r.get(3)?,
                    summary: format!(
                        "from {}: {}",
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(4)?
                    ),
                    detail: None,
                })
            },
        )?);
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One record by id (`s3`, `v1`, `t2`) or the latest snapshot of an archive file.
    ///
    /// # Errors
    /// [`Error::Catalog`].
    pub fn show(&self, key: &str) -> Result<Option<Record>> {
        let all = self.list()?;
        let (table, id) = match (
            key.chars().next(),
            key.get(1..).and_then(|n| n.parse::<i64>().ok()),
        ) {
            (Some('s'), Some(n)) => ("snapshots", n),
            (Some('v'), Some(n)) => ("verifications", n),
            (Some('t'), Some(n)) => ("transplants", n),
            _ => {
                let file = abs(Path::new(key)).to_string_lossy().into_owned();
                let id: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT id FROM snapshots WHERE archive = ?1 ORDER BY id DESC LIMIT 1",
                        params![file],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| err(&self.path, e))?;
                match id {
                    Some(n) => ("snapshots", n),
                    None => return Ok(None),
                }
            }
        };
        let detail: Option<String> = self
            .conn
            .query_row(
                &format!("SELECT detail FROM {table} WHERE id = ?1"),
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| err(&self.path, e))?;
        let Some(detail) = detail else {
            return Ok(None);
        };
        let letter = &table[..1];
        let mut rec = all.into_iter().find(|r| r.id == format!("{letter}{id}"));
        if let Some(r) = rec.as_mut() {
            r.detail = serde_json::from_str(&detail).ok();
        }
        Ok(rec)
    }
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritable_catalog_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(Catalog::open(&f.join("sub/catalog.db")).is_err());
    }

    #[test]
    fn records_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("c.db")).unwrap();
        let id = c
            .record_transplant(
                Path::new("/a"),
                Path::new("/b"),
                "committed",
                &serde_json::json!({"rules": 3}),
            )
            .unwrap();
        assert_eq!(id, "t1");
        let list = c.list().unwrap();
        assert_eq!(list.len(), 1);
        let shown = c.show("t1").unwrap().unwrap();
        assert_eq!(shown.detail.unwrap()["rules"], 3);
        assert!(c.show("t9").unwrap().is_none());
    }
}
