//! Detection: which product, version, update level and flavour a pack is, and the leftovers of
//! profile optimisation. Reads only small marker files.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::version::Version;

/// What a pack says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// Product id as in `updates/product.txt` (`wso2am`, `wso2am-acp`, `wso2is`...).
    pub product: String,
    /// Human product name (`WSO2 API Manager`).
    pub product_name: String,
    #[serde(serialize_with = "ser_version")]
    /// The product version (`4.2.0`).
    pub version: Version,
    /// U2 update level from `updates/config.json`; None when the pack was never updated with U2.
    pub update_level: Option<i64>,
    /// For 4.5+ API Manager packs: all-in-one, acp, universal-gw or tm.
    pub flavour: Option<String>,
    /// The files the identity was read from, with what they said.
    pub evidence: Vec<String>,
}

fn ser_version<S: serde::Serializer>(v: &Version, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// Product ids and the names `bin/version.txt` gives them.
const PRODUCTS: &[(&str, &str)] = &[
    ("wso2am-acp", "WSO2 API Control Plane"),
    ("wso2am-universal-gw", "WSO2 Universal Gateway"),
    ("wso2am-tm", "WSO2 Traffic Manager"),
    ("wso2am", "WSO2 API Manager"),
    ("wso2is", "WSO2 Identity Server"),
];

fn name_of(product: &str) -> String {
    PRODUCTS
        .iter()
        .find(|(id, _)| *id == product)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| product.to_string())
}

fn id_of(name: &str) -> Option<&'static str> {
    PRODUCTS.iter().find(|(_, n)| *n == name).map(|(id, _)| *id)
}

impl Identity {
    /// Reads `updates/product.txt`, `bin/version.txt` and the update level.
    ///
    /// # Errors
    /// [`crate::Error::NotAPack`] when neither names a product.
    pub fn detect(root: &Path) -> Result<Identity> {
        let mut evidence = Vec::new();
        let mut found: Option<(String, Version)> = None;

        if let Some(txt) = read_small(&root.join("updates/product.txt")) {
            let txt = txt.trim();
            evidence.push(format!("updates/product.txt: {txt}"));
            if let Some((id, v)) = txt.rsplit_once('-') {
                if let Some(v) = Version::parse(v) {
                    found = Some((id.to_string(), v));
                }
            }
        }
        if let Some(txt) = read_small(&root.join("bin/version.txt")) {
            let line = txt.lines().next().unwrap_or("").trim().to_string();
            evidence.push(format!("bin/version.txt: {line}"));
            if found.is_none() {
                if let Some((name, v)) = line.rsplit_once(" v") {
                    if let (Some(id), Some(v)) = (id_of(name.trim()), Version::parse(v)) {
                        found = Some((id.to_string(), v));
                    }
                }
            }
        }
        if found.is_none() {
            if let Some(xml) = read_small(&root.join("repository/conf/carbon.xml")) {
                let name = xml_tag(&xml, "Name");
                let version = xml_tag(&xml, "Version");
                evidence.push(format!(
                    "repository/conf/carbon.xml: <Name>{}</Name> <Version>{}</Version>",
                    name.as_deref().unwrap_or_default(),
                    version.as_deref().unwrap_or_default()
                ));
                if let (Some(id), Some(v)) = (
                    name.as_deref().and_then(id_of),
                    version.as_deref().and_then(Version::parse),
                ) {
                    found = Some((id.to_string(), v));
                }
            }
        }
        let Some((product, version)) = found else {
            return Err(Error::NotAPack {
                path: root.to_path_buf(),
                reason: "looked for updates/product.txt (e.g. wso2am-4.2.0), bin/version.txt \
                         (e.g. WSO2 API Manager v4.2.0) and repository/conf/carbon.xml <Name>/<Version>; \
                         none names a known product and version"
                    .into(),
            });
        };

        let update_level = read_small(&root.join("updates/config.json")).and_then(|txt| {
            let v: serde_json::Value = serde_json::from_str(&txt).ok()?;
            let lvl = v.get("update-level")?;
            let lvl = lvl
                .as_i64()
                .or_else(|| lvl.as_str().and_then(|s| s.parse().ok()))?;
            evidence.push(format!("updates/config.json: update-level {lvl}"));
            Some(lvl)
        });

        let flavour = flavour_of(&product, &version);
        Ok(Identity {
            product_name: name_of(&product),
            product,
            version,
            update_level,
            flavour,
            evidence,
        })
    }
}

