//! The archive does not decide where its entries go: the rules that apply are carryover's own
//! for the source's product and version (the built-in manifest that covers it, or the
//! `--manifest` the operator passes). The source's recorded rules are compared with them, and
//! any rule outside them (another name, kind, strategy, partner or path, a path that is not a
//! plain pack-relative one, or one in a shipped area) is refused with both named. Also the
//! version gates (a version change is a migration; a lower update level is warned about) and
//! the damage an `--allow-corrupt` archive records. Reads only.

use std::path::{Path, PathBuf};

use crate::archive::format::{CorruptRecord, RuleRecord, SnapshotMeta};
use crate::archive::read_archive;
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest, RuleKind, SHIPPED};
use crate::pack::Pack;
use crate::progress::{Cancel, NoProgress};
use crate::version::Version;

/// Carryover's own manifest for the source described by `meta`: `user` (`--manifest`) when
/// given, else the built-in that covers its product and version.
///
/// # Errors
/// `Invalid` when the recorded version does not parse; `NoManifest` when no built-in covers
/// it; the `--manifest` cannot be loaded.
pub fn own_manifest(meta: &SnapshotMeta, source: &Path, user: Option<&Path>) -> Result<Manifest> {
    let Some(version) = Version::parse(&meta.version) else {
        return Err(Error::invalid(
            source,
            format!(
                "the source records version {:?}, which is not a version",
                meta.version
            ),
        ));
    };
    Ok(manifest::select(source, &meta.product, &version, user)?.manifest)
}

/// Every rule the source records must be one of `own`'s, as `own` states it.
///
/// # Errors
/// `Incompatible` naming every recorded rule that is not carryover's (the archive's rule and
/// carryover's side by side), nothing decided or written.
pub fn check_rules(meta: &SnapshotMeta, own: &Manifest, source: &Path) -> Result<()> {
    let problems: Vec<String> = meta
        .rules
        .iter()
        .filter_map(|r| rule_problem(r, own).err())
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Incompatible {
        path: source.to_path_buf(),
        message: format!(
            "the source's rules are not carryover's own ({} {}): {}; carryover applies only its \
             own rules (or the --manifest you pass), never an archive's",
            own.name,
            own.range(),
            problems.join("; ")
        ),
    })
}

/// Why the recorded rule `r` is not `own`'s rule of that name.
fn rule_problem(r: &RuleRecord, own: &Manifest) -> std::result::Result<(), String> {
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or_else(|| "no path".to_string(), |p| p.display().to_string())
    };
    let recorded = format!("rule {:?} ({} at {})", r.name, r.kind, shown(&r.path));
    let Some(m) = own.rule(&r.name) else {
        return Err(format!("{recorded} is not a rule of {}", own.name));
    };
    let theirs = format!(
        "{} has {} {:?} at {}",
        own.name,
        m.kind.kind(),
        m.strategy,
        m.kind.path().map_or_else(
            || "the database's configured file".into(),
            |p| p.display().to_string()
        )
    );
    let differs = m.kind.kind() != r.kind
        || m.strategy != r.strategy
        || m.travels_with != r.travels_with
        || match (&m.kind, &r.path) {
            (RuleKind::H2 { database }, p) => {
                r.h2_database.as_deref() != Some(database.as_str())
                    || p.as_ref().is_some_and(|p| !is_h2_file(p))
            }
            (k, Some(p)) => k.path() != Some(p.as_path()),
            (_, None) => false,
        };
    if differs {
        return Err(format!("{recorded} differs: {theirs}"));
    }
    if let Some(p) = &r.path {
        if let Err(why) = crate::relpath::check_path(p) {
            return Err(format!("{recorded}: {why}"));
        }
        if let Some(s) = SHIPPED.iter().find(|s| p.starts_with(s)) {
            return Err(format!(
                "{recorded} is in a shipped area ({s}), which no state rule writes"
            ));
        }
    }
    Ok(())
}

/// An H2 database file: `X.mv.db` or `X.h2.db`.
fn is_h2_file(p: &Path) -> bool {
    let s = p.to_string_lossy();
    (s.ends_with(".mv.db") || s.ends_with(".h2.db")) && p.file_name().is_some()
}

/// A version change is a migration in WSO2's terms (its own client, database scripts), not an
/// update: refused unless the operator allows it.
///
/// # Errors
/// `Incompatible` naming both versions and `--allow-version-change`.
pub fn check_version_change(meta: &SnapshotMeta, target: &Pack, allow: bool) -> Result<()> {
    let tv = &target.identity.version;
    if allow || Version::parse(&meta.version).map_or(true, |sv| sv == *tv) {
        return Ok(());
    }
    Err(Error::Incompatible {
        path: target.root.clone(),
        message: format!(
            "the source is {} {}, the new pack is {tv}: a version change is a migration in WSO2's terms \
             (the migration client upgrades the databases and configuration), not an update of the same version; \
             carryover carries state within one version; --allow-version-change carries it anyway",
            meta.product, meta.version
        ),
    })
}

/// A warning when the new pack's update level is lower than the source's: fixes the old pack
/// had are missing from the new one.
pub fn lower_update_level(meta: &SnapshotMeta, target: &Pack) -> Option<String> {
    let (Some(src), Some(new)) = (meta.update_level, target.identity.update_level) else {
        return None;
    };
    (new < src).then(|| {
        format!(
            "warning: the new pack is at update level {new}, lower than the source's {src}: \
             fixes the old pack had are missing; update the new pack to level {src} or later first"
        )
    })
}

/// Same product, and no downgrade.
///
/// # Errors
/// `Incompatible` naming both packs' product and version.
pub fn check_compatible(meta: &SnapshotMeta, target: &Pack) -> Result<()> {
    let tid = &target.identity;
    if meta.product != tid.product {
        return Err(Error::Incompatible {
            path: target.root.clone(),
            message: format!(
                "the source is {} {}, the new pack is {} {}: carryover only carries state between packs of the same product",
                meta.product, meta.version, tid.product, tid.version
            ),
        });
    }
    if Version::parse(&meta.version).is_some_and(|sv| sv > tid.version) {
        return Err(Error::Incompatible {
            path: target.root.clone(),
            message: format!(
                "the source is {} {}, newer than the new pack ({}); carryover does not downgrade",
                meta.product, meta.version, tid.version
            ),
        });
    }
    Ok(())
}

/// The files the archive records as damaged (`--allow-corrupt`), read before anything is decided.
/// Entries under no rule are refused by staging (and the dry run), which sees every entry too.
///
/// # Errors
/// The archive cannot be read.
pub fn recorded_damage(archive: &Path) -> Result<Vec<CorruptRecord>> {
    let contents = read_archive(archive, None, &NoProgress, &Cancel::default())?;
    Ok(contents.index.map(|i| i.corrupt).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_files_are_named_by_their_extension() {
        assert!(is_h2_file(Path::new("repository/database/WSO2AM_DB.mv.db")));
        assert!(is_h2_file(Path::new("repository/database/WSO2AM_DB.h2.db")));
        assert!(!is_h2_file(Path::new("bin/wso2server.sh")));
    }
}
