//! Tests of the Release parser: real Proxmox and Debian Release files, every malformation it
//! refuses, apt's date forms and its leniencies, which indices a mirror wants, and property tests
//! that parsing never panics.

use super::*;
use proptest::prelude::*;

fn hex(seed: usize, len: usize) -> String {
    format!("{seed:0len$x}")
}

/// A Release text listing `paths` (size = 100 + index) under the given hash fields.
fn release_text(header: &str, algos: &[(&str, usize)], paths: &[&str]) -> String {
    let mut text = header.to_owned();
    for (field, len) in algos {
        text += &format!("{field}:\n");
        for (i, p) in paths.iter().enumerate() {
            text += &format!(" {} {:>8} {p}\n", hex(i, *len), 100 + i);
        }
    }
    text
}

const PROXMOX_HEADER: &str = "Origin: Proxmox\nLabel: Proxmox Debian Repository\n\
    Suite: stable\nCodename: bookworm\nDate: Sat, 09 Nov 2024 10:11:12 UTC\n\
    Architectures: amd64\nComponents: pve-no-subscription pvetest\n\
    Description: Proxmox VE Debian Repository\n";

const DEBIAN_HEADER: &str = "Origin: Debian\nLabel: Debian\nSuite: stable\nVersion: 12.8\n\
    Codename: bookworm\nChangelogs: https://metadata.ftp-master.debian.org/changelogs/@CHANGEPATH@_changelog\n\
    Date: Sat, 09 Nov 2024 10:11:12 UTC\nValid-Until: Mon, 09 Dec 2024 10:00:00 UTC\n\
    Acquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
    Architectures: all amd64 arm64 i386\nComponents: main contrib non-free-firmware non-free\n\
    Description: Debian 12.8 Released 09 November 2024\n";

const ALL_ALGOS: [(&str, usize); 4] = [("MD5Sum", 32), ("SHA1", 40), ("SHA256", 64), ("SHA512", 128)];

#[test]
fn parses_proxmox_release() {
    let paths = [
        "pve-no-subscription/binary-amd64/Packages",
        "pve-no-subscription/binary-amd64/Packages.gz",
        "pvetest/binary-amd64/Packages",
    ];
    let text = release_text(PROXMOX_HEADER, &[("MD5Sum", 32), ("SHA256", 64)], &paths);
    let r = parse_release(&text).unwrap();
    assert_eq!(r.origin.as_deref(), Some("Proxmox"));
    assert_eq!(r.codename.as_deref(), Some("bookworm"));
    assert_eq!(r.date, Some(1731147072));
    assert_eq!(r.valid_until, None);
    assert!(!r.acquire_by_hash);
    assert_eq!(r.architectures, ["amd64"]);
    assert_eq!(r.components, ["pve-no-subscription", "pvetest"]);
    let got: Vec<_> = r.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(got, [(paths[0], 100), (paths[1], 101), (paths[2], 102)]);
    assert_eq!(r.files[1].sha256.to_hex(), hex(1, 64));
    assert_eq!(r.files[1].md5, Some(hex(1, 32)));
    assert_eq!((r.files[1].sha1.as_ref(), r.files[1].sha512.as_ref()), (None, None));
}

#[test]
fn parses_debian_release_with_all_hashes() {
    let paths = ["main/binary-amd64/Packages.xz", "main/i18n/Translation-en.bz2"];
    let r = parse_release(&release_text(DEBIAN_HEADER, &ALL_ALGOS, &paths)).unwrap();
    assert!(r.acquire_by_hash);
    assert_eq!(r.valid_until, Some(1733738400));
    assert_eq!(r.components, ["main", "contrib", "non-free-firmware", "non-free"]);
    let f = &r.files[1];
    assert_eq!((f.path.as_str(), f.size), (paths[1], 101));
    assert_eq!(f.md5, Some(hex(1, 32)));
    assert_eq!(f.sha1, Some(hex(1, 40)));
    assert_eq!(f.sha512, Some(hex(1, 128)));
}

#[test]
fn hash_only_in_weak_list_is_ignored() {
    let text = format!("{PROXMOX_HEADER}MD5Sum:\n {} 5 only-md5\n SHA256:\n {} 5 a\n", hex(0, 32), hex(0, 64))
        .replace("\n SHA256", "\nSHA256");
    let r = parse_release(&text).unwrap();
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].md5, None);
}