/// From 4.5.0 API Manager ships four distributions instead of profiles.
fn flavour_of(product: &str, version: &Version) -> Option<String> {
    let split = Version::parse("4.5.0").expect("literal");
    if !product.starts_with("wso2am") || version < &split {
        return None;
    }
    Some(
        match product {
            "wso2am" => "all-in-one",
            "wso2am-acp" => "acp",
            "wso2am-universal-gw" => "universal-gw",
            "wso2am-tm" => "tm",
            other => other,
        }
        .to_string(),
    )
}

/// Leftovers of `profileSetup.sh`: `*.backup` files it renames originals to, and a
/// deployment.toml identical to one of the profile templates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProfileLeftovers {
    /// Files profileSetup.sh backed up.
    pub backups: Vec<PathBuf>,
    /// The profile whose template deployment.toml equals the pack's, if any.
    pub profile: Option<String>,
}

impl ProfileLeftovers {
    /// Looks for profileSetup.sh backups and profile-template configs.
    pub fn detect(root: &Path) -> ProfileLeftovers {
        let mut backups = Vec::new();
        for dir in ["repository/conf", "repository/resources/conf/templates"] {
            let base = root.join(dir);
            for ent in walkdir::WalkDir::new(&base)
                .max_depth(8)
                .into_iter()
                .flatten()
            {
                let name = ent.file_name().to_string_lossy();
                if ent.file_type().is_file()
                    && (name.ends_with(".backup") || name == "registry.backup")
                {
                    if let Ok(rel) = ent.path().strip_prefix(root) {
                        backups.push(rel.to_path_buf());
                    }
                }
            }
        }
        backups.sort();
        let mut profile = None;
        let toml = root.join("repository/conf/deployment.toml");
        if let Ok(cur) = fs::read(&toml) {
            let tdir = root.join("repository/resources/conf/deployment-templates");
            if let Ok(rd) = fs::read_dir(&tdir) {
                for ent in rd.flatten() {
                    if fs::read(ent.path()).ok().as_deref() == Some(&cur[..]) {
                        let n = ent
                            .file_name()
                            .to_string_lossy()
                            .trim_end_matches(".toml")
                            .to_string();
                        profile = Some(n);
                    }
                }
            }
        }
        ProfileLeftovers { backups, profile }
    }

    /// Whether the pack was profile-optimised.
    pub fn is_profiled(&self) -> bool {
        !self.backups.is_empty() || self.profile.is_some()
    }
}

/// Reads a marker file, at most 1 MiB; None when absent or unreadable.
pub fn read_small(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The text of the root element's `<tag>` child (carbon.xml's top-level Name and Version),
/// parsed as XML (so a commented-out `<Name>` never counts).
fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let text = doc
        .root_element()
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == tag)?
        .text()?;
    Some(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn product_txt_wins() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "updates/product.txt", "wso2am-acp-4.5.0");
        write(
            d.path(),
            "bin/version.txt",
            "WSO2 API Control Plane v4.5.0\n",
        );
        write(d.path(), "updates/config.json", "{\"update-level\": 7}");
        let id = Identity::detect(d.path()).unwrap();
        assert_eq!(id.product, "wso2am-acp");
        assert_eq!(id.version.to_string(), "4.5.0");
        assert_eq!(id.update_level, Some(7));
        assert_eq!(id.flavour.as_deref(), Some("acp"));
    }

    #[test]
    fn carbon_xml_for_old_packs() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "repository/conf/carbon.xml",
            "<Server><Name>WSO2 API Manager</Name><Version>2.1.0</Version></Server>",
        );
        let id = Identity::detect(d.path()).unwrap();
        assert_eq!(
            (id.product.as_str(), id.version.to_string().as_str()),
            ("wso2am", "2.1.0")
        );
        assert_eq!(id.flavour, None);
    }

    #[test]
    fn not_a_pack_says_what_was_looked_for() {
        let d = tempfile::tempdir().unwrap();
        let e = Identity::detect(d.path()).unwrap_err().to_string();
        assert!(e.contains("updates/product.txt"), "{e}");
        assert!(e.contains("bin/version.txt"), "{e}");
    }
}
