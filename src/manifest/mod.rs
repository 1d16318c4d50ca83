//! Manifests: which state a product line must preserve, and how.
//!
//! A manifest is TOML (format documented in `manifests/README.md`). [`Manifest::parse`] turns the
//! text into a validated [`Manifest`] or a [`crate::Error::Manifest`] that names
//! `file:line:column` and the problem. Only validated manifests are passed on.

mod builtin;
mod raw;

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

pub use crate::version::Version;
pub use builtin::{builtins, select, Selection};

use crate::error::{Error, Result};

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
    Toml,
    Xml,
    Text,
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
    Dir { path: PathBuf },
    /// One regular file.
    File { path: PathBuf },
    /// Files under `path` matching any `include` glob, minus `exclude`.
    Glob {
        path: PathBuf,
        include: GlobSet,
        patterns: Vec<String>,
    },
    /// A logical H2 database, resolved from the pack's own configuration.
    H2 { database: String },
    /// A Lucene/Solr index directory, carried only between packs of the same Lucene major.
    Lucene { path: PathBuf },
    /// A user-edited configuration file.
    Config { path: PathBuf, format: ConfigFormat },
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
    pub name: String,
    pub description: Option<String>,
    pub kind: RuleKind,
    pub required: bool,
    pub strategy: Strategy,
    pub travels_with: Option<String>,
    pub exclude: GlobSet,
    pub exclude_patterns: Vec<String>,
}

impl Rule {
    pub fn is_excluded(&self, rel_to_rule: &Path) -> bool {
        self.exclude.is_match(rel_to_rule)
    }
}

/// Where a manifest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin(&'static str),
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
    pub name: String,
    pub description: String,
    /// Product id as in `updates/product.txt` without the version (`wso2am`, `wso2am-acp`, `wso2is`).
    pub product: String,
    pub min_version: Version,
    pub below_version: Option<Version>,
    pub rules: Vec<Rule>,
    pub origin: Origin,
    /// The manifest's text, recorded in every snapshot so the archive describes itself.
    pub text: String,
}

/// Paths no rule may claim: they are shipped by the new pack and must never come from the old one.
const SHIPPED: &[&str] = &[
    "repository/components/plugins",
    "repository/components/patches",
    "updates",
    "tmp",
    "repository/conf/solr",
    "lib",
    "dbscripts",
];

