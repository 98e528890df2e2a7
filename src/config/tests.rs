//! Table-driven tests of the whole config: a full valid file, defaults, one case per validation
//! rule (line number and entry/key named), key path resolution, and the `to_toml` round trip.

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
        assert_eq!(sync.grace, Duration::from_secs(48 * 3600));
        assert_eq!(sync.timeout, Duration::from_secs(60));
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

/// A valid `[[subscription]]` occupying lines 1–3.
const SUBSCRIPTION: &str =
    "[[subscription]]\nkey = \"pve4b-1234567890\"\nserver-id = \"0123456789abcdef0123456789abcdef\"\n";

/// (what, config text, expected line, substrings the one-line message must contain)
fn invalid_cases() -> Vec<(&'static str, String, usize, Vec<&'static str>)> {
    let m = |extra: &str| format!("{MIRROR}{extra}");
    let swap = |from: &str, to: &str| MIRROR.replace(from, to);
    vec![
        (
            "unknown key in [store]",
            "[store]\nfsync = true\nbogus = 1\n".into(),
            3,
            vec!["[store]: unknown field `bogus`"],
        ),
        ("unknown table", "\n[bogus]\nx = 1\n".into(), 2, vec!["bogus"]),
        ("unknown key in mirror", m("colour = \"red\"\n"), 6, vec!["mirror \"pve\": unknown field `colour`"]),
        (
            "unknown key in second mirror",
            format!("{MIRROR}{}", swap("\"pve\"", "\"two\"").replace("key = ", "kee = ")),
            10,
            vec!["mirror \"two\": unknown field `kee`"],
        ),
        (
            "unknown key in tree",
            "[[tree]]\nid = \"iso\"\nurl = \"http://h/iso/\"\nfilter = []\n".into(),
            4,
            vec!["tree \"iso\": unknown field `filter`"],
        ),
        (
            "unknown key in alias",
            "[[alias]]\npath = \"a\"\ntarget = \"b\"\nforce = true\n".into(),
            4,
            vec!["alias \"a\": unknown field `force`"],
        ),
        ("wrong type", "[sync]\nconcurrency = \"8\"\n".into(), 2, vec!["[sync]: invalid type: string"]),
        ("negative concurrency", "[sync]\nconcurrency = -1\n".into(), 2, vec!["-1"]),
        (
            "missing required key",
            "[[mirror]]\nid = \"pve\"\n".into(),
            1,
            vec!["mirror \"pve\": missing field `repository`"],
        ),
        ("TOML syntax", "[sync\nkeep = 1\n".into(), 1, vec!["table header"]),
        ("duplicate key", "[sync]\nkeep = 1\nkeep = 2\n".into(), 3, vec!["duplicate key `keep`"]),
        (
            "bad URL",
            swap("http://download.proxmox.com/debian/pve", "http//nope"),
            3,
            vec!["mirror \"pve\"", "repository", "invalid URL"],
        ),
        ("bad scheme", swap("http://", "ftp://"), 3, vec!["mirror \"pve\"", "repository", "http or https"]),
        ("apt options", swap("deb http", "deb [arch=amd64] http"), 3, vec!["repository", "options in brackets"]),
        ("no components", swap(" pve-no-subscription", ""), 3, vec!["repository", "no component"]),
        (
            "source architecture",
            swap("[\"amd64\"]", "[\"amd64\",\n  \"source\"]"),
            5,
            vec!["mirror \"pve\"", "architectures", "\"source\" is not supported"],
        ),
        (
            "unknown architecture",
            swap("[\"amd64\"]", "[\"x86_64\"]"),
            4,
            vec!["architectures", "not a Debian architecture"],
        ),
        ("no architectures", swap("[\"amd64\"]", "[]"), 4, vec!["architectures", "at least one"]),
        ("duplicate architecture", swap("[\"amd64\"]", "[\"amd64\", \"amd64\"]"), 4, vec!["architectures", "twice"]),
        (
            "missing key file",
            swap("key.gpg", "missing.gpg"),
            5,
            vec!["mirror \"pve\": key file", "missing.gpg", "os error 2"],
        ),
        ("empty key file", swap("key.gpg", "empty.gpg"), 5, vec!["mirror \"pve\": key file", "empty.gpg: is empty"]),
        (
            "missing tree key file",
            "[[tree]]\nid = \"iso\"\nurl = \"http://h/iso/\"\nkey = \"nope.gpg\"\n".into(),
            4,
            vec!["tree \"iso\": key file", "nope.gpg"],
        ),
        ("bad id", swap("\"pve\"", "\"pve bookworm\""), 2, vec!["mirror \"pve bookworm\"", "id", "' '"]),
        ("dot id", swap("\"pve\"", "\"..\""), 2, vec!["id", "\"..\""]),
        (
            "duplicate mirror id",
            format!("{MIRROR}{MIRROR}"),
            7,
            vec!["mirror \"pve\": id: duplicate id", "mirror on line 2"],
        ),
        (
            "mirror and tree share an id",
            m("[[tree]]\nid = \"pve\"\nurl = \"http://h/iso/\"\n"),
            7,
            vec!["tree \"pve\": id: duplicate id", "mirror on line 2"],
        ),
        ("absolute view", m("view = \"/debian/pve\"\n"), 6, vec!["mirror \"pve\": view:", "relative"]),
        ("view with ..", m("view = \"debian/../etc\"\n"), 6, vec!["view", "\"..\""]),
        ("view with empty component", m("view = \"debian//pve\"\n"), 6, vec!["view", "empty component"]),
        ("empty view", m("view = \"\"\n"), 6, vec!["view", "empty"]),
        ("view is snapshots", m("view = \"snapshots\"\n"), 6, vec!["view", "reserved"]),
        ("view under snapshots", m("view = \"snapshots/pve\"\n"), 6, vec!["view", "reserved"]),
        (
            "URL without path",
            swap("download.proxmox.com/debian/pve", "download.proxmox.com"),
            3,
            vec!["mirror \"pve\": view:", "set view"],
        ),
        (
            "tree URL without path",
            "[[tree]]\nid = \"t\"\nurl = \"https://h/\"\n".into(),
            3,
            vec!["tree \"t\": view:", "set view"],
        ),
        (
            "tree bad scheme",
            "[[tree]]\nid = \"t\"\nurl = \"file:///srv/iso\"\n".into(),
            3,
            vec!["tree \"t\": url:", "http or https"],
        ),
        ("bad grace", "[sync]\nkeep = 2\ngrace = \"48x\"\n".into(), 3, vec!["[sync]: grace:", "unknown unit"]),
        ("grace without unit", "[sync]\ngrace = \"48\"\n".into(), 2, vec!["[sync]: grace:", "missing unit"]),
        ("bad timeout", "[sync]\ntimeout = \"soon\"\n".into(), 2, vec!["[sync]: timeout:"]),
        ("zero timeout", "[sync]\ntimeout = \"0s\"\n".into(), 2, vec!["[sync]: timeout:", "more than 0s"]),
        ("zero concurrency", "[sync]\nconcurrency = 0\n".into(), 2, vec!["[sync]: concurrency:", "at least 1"]),
        ("zero keep", "\n[sync]\nretries = 1\nkeep = 0\n".into(), 4, vec!["[sync]: keep:", "at least 1"]),
        ("empty store dir", "[store]\ndir = \"\"\n".into(), 2, vec!["[store]: dir:", "empty"]),
        ("bad skip glob", m("skip-packages = [\"ok-*\", \"a[b\"]\n"), 6, vec!["mirror \"pve\": skip-packages:", "a[b"]),
        (
            "bad include glob",
            "[[tree]]\nid = \"t\"\nurl = \"http://h/iso/\"\ninclude = [\"{a\"]\n".into(),
            4,
            vec!["tree \"t\": include:"],
        ),
        (
            "bad exclude glob",
            "[[tree]]\nid = \"t\"\nurl = \"http://h/iso/\"\nexclude = [\"[z-a]\"]\n".into(),
            4,
            vec!["tree \"t\": exclude:"],
        ),
        ("blank section", m("skip-sections = [\"debug\", \"\"]\n"), 6, vec!["skip-sections", "not a section name"]),
        (
            "absolute alias path",
            m("[[alias]]\npath = \"/debian/dists\"\ntarget = \"debian/pve/dists\"\n"),
            7,
            vec!["alias \"/debian/dists\": path:", "relative"],
        ),
        (
            "alias path under snapshots",
            m("[[alias]]\npath = \"snapshots/x\"\ntarget = \"debian/pve\"\n"),
            7,
            vec!["path", "reserved"],
        ),
        (
            "alias hides a view",
            m("[[alias]]\npath = \"debian\"\ntarget = \"debian/pve\"\n"),
            7,
            vec!["alias \"debian\": path:", "hide the view"],
        ),
        (
            "alias target with ..",
            m("[[alias]]\npath = \"x\"\ntarget = \"../etc\"\n"),
            8,
            vec!["alias \"x\": target:", "\"..\""],
        ),
        (
            "alias target nowhere",
            m("[[alias]]\npath = \"x\"\ntarget = \"elsewhere/dists\"\n"),
            8,
            vec!["target", "not inside any mirror or tree view"],
        ),
        (
            "alias loop",
            m("[[alias]]\npath = \"debian/pve/dists/stable\"\ntarget = \"debian/pve/dists/stable/main\"\n"),
            8,
            vec!["target", "loop"],
        ),
        (
            "unknown key in subscription",
            format!("{SUBSCRIPTION}level = \"basic\"\n"),
            4,
            vec!["subscription #1: unknown field `level`"],
        ),
        (
            "not a subscription key",
            SUBSCRIPTION.replace("pve4b-", "pve-"),
            2,
            vec!["subscription #1: key:", "not a Proxmox subscription key"],
        ),
        (
            "masked subscription key",
            SUBSCRIPTION.replace("pve4b-1234567890", "pve4b-12…(masked)"),
            2,
            vec!["subscription #1: key:", "masked", "write the whole key"],
        ),
        (
            "short server id",
            format!("{SUBSCRIPTION}{SUBSCRIPTION}").replacen("0123456789abcdef0123456789abcdef", "0123", 2),
            3,
            vec!["subscription #1: server-id:", "32 hexadecimal digits"],
        ),
        (
            "unknown product",
            format!("{SUBSCRIPTION}{}", m("use-subscription = \"ceph\"\n")),
            9,
            vec!["mirror \"pve\": use-subscription:", "not a subscription product"],
        ),
        (
            "use-subscription without its subscription",
            format!("{SUBSCRIPTION}{}", m("use-subscription = \"pbs\"\n")),
            9,
            vec!["mirror \"pve\": use-subscription: no [[subscription]] has a pbs key"],
        ),
        (
            "tree use-subscription without any subscription",
            "[[tree]]\nid = \"iso\"\nurl = \"http://h/iso/\"\nuse-subscription = \"pve\"\n".into(),
            4,
            vec!["tree \"iso\": use-subscription: no [[subscription]] has a pve key"],
        ),
        (
            "overlapping aliases",
            m("[[alias]]\npath = \"a\"\ntarget = \"debian/pve\"\n[[alias]]\npath = \"a/b\"\ntarget = \"debian\"\n"),
            10,
            vec!["alias \"a/b\": path:", "overlaps alias \"a\" on line 7"],
        ),
    ]
}

