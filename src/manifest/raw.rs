//! The manifest as serde reads it, before validation. Spans are kept so that every validation
//! error can point at `file:line:column`.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub manifest: RawHead,
    #[serde(default)]
    pub rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    pub name: String,
    pub description: Option<String>,
    pub product: String,
    pub min_version: Spanned<String>,
    pub below_version: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub description: Option<String>,
    pub path: Option<Spanned<String>>,
    pub database: Option<Spanned<String>>,
    pub include: Option<Vec<Spanned<String>>>,
    pub exclude: Option<Vec<Spanned<String>>>,
    pub required: Option<bool>,
    pub strategy: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub travels_with: Option<Spanned<String>>,
}