#[test]
fn malformed_releases_are_rejected() {
    let good = release_text(PROXMOX_HEADER, &[("MD5Sum", 32), ("SHA256", 64)], &["a/Packages"]);
    let sha = hex(0, 64);
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty document"),
        (PROXMOX_HEADER.into(), "missing required field SHA256"),
        (good.replace(&format!(" {sha}"), &format!(" {sha} extra")), "expected `<digest> <size> <path>`"),
        (good.replace("100 a/Packages", "a/Packages"), "expected `<digest>"),
        (good.replace("100 a/Packages", "1e3 a/Packages"), "bad size"),
        (good.replace(&sha, &sha[1..]), "not 64 hex digits"),
        (good.replace(&sha, &"g".repeat(64)), "not 64 hex digits"),
        (good.replace("a/Packages", "../Packages"), "`..`"),
        (good.replace("a/Packages", "/etc/shadow"), "absolute"),
        (format!("{good} {sha} 1 a/Packages\n"), "listed twice"),
        (good.replacen("100 a/Packages", "999 a/Packages", 1), "size 999 but SHA256 says 100"),
        (good.replace("Valid-Until: ", "X: ").replace("Date: ", "Valid-Until: sometime\nDate: "), "field Valid-Until"),
        (good.replace("Origin: Proxmox", " Origin: Proxmox"), "syntax"),
    ];
    for (text, want) in cases {
        let err = parse_release(&text).expect_err(&text).to_string();
        assert!(err.contains(want), "error {err:?} should mention {want:?}");
    }
}

/// apt's RFC1123StrToTime (apt-pkg/contrib/strutl.cc), form by form.
#[test]
fn dates_as_apt_reads_them() {
    let t = 1731147072;
    let cases: &[(&str, Option<i64>)] = &[
        ("Sat, 09 Nov 2024 10:11:12 UTC", Some(t)),
        ("Sat,  9 Nov 2024 10:11:12 GMT", Some(t)),
        ("sat, 9 nov 2024 10:11:12 Z", Some(t)),
        ("Sat, 09 Nov 2024 10:11:12 +0000", Some(t)),
        ("Sat, 09 Nov 2024 10:11:12 -0000", Some(t)),
        ("Sat, 9 Nov 2024 9:11:12 UTC", Some(t - 3600)),
        ("Sat Nov  9 10:11:12 2024", Some(t)),
        ("Saturday, 09-Nov-24 10:11:12 GMT", Some(-1_424_612_928)),
        ("Thu, 01 Jan 1970 00:00:00 UTC", Some(0)),
        // apt rolls a day past the month's end over (strptime + timegm) …
        ("Sat, 31 Nov 2024 10:11:12 UTC", Some(t + 22 * 86_400)),
        // … and knows a month by its first letters, an unknown one as January (MonthConv).
        ("Sat, 09 Foo 2024 10:11:12 UTC", Some(1_707_473_472)),
        ("Sat, 09 Xyz 2024 10:11:12 UTC", Some(t - 305 * 86_400)),
        // What apt refuses: no weekday, other zones, other shapes.
        ("09 Nov 2024 10:11:12 UTC", None),
        ("Sat, 09 Nov 2024 12:41:12 +0230", None),
        ("Sat, 09 Nov 2024 05:11:12 -0500", None),
        ("Sat, 09 Nov 2024 10:11:12 UT", None),
        ("Sat, 09 Nov 2024 10:11:12 CEST", None),
        ("Sat, 09 Nov 2024 10:11:12 utc", None),
        ("Xyz, 09 Nov 2024 10:11:12 UTC", None),
        ("Sa, 09 Nov 2024 10:11:12 UTC", None),
        ("Sat 09 Nov 2024 10:11:12 UTC", None),
        ("", None),
        ("yesterday", None),
        ("Sat, 09 Nov 2024 10:11 UTC", None),
        ("Sat, 09 Nov 2024 10:11:12:13 UTC", None),
        ("Sat, 09 Nov 2024 10:11:12", None),
        ("Sat, 09 Nov 2024 25:11:12 UTC", None),
        ("Sat, 32 Nov 2024 10:11:12 UTC", None),
        ("Sat, 09 Nov 2024 10:11:12 UTC extra", None),
    ];
    for (input, want) in cases {
        assert_eq!(parse_apt_date(input), *want, "{input:?}");
    }
}

/// Where apt is lenient, so is the parser: a Date apt cannot read is ignored (apt warns
/// "Invalid 'Date' entry"), a stanza after the first is not read, a repeated field means its
/// last value, Acquire-By-Hash is any true-ish word.
#[test]
fn lenient_where_apt_is() {
    let good = release_text(PROXMOX_HEADER, &[("SHA256", 64)], &["a/Packages"]);
    let r = parse_release(&good.replace("Sat, 09 Nov 2024 10:11:12 UTC", "sometime")).unwrap();
    assert_eq!((r.date, r.invalid_date.as_deref()), (None, Some("sometime")));
    let r = parse_release(&format!("{good}\nOrigin: second\n")).unwrap();
    assert_eq!(r.origin.as_deref(), Some("Proxmox"));
    let r = parse_release(&good.replace("Origin: Proxmox\n", "Origin: Proxmox\nOrigin: Other\n")).unwrap();
    assert_eq!(r.origin.as_deref(), Some("Other"));
    assert_eq!(parse_release(&good.replace('\n', "\r\n")).unwrap().files.len(), 1);
    for (value, on) in [("yes", true), ("true", true), ("1", true), ("maybe", true), ("no", false), ("0", false)] {
        let text = good.replace("Origin: Proxmox\n", &format!("Origin: Proxmox\nAcquire-By-Hash: {value}\n"));
        assert_eq!(parse_release(&text).unwrap().acquire_by_hash, on, "{value}");
    }
    assert!(!parse_release(&good).unwrap().acquire_by_hash);
}

