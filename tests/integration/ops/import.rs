//! `config import`: a proxmox-offline-mirror config with twenty mirrors and their subscription
//! keys converts into a config that loads and keeps every id, repository, architecture, flag,
//! `use-subscription` and key — written mode 0600, with no key on the terminal.

use crate::harness::{text, BIN};
use pmirror_fs::config::{Config, Product};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

/// (id, repository, architectures, verify, ignore-errors, skip-packages, skip-sections)
type PomMirror = (String, String, Vec<&'static str>, bool, bool, Vec<&'static str>, Vec<&'static str>);

/// proxmox-offline-mirror `subscription:` sections: (key, server id, description).
const KEYS: [(&str, &str, Option<&str>); 3] = [
    ("pve4b-1234567890", "0123456789ABCDEF0123456789ABCDEF", Some("pve node 1")),
    ("pmgp-abcdef1234", "fedcba9876543210fedcba9876543210", None),
    ("pve2s-0987654321", "00112233445566778899aabbccddeeff", Some("pve node 2")),
];

/// The product each enterprise mirror uses (Ceph's enterprise repository takes a pve key).
fn use_subscription(id: &str) -> Option<Product> {
    match id {
        "pve_bookworm_enterprise" | "ceph_reef_bookworm" => Some(Product::Pve),
        "pmg_bookworm" => Some(Product::Pmg),
        _ => None,
    }
}

/// Twenty proxmox-offline-mirror entries: pve, pbs, pbs-client, pmg and ceph for buster,
/// bullseye and bookworm, several with two or three components.
fn twenty_mirrors() -> Vec<PomMirror> {
    let d = "http://download.proxmox.com/debian";
    let rows: [(&str, &str, &str); 20] = [
        ("pve_buster", "pve buster", "pve-no-subscription"),
        ("pve_bullseye", "pve bullseye", "pve-no-subscription pvetest"),
        ("pve_bookworm", "pve bookworm", "pve-no-subscription pvetest"),
        ("pve_bookworm_enterprise", "pve bookworm", "pve-enterprise"),
        ("pbs_buster", "pbs buster", "pbs-no-subscription"),
        ("pbs_bullseye", "pbs bullseye", "pbs-no-subscription pbstest"),
        ("pbs_bookworm", "pbs bookworm", "pbs-no-subscription pbstest"),
        ("pbs_client_buster", "pbs-client buster", "main"),
        ("pbs_client_bullseye", "pbs-client bullseye", "main"),
        ("pbs_client_bookworm", "pbs-client bookworm", "main"),
        ("pmg_buster", "pmg buster", "pmg-no-subscription"),
        ("pmg_bullseye", "pmg bullseye", "pmg-no-subscription pmgtest"),
        ("pmg_bookworm", "pmg bookworm", "pmg-no-subscription pmgtest pmg-enterprise"),
        ("ceph_quincy_buster", "ceph-quincy buster", "main"),
        ("ceph_quincy_bullseye", "ceph-quincy bullseye", "main test"),
        ("ceph_quincy_bookworm", "ceph-quincy bookworm", "no-subscription test"),
        ("ceph_reef_bullseye", "ceph-reef bullseye", "main"),
        ("ceph_reef_bookworm", "ceph-reef bookworm", "no-subscription test enterprise"),
        ("ceph_squid_bullseye", "ceph-squid bullseye", "main"),
        ("ceph_squid_bookworm", "ceph-squid bookworm", "no-subscription test"),
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (id, path_suite, comps))| {
            let archs = if i % 3 == 0 {
                vec!["amd64", "all"]
            } else if i % 3 == 1 {
                vec!["amd64"]
            } else {
                vec!["arm64", "all"]
            };
            let skip_p = if i % 4 == 0 { vec!["*-dbgsym", "*-dbg"] } else { vec![] };
            let skip_s = if i % 5 == 0 { vec!["debug"] } else { vec![] };
            (id.to_string(), format!("deb {d}/{path_suite} {comps}"), archs, i % 2 == 0, i % 7 == 0, skip_p, skip_s)
        })
        .collect()
}

