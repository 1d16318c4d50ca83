//! The built-in manifests (embedded from `manifests/*.toml`) and the choice of one for a pack.

use std::path::Path;

use super::model::{Manifest, Origin};
use crate::error::{Error, Result};
use crate::version::Version;

/// (file name, text) of every built-in manifest.
const BUILTINS: &[(&str, &str)] = &[
    (
        "wso2am-2.x.toml",
        include_str!("../../manifests/wso2am-2.x.toml"),
    ),
    (
        "wso2am-3.x.toml",
        include_str!("../../manifests/wso2am-3.x.toml"),
    ),
    (
        "wso2am-4.0.toml",
        include_str!("../../manifests/wso2am-4.0.toml"),
    ),
    (
        "wso2am-4.1-4.2.toml",
        include_str!("../../manifests/wso2am-4.1-4.2.toml"),
    ),
    (
        "wso2am-4.3-4.4.toml",
        include_str!("../../manifests/wso2am-4.3-4.4.toml"),
    ),
    (
        "wso2am-4.5+.toml",
        include_str!("../../manifests/wso2am-4.5+.toml"),
    ),
    (
        "wso2am-acp-4.5+.toml",
        include_str!("../../manifests/wso2am-acp-4.5+.toml"),
    ),
    (
        "wso2am-universal-gw-4.5+.toml",
        include_str!("../../manifests/wso2am-universal-gw-4.5+.toml"),
    ),
    (
        "wso2am-tm-4.5+.toml",
        include_str!("../../manifests/wso2am-tm-4.5+.toml"),
    ),
    (
        "wso2is-5.10+.toml",
        include_str!("../../manifests/wso2is-5.10+.toml"),
    ),
];

/// Every built-in manifest, validated.
///
/// # Errors
/// A built-in manifest does not validate (a bug caught by the unit tests).
pub fn builtins() -> Result<Vec<Manifest>> {
    BUILTINS
        .iter()
        .map(|(name, text)| Manifest::parse(text, Origin::Builtin(name)))
        .collect()
}

/// The manifest chosen for a pack, and why.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The manifest.
    pub manifest: Manifest,
    /// Why it was chosen, for `inspect`.
    pub reason: String,
}

/// Chooses the manifest for `product`/`version`: the user's `--manifest` if given, else the
/// built-in whose range covers the version.
///
/// # Errors
/// The `--manifest` file cannot be read or does not validate; no built-in covers the line
/// ([`Error::NoManifest`]).
pub fn select(
    pack: &Path,
    product: &str,
    version: &Version,
    user: Option<&Path>,
) -> Result<Selection> {
    if let Some(path) = user {
        let manifest = Manifest::load(path)?;
        let reason = if manifest.covers(product, version) {
            format!(
                "--manifest {} (covers {product} {})",
                path.display(),
                manifest.range()
            )
        } else {
            format!(
                "--manifest {} given explicitly; note: it declares {} {}, the pack is {product} {version}",
                path.display(),
                manifest.product,
                manifest.range()
            )
        };
        return Ok(Selection { manifest, reason });
    }
    let found = builtins()?.into_iter().find(|m| m.covers(product, version));
    match found {
        Some(manifest) => {
            let reason = format!(
                "built-in {} covers {product} {} and the pack is {product} {version}",
                manifest.name,
                manifest.range()
            );
            Ok(Selection { manifest, reason })
        }
        None => Err(Error::NoManifest {
            path: pack.to_path_buf(),
            product: product.to_string(),
            version: version.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        let all = builtins().unwrap();
        assert_eq!(all.len(), BUILTINS.len());
    }

    #[test]
    fn builtins_do_not_overlap() {
        let all = builtins().unwrap();
        for v in [
            "2.6.0", "3.2.0", "4.0.0", "4.1.0", "4.2.0", "4.4.0", "4.5.0", "4.7.0",
        ] {
            let v = Version::parse(v).unwrap();
            let n = all.iter().filter(|m| m.covers("wso2am", &v)).count();
            assert_eq!(n, 1, "{v}");
        }
    }

    #[test]
    fn lines_map_to_the_right_manifest() {
        let pick = |p: &str, v: &str| {
            select(Path::new("x"), p, &Version::parse(v).unwrap(), None)
                .unwrap()
                .manifest
                .name
        };
        assert_eq!(pick("wso2am", "2.6.0"), "wso2am-2.x");
        assert_eq!(pick("wso2am", "3.2.0"), "wso2am-3.x");
        assert_eq!(pick("wso2am", "4.0.0"), "wso2am-4.0");
        assert_eq!(pick("wso2am", "4.2.0"), "wso2am-4.1-4.2");
        assert_eq!(pick("wso2am", "4.4.0"), "wso2am-4.3-4.4");
        assert_eq!(pick("wso2am", "4.6.0"), "wso2am-4.5+");
        assert_eq!(pick("wso2am-acp", "4.5.0"), "wso2am-acp-4.5+");
        assert_eq!(pick("wso2am-tm", "4.5.0"), "wso2am-tm-4.5+");
        assert_eq!(
            pick("wso2am-universal-gw", "4.5.0"),
            "wso2am-universal-gw-4.5+"
        );
        assert_eq!(pick("wso2is", "5.11.0"), "wso2is-5.10+");
    }
}
