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
//! `SHA256SUMS` is held to `sha256sum -c`, neither looser nor stricter: what it skips as
//! improperly formatted is skipped (and named in one warning line, so nothing is left unchecked
//! silently), what it fails on (no properly formatted line) fails the tree.

use crate::apt::safe_relative_path;
use crate::digest::Sha256;
use std::fmt;

pub use crate::digest::{Md5, Sha512};

/// Why a line of a `SHA256SUMS` names no file of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// What `sha256sum -c` calls an "improperly formatted SHA256 checksum line" and skips.
    Malformed,
    /// A properly formatted line whose name cannot be a file of the tree: `sha256sum -c` would
    /// open it outside the tree (absolute, `..` above the top) or a name no tree path can be.
    Unusable(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Malformed => f.write_str("improperly formatted"),
            SkipReason::Unusable(why) => f.write_str(why),
        }
    }
}

/// A line the tree does not use, with its number (from 1) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub text: String,
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {:?} ({})", self.line, self.text, self.reason)
    }
}

/// What a `SHA256SUMS` says: tree paths with their digests, in file order, and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    pub files: Vec<(String, Sha256)>,
    pub skipped: Vec<Skipped>,
}

impl Sums {
    /// The one warning line for the skipped lines of the list `name` at `url`, if any.
    pub fn warning(&self, name: &str, url: &dyn fmt::Display) -> Option<String> {
        let first = self.skipped.first()?;
        let malformed = self.skipped.iter().filter(|s| s.reason == SkipReason::Malformed).count();
        let unusable = self.skipped.len() - malformed;
        let lines = |n: usize| if n == 1 { "line" } else { "lines" };
        let mut kinds = Vec::new();
        if malformed > 0 {
            kinds.push(format!("{malformed} improperly formatted (sha256sum -c skips them too)"));
        }
        if unusable > 0 {
            kinds.push(format!("{unusable} naming no file the tree can hold (sha256sum -c would fail to read them)"));
        }
        let n = self.skipped.len();
        Some(format!("{name} at {url}: {n} {} skipped: {}; first, {first}", lines(n), kinds.join(", ")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// `sha256sum -c` fails on such a list.
    #[error("no properly formatted checksum lines found (sha256sum -c fails on it){}", first_of(.skipped))]
    NoProperLine { skipped: Vec<Skipped> },
    /// Properly formatted lines, but none names a file the tree can hold.
    #[error("no line names a file of the tree ({} skipped); first, {}", .skipped.len(), .skipped[0])]
    NoUsableLine { skipped: Vec<Skipped> },
}

fn first_of(skipped: &[Skipped]) -> String {
    match skipped.first() {
        Some(first) => {
            format!("; {} {} skipped, first, {first}", skipped.len(), if skipped.len() == 1 { "line" } else { "lines" })
        }
        None => "; it holds no checksum line at all".to_owned(),
    }
}

/// `SHA256SUMS` read as `sha256sum -c` reads it (GNU coreutils `digest_check`, `split_3`,
/// `bsd_split_3`, `filename_unescape` in src/digest.c, src/cksum.c since 9.9), its names turned
/// into tree paths by prefixing `dir` (the list's directory in the tree, `""` or `sub/`):
///
/// - a line whose first byte is `#` is a comment; one trailing CR is dropped; empty lines are
///   skipped; every other line that is not a checksum line is improperly formatted (skipped and
///   counted, not an error) — a list with no properly formatted line at all is an error;
/// - leading blanks (space, tab) are skipped; then a `\` means the name is escaped (`\\`, `\n`,
///   `\r`; any other escape, or a lone trailing `\`, makes the line improperly formatted);
/// - tagged: `SHA256`, at most one space, `(name)`, blanks, `=`, blanks, exactly 64 hex digits
///   (so `SHA256(name)= hex` too); the name ends at the line's last `)`;
/// - untagged: 64 hex digits, one blank, then ` ` (text) or `*` (binary) and the name — or, the
///   "BSD reversed" form of `sha256 -r`, the name right after the blank. The first line decides:
///   after an untagged line of one form, a line of the other is improperly formatted (one with
///   ` `/`*` after the blank counts as a reversed line whose name starts with that character);
/// - everything to the end of the line is the name, blanks included; an unescaped name ends at
///   a NUL byte (C string), an escaped one with a NUL is improperly formatted.
///
/// A properly formatted line naming a file the tree cannot hold (absolute, climbing above the
/// tree, not UTF-8, a control character or backslash, no name) is skipped with its reason;
/// `sha256sum -c` would read a file outside the mirror, or fail to. `.`, empty and `..`
/// components are resolved as the kernel resolves them in the mirrored tree.
pub fn parse_sha256sums(text: &[u8], dir: &str) -> Result<Sums, ListError> {
    let mut sums = Sums::default();
    let mut form = Form::Undecided;
    let mut properly_formatted = false;
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if text.ends_with(b"\n") {
        lines.pop();
    }
    for (i, raw) in lines.into_iter().enumerate() {
        if raw.first() == Some(&b'#') {
            continue;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let skip = |reason| Skipped { line: i + 1, text: String::from_utf8_lossy(line).into_owned(), reason };
        let Some((name, sha)) = split_3(line, &mut form) else {
            sums.skipped.push(skip(SkipReason::Malformed));
            continue;
        };
        properly_formatted = true;
        match tree_path(dir, &name) {
            Ok(path) => sums.files.push((path, sha)),
            Err(why) => sums.skipped.push(skip(SkipReason::Unusable(why))),
        }
    }
    if !properly_formatted {
        return Err(ListError::NoProperLine { skipped: sums.skipped });
    }
    if sums.files.is_empty() {
        return Err(ListError::NoUsableLine { skipped: sums.skipped });
    }
    Ok(sums)
}

/// coreutils' `bsd_reversed`: which untagged form the list uses, set by its first untagged line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Undecided,
    /// `<hex>  name` / `<hex> *name`.
    Standard,
    /// `<hex> name` (`sha256 -r`).
    Reversed,
}

/// Length of a SHA-256 digest in hex.
const HEX_LEN: usize = 64;

/// `c_isblank`.
fn blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One checksum line → (raw name, digest), or `None` when improperly formatted (`split_3`).
fn split_3(s: &[u8], form: &mut Form) -> Option<(Vec<u8>, Sha256)> {
    let mut i = s.iter().position(|&b| !blank(b)).unwrap_or(s.len());
    let escaped = s.get(i) == Some(&b'\\');
    if escaped {
        i += 1;
    }
    let s = &s[i..];
    if let Some(tagged) = s.strip_prefix(b"SHA256") {
        let tagged = tagged.strip_prefix(b" ").unwrap_or(tagged);
        if let Some(rest) = tagged.strip_prefix(b"(") {
            return bsd_split_3(rest, escaped);
        }
        // coreutils ≥ 9.2 retries the line as untagged, older ones reject it: the same answer,
        // as an untagged line starts with hex digits.
    }
    // MIN_DIGEST_LINE_LENGTH: the digest, a blank, a name of at least one byte.
    if s.len() < HEX_LEN + 2 + usize::from(s.first() == Some(&b'\\')) {
        return None;
    }
    let end = s.iter().position(|&b| b == 0 || blank(b)).unwrap_or(s.len());
    if end == s.len() {
        return None;
    }
    let sha = digest(&s[..end])?;
    let rest = &s[end + 1..];
    let name = if rest.len() == 1 || !matches!(rest.first(), Some(b' ' | b'*')) {
        if *form == Form::Standard {
            return None;
        }
        *form = Form::Reversed;
        rest
    } else if *form != Form::Reversed {
        *form = Form::Standard;
        &rest[1..]
    } else {
        rest
    };
    Some((file_name(name, escaped)?, sha))
}

/// The rest of a tagged line after `SHA256 (` (`bsd_split_3`).
fn bsd_split_3(s: &[u8], escaped: bool) -> Option<(Vec<u8>, Sha256)> {
    let close = s.iter().rposition(|&b| b == b')')?;
    let name = file_name(&s[..close], escaped)?;
    let rest = &s[close + 1..];
    let rest = &rest[rest.iter().position(|&b| !blank(b)).unwrap_or(rest.len())..];
    let rest = rest.strip_prefix(b"=")?;
    let rest = &rest[rest.iter().position(|&b| !blank(b)).unwrap_or(rest.len())..];
    Some((name, digest(rest)?))
}

/// Exactly 64 hex digits, either case (`valid_digits`), and nothing else.
fn digest(hex: &[u8]) -> Option<Sha256> {
    if hex.len() != HEX_LEN || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(Sha256(out))
}

/// The name as `sha256sum` opens it: unescaped (`filename_unescape`), or up to a NUL byte.
fn file_name(raw: &[u8], escaped: bool) -> Option<Vec<u8>> {
    if !escaped {
        return Some(raw.split(|&b| b == 0).next().unwrap_or_default().to_vec());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(match bytes.next()? {
                b'n' => b'\n',
                b'r' => b'\r',
                b'\\' => b'\\',
                _ => return None,
            }),
            0 => return None,
            _ => out.push(b),
        }
    }
    Some(out)
}

/// A name relative to the list's directory `dir` → the tree path it opens, or why it is none.
fn tree_path(dir: &str, name: &[u8]) -> Result<String, String> {
    let name = std::str::from_utf8(name).map_err(|_| "a name that is not UTF-8, which no tree path is".to_owned())?;
    if name.is_empty() {
        return Err("no name".to_owned());
    }
    if name.starts_with('/') {
        return Err("an absolute name, a file outside the tree".to_owned());
    }
    if name.ends_with('/') {
        return Err("a name ending in /, a directory".to_owned());
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(|| "a name climbing out of the tree with ..".to_owned())?;
            }
            c => parts.push(c),
        }
    }
    let path = parts.join("/");
    safe_relative_path(&path).map_err(|e| format!("a name no tree path can be: {e}"))?;
    Ok(path)
}

#[cfg(test)]
#[path = "checksums_tests.rs"]
mod tests;