#[test]
fn config_import_round_trips_twenty_mirrors() {
    let tmp = tempfile::tempdir().unwrap();
    let mirrors = twenty_mirrors();
    let mut cfg = String::new();
    for (i, (id, repo, archs, verify, ignore, skip_p, skip_s)) in mirrors.iter().enumerate() {
        let key = tmp.path().join(format!("key-{}.gpg", i % 3));
        std::fs::write(&key, b"not parsed at load").unwrap();
        cfg += &format!("mirror: {id}\n\trepository {repo}\n");
        for a in archs {
            cfg += &format!("\tarchitectures {a}\n");
        }
        cfg += &format!(
            "\tbase-dir /var/lib/proxmox-offline-mirror/mirrors\n\tkey-path {}\n\tverify {verify}\n\tsync true\n\tignore-errors {ignore}\n",
            key.display()
        );
        for p in skip_p {
            cfg += &format!("\tskip-packages {p}\n");
        }
        for s in skip_s {
            cfg += &format!("\tskip-sections {s}\n");
        }
        if let Some(product) = use_subscription(id) {
            cfg += &format!("\tuse-subscription {product}\n");
        }
        cfg += "\n";
    }
    cfg += "medium: usb-disk\n\tmountpoint /mnt/usb\n\tmirrors pve_bookworm\n\tverify true\n\tsync true\n\n";
    for (key, server_id, description) in KEYS {
        cfg += &format!("subscription: {key}\n\tserver-id {server_id}\n");
        if let Some(d) = description {
            cfg += &format!("\tdescription {d}\n");
        }
        cfg += "\tinfo eyJzdGF0dXMiOiJhY3RpdmUifQ==\n\n";
    }
    let pom = tmp.path().join("proxmox-offline-mirror.cfg");
    std::fs::write(&pom, &cfg).unwrap();
    let out_path = tmp.path().join("out/config.toml");
    let out = Command::new(BIN).args(["config", "import"]).arg(&pom).arg("-o").arg(&out_path).output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("medium \"usb-disk\"") && stderr.contains("2 pve keys"), "{stderr}");
    for (key, _, _) in KEYS {
        assert!(!stderr.contains(&key[6..]) && !text(&out.stdout).contains(&key[6..]), "key {key} printed");
    }
    let mode = std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a config holding subscription keys was written {mode:o}");
    let config = Config::load(&out_path).unwrap_or_else(|e| panic!("imported config does not load: {e}"));
    assert_eq!(config.mirrors.len(), 20);
    assert!(config.store.fsync);
    let subs: Vec<_> = config.subscriptions.iter().map(|s| (s.key.expose(), s.server_id.0.as_str())).collect();
    assert_eq!(subs, KEYS.map(|(k, sid, _)| (k, sid)));
    for m in &config.mirrors {
        // The first key of the product, in file order.
        let want = use_subscription(&m.id).map(|p| if p == Product::Pve { KEYS[0].0 } else { KEYS[1].0 });
        assert_eq!(m.subscription.as_ref().map(|s| s.key.expose()), want, "{}", m.id);
    }
    for ((id, repo, archs, verify, ignore, skip_p, skip_s), got) in mirrors.iter().zip(&config.mirrors) {
        assert_eq!(&got.id, id);
        let want: pmirror_fs::config::Repository = repo.parse().unwrap();
        assert_eq!(got.repository, want, "{id}");
        assert_eq!(got.architectures, *archs, "{id}");
        assert_eq!((got.verify, got.ignore_errors), (*verify, *ignore), "{id}");
        assert_eq!(got.skip_package_patterns, *skip_p, "{id}");
        assert_eq!(got.skip_sections, *skip_s, "{id}");
    }
    // Without -o it prints the same TOML; an existing output file is never replaced.
    let printed = Command::new(BIN).args(["config", "import"]).arg(&pom).output().unwrap();
    assert_eq!(text(&printed.stdout), std::fs::read_to_string(&out_path).unwrap());
    let again = Command::new(BIN).args(["config", "import"]).arg(&pom).arg("-o").arg(&out_path).output().unwrap();
    assert!(!again.status.success() && text(&again.stderr).contains("not replacing"));
}
