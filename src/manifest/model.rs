//! The validated manifest: rules, their kinds and strategies, where a manifest came from. Only
//! [`super::parse`] builds these from text.

use std::fmt;
use std::path::{Path, PathBuf};

use globset::GlobSet;
use serde::Serialize;

use crate::version::Version;

/// How a rule's state is brought into the new pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The old pack's state replaces the new pack's.
    Replace,
    /// Three-way merge of the old pack's file into the new pack's (config rules only).
    Merge,
}

/// File syntax of a config rule, used to check that a merged result still parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigFormat {
    /// TOML (deployment.toml).
    Toml,
    /// XML (carbon.xml, user-mgt.xml, ...).
    Xml,
    /// Any other text (properties files, scripts).
    Text,
}

impl ConfigFormat {
    /// The format a file's extension suggests (`.toml`, `.xml`, else text).
    pub fn guess(path: &Path) -> ConfigFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => ConfigFormat::Toml,
            Some("xml") => ConfigFormat::Xml,
            _ => ConfigFormat::Text,
        }
    }
}

/// The kind of a rule, as a plain tag: what plan records, archives and reports carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A directory tree.
    Dir,
    /// One regular file.
    File,
    /// Matching files under a directory.
    Glob,
    /// An embedded H2 database.
    H2,
    /// A Lucene/Solr index.
    Lucene,
    /// A user-edited configuration file.
    Config,
}

impl Kind {
    /// The manifest's name for the kind (`dir`, `h2`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Glob => "glob",
            Kind::H2 => "h2",
            Kind::Lucene => "lucene",
            Kind::Config => "config",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What a rule selects.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// A directory tree, minus `exclude`.
    Dir {
        /// Pack-relative.
        path: PathBuf,
    },
    /// One regular file.
    File {
        /// Pack-relative.
        path: PathBuf,
    },
    /// Files under `path` matching any `include` glob, minus `exclude`.
    Glob {
        /// The directory searched (pack-relative).
        path: PathBuf,
        /// The compiled `include` globs.
        include: GlobSet,
        /// The `include` globs as written.
        patterns: Vec<String>,
    },
    /// A logical H2 database, resolved from the pack's own configuration.
    H2 {
        /// The database name (`WSO2AM_DB`).
        database: String,
    },
    /// A Lucene/Solr index directory, carried only between packs of the same Lucene major.
    Lucene {
        /// The index directory (pack-relative).
        path: PathBuf,
    },
    /// A user-edited configuration file.
    Config {
        /// Pack-relative.
        path: PathBuf,
        /// Its syntax, to check a merged result parses.
        format: ConfigFormat,
    },
}

impl RuleKind {
    /// The kind as a plain tag.
    pub fn kind(&self) -> Kind {
        match self {
            RuleKind::Dir { .. } => Kind::Dir,
            RuleKind::File { .. } => Kind::File,
            RuleKind::Glob { .. } => Kind::Glob,
            RuleKind::H2 { .. } => Kind::H2,
            RuleKind::Lucene { .. } => Kind::Lucene,
            RuleKind::Config { .. } => Kind::Config,
        }
    }

    /// The pack-relative path the rule names, if it names one statically.
    pub fn path(&self) -> Option<&Path> {
        match self {
            RuleKind::Dir { path }
            | RuleKind::File { path }
            | RuleKind::Glob { path, .. }
            | RuleKind::Lucene { path }
            | RuleKind::Config { path, .. } => Some(path),
            RuleKind::H2 { .. } => None,
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique within the manifest.
    pub name: String,
    /// What the rule keeps, for people.
    pub description: Option<String>,
    /// What it selects.
    pub kind: RuleKind,
    /// A snapshot must find it (warning when missing).
    pub required: bool,
    /// How it is brought into the new pack.
    pub strategy: Strategy,
    /// Carried only when this other rule is carried (an index with its database).
    pub travels_with: Option<String>,
    /// The compiled `exclude` globs, relative to the rule's path.
    pub exclude: GlobSet,
    /// The `exclude` globs as written.
    pub exclude_patterns: Vec<String>,
}

impl Rule {
    /// Whether a path (relative to the rule's path) is excluded.
    pub fn is_excluded(&self, rel_to_rule: &Path) -> bool {
        self.exclude.is_match(rel_to_rule)
    }
}

/// Where a manifest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the binary (file name under manifests/).
    Builtin(&'static str),
    /// A file given by the operator (or recorded in a snapshot).
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin(n) => write!(f, "built-in {n}"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its name (`wso2am-4.1-4.2`).
    pub name: String,
    /// What line it is for, for people.
    pub description: String,
    /// Product id as in `updates/product.txt` without the version (`wso2am`, `wso2am-acp`, `wso2is`).
    pub product: String,
    /// The first version it covers.
    pub min_version: Version,
    /// The first version it no longer covers.
    pub below_version: Option<Version>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// Where it came from.
    pub origin: Origin,
    /// The manifest's text, recorded in every snapshot so the archive describes itself.
    pub text: String,
}

impl Manifest {
    /// Whether it is the manifest for `product` at `version`.
    pub fn covers(&self, product: &str, version: &Version) -> bool {
        self.product == product
            && version >= &self.min_version
            // map_or, not is_none_or: the MSRV is 1.80
            && self.below_version.as_ref().map_or(true, |b| version < b)
    }

    /// The rule named `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Human description of the version range, e.g. `>= 4.1.0, < 4.3.0`.
    pub fn range(&self) -> String {
        match &self.below_version {
            Some(b) => format!(">= {}, < {}", self.min_version, b),
            None => format!(">= {}", self.min_version),
        }
    }
}