#[test]
fn invalid_configs_name_line_and_key() {
    let fx = Fixture::new();
    let path = fx.config_path();
    for (what, text, line, needles) in invalid_cases() {
        // A key file or subscription problem makes only its entry unusable; the rest loads.
        // Every other case refuses the whole file.
        const ENTRY_LEVEL: [&str; 5] = [
            "missing key file",
            "empty key file",
            "missing tree key file",
            "use-subscription without its subscription",
            "tree use-subscription without any subscription",
        ];
        let err = match fx.parse(&text) {
            Ok(mut config) if !config.unusable.is_empty() => {
                assert!(ENTRY_LEVEL.contains(&what), "{what}: only its entry was refused");
                config.unusable.remove(0).error
            }
            Err(_) if ENTRY_LEVEL.contains(&what) => panic!("{what}: refused the whole config"),
            Ok(_) => panic!("{what}: accepted"),
            Err(err) => err,
        };
        let shown = err.to_string();
        assert_eq!(err.location().line, Some(line), "{what}: {shown}");
        assert!(!shown.contains('\n'), "{what}: not one line: {shown:?}");
        let prefix = format!("{}:{line}: ", path.display());
        assert!(shown.starts_with(&prefix), "{what}: {shown}");
        for needle in needles {
            assert!(shown.contains(needle), "{what}: {needle:?} missing from {shown}");
        }
    }
}

