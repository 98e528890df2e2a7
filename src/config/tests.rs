//! Tests of the whole config: a full valid file, defaults, key path resolution, the `to_toml`
//! round trip, subscriptions, loading and the config path, and a property test that parsing never
//! panics. The invalid configs, one table case per validation rule (line number and entry/key
//! named), are in `invalid_tests.rs`.

use super::*;
use std::fs;
use tempfile::TempDir;

/// Key file contents written by the fixture (parse only reads the bytes, never interprets them).
const KEY: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n";

/// A temporary directory holding `key.gpg`, `empty.gpg` and (virtually) `config.toml`.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("key.gpg"), KEY).expect("write key");
        fs::write(dir.path().join("empty.gpg"), b"").expect("write empty key");
        // Only its form is checked when the config loads (reqwest parses it at sync).
        fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
            .expect("write ca");
        Fixture { dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &self.config_path())
    }
}

const FULL: &str = r#"
[store]
dir = "/srv/pmirror"
fsync = false

[sync]
concurrency = 4
retries = 5
keep = 2
grace = "1d12h"
timeout = "90s"
max-concurrency = 16
ca-file = "ca.pem"

[mount]
pin-idle = "30s"
pin-lifetime = "5m"

[[mirror]]
id = "pve_bookworm"
repository = "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest"
architectures = ["amd64", "all"]
key = "key.gpg"
verify = true
ignore-errors = true
view = "proxmox/pve"
skip-packages = ["*-dbgsym", "linux-*"]
skip-sections = ["debug"]

[[mirror]]
id = "debian"
repository = "deb https://deb.debian.org/debian/ bookworm main contrib"
architectures = ["arm64"]
key = "key.gpg"
sources = ["http://ftp.tw.debian.org/debian", "https://mirrors.tuna.tsinghua.edu.cn/debian/"]

[[tree]]
id = "iso"
url = "http://download.proxmox.com/iso"
view = "images/iso"
include = ["*.iso", "SHA256SUMS*"]
exclude = ["*beta*"]
key = "key.gpg"

[[tree]]
id = "templates"
url = "http://download.proxmox.com/images/"

[[medium]]
id = "usb"
path = "/mnt/usb"
mirrors = ["pve_bookworm", "iso"]
newest = 2

[[medium]]
id = "disk"
path = "/media/disk"
mirrors = ["debian"]
snapshots = ["debian/2026-12-01T10:00:00Z"]

[[alias]]
path = "debian/dists"
target = "proxmox/pve/dists"
"#;

#[test]
fn full_config_parses_with_every_value() {
    let fx = Fixture::new();
    let config = fx.parse(FULL).expect("valid");
    let key = fx.dir.path().join("key.gpg");
    assert_eq!(config.path, fx.config_path());
    assert_eq!(config.store.dir, Path::new("/srv/pmirror"));
    assert!(!config.store.fsync);
    let sync = &config.sync;
    assert_eq!((sync.concurrency, sync.retries, sync.keep), (4, 5, 2));
    assert_eq!(sync.grace, Duration::from_secs(36 * 3600));
    assert_eq!(sync.timeout, Duration::from_secs(90));
    assert_eq!((sync.max_concurrency, sync.ca_file.as_deref()), (16, Some(fx.dir.path().join("ca.pem").as_path())));
    let sources: Vec<&str> = config.mirrors[1].sources.iter().map(url::Url::as_str).collect();
    assert_eq!(sources, ["http://ftp.tw.debian.org/debian/", "https://mirrors.tuna.tsinghua.edu.cn/debian/"]);
    assert!(config.mirrors[0].sources.is_empty());
    assert_eq!((config.mount.pin_idle, config.mount.pin_lifetime), (Duration::from_secs(30), Duration::from_secs(300)));
    let usb = &config.media[0];
    assert_eq!(
        (usb.id.as_str(), usb.path.as_path(), &usb.mirrors[..]),
        ("usb", Path::new("/mnt/usb"), &["pve_bookworm".to_owned(), "iso".to_owned()][..])
    );
    assert_eq!(usb.snapshots, MediumSnapshots::Newest(2));
    let named = vec![("debian".to_owned(), "2026-12-01T10:00:00Z".to_owned())];
    assert_eq!(config.media[1].snapshots, MediumSnapshots::Named(named));

    let pve = &config.mirrors[0];
    assert_eq!(pve.id, "pve_bookworm");
    assert_eq!(pve.repository.url.as_str(), "http://download.proxmox.com/debian/pve/");
    assert_eq!(pve.repository.suite, "bookworm");
    assert_eq!(pve.repository.components, ["pve-no-subscription", "pvetest"]);
    assert_eq!(pve.architectures, ["amd64", "all"]);
    assert_eq!((pve.key.as_path(), pve.key_bytes.as_slice()), (key.as_path(), KEY));
    assert!(pve.verify && pve.ignore_errors);
    assert_eq!(pve.view, "proxmox/pve");
    assert_eq!(pve.skip_package_patterns, ["*-dbgsym", "linux-*"]);
    assert!(pve.skip_packages.is_match("zfs-dbgsym") && pve.skip_packages.is_match("linux-libc-dev"));
    assert!(!pve.skip_packages.is_match("pve-manager"));
    assert_eq!(pve.skip_sections, ["debug"]);

    let debian = &config.mirrors[1];
    assert_eq!(debian.view, "debian");
    assert!(!debian.verify && !debian.ignore_errors);
    assert!(debian.skip_package_patterns.is_empty() && debian.skip_sections.is_empty());

    let iso = &config.trees[0];
    assert_eq!(iso.url.as_str(), "http://download.proxmox.com/iso/");
    assert_eq!(iso.view, "images/iso");
    assert_eq!(iso.include, ["*.iso", "SHA256SUMS*"]);
    assert_eq!(iso.exclude, ["*beta*"]);
    assert_eq!(iso.key.as_deref(), Some(key.as_path()));
    assert_eq!(iso.key_bytes.as_deref(), Some(KEY));
    let templates = &config.trees[1];
    assert_eq!(templates.view, "images");
    assert!(templates.key.is_none() && templates.key_bytes.is_none());
    assert!(templates.include.is_empty() && templates.exclude.is_empty());

    assert_eq!(config.aliases.len(), 1);
    assert_eq!(config.aliases[0].path, "debian/dists");
    assert_eq!(config.aliases[0].target, "proxmox/pve/dists");
    let ids: Vec<&str> = config.entry_ids().collect();
    assert_eq!(ids, ["pve_bookworm", "debian", "iso", "templates"]);
}

