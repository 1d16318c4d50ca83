//! Validation: the raw TOML ([`super::raw`]) into a [`Manifest`], or an
//! [`Error::Manifest`] naming `file:line:column` and the problem. Each check is its own function:
//! the head's versions, a rule's name, kind, keys, strategy and excludes, path claims, and
//! `travels_with`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use toml::Spanned;

use super::model::{ConfigFormat, Manifest, Origin, Rule, RuleKind, Strategy};
use super::raw::{RawHead, RawManifest, RawRule};
use crate::error::{Error, Result};
use crate::version::Version;

/// Paths no rule may claim: they are shipped by the new pack and must never come from the old
/// one (code that runs at the next start, the update tool's records, scratch space).
pub const SHIPPED: &[&str] = &[
    "bin",
    "lib",
    "repository/components/plugins",
    "repository/components/patches",
    "repository/components/features",
    "updates",
    "tmp",
    "repository/conf/solr",
    "dbscripts",
    ".carryover",
];

/// Where errors point: the manifest's text and name.
struct Ctx<'a> {
    text: &'a str,
    file: String,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Manifest {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl Manifest {
    /// Parses and validates `text`; `origin` names it in error messages.
    ///
    /// # Errors
    /// [`Error::Manifest`] naming `file:line:column` and the problem.
    pub fn parse(text: &str, origin: Origin) -> Result<Manifest> {
        parse(text, origin)
    }

    /// Loads a manifest from a file given by the user.
    ///
    /// # Errors
    /// The file cannot be read, or [`Error::Manifest`].
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(&text, Origin::File(path.to_path_buf()))
    }
}

/// Parses and validates a manifest's text.
///
/// # Errors
/// [`Error::Manifest`] at the first problem, located in the text.
pub fn parse(text: &str, origin: Origin) -> Result<Manifest> {
    let cx = Ctx {
        text,
        file: origin.to_string(),
    };
    let raw: RawManifest = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.at(span, e.message().replace('\n', " ").trim().to_string())
    })?;
    let (min_version, below_version) = versions(&cx, &raw.manifest)?;
    if raw.rule.is_empty() {
        return Err(cx.at(0..0, "a manifest needs at least one [[rule]]"));
    }
    let mut rules: Vec<Rule> = Vec::new();
    let mut claimed: Vec<(PathBuf, String)> = Vec::new();
    for r in &raw.rule {
        let rule = rule(&cx, r, &rules)?;
        check_claims(&cx, r, &rule, &rules, &mut claimed)?;
        rules.push(rule);
    }
    check_travels(&cx, &rules, &raw.rule)?;
    let head = raw.manifest;
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

fn versions(cx: &Ctx, head: &RawHead) -> Result<(Version, Option<Version>)> {
    let min = Version::parse(head.min_version.get_ref()).ok_or_else(|| {
        cx.at(
            head.min_version.span(),
            "min_version is not a version like 4.2.0",
        )
    })?;
    let below = match &head.below_version {
        Some(v) => Some(
            Version::parse(v.get_ref())
                .ok_or_else(|| cx.at(v.span(), "below_version is not a version like 4.3.0"))?,
        ),
        None => None,
    };
    Ok((min, below))
}

/// One rule, validated on its own and against the names of the rules before it.
fn rule(cx: &Ctx, r: &RawRule, earlier: &[Rule]) -> Result<Rule> {
    let name = r.name.get_ref().clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(cx.at(
            r.name.span(),
            format!("rule name {name:?} must be non-empty [A-Za-z0-9_-]"),
        ));
    }
    if earlier.iter().any(|x| x.name == name) {
        return Err(cx.at(r.name.span(), format!("two rules are named {name:?}")));
    }
    let kind = kind(cx, r, &name)?;
    misplaced_keys(cx, r, &kind)?;
    let strategy = strategy(cx, r, &kind)?;
    let (exclude, exclude_patterns) = match &r.exclude {
        Some(v) => build_globs(cx, v)?,
        None => (GlobSet::empty(), Vec::new()),
    };
    Ok(Rule {
        name,
        description: r.description.clone(),
        kind,
        required: r.required.unwrap_or(false),
        strategy,
        travels_with: r.travels_with.as_ref().map(|t| t.get_ref().clone()),
        exclude,
        exclude_patterns,
    })
}

/// A rule's `path`: present, plain relative, and not shipped content.
fn rule_path(cx: &Ctx, r: &RawRule, name: &str, what: &str) -> Result<PathBuf> {
    let p = r.path.as_ref().ok_or_else(|| {
        cx.at(
            r.kind.span(),
            format!("rule {name:?} of kind {what} needs `path`"),
        )
    })?;
    let path = PathBuf::from(p.get_ref());
    check_rel_path(&path).map_err(|m| cx.at(p.span(), m))?;
    if let Some(s) = SHIPPED
        .iter()
        .find(|s| path.starts_with(s) || Path::new(s).starts_with(&path))
    {
        return Err(cx.at(
            p.span(),
            format!(
                "rule {name:?} would carry shipped content ({s}); the new pack must provide it"
            ),
        ));
    }
    Ok(path)
}

fn kind(cx: &Ctx, r: &RawRule, name: &str) -> Result<RuleKind> {
    let path = |what: &str| rule_path(cx, r, name, what);
    Ok(match r.kind.get_ref().as_str() {
        "dir" => RuleKind::Dir { path: path("dir")? },
        "file" => RuleKind::File {
            path: path("file")?,
        },
        "lucene" => RuleKind::Lucene {
            path: path("lucene")?,
        },
        "glob" => {
            let path = path("glob")?;
            let inc = r
                .include
                .as_ref()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    cx.at(
                        r.kind.span(),
                        format!("rule {name:?} of kind glob needs `include`"),
                    )
                })?;
            let (include, patterns) = build_globs(cx, inc)?;
            RuleKind::Glob {
                path,
                include,
                patterns,
            }
        }
        "h2" => h2_kind(cx, r, name)?,
        "config" => {
            let path = path("config")?;
            RuleKind::Config {
                format: config_format(cx, r, &path)?,
                path,
            }
        }
        other => {
            return Err(cx.at(
                r.kind.span(),
                format!("unknown kind {other:?}; expected dir, file, glob, h2, lucene or config"),
            ))
        }
    })
}

