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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "3f4c8a0f5b1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbc";
    const B: &str = "81d0aa00bb11cc22dd33ee44ff5566778899aabbccddeeff0011223344556677";

    fn sha(hex: &str) -> Sha256 {
        hex.parse().unwrap()
    }

    /// The files of `text` (list at the tree's top), and the numbers of the skipped lines.
    fn parse(text: &str) -> (Vec<(String, Sha256)>, Vec<usize>) {
        let sums = parse_sha256sums(text.as_bytes(), "").unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (sums.files, sums.skipped.iter().map(|s| s.line).collect())
    }

    /// The one name `line` gives, next to a valid line so the list is usable.
    fn name_of(line: &str) -> Option<String> {
        let text = format!("{line}\n{B}  other.iso\n");
        let (files, _) = parse(&text);
        files.into_iter().find(|(n, _)| n != "other.iso").map(|(n, _)| n)
    }

    #[test]
    fn sha256sums_lines() {
        let text =
            format!("# comment\n{A}  proxmox-ve_8.2-1.iso\r\n{B} *./sub/pbs.iso\n\nSHA256 (bsd name.iso) = {A}\n");
        let (files, skipped) = parse(&text);
        let want: Vec<(String, Sha256)> = vec![
            ("proxmox-ve_8.2-1.iso".into(), sha(A)),
            ("sub/pbs.iso".into(), sha(B)),
            ("bsd name.iso".into(), sha(A)),
        ];
        assert_eq!(files, want);
        assert!(skipped.is_empty());
    }

    /// What `split_3` accepts: leading blanks, tab or space as the one blank, ` *` binary,
    /// either case of hex, the name to the end of the line (blanks included), the tagged forms.
    #[test]
    fn accepted_forms() {
        let upper = A.to_uppercase();
        let cases: Vec<(String, &str)> = vec![
            (format!("  \t{A}  lead.iso"), "lead.iso"),
            (format!("{A}\t tab.iso"), "tab.iso"),
            (format!("{A}\t*tabbin.iso"), "tabbin.iso"),
            (format!("{A} *bin.iso"), "bin.iso"),
            (format!("{upper}  upper.iso"), "upper.iso"),
            (format!("{A}  trailing.iso "), "trailing.iso "),
            (format!("{A}   lead space.iso"), " lead space.iso"),
            (format!("SHA256 (a) = {A}"), "a"),
            (format!("SHA256(openssl.iso)= {A}"), "openssl.iso"),
            (format!("SHA256 (x)=\t{A}"), "x"),
            (format!("  SHA256 (blank lead) = {A}"), "blank lead"),
            (format!("SHA256 (with (parens) = x) = {A}"), "with (parens) = x"),
            (format!("{A}  a\0ignored"), "a"),
            (format!("{A}  ./a//b/./c.iso"), "a/b/c.iso"),
            (format!("{A}  sub/../up.iso"), "up.iso"),
        ];
        for (line, want) in cases {
            assert_eq!(name_of(&line).as_deref(), Some(want), "{line:?}");
        }
    }

    /// A leading `\` means an escaped name: `\\`, `\n` and (coreutils ≥ 9.0) `\r` are decoded.
    /// Decoded backslashes and control characters name no tree path, so those lines are
    /// skipped as unusable, not improperly formatted.
    #[test]
    fn escaped_names() {
        assert_eq!(name_of(&format!("\\{A}  plain.iso")).as_deref(), Some("plain.iso"));
        assert_eq!(name_of(&format!("\\SHA256 (tagged.iso) = {A}")).as_deref(), Some("tagged.iso"));
        assert_eq!(name_of(&format!("  \\{A}  lead.iso")).as_deref(), Some("lead.iso"));
        let decoded: [(&str, &[u8]); 3] = [("a\\\\b", b"a\\b"), ("a\\nb", b"a\nb"), ("a\\rb", b"a\rb")];
        for (escaped, raw) in decoded {
            assert_eq!(file_name(escaped.as_bytes(), true).as_deref(), Some(raw), "{escaped:?}");
            let sums = parse_sha256sums(format!("\\{A}  {escaped}\n{B}  b\n").as_bytes(), "").unwrap();
            assert_eq!(sums.skipped.len(), 1, "{escaped:?}");
            assert!(matches!(sums.skipped[0].reason, SkipReason::Unusable(_)), "{escaped:?}");
        }
        // Unescaped, a backslash is a byte of the name.
        assert_eq!(file_name(b"a\\nb", false).as_deref(), Some(&b"a\\nb"[..]));
        for bad in ["a\\tb", "a\\", "a\\\\\\", "a\0b"] {
            assert_eq!(file_name(bad.as_bytes(), true), None, "{bad:?}");
        }
    }

    /// Without --strict, `sha256sum -c` warns about improperly formatted lines and ignores them.
    #[test]
    fn improperly_formatted_lines_are_skipped() {
        let cases = [
            A.to_owned(),
            format!("{A} "),
            format!("{A}x  x.iso"),
            format!("{}  x.iso", &A[..63]),
            format!("{A}0  x.iso"),
            "zz  x.iso".to_owned(),
            "   ".to_owned(),
            " # indented, no comment".to_owned(),
            format!("SHA256 (x.iso) {A}"),
            format!("SHA256 (x.iso) = {A} "),
            format!("SHA256 (x.iso) = {}", &A[..63]),
            format!("SHA256  (two spaces) = {A}"),
            format!("SHA256 x.iso = {A}"),
            format!("MD5 (x.iso) = {}", &A[..32]),
            format!("SHA512 (x.iso) = {A}{A}"),
            format!("SHA1 (x.iso) = {}", &A[..40]),
            format!("\\{A}  bad\\escape"),
            format!("\\SHA256 (bad\\) = {A}"),
        ];
        for line in cases {
            let text = format!("{B}  good.iso\n{line}\n");
            let sums = parse_sha256sums(text.as_bytes(), "").unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(sums.files, vec![("good.iso".to_owned(), sha(B))], "{line:?}");
            let want = Skipped { line: 2, text: line.clone(), reason: SkipReason::Malformed };
            assert_eq!(sums.skipped, vec![want], "{line:?}");
        }
    }

    /// `hex name` (one blank, `sha256 -r`) is the "BSD reversed" form; the first untagged line
    /// decides the form, and a line of the other form is then improperly formatted.
    #[test]
    fn bsd_reversed_form() {
        let (files, skipped) = parse(&format!("{A} one.iso\n{B}\ttwo.iso\n{A}  *three\n{B}  std.iso\n"));
        let want: Vec<(String, Sha256)> = vec![
            ("one.iso".into(), sha(A)),
            ("two.iso".into(), sha(B)),
            (" *three".into(), sha(A)),
            (" std.iso".into(), sha(B)),
        ];
        assert_eq!(files, want);
        assert!(skipped.is_empty());
        let (files, skipped) = parse(&format!("{A}  std.iso\n{B} reversed.iso\nSHA256 (tag) = {A}\n"));
        assert_eq!(files, vec![("std.iso".to_owned(), sha(A)), ("tag".to_owned(), sha(A))]);
        assert_eq!(skipped, vec![2]);
        // One byte after the blank is a reversed name, whatever it is.
        assert_eq!(name_of(&format!("{A} *")).as_deref(), Some("*"));
    }

    /// `#` only in the first byte is a comment; CRLF loses its CR; line numbers count them all.
    #[test]
    fn comments_crlf_and_line_numbers() {
        let text = format!("#c\r\n\r\n{A}  a.iso\r\nbroken\r\n{B}  b.iso\r\r\n{B}  c.iso");
        let sums = parse_sha256sums(text.as_bytes(), "").unwrap();
        assert_eq!(sums.files, vec![("a.iso".to_owned(), sha(A)), ("c.iso".to_owned(), sha(B))]);
        let lines: Vec<(usize, &SkipReason)> = sums.skipped.iter().map(|s| (s.line, &s.reason)).collect();
        assert!(matches!(lines[..], [(4, SkipReason::Malformed), (5, SkipReason::Unusable(_))]), "{lines:?}");
        assert_eq!(sums.skipped[1].text, format!("{B}  b.iso\r"));
    }

    /// Properly formatted lines naming what the tree cannot hold: skipped with their reason.
    #[test]
    fn names_outside_the_tree_are_skipped() {
        let cases = [
            format!("{A}  ../x.iso"),
            format!("{A}  a/../../x.iso"),
            format!("{A}  /etc/passwd"),
            format!("SHA256 () = {A}"),
            format!("{A}  dir/"),
            format!("{A}  \0hidden"),
            format!("{A}  tab\tname"),
        ];
        for line in cases {
            let sums = parse_sha256sums(format!("{line}\n{B}  b.iso\n").as_bytes(), "").unwrap();
            assert_eq!(sums.files, vec![("b.iso".to_owned(), sha(B))], "{line:?}");
            assert!(
                matches!(&sums.skipped[..], [Skipped { line: 1, reason: SkipReason::Unusable(_), .. }]),
                "{line:?}"
            );
        }
        let latin1 = [A.as_bytes(), b"  caf\xe9.iso\n", B.as_bytes(), b"  b.iso\n"].concat();
        let sums = parse_sha256sums(&latin1, "").unwrap();
        assert!(matches!(&sums.skipped[..], [Skipped { line: 1, reason: SkipReason::Unusable(_), .. }]));
    }

    /// Names are relative to the list's directory; `..` may climb to the tree's top, no further.
    #[test]
    fn names_are_relative_to_the_list() {
        let text = format!("{A}  x.iso\n{A}  ../top.iso\n{A}  ../../out.iso\n");
        let sums = parse_sha256sums(text.as_bytes(), "sub/").unwrap();
        assert_eq!(sums.files, vec![("sub/x.iso".to_owned(), sha(A)), ("top.iso".to_owned(), sha(A))]);
        assert_eq!(sums.skipped.iter().map(|s| s.line).collect::<Vec<_>>(), vec![3]);
    }

    /// "no properly formatted checksum lines found": `sha256sum -c` fails on such a list.
    #[test]
    fn a_list_without_a_proper_line_fails() {
        for text in [
            "",
            "\n",
            "# only a comment\n",
            "\r\n\r\n",
            "garbage\n",
            "MD5 (x.iso) = 00112233445566778899aabbccddeeff\n",
        ] {
            let err = parse_sha256sums(text.as_bytes(), "").unwrap_err();
            assert!(matches!(err, ListError::NoProperLine { .. }), "{text:?}");
            assert!(err.to_string().starts_with("no properly formatted checksum lines found"), "{err}");
        }
        let err = parse_sha256sums(b"garbage\n", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no properly formatted checksum lines found (sha256sum -c fails on it); 1 line skipped, first, line 1: \
             \"garbage\" (improperly formatted)"
        );
        let err = parse_sha256sums(format!("{A}  ../x.iso\n").as_bytes(), "").unwrap_err();
        assert!(matches!(err, ListError::NoUsableLine { .. }), "{err}");
        assert!(err.to_string().contains("line 1: \"") && err.to_string().contains("climbing out"), "{err}");
    }

    #[test]
    fn one_warning_line_per_list() {
        let text = format!("{A}  a.iso\nbroken\n{B}  ../out.iso\nalso broken\n");
        let sums = parse_sha256sums(text.as_bytes(), "").unwrap();
        assert_eq!(
            sums.warning("SHA256SUMS", &"http://h/iso/SHA256SUMS").as_deref(),
            Some(
                "SHA256SUMS at http://h/iso/SHA256SUMS: 3 lines skipped: 2 improperly formatted (sha256sum -c skips \
                 them too), 1 naming no file the tree can hold (sha256sum -c would fail to read them); first, line 2: \
                 \"broken\" (improperly formatted)"
            )
        );
        let clean = parse_sha256sums(format!("{A}  a.iso\n").as_bytes(), "").unwrap();
        assert_eq!(clean.warning("SHA256SUMS", &"u"), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,300}") {
            let _ = parse_sha256sums(text.as_bytes(), "");
        }

        #[test]
        fn lines_never_panic(line in "[ \t\\\\*()=#\r\0a-fA-F0-9SHA25./x-]{0,90}", dir in "(|sub/|a/b/)") {
            let text = format!("{line}\n{line}\n");
            if let Ok(sums) = parse_sha256sums(text.as_bytes(), &dir) {
                for (path, _) in &sums.files {
                    prop_assert!(safe_relative_path(path).is_ok(), "{path:?}");
                }
            }
        }
    }
}
