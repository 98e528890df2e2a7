//! Issue 11, items 8 and 9: every argument has a help line, the man pages say what `--help`
//! cannot (EXIT STATUS, FILES, EXAMPLES, the configuration reference) and render cleanly, and a
//! Debian mirror has presets — with Debian's own keyring, two suites of one URL side by side.

use crate::harness::{text, Env, Mount, BIN};
use crate::support::fixture::Upstream;
use crate::support::signing_key;
use clap::CommandFactory as _;
use std::path::Path;
use std::process::{Command, Output};

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--config").arg(config).args(args).output().expect("run pmirror-fs")
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args);
    assert!(out.status.success(), "{args:?}: {}\n{}", out.status, text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn every_flag_and_positional_of_every_command_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("`{path}` {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&pmirror_fs::cli::Cli::command(), "pmirror-fs", &mut missing);
    assert!(missing.is_empty(), "arguments without help:\n{}", missing.join("\n"));
}

/// Every key `config show` prints for a config that sets every optional key once:
/// (table, key), derived from the renderer rather than copied by hand.
fn rendered_keys(dir: &Path) -> Vec<(String, String)> {
    let key = crate::support::write_public_key(dir);
    let config = dir.join("all-keys.toml");
    let text = format!(
        "[store]\ndir = \"store\"\nmetrics-textfile = \"m.prom\"\n\n\
         [[subscription]]\nkey = \"pve4b-1234567890\"\nserver-id = \"0123456789ABCDEF0123456789ABCDEF\"\n\n\
         [[mirror]]\nid = \"m\"\nrepository = \"deb http://h/debian bookworm main\"\narchitectures = [\"amd64\"]\n\
         key = \"{k}\"\nuse-subscription = \"pve\"\n\n\
         [[tree]]\nid = \"t\"\nurl = \"http://h/iso/\"\nkey = \"{k}\"\nuse-subscription = \"pve\"\n\n\
         [[alias]]\npath = \"a\"\ntarget = \"iso\"\n",
        k = key.display()
    );
    std::fs::write(&config, text).unwrap();
    let shown: toml::Table = ok(&config, &["config", "show"]).parse().expect("config show is TOML");
    let mut keys = Vec::new();
    for (table, value) in &shown {
        let tables = match value {
            toml::Value::Table(t) => vec![t.clone()],
            toml::Value::Array(a) => a.iter().filter_map(|v| v.as_table().cloned()).collect(),
            other => panic!("{table} = {other}"),
        };
        for key in tables.iter().flat_map(|t| t.keys()) {
            keys.push((table.clone(), key.clone()));
        }
    }
    keys
}

#[test]
fn man_pages_have_exit_status_files_examples_and_the_config_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let man = tmp.path().join("man");
    let out = Command::new(BIN).args(["gen", "man", "--dir"]).arg(&man).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = |name: &str| std::fs::read_to_string(man.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let main = page("pmirror-fs.1");
    for section in [".SH \"EXIT STATUS\"", ".SH FILES", ".SH EXAMPLES", ".SH ENVIRONMENT", ".SH \"SEE ALSO\""] {
        assert!(main.contains(section), "pmirror-fs.1 lacks {section}");
    }
    for status in ["\\fB0\\fR", "\\fB1 (sync)\\fR", "\\fB1 (verify)\\fR", "\\fB2\\fR", "\\fB141\\fR"] {
        assert!(main.contains(status), "pmirror-fs.1 lacks exit status {status}");
    }
    assert!(main.contains("debian:bookworm"), "no Debian example");
    // Each command's page has its own exit statuses and examples.
    let sync = page("pmirror-fs-sync.1");
    assert!(sync.contains(".SH \"EXIT STATUS\"") && sync.contains("A mirror or tree failed"), "{sync}");
    assert!(sync.contains(".SH EXAMPLES") && sync.contains("pmirror\\-fs sync \\-\\-dry\\-run"), "{sync}");
    assert!(!sync.contains("snapshot publish"), "sync's page shows other commands' examples");
    assert!(page("pmirror-fs-verify.1").contains("damaged or missing"));

    let reference = page("pmirror-fs.toml.5");
    assert!(reference.starts_with(".TH PMIRROR-FS.TOML 5"), "{reference}");
    let keys = rendered_keys(tmp.path());
    assert!(keys.len() >= 25, "every table rendered: {keys:?}");
    for (table, key) in &keys {
        let heading = if ["store", "sync", "mount"].contains(&table.as_str()) {
            format!("[{table}]")
        } else {
            format!("[[{table}]]")
        };
        let section = reference.split(".SH ").find(|s| s.starts_with(&format!("\"{heading}\"")));
        let section = section.unwrap_or_else(|| panic!("pmirror-fs.toml.5 has no section {heading}"));
        assert!(
            section.contains(&format!(".TP\n\\fB{}\\fR (", key.replace('-', "\\-"))),
            "{heading} {key} undocumented"
        );
    }
    // The defaults the page states are the ones the empty configuration loads with.
    let empty = tmp.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let defaults: toml::Table = ok(&empty, &["config", "show"]).parse().unwrap();
    for table in ["store", "sync"] {
        for (key, value) in defaults[table].as_table().unwrap() {
            let line =
                format!("\\fB{}\\fR (default: {})", key.replace('-', "\\-"), value.to_string().replace('-', "\\-"));
            assert!(reference.contains(&line), "pmirror-fs.toml.5 lacks {line:?}");
        }
    }
    for section in [".SH EXAMPLES", ".SH FILES"] {
        assert!(reference.contains(section), "pmirror-fs.toml.5 lacks {section}");
    }
}

/// groff (groff-base, installed by scripts/test.sh) with every warning on: a page with a bad
/// request, an unknown macro or a line that starts with a stray control character fails.
#[test]
fn man_pages_render_without_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["gen", "man", "--dir"]).arg(tmp.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut pages: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    pages.sort();
    assert!(pages.iter().any(|p| p.ends_with("pmirror-fs.toml.5")), "no pmirror-fs.toml.5 in {pages:?}");
    for page in &pages {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap_or_else(|e| panic!("groff (package groff-base) is needed: {e}"));
        assert!(out.status.success() && out.stderr.is_empty(), "{}:\n{}", page.display(), text(&out.stderr));
    }
}

