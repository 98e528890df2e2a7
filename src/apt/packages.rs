//! `Packages` indices: every binary package a repository offers, with the pool path, size and
//! SHA256 the sync engine downloads and checks. Also [`safe_relative_path`], the one gate every
//! repository-supplied path (Packages `Filename`, Release file lists, pdiff names) goes through
//! before it can name a file in the mirror.

use super::deb822::{normalize_newlines, stanzas, Stanza};
use super::ParseError;
use crate::digest::Sha256;

/// One binary package stanza of a Packages index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub section: Option<String>,
    /// Path relative to the repository root, checked by [`safe_relative_path`].
    pub filename: String,
    pub size: u64,
    pub sha256: Sha256,
}

/// A Packages index as apt reads it: the packages a mirror can carry, and the stanzas it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackagesIndex {
    pub packages: Vec<Package>,
    /// Stanzas `apt update` accepts but no client can download (no usable Filename, Size or
    /// SHA256, an unsafe path): left out of the mirror, each with the reason.
    pub unusable: Vec<ParseError>,
}

/// Parse a whole (decompressed) Packages index, as apt does: a syntax error or a stanza without
/// `Package` fails the index (apt update fails on it: "Encountered a section with no Package:
/// header"); a stanza whose other fields no client can download from is listed in
/// [`PackagesIndex::unusable`] — apt reads its metadata and refuses only its download
/// ("Insufficient information available to perform this download securely", or a bad path).
pub fn parse_packages(text: &str) -> Result<PackagesIndex, ParseError> {
    let text = normalize_newlines(text);
    let mut index = PackagesIndex::default();
    for stanza in stanzas(&text, "Packages", Some("Package")) {
        let stanza = stanza?;
        stanza.required("Package")?;
        match parse_stanza(&stanza) {
            Ok(p) => index.packages.push(p),
            Err(e) => index.unusable.push(e),
        }
    }
    Ok(index)
}

fn parse_stanza(s: &Stanza<'_>) -> Result<Package, ParseError> {
    let filename = s.required("Filename")?;
    if filename.contains(char::REPLACEMENT_CHARACTER) {
        return Err(s.bad("Filename", "not UTF-8"));
    }
    let filename = safe_relative_path(filename).map_err(|e| s.bad("Filename", e.to_string()))?;
    let size = s.required("Size")?;
    let size = size.parse::<u64>().map_err(|_| s.bad("Size", format!("not a byte count: {size:?}")))?;
    let sha256 = s.required("SHA256")?;
    let sha256 = sha256.parse::<Sha256>().map_err(|e| s.bad("SHA256", e.to_string()))?;
    Ok(Package {
        name: s.required("Package")?.to_owned(),
        version: s.required("Version")?.to_owned(),
        architecture: s.required("Architecture")?.to_owned(),
        section: s.single("Section")?.map(str::to_owned),
        filename: filename.to_owned(),
        size,
        sha256,
    })
}

/// Why a repository-supplied path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeReason {
    Empty,
    Absolute,
    ParentComponent,
    CurrentComponent,
    EmptyComponent,
    Backslash,
    ControlCharacter,
}

impl std::fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnsafeReason::Empty => "empty path",
            UnsafeReason::Absolute => "absolute path",
            UnsafeReason::ParentComponent => "contains a `..` component",
            UnsafeReason::CurrentComponent => "contains a `.` component",
            UnsafeReason::EmptyComponent => "contains an empty component (`//` or trailing `/`)",
            UnsafeReason::Backslash => "contains a backslash",
            UnsafeReason::ControlCharacter => "contains a NUL or control character",
        })
    }
}

/// A path that could escape the repository root or be read differently by different tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe path {path:?}: {reason}")]
pub struct UnsafePath {
    pub path: String,
    pub reason: UnsafeReason,
}