fn h2_kind(cx: &Ctx, r: &RawRule, name: &str) -> Result<RuleKind> {
    let db = r.database.as_ref().ok_or_else(|| {
        cx.at(
            r.kind.span(),
            format!("rule {name:?} of kind h2 needs `database`"),
        )
    })?;
    let database = db.get_ref().clone();
    if database.is_empty() || database.contains('/') || database.contains('.') {
        return Err(cx.at(
            db.span(),
            format!("database {database:?} must be a bare name like WSO2CARBON_DB"),
        ));
    }
    if let Some(p) = &r.path {
        return Err(cx.at(p.span(), "an h2 rule takes `database`, not `path`"));
    }
    Ok(RuleKind::H2 { database })
}

fn config_format(cx: &Ctx, r: &RawRule, path: &Path) -> Result<ConfigFormat> {
    match r.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
        None => Ok(ConfigFormat::guess(path)),
        Some(("toml", _)) => Ok(ConfigFormat::Toml),
        Some(("xml", _)) => Ok(ConfigFormat::Xml),
        Some(("text", _)) => Ok(ConfigFormat::Text),
        Some((other, span)) => Err(cx.at(
            span,
            format!("unknown format {other:?}; expected toml, xml or text"),
        )),
    }
}

/// Keys that only some kinds take.
fn misplaced_keys(cx: &Ctx, r: &RawRule, kind: &RuleKind) -> Result<()> {
    if let Some(f) = r
        .format
        .as_ref()
        .filter(|_| !matches!(kind, RuleKind::Config { .. }))
    {
        return Err(cx.at(f.span(), "`format` applies to config rules only"));
    }
    if let Some(d) = r
        .database
        .as_ref()
        .filter(|_| !matches!(kind, RuleKind::H2 { .. }))
    {
        return Err(cx.at(d.span(), "`database` applies to h2 rules only"));
    }
    if r.include.is_some() && !matches!(kind, RuleKind::Glob { .. }) {
        return Err(cx.at(r.kind.span(), "`include` applies to glob rules only"));
    }
    Ok(())
}

fn strategy(cx: &Ctx, r: &RawRule, kind: &RuleKind) -> Result<Strategy> {
    match r
        .strategy
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("replace", _)) => Ok(Strategy::Replace),
        Some(("merge", span)) => {
            if !matches!(kind, RuleKind::Config { .. }) {
                return Err(cx.at(span, "strategy \"merge\" applies to config rules only"));
            }
            Ok(Strategy::Merge)
        }
        Some((other, span)) => Err(cx.at(
            span,
            format!("unknown strategy {other:?}; expected replace or merge"),
        )),
    }
}

/// No two rules claim the same path (or one inside the other), nor the same database.
fn check_claims(
    cx: &Ctx,
    r: &RawRule,
    rule: &Rule,
    earlier: &[Rule],
    claimed: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let name = &rule.name;
    if let Some(path) = rule.kind.path() {
        if let Some((other, other_name)) = claimed
            .iter()
            .find(|(p, _)| p.starts_with(path) || path.starts_with(p))
        {
            let span = r.path.as_ref().map(|p| p.span()).unwrap_or(r.name.span());
            return Err(cx.at(
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
    if let RuleKind::H2 { database } = &rule.kind {
        let same = |x: &&Rule| matches!(&x.kind, RuleKind::H2 { database: d } if d.eq_ignore_ascii_case(database));
        if let Some(o) = earlier.iter().find(same) {
            let span = r
                .database
                .as_ref()
                .map(|d| d.span())
                .unwrap_or(r.name.span());
            return Err(cx.at(
                span,
                format!(
                    "rules {:?} and {name:?} both claim database {database}",
                    o.name
                ),
            ));
        }
    }
    Ok(())
}

fn check_travels(cx: &Ctx, rules: &[Rule], raw: &[RawRule]) -> Result<()> {
    for (r, raw_rule) in rules.iter().zip(raw) {
        let (Some(t), Some(spanned)) = (&r.travels_with, &raw_rule.travels_with) else {
            continue;
        };
        if t == &r.name {
            return Err(cx.at(
                spanned.span(),
                format!("rule {:?} cannot travel with itself", r.name),
            ));
        }
        if !rules.iter().any(|x| &x.name == t) {
            return Err(cx.at(spanned.span(), format!("travels_with names no rule: {t:?}")));
        }
    }
    Ok(())
}

/// A rule path must be a plain relative path: no empty, `.` or `..` segment, not absolute.
fn check_rel_path(path: &Path) -> std::result::Result<(), String> {
    crate::relpath::check_path(path).map_err(|why| {
        format!(
            "path {:?} must be relative to the pack root, without `..` or `.` ({why})",
            path.display().to_string()
        )
    })
}

fn build_globs(cx: &Ctx, pats: &[Spanned<String>]) -> Result<(GlobSet, Vec<String>)> {
    let mut b = GlobSetBuilder::new();
    for p in pats {
        let g = globset::GlobBuilder::new(p.get_ref())
            .literal_separator(true)
            .build()
            .map_err(|e| {
                cx.at(
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
        cx.at(
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
#[path = "parse_tests.rs"]
mod tests;