#[test]
fn missing_tables_take_defaults() {
    let fx = Fixture::new();
    for text in ["", "[store]\n[sync]\n"] {
        let config = fx.parse(text).expect("valid");
        assert_eq!(config.store.dir, Path::new("/var/lib/pmirror-fs"));
        assert!(config.store.fsync);
        let sync = &config.sync;
        assert_eq!((sync.concurrency, sync.retries, sync.keep), (8, 3, 3));
        assert_eq!((sync.max_concurrency, &sync.ca_file), (32, &None));
        assert_eq!(sync.grace, Duration::from_secs(48 * 3600));
        assert_eq!(sync.timeout, Duration::from_secs(60));
        assert_eq!(
            (config.mount.pin_idle, config.mount.pin_lifetime),
            (Duration::from_secs(120), Duration::from_secs(600))
        );
        assert!(config.mirrors.is_empty() && config.trees.is_empty() && config.aliases.is_empty());
    }
}

/// A valid mirror occupying lines 1–5; cases append to it.
const MIRROR: &str = r#"[[mirror]]
id = "pve"
repository = "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription"
architectures = ["amd64"]
key = "key.gpg"
"#;

/// Configs refused, or with an entry refused: one case per validation rule.
#[path = "invalid_tests.rs"]
mod invalid;

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let fx = Fixture::new();
    let sub = fx.dir.path().join("etc");
    fs::create_dir_all(sub.join("keys")).expect("mkdir");
    fs::write(sub.join("keys/pve.gpg"), b"pve key").expect("write");
    let absolute = fx.dir.path().join("key.gpg");
    let cases: &[(String, PathBuf, &[u8])] = &[
        ("keys/pve.gpg".into(), sub.join("keys/pve.gpg"), b"pve key"),
        ("../key.gpg".into(), sub.join("../key.gpg"), KEY),
        (absolute.display().to_string(), absolute.clone(), KEY),
    ];
    for (configured, resolved, bytes) in cases {
        let text = format!("[store]\ndir = \"store\"\n{}", MIRROR.replace("\"key.gpg\"", &format!("{configured:?}")));
        let config = Config::parse(&text, &sub.join("config.toml")).expect(configured);
        assert_eq!(&config.mirrors[0].key, resolved, "{configured}");
        assert_eq!(config.mirrors[0].key_bytes, *bytes, "{configured}");
        assert_eq!(config.store.dir, sub.join("store"));
    }
}

