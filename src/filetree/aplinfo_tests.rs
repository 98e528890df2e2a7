//! Tests of the aplinfo reader: each rule of `PVE::APLInfo::read_aplinfo_from_fh` (update mode)
//! that decides whether pveam accepts an index and where it fetches a template.

use super::*;
use proptest::prelude::*;

const INFOPAGE: &str = "Infopage: https://pve.proxmox.com/wiki/Linux_Container\n";

fn sha(byte: u8) -> String {
    hex::encode([byte; 64])
}

/// The news record as Proxmox publishes it first in `aplinfo-pve-8.dat`.
const NEWS: &str = "Package: pve-web-news\nDescription: Proxmox VE news\n \
                    See https://www.proxmox.com/en/news for what is new.\n\n";

/// A complete template record; `extra` goes before `Infopage` and the Description (last).
fn record(package: &str, os: &str, extra: &str) -> String {
    format!(
        "Package: {package}\nVersion: 12.7-1\nType: lxc\nOS: {os}\nSection: system\n\
         Maintainer: Proxmox Support Team <support@proxmox.com>\n{extra}{INFOPAGE}\
         Description: {package}\n A small system.\n\n"
    )
}

fn one(text: &str) -> Template {
    let got = parse_aplinfo(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(got.len(), 1, "{got:?}");
    got.into_iter().next().unwrap()
}

fn refused(text: &str) -> AplinfoError {
    match parse_aplinfo(text.as_bytes()) {
        Ok(t) => panic!("accepted {text:?}: {t:?}"),
        Err(e) => e,
    }
}

#[test]
fn news_record_is_not_a_template() {
    let text = format!("{NEWS}{}", record("debian-12-standard", "debian-12", "Location: system/d.tar.zst\n"));
    let got = parse_aplinfo(text.as_bytes()).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].stanza, got[0].name.as_str()), (2, "d.tar.zst"));
    assert!(parse_aplinfo(NEWS.as_bytes()).unwrap().is_empty());
}

#[test]
fn news_needs_a_long_description() {
    // pveam tests the continuation lines ($2), not the headline: this is an incomplete record.
    let err = refused("Package: pve-web-news\nDescription: only a headline\n");
    assert_eq!(err.stanza, 1);
    assert_eq!(err.package.as_deref(), Some("pve-web-news"));
    assert!(err.detail.contains("found incomplete appliance records"), "{err}");
    assert!(err.to_string().starts_with("aplinfo stanza 1 (Package: pve-web-news): "), "{err}");
}

#[test]
fn relative_location_is_kept_and_named_by_its_last_segment() {
    let sha512 = sha(1);
    let t = one(&record(
        "debian-12-standard",
        "debian-12",
        &format!(
            "Location: system/debian-12-standard_12.7-1_amd64.tar.zst\nmd5sum: {}\nsha512sum: {sha512}\n",
            "0".repeat(32)
        ),
    ));
    assert_eq!(t.name, "debian-12-standard_12.7-1_amd64.tar.zst");
    assert_eq!(t.package, "debian-12-standard");
    assert_eq!(t.location, Location::Relative("system/debian-12-standard_12.7-1_amd64.tar.zst".into()));
    assert_eq!(t.checksum, Some(Checksum::Sha512(sha512.parse().unwrap())), "sha512sum wins over md5sum");
}

#[test]
fn absolute_location() {
    let t =
        one(&record("tk", "debian-12", "Location: https://mirror.example.org/pve/debian-12-tk_18.0-1_amd64.tar.gz\n"));
    assert_eq!(
        t.location,
        Location::Absolute("https://mirror.example.org/pve/debian-12-tk_18.0-1_amd64.tar.gz".into())
    );
    assert_eq!(t.name, "debian-12-tk_18.0-1_amd64.tar.gz");
    assert_eq!(t.checksum, None);
    // `^[a-zA-Z]+://` only: anything else is relative, even with "://" inside.
    let t = one(&record("x", "debian-12", "Location: sub/a://b.tar.gz\n"));
    assert_eq!(t.location, Location::Relative("sub/a://b.tar.gz".into()));
    // Not a template archive: the whole Location is the name.
    assert_eq!(one(&record("x", "debian-12", "Location: sub/x.tgz\n")).name, "sub/x.tgz");
    assert_eq!(one(&record("x", "debian-12", "Location: sub/X.TAR.XZ\n")).name, "X.TAR.XZ");
}

