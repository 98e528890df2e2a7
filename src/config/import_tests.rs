//! Tests of `config import`: a full proxmox-offline-mirror config converted, subscription
//! sections, what pmirror-fs refuses, value syntax (booleans, lists), the notes on mixed fsync and
//! shared suites, and a property test that importing never panics.

use super::*;
use proptest::prelude::*;

const SAMPLE: &str = "\
mirror: pve_bookworm
\tarchitectures amd64
\tarchitectures all
\tbase-dir /var/lib/proxmox-offline-mirror/mirrors
\tignore-errors false
\tkey-path /etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg
\trepository deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest
\tskip-packages *-dbgsym
\tskip-packages *-dbg
\tskip-sections debug
\tsync true
\tuse-subscription pve
\tverify false

# export medium
medium: usb
\tmirrors pve_bookworm
\tmountpoint /mnt/usb
\tsync true
\tverify true

subscription: pve4b-0123456789
\tdescription node 1 of the cluster
\tinfo eyJzdGF0dXMiOiJhY3RpdmUifQ==
\tserver-id 0123456789ABCDEF0123456789abcdef

subscription: pve4b-9876543210
\tserver-id FEDCBA9876543210FEDCBA9876543210
";

#[test]
fn converts_mirrors_and_reports_the_rest() {
    let got = import_pom(SAMPLE, "pom.cfg").expect("imports");
    assert_eq!(got.mirrors, ["pve_bookworm"]);
    let toml: toml::Table = got.toml.parse().expect("valid TOML");
    let m = &toml["mirror"].as_array().expect("mirrors")[0];
    assert_eq!(m["architectures"].as_array().map(Vec::len), Some(2));
    assert_eq!(m["skip-packages"].as_array().map(Vec::len), Some(2));
    assert_eq!(m["verify"].as_bool(), Some(false));
    assert_eq!(toml["store"]["fsync"].as_bool(), Some(true));
    assert_eq!(m["use-subscription"].as_str(), Some("pve"));
    let subs = toml["subscription"].as_array().expect("subscriptions");
    let keys: Vec<_> = subs.iter().map(|s| (s["key"].as_str(), s["server-id"].as_str())).collect();
    assert_eq!(
        keys,
        [
            (Some("pve4b-0123456789"), Some("0123456789ABCDEF0123456789abcdef")),
            (Some("pve4b-9876543210"), Some("FEDCBA9876543210FEDCBA9876543210"))
        ]
    );
    assert_eq!(got.subscriptions, 2);
    assert!(got.toml.contains("# node 1 of the cluster\n[[subscription]]"), "{}", got.toml);
    assert!(got.toml.contains("chmod 600"), "{}", got.toml);
    for needle in ["medium \"usb\"", "base-dir", "2 pve keys: pmirror-fs sends the first (pve4b-01…(masked))"] {
        assert!(got.notes.iter().any(|n| n.contains(needle)), "no note with {needle}: {:?}", got.notes);
    }
    let notes = got.notes.join("\n");
    assert!(!notes.contains("0123456789") && !notes.contains("9876543210"), "a note quotes a key: {notes}");
}

#[test]
fn subscription_sections_and_use_subscription() {
    let mirror = "mirror: a\n\trepository deb https://h/debian/pbs s c\n\tkey-path /k\n";
    let sid = "0123456789abcdef0123456789abcdef";
    let cases: &[(String, &str)] = &[
        (format!("{mirror}\tuse-subscription ceph\n"), "use-subscription: \"ceph\" is not a subscription product"),
        (format!("{mirror}subscription: pve-1234567890\n\tserver-id {sid}\n"), "not a Proxmox subscription key"),
        (format!("{mirror}subscription: pbsc-1234567890\n"), "has no server-id"),
        (format!("{mirror}subscription: pbsc-1234567890\n\tserver-id 12\n"), "server-id must be 32"),
    ];
    for (text, needle) in cases {
        let err = import_pom(text, "x.cfg").expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
        assert!(!err.contains("1234567890"), "the error quotes the key: {err}");
    }
    let unmatched = import_pom(&format!("{mirror}\tuse-subscription pbs\n"), "x.cfg").expect("imports");
    assert!(unmatched.notes.iter().any(|n| n.contains("no pbs key was found")), "{:?}", unmatched.notes);
    assert!(unmatched.toml.contains("use-subscription = \"pbs\""), "{}", unmatched.toml);
}

#[test]
fn rejects_what_pmirror_fs_cannot_use() {
    let cases: &[(&str, &str)] = &[
        ("\tarchitectures amd64\n", "before the first"),
        ("mirror x\n", "expected a `type: id`"),
        ("mirror: a\n\tkey-path /k\n", "no repository line"),
        ("mirror: a\n\trepository deb http://h/d bookworm main\n", "no key-path"),
        ("mirror: a/b\n\trepository deb http://h/d s c\n\tkey-path /k\n", "contains '/'"),
        ("mirror: a\n\trepository deb ftp://h/d s c\n\tkey-path /k\n", "scheme"),
        ("mirror: a\n\trepository deb http://h/d s c\n\tkey-path /k\n\tarchitectures sparc\n", "sparc"),
        ("mirror: a\n\trepository deb http://h/d s c\n\tkey-path /k\n\tverify maybe\n", "not a boolean"),
        ("mirror: a\n\trepository deb http://h/d s c\n\tkey-path /k\nmirror: a\n", "duplicate id"),
        ("medium: usb\n\tmountpoint /mnt\n", "no `mirror:` section"),
    ];
    for (text, needle) in cases {
        let err = import_pom(text, "x.cfg").expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
}

#[test]
fn values_lists_and_flags() {
    let cases: &[(&str, Option<bool>)] = &[("1", Some(true)), ("off", Some(false)), ("TRUE", Some(true)), ("", None)];
    for (text, want) in cases {
        assert_eq!(boolean(text), *want, "{text:?}");
    }
    assert_eq!(list("amd64, all arm64").collect::<Vec<_>>(), ["amd64", "all", "arm64"]);
    assert_eq!(strip_options("deb [arch=amd64] http://h/d s c"), ("deb http://h/d s c".into(), true));
    for text in ["plain", "a\"b\\c", "it's", "x'\"y"] {
        let doc: toml::Table = format!("v = {}", quote(text)).parse().expect("valid TOML");
        assert_eq!(doc["v"].as_str(), Some(text));
    }
}

#[test]
fn mixed_sync_and_shared_suites_are_noted() {
    let text = "mirror: a\n\trepository deb http://h/d s main\n\tkey-path /k\n\tsync false\n\
                mirror: b\n\trepository deb http://h/d s test\n\tkey-path /k\n\tsync true\n";
    let got = import_pom(text, "x.cfg").expect("imports");
    assert!(got.notes.iter().any(|n| n.contains("mirrors a, b share")), "{:?}", got.notes);
    assert!(got.notes.iter().any(|n| n.contains("fsync = true")), "{:?}", got.notes);
    assert!(got.notes.iter().any(|n| n.contains("using amd64 and all")), "{:?}", got.notes);
}

proptest! {
    #[test]
    fn import_never_panics(text in "(?s)[ \\t#a-z:\\-_./\\n\\[\\]=,0-9]{0,400}") {
        if let Ok(got) = import_pom(&text, "x.cfg") {
            prop_assert!(got.toml.parse::<toml::Table>().is_ok(), "invalid TOML: {}", got.toml);
        }
    }
}
