//! Tests of the SHA256SUMS reader against `sha256sum -c`'s rules: accepted forms, escaped names,
//! improperly formatted lines, the BSD reversed form, names outside the tree, the warning line, and
//! a property test that parsing never panics.

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
    let text = format!("# comment\n{A}  proxmox-ve_8.2-1.iso\r\n{B} *./sub/pbs.iso\n\nSHA256 (bsd name.iso) = {A}\n");
    let (files, skipped) = parse(&text);
    let want: Vec<(String, Sha256)> =
        vec![("proxmox-ve_8.2-1.iso".into(), sha(A)), ("sub/pbs.iso".into(), sha(B)), ("bsd name.iso".into(), sha(A))];
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
        assert!(matches!(&sums.skipped[..], [Skipped { line: 1, reason: SkipReason::Unusable(_), .. }]), "{line:?}");
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
    for text in
        ["", "\n", "# only a comment\n", "\r\n\r\n", "garbage\n", "MD5 (x.iso) = 00112233445566778899aabbccddeeff\n"]
    {
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
