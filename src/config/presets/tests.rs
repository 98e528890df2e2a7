//! Unit tests of the Proxmox presets and of adding presets to a config's text.

use super::*;

#[test]
fn specs_resolve_to_proxmox_urls_and_keys() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "pve:bookworm:no-subscription",
            "http://download.proxmox.com/debian/pve",
            "pve-no-subscription",
            "proxmox-release-bookworm.gpg",
        ),
        (
            "pve:bookworm",
            "http://download.proxmox.com/debian/pve",
            "pve-no-subscription",
            "proxmox-release-bookworm.gpg",
        ),
        (
            "pbs:bullseye:enterprise",
            "https://enterprise.proxmox.com/debian/pbs",
            "pbs-enterprise",
            "proxmox-release-bullseye.gpg",
        ),
        ("pmg:buster:test", "http://download.proxmox.com/debian/pmg", "pmgtest", "proxmox-ve-release-6.x.gpg"),
        (
            "pbs-client:bookworm:no-subscription",
            "http://download.proxmox.com/debian/pbs-client",
            "main",
            "proxmox-release-bookworm.gpg",
        ),
        (
            "ceph-quincy:bullseye:no-subscription",
            "http://download.proxmox.com/debian/ceph-quincy",
            "main",
            "proxmox-release-bullseye.gpg",
        ),
        (
            "ceph-squid:bookworm:enterprise",
            "https://enterprise.proxmox.com/debian/ceph-squid",
            "enterprise",
            "proxmox-release-bookworm.gpg",
        ),
    ];
    for (spec, url, component, key) in cases {
        let p: Preset = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!((p.url.as_str(), p.components), (*url, &[*component][..]), "{spec}");
        assert_eq!(p.key, format!("/etc/apt/trusted.gpg.d/{key}"), "{spec}");
        let download = KeySource::Download(format!("https://enterprise.proxmox.com/debian/{key}"));
        assert_eq!(p.key_source, download, "{spec}");
    }
    let bad: &[(&str, &str)] = &[
        ("pve", "has suites"),
        ("pve:sid", "has suites bookworm, bullseye, buster"),
        ("pbs-client:bookworm:enterprise", "has channels no-subscription"),
        ("ceph-reef:bullseye", "has suites bookworm"),
        ("pve:bookworm:test:x", "PRODUCT:SUITE:CHANNEL"),
        ("foo:bookworm", "products are pve, pbs"),
    ];
    for (spec, hint) in bad {
        let err = spec.parse::<Preset>().expect_err(spec).to_string();
        assert!(err.contains(hint), "{spec}: {err}");
    }
}

#[test]
fn every_preset_is_a_valid_mirror() {
    let all = all();
    assert!(all.len() >= 30, "{} presets", all.len());
    for p in &all {
        let line = format!("deb {} {} {}", p.url, p.suite, p.components.join(" "));
        line.parse::<Repository>().unwrap_or_else(|e| panic!("{}: {e}", p.spec()));
        validate::id(&p.default_id()).unwrap_or_else(|e| panic!("{}: {e}", p.spec()));
        assert_eq!(p.spec().parse::<Preset>().as_ref(), Ok(p));
    }
}

fn preset(spec: &str) -> Preset {
    spec.parse().expect("preset")
}

#[test]
fn adding_appends_extends_or_leaves_alone() {
    let start = "# my mirror\n[store]\ndir = \"/srv/store\" # keep\n";
    let opts = AddOptions::default();
    let (text, added) = add(start, &preset("pve:bookworm:no-subscription"), &opts).expect("add");
    assert_eq!(added, Added::NewMirror { id: "pve_bookworm".into() });
    assert!(text.starts_with(start), "the existing text changed:\n{text}");
    let (commented, _) = add("[sync]\n# trailing comment", &preset("pbs:bookworm"), &opts).expect("add");
    assert!(commented.ends_with('\n') && commented.contains("# trailing comment"), "{commented:?}");
    let (text, added) = add(&text, &preset("pve:bookworm:test"), &opts).expect("extend");
    assert_eq!(added, Added::Extended { id: "pve_bookworm".into(), components: vec!["pvetest".into()] });
    assert!(
        text.contains("\"deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest\""),
        "{text}"
    );
    let (again, added) = add(&text, &preset("pve:bookworm:test"), &opts).expect("present");
    assert_eq!((again.as_str(), added), (text.as_str(), Added::Present { id: "pve_bookworm".into() }));
    let err = add(&text, &preset("pve:bookworm:enterprise"), &opts).expect_err("same view and suite");
    assert!(err.to_string().contains("--view"), "{err}");
    let opts = AddOptions { view: Some("enterprise/debian/pve".into()), ..AddOptions::default() };
    let (text, added) = add(&text, &preset("pve:bookworm:enterprise"), &opts).expect("own view");
    assert_eq!(added, Added::NewMirror { id: "pve_bookworm_enterprise".into() });
    let doc: toml::Table = text.parse().expect("valid TOML");
    assert_eq!(doc["mirror"].as_array().map(Vec::len), Some(2));
    assert!(doc["mirror"][0].get("use-subscription").is_none(), "{text}");
    assert_eq!(doc["mirror"][1]["use-subscription"].as_str(), Some("pve"), "{text}");
}

