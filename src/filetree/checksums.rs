//! The checksum lists a file tree carries, as pure parsers: `SHA256SUMS` (ISO directories; GNU
//! `sha256sum` and BSD `SHA256 (name) = …` lines) and Proxmox's template index `aplinfo-*.dat`
//! (deb822 stanzas whose `Location` names a template and whose `sha512sum` is its digest).
//!
//! ```text
//! SHA256SUMS                                   aplinfo-pve-8.dat
//! 3f4c…9a  proxmox-ve_8.2-1.iso                Package: debian-12-standard
//! 81d0…77 *proxmox-backup-server_3.2-1.iso     Type: lxc
//!                                              Location: system/debian-12-standard_12.7-1_amd64.tar.zst
//!                                              sha512sum: 39f6…6d
//! ```
//!
//! A list is trusted input only after its signature verified (or when the tree has no key), so
//! a malformed line is an error rather than something to skip: a half-understood list must not
//! leave files silently unchecked.

use crate::apt::deb822::stanzas;
use crate::apt::{safe_relative_path, ParseError};
use crate::digest::Sha256;
use std::fmt;
use std::str::FromStr;

/// A SHA-512 digest (aplinfo's `sha512sum`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha512(pub [u8; 64]);

impl FromStr for Sha512 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| format!("not a sha512 hex digest: {s:?}"))?;
        Ok(Sha512(out))
    }
}

impl fmt::Display for Sha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha512({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("line {line}: {detail}")]
    Line { line: usize, detail: String },
    #[error(transparent)]
    Aplinfo(#[from] ParseError),
}

/// One template of an aplinfo index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// As written: relative to the index's directory, or an absolute URL.
    pub location: String,
    /// `None` when the stanza carries no `sha512sum` (the template is then not covered).
    pub sha512: Option<Sha512>,
}

/// `SHA256SUMS` → (name relative to the list's directory, digest), in file order.
pub fn parse_sha256sums(text: &str) -> Result<Vec<(String, Sha256)>, ListError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |detail: &str| ListError::Line { line: i + 1, detail: format!("{detail}: {line:?}") };
        let (name, hex) = match line.strip_prefix("SHA256 (") {
            Some(bsd) => bsd.rsplit_once(") = ").ok_or_else(|| bad("malformed BSD-style line"))?,
            None => {
                let (hex, rest) = line.split_once(' ').ok_or_else(|| bad("expected \"<sha256>  <name>\""))?;
                let name = rest.strip_prefix([' ', '*']).ok_or_else(|| bad("expected two spaces or \" *\""))?;
                (name, hex)
            }
        };
        let sha = Sha256::from_str(hex).map_err(|_| bad("not a sha256 digest"))?;
        let name = name.strip_prefix("./").unwrap_or(name);
        safe_relative_path(name).map_err(|e| bad(&e.to_string()))?;
        out.push((name.to_owned(), sha));
    }
    Ok(out)
}

/// An aplinfo index (`aplinfo-pve-8.dat`, already decompressed) → its templates.
pub fn parse_aplinfo(text: &str) -> Result<Vec<Template>, ListError> {
    let mut out = Vec::new();
    for stanza in stanzas(text, "aplinfo", Some("Package")) {
        let stanza = stanza?;
        let location = stanza.required("Location")?.to_owned();
        let sha512 = match stanza.single("sha512sum")? {
            Some(hex) => Some(Sha512::from_str(hex).map_err(|e| stanza.bad("sha512sum", e))?),
            None => None,
        };
        out.push(Template { location, sha512 });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "3f4c8a0f5b1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbc";
    const B: &str = "81d0aa00bb11cc22dd33ee44ff5566778899aabbccddeeff0011223344556677";

    #[test]
    fn sha256sums_lines() {
        let text =
            format!("# comment\n{A}  proxmox-ve_8.2-1.iso\r\n{B} *./sub/pbs.iso\n\nSHA256 (bsd name.iso) = {A}\n");
        let got = parse_sha256sums(&text).unwrap();
        let want: Vec<(String, Sha256)> = vec![
            ("proxmox-ve_8.2-1.iso".into(), A.parse().unwrap()),
            ("sub/pbs.iso".into(), B.parse().unwrap()),
            ("bsd name.iso".into(), A.parse().unwrap()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn sha256sums_refuses_what_it_does_not_understand() {
        let cases = [
            format!("{A} x.iso"),
            A.to_owned(),
            "zz  x.iso".to_owned(),
            format!("{A}  ../x.iso"),
            format!("{A}  /etc/passwd"),
            format!("{A}  "),
            format!("SHA256 (x.iso) {A}"),
            format!("MD5 (x.iso) = {A}"),
        ];
        for text in cases {
            assert!(matches!(parse_sha256sums(&text), Err(ListError::Line { line: 1, .. })), "{text:?}");
        }
    }

    #[test]
    fn aplinfo_stanzas() {
        let sha = "ab".repeat(64);
        let text = format!(
            "Package: debian-12-standard\nVersion: 12.7-1\nType: lxc\nOS: debian-12\nSection: system\n\
             Location: system/debian-12-standard_12.7-1_amd64.tar.zst\nmd5sum: 0b69\nsha512sum: {sha}\n\
             Description: Debian 12 Bookworm (standard)\n A small Debian Bookworm system.\n\n\
             Package: old\nLocation: https://example.org/old.tar.gz\n"
        );
        let got = parse_aplinfo(&text).unwrap();
        assert_eq!(
            got,
            vec![
                Template {
                    location: "system/debian-12-standard_12.7-1_amd64.tar.zst".into(),
                    sha512: Some(sha.parse().unwrap())
                },
                Template { location: "https://example.org/old.tar.gz".into(), sha512: None },
            ]
        );
    }

    #[test]
    fn aplinfo_errors() {
        let cases = [
            "Package: x\nsha512sum: 00\n".to_owned(),
            format!("Package: x\nLocation: a\nsha512sum: {}\n", "zz".repeat(64)),
            "Package: x\nLocation: a\nLocation: b\n".to_owned(),
        ];
        for text in cases {
            assert!(parse_aplinfo(&text).is_err(), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = parse_sha256sums(&text);
            let _ = parse_aplinfo(&text);
        }
    }
}