impl Manifest {
    /// Parses and validates `text`; `file` names it in error messages.
    pub fn parse(text: &str, origin: Origin) -> Result<Manifest> {
        let file = origin.to_string();
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            Error::Manifest {
                file: file.clone(),
                line,
                column,
                message,
            }
        };
        let raw: raw::RawManifest = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().replace('\n', " ").trim().to_string())
        })?;
        let head = raw.manifest;
        let min_version = Version::parse(head.min_version.get_ref()).ok_or_else(|| {
            at(
                head.min_version.span(),
                "min_version is not a version like 4.2.0".into(),
            )
        })?;
        let below_version =
            match &head.below_version {
                Some(v) => Some(Version::parse(v.get_ref()).ok_or_else(|| {
                    at(v.span(), "below_version is not a version like 4.3.0".into())
                })?),
                None => None,
            };
        if raw.rule.is_empty() {
            return Err(at(0..0, "a manifest needs at least one [[rule]]".into()));
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut claimed: Vec<(PathBuf, String)> = Vec::new();
        for r in &raw.rule {
            let name = r.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(at(
                    r.name.span(),
                    format!("rule name {name:?} must be non-empty [A-Za-z0-9_-]"),
                ));
            }
            if rules.iter().any(|x| x.name == name) {
                return Err(at(r.name.span(), format!("two rules are named {name:?}")));
            }
            let kind_str = r.kind.get_ref().as_str();
            let need_path = |what: &str| -> Result<PathBuf> {
                let p = r.path.as_ref().ok_or_else(|| {
                    at(
                        r.kind.span(),
                        format!("rule {name:?} of kind {what} needs `path`"),
                    )
                })?;
                let path = PathBuf::from(p.get_ref());
                check_rel_path(&path).map_err(|m| at(p.span(), m))?;
                if let Some(s) = SHIPPED
                    .iter()
                    .find(|s| path.starts_with(s) || Path::new(s).starts_with(&path))
                {
                    return Err(at(
                        p.span(),
                        format!("rule {name:?} would carry shipped content ({s}); the new pack must provide it"),
                    ));
                }
                Ok(path)
            };
            let kind = match kind_str {
                "dir" => RuleKind::Dir {
                    path: need_path("dir")?,
                },
                "file" => RuleKind::File {
                    path: need_path("file")?,
                },
                "lucene" => RuleKind::Lucene {
                    path: need_path("lucene")?,
                },
                "glob" => {
                    let path = need_path("glob")?;
                    let inc = r
                        .include
                        .as_ref()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            at(
                                r.kind.span(),
                                format!("rule {name:?} of kind glob needs `include`"),
                            )
                        })?;
                    let (include, patterns) = build_globs(inc, &at)?;
                    RuleKind::Glob {
                        path,
                        include,
                        patterns,
                    }
                }
                "h2" => {
                    let db = r.database.as_ref().ok_or_else(|| {
                        at(
                            r.kind.span(),
                            format!("rule {name:?} of kind h2 needs `database`"),
                        )
                    })?;
                    let database = db.get_ref().clone();
                    if database.is_empty() || database.contains('/') || database.contains('.') {
                        return Err(at(
                            db.span(),
                            format!("database {database:?} must be a bare name like WSO2CARBON_DB"),
                        ));
                    }
                    if let Some(p) = &r.path {
                        return Err(at(
                            p.span(),
                            "an h2 rule takes `database`, not `path`".into(),
                        ));
                    }
                    RuleKind::H2 { database }
                }
                "config" => {
                    let path = need_path("config")?;
                    let format = match r.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
                        None => guess_format(&path),
                        Some(("toml", _)) => ConfigFormat::Toml,
                        Some(("xml", _)) => ConfigFormat::Xml,
                        Some(("text", _)) => ConfigFormat::Text,
                        Some((other, span)) => {
                            return Err(at(
                                span,
                                format!("unknown format {other:?}; expected toml, xml or text"),
                            ))
                        }
                    };
                    RuleKind::Config { path, format }
                }
                other => {
                    return Err(at(
                        r.kind.span(),
                        format!(
                        "unknown kind {other:?}; expected dir, file, glob, h2, lucene or config"
                    ),
                    ))
                }
            };
            if let Some(f) = r
                .format
                .as_ref()
                .filter(|_| !matches!(kind, RuleKind::Config { .. }))
            {
                return Err(at(f.span(), "`format` applies to config rules only".into()));
            }
            if let Some(d) = r
                .database
                .as_ref()
                .filter(|_| !matches!(kind, RuleKind::H2 { .. }))
            {
                return Err(at(d.span(), "`database` applies to h2 rules only".into()));
            }
            if r.include.is_some() && !matches!(kind, RuleKind::Glob { .. }) {
                return Err(at(
                    r.kind.span(),
                    "`include` applies to glob rules only".into(),
                ));
            }
            let strategy = match r
                .strategy
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("replace", _)) => Strategy::Replace,
                Some(("merge", span)) => {
                    if !matches!(kind, RuleKind::Config { .. }) {
                        return Err(at(
                            span,
                            "strategy \"merge\" applies to config rules only".into(),
                        ));
                    }
                    Strategy::Merge
                }
                Some((other, span)) => {
                    return Err(at(
                        span,
                        format!("unknown strategy {other:?}; expected replace or merge"),
                    ))
                }
            };
            let (exclude, exclude_patterns) = match &r.exclude {
                Some(v) => build_globs(v, &at)?,
                None => (GlobSet::empty(), Vec::new()),
            };
            if let Some(path) = kind.path() {
                if let Some((other, other_name)) = claimed
                    .iter()
                    .find(|(p, _)| p.starts_with(path) || path.starts_with(p))
                {
                    let span = r.path.as_ref().map(|p| p.span()).unwrap_or(r.name.span());
                    return Err(at(
                        span,
                        format!(
                            "rules {other_name:?} and {name:?} both claim {} (and {})",
                            path.display(),
                            other.display()
                        ),
                    ));
                }
                claimed.push((path.to_path_buf(), name.clone()));
            }
            if let RuleKind::H2 { database } = &kind {
                if let Some(o) = rules
                    .iter()
                    .find(|x| matches!(&x.kind, RuleKind::H2 { database: d } if d.eq_ignore_ascii_case(database)))
                {
                    let span = r.database.as_ref().map(|d| d.span()).unwrap_or(r.name.span());
                    return Err(at(span, format!("rules {:?} and {name:?} both claim database {database}", o.name)));
                }
            }
            rules.push(Rule {
                name,
                description: r.description.clone(),
                kind,
                required: r.required.unwrap_or(false),
                strategy,
                travels_with: r.travels_with.as_ref().map(|t| t.get_ref().clone()),
                exclude,
                exclude_patterns,
            });
        }
        for (r, raw_rule) in rules.iter().zip(&raw.rule) {
            if let Some(t) = &r.travels_with {
                let span = raw_rule.travels_with.as_ref().expect("set above").span();
                if t == &r.name {
                    return Err(at(
                        span,
                        format!("rule {:?} cannot travel with itself", r.name),
                    ));
                }
                if !rules.iter().any(|x| &x.name == t) {
                    return Err(at(span, format!("travels_with names no rule: {t:?}")));
                }
            }
        }
        Ok(Manifest {
            name: head.name,
            description: head.description.unwrap_or_default(),
            product: head.product,
            min_version,
            below_version,
            rules,
            origin,
            text: text.to_string(),
        })
    }

    /// Loads a manifest from a file given by the user.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(&text, Origin::File(path.to_path_buf()))
    }

    pub fn covers(&self, product: &str, version: &Version) -> bool {
        self.product == product
            && version >= &self.min_version
            // map_or, not is_none_or: the MSRV is 1.80
            && self.below_version.as_ref().map_or(true, |b| version < b)
    }

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

