//! Manifests: which state a product line must preserve, and how.
//!
//! A manifest is TOML (format documented in `manifests/README.md`). [`Manifest::parse`]
//! (`parse.rs`) turns the text into a validated [`Manifest`] (`model.rs`) or a
//! [`crate::Error::Manifest`] that names `file:line:column` and the problem; `builtin.rs` holds the
//! embedded manifests and chooses one for a pack. Only validated manifests are passed on.

mod builtin;
mod model;
mod parse;
mod raw;

pub use crate::version::Version;
pub use builtin::{builtins, select, Selection};
pub use model::{ConfigFormat, Kind, Manifest, Origin, Rule, RuleKind, Strategy};
pub use parse::SHIPPED;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::parse("4.10.0").unwrap() > Version::parse("4.9.1").unwrap());
        assert_eq!(
            Version::parse("4.2").unwrap(),
            Version::parse("4.2.0").unwrap()
        );
        assert!(Version::parse("4.x").is_none());
    }
}
