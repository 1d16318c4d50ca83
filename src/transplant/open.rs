//! The two packs of a transplant, opened and gated before anything is decided: the new pack
//! must not be in use (it is planned with its own manifest when one covers it); the source is an
//! archive (only its metadata is read here) or an old pack, planned, not in use, and not the new
//! pack itself. Also the dry run's preview of the config merges, which reads the operator's
//! files from the source. Reads only.

use std::path::{Path, PathBuf};

use crate::archive::format::SnapshotMeta;
use crate::archive::read_meta;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Selection};
use crate::pack::Pack;
use crate::plan::Plan;
use crate::transplant::base;
use crate::transplant::configs::{ConfigOutcome, MergeSetup};
use crate::transplant::plan::RuleDecision;
use crate::transplant::report::SourceKind;

/// The source of a transplant, opened.
pub enum Source {
    /// A snapshot archive (read again, once, by staging).
    Archive(PathBuf),
    /// An old pack, planned with its manifest.
    Pack(Box<Plan>),
}

/// The new pack, planned with its own manifest when one covers it (else `manifest`), must not
/// be in use.
///
/// # Errors
/// `Refused` when a server runs on it; the plan cannot be made.
pub fn gate_target(target: Pack, manifest: Option<&Path>) -> Result<Pack> {
    let id = &target.identity;
    let own = manifest::select(&target.root, &id.product, &id.version, None)
        .map(|s| s.manifest)
        .ok();
    let plan = match own {
        Some(manifest) => Plan::build(
            target,
            Selection {
                manifest,
                reason: String::new(),
            },
        )?,
        None => Plan::for_pack(target, manifest)?,
    };
    refuse_running(&plan, "new pack")?;
    Ok(plan.pack)
}

/// Opens `source`: an old pack (planned with `manifest`, not in use, not `target`) or an
/// archive's metadata; returns it with the snapshot metadata that describes it.
///
/// # Errors
/// It cannot be read; not a pack or archive; `Refused` when a server runs on the old pack;
/// `Invalid` when it is the new pack.
pub fn open_source(
    source: &Path,
    manifest: Option<&Path>,
    target: &Pack,
) -> Result<(Source, SnapshotMeta)> {
    // Resolved: an old pack given as a symlink to its directory is a pack, not an archive.
    let is_dir = std::fs::metadata(source).at(source)?.is_dir();
    if !is_dir {
        let meta = read_meta(source)?;
        return Ok((Source::Archive(source.to_path_buf()), meta));
    }
    let sp = Plan::for_pack(Pack::open(source)?, manifest)?;
    refuse_running(&sp, "old pack")?;
    if sp.pack.root == target.root {
        return Err(Error::invalid(
            source,
            "source and new pack are the same directory",
        ));
    }
    let meta = crate::snapshot::meta_of(&sp, false);
    Ok((Source::Pack(Box::new(sp)), meta))
}

/// Every path a transplant would replace (and the directory it would be replaced in) must be
/// writable before anything is staged: a pack the caller may not change is refused up front,
/// not half-way through the swap.
///
/// # Errors
/// `Incompatible`, naming the first path that cannot be written and why.
pub fn check_writable(target: &Path, decisions: &[RuleDecision]) -> Result<()> {
    for d in decisions.iter().filter(|d| d.carried()) {
        for rel in d.dst.iter().chain(d.also_remove.iter()) {
            let p = target.join(rel);
            let parent = crate::transplant::moves::nearest_existing_parent(target, rel);
            let mut check = vec![target.join(parent)];
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                check.push(p);
            }
            for c in check {
                writable(&c)?;
            }
        }
    }
    Ok(())
}

fn writable(p: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(p, "path contains a NUL byte"))?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::Incompatible {
            path: p.to_path_buf(),
            message: format!("cannot be written ({e}): the transplant would replace what is here; nothing was changed"),
        });
    }
    Ok(())
}

fn refuse_running(plan: &Plan, what: &str) -> Result<()> {
    if plan.liveness.running {
        return Err(Error::Refused {
            path: plan.pack.root.clone(),
            reason: format!(
                "the {what} is in use: {}; stop its server first",
                plan.liveness.summary()
            ),
        });
    }
    Ok(())
}

impl Source {
    /// What the source is, as reported.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::Pack(_) => SourceKind::Pack,
            Source::Archive(_) => SourceKind::Archive,
        }
    }

    /// The dry run's config fates, with ours read from the source (one pass over an archive);
    /// updates the rules' decisions as a real run does.
    ///
    /// # Errors
    /// The archive cannot be read.
    pub fn preview_configs(
        &self,
        merges: &MergeSetup,
        rules: &mut [RuleDecision],
    ) -> Result<Vec<ConfigOutcome>> {
        if merges.items().is_empty() {
            return Ok(Vec::new());
        }
        let ours = match self {
            Source::Pack(sp) => merges
                .wanted()
                .into_iter()
                .filter_map(|w| std::fs::read(sp.pack.root.join(&w)).ok().map(|b| (w, b)))
                .collect(),
            Source::Archive(a) => base::collect_from_archive(a, &merges.wanted())?,
        };
        let decided = merges.decide(rules, |m| ours.get(&m.src).cloned());
        Ok(decided.into_iter().map(|d| d.outcome).collect())
    }
}
