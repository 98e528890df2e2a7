//! Invalid configs, one case per validation rule: each error names the file, the line and the
//! entry or key, on one line. A key file or subscription problem refuses only its entry; the
//! rest of the config loads.

use super::*;

/// A second medium with the id `usb` (its id on its second line).
const MEDIUM_AGAIN: &str = "[[medium]]\nid = \"usb\"\npath = \"/mnt/b\"\nmirrors = [\"pve\"]\n";

/// A valid `[[subscription]]` occupying lines 1–3.
const SUBSCRIPTION: &str =
    "[[subscription]]\nkey = \"pve4b-1234567890\"\nserver-id = \"0123456789abcdef0123456789abcdef\"\n";

/// (what, config text, expected line, substrings the one-line message must contain)
fn invalid_cases() -> Vec<(&'static str, String, usize, Vec<&'static str>)> {
    let m = |extra: &str| format!("{MIRROR}{extra}");
    let swap = |from: &str, to: &str| MIRROR.replace(from, to);
    // MIRROR (lines 1–5), then a medium: [[medium]] 6, id 7, path 8, then `rest` from line 9.
    let medium = |rest: &str| format!("{MIRROR}[[medium]]\nid = \"usb\"\npath = \"/mnt/usb\"\n{rest}");
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
        ("zero pin-idle", "[mount]\npin-idle = \"0s\"\n".into(), 2, vec!["[mount]: pin-idle:", "at least 5s"]),
        (
            "short pin-lifetime",
            "[mount]\npin-lifetime = \"4s\"\n".into(),
            2,
            vec!["[mount]: pin-lifetime:", "at least 5s"],
        ),
        ("bad pin-lifetime", "[mount]\npin-lifetime = \"10 min\"\n".into(), 2, vec!["[mount]: pin-lifetime:"]),
        (
            "cache-size without cache-dir",
            "[mount]\ncache-size = \"1G\"\n".into(),
            2,
            vec!["[mount]: cache-size:", "needs cache-dir"],
        ),
        (
            "cache-dir inside the store",
            "[store]\ndir = \"/srv/store\"\n[mount]\ncache-dir = \"/srv/store/cache\"\n".into(),
            4,
            vec!["[mount]: cache-dir:", "overlaps [store] dir"],
        ),
        (
            "cache-size not a size",
            "[mount]\ncache-dir = \"/var/cache/p\"\ncache-size = \"lots\"\n".into(),
            3,
            vec!["[mount]: cache-size:", "not a size"],
        ),
        (
            "cache-size too small",
            "[mount]\ncache-dir = \"/var/cache/p\"\ncache-size = \"100K\"\n".into(),
            3,
            vec!["[mount]: cache-size:", "at least 1M"],
        ),
        (
            "gc-delay shorter than the pins on a shared store",
            "[store]\nshared = true\ngc-delay = \"1m\"\n".into(),
            3,
            vec!["[store]: gc-delay:", "pin-lifetime (10m) + 5s"],
        ),
        (
            "default gc-delay shorter than a long pin-lifetime",
            "[store]\nshared = true\n[mount]\npin-lifetime = \"1h\"\n".into(),
            4,
            vec!["[store]: gc-delay:", "15m must be at least", "pin-lifetime (1h)"],
        ),
        ("bad gc-delay", "[store]\ngc-delay = \"soon\"\n".into(), 2, vec!["[store]: gc-delay:"]),
        ("unknown mount key", "[mount]\npin = 1\n".into(), 2, vec!["[mount]", "pin"]),
        ("view under .pin", format!("{MIRROR}view = \".pin/x\"\n"), 6, vec!["view:", "reserved"]),
        ("medium unknown mirror", medium("mirrors = [\"nope\"]\n"), 9, vec!["medium \"usb\": mirrors:", "not the id"]),
        ("medium no mirrors", medium("mirrors = []\n"), 9, vec!["medium \"usb\": mirrors:", "names no mirror"]),
        ("medium twice", medium("mirrors = [\"pve\", \"pve\"]\n"), 9, vec!["mirrors:", "listed twice"]),
        (
            "medium relative path",
            format!("{MIRROR}[[medium]]\nid = \"usb\"\npath = \"mnt/usb\"\nmirrors = [\"pve\"]\n"),
            8,
            vec!["medium \"usb\": path:", "absolute"],
        ),
        ("medium newest 0", medium("mirrors = [\"pve\"]\nnewest = 0\n"), 10, vec!["newest:", "at least 1"]),
        (
            "medium both",
            medium("mirrors = [\"pve\"]\nnewest = 1\nsnapshots = [\"pve/x\"]\n"),
            11,
            vec!["snapshots:", "not both"],
        ),
        ("medium bad name", medium("mirrors = [\"pve\"]\nsnapshots = [\"x\"]\n"), 10, vec!["<mirror>/<snapshot>"]),
        ("medium foreign", medium("mirrors = [\"pve\"]\nsnapshots = [\"o/x\"]\n"), 10, vec!["not in this medium"]),
        ("max-shrink not a percentage", format!("[sync]\nmax-shrink = \"half\"\n{MIRROR}"), 2, vec!["[sync]: max-shrink:", "percentage"]),
        ("proxy socks", format!("[sync]\nproxy = \"socks5://u:pw@p:1080\"\n{MIRROR}"), 2, vec!["[sync]: proxy:", "u:***@p", "http://"]),
        ("proxy path", format!("[sync]\nproxy = \"http://p:3128/x\"\n{MIRROR}"), 2, vec!["proxy:", "host and port only"]),
        ("rate-limit words", format!("[sync]\nrate-limit = \"fast\"\n{MIRROR}"), 2, vec!["[sync]: rate-limit:", "bytes per second"]),
        ("rate-limit zero", format!("[sync]\nrate-limit = \"0M\"\n{MIRROR}"), 2, vec!["rate-limit:", "not a rate"]),
        ("max-shrink over 100", format!("[sync]\nmax-shrink = \"150%\"\n{MIRROR}"), 2, vec!["max-shrink:", "0% to 100%"]),
        ("medium empty names", medium("mirrors = [\"pve\"]\nsnapshots = []\n"), 10, vec!["snapshots:", "is empty"]),
        (
            "medium store inside",
            format!("[store]\ndir = \"/mnt/usb/store\"\n{MIRROR}[[medium]]\nid = \"usb\"\npath = \"/mnt/usb\"\nmirrors = [\"pve\"]\n"),
            10,
            vec!["medium \"usb\": path:", "overlaps the store"],
        ),
        (
            "medium bad id",
            format!("{MIRROR}[[medium]]\nid = \"a b\"\npath = \"/m\"\nmirrors = [\"pve\"]\n"),
            7,
            vec!["medium \"a b\": id:"],
        ),
        ("medium duplicate", format!("{}{}", medium("mirrors = [\"pve\"]\n"), MEDIUM_AGAIN), 11, vec!["duplicate id"]),
        ("zero concurrency", "[sync]\nconcurrency = 0\n".into(), 2, vec!["[sync]: concurrency:", "at least 1"]),
        (
            "max-concurrency below concurrency",
            "[sync]\nconcurrency = 8\nmax-concurrency = 4\n".into(),
            3,
            vec!["[sync]: max-concurrency:", "at least concurrency (8)"],
        ),
        ("ca-file missing", "[sync]\nca-file = \"/nonexistent/ca.pem\"\n".into(), 2, vec!["[sync]: ca-file:", "cannot read"]),
        ("ca-file not PEM", "[sync]\nca-file = \"/etc/passwd\"\n".into(), 2, vec!["[sync]: ca-file:", "no PEM certificate"]),
        ("source not a URL", m("sources = [\"mirror-a/debian/pve\"]\n"), 6, vec!["mirror \"pve\": sources:", "invalid URL"]),
        ("source ftp", m("sources = [\"ftp://h/debian/pve\"]\n"), 6, vec!["mirror \"pve\": sources:", "http or https"]),
        (
            "source twice",
            m("sources = [\"http://a/debian/pve\", \"http://a/debian/pve/\"]\n"),
            6,
            vec!["mirror \"pve\": sources:", "listed twice"],
        ),
        (
            "tree source its own url",
            "[[tree]]\nid = \"t\"\nurl = \"http://h/iso/\"\nsources = [\"http://h/iso\"]\n".into(),
            4,
            vec!["tree \"t\": sources:", "listed twice"],
        ),
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