/// (path, wanted for components [main], architectures [amd64])
const WANTED_TABLE: &[(&str, bool)] = &[
    ("main/binary-amd64/Packages", true),
    ("main/binary-amd64/Packages.gz", true),
    ("main/binary-amd64/Packages.xz", true),
    ("main/binary-amd64/Release", true),
    ("main/binary-amd64/Packages.diff/Index", true),
    ("main/binary-all/Packages.xz", true),
    ("main/binary-all/Release", true),
    ("main/i18n/Translation-en", true),
    ("main/i18n/Translation-de.bz2", true),
    ("main/i18n/Index", true),
    ("main/Contents-amd64.gz", true),
    ("main/Contents-all", true),
    ("main/Contents-udeb-amd64.gz", true),
    ("main/dep11/Components-amd64.yml.gz", true),
    ("main/dep11/Components-all.yml.xz", true),
    ("main/dep11/icons-48x48.tar.gz", true),
    ("main/dep11/icons-64x64@2.tar.gz", true),
    ("main/cnf/Commands-amd64.xz", true),
    ("main/cnf/Commands-all", true),
    ("Contents-amd64.gz", true),
    ("Contents-all.gz", true),
    ("main/binary-arm64/Packages.xz", false),
    ("main/binary-amd64x/Packages", false),
    ("main/binary-amd64/Packagesfoo", false),
    ("main/binary-amd64/sub/Packages", false),
    ("main/binary-amd64/Packages.diff/T-2024-11-09-0813.25-F-2024-11-08-2014.13.gz", false),
    ("main/binary-amd64/Sources", false),
    ("main/i18n/Translation-", false),
    ("main/i18n/Translation-en.diff/Index", false),
    ("main/i18n/sub/Translation-en", false),
    ("main/Contents-arm64.gz", false),
    ("main/Contents-amd64.gz/x", false),
    ("main/Contents-udeb-arm64.gz", false),
    ("main/dep11/Components-arm64.yml.gz", false),
    ("main/dep11/icons-", false),
    ("main/cnf/Commands-arm64.xz", false),
    ("main/debian-installer/binary-amd64/Packages.xz", false),
    ("main/source/Sources.xz", false),
    ("main/Packages", false),
    ("contrib/binary-amd64/Packages.xz", false),
    ("mainline/binary-amd64/Packages", false),
    ("Contents-arm64.gz", false),
    ("Contents-udeb-amd64.gz", false),
    ("binary-amd64/Packages", false),
];

fn selected<'a>(r: &'a Release, comps: &[&str], archs: &[&str]) -> Vec<&'a str> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    r.wanted_indices(&owned(comps), &owned(archs)).iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn wanted_indices_table() {
    let paths: Vec<&str> = WANTED_TABLE.iter().map(|(p, _)| *p).collect();
    let r = parse_release(&release_text(DEBIAN_HEADER, &ALL_ALGOS, &paths)).unwrap();
    let want: Vec<&str> = WANTED_TABLE.iter().filter(|(_, w)| *w).map(|(p, _)| *p).collect();
    assert_eq!(selected(&r, &["main"], &["amd64"]), want);
    assert_eq!(selected(&r, &["main"], &["amd64", "all"]), want, "explicit `all` is no different");
    let arm = selected(&r, &["main", "contrib"], &["arm64"]);
    for p in ["main/binary-arm64/Packages.xz", "contrib/binary-amd64/Packages.xz", "main/binary-all/Release"] {
        assert_eq!(arm.contains(&p), p != "contrib/binary-amd64/Packages.xz", "{p}");
    }
    assert!(selected(&r, &[], &[]).iter().all(|p| p.starts_with("Contents-all")));
}

#[test]
fn wanted_indices_proxmox() {
    let paths = [
        "pve-no-subscription/binary-amd64/Packages",
        "pve-no-subscription/binary-amd64/Packages.gz",
        "pvetest/binary-amd64/Packages.gz",
        "pve-no-subscription/binary-arm64/Packages",
    ];
    let r = parse_release(&release_text(PROXMOX_HEADER, &[("SHA256", 64)], &paths)).unwrap();
    assert_eq!(selected(&r, &["pve-no-subscription"], &["amd64"]), &paths[..2]);
    assert_eq!(selected(&r, &["pve-no-subscription", "pvetest"], &["amd64"]), &paths[..3]);
}

proptest! {
    #[test]
    fn parse_release_never_panics(text in "\\PC*") {
        let _ = parse_release(&text);
    }

    #[test]
    fn parse_release_never_panics_on_near_valid(line in "[0-9a-f ./A-Za-z:+-]{0,120}") {
        let text = format!("{PROXMOX_HEADER}SHA256:\n {line}\n");
        let _ = parse_release(&text);
        let _ = parse_apt_date(&line);
    }
}
