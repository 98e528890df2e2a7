//! The checksum lists a file tree carries: `SHA256SUMS` (ISO directories; GNU `sha256sum` and
//! BSD `SHA256 (name) = …` lines) parsed here, and the digest types of Proxmox's template index
//! `aplinfo-*.dat` (`sha512sum`, `md5sum`), which [`super::aplinfo`] reads the way pveam does.
//!
//! ```text
//! SHA256SUMS
//! 3f4c…9a  proxmox-ve_8.2-1.iso
//! 81d0…77 *proxmox-backup-server_3.2-1.iso
//! ```
//!
//! A list is trusted input only after its signature verified (or when the tree has no key), so
//! a malformed line is an error rather than something to skip: a half-understood list must not
//! leave files silently unchecked.

use crate::apt::safe_relative_path;
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

/// An MD5 digest (aplinfo's `md5sum`, which pveam checks when a record has no `sha512sum`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Md5(pub [u8; 16]);

impl FromStr for Md5 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| format!("not an md5 hex digest: {s:?}"))?;
        Ok(Md5(out))
    }
}

impl fmt::Display for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("line {line}: {detail}")]
    Line { line: usize, detail: String },
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

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = parse_sha256sums(&text);
        }
    }
}
