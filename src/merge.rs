//! Three-way merge of a user-edited configuration file, decided first as dpkg does:
//! ours == base → take theirs; theirs == base or theirs == ours → keep ours; otherwise merge
//! (diffy, diff3 markers). A clean text merge that no longer parses is a conflict.

use crate::manifest::ConfigFormat;

/// What happens to one config file. (The transplant reports it as a
/// `crate::transplant::ConfigFate`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Ours and theirs are identical.
    Unchanged,
    /// The operator never changed it (ours == base): the update's version stays.
    TakeNew,
    /// The update did not change it (theirs == base), or the new pack has none: ours is carried.
    KeepYours,
    /// Both changed it in different places: the clean merge is installed.
    Merged {
        /// The merged file.
        text: Vec<u8>,
    },
    /// Both changed the same lines, there is no base, or the merge does not parse.
    Conflict {
        /// Why, for the operator.
        reason: String,
        /// The diff3-marked attempt (or the clean merge that does not parse).
        attempt: Vec<u8>,
    },
}

/// Checks that `bytes` still parse as `format`.
///
/// # Errors
/// Why they do not (not UTF-8, not valid TOML or XML), for the operator.
pub fn parses(format: ConfigFormat, bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string());
    match format {
        ConfigFormat::Text => Ok(()),
        ConfigFormat::Toml => text?
            .parse::<toml::Table>()
            .map(|_| ())
            .map_err(|e| format!("not valid TOML: {}", e.message())),
        ConfigFormat::Xml => roxmltree::Document::parse(text?)
            .map(|_| ())
            .map_err(|e| format!("not valid XML: {e}")),
    }
}

/// Decides the fate of one file. `theirs` None means the new pack has no such file.
pub fn decide(
    format: ConfigFormat,
    base: Option<&[u8]>,
    ours: &[u8],
    theirs: Option<&[u8]>,
) -> Fate {
    let Some(theirs) = theirs else {
        return Fate::KeepYours;
    };
    if ours == theirs {
        return Fate::Unchanged;
    }
    let Some(base) = base else {
        return Fate::Conflict {
            reason: "no pristine base to merge against (pass --base PACK|ZIP or take a baseline snapshot)".into(),
            attempt: two_way_attempt(ours, theirs),
        };
    };
    if ours == base {
        return Fate::TakeNew;
    }
    if theirs == base {
        return Fate::KeepYours;
    }
    let (Ok(b), Ok(o), Ok(t)) = (
        std::str::from_utf8(base),
        std::str::from_utf8(ours),
        std::str::from_utf8(theirs),
    ) else {
        return Fate::Conflict {
            reason: "not text: cannot merge".into(),
            attempt: ours.to_vec(),
        };
    };
    match diffy::merge(b, o, t) {
        Ok(merged) => match parses(format, merged.as_bytes()) {
            Ok(()) => Fate::Merged {
                text: merged.into_bytes(),
            },
            Err(why) => Fate::Conflict {
                reason: format!("the merge is clean as text but {why}"),
                attempt: merged.into_bytes(),
            },
        },
        Err(marked) => Fate::Conflict {
            reason: "both changed the same lines".into(),
            attempt: marked.into_bytes(),
        },
    }
}

fn two_way_attempt(ours: &[u8], theirs: &[u8]) -> Vec<u8> {
    let mut v = b"<<<<<<< yours (old pack)\n".to_vec();
    v.extend_from_slice(ours);
    if !ours.ends_with(b"\n") {
        v.push(b'\n');
    }
    v.extend_from_slice(b"=======\n");
    v.extend_from_slice(theirs);
    if !theirs.ends_with(b"\n") {
        v.push(b'\n');
    }
    v.extend_from_slice(b">>>>>>> updated (new pack)\n");
    v
}

/// A unified diff from `old` to `new`, for `--dry-run -v`.
pub fn unified_diff(old: &[u8], new: &[u8]) -> String {
    let o = String::from_utf8_lossy(old);
    let n = String::from_utf8_lossy(new);
    diffy::create_patch(&o, &n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[server]\nhostname = \"localhost\"\n\n[keystore.tls]\npassword = \"wso2carbon\"\n\n[apim]\nx = 1\n";

    #[test]
    fn dpkg_rules() {
        let f = ConfigFormat::Toml;
        let b = BASE.as_bytes();
        let ours = BASE.replace("localhost", "apim.example.com");
        let theirs = BASE.replace("x = 1", "x = 2");
        assert_eq!(
            decide(f, Some(b), b, Some(theirs.as_bytes())),
            Fate::TakeNew
        );
        assert_eq!(
            decide(f, Some(b), ours.as_bytes(), Some(b)),
            Fate::KeepYours
        );
        assert_eq!(
            decide(f, Some(b), ours.as_bytes(), Some(ours.as_bytes())),
            Fate::Unchanged
        );
        assert_eq!(decide(f, None, ours.as_bytes(), None), Fate::KeepYours);
        match decide(f, Some(b), ours.as_bytes(), Some(theirs.as_bytes())) {
            Fate::Merged { text } => {
                let t = String::from_utf8(text).unwrap();
                assert!(t.contains("apim.example.com") && t.contains("x = 2"), "{t}");
            }
            other => panic!("{other:?}"),
        }
        let clash = BASE.replace("localhost", "other.example.com");
        assert!(matches!(
            decide(f, Some(b), ours.as_bytes(), Some(clash.as_bytes())),
            Fate::Conflict { .. }
        ));
        assert!(matches!(
            decide(f, None, ours.as_bytes(), Some(b)),
            Fate::Conflict { .. }
        ));
    }

    #[test]
    fn clean_merge_that_does_not_parse_is_a_conflict() {
        let base = "<a>\n<b>1</b>\n<c>1</c>\n</a>\n";
        let ours = "<a>\n<b>2</b>\n<c>1</c>\n</a>\n";
        // theirs breaks the closing structure in another region
        let theirs = "<a>\n<b>1</b>\n<c>1</c>\n</x>\n";
        match decide(
            ConfigFormat::Xml,
            Some(base.as_bytes()),
            ours.as_bytes(),
            Some(theirs.as_bytes()),
        ) {
            Fate::Conflict { reason, .. } => assert!(reason.contains("XML"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