#[test]
fn missing_location_is_derived() {
    // The doubled "<OS>-<OS>-" is collapsed, as in Proxmox's own package names.
    let t = one(&record("debian-12-standard", "debian-12", "Architecture: amd64\n"));
    assert_eq!(t.name, "debian-12-standard_12.7-1_amd64.tar.gz");
    assert_eq!(t.location, Location::Relative("system/debian-12-standard_12.7-1_amd64.tar.gz".into()));
    // Old records: no Architecture (i386), no Section (unknown), no doubled prefix.
    let text = format!("Package: mini\nVersion: 1.0-2\nType: openvz\nOS: centos-5\n{INFOPAGE}Description: old\n");
    let t = one(&text);
    assert_eq!(t.name, "centos-5-mini_1.0-2_i386.tar.gz");
    assert_eq!(t.location, Location::Relative("unknown/centos-5-mini_1.0-2_i386.tar.gz".into()));
    // Perl truthiness: "0" is as good as absent.
    let t = one(&record("p", "os", "Location: 0\nArchitecture: 0\n"));
    assert_eq!(t.location, Location::Relative("system/os-p_12.7-1_i386.tar.gz".into()));
}

#[test]
fn derived_name_follows_the_os_as_pveam_s_regex() {
    // `.` in the OS matches any character; the first match anywhere is collapsed.
    assert_eq!(
        collapse_doubled_os("alpine-3.20-alpine-3x20-x_1_amd64.tar.gz", "alpine-3.20").unwrap(),
        "alpine-3.20-x_1_amd64.tar.gz"
    );
    assert_eq!(collapse_doubled_os("a-b-a-a-c", "a").unwrap(), "a-b-a-c");
    assert_eq!(collapse_doubled_os("a-b", "a").unwrap(), "a-b");
    // Other metacharacters: pveam's result depends on Perl's regex engine (or it dies).
    let t = one(&record("p", "os+(1", ""));
    assert_eq!(t.location, Location::Unpredictable);
}

#[test]
fn incomplete_records_are_refused() {
    let full = record("p", "debian-12", "");
    for field in ["Package", "Type", "OS", "Version", "Infopage"] {
        let text: String =
            full.lines().filter(|l| !l.starts_with(&format!("{field}:"))).map(|l| format!("{l}\n")).collect();
        let err = refused(&text);
        assert!(err.detail.starts_with("found incomplete appliance records"), "{field}: {err}");
        assert!(err.detail.ends_with(&format!("(no {})", field.to_lowercase())), "{field}: {err}");
    }
    let err = refused(&format!("{NEWS}Package: bare\nDescription: no fields\n x\n"));
    assert_eq!((err.stanza, err.package.as_deref()), (2, Some("bare")));
}

#[test]
fn bad_type_and_version_are_refused() {
    let err = refused(&record("p", "debian-12", "").replace("Type: lxc", "Type: qemu"));
    assert!(err.detail.contains("unknown type 'qemu'"), "{err}");
    assert!(refused(&record("p", "debian-12", "").replace("Type: lxc", "Type: LXC")).detail.contains("unknown type"));
    for version in ["v1.0", "1.0 beta", "1.0_1", "-1"] {
        let err = refused(&record("p", "debian-12", "").replace("Version: 12.7-1", &format!("Version: {version}")));
        assert!(err.detail.contains(&format!("version = '{version}'")), "{version}: {err}");
    }
    for version in ["1", "20240908", "1.0+git~rc1:2-3"] {
        let t = one(&record("p", "os", "").replace("Version: 12.7-1", &format!("Version: {version}")));
        assert_eq!(t.name, format!("os-p_{version}_i386.tar.gz"));
    }
}

#[test]
fn md5_only_and_no_checksum() {
    let md5 = "0123456789abcdef0123456789ABCDEF";
    let t = one(&record("p", "os", &format!("Location: a.tar.gz\nMD5SUM: {md5}\n")));
    assert_eq!(t.checksum, Some(Checksum::Md5(md5.parse().unwrap())));
    assert_eq!(one(&record("p", "os", "Location: a.tar.gz\n")).checksum, None);
    // pveam would compare against these strings, and no download can match.
    let t = one(&record("p", "os", &format!("Location: a.tar.gz\nsha512sum: {md5}\nmd5sum: {md5}\n")));
    assert_eq!(t.checksum, Some(Checksum::Malformed { field: "sha512sum", value: md5.into() }));
}

