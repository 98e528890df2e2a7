//! `Packages.diff/Index` (pdiff) files: the patches that take an older Packages index to the
//! current one. The mirror serves the patch files next to the Index, so it needs each patch's
//! name, size and SHA256 as downloaded (`SHA256-Download`, the `.gz` files).

use super::deb822::{normalize_newlines, stanzas, Stanza};
use super::packages::safe_relative_path;
use super::ParseError;
use crate::digest::Sha256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdiffIndex {
    /// The index the patches lead to (`SHA256-Current`), when present.
    pub current: Option<PdiffCurrent>,
    /// Earlier versions of the index the patches start from (`SHA256-History`).
    pub history: Vec<PdiffFile>,
    /// Uncompressed patches (`SHA256-Patches`).
    pub patch_results: Vec<PdiffFile>,
    /// Files to download, relative to the `Packages.diff/` directory (`SHA256-Download`).
    pub patches: Vec<PdiffFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdiffCurrent {
    pub sha256: Sha256,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdiffFile {
    /// A single file name (no `/`), checked by `safe_relative_path`.
    pub name: String,
    pub size: u64,
    pub sha256: Sha256,
}

/// Parse a pdiff Index. `SHA256-Download` is required (without it nothing can be mirrored);
/// the other lists are optional.
pub fn parse_pdiff_index(text: &str) -> Result<PdiffIndex, ParseError> {
    let text = normalize_newlines(text);
    let mut iter = stanzas(&text, "pdiff Index", None);
    let stanza = iter.next().ok_or(ParseError::Empty { what: "pdiff Index" })??;
    if let Some(extra) = iter.next() {
        return Err(ParseError::Syntax {
            stanza: extra?.describe(),
            detail: "a pdiff Index has exactly one stanza".into(),
        });
    }
    let current = match stanza.single("SHA256-Current")? {
        None => None,
        Some(value) => Some(parse_current(&stanza, value)?),
    };
    Ok(PdiffIndex {
        current,
        history: file_list(&stanza, "SHA256-History")?.unwrap_or_default(),
        patch_results: file_list(&stanza, "SHA256-Patches")?.unwrap_or_default(),
        patches: file_list(&stanza, "SHA256-Download")?
            .ok_or_else(|| ParseError::MissingField { stanza: stanza.describe(), field: "SHA256-Download" })?,
    })
}

fn parse_current(stanza: &Stanza<'_>, value: &str) -> Result<PdiffCurrent, ParseError> {
    let bad = |detail: &str| stanza.bad("SHA256-Current", format!("{detail} in {value:?}"));
    let [hex, size] = value.split_whitespace().collect::<Vec<_>>()[..] else {
        return Err(bad("expected `<sha256> <size>`"));
    };
    Ok(PdiffCurrent {
        sha256: hex.parse().map_err(|_| bad("bad digest"))?,
        size: size.parse().map_err(|_| bad("bad size"))?,
    })
}

fn file_list(stanza: &Stanza<'_>, field: &str) -> Result<Option<Vec<PdiffFile>>, ParseError> {
    let Some(lines) = stanza.lines(field)? else { return Ok(None) };
    let parse_line = |line: &str| {
        let bad = |detail: &str| stanza.bad(field, format!("{detail} in line {line:?}"));
        let [hex, size, name] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(bad("expected `<sha256> <size> <name>`"));
        };
        let name = safe_relative_path(name).map_err(|e| bad(&e.to_string()))?;
        if name.contains('/') {
            return Err(bad("patch name must be a single file name"));
        }
        Ok(PdiffFile {
            name: name.to_owned(),
            size: size.parse().map_err(|_| bad("bad size"))?,
            sha256: hex.parse().map_err(|_| bad("bad digest"))?,
        })
    };
    lines.into_iter().map(parse_line).collect::<Result<_, _>>().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(seed: usize) -> String {
        format!("{seed:064x}")
    }

    fn index() -> String {
        format!(
            "SHA256-Current: {} 46134520\nSHA256-History:\n {} 46098226 2024-11-08-0206.36\n \
             {} 46101234 2024-11-08-2014.13\nSHA256-Patches:\n {} 21553 2024-11-08-0206.36\n \
             {} 1234 2024-11-08-2014.13\nSHA256-Download:\n {} 5430 2024-11-08-0206.36.gz\n \
             {} 456 T-2024-11-09-0813.25-F-2024-11-08-2014.13.gz\nX-Patch-Precedence: merged\n",
            hex(1),
            hex(2),
            hex(3),
            hex(4),
            hex(5),
            hex(6),
            hex(7)
        )
    }

    #[test]
    fn parses_debian_pdiff_index() {
        let idx = parse_pdiff_index(&index()).unwrap();
        assert_eq!(idx.current, Some(PdiffCurrent { sha256: hex(1).parse().unwrap(), size: 46134520 }));
        assert_eq!(idx.history.len(), 2);
        assert_eq!(idx.patch_results[1].size, 1234);
        let got: Vec<_> = idx.patches.iter().map(|p| (p.name.as_str(), p.size, p.sha256.to_hex())).collect();
        assert_eq!(
            got,
            [("2024-11-08-0206.36.gz", 5430, hex(6)), ("T-2024-11-09-0813.25-F-2024-11-08-2014.13.gz", 456, hex(7))]
        );
    }

    #[test]
    fn download_list_alone_is_enough() {
        let idx = parse_pdiff_index(&format!("SHA256-Download:\n {} 1 p.gz\n", hex(0))).unwrap();
        assert_eq!((idx.current, idx.history.len(), idx.patches.len()), (None, 0, 1));
    }

    #[test]
    fn malformed_indices_are_rejected() {
        let good = index();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty document"),
            (good.replace("SHA256-Download", "SHA1-Download"), "missing required field SHA256-Download"),
            (good.replace(" 46134520", ""), "SHA256-Current"),
            (good.replace("46134520", "big"), "bad size"),
            (good.replace(&hex(6), "zz"), "bad digest"),
            (good.replace("5430 2024-11-08-0206.36.gz", "5430"), "expected `<sha256> <size> <name>`"),
            (good.replace("2024-11-08-0206.36.gz", "../../../etc/passwd"), "`..`"),
            (good.replace("2024-11-08-0206.36.gz", "sub/p.gz"), "single file name"),
            (format!("{good}\nSHA256-Current: x\n"), "exactly one stanza"),
        ];
        for (text, want) in cases {
            let err = parse_pdiff_index(&text).expect_err(&text).to_string();
            assert!(err.contains(want), "error {err:?} should mention {want:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_pdiff_index_never_panics(text in "\\PC*") {
            let _ = parse_pdiff_index(&text);
        }

        #[test]
        fn parse_pdiff_index_never_panics_on_near_valid(line in "[0-9a-f ./a-z-]{0,100}") {
            let _ = parse_pdiff_index(&format!("SHA256-Current: {line}\nSHA256-Download:\n {line}\n"));
        }
    }
}