#[test]
fn debian_presets_give_three_mirrors_that_load_with_debian_s_keyring() {
    assert!(Path::new(DEBIAN_KEYRING).exists(), "{DEBIAN_KEYRING} missing: scripts/test.sh installs it");
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    let store = tmp.path().join("store");
    let list = ok(&config, &["config", "add", "--list"]);
    for spec in [
        "debian:bookworm (deb http://deb.debian.org/debian bookworm main contrib non-free-firmware)",
        "debian:trixie-security",
        "debian:bullseye-updates",
        "debian:bookworm:non-free",
    ] {
        assert!(list.contains(spec), "--list lacks {spec}:\n{list}");
    }
    for (spec, id) in [
        ("debian:bookworm", "debian_bookworm"),
        ("debian:bookworm-updates", "debian_bookworm_updates"),
        ("debian:bookworm-security", "debian_bookworm_security"),
    ] {
        let stdout = ok(&config, &["config", "add", "--preset", spec, "--store", store.to_str().unwrap()]);
        assert!(stdout.contains(&format!("{spec}: added mirror {id}")), "{stdout}");
        assert!(!stdout.contains("is missing"), "the keyring is installed, yet:\n{stdout}");
    }
    let stdout = ok(&config, &["config", "add", "--preset", "debian:bookworm:non-free"]);
    assert!(stdout.contains("added component non-free to mirror debian_bookworm"), "{stdout}");
    let check = ok(&config, &["config", "check"]);
    assert!(check.contains("ok (3 mirrors"), "{check}");
    let shown: toml::Table = ok(&config, &["config", "show"]).parse().unwrap();
    let mirrors: Vec<(&str, &str, &str, &str)> = shown["mirror"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let get = |k: &str| m[k].as_str().unwrap();
            (get("id"), get("repository"), get("view"), get("key"))
        })
        .collect();
    assert_eq!(
        mirrors,
        [
            (
                "debian_bookworm",
                "deb http://deb.debian.org/debian/ bookworm main contrib non-free-firmware non-free",
                "debian",
                DEBIAN_KEYRING
            ),
            (
                "debian_bookworm_updates",
                "deb http://deb.debian.org/debian/ bookworm-updates main contrib non-free-firmware",
                "debian",
                DEBIAN_KEYRING
            ),
            (
                "debian_bookworm_security",
                "deb http://deb.debian.org/debian-security/ bookworm-security main contrib non-free-firmware",
                "debian-security",
                DEBIAN_KEYRING
            ),
        ]
    );
    // An unknown suite is refused with the list; nothing is written.
    let before = std::fs::read_to_string(&config).unwrap();
    let out = run(&config, &["config", "add", "--preset", "debian:sid"]);
    assert_eq!(out.status.code(), Some(1));
    let want = "debian has suites trixie, trixie-updates, trixie-security, bookworm, bookworm-updates, \
                bookworm-security, bullseye, bullseye-updates, bullseye-security";
    assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    // A missing keyring is a package to install, not a download.
    let other = tmp.path().join("other.toml");
    let missing = tmp.path().join("nokeyring.gpg");
    let stdout = ok(&other, &["config", "add", "--preset", "debian:trixie", "--key", missing.to_str().unwrap()]);
    assert!(stdout.contains("apt install debian-archive-keyring") && !stdout.contains("wget"), "{stdout}");
    // At a path of the operator's choosing, the package's keyring is to be copied there.
    let copy = format!("cp /usr/share/keyrings/debian-archive-keyring.gpg {}", missing.display());
    assert!(stdout.contains(&copy), "{stdout}");
}