#[test]
fn lenient_where_pveam_is() {
    // Unknown fields, any case of names, repeated fields (last wins), blanks around values,
    // a whitespace-only line inside a record, no blank line needed at the end.
    let text = format!(
        "PACKAGE: first\npackage: p\nversion:1\nTYPE:   lxc  \nOs: os\nX-Unknown: whatever\n \t\n\
         LOCATION: old.tar.gz\nLocation: sub/p.tar.zst\nSha512Sum: {}\n{INFOPAGE}description: headline\n long\n  text",
        sha(2)
    );
    let t = one(&text);
    assert_eq!((t.package.as_str(), t.name.as_str()), ("p", "p.tar.zst"));
    assert_eq!(t.location, Location::Relative("sub/p.tar.zst".into()));
    assert_eq!(t.checksum, Some(Checksum::Sha512(sha(2).parse().unwrap())));
    // Not UTF-8 (pveam reads bytes).
    let mut bytes = record("p", "os", "Maintainer: J\u{fc}rgen\n").into_bytes();
    let at = bytes.windows(2).position(|w| w == "ü".as_bytes()).unwrap();
    bytes.splice(at..at + 2, [0xfc]);
    assert_eq!(parse_aplinfo(&bytes).unwrap().len(), 1);
}

#[test]
fn records_are_perl_paragraphs() {
    let a = record("a", "os", "Location: a.tar.gz\n");
    let b = record("b", "os", "Location: b.tar.gz\n");
    let text = format!("\n\n{}\n\n\n{}", a.trim_end(), b.trim_end());
    let got = parse_aplinfo(text.as_bytes()).unwrap();
    assert_eq!(got.iter().map(|t| (t.stanza, t.name.as_str())).collect::<Vec<_>>(), [(1, "a.tar.gz"), (2, "b.tar.gz")]);
    // A line of blanks does not separate records: a's Description takes b along.
    let got = parse_aplinfo(format!("{}\n \n{}", a.trim_end(), b).as_bytes()).unwrap();
    assert_eq!(got.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a.tar.gz"]);
}

#[test]
fn a_record_must_end_with_its_description() {
    // pveam removes the record's final newline; only a Description matches without one.
    let text = "Package: p\nVersion: 1\nType: lxc\nOS: os\nDescription: d\n x\nInfopage: https://x/\n";
    // Here the Description's continuation takes "Infopage: …" with it: no infopage.
    assert!(refused(text).detail.contains("incomplete"));
    let text = "Package: p\nVersion: 1\nType: lxc\nOS: os\nDescription: d\nInfopage: https://x/\n";
    let err = refused(text);
    assert!(err.detail.contains("the last field of a record must be its Description"), "{err}");
    assert!(err.detail.contains("\"Infopage: https://x/\""), "{err}");
}

#[test]
fn the_last_record_of_a_name_wins() {
    let text = format!(
        "{}{}{}",
        record("p", "os", &format!("Location: system/p.tar.zst\nsha512sum: {}\n", sha(1))),
        record("q", "os", "Location: system/q.tar.zst\n"),
        record("p", "os", &format!("Location: https://elsewhere/p.tar.zst\nsha512sum: {}\n", sha(3))),
    );
    let got = parse_aplinfo(text.as_bytes()).unwrap();
    assert_eq!(
        got.iter().map(|t| (t.stanza, t.name.as_str())).collect::<Vec<_>>(),
        [(3, "p.tar.zst"), (2, "q.tar.zst")]
    );
    assert_eq!(got[0].location, Location::Absolute("https://elsewhere/p.tar.zst".into()));
}

#[test]
fn errors_are_one_line() {
    for text in ["Package: p\nbroken line without colon\nDescription: x\n y", "Package: p\nVersion: 1\nType: lxc\n\n"] {
        let err = refused(text).to_string();
        assert!(!err.contains('\n'), "{err:?}");
        assert!(err.contains("(Package: p)") && err.ends_with("(pveam update refuses the index)"), "{err}");
    }
}

proptest! {
    #[test]
    fn never_panics(text in proptest::collection::vec(
        prop_oneof![
            Just("Package: p\n"), Just("Version: 1\n"), Just("Type: lxc\n"), Just("OS: os\n"), Just("Infopage: i\n"),
            Just("Description: d\n"), Just(" more\n"), Just("\n"), Just(" \n"), Just(":"), Just("x"), Just("Location: "),
            Just("0"), Just("\r"), Just("\t"),
        ],
        0..40,
    )) {
        let _ = parse_aplinfo(text.concat().as_bytes());
    }
}