/// Accept `p` only if it is a plain relative path: not empty or absolute, no `..`, `.` or empty
/// components, no backslash, NUL or other control character. Returns `p` unchanged on success,
/// so a caller can write `let path = safe_relative_path(raw)?;`.
pub fn safe_relative_path(p: &str) -> Result<&str, UnsafePath> {
    let fail = |reason| Err(UnsafePath { path: p.to_owned(), reason });
    if p.is_empty() {
        return fail(UnsafeReason::Empty);
    }
    if p.chars().any(char::is_control) {
        return fail(UnsafeReason::ControlCharacter);
    }
    if p.contains('\\') {
        return fail(UnsafeReason::Backslash);
    }
    if p.starts_with('/') {
        return fail(UnsafeReason::Absolute);
    }
    for component in p.split('/') {
        match component {
            "" => return fail(UnsafeReason::EmptyComponent),
            "." => return fail(UnsafeReason::CurrentComponent),
            ".." => return fail(UnsafeReason::ParentComponent),
            _ => {}
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HELLO_SHA: &str = "2b4bd2bd9ff1b6bc8a82d4d6e57fb1c1d4c1a1b4d4e2b1e8c3d3a5c7c8e9f0a1";

    fn stanza(name: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\nSection: admin\n\
             Filename: pool/main/{name}_1.0-1_amd64.deb\nSize: 1234\nSHA256: {HELLO_SHA}\n\
             Description: a package\n multi-line description\n .\n more\n{extra}"
        )
    }

    #[test]
    fn parses_proxmox_style_index() {
        let text = "Package: proxmox-ve\nVersion: 8.2.0\nArchitecture: all\n\
            Maintainer: Proxmox Support Team <support@proxmox.com>\nInstalled-Size: 27\n\
            Depends: proxmox-kernel-helper, pve-manager\n\
            Filename: dists/bookworm/pve-no-subscription/binary-amd64/proxmox-ve_8.2.0_all.deb\n\
            Size: 5048\nMD5sum: 0123456789abcdef0123456789abcdef\n\
            SHA256: 3c5e09a6f7bbbc3b1b3da3a5e4b1a0a8cc8f1f1c6d9e8d1b0a3e7c2d9f4b5a6c\n\
            Section: admin\nPriority: optional\nDescription: Proxmox Virtual Environment\n long text\n\n"
            .to_owned()
            + &stanza("hello", "");
        let index = parse_packages(&text).unwrap();
        assert!(index.unusable.is_empty());
        let pkgs = index.packages;
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "proxmox-ve");
        assert_eq!(pkgs[0].architecture, "all");
        assert_eq!(pkgs[0].filename, "dists/bookworm/pve-no-subscription/binary-amd64/proxmox-ve_8.2.0_all.deb");
        assert_eq!(pkgs[0].size, 5048);
        assert_eq!(pkgs[1].section.as_deref(), Some("admin"));
        assert_eq!(pkgs[1].sha256.to_hex(), HELLO_SHA);
    }

    #[test]
    fn empty_index_has_no_packages() {
        assert_eq!(parse_packages("").unwrap(), PackagesIndex::default());
        assert_eq!(parse_packages("\n\n").unwrap(), PackagesIndex::default());
    }

    /// What apt update refuses fails the index: a syntax error, a stanza without `Package`.
    #[test]
    fn what_apt_cannot_parse_fails_the_index() {
        let ok = stanza("good", "");
        let cases: Vec<(String, &str)> = vec![
            (format!("{ok}\n{}", stanza("second", "no colon line\n")), "Packages stanza 2"),
            (format!("{ok}\n{}", stanza("p", "").replace("Package: p\n", "")), "missing required field Package"),
        ];
        for (text, want) in cases {
            let err = parse_packages(&text).expect_err(&text).to_string();
            assert!(err.contains(want), "error {err:?} should mention {want:?}");
        }
    }

    /// What apt update reads but no client can download is left out of the mirror, named; the
    /// other stanzas are mirrored.
    #[test]
    fn undownloadable_stanzas_are_unusable_not_fatal() {
        let ok = stanza("good", "");
        let cases: Vec<(String, &str)> = vec![
            (stanza("p", "").replace("Size: 1234", "Size: -1"), "(Package: p): field Size"),
            (stanza("p", "").replace("Size: 1234", "Size: 12kB"), "field Size"),
            (stanza("p", "").replace("Size: 1234\n", ""), "missing required field Size"),
            (stanza("p", "").replace(HELLO_SHA, "abc"), "field SHA256"),
            // Only MD5sum: apt refuses to download it ("Insufficient information … securely").
            (
                stanza("p", "MD5sum: 0123456789abcdef0123456789abcdef\n")
                    .replace(&format!("SHA256: {HELLO_SHA}\n"), ""),
                "field SHA256",
            ),
            (stanza("p", "").replace("Version: 1.0-1\n", ""), "field Version"),
            (stanza("p", "").replace("pool/main/", "/pool/main/"), "absolute path"),
            (stanza("p", "").replace("pool/main/", "pool/../../etc/"), "`..`"),
            (stanza("p", "").replace("pool/main/", "pool/m\u{fffd}in/"), "not UTF-8"),
        ];
        for (bad, want) in cases {
            let text = format!("{ok}\n{bad}");
            let index = parse_packages(&text).expect(&text);
            assert_eq!(index.packages.len(), 1, "{text}");
            assert_eq!(index.packages[0].name, "good");
            let [err] = &index.unusable[..] else { panic!("{text}: {:?}", index.unusable) };
            assert!(err.to_string().contains(want), "error {err} should mention {want:?}");
        }
    }

    /// apt keeps a repeated field's last value, reads CRLF line ends, and stanzas apart.
    #[test]
    fn repeated_fields_and_crlf_read_as_apt_reads_them() {
        let twice = stanza("p", "Size: 99\n");
        assert_eq!(parse_packages(&twice).unwrap().packages[0].size, 99);
        let crlf = format!("{}\n{}", stanza("a", ""), stanza("b", "")).replace('\n', "\r\n");
        let names: Vec<String> = parse_packages(&crlf).unwrap().packages.into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn safe_relative_path_table() {
        use UnsafeReason::*;
        let cases: &[(&str, Result<(), UnsafeReason>)] = &[
            ("pool/main/h/hello/hello_1.0_amd64.deb", Ok(())),
            ("dists/bookworm/pve-no-subscription/binary-amd64/a.deb", Ok(())),
            ("file", Ok(())),
            ("a/..b/c..", Ok(())),
            ("a/.hidden", Ok(())),
            ("pool/main/l/lib+x/lib+x_1:2~3_amd64.deb", Ok(())),
            ("", Err(Empty)),
            ("/etc/passwd", Err(Absolute)),
            ("//x", Err(Absolute)),
            ("..", Err(ParentComponent)),
            ("../x", Err(ParentComponent)),
            ("a/../../x", Err(ParentComponent)),
            ("a/..", Err(ParentComponent)),
            (".", Err(CurrentComponent)),
            ("./a", Err(CurrentComponent)),
            ("a/./b", Err(CurrentComponent)),
            ("a//b", Err(EmptyComponent)),
            ("a/", Err(EmptyComponent)),
            ("a\\..\\b", Err(Backslash)),
            ("a\0b", Err(ControlCharacter)),
            ("a\nb", Err(ControlCharacter)),
            ("a\tb", Err(ControlCharacter)),
            ("a\x7fb", Err(ControlCharacter)),
            ("a\u{85}b", Err(ControlCharacter)),
        ];
        for (path, want) in cases {
            let got = safe_relative_path(path).map(|_| ()).map_err(|e| e.reason);
            assert_eq!(&got, want, "{path:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_packages_never_panics(text in "\\PC*") {
            let _ = parse_packages(&text);
        }

        #[test]
        fn parse_packages_never_panics_on_near_valid(extra in "[A-Za-z0-9 :./\n-]{0,200}") {
            let _ = parse_packages(&stanza("p", &extra));
        }

        #[test]
        fn safe_paths_never_escape(p in "[a-z./\\\\]{0,20}") {
            if let Ok(ok) = safe_relative_path(&p) {
                prop_assert!(!ok.starts_with('/'));
                prop_assert!(ok.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
            }
        }
    }
}