/// The Debian fixture with a second suite, bookworm-updates, beside bookworm at `debian/`: the
/// same indices (so the same pool paths), its own signed Release.
fn debian_with_updates() -> Upstream {
    let mut up = Upstream::debian(0, signing_key()).expect("debian fixture");
    let mut updates = up.suites[0].clone();
    updates.header.codename = "bookworm-updates".into();
    updates.header.suite = "stable-updates".into();
    let (from, to) = (format!("{}/", up.suites[0].dists()), format!("{}/", updates.dists()));
    let copies: Vec<(String, crate::support::fixture::File)> = up
        .files
        .iter()
        .filter(|(p, _)| p.starts_with(&from) && !p.contains("/by-hash/"))
        .map(|(p, f)| (p.replacen(&from, &to, 1), f.clone()))
        .collect();
    for (path, file) in copies {
        up.put(&path, file.bytes, file.mtime);
    }
    up.suites.push(updates);
    up.resign(signing_key()).expect("resign");
    up
}

#[test]
fn two_debian_suites_of_one_url_sync_and_serve_side_by_side() {
    let env = Env::new(debian_with_updates(), &[]);
    let url = format!("{}/debian", env.server.base_url().trim_end_matches('/'));
    let key = env.key.to_str().unwrap();
    for spec in ["debian:bookworm", "debian:bookworm-updates"] {
        ok(&env.config, &["config", "add", "--preset", spec, "--url", &url, "--key", key]);
    }
    ok(&env.config, &["config", "check"]);
    let stdout = env.sync_ok(&[]);
    assert!(stdout.contains("published generation"), "{stdout}");
    let (base, updates) = (env.published_files("debian_bookworm"), env.published_files("debian_bookworm_updates"));
    let debs = |files: &std::collections::BTreeMap<String, Vec<u8>>| {
        files.keys().filter(|p| p.ends_with(".deb")).cloned().collect::<Vec<_>>()
    };
    assert!(!debs(&base).is_empty() && debs(&base) == debs(&updates), "both suites carry the same pool files");
    let mut mount = Mount::start(&env);
    for suite in ["bookworm", "bookworm-updates"] {
        let inrelease = std::fs::read(mount.path(&format!("debian/dists/{suite}/InRelease"))).expect("InRelease");
        let upstream = env.server.upstream().unwrap();
        let want = upstream.read().unwrap().bytes(&format!("debian/dists/{suite}/InRelease")).unwrap().to_vec();
        assert_eq!(inrelease, want, "{suite}: the view serves another InRelease");
    }
    let deb = &debs(&base)[0];
    assert_eq!(std::fs::read(mount.path(&format!("debian/{deb}"))).expect("pool file"), base[deb]);
    assert!(mount.stop().success(), "{}", mount.log());
}