#[test]
fn enterprise_presets_use_their_subscription() {
    let cases: &[(&str, Option<subscription::Product>)] = &[
        ("pve:bookworm:enterprise", Some(subscription::Product::Pve)),
        ("pbs:bookworm:enterprise", Some(subscription::Product::Pbs)),
        ("pmg:bullseye:enterprise", Some(subscription::Product::Pmg)),
        ("ceph-squid:bookworm:enterprise", Some(subscription::Product::Pve)),
        ("pve:bookworm:no-subscription", None),
        ("pbs:bookworm:test", None),
        ("pbs-client:bookworm", None),
    ];
    for (spec, want) in cases {
        assert_eq!(preset(spec).subscription(), *want, "{spec}");
    }
    for p in all() {
        assert_eq!(p.subscription().is_some(), p.url.starts_with(ENTERPRISE), "{}", p.spec());
    }
    let pve = preset("pve:bookworm:enterprise");
    let with_key = |key: &str| format!("[[subscription]]\nkey = \"{key}\"\nserver-id = \"x\"\n");
    assert_eq!(missing_subscription("", &pve), Some(subscription::Product::Pve));
    assert_eq!(missing_subscription(&with_key("pbsc-1234567890"), &pve), Some(subscription::Product::Pve));
    assert_eq!(missing_subscription(&with_key("pve2c-1234567890"), &pve), None);
    assert_eq!(missing_subscription("", &preset("pve:bookworm")), None);
    // Joining an existing mirror of the enterprise URL brings use-subscription along.
    let start =
        "[[mirror]]\nid = \"ent\"\nrepository = \"deb https://enterprise.proxmox.com/debian/ceph-squid bookworm x\"\n";
    let (text, added) = add(start, &preset("ceph-squid:bookworm:enterprise"), &AddOptions::default()).expect("extend");
    assert_eq!(added, Added::Extended { id: "ent".into(), components: vec!["enterprise".into()] });
    assert!(text.contains("use-subscription = \"pve\""), "{text}");
}

#[test]
fn overrides_and_errors() {
    let opts = AddOptions {
        id: Some("local".into()),
        url: Some("http://127.0.0.1:8080/debian/pve".into()),
        key: Some("/tmp/key.gpg".into()),
        view: None,
        architectures: vec!["arm64".into()],
    };
    let (text, _) = add("", &preset("pve:bookworm"), &opts).expect("add");
    let doc: toml::Table = text.parse().expect("valid TOML");
    let m = &doc["mirror"][0];
    assert_eq!(m["repository"].as_str(), Some("deb http://127.0.0.1:8080/debian/pve bookworm pve-no-subscription"));
    assert_eq!((m["id"].as_str(), m["key"].as_str()), (Some("local"), Some("/tmp/key.gpg")));
    let err = add(&text, &preset("pbs:bookworm"), &AddOptions { id: Some("local".into()), ..AddOptions::default() });
    assert!(err.expect_err("duplicate id").to_string().contains("exists already"));
    assert!(matches!(add("mirror = 1", &preset("pve:bookworm"), &AddOptions::default()), Err(PresetError::Toml(_))));
    assert!(matches!(add("[store", &preset("pve:bookworm"), &AddOptions::default()), Err(PresetError::Toml(_))));
}
