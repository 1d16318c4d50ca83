//! Where each H2 database lives, resolved from the pack's own configuration:
//! `repository/conf/deployment.toml` (3.x/4.x) or `repository/conf/datasources/*.xml` (2.x).
//! `jdbc:h2:./...` is relative to the pack root (the start scripts `cd` there).

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// One `jdbc:h2:` URL found in the pack's configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Datasource {
    /// Where it was declared, e.g. `repository/conf/deployment.toml [database.local]`.
    pub declared_in: String,
    /// The JDBC URL as written.
    pub url: String,
    /// Where the URL puts the database.
    pub location: Location,
}

/// Where a database's files are, without the `.mv.db`/`.h2.db` extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum Location {
    /// Inside the pack, relative to its root.
    InPack(PathBuf),
    /// A file path outside the pack: reported, never silently skipped.
    External(PathBuf),
    /// A server (`tcp:`/`ssl:`) or in-memory database: nothing on disk here.
    NotAFile(String),
}

impl Location {
    /// The database's file name without extension (`WSO2AM_DB`).
    pub fn base_name(&self) -> Option<String> {
        match self {
            Location::InPack(p) | Location::External(p) => {
                p.file_name().map(|n| n.to_string_lossy().into_owned())
            }
            Location::NotAFile(s) => s.rsplit('/').next().map(str::to_string),
        }
    }
}

/// Every H2 datasource the pack's configuration declares.
pub fn declared(root: &Path) -> Vec<Datasource> {
    let mut out = Vec::new();
    let toml_path = root.join("repository/conf/deployment.toml");
    if let Some(text) = super::detect::read_small(&toml_path) {
        if let Ok(value) = text.parse::<toml::Table>() {
            collect_toml(root, &value, "", &mut out);
        }
    }
    for xml in [
        "repository/conf/datasources/master-datasources.xml",
        "repository/conf/datasources/metrics-datasources.xml",
    ] {
        if let Some(text) = super::detect::read_small(&root.join(xml)) {
            collect_xml(root, xml, &text, &mut out);
        }
    }
    out
}

fn collect_toml(root: &Path, table: &toml::Table, prefix: &str, out: &mut Vec<Datasource>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => collect_toml(root, t, &key, out),
            toml::Value::String(s) if k == "url" && is_h2(s) => out.push(Datasource {
                declared_in: format!("repository/conf/deployment.toml [{prefix}]"),
                url: s.clone(),
                location: parse_url(root, s),
            }),
            _ => {}
        }
    }
}

fn collect_xml(root: &Path, file: &str, text: &str, out: &mut Vec<Datasource>) {
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return;
    };
    for ds in doc.descendants().filter(|n| n.has_tag_name("datasource")) {
        let name = ds
            .children()
            .find(|n| n.has_tag_name("name"))
            .and_then(|n| n.text())
            .unwrap_or("?")
            .trim()
            .to_string();
        let Some(url) = ds
            .descendants()
            .find(|n| n.has_tag_name("url"))
            .and_then(|n| n.text())
        else {
            continue;
        };
        let url = url.trim();
        if is_h2(url) {
            out.push(Datasource {
                declared_in: format!("{file} <datasource> {name}"),
                url: url.to_string(),
                location: parse_url(root, url),
            });
        }
    }
}

fn is_h2(url: &str) -> bool {
    url.trim_start().starts_with("jdbc:h2:")
}

/// Parses a `jdbc:h2:` URL into a location (see H2's ConnectionInfo for the prefixes).
pub fn parse_url(root: &Path, url: &str) -> Location {
    let body = url.trim().trim_start_matches("jdbc:h2:");
    let mut path = body.split(';').next().unwrap_or("").trim().to_string();
    if path.starts_with("tcp:")
        || path.starts_with("ssl:")
        || path.starts_with("mem:")
        || path.starts_with("zip:")
    {
        return Location::NotAFile(path);
    }
    for p in [
        "file:",
        "split:",
        "nio:",
        "nioMapped:",
        "async:",
        "memFS:",
        "memLZF:",
    ] {
        if let Some(rest) = path.strip_prefix(p) {
            path = rest.to_string();
        }
    }
    path = path
        .replace("${carbon.home}", &root.to_string_lossy())
        .replace("$CARBON_HOME", &root.to_string_lossy());
    if let Some(rest) = path.strip_prefix("~/") {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        return Location::External(home.join(rest));
    }
    let p = PathBuf::from(&path);
    let abs = if p.is_absolute() { p } else { root.join(p) };
    let norm = normalize(&abs);
    match norm.strip_prefix(normalize(root)) {
        Ok(rel) if !rel.as_os_str().is_empty() => Location::InPack(rel.to_path_buf()),
        _ => Location::External(norm),
    }
}

/// Lexical normalisation (`a/./b/../c` -> `a/c`); the database may not exist yet.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let root = Path::new("/opt/wso2am-4.2.0");
        let cases = [
            (
                "jdbc:h2:./repository/database/WSO2AM_DB;AUTO_SERVER=TRUE",
                Location::InPack("repository/database/WSO2AM_DB".into()),
            ),
            (
                "jdbc:h2:repository/database/WSO2CARBON_DB",
                Location::InPack("repository/database/WSO2CARBON_DB".into()),
            ),
            (
                "jdbc:h2:../tmpStatDB/WSO2AM_STATS_DB;DB_CLOSE_ON_EXIT=FALSE",
                Location::External("/opt/tmpStatDB/WSO2AM_STATS_DB".into()),
            ),
            (
                "jdbc:h2:/opt/wso2am-4.2.0/repository/database/X",
                Location::InPack("repository/database/X".into()),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(parse_url(root, url), want, "{url}");
        }
        assert!(matches!(
            parse_url(root, "jdbc:h2:tcp://db:9092/x"),
            Location::NotAFile(_)
        ));
    }
}
