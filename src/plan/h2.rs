//! H2 resolution: a logical database (`WSO2AM_DB`) to its file in the pack, its on-disk format,
//! whether the pack's own engine opens it, its side files and whether it was closed cleanly.

use std::fs;
use std::path::{Path, PathBuf};

use super::model::{H2Info, Warning, WarningCode};
use crate::pack::{engines::engine_mv_format, H2Format, Location, Pack};

/// Resolves a logical H2 database to its file: the pack's config, else `repository/database/NAME`,
/// then whichever of `.mv.db`/`.h2.db` exists.
pub(super) fn resolve(pack: &Pack, database: &str, warnings: &mut Vec<Warning>) -> H2Info {
    let (location, resolved_from) = match pack.datasource_for(database) {
        Some(ds) => (
            ds.location.clone(),
            format!("{} ({})", ds.declared_in, ds.url),
        ),
        None => (
            Location::InPack(PathBuf::from("repository/database").join(database)),
            "default location (not declared in the pack's config)".to_string(),
        ),
    };
    let mut info = H2Info {
        database: database.to_string(),
        resolved_from,
        location: location.clone(),
        file: None,
        format: None,
        opened_by_pack_engine: None,
        side_files: Vec::new(),
        both_extensions: false,
        unclean: false,
    };
    let Location::InPack(base) = location else {
        return info;
    };
    choose_file(pack, &base, &mut info, warnings);
    check_format(pack, &mut info, warnings);
    find_side_files(pack, &base, &mut info);
    if info.unclean {
        warnings.push(Warning {
            code: WarningCode::H2Unclean,
            message: format!(
                "{database} was not closed cleanly ({}); start and stop the old server once before carrying it",
                info.file.as_deref().map(|f| f.display().to_string()).unwrap_or_default()
            ),
        });
    }
    info
}

/// `base` + an extension (`.mv.db`, `.h2.db`).
fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// Whichever of `.mv.db`/`.h2.db` exists; when both do, the one the pack's engine opens.
fn choose_file(pack: &Pack, base: &Path, info: &mut H2Info, warnings: &mut Vec<Warning>) {
    let mv = with_ext(base, ".mv.db");
    let h2 = with_ext(base, ".h2.db");
    let has_mv = pack.root.join(&mv).is_file();
    let has_h2 = pack.root.join(&h2).is_file();
    info.both_extensions = has_mv && has_h2;
    let engine_major = pack.engines.h2.as_ref().map(|j| j.version.major());
    info.file = match (has_mv, has_h2) {
        (true, true) => {
            // H2 1.x opens X.h2.db in preference to X.mv.db; 2.x ignores .h2.db.
            warnings.push(Warning {
                code: WarningCode::H2AndMv,
                message: format!(
                    "{} and {} both exist; H2 1.x opens the .h2.db, 2.x the .mv.db: remove the stale one",
                    h2.display(),
                    mv.display()
                ),
            });
            if engine_major.is_some_and(|m| m < 2) {
                Some(h2)
            } else {
                Some(mv)
            }
        }
        (true, false) => Some(mv),
        (false, true) => Some(h2),
        (false, false) => None,
    };
}

/// The file's own header decides its format; the pack's engine decides whether it opens.
fn check_format(pack: &Pack, info: &mut H2Info, warnings: &mut Vec<Warning>) {
    let Some(f) = &info.file else {
        return;
    };
    let fmt = H2Format::of_file(&pack.root.join(f)).unwrap_or(H2Format::Unknown);
    info.format = Some(fmt);
    if let Some(j) = &pack.engines.h2 {
        info.opened_by_pack_engine = fmt.opened_by(&j.version);
        if info.opened_by_pack_engine == Some(false) {
            warnings.push(Warning {
                code: WarningCode::H2FormatMismatch,
                message: format!(
                    "{}: {fmt} is not opened by this pack's own H2 {} (it reads {})",
                    f.display(),
                    j.version,
                    if j.version.major() < 2 {
                        "PageStore and MVStore format 1".to_string()
                    } else {
                        format!("MVStore format {}", engine_mv_format(&j.version))
                    }
                ),
            });
        }
    }
    if !fmt.is_clean() {
        info.unclean = true;
    }
}

/// Side files are never carried; a temp or compaction file means an unclean shutdown.
fn find_side_files(pack: &Pack, base: &Path, info: &mut H2Info) {
    let Some(dir) = pack.root.join(base).parent().map(Path::to_path_buf) else {
        return;
    };
    let stem = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    let mut sides: Vec<PathBuf> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let rest = n.strip_prefix(&stem)?.strip_prefix('.')?.to_string();
            let side = matches!(rest.as_str(), "lock.db" | "trace.db" | "temp.db")
                || rest.ends_with(".tempFile")
                || rest.ends_with(".newFile");
            side.then(|| base.with_file_name(&n))
        })
        .collect();
    sides.sort();
    if sides.iter().any(|s| {
        let n = s.to_string_lossy();
        n.ends_with(".temp.db") || n.ends_with(".tempFile") || n.ends_with(".newFile")
    }) {
        info.unclean = true;
    }
    info.side_files = sides;
}