fn guess_format(path: &Path) -> ConfigFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => ConfigFormat::Toml,
        Some("xml") => ConfigFormat::Xml,
        _ => ConfigFormat::Text,
    }
}

fn check_rel_path(path: &Path) -> std::result::Result<(), String> {
    use std::path::Component;
    if path.as_os_str().is_empty() {
        return Err("path is empty".into());
    }
    for c in path.components() {
        match c {
            Component::Normal(_) => {}
            _ => {
                return Err(format!(
                    "path {:?} must be relative to the pack root, without `..` or `.`",
                    path.display().to_string()
                ))
            }
        }
    }
    Ok(())
}

fn build_globs(
    pats: &[toml::Spanned<String>],
    at: &dyn Fn(std::ops::Range<usize>, String) -> Error,
) -> Result<(GlobSet, Vec<String>)> {
    let mut b = GlobSetBuilder::new();
    for p in pats {
        let g = globset::GlobBuilder::new(p.get_ref())
            .literal_separator(true)
            .build()
            .map_err(|e| {
                at(
                    p.span(),
                    format!("bad glob {:?}: {}", p.get_ref(), e.kind()),
                )
            })?;
        b.add(g);
        // `dir/**` should also match `dir` itself so that an excluded directory is skipped whole.
        if let Some(stripped) = p.get_ref().strip_suffix("/**") {
            if let Ok(g) = Glob::new(stripped) {
                b.add(g);
            }
        }
    }
    let set = b.build().map_err(|e| {
        at(
            pats.first().map(|p| p.span()).unwrap_or(0..0),
            e.to_string(),
        )
    })?;
    Ok((set, pats.iter().map(|p| p.get_ref().clone()).collect()))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Manifest::parse(text, Origin::File("m.toml".into()))
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "[manifest]\nname = \"t\"\nproduct = \"wso2am\"\nmin_version = \"4.0.0\"\n";

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::parse("4.10.0").unwrap() > Version::parse("4.9.1").unwrap());
        assert_eq!(
            Version::parse("4.2").unwrap(),
            Version::parse("4.2.0").unwrap()
        );
        assert!(Version::parse("4.x").is_none());
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }

    #[test]
    fn unknown_key_is_located() {
        let e = err(&format!(
            "{HEAD}\n[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"x\"\nbogus = 1\n"
        ));
        assert!(e.starts_with("m.toml:10:1: "), "{e}");
        assert!(e.contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn nested_claims_are_rejected() {
        let e = err(&format!(
            "{HEAD}[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"repository/data\"\n\
             [[rule]]\nname = \"b\"\nkind = \"file\"\npath = \"repository/data/x\"\n"
        ));
        assert!(e.starts_with("m.toml:12:8: "), "{e}");
        assert!(e.contains("both claim"), "{e}");
    }

    #[test]
    fn shipped_content_is_rejected() {
        let e = err(&format!("{HEAD}[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"repository/components/plugins\"\n"));
        assert!(e.contains("shipped content"), "{e}");
    }

    #[test]
    fn merge_needs_config() {
        let e = err(&format!(
            "{HEAD}[[rule]]\nname = \"a\"\nkind = \"dir\"\npath = \"x\"\nstrategy = \"merge\"\n"
        ));
        assert!(e.contains("config rules only"), "{e}");
    }
}