#[test]
fn to_toml_round_trips_through_parse() {
    let fx = Fixture::new();
    for text in [FULL, "", MIRROR] {
        let first = fx.parse(text).expect("valid");
        let rendered = first.to_toml();
        let second = fx.parse(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        assert_eq!(second.to_toml(), rendered);
        assert_eq!(format!("{:?}", first.store), format!("{:?}", second.store));
        assert_eq!(format!("{:?}", first.sync), format!("{:?}", second.sync));
        assert_eq!(format!("{:?}", first.trees), format!("{:?}", second.trees));
        assert_eq!(format!("{:?}", first.aliases), format!("{:?}", second.aliases));
        assert_eq!(first.media, second.media);
        for (a, b) in first.mirrors.iter().zip(&second.mirrors) {
            assert_eq!((&a.id, &a.repository, &a.view, &a.key), (&b.id, &b.repository, &b.view, &b.key));
            assert_eq!((&a.architectures, &a.skip_sections), (&b.architectures, &b.skip_sections));
            assert_eq!(a.skip_package_patterns, b.skip_package_patterns);
            assert_eq!((a.verify, a.ignore_errors), (b.verify, b.ignore_errors));
            assert_eq!(a.sources, b.sources);
        }
        assert_eq!(first.mirrors.len(), second.mirrors.len());
    }
}

#[test]
fn subscriptions_resolve_to_the_first_key_of_their_product_and_stay_masked() {
    let fx = Fixture::new();
    let key = |k: &str, sid: &str| format!("[[subscription]]\nkey = \"{k}\"\nserver-id = \"{sid}\"\n");
    let text = format!(
        "{}{}{}{}[[tree]]\nid = \"iso\"\nurl = \"https://enterprise.proxmox.com/iso/\"\nuse-subscription = \"pbs\"\n",
        key("pbsc-aaaa000000", &"a".repeat(32)),
        key("pve4b-1234567890", &"b".repeat(32)),
        key("pve2s-9999999999", &"c".repeat(32)),
        MIRROR.replace("key = ", "use-subscription = \"pve\"\nkey = ")
    );
    let config = fx.parse(&text).expect("valid");
    let products: Vec<Product> = config.subscriptions.iter().map(|s| s.product).collect();
    assert_eq!(products, [Product::Pbs, Product::Pve, Product::Pve]);
    let pve = config.mirrors[0].subscription.as_ref().expect("pve subscription");
    assert_eq!((pve.key.expose(), pve.server_id.0.as_str()), ("pve4b-1234567890", "b".repeat(32).as_str()));
    let pbs = config.trees[0].subscription.as_ref().expect("pbs subscription");
    assert_eq!(pbs.key.expose(), "pbsc-aaaa000000");
    let debug = format!("{config:?}");
    let shown = config.to_toml();
    for secret in ["1234567890", "9999999999", "aaaa000000"] {
        assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
        assert!(!shown.contains(secret), "config show shows {secret}: {shown}");
    }
    assert!(shown.contains("key = \"pve4b-12…(masked)\""), "{shown}");
    assert!(shown.contains(&format!("server-id = \"{}\"", "b".repeat(32))), "{shown}");
    assert_eq!(shown.matches("use-subscription").count(), 2, "{shown}");
    // Pasting `config show` back is refused with a reason, not taken as another key.
    let err = fx.parse(&shown).expect_err("masked keys do not parse").to_string();
    assert!(err.contains("subscription #1: key: is masked"), "{err}");
    assert!(!config.mirrors.is_empty() && fx.parse(MIRROR).expect("valid").mirrors[0].subscription.is_none());
}

#[test]
fn load_reads_the_file_or_names_it() {
    let fx = Fixture::new();
    let path = fx.config_path();
    let err = Config::load(&path).expect_err("no file yet");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with(&format!("{}: ", path.display())));
    fs::write(&path, MIRROR).expect("write config");
    let config = Config::load(&path).expect("valid");
    assert_eq!(config.mirrors[0].view, "debian/pve");
}

#[test]
fn config_path_precedence() {
    let cli = Path::new("/tmp/cli.toml");
    let env = || Some(OsString::from("/tmp/env.toml"));
    assert_eq!(resolve_path_from(Some(cli), env()), cli);
    assert_eq!(resolve_path_from(None, env()), Path::new("/tmp/env.toml"));
    assert_eq!(resolve_path_from(None, Some(OsString::new())), Path::new(DEFAULT_PATH));
    assert_eq!(resolve_path_from(None, None), Path::new(DEFAULT_PATH));
}

/// Any string in any value position: parse returns an error or a config, never panics.
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn quoted(text: &str) -> String {
        toml::Value::String(text.to_owned()).to_string()
    }

    proptest! {
        #[test]
        fn parse_never_panics(
            values in proptest::collection::vec("\\PC*", 8),
            number in any::<i64>(),
        ) {
            let fx = Fixture::new();
            let q: Vec<String> = values.iter().map(|v| quoted(v)).collect();
            let text = format!(
                "[store]\ndir = {}\n[sync]\nkeep = {number}\ngrace = {}\n\
                 [[mirror]]\nid = {}\nrepository = {}\narchitectures = [{}]\nkey = \"key.gpg\"\nview = {}\n\
                 [[alias]]\npath = {}\ntarget = {}\n",
                q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]
            );
            let _ = fx.parse(&text);
            let _ = fx.parse(&values.concat());
        }
    }
}