#[test]
fn key_file_error_reads_like_the_contract() {
    let fx = Fixture::new();
    let config = fx.parse(&MIRROR.replace("key.gpg", "gone.gpg")).expect("an unusable entry is not a config error");
    let key = fx.dir.path().join("gone.gpg");
    let expected = format!(
        "{}:5: mirror \"pve\": key file {}: No such file or directory (os error 2); \
         put the repository's OpenPGP release key (binary or armored) there",
        fx.config_path().display(),
        key.display()
    );
    let [unusable] = config.unusable.as_slice() else { panic!("one unusable entry: {:?}", config.unusable) };
    assert_eq!(unusable.error.to_string(), expected);
    assert!(matches!(unusable.error, ConfigError::KeyFile { .. }));
    assert_eq!((unusable.kind, unusable.id.as_str(), unusable.view.as_str()), ("mirror", "pve", "debian/pve"));
    assert!(config.mirrors.is_empty(), "an unusable mirror is not syncable");
    assert_eq!(config.entry_ids().collect::<Vec<_>>(), ["pve"], "its id stays known");
    assert!(config.require_usable().is_err());
}

/// A preset's key file names where the key comes from; the rest of the config loads.
#[test]
fn an_unusable_entry_leaves_the_rest_usable() {
    let fx = Fixture::new();
    let preset_key = "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg";
    let text = format!(
        "{MIRROR}[[mirror]]\nid = \"pbs\"\nrepository = \"deb http://download.proxmox.com/debian/pbs bookworm \
         pbs-no-subscription\"\narchitectures = [\"amd64\"]\nkey = \"{preset_key}\"\n\
         [[alias]]\npath = \"pbs-latest\"\ntarget = \"debian/pbs\"\n"
    );
    // On a Proxmox host the preset's key is there: point the mirror at the same name elsewhere.
    let config = fx.parse(&text).expect("loads");
    if Path::new(preset_key).exists() {
        assert!(config.unusable.is_empty());
        assert_eq!(
            presets::key_source(Path::new(preset_key)).as_deref(),
            Some(format!(
                "fetch it with `wget https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg -O {preset_key}` \
                 and compare its checksum with the one the publisher documents"
            ))
            .as_deref()
        );
        return;
    }
    assert_eq!(config.mirrors.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["pve"]);
    let [unusable] = config.unusable.as_slice() else { panic!("one unusable entry: {:?}", config.unusable) };
    let shown = unusable.error.to_string();
    assert!(
        shown.contains(&format!(
            "wget https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg -O {preset_key}"
        )),
        "{shown}"
    );
    assert_eq!(config.aliases.len(), 1, "an alias to an unusable mirror's view still validates");
}

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
        for (a, b) in first.mirrors.iter().zip(&second.mirrors) {
            assert_eq!((&a.id, &a.repository, &a.view, &a.key), (&b.id, &b.repository, &b.view, &b.key));
            assert_eq!((&a.architectures, &a.skip_sections), (&b.architectures, &b.skip_sections));
            assert_eq!(a.skip_package_patterns, b.skip_package_patterns);
            assert_eq!((a.verify, a.ignore_errors), (b.verify, b.ignore_errors));
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
